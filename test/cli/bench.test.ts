import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir();
afterAll(() => tmp.cleanup());

describe('remapsim bench', () => {
  it('prints fio-shaped JSON with percentiles for fio-style flags on a file it creates', () => {
    const file = path.join(tmp.dir, 'a.img');
    const r = runCli(['bench', '--rw', 'randrw', '--bs', '4k', '--size', '16M', '--runtime', '1', '--output-format', 'json', '--target', `file:${file}`]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(fs.statSync(file).size).toBe(16 << 20);
    const job = j.jobs[0];
    expect(job.jobname).toBe('job');
    for (const d of ['read', 'write']) {
      expect(job[d].total_ios).toBeGreaterThan(0);
      expect(job[d].clat_ns.percentile['50.000000']).toBeGreaterThan(0);
      expect(job[d].bw).toBe(Math.floor(job[d].bw_bytes / 1024));
    }
  });

  it('runs a job file with [global] and two jobs', () => {
    const jobs = path.join(tmp.dir, 'two.fio');
    fs.writeFileSync(jobs, '; two jobs\n[global]\nbs=4k\nsize=8m\n\n[reader]\nrw=randread\n\n[writer]\nrw=write\nbs=64k\n');
    const r = runCli(['bench', jobs, '--output-format', 'json', '--target', `file:${path.join(tmp.dir, 'b.img')}`]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.jobs.map((x: { jobname: string }) => x.jobname)).toEqual(['reader', 'writer']);
    expect(j.jobs[0].read.io_bytes).toBe(8 << 20);
    expect(j.jobs[1].write.io_bytes).toBe(8 << 20);
  });

  it('verifies through a scenario model and reports the oracle', () => {
    const r = runCli([
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
      '1',
      '--time_based',
      '--target',
      'scenario:default',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^target: model of scenario 'default', policy safe/m);
    expect(r.stdout).toMatch(/^verify: ok=\d+ stale=0 lost=0 corrupt=0/m);
  });

  it("a second run on the same file does not judge the first run's leftovers: they are notWritten, not corrupt", () => {
    const file = path.join(tmp.dir, 'again.img');
    const args = [
      'bench',
      '--rw',
      'randrw',
      '--bs',
      '4k',
      '--size',
      '4M',
      '--verify',
      'crc32c',
      '--runtime',
      '500ms',
      '--time_based',
      '--output-format',
      'json',
      '--target',
      `file:${file}`,
    ];
    const oracleOf = (r: { stdout: string }) => JSON.parse(r.stdout).jobs[0].verify.run;
    const first = runCli(args);
    expect(first.code).toBe(0);
    // bench created the file: every unit is judged, the ones it did not write must read as zeroes
    expect(oracleOf(first)).toMatchObject({ priorContent: 'zeroes', findings: 0 });
    expect(oracleOf(first).reads.notWritten).toBe(0);
    const second = runCli(args.filter((a, i) => a !== '--output-format' && args[i - 1] !== '--output-format'));
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^verify: ok=\d+ stale=0 lost=0 corrupt=0 expectedError=0 unexpectedError=0 unjudged=0 notWritten=[1-9]\d*$/m);
    expect(second.stdout).toMatch(
      /^earlier content: unknown \(the target existed before this run\): \d+ reads of units this run did not write were not judged \(notWritten\)$/m,
    );
    expect(second.stdout).toMatch(/^flushes: 0 by the jobs, final flush OK$/m);
  });

  it('fsync=N flushes on one thread, reported as fio does (the sync block)', () => {
    const file = path.join(tmp.dir, 'fsync.img');
    const r = runCli([
      'bench',
      '--rw',
      'randwrite',
      '--bs',
      '4k',
      '--size',
      '1M',
      '--verify',
      'crc32c',
      '--fsync',
      '8',
      '--output-format',
      'json',
      '--target',
      `file:${file}`,
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.jobs[0].sync.total_ios).toBe(32);
    expect(j.remapsim.dataPath).toBe('one thread (sync: jobs flush (fsync=, fdatasync=))');
    expect(j.remapsim.durability).toEqual({ priorFlush: 'OK', jobFlushes: { issued: 32, failed: 0 }, finalFlush: 'OK' });
    expect(j.jobs[0].verify.run.durability).toEqual({ flushes: 33, failedFlushes: 0, writebackLost: 0 });
  });

  it('names bad options and targets', () => {
    const bad = runCli(['bench', '--rw', 'randread', '--blocksizee', '4k', '--target', 'file:/tmp/x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown option '--blocksizee' \(did you mean '--blocksize'\?\)/);
    expect(runCli(['bench', '--rw', 'read', '--target', 'nope:x']).stderr).toMatch(/unknown kind 'nope'/);
    expect(runCli(['bench', '--rw', 'read']).stderr).toBe("remapsim: bench needs a target: --target SPEC, or filename= in the job (fio's --filename)\n");
  });
});
