/**
 * `bench --verify-state` killed with SIGKILL mid-run, then `remapsim verify`
 * in another process: clean, and it finds units damaged on purpose
 * afterwards; bad state files and mismatched targets are refused in one line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../helpers/cli.js';
import { runInProcess } from './in-process.js';
import { tmpDir } from '../helpers/tmp.js';
import { decodeVerifyState, encodeVerifyState, type VerifyState } from '../../src/workload/verify-state.js';
import { makeUnitPattern } from '../../src/workload/unit-pattern.js';

const tmp = tmpDir('remapsim-verify-');
afterAll(() => tmp.cleanup());

function readState(file: string): VerifyState | undefined {
  try {
    return decodeVerifyState(fs.readFileSync(file), file);
  } catch {
    return undefined; // not saved yet
  }
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function overwrite(file: string, offset: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

describe('remapsim verify after a SIGKILL', () => {
  const img = path.join(tmp.dir, 't.img');
  const state = path.join(tmp.dir, 't.state');
  let saved: VerifyState;

  it('the state is saved at the flushes of a running job; verify in another process finds nothing wrong after a kill', async () => {
    const child = spawnCli([
      'bench',
      '--rw',
      'randwrite',
      '--bs',
      '4k',
      '--size',
      '2M',
      '--verify',
      'crc32c',
      '--fsync',
      '16',
      '--runtime',
      '60',
      '--time_based',
      '--target',
      `file:${img}`,
      '--verify-state',
      state,
    ]);
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    try {
      await until(() => (readState(state)?.flushes ?? 0) >= 20, 20_000, `flushes in ${state} (${err})`);
      const a = readState(state)!;
      await until(() => (readState(state)?.flushes ?? 0) >= a.flushes + 80, 20_000, 'more flushes (units written twice)');
      const b = readState(state)!;
      expect(b.saved.unit.length).toBeGreaterThanOrEqual(a.saved.unit.length);
      expect(b.complete).toBe(false);
      // every save is made at a flush: what it says was acknowledged is durable
      for (let i = 0; i < b.saved.unit.length; i++) expect(b.saved.durable[i]).toBe(b.saved.acked[i]);
      await new Promise((r) => setTimeout(r, 37)); // writes after the last save, too
    } finally {
      child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');
    saved = readState(state)!;
    expect(saved.complete).toBe(false);
    expect(saved.saved.unit.length).toBeGreaterThan(100);

    const r = runCli(['verify', '--state', state, '--target', `file:${img}`, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.findings).toBe(0);
    expect(j.reads.ok).toBe(saved.saved.unit.length);
    expect(j.state).toMatchObject({ complete: false, written: saved.saved.unit.length, runId: saved.runId });

    const human = runCli(['verify', '--state', state, '--target', img]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/mid-run \(the run did not end after it\)/);
    expect(human.stdout).toMatch(/^verdict: every unit holds data the run may have left$/m);
  }, 60_000);

  it("finds units damaged on purpose: zeroes (lost), foreign bytes and another unit's data (corrupt), an older generation (stale)", async () => {
    const s = saved;
    const twice = [...s.saved.unit.keys()].filter((i) => s.saved.durable[i] >= 2);
    const once = [...s.saved.unit.keys()].filter((i) => s.saved.durable[i] >= 1 && !twice.includes(i)).concat(twice.slice(1));
    expect(twice.length).toBeGreaterThan(0);
    expect(once.length).toBeGreaterThanOrEqual(3);
    const unitAt = (i: number) => s.saved.unit[i];
    const p = makeUnitPattern({ unitSize: s.unitSize, runId: s.runId, seed: s.seed, algorithm: s.algorithm });
    const [lost, foreign, misdirected] = once;
    const stale = twice[0];
    overwrite(img, unitAt(lost) * 4096, new Uint8Array(4096));
    overwrite(img, unitAt(foreign) * 4096, new Uint8Array(4096).fill(0xa5));
    const other = new Uint8Array(4096);
    p.fill(other, unitAt(lost), 1);
    overwrite(img, unitAt(misdirected) * 4096, other);
    const older = new Uint8Array(4096);
    p.fill(older, unitAt(stale), s.saved.durable[stale] - 1);
    overwrite(img, unitAt(stale) * 4096, older);

    const r = runCli(['verify', '--state', state, '--target', `file:${img}`, '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.reads).toMatchObject({ lost: 1, corrupt: 2, stale: 1, unexpectedError: 0 });
    expect(j.findings).toBe(4);
    expect(j.first.lost).toEqual([unitAt(lost) * 8]);
    expect([...j.first.corrupt].sort((a: number, b: number) => a - b)).toEqual([unitAt(foreign) * 8, unitAt(misdirected) * 8].sort((a, b) => a - b));
    expect(j.first.stale).toEqual([unitAt(stale) * 8]);
    expect(j.corruptReasons).toEqual({ foreign: 1, misdirected: 1 });

    const human = await runInProcess(['verify', '--state', state, '--target', `file:${img}`]);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^verdict: 4 units lost, stale or corrupt/m);
  });

  it('refuses a truncated, damaged or foreign state and a target of another size, in one line, exit 2', async () => {
    const bytes = fs.readFileSync(state);
    const cut = path.join(tmp.dir, 'cut.state');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    const flipped = path.join(tmp.dir, 'flipped.state');
    const f = Buffer.from(bytes);
    f[100] ^= 1;
    fs.writeFileSync(flipped, f);
    const foreign = path.join(tmp.dir, 'stack.json');
    fs.writeFileSync(foreign, '{"version":1,"name":"x"}\n');
    const small = path.join(tmp.dir, 'small.img');
    fs.writeFileSync(small, Buffer.alloc(1 << 20));
    const cases: Array<[string[], RegExp]> = [
      [['--state', cut, '--target', img], /^remapsim: --state: .*cut\.state: truncated: \d+ of \d+ bytes\n$/],
      [['--state', flipped, '--target', img], /^remapsim: --state: .*flipped\.state: checksum mismatch: the file is damaged\n$/],
      [['--state', foreign, '--target', img], /^remapsim: --state: .*stack\.json: not a remapsim verify-state file \(no RSIMVST magic\)\n$/],
      [['--state', path.join(tmp.dir, 'none.state'), '--target', img], /^remapsim: --state: cannot read .*none\.state: no such file\n$/],
      [['--state', state, '--target', small], /^remapsim: --target: file .*small\.img has 2048 sectors; the state was saved for file .*t\.img of 4096 sectors/],
      [['--state', state, '--target', 'scenario:default'], /^remapsim: --target: a scenario's model is built anew on new files/],
    ];
    for (const [args, want] of cases) {
      const r = await runInProcess(['verify', ...args]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(want);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    // and a state saved by a later version
    const v = decodeVerifyState(bytes);
    const later = Buffer.from(encodeVerifyState(v));
    later.writeUInt32LE(7, 8);
    fs.writeFileSync(cut, later);
    expect((await runInProcess(['verify', '--state', cut, '--target', img])).stderr).toMatch(/version 7; this remapsim reads version 1\n$/);
  });
});
