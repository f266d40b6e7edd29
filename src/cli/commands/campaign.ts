import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { renderCampaignReport } from '../../report/campaign.js';
import { runCampaign, ticketsOf } from '../../sim/campaign/campaign.js';
import { kubernetesManifest, slurmScript } from '../../sim/campaign/manifest.js';
import { mergeResults } from '../../sim/campaign/merge.js';
import { defaultJobs } from '../../sim/campaign/pool.js';
import { CampaignProgress } from '../../sim/campaign/progress-line.js';
import { readResults } from '../../sim/campaign/results-file.js';
import { parseShard, shardPath } from '../../sim/campaign/shard.js';
import { loadCampaign } from '../../sim/campaign/spec.js';
import { formatCampaign } from '../../sim/format.js';
import { summarize } from '../../sim/summary.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from '../../util/errors.js';
import { intOption, simInput } from '../sim-options.js';

interface RunOptions {
  out?: string;
  jobs?: string;
  shard?: string;
  force?: boolean;
  quiet?: boolean;
  dryRun?: boolean;
  summary?: string;
  report?: string;
}

interface MergeOptions {
  output?: string;
  report?: string;
  json?: boolean;
}

interface ManifestOptions {
  k8s?: boolean;
  slurm?: boolean;
  shards?: string;
  image?: string;
  results: string;
  cpus?: string;
  jobs?: string;
  output?: string;
}

function write(file: string, text: string, name: string): void {
  try {
    fs.writeFileSync(file, text);
  } catch (err) {
    throw new UsageError(`${name}: cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export function registerCampaign(program: Command): void {
  const cmd = program
    .command('campaign')
    .description('Monte Carlo campaigns of simulated runs: a sweep of parameters, over all CPUs, sharded over machines, merged')
    .addHelpText(
      'after',
      `
A campaign spec (YAML or JSON) names a scenario, the parameters swept and the
runs per sweep point:

  name: loss-5y
  seed: 42
  scenario: field-4tb.yaml        # relative to the spec
  runs: 200                       # per sweep point
  set: { horizon: 5y, restartEvery: 30d, statusEvery: 1h }
  sweep:
    policy: [safe, dm-remap-v4]
    spare: [1MiB, 8MiB, 64MiB]
    scanEvery: [1w, 1mo, never]

Parameters (set or sweep): policy, horizon, drive, spare, scanEvery,
restartEvery, statusEvery, latentRate, weakRate, transientRate, iops,
readPercent, distribution, spareOverheadPercent, samples.

Examples:
  remapsim campaign run examples/sim/loss-5y.yaml --out loss.jsonl       # resumes when rerun
  remapsim campaign merge loss.jsonl -o loss.json --report loss.html
  remapsim campaign run spec.yaml --shard 0/4 --out shard-0.jsonl         # one of 4 machines
  parallel -j2 -N0 remapsim campaign run spec.yaml --shard 2 --jobs 0 --out 'r-{index}.jsonl' ::: 1 2
  remapsim campaign manifest spec.yaml --k8s --shards 20 --image registry/remapsim > job.yaml`,
    );

  cmd
    .command('run')
    .description("run a campaign's runs (or one shard of them) into a results file, one JSON line per run")
    .argument('<spec>', 'campaign spec (.yaml, .json)')
    .option(
      '--out <file>',
      'results file; {index} is replaced by the shard index (default: <spec name>.jsonl, or <spec name>-shard-{index}.jsonl with --shard)',
    )
    .option('--jobs <n>', `worker processes (default: one per CPU, ${defaultJobs()} here; 0: in this process)`)
    .option('--shard <i/N | N>', 'run shard i of N (runs numbered i modulo N); with N alone, i from JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or PARALLEL_SEQ')
    .option('--force', 'allow a sweep of more than 1,000,000 runs')
    .option('--dry-run', 'list the sweep points and run counts, run nothing')
    .option('--summary <file>', 'when the file holds every run: write the summary JSON here')
    .option('--report <file>', 'when the file holds every run: write the HTML report here')
    .option('--quiet', 'no progress line')
    .addHelpText(
      'after',
      `
Runs already in the results file are skipped, so a campaign interrupted (or
killed) is continued by running the same command again; a last line cut
short by a kill is dropped and its run done again. A results file of another
campaign (another spec or scenario: another campaign id) is refused.

Run i is replicate i mod runs of sweep point floor(i / runs); its seed comes
from the campaign seed and the replicate, so shards merged give exactly what
one machine gives, and every sweep point sees the same simulated drives.

Exit status: 0 when the runs are done, 2 for bad input.`,
    )
    .action((specFile: string, opts: RunOptions) =>
      simInput(async () => {
        const c = loadCampaign(specFile, { force: opts.force });
        const shard = opts.shard === undefined ? undefined : parseShard(opts.shard);
        const jobs = intOption(opts.jobs, '--jobs', 0, 1024);
        if (opts.dryRun) {
          const lines = [
            `campaign ${c.spec.name} (${c.id}): ${c.points.length} sweep points x ${c.spec.runs} runs = ${c.totalRuns} runs${shard ? `; shard ${shard.index}/${shard.count} (from ${shard.from}) runs ${ticketsOf(c, shard).length}` : ''}`,
          ];
          for (const p of c.points)
            lines.push(
              `  point ${p.index}: ${Object.entries(p.params)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')} (runs ${p.index * c.spec.runs}..${(p.index + 1) * c.spec.runs - 1})`,
            );
          process.stdout.write(`${lines.join('\n')}\n`);
          return;
        }
        const base = path.basename(specFile).replace(/\.(ya?ml|json)$/i, '');
        const out = shardPath(opts.out ?? (shard ? `${base}-shard-{index}.jsonl` : `${base}.jsonl`), shard);
        const label = `campaign ${c.spec.name}${shard ? ` shard ${shard.index}/${shard.count}` : ''}`;
        const progress = new CampaignProgress(label, opts.quiet === true);
        let r: Awaited<ReturnType<typeof runCampaign>>;
        try {
          r = await runCampaign(c, { out, jobs, shard, onProgress: (p) => progress.update(p) });
        } finally {
          progress.done();
        }
        const notes = [
          r.resumed > 0 ? `${r.resumed} found in ${out} already` : '',
          r.droppedTail ? 'a last line cut short was dropped and its run done again' : '',
        ].filter((x) => x !== '');
        if (!opts.quiet)
          process.stderr.write(`${label}: ${r.ran} runs done now, ${r.shardRuns} in ${out}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}\n`);
        if (shard === undefined || shard.count === 1) {
          const { records } = readResults(out, { campaign: c.id });
          const summary = summarize(records);
          process.stdout.write(`${formatCampaign(summary)}\n`);
          if (opts.summary) write(opts.summary, `${JSON.stringify(summary, null, 1)}\n`, '--summary');
          if (opts.report) write(opts.report, renderCampaignReport(summary), '--report');
        } else if (opts.summary || opts.report) {
          process.stderr.write(`${label}: --summary and --report wait for every shard: use remapsim campaign merge\n`);
        }
        process.exitCode = EXIT_OK;
      }),
    );

  cmd
    .command('merge')
    .description('merge results files (shards) of one campaign into its summary: P(loss) with intervals, policies side by side')
    .argument('<results...>', 'results files (JSON lines) of one campaign')
    .option('-o, --output <file>', 'write the summary JSON here')
    .option('--report <file>', 'write the HTML report here')
    .option('--json', 'print the summary JSON instead of the table')
    .addHelpText(
      'after',
      `
Every file must hold runs of the same campaign (the campaign id in each
line); a run found in two files must be the same run. A last line cut short
by a kill is ignored (say so on stderr). Runs no file holds are counted as
missing.

Exit status: 0 when every run of the campaign is there, 1 when some are
missing (the summary covers those found), 2 for bad input.

Examples:
  remapsim campaign merge results/loss-5y-shard-*.jsonl -o summary.json --report summary.html`,
    )
    .action((files: string[], opts: MergeOptions) =>
      simInput(() => {
        const m = mergeResults(files);
        for (const f of m.droppedTails) process.stderr.write(`remapsim: ${f}: its last line was cut short (a run killed while it was written): ignored\n`);
        const summary = summarize(m.records);
        if (opts.output) write(opts.output, `${JSON.stringify(summary, null, 1)}\n`, '--output');
        if (opts.report) write(opts.report, renderCampaignReport(summary), '--report');
        process.stdout.write(opts.json ? `${JSON.stringify(summary)}\n` : `${formatCampaign(summary)}\n`);
        if (m.missing.length > 0)
          process.stderr.write(
            `remapsim: ${m.missing.length} of ${summary.expected} runs missing (first: ${m.missing.slice(0, 5).join(', ')}); run the shards that hold them again\n`,
          );
        process.exitCode = m.missing.length > 0 ? EXIT_FINDINGS : EXIT_OK;
      }),
    );

  cmd
    .command('manifest')
    .description('write the job file that runs a campaign as a Kubernetes Indexed Job or a Slurm job array, one shard per task')
    .argument('<spec>', 'campaign spec (.yaml, .json), as the jobs will see it')
    .option('--k8s', 'a Kubernetes Indexed Job (batch/v1)')
    .option('--slurm', 'a Slurm sbatch script with a job array')
    .option('--shards <n>', 'shards (pods or array tasks)')
    .option('--image <image>', 'Kubernetes: the container image holding remapsim', 'remapsim:latest')
    .option('--results <dir>', 'where the shards write their results (a shared volume or file system)', '/results')
    .option('--cpus <n>', 'CPUs per shard', '2')
    .option('--jobs <n>', "worker processes per shard (default: --cpus; 0: the shard's own process)")
    .option('-o, --output <file>', 'write the job file here (default: stdout)')
    .addHelpText(
      'after',
      `
Each task runs 'remapsim campaign run SPEC --shard N --out RESULTS/NAME-shard-{index}.jsonl --jobs JOBS';
the shard index comes from JOB_COMPLETION_INDEX (Kubernetes) or
SLURM_ARRAY_TASK_ID (Slurm). A retried task resumes its file. When all are
done: remapsim campaign merge RESULTS/NAME-shard-*.jsonl -o summary.json --report summary.html

Examples:
  remapsim campaign manifest spec.yaml --k8s --shards 20 --image registry.example/remapsim:1 > job.yaml && kubectl apply -f job.yaml
  remapsim campaign manifest spec.yaml --slurm --shards 64 --results /scratch/loss > job.sh && sbatch job.sh`,
    )
    .action((specFile: string, opts: ManifestOptions) =>
      simInput(() => {
        if (opts.k8s === opts.slurm) throw new UsageError('campaign manifest: give one of --k8s or --slurm');
        const shards = intOption(opts.shards, '--shards', 1, 100_000);
        if (shards === undefined) throw new UsageError('campaign manifest: --shards is required (how many pods or array tasks)');
        const c = loadCampaign(specFile, { force: true });
        if (shards > c.totalRuns) throw new UsageError(`--shards: ${shards} is more than the campaign's ${c.totalRuns} runs`);
        const cpus = intOption(opts.cpus, '--cpus', 1, 1024)!;
        // by default a task runs one worker per CPU it is given (a pod sees every CPU of its node, not its limit)
        const jobs = intOption(opts.jobs, '--jobs', 0, 1024) ?? cpus;
        const o = { spec: specFile, shards, results: opts.results, name: c.spec.name, image: opts.image, cpus, jobs };
        const text = opts.k8s ? kubernetesManifest(o) : slurmScript(o);
        if (opts.output) write(opts.output, text, '--output');
        else process.stdout.write(text);
      }),
    );
}
