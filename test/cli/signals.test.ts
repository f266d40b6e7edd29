/**
 * Issue 17, finding 9: SIGINT, SIGTERM and SIGHUP end `run` and `bench` the
 * same orderly way, in a real child process: fio's summary of what ran is
 * printed, the exit status is 128 + the signal's number, and the run's
 * temporary work directory is gone. The children's TMPDIR is this file's own
 * (shared, so tsx compiles once), and the tests run one after another: the
 * remapsim-* directory that appears there is the running child's.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('signals-test-');
afterAll(() => tmp.cleanup());
const TMPDIR = path.join(tmp.dir, 'tmp');
fs.mkdirSync(TMPDIR);
const small = path.join(tmp.dir, 'small.yaml');
fs.writeFileSync(
  small,
  'name: small\ndevices:\n  main: { size: 16MiB }\n  spare: { size: 4MiB }\nfaults:\n  main: { growth: [{ rate: 5 }] }\njobs:\n  - { rw: randrw, bs: 4k, continue_on_error: all, time_based: 1 }\n',
);

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function collect(child: ChildProcess): Promise<Ended> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ours = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.startsWith('remapsim-'));

/** Whether a new sparse file has data yet (its blocks count dirty page-cache pages too): the jobs are running. */
const written = (file: string): boolean => (fs.statSync(file, { throwIfNoEntry: false })?.blocks ?? 0) > 0;

/** Starts the CLI with its own TMPDIR, waits until its work directory exists and its jobs have run a while, sends `sig`. */
async function stopWith(sig: NodeJS.Signals, args: string[]): Promise<Ended & { workdirs: string[] }> {
  expect(ours(TMPDIR)).toEqual([]);
  const child = spawnCli(args, { env: { TMPDIR } });
  const ended = collect(child);
  await waitFor('the run to make its work directory', () => ours(TMPDIR).length > 0);
  const workdirs = ours(TMPDIR);
  await waitFor('the jobs to write', () => written(path.join(TMPDIR, workdirs[0], 'main.img')));
  await new Promise((r) => setTimeout(r, 500));
  child.kill(sig);
  return { ...(await ended), workdirs };
}

const EXIT = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;

describe('a signal stops run and bench in order', () => {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`${sig}: run prints what ran, exits ${EXIT[sig]}, leaves no work directory`, async () => {
      const json = path.join(tmp.dir, `${sig}.json`);
      const r = await stopWith(sig, ['run', '--duration', '60s', '--json', json, '--no-report']);
      expect(r.workdirs).toHaveLength(1);
      expect(r.workdirs[0]).toMatch(/^remapsim-default-/);
      expect(r.signal).toBeNull();
      expect(r.code).toBe(EXIT[sig]);
      expect(r.stderr).toMatch(new RegExp(`^remapsim: ${sig}: stopping; what ran so far follows`, 'm'));
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toMatch(/^mixed: \(groupid=0, jobs=1\)/m);
      expect(r.stdout).toMatch(/^ {2}read: IOPS=/m);
      expect(r.stdout).toMatch(/verdict: none, the run was stopped/);
      const fio = JSON.parse(fs.readFileSync(json, 'utf8'));
      expect(fio.remapsim.stoppedBy).toBe(sig);
      expect(fio.jobs[0].read.total_ios).toBeGreaterThan(0);
      expect(fio.jobs[0].job_runtime).toBeLessThan(30_000);
      expect(ours(TMPDIR)).toEqual([]);
    });

    it(`${sig}: bench on a scenario's model prints fio's summary of what ran, exits ${EXIT[sig]}, leaves no work directory`, async () => {
      const r = await stopWith(sig, [
        'bench',
        '--rw',
        'randrw',
        '--bs',
        '4k',
        '--verify',
        'crc32c',
        '--continue_on_error',
        'all',
        '--runtime',
        '60',
        '--time_based',
        '--target',
        `scenario:${small}`,
      ]);
      expect(r.workdirs).toHaveLength(1);
      expect(r.workdirs[0]).toMatch(/^remapsim-small-/);
      expect(r.code).toBe(EXIT[sig]);
      expect(r.stdout).toMatch(/^target: model of scenario 'small'/m);
      expect(r.stdout).toMatch(/^ {2}write: IOPS=/m);
      expect(r.stdout).toMatch(/^verify \(the reads made before the run was stopped; no read-back at the end\): ok=\d+/m);
      expect(ours(TMPDIR)).toEqual([]);
    });
  }

  it('the per-CPU engine stops too: bench on a file (SIGINT), run of a scenario whose model runs on the engine (SIGTERM)', async () => {
    const file = path.join(tmp.dir, 'engine.img');
    const child = spawnCli(
      ['bench', '--rw', 'randrw', '--bs', '4k', '--size', '16m', '--runtime', '60', '--time_based', '--queues', '2', '--force', '--target', `file:${file}`],
      { env: { TMPDIR } },
    );
    const ended = collect(child);
    await waitFor('the jobs to write', () => written(file));
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGINT');
    const b = await ended;
    expect(b.code).toBe(130);
    expect(b.stdout).toMatch(/^data path: engine, 2 queue\(s\)/m);
    expect(b.stdout).toMatch(/^ {2}read: IOPS=/m);
    expect(b.stdout).toMatch(/^ {2}write: IOPS=/m);
    const r = await stopWith('SIGTERM', ['run', small, '--duration', '60s', '--queues', '2', '--force']);
    expect(r.code).toBe(143);
    expect(r.stdout).toMatch(/^data path: engine, 2 queue\(s\)/m);
    expect(r.stdout).toMatch(/^ {2}read: IOPS=/m);
    expect(ours(TMPDIR)).toEqual([]);
  });
});
