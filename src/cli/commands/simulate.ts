import * as fs from 'node:fs';
import type { Command } from 'commander';
import { renderCampaignReport } from '../../report/campaign.js';
import { campaignJob, ticketsOf } from '../../sim/campaign/campaign.js';
import { defaultJobs, runPool } from '../../sim/campaign/pool.js';
import { CampaignProgress } from '../../sim/campaign/progress-line.js';
import { ResultsWriter, readResults } from '../../sim/campaign/results-file.js';
import { type CampaignSpec, campaignFrom } from '../../sim/campaign/spec.js';
import { type SimOverrides, resolveSimConfig, runsOf, simSourceFromText } from '../../sim/config.js';
import { DEFAULT_SIM_SCENARIO, DEFAULT_SIM_SCENARIO_NAME } from '../../sim/default.js';
import { formatSimulation } from '../../sim/format.js';
import { type RunRecord, summarize } from '../../sim/summary.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from '../../util/errors.js';
import { intOption, simInput } from '../sim-options.js';
import { registerCampaign } from './campaign.js';

interface SimulateOptions {
  horizon?: string;
  runs?: string;
  seed?: string;
  policy?: string;
  drive?: string;
  spare?: string;
  scanEvery?: string;
  restartEvery?: string;
  statusEvery?: string;
  latentRate?: string;
  weakRate?: string;
  transientRate?: string;
  iops?: string;
  readPercent?: string;
  distribution?: string;
  spareOverheadPercent?: string;
  jobs?: string;
  out?: string;
  json?: string;
  report?: string;
  force?: boolean;
  quiet?: boolean;
}

function checkWritable(file: string | undefined, name: string): void {
  if (file === undefined) return;
  try {
    fs.appendFileSync(file, '');
  } catch (err) {
    throw new UsageError(`${name}: cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** `remapsim simulate`, and `remapsim campaign` beside it. */
export function registerSimulate(program: Command): void {
  registerCampaign(program);
  program
    .command('simulate')
    .description("run a scenario's target over drive-years in virtual time, many runs, and report the chance of losing data")
    .argument(
      '[scenario]',
      'a scenario file (.yaml, .json) with an optional simulate: section; without one, a 4 TB drive over 5 years at field latent-error rates',
    )
    .option('--horizon <time>', 'how long each run lasts in virtual time: 5y, 18mo, 30d (default: simulate.horizon, else 1y; at most 1000y)')
    .option('--runs <n>', 'independent runs (default: simulate.runs, else 1)')
    .option('--seed <n>', "seed of the runs (default: simulate.seed, else the scenario's)")
    .option('--policy <policy>', "safe or dm-remap-v4 (default: the scenario's)")
    .option('--drive <size>', 'main device size: 4TB, 8TiB (default: simulate.drive, else devices.main.size)')
    .option('--spare <size>', 'spare size: 1MiB, 64MiB (default: simulate.spare, else devices.spare.size)')
    .option('--scan-every <time>', "a scanner pass every 1w, 1mo, ...; 'never': no scanner (default: the scenario's)")
    .option('--restart-every <time>', "the table is loaded again (a reboot) every 30d, ...; 'never' (default: the scenario's)")
    .option('--status-every <time>', "a monitor reads the target's status every 1h, ...; 'never' (default: the scenario's)")
    .option('--latent-rate <rate>', "latent-error episodes per drive-year and so on: 0.04/y, 1/mo (sets every latent-error process's rate)")
    .option('--weak-rate <rate>', "weak sectors (slow, then failing) per drive-year: 0.05/y, ... (sets every weak-sector process's rate)")
    .option('--transient-rate <rate>', "transient read errors: 2/y, ...; 'never'")
    .option('--iops <n>', 'I/Os per second of the workload')
    .option('--read-percent <n>', 'share of reads, 0-100')
    .option('--distribution <pattern>', 'uniform or zipf:THETA')
    .option('--spare-overhead-percent <n>', "dm-remap-v4's spare_overhead_percent module parameter (0 loads it with a small spare)")
    .option('--jobs <n>', `worker processes (default: one per CPU, ${defaultJobs()} here; 0: in this process)`)
    .option('--out <file>', 'also write one JSON line per run here (a rerun with the same options resumes it)')
    .option('--json <file>', 'write the summary and every run as JSON')
    .option('--report <file>', 'write the HTML report (charts of the summary)')
    .option('--force', 'allow more than 1,000,000 runs')
    .option('--quiet', 'no progress line')
    .addHelpText(
      'after',
      `
Time jumps from event to event: faults arriving at rates per drive-year
(latent errors in bursts, weak sectors, transient errors, growth), the
scanner reaching a damaged block, restarts, and the workload's I/Os to the
few blocks whose state matters, each run through the real policy code and
judged by the oracle. The other I/Os are counted in bulk. A loss is
acknowledged data a read found lost, stale or corrupt (silent) or could not
read because the medium lost it (unreadable); every followed unit is read
back at the horizon.

Rates take a period: 0.04/y (per drive-year), 2/mo, 1/d, 3/h; a bare number
is per second, as in a scenario's faults. Times: 5y, 18mo, 30d, 1w, 12h.

Exit status: 0 when no run lost acknowledged data, 1 when some did, 2 for
bad input.

Examples:
  remapsim simulate --runs 1000                    # the built-in 4 TB drive, 5 years, safe policy
  remapsim simulate --runs 1000 --policy dm-remap-v4 --spare 1MiB --spare-overhead-percent 0 --restart-every 30d --status-every 1h
  remapsim simulate examples/sim/field-4tb.yaml --horizon 10y --runs 500 --scan-every never --report r.html
  remapsim simulate my.yaml --runs 200 --latent-rate 0.2/y --json r.json`,
    )
    .action((file: string | undefined, opts: SimulateOptions) =>
      simInput(async () => {
        let text: string;
        let name: string;
        if (file === undefined) {
          text = DEFAULT_SIM_SCENARIO;
          name = DEFAULT_SIM_SCENARIO_NAME;
        } else {
          try {
            text = fs.readFileSync(file, 'utf8');
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            throw new UsageError(`${file}: cannot read the scenario (${code === 'ENOENT' ? 'no such file' : (code ?? (err as Error).message)})`);
          }
          name = file;
        }
        const source = simSourceFromText(text, file ?? 'field-4tb.yaml');
        const overrides: SimOverrides = {};
        const set = <K extends keyof SimOverrides>(k: K, v: SimOverrides[K] | undefined): void => {
          if (v !== undefined) overrides[k] = v;
        };
        set('horizon', opts.horizon);
        set('policy', opts.policy);
        set('drive', opts.drive);
        set('spare', opts.spare);
        set('scanEvery', opts.scanEvery);
        set('restartEvery', opts.restartEvery);
        set('statusEvery', opts.statusEvery);
        set('latentRate', opts.latentRate);
        set('weakRate', opts.weakRate);
        set('transientRate', opts.transientRate);
        set('distribution', opts.distribution);
        set('iops', opts.iops === undefined ? undefined : Number(opts.iops));
        set('readPercent', opts.readPercent === undefined ? undefined : Number(opts.readPercent));
        set('spareOverheadPercent', opts.spareOverheadPercent === undefined ? undefined : Number(opts.spareOverheadPercent));
        const runs = runsOf(source, intOption(opts.runs, '--runs', 1, Number.MAX_SAFE_INTEGER));
        const scenarioSeed = typeof source.scenario.seed === 'number' ? source.scenario.seed : 1;
        const seed = intOption(opts.seed, '--seed', 0, 0xffffffff) ?? source.simulate.seed ?? scenarioSeed;
        const jobs = intOption(opts.jobs, '--jobs', 0, 1024);
        const cfg = resolveSimConfig(source, overrides);
        const spec: CampaignSpec = { name: cfg.name, seed, scenario: name, runs, set: overrides as CampaignSpec['set'], sweep: {} };
        const campaign = campaignFrom(spec, source, text, name, { force: opts.force });
        for (const [f, n] of [
          [opts.json, '--json'],
          [opts.report, '--report'],
          [opts.out, '--out'],
        ] as const)
          checkWritable(f, n);
        // runs from an earlier --out of the same simulation are kept
        const records: RunRecord[] = opts.out ? readResults(opts.out, { campaign: campaign.id, repair: true }).records : [];
        const done = new Set(records.map((r) => r.run));
        const writer = opts.out ? new ResultsWriter(opts.out) : undefined;
        const progress = new CampaignProgress(`simulate ${cfg.name}`, opts.quiet === true || runs < 2);
        let cpuMs = 0;
        try {
          ({ cpuMs } = await runPool(campaignJob(campaign), ticketsOf(campaign, undefined, done), {
            jobs: jobs ?? (runs - done.size < 4 ? 0 : undefined),
            onLines: (lines) => {
              writer?.append(lines);
              for (const l of lines) records.push(JSON.parse(l) as RunRecord);
            },
            onProgress: (p) => progress.update(p),
          }));
        } finally {
          progress.done();
          writer?.close();
        }
        records.sort((a, b) => a.run - b.run);
        const summary = summarize(records);
        const results = records.map((r) => r.result);
        process.stdout.write(`${formatSimulation(cfg, summary, results, cpuMs / 1000)}\n`);
        if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify({ summary, runs: records }, null, 1)}\n`);
        if (opts.report) fs.writeFileSync(opts.report, renderCampaignReport(summary, { title: `remapsim simulate: ${cfg.name}` }));
        process.exitCode = results.some((r) => r.loss.at !== null) ? EXIT_FINDINGS : EXIT_OK;
      }),
    );
}
