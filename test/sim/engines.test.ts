/**
 * A campaign spread by engines that exist already (issue 19): the job files
 * `remapsim campaign manifest` writes, run as Kubernetes (each pod's command
 * with its JOB_COMPLETION_INDEX) and Slurm (the sbatch script with each
 * SLURM_ARRAY_TASK_ID) would run them, and GNU parallel running 2 shards
 * (PARALLEL_SEQ). Each merge must equal the one-process summary exactly.
 * The `remapsim` the job files call is a shim onto the sources.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CampaignSummary } from '../../src/sim/summary.js';
import { runInProcess } from '../cli/in-process.js';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { writeTinyCampaign } from './fixture.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = tmpDir('remapsim-engines-');
afterAll(() => tmp.cleanup());
const at = (f: string): string => path.join(tmp.dir, f);

const spec = writeTinyCampaign(tmp.dir);
const bin = at('bin');
fs.mkdirSync(bin);
fs.writeFileSync(
  path.join(bin, 'remapsim'),
  `#!/bin/sh\nexec "${process.execPath}" --import "${import.meta.resolve('tsx')}" "${path.join(root, 'src/cli/main.ts')}" "$@"\n`,
  { mode: 0o755 },
);
const env = (extra: Record<string, string>): NodeJS.ProcessEnv => ({ ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, ...extra });

let reference: CampaignSummary;

beforeAll(async () => {
  const r = await runInProcess(['campaign', 'run', spec, '--out', at('all.jsonl'), '--jobs', '0', '--quiet', '--summary', at('all.json')]);
  expect(r.code).toBe(0);
  reference = JSON.parse(fs.readFileSync(at('all.json'), 'utf8')) as CampaignSummary;
}, 60_000);

async function merged(files: string[], out: string): Promise<CampaignSummary> {
  const m = await runInProcess(['campaign', 'merge', ...files, '-o', out]);
  expect(m.stderr).toBe('');
  expect(m.code).toBe(0);
  return JSON.parse(fs.readFileSync(out, 'utf8')) as CampaignSummary;
}

function check(r: { status: number | null; signal: NodeJS.Signals | null; stderr: string }, what: string): void {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status ?? r.signal}: ${r.stderr.slice(0, 2000)}`);
}

/** Runs the tasks at once, as the engine would (its pods or array tasks side by side), and checks each succeeded. */
async function runTogether(tasks: Array<{ what: string; cmd: string; args: string[]; env: NodeJS.ProcessEnv; cwd?: string }>): Promise<void> {
  const results = await Promise.all(
    tasks.map(
      (t) =>
        new Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
          const child = spawn(t.cmd, t.args, { env: t.env, cwd: t.cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('close', (status, signal) => resolve({ status, signal, stderr }));
        }),
    ),
  );
  results.forEach((r, i) => check(r, tasks[i]!.what));
}

describe('campaign manifest', () => {
  it('writes a Kubernetes Indexed Job whose pods, each with its JOB_COMPLETION_INDEX, give the one-process result', async () => {
    const results = at('k8s');
    const r = await runInProcess([
      'campaign',
      'manifest',
      spec,
      '--k8s',
      '--shards',
      '2',
      '--cpus',
      '1',
      '--jobs',
      '0',
      '--image',
      'registry.example/remapsim:1',
      '--results',
      results,
    ]);
    expect(r.code).toBe(0);
    const job = parseYaml(r.stdout) as Record<string, any>;
    expect(job.apiVersion).toBe('batch/v1');
    expect(job.kind).toBe('Job');
    expect(job.metadata.name).toBe('remapsim-tiny');
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 2, parallelism: 2 });
    const container = job.spec.template.spec.containers[0];
    expect(container.image).toBe('registry.example/remapsim:1');
    expect(container.command).toEqual([
      'remapsim',
      'campaign',
      'run',
      spec,
      '--shard',
      '2',
      '--out',
      `${results}/tiny-shard-{index}.jsonl`,
      '--jobs',
      '0',
      '--quiet',
    ]);
    expect(container.resources.limits.cpu).toBe('1');
    expect(container.volumeMounts[0].mountPath).toBe(results);
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
    // what each pod does
    fs.mkdirSync(results);
    const [cmd, ...args] = container.command as string[];
    await runTogether([0, 1].map((index) => ({ what: `pod ${index}`, cmd: cmd!, args, env: env({ JOB_COMPLETION_INDEX: String(index) }) })));
    expect(
      await merged(
        [0, 1].map((i) => path.join(results, `tiny-shard-${i}.jsonl`)),
        at('k8s.json'),
      ),
    ).toEqual(reference);
  }, 180_000);

  it('writes a Slurm job array whose tasks, each with its SLURM_ARRAY_TASK_ID, give the one-process result', async () => {
    const results = at('slurm');
    const script = at('job.sh');
    const r = await runInProcess(['campaign', 'manifest', spec, '--slurm', '--shards', '2', '--cpus', '1', '--jobs', '0', '--results', results, '-o', script]);
    expect(r.code).toBe(0);
    const text = fs.readFileSync(script, 'utf8');
    expect(text).toMatch(/^#!\/bin\/bash\n/);
    expect(text).toMatch(/^#SBATCH --array=0-1$/m);
    expect(text).toMatch(/^#SBATCH --cpus-per-task=1$/m);
    expect(text).toMatch(/^#SBATCH --job-name=remapsim-tiny$/m);
    expect(text).toContain(`remapsim campaign run ${spec} --shard 2 --out ${results}/tiny-shard-{index}.jsonl --jobs 0 --quiet`);
    // what sbatch does with it: the script once per array task (Slurm sets both variables)
    await runTogether(
      [0, 1].map((task) => ({
        what: `array task ${task}`,
        cmd: 'bash',
        args: [script],
        cwd: tmp.dir,
        env: env({ SLURM_ARRAY_TASK_ID: String(task), SLURM_ARRAY_TASK_MIN: '0' }),
      })),
    );
    expect(
      await merged(
        [0, 1].map((i) => path.join(results, `tiny-shard-${i}.jsonl`)),
        at('slurm.json'),
      ),
    ).toEqual(reference);
  }, 180_000);

  it('runs one worker per CPU of a task unless told otherwise', async () => {
    const r = await runInProcess(['campaign', 'manifest', spec, '--slurm', '--shards', '3', '--cpus', '4']);
    expect(r.stdout).toMatch(/^#SBATCH --cpus-per-task=4$/m);
    expect(r.stdout).toMatch(/ --shard 3 --out \/results\/tiny-shard-\{index\}\.jsonl --jobs 4 --quiet$/m);
  });

  it('needs one engine and a shard count within the runs', async () => {
    for (const [args, message] of [
      [['--shards', '2'], /campaign manifest: give one of --k8s or --slurm$/m],
      [['--k8s', '--slurm', '--shards', '2'], /campaign manifest: give one of --k8s or --slurm$/m],
      [['--k8s'], /campaign manifest: --shards is required/],
      [['--slurm', '--shards', '49'], /--shards: 49 is more than the campaign's 48 runs$/m],
      [['--slurm', '--shards', '0'], /--shards: must be a whole number from 1 to 100000, got '0'$/m],
    ] as const) {
      const r = await runInProcess(['campaign', 'manifest', spec, ...args]);
      expect(r.stderr).toMatch(/^remapsim: [^\n]+\n$/);
      expect(r.stderr).toMatch(message);
      expect(r.code).toBe(2);
    }
  });
});

function parallelMissing(): string | undefined {
  const r = spawnSync('parallel', ['--version'], { encoding: 'utf8' });
  if (r.error) return 'GNU parallel is not installed (apt-get install parallel; .ci/run installs it)';
  if (!/GNU parallel/.test(r.stdout)) return "the 'parallel' on PATH is not GNU parallel (moreutils' has no PARALLEL_SEQ)";
  return undefined;
}

describe('GNU parallel', () => {
  it('runs a campaign in 2 shards (PARALLEL_SEQ) whose merge equals the one-process result', async () => {
    if (skipReason(parallelMissing(), 'the GNU parallel shard test')) return;
    const results = at('parallel');
    fs.mkdirSync(results);
    // -N0: one job per argument, the argument not passed on; each job finds its shard in PARALLEL_SEQ
    await runTogether([
      {
        what: 'parallel',
        cmd: 'parallel',
        args: [
          '-j2',
          '-N0',
          '--halt',
          'now,fail=1',
          'remapsim',
          'campaign',
          'run',
          spec,
          '--shard',
          '2',
          '--jobs',
          '0',
          '--quiet',
          '--out',
          `${results}/p-{index}.jsonl`,
          ':::',
          '1',
          '2',
        ],
        env: env({}),
      },
    ]);
    expect(fs.readdirSync(results).sort()).toEqual(['p-0.jsonl', 'p-1.jsonl']);
    expect(await merged([at('parallel/p-0.jsonl'), at('parallel/p-1.jsonl')], at('parallel.json'))).toEqual(reference);
  }, 180_000);
});
