/**
 * The stochastic fault models reproduce their configured rates for a fixed
 * seed (within tolerances a few standard deviations wide), replay exactly
 * from the seed, and do to I/O what they say.
 */
import { describe, expect, it } from 'vitest';
import { EIO, OK } from '../../src/block/device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { LatentErrorProcess, StochasticFaultError, type LatentEvent } from '../../src/faults/stochastic.js';
import { TransientErrorDevice } from '../../src/faults/transient.js';
import { WeakSectorDevice, WeakSectorProcess } from '../../src/faults/weak.js';
import { openLayers } from '../../src/stack/layers.js';
import { ManualClock } from '../../src/util/clock.js';
import { Random } from '../../src/util/random.js';

const S = 1e9;
const quiet = { log: () => {} };

function dustOver(sectors: number, blockSize = 4096): DustDevice {
  const d = new DustDevice(new MemoryDevice({ sectors, logicalBlockSize: 4096 }), { blockSize, ...quiet });
  d.enable();
  return d;
}

describe('LatentErrorProcess', () => {
  // a big device so bursts rarely overlap and the counts are the process's own
  const SECTORS = 2 ** 34; // 8 TiB, sparse

  function runFor(seconds: number, opts: ConstructorParameters<typeof LatentErrorProcess>[0], seed = 11): { p: LatentErrorProcess; events: LatentEvent[] } {
    const dust = dustOver(SECTORS);
    const p = new LatentErrorProcess(opts, dust, new Random(seed), 0);
    const events: LatentEvent[] = [];
    p.onEpisode((e) => events.push(e));
    // advance in uneven steps: the result must not depend on how often it is called
    for (let t = 0; t <= seconds * S; t += 0.37 * S) p.advance(t);
    p.advance(seconds * S);
    return { p, events };
  }

  it('primary episodes arrive at the configured rate, follow-ups at rate * p / (1 - p)', () => {
    const T = 20_000;
    const { p } = runFor(T, { rate: 0.5, followProbability: 0.4, followMeanNs: 5 * S });
    const primary = p.counts.primaryEpisodes / T;
    const total = (p.counts.primaryEpisodes + p.counts.followEpisodes) / T;
    // 10,000 expected primaries: sd 1%; 16,667 episodes in all
    expect(primary).toBeGreaterThan(0.5 * 0.96);
    expect(primary).toBeLessThan(0.5 * 1.04);
    expect(total).toBeGreaterThan(p.expectedEpisodeRate * 0.95);
    expect(total).toBeLessThan(p.expectedEpisodeRate * 1.05);
  });

  it('bursts have the configured mean size and stay near their centre; follow-ups come after the configured mean delay, near their parent', () => {
    const { events } = runFor(10_000, { rate: 1, burstMean: 3, spread: 4, followProbability: 0.5, followMeanNs: 10 * S, followDistance: 100 });
    const sizes = events.map((e) => e.blocks.length);
    const meanSize = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    // geometric mean 3 (sd ~2.45 per burst, ~20,000 bursts; a few blocks collide within a burst)
    expect(meanSize).toBeGreaterThan(2.85);
    expect(meanSize).toBeLessThan(3.1);
    let far = 0;
    let members = 0;
    for (const e of events) {
      for (const b of e.blocks) {
        if (b === e.centre) continue;
        members++;
        if (Math.abs(b - e.centre) > 4 * 8) far++; // P(geometric(mean 4) > 32) = 0.75^32 ~ 1e-4
      }
    }
    expect(members).toBeGreaterThan(10_000);
    expect(far / members).toBeLessThan(0.002);
    // temporal locality: a follow-up's delay from the episode before it, in time, near its parent
    const primaries = events.filter((e) => e.primary);
    const follows = events.filter((e) => !e.primary);
    expect(follows.length / events.length).toBeGreaterThan(0.47);
    expect(follows.length / events.length).toBeLessThan(0.53);
    const gapsAfterPrimary: number[] = [];
    events.forEach((f, i) => {
      if (f.primary) return;
      // the nearest earlier episode whose centre is within 20 x followDistance is its parent in nearly all cases
      for (let j = i - 1; j >= 0; j--) {
        const e = events[j]!;
        if (e.atNs < f.atNs && Math.abs(e.centre - f.centre) <= 2000) {
          gapsAfterPrimary.push((f.atNs - e.atNs) / S);
          return;
        }
      }
    });
    expect(gapsAfterPrimary.length).toBeGreaterThan(follows.length * 0.95);
    const meanGap = gapsAfterPrimary.reduce((a, b) => a + b, 0) / gapsAfterPrimary.length;
    expect(meanGap).toBeGreaterThan(9);
    expect(meanGap).toBeLessThan(11);
    expect(primaries.length).toBeGreaterThan(9000);
  });

  it('replays exactly from its seed, and a different seed differs', () => {
    const a = runFor(500, { rate: 2 }, 99).events.map((e) => [e.atNs, ...e.blocks]);
    const b = runFor(500, { rate: 2 }, 99).events.map((e) => [e.atNs, ...e.blocks]);
    const c = runFor(500, { rate: 2 }, 100).events.map((e) => [e.atNs, ...e.blocks]);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('marks blocks bad in the dust list (reads fail, with the write-fail count), inside the region only', () => {
    const dust = dustOver(1 << 20);
    const p = new LatentErrorProcess({ rate: 50, writeFailCount: 2, region: { from: 8192, to: 16384 }, followProbability: 0 }, dust, new Random(3), 0);
    p.advance(2 * S);
    const bad = dust.listBadBlocks();
    expect(bad.length).toBe(p.counts.addedBlocks);
    expect(bad.length).toBeGreaterThan(50);
    for (const b of bad) {
      expect(b).toBeGreaterThanOrEqual(8192 / 8);
      expect(b).toBeLessThan(16384 / 8);
      expect(dust.writeFailCount(b)).toBe(2);
    }
    expect(dust.read(bad[0]! * 8, new Uint8Array(4096))).toBe(EIO);
  });

  it('refuses parameters out of range, naming the field', () => {
    const dust = dustOver(1 << 20);
    expect(() => new LatentErrorProcess({ rate: 0 }, dust, new Random(1), 0, 'faults.main.latentErrors[0]')).toThrow(
      /faults\.main\.latentErrors\[0\]\.rate must be a number in \(0, 1000000\], got 0/,
    );
    expect(() => new LatentErrorProcess({ rate: 1, followProbability: 1 }, dust, new Random(1), 0)).toThrow(StochasticFaultError);
    expect(() => new LatentErrorProcess({ rate: 1, region: { from: 3, to: 5 } }, dust, new Random(1), 0)).toThrow(/region \[3, 5\) holds no whole block/);
  });
});

describe('WeakSectorProcess and WeakSectorDevice', () => {
  it('weak blocks appear at the configured rate, read slowly, and fail after the configured mean time', () => {
    const clock = new ManualClock();
    const mem = new MemoryDevice({ sectors: 1 << 24, logicalBlockSize: 4096 });
    const weak = new WeakSectorDevice(mem, { clock, random: new Random(2) });
    const dust = new DustDevice(weak, { blockSize: 4096, ...quiet });
    dust.enable();
    const proc = new WeakSectorProcess({ rate: 2, failAfterNs: 20 * S, readLatency: { kind: 'fixed', ns: 80e6 } }, weak, dust, new Random(8), 0);
    const madeAt = new Map<number, number>();
    const lifetimes: number[] = [];
    proc.onEvent((e) => {
      if (e.kind === 'weak') madeAt.set(e.block, e.atNs);
      else lifetimes.push((e.atNs - madeAt.get(e.block)!) / S);
    });
    let checkedSlow = false;
    for (let t = 0; t <= 4000 * S; t += 1 * S) {
      proc.advance(t);
      if (!checkedSlow && weak.weakCount > 0) {
        const b = weak.weakBlocks()[0]!;
        const t0 = clock.nowNs();
        expect(dust.read(b * 8, new Uint8Array(4096))).toBe(OK);
        expect(clock.nowNs() - t0).toBe(80e6);
        const t1 = clock.nowNs();
        expect(dust.read(((b + 1) % 4096) * 8 + 8 * 4096, new Uint8Array(4096))).toBe(OK);
        expect(clock.nowNs() - t1).toBe(0);
        checkedSlow = true;
      }
    }
    expect(checkedSlow).toBe(true);
    // 8000 expected weak blocks (sd ~1.1%), mean lifetime 20 s (sd ~1.1%)
    expect(proc.madeWeak / 4000).toBeGreaterThan(2 * 0.95);
    expect(proc.madeWeak / 4000).toBeLessThan(2 * 1.05);
    const meanLife = lifetimes.reduce((a, b) => a + b, 0) / lifetimes.length;
    expect(meanLife).toBeGreaterThan(19);
    expect(meanLife).toBeLessThan(21);
    // failed blocks are bad and no longer weak; about rate * failAfter are weak at any time
    expect(dust.badBlockCount).toBe(proc.failed);
    expect(weak.weakCount).toBeGreaterThan(20);
    expect(weak.weakCount).toBeLessThan(70);
    for (const b of dust.listBadBlocks().slice(0, 50)) expect(weak.isWeak(b)).toBe(false);
  });

  it("another thread's copy of the layers (openLayers on the filled-in spec) sees the same weak list", () => {
    const clock = new ManualClock();
    const spec = { file: { path: 'unused' }, weak: { blockSectors: 8, seed: 3 }, transient: { probability: 0.5, blockSectors: 8, seed: 4 } };
    const primary = openLayers(spec, { clock, file: new MemoryDevice({ sectors: 1 << 16 }) });
    expect(spec.weak).not.toHaveProperty('shared');
    const replica = openLayers(primary.spec, { clock, thread: 1, file: new MemoryDevice({ sectors: 1 << 16 }) });
    for (let b = 0; b < 500; b += 5) primary.weak!.addWeak(b, { kind: 'fixed', ns: 5e6 }); // enough to make the table grow
    expect(replica.weak!.weakCount).toBe(100);
    expect(replica.weak!.isWeak(495)).toBe(true);
    const t0 = clock.nowNs();
    replica.weak!.read(495 * 8, new Uint8Array(4096));
    expect(clock.nowNs() - t0).toBe(5e6);
    primary.weak!.removeWeak(495);
    expect(replica.weak!.isWeak(495)).toBe(false);
    expect(replica.transient!.probability).toBe(0.5);
    primary.weak!.close();
    replica.weak!.close();
  });

  it('failFraction leaves some weak blocks weak for good', () => {
    const mem = new MemoryDevice({ sectors: 1 << 24, logicalBlockSize: 4096 });
    const weak = new WeakSectorDevice(mem, { clock: new ManualClock() });
    const dust = new DustDevice(weak, { blockSize: 4096, ...quiet });
    const proc = new WeakSectorProcess({ rate: 1, failAfterNs: 1 * S, failFraction: 0.25 }, weak, dust, new Random(4), 0);
    proc.advance(4000 * S);
    expect(proc.failed / proc.madeWeak).toBeGreaterThan(0.22);
    expect(proc.failed / proc.madeWeak).toBeLessThan(0.28);
  });
});

describe('TransientErrorDevice', () => {
  it('fails reads at the configured probability, and a retry always reads', () => {
    const mem = new MemoryDevice({ sectors: 1 << 16 });
    const t = new TransientErrorDevice(mem, { probability: 0.02, random: new Random(5) });
    const buf = new Uint8Array(4096);
    const rnd = new Random(6);
    let failed = 0;
    const N = 50_000;
    for (let i = 0; i < N; i++) {
      const s = rnd.int((1 << 16) - 8);
      if (t.read(s, buf) !== OK) {
        failed++;
        expect(t.failedRecently(s, 8)).toBe(true);
        expect(t.awaitingRetry(s)).toBe(true);
        expect(t.read(s, buf)).toBe(OK); // the retry clears it
        expect(t.awaitingRetry(s)).toBe(false);
        expect(t.failedRecently(s, 8)).toBe(true); // still known as a transient error, for the oracle
      }
    }
    // 1000 expected first-try failures among ~51,000 reads (sd ~3%)
    expect(failed).toBe(t.injected);
    expect(failed / N).toBeGreaterThan(0.02 * 0.9);
    expect(failed / N).toBeLessThan(0.02 * 1.1);
    expect(t.write(0, buf)).toBe(OK);
  });

  it('only fails reads that start in its region', () => {
    const t = new TransientErrorDevice(new MemoryDevice({ sectors: 4096 }), { probability: 1, region: { from: 1024, to: 2048 } });
    const buf = new Uint8Array(512);
    expect(t.read(0, buf)).toBe(OK);
    expect(t.read(1024, buf)).toBe(EIO);
    expect(t.read(1024, buf)).toBe(OK);
    expect(t.read(3000, buf)).toBe(OK);
    expect(t.failedRecently(1024, 1)).toBe(true);
    for (let i = 0; i < 1024; i++) t.read(0, buf);
    expect(t.failedRecently(1024, 1)).toBe(false); // forgotten after 1024 reads
    expect(() => new TransientErrorDevice(new MemoryDevice({ sectors: 8 }), { probability: 2 })).toThrow(
      /transientErrors\.probability must be a number in \[0, 1\], got 2/,
    );
  });
});
