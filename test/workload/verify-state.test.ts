/**
 * The oracle's durability books and the verify-state file: the codec (round
 * trip, and every kind of damage refused with one line), the saver driven by
 * the runner's flushes (fsync=N), and a restored oracle judging a device by
 * the rules after a crash.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EIO, OK } from '../../src/block/device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { jobFromRecord } from '../../src/workload/job.js';
import { Oracle, type SavedUnits, UNIT_ACKED, UNIT_NEVER, UNIT_WRITEBACK_FAILED } from '../../src/workload/oracle.js';
import { flushAfterRun, runJobs } from '../../src/workload/runner.js';
import { VerifyPattern } from '../../src/workload/verify-pattern.js';
import { decodeVerifyState, encodeVerifyState, type VerifyState, VerifyStateError } from '../../src/workload/verify-state.js';
import { loadVerifyState, VerifyStateSaver } from '../../src/workload/verify-state-file.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-vstate-');
afterAll(() => tmp.cleanup());

const UNIT = 4096;
const UNITS = 256;

function pattern(runId = 11): VerifyPattern {
  return new VerifyPattern({ unitSize: UNIT, runId, seed: 5 });
}

/** Writes units [u0, u0 + n) once through the oracle. */
function write(o: Oracle, dev: MemoryDevice, u0: number, n = 1): void {
  const buf = new Uint8Array(n * UNIT);
  o.prepareWrite(u0, buf);
  o.completeWrite(u0, n, dev.write(o.sectorOf(u0), buf));
}

function sampleState(): VerifyState {
  const saved: SavedUnits = {
    unit: Float64Array.from([0, 3, 7, 2 ** 40]),
    state: Uint8Array.from([UNIT_ACKED, UNIT_ACKED, UNIT_WRITEBACK_FAILED, UNIT_ACKED]),
    acked: Uint32Array.from([1, 9, 4, 0xffffffff]),
    durable: Uint32Array.from([1, 7, 2, 3]),
  };
  return {
    runId: 0xdeadbeef,
    unitSize: 4096,
    seed: 42,
    algorithm: 'xxhash',
    baseSector: 2048,
    units: 2 ** 41,
    complete: false,
    priorContent: 'unknown',
    target: { description: 'block device /dev/loop7 — ünïcode', sectors: 2048 + 2 ** 44, logicalBlockSize: 4096 },
    flushes: 123,
    failedFlushes: 2,
    savedAtMs: 1_700_000_000_123,
    saved,
  };
}

function refusal(bytes: Uint8Array): string {
  try {
    decodeVerifyState(bytes, 'v.state');
  } catch (err) {
    expect(err).toBeInstanceOf(VerifyStateError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected the state to be refused');
}

describe('verify-state codec', () => {
  it('round-trips every field, 64-bit unit numbers and UTF-8 included', () => {
    const s = sampleState();
    const back = decodeVerifyState(encodeVerifyState(s));
    expect(back).toEqual(s);
  });

  it('refuses every truncation, a flipped byte, trailing bytes, a foreign file and another version, each in one line', () => {
    const bytes = encodeVerifyState(sampleState());
    for (let n = 0; n < bytes.length; n++) expect(refusal(bytes.subarray(0, n))).toMatch(/^v\.state: (truncated|empty file)/);
    for (const at of [12, 44, 90, bytes.length - 9, bytes.length - 1]) {
      const b = bytes.slice();
      b[at] ^= 0x40;
      expect(refusal(b)).toMatch(/checksum mismatch|truncated|bytes after the end/);
    }
    expect(refusal(Uint8Array.from([...bytes, 0]))).toMatch(/1 bytes after the end/);
    expect(refusal(new TextEncoder().encode('{"version":1,"name":"x"}\n'))).toBe('v.state: not a remapsim verify-state file (no RSIMVST magic)');
    const v2 = bytes.slice();
    new DataView(v2.buffer).setUint32(8, 2, true);
    expect(refusal(v2)).toBe('v.state: version 2; this remapsim reads version 1');
  });

  it('refuses a well-formed file that says something impossible', () => {
    const s = sampleState();
    s.saved.durable[1] = 10; // newer than acknowledged
    expect(refusal(encodeVerifyState(s))).toMatch(/entry 1: durable generation 10 is newer than the acknowledged 9/);
    const t = sampleState();
    t.saved.unit[2] = 3; // out of order
    expect(refusal(encodeVerifyState(t))).toMatch(/entry 2: unit 3 is out of order/);
  });
});

describe('durability books', () => {
  it('a good flush makes what was acknowledged durable; a failed one counts the units written since the last good one lost', () => {
    const dev = new MemoryDevice({ sectors: UNITS * 8 });
    const o = new Oracle({ pattern: pattern(), units: UNITS });
    write(o, dev, 0, 4);
    expect(o.flushDone(OK)).toBe(0);
    write(o, dev, 2, 4); // 2, 3 rewritten; 4, 5 new
    write(o, dev, 10);
    expect(o.flushDone(EIO)).toBe(5);
    const r = o.report();
    expect(r.reads.lost).toBe(5);
    expect(r.first.lost).toEqual([16, 24, 32, 40, 80]);
    expect(r.findings).toBe(5);
    expect(r.durability).toEqual({ flushes: 2, failedFlushes: 1, writebackLost: 5 });
    const saved = o.savedUnits();
    expect([...saved.unit]).toEqual([0, 1, 2, 3, 4, 5, 10]);
    expect([...saved.durable]).toEqual([1, 1, 1, 1, 0, 0, 0]);
    expect([...saved.state]).toEqual([1, 1, 4, 4, 4, 4, 4]);
    // reads of a unit whose writeback failed are not judged again; a rewrite makes it ordinary
    o.finalPass(dev);
    expect(o.report().reads.unjudged).toBe(5);
    write(o, dev, 10);
    expect(o.flushDone(OK)).toBe(0);
    expect(o.savedUnits().durable[6]).toBe(2);
  });

  it('after writes made elsewhere (absorb) a flush looks at every unit', () => {
    const dev = new MemoryDevice({ sectors: UNITS * 8 });
    const main = new Oracle({ pattern: pattern(), units: UNITS });
    const worker = new Oracle({ pattern: pattern(), units: UNITS, shared: main.shared });
    expect(worker.tracksDurability).toBe(false);
    write(worker, dev, 7, 3);
    main.absorb(worker.report());
    expect(main.flushDone(EIO)).toBe(3);
  });

  it('the runner flushes every fsync=N writes, tells the oracle, then the hook; the saver keeps a state file in step', () => {
    const dev = new MemoryDevice({ sectors: UNITS * 8 });
    const o = new Oracle({ pattern: pattern(), units: UNITS });
    const file = path.join(tmp.dir, 'run.state');
    const saver = new VerifyStateSaver(file, o, { target: { description: 'memory', sectors: dev.sectors, logicalBlockSize: 512 } });
    saver.start();
    expect(loadVerifyState(file).saved.unit.length).toBe(0);
    let seen = 0;
    const job = jobFromRecord({ name: 'w', rw: 'randwrite', bs: '4k', size: `${UNITS * 4}k`, verify: 'crc32c', fsync: 16 });
    const run = runJobs({
      device: dev,
      jobs: [job],
      oracle: o,
      onFlush: (rc) => {
        expect(rc).toBe(OK);
        // the oracle knows before the hook runs: everything acknowledged so far is durable
        const s = o.savedUnits();
        for (let i = 0; i < s.unit.length; i++) expect(s.durable[i]).toBe(s.acked[i]);
        saver.onFlush();
        seen++;
        expect(loadVerifyState(file).flushes).toBe(seen);
      },
    });
    expect(run.jobs[0].flushes?.issued).toBe(UNITS / 16);
    expect(seen).toBe(UNITS / 16);
    expect(flushAfterRun(dev, o)).toBe(OK);
    saver.finish();
    const st = loadVerifyState(file);
    expect(st.complete).toBe(true);
    expect(st.flushes).toBe(UNITS / 16 + 1);
    expect(st.saved.unit.length).toBe(UNITS);
    expect(saver.saves).toBe(UNITS / 16 + 2);
    expect(fs.readdirSync(tmp.dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('judging after a crash (Oracle.restore)', () => {
  it('accepts any generation from the newest durable on; finds stale, lost and corrupt units', () => {
    const dev = new MemoryDevice({ sectors: UNITS * 8 });
    const o = new Oracle({ pattern: pattern(), units: UNITS, priorContent: 'unknown' });
    for (let u = 0; u < 8; u++) write(o, dev, u);
    o.flushDone(OK); // generation 1 of 0..7 durable
    for (let u = 0; u < 8; u++) write(o, dev, u); // generation 2, not flushed
    write(o, dev, 20); // acknowledged, never durable
    const saved = o.savedUnits();
    // after the save: unit 1 gets generation 3 (newer than the state knows)
    write(o, dev, 1);

    const p = pattern();
    const restored = () => Oracle.restore({ pattern: p, units: UNITS, saved, priorContent: 'unknown' });
    const clean = restored();
    clean.finalPass(dev);
    expect(clean.report().reads.ok).toBe(9);
    expect(clean.report().findings).toBe(0);

    // the power went before generation 2 of unit 2 was written back: generation 1 is durable, so fine
    const unit = new Uint8Array(UNIT);
    p.fill(unit, 2, 1);
    expect(dev.write(2 * 8, unit)).toBe(OK);
    // unit 20 never got to the device: nothing durable was promised
    expect(dev.write(20 * 8, new Uint8Array(UNIT))).toBe(OK);
    const crashed = restored();
    crashed.finalPass(dev);
    expect(crashed.report().findings).toBe(0);

    // damage: zeroes over durable unit 3 (lost), another unit's data in unit 4 (corrupt), foreign bytes in 5
    expect(dev.write(3 * 8, new Uint8Array(UNIT))).toBe(OK);
    p.fill(unit, 6, 2);
    expect(dev.write(4 * 8, unit)).toBe(OK);
    expect(dev.write(5 * 8, new Uint8Array(UNIT).fill(0x5a))).toBe(OK);
    const damaged = restored();
    damaged.finalPass(dev);
    const r = damaged.report();
    expect(r.reads).toMatchObject({ lost: 1, corrupt: 2, stale: 0 });
    expect(r.first.lost).toEqual([24]);
    expect(r.first.corrupt).toEqual([32, 40]);
    expect(r.corruptReasons).toEqual({ misdirected: 1, foreign: 1 });
  });

  it('an older intact generation than the newest durable is stale', () => {
    const dev = new MemoryDevice({ sectors: UNITS * 8 });
    const o = new Oracle({ pattern: pattern(), units: UNITS });
    const first = new Uint8Array(UNIT);
    o.prepareWrite(9, first);
    o.completeWrite(9, 1, dev.write(o.sectorOf(9), first));
    write(o, dev, 9);
    o.flushDone(OK); // generation 2 durable
    const saved = o.savedUnits();
    expect(dev.write(9 * 8, first)).toBe(OK); // generation 1 back
    const r = Oracle.restore({ pattern: pattern(), units: UNITS, saved });
    r.finalPass(dev);
    expect(r.report().reads.stale).toBe(1);
    expect(r.report().first.stale).toEqual([72]);
  });

  it('a unit whose writeback failed is lost unless its data made it after all', () => {
    const dev = new MemoryDevice({ sectors: UNITS * 8 });
    const o = new Oracle({ pattern: pattern(), units: UNITS });
    write(o, dev, 1, 2);
    o.flushDone(EIO);
    const saved = o.savedUnits();
    expect([...saved.state]).toEqual([UNIT_WRITEBACK_FAILED, UNIT_WRITEBACK_FAILED]);
    expect(dev.write(2 * 8, new Uint8Array(UNIT))).toBe(OK); // unit 2 did not make it; unit 1 did
    const r = Oracle.restore({ pattern: pattern(), units: UNITS, saved });
    r.finalPass(dev);
    expect(r.report().reads).toMatchObject({ ok: 1, lost: 1 });
    expect(UNIT_NEVER).toBe(0);
  });
});

describe('units this run never wrote', () => {
  it("on a target with unknown earlier content: not judged, unless this run's own data turns up there", () => {
    const dev = new MemoryDevice({ sectors: UNITS * 8 });
    // an earlier run left its data everywhere
    const earlier = new Oracle({ pattern: pattern(1), units: UNITS });
    for (let u = 0; u < UNITS; u += 8) write(earlier, dev, u, 8);
    const judge = (prior: 'zeroes' | 'unknown') => {
      const o = new Oracle({ pattern: pattern(2), units: UNITS, priorContent: prior });
      write(o, dev, 0, 4);
      const buf = new Uint8Array(UNITS * UNIT);
      o.checkRead(0, buf, dev.read(0, buf));
      return o;
    };
    expect(judge('zeroes').report().reads.corrupt).toBe(UNITS - 4);
    const o = judge('unknown');
    expect(o.report().reads).toMatchObject({ ok: 4, corrupt: 0, notWritten: UNITS - 4 });
    expect(o.report().findings).toBe(0);
    // a write of unit 5 that landed on unit 6 is still found
    const buf = new Uint8Array(UNIT);
    o.prepareWrite(5, buf);
    o.completeWrite(5, 1, dev.write(6 * 8, buf));
    const back = new Uint8Array(UNIT);
    o.checkRead(6, back, dev.read(6 * 8, back));
    expect(o.report().reads.corrupt).toBe(1);
    expect(o.report().corruptReasons).toEqual({ misdirected: 1 });
  });
});
