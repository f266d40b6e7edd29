import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { type BlockDevice, OK, withoutClose } from '../../src/block/device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { FlakeyDevice } from '../../src/faults/flakey.js';
import { ManualClock } from '../../src/util/clock.js';
import { Random } from '../../src/util/random.js';
import { Oracle } from '../../src/workload/oracle.js';
import { VerifyPattern } from '../../src/workload/verify-pattern.js';
import { openV4Model } from '../../src/stack/models.js';
import { ReloadingTarget } from '../../src/remap/reloading-target.js';

const UNIT = 4096;
const UNITS = 512;

/** A small random read/write workload through `dev`, judged by a fresh oracle. */
function exercise(dev: BlockDevice, opts: { ops?: number; seed?: number; between?: (i: number) => void; isKnownBad?: (s: number, n: number) => boolean } = {}) {
  const pattern = new VerifyPattern({ unitSize: UNIT, runId: 7, seed: opts.seed ?? 1 });
  const oracle = new Oracle({ pattern, units: UNITS, isKnownBad: opts.isKnownBad });
  const rnd = new Random(opts.seed ?? 1);
  for (let i = 0; i < (opts.ops ?? 3000); i++) {
    opts.between?.(i);
    const n = 1 + rnd.int(4);
    const u = rnd.int(UNITS - n);
    const buf = new Uint8Array(n * UNIT);
    if (rnd.next() < 0.5) {
      oracle.prepareWrite(u, buf);
      oracle.completeWrite(u, n, dev.write(oracle.sectorOf(u), buf));
    } else {
      oracle.checkRead(u, buf, dev.read(oracle.sectorOf(u), buf));
    }
  }
  oracle.finalPass(dev);
  return oracle.report();
}

describe('the oracle', () => {
  it('finds nothing on a clean device', () => {
    const r = exercise(new MemoryDevice({ sectors: UNITS * 8 }));
    expect(r.findings).toBe(0);
    expect(r.reads.ok).toBeGreaterThan(1000);
    expect(r.writes.failed).toBe(0);
    expect(r.reads.corrupt + r.reads.lost + r.reads.stale + r.reads.unexpectedError).toBe(0);
  });

  it('catches dm-flakey drop_writes: acknowledged writes that never landed', () => {
    const clock = new ManualClock();
    const dev = new FlakeyDevice(new MemoryDevice({ sectors: UNITS * 8 }), { upSeconds: 1, downSeconds: 1, dropWrites: true, clock });
    const r = exercise(dev, { between: (i) => clock.set(Math.floor(i / 100) * 0.5e9) });
    expect(r.reads.stale + r.reads.lost).toBeGreaterThan(0);
    expect(r.findings).toBeGreaterThan(0);
    expect(r.first.lost.length + r.first.stale.length).toBeGreaterThan(0);
    expect(r.writes.failed).toBe(0); // dropped writes are acknowledged: that is the point
  });

  it('reports corruption from random_read_corrupt with its reason', () => {
    const dev = new FlakeyDevice(new MemoryDevice({ sectors: UNITS * 8 }), {
      upSeconds: 0,
      downSeconds: 1,
      randomReadCorrupt: 300_000_000,
      random: new Random(3),
      clock: new ManualClock(),
    });
    const r = exercise(dev);
    expect(r.reads.corrupt).toBeGreaterThan(0);
    expect(Object.keys(r.corruptReasons).length).toBeGreaterThan(0);
    expect(r.findings).toBe(r.reads.corrupt + r.reads.stale + r.reads.lost + r.reads.unexpectedError);
  });

  it('tells expected errors (known-bad blocks) from unexpected ones', () => {
    const mem = new MemoryDevice({ sectors: UNITS * 8 });
    const dust = new DustDevice(mem, { blockSize: UNIT });
    dust.enable();
    for (let b = 100; b < 110; b++) dust.addBadBlock(b, 255);
    const isBad = (s: number, n: number) => {
      for (let b = Math.floor(s / 8); b < Math.ceil((s + n) / 8); b++) if (dust.isBadBlock(b)) return true;
      return false;
    };
    const r = exercise(dust, { isKnownBad: isBad });
    expect(r.reads.expectedError).toBeGreaterThan(0);
    expect(r.reads.unexpectedError).toBe(0);
    expect(r.writes.failed).toBeGreaterThan(0);
    expect(r.findings).toBe(0);
    // the same errors without knowing the bad list are findings
    const blind = new DustDevice(new MemoryDevice({ sectors: UNITS * 8 }), { blockSize: UNIT });
    blind.enable();
    blind.addBadBlock(5, 255);
    const r2 = exercise(blind);
    expect(r2.reads.unexpectedError).toBeGreaterThan(0);
  });

  it('finds misdirected and lost data behind the dm-remap-v4 policy once its table is loaded again', () => {
    const main = new DustDevice(new MemoryDevice({ sectors: UNITS * 8 }));
    main.enable();
    const spare = new MemoryDevice({ sectors: 8192 });
    const open = () => {
      const m = openV4Model(withoutClose(main), withoutClose(spare));
      m.target.statusTokens(); // a status call releases the health mutex the table load took: the module's work runs
      return { target: m.target };
    };
    const v4 = new ReloadingTarget(open);
    const rnd = new Random(9);
    const r = exercise(v4, {
      between: (i) => {
        const s = rnd.int(UNITS) * 8; // latent errors on the first sector of a unit
        if (i % 50 === 0 && !main.isBadBlock(s)) main.addBadBlock(s, 0);
        if (i === 1500) expect(v4.reload()).toBe('ok'); // the remaps come back active, pointing at spare sectors nobody copied to
      },
      isKnownBad: (s, n) => {
        for (let x = s; x < s + n; x++) if (main.isBadBlock(x)) return true;
        return false;
      },
    });
    expect(r.reads.lost + r.reads.corrupt).toBeGreaterThan(0);
    expect(r.first.lost.every((s) => s % 8 === 0)).toBe(true);
  });

  it('refuses requests that do not fit its units', () => {
    const o = new Oracle({ pattern: new VerifyPattern({ unitSize: UNIT, runId: 1, seed: 1 }), units: 4 });
    expect(() => o.prepareWrite(3, new Uint8Array(2 * UNIT))).toThrow(/do not fit/);
    expect(() => o.checkRead(0, new Uint8Array(100), OK)).toThrow(/whole units/);
  });
});
