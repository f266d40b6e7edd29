import { describe, expect, it } from 'vitest';
import { Access, Permutation, zipfCdf } from '../../src/sim/access.js';
import { EventQueue } from '../../src/sim/event-queue.js';
import { DayProfile } from '../../src/sim/profile.js';
import { parseRate } from '../../src/sim/rates.js';
import { ScanSchedule } from '../../src/sim/scan-schedule.js';
import { interval } from '../../src/sim/format.js';
import { resolveSimConfig, simSourceFromText } from '../../src/sim/config.js';
import { simulateRun } from '../../src/sim/run.js';
import { erlangCdf, erlangQuantile, ksStatistic, quantile, userFirstShare, wilson } from '../../src/sim/stats.js';
import { MAX_HORIZON_YEARS, SimInputError, YEAR_NS, fromSeconds, parseDuration, toSeconds } from '../../src/sim/time.js';
import { Random } from '../../src/util/random.js';
import { ZipfBlocks } from '../../src/workload/distribution.js';

describe('virtual time', () => {
  it('stays exact over a thousand years, where a double of nanoseconds does not', () => {
    const horizon = BigInt(MAX_HORIZON_YEARS) * YEAR_NS;
    let t = 0n;
    const step = 150_001n; // 150 us and a nanosecond
    const steps = 1000n;
    t = horizon;
    for (let i = 0n; i < steps; i++) t += step;
    expect(t - horizon).toBe(step * steps);
    // the same sum in doubles loses the odd nanoseconds
    let d = Number(horizon);
    for (let i = 0; i < 1000; i++) d += 150_001;
    expect(d - Number(horizon)).not.toBe(150_001_000);
    expect(toSeconds(horizon)).toBeCloseTo(MAX_HORIZON_YEARS * 365.25 * 86400, 3);
  });

  it('parses durations with units and names the field and range when out of range', () => {
    const r = { minS: 1e-3, maxS: 1000 * 365.25 * 86400 };
    expect(parseDuration('5y', 'horizon', r)).toBe(5n * YEAR_NS);
    expect(parseDuration('30d', 'horizon', r)).toBe(fromSeconds(30 * 86400));
    expect(parseDuration(2.5, 'horizon', r)).toBe(2_500_000_000n);
    for (const bad of ['0', '-1y', '1001y', 'soon', '5 parsecs']) {
      expect(() => parseDuration(bad, 'horizon', r)).toThrow(SimInputError);
    }
    expect(() => parseDuration('1001y', 'horizon', r)).toThrow(/^horizon: must be from .* to 1000y, got '1001y'$/);
  });

  it('parses rates per period', () => {
    expect(parseRate('0.04/y', 'rate')).toBeCloseTo(0.04 / (365.25 * 86400), 15);
    expect(parseRate('2/h', 'rate')).toBeCloseTo(2 / 3600, 12);
    expect(parseRate('3/drive-year', 'rate')).toBeCloseTo(3 / (365.25 * 86400), 15);
    expect(parseRate(5, 'rate')).toBe(5);
    expect(() => parseRate('fast', 'faults.latentErrors[0].rate')).toThrow(/^faults\.latentErrors\[0\]\.rate: 'fast' is not a rate/);
  });
});

describe('the load over the day', () => {
  it('integrates and inverts exactly, idle periods included', () => {
    const p = DayProfile.fromPeriods([
      { fromS: 22 * 3600, toS: 6 * 3600, factor: 0 },
      { fromS: 12 * 3600, toS: 13 * 3600, factor: 0.5 },
    ]);
    expect(p.perDay).toBeCloseTo(15 * 3600 + 0.5 * 3600, 6);
    const t = fromSeconds(3 * 86400 + 8 * 3600); // day 3, 08:00
    const op = p.integral(t);
    expect(op).toBeCloseTo(3 * p.perDay + 2 * 3600, 6);
    expect(p.inverse(op)).toBe(t);
    // an operational moment at the end of the working day maps to 22:00, not into the idle night
    const night = p.inverse(p.perDay);
    expect(toSeconds(night!)).toBeCloseTo(86400 + 6 * 3600, 3);
    expect(DayProfile.constant(0).inverse(1)).toBeUndefined();
  });

  it('refuses periods outside the day', () => {
    expect(() => DayProfile.fromPeriods([{ fromS: 0, toS: 90000, factor: 0 }], 'simulate.workload.idle')).toThrow(
      /simulate\.workload\.idle\[0\]\.to: must be a time of day/,
    );
  });
});

describe('where I/Os land', () => {
  it('permutes grains one to one', () => {
    for (const n of [1, 7, 1000, 4097]) {
      const p = new Permutation(n, 12345);
      const seen = new Set<number>();
      let wrong = 0;
      for (let x = 0; x < n; x++) {
        const y = p.forward(x);
        if (!(y >= 0 && y < n) || p.inverse(y) !== x) wrong++;
        seen.add(y);
      }
      expect(wrong).toBe(0);
      expect(seen.size).toBe(n);
    }
  });

  it("gives each rank the share fio's zipf generator draws it with", () => {
    const n = 10_000;
    const theta = 1.2;
    const z = new ZipfBlocks(n, theta, new Random(7), 0);
    const draws = 400_000;
    const counts = new Float64Array(n);
    for (let i = 0; i < draws; i++) counts[z.nextRank()]++;
    for (const v of [1, 2, 3, 10, 100, 1000, 5000]) {
      let emp = 0;
      for (let k = 0; k < v; k++) emp += counts[k]!;
      expect(Math.abs(emp / draws - zipfCdf(v, n, theta))).toBeLessThan(0.004);
    }
    const a = new Access({ kind: 'zipf', theta }, n, 99);
    let total = 0;
    for (let g = 0; g < n; g++) total += a.share(g);
    expect(total).toBeCloseTo(1, 6);
    const uniform = new Access({ kind: 'uniform' }, n, 1);
    expect(uniform.share(17)).toBe(1 / n);
  });
});

describe('the scanner in virtual time', () => {
  const mb = 1e6;
  it('reaches each slice once a pass, back to back or on a period', () => {
    const rate = DayProfile.constant(mb); // 1 MB/s
    const s = new ScanSchedule({ deviceBytes: 100 * mb, sliceBytes: mb, order: 'sequential', staggerRegions: 1, rate });
    expect(toSeconds(s.visitTime(0, 0))).toBeCloseTo(1, 6);
    expect(toSeconds(s.visitTime(1, 49))).toBeCloseTo(150, 6);
    expect(s.nextVisit(10, fromSeconds(12)).pass).toBe(1);
    const weekly = new ScanSchedule({ deviceBytes: 100 * mb, sliceBytes: mb, order: 'sequential', staggerRegions: 1, rate, every: fromSeconds(1000) });
    expect(toSeconds(weekly.passStart(3))).toBe(3000);
    expect(toSeconds(weekly.nextVisit(99, fromSeconds(101)).at)).toBeCloseTo(1100, 6);
    expect(weekly.progressAt(fromSeconds(2050)).passes).toBe(2);
    // a pass longer than the period starts the next one when it ends
    const slow = new ScanSchedule({ deviceBytes: 100 * mb, sliceBytes: mb, order: 'sequential', staggerRegions: 1, rate, every: fromSeconds(60) });
    expect(toSeconds(slow.passStart(2))).toBeCloseTo(200, 6);
  });

  it('reads regions in turn in the staggered order', () => {
    const s = new ScanSchedule({ deviceBytes: 64 * mb, sliceBytes: mb, order: 'staggered', staggerRegions: 8, rate: DayProfile.constant(mb) });
    expect(s.offsetOf(0)).toBe(0);
    expect(s.offsetOf(8)).toBe(mb); // region 1's first slice comes second
    expect(s.offsetOf(1)).toBe(8 * mb);
  });
});

describe('statistics', () => {
  it('has the closed forms the validations use', () => {
    expect(userFirstShare(1)).toBeCloseTo(1 - (1 - Math.exp(-1)), 12);
    expect(userFirstShare(1e-9)).toBeCloseTo(0, 6);
    expect(erlangCdf(1, 2, erlangQuantile(1, 2, 0.5))).toBeCloseTo(0.5, 9);
    expect(erlangQuantile(1, 1, 0.5)).toBeCloseTo(Math.LN2, 9);
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    const w = wilson(0, 100);
    expect(w.lo).toBe(0);
    expect(w.hi).toBeGreaterThan(0.03);
    expect(interval(wilson(50, 100))).toMatch(/^50\.0% \[40\.\d%, 59\.\d%\]$/);
    const rng = new Random(3);
    const sample = Array.from({ length: 400 }, () => rng.exponential(2));
    expect(ksStatistic(sample, (x) => 1 - Math.exp(-2 * x))).toBeLessThan(0.07);
    expect(ksStatistic(sample, (x) => 1 - Math.exp(-3 * x))).toBeGreaterThan(0.1);
  });
});

describe('the agenda', () => {
  it('orders by time, then by when events were scheduled, and skips cancelled ones', () => {
    const q = new EventQueue<string>();
    q.push(5n, 'c');
    q.push(1n, 'a');
    const x = q.push(3n, 'x');
    q.push(5n, 'd');
    q.push(1n, 'b');
    x.cancelled = true;
    const out: string[] = [];
    for (let e = q.pop(); e; e = q.pop()) out.push(e.payload);
    expect(out).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('a simulated drive', () => {
  it('moves a weak sector the scan finds (slow in virtual time) and loses nothing when it fails, past sector 2^31 of a 4 TB drive', () => {
    const text = `
name: big-weak
devices: { main: { size: 4TB }, spare: { size: 64MiB } }
scanner: { rate: 64 }
jobs: [{ name: oltp, rw: randrw, rwmixread: 70, bs: 4k }]
simulate:
  horizon: 1y
  samples: 4
  workload: { iops: 150 }
  faults: { weakSectors: [{ rate: 50/y, maxEpisodes: 1, failAfter: 60d, region: { from: 3000000000, to: 7000000000 } }] }
  scanner: { every: 1d }
`;
    const cfg = resolveSimConfig(simSourceFromText(text, 'big-weak.yaml'));
    expect(cfg.main.logicalBlockSize).toBe(512);
    let moved = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const r = simulateRun(cfg, seed);
      expect(r.faults.weakBlocks).toBe(1);
      if (r.scanner!.weakMoved === 0) continue; // it failed within a day of turning weak: lost, as it should be
      moved++;
      // its data lives on the spare: neither the user's reads nor the read-back at the horizon fail
      expect(r.spare.remaps).toBe(1);
      expect(r.errors.read).toBe(0);
      expect(r.loss.at).toBeNull();
    }
    expect(moved).toBeGreaterThanOrEqual(6);
  });
});
