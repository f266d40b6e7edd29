/**
 * The score formula, the trend and the exhaustion prediction on synthetic
 * histories, and the special functions under them against published values.
 */
import { describe, expect, it } from 'vitest';
import { gammaP, gammaQuantile, logGamma, poissonRateInterval } from '../../src/stats/math.js';
import { dispersionOf, type HealthSample, healthScore, predictExhaustion, scoreTrend } from '../../src/remap/health-score.js';
import { Random } from '../../src/util/random.js';

const S = 1e9;
const DAY = 86400 * S;

describe('special functions', () => {
  it('log-gamma and P(a, x) match known values', () => {
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    expect(gammaP(1, 2)).toBeCloseTo(1 - Math.exp(-2), 14); // exponential CDF
    expect(gammaP(3, 2)).toBeCloseTo(1 - Math.exp(-2) * (1 + 2 + 2), 14); // Erlang(3)
    let tail = 0;
    for (let k = 0, term = 1; k < 10; k++, term *= 30 / k) tail += term;
    expect(gammaP(10, 30)).toBeCloseTo(1 - Math.exp(-30) * tail, 13); // Erlang(10), continued-fraction branch
  });

  it('the Gamma quantile inverts P and gives the chi-square table values', () => {
    for (const [p, a] of [
      [0.05, 1],
      [0.5, 3.5],
      [0.975, 11],
      [0.001, 0.3],
    ] as const)
      expect(gammaP(a, gammaQuantile(p, a))).toBeCloseTo(p, 10);
    // chi-square quantiles: 2 * Gamma(k/2) quantile
    expect(2 * gammaQuantile(0.975, 1)).toBeCloseTo(7.3778, 3); // chi2(2), 97.5%
    expect(2 * gammaQuantile(0.95, 5)).toBeCloseTo(18.307, 3); // chi2(10), 95%
  });

  it('keeps quantiles by level and shape: asked again, in any order and past what it keeps, each answer is its own', () => {
    const pairs: Array<[number, number]> = [];
    for (let a = 1; a <= 5000; a += 1.25) pairs.push([0.025, a], [0.975, a], [0.025, a + 0.5]);
    const first = pairs.map(([p, a]) => gammaQuantile(p, a));
    for (let i = pairs.length - 1; i >= 0; i -= 97) {
      const [p, a] = pairs[i]!;
      expect(gammaQuantile(p, a)).toBe(first[i]);
      expect(gammaP(a, first[i]!)).toBeCloseTo(p, 9);
    }
  });

  it("Garwood's exact Poisson interval matches the published table", () => {
    const zero = poissonRateInterval(0, 1, 0.95);
    expect(zero.lo).toBe(0);
    expect(zero.hi).toBeCloseTo(3.689, 3);
    const ten = poissonRateInterval(10, 1, 0.95);
    expect(ten.point).toBe(10);
    expect(ten.lo).toBeCloseTo(4.7954, 3);
    expect(ten.hi).toBeCloseTo(18.3904, 3);
    // exposure scales it; dispersion widens it and keeps the point
    const scaled = poissonRateInterval(10, 5, 0.95);
    expect(scaled.hi).toBeCloseTo(18.3904 / 5, 3);
    const wide = poissonRateInterval(10, 1, 0.95, 4);
    expect(wide.point).toBe(10);
    expect(wide.lo).toBeLessThan(ten.lo);
    expect(wide.hi).toBeGreaterThan(ten.hi);
  });
});

/** A history sampled every second: arrivals from a Poisson process at `rate` per second (or bursts of `burst`). */
function poissonHistory(rng: Random, rate: number, seconds: number, iosPerSecond = 1000, burst = 1): HealthSample[] {
  const out: HealthSample[] = [{ tNs: 0, ios: 0, committed: 0, score: 100 }];
  let next = rng.exponential(rate / burst);
  let committed = 0;
  for (let t = 1; t <= seconds; t++) {
    while (next <= t) {
      committed += burst;
      next += rng.exponential(rate / burst);
    }
    out.push({ tNs: t * S, ios: t * iosPerSecond, committed, score: 100 });
  }
  return out;
}

describe('spare exhaustion prediction', () => {
  it('recovers a known arrival rate, and its 90% intervals cover the truth about 90% of the time', () => {
    const rng = new Random(21);
    let covered = 0;
    let coveredTime = 0;
    const RUNS = 300;
    const rate = 0.2;
    const remaining = 500;
    for (let i = 0; i < RUNS; i++) {
      const h = poissonHistory(rng, rate, 200);
      const p = predictExhaustion(h, remaining, { confidence: 0.9 });
      if (p.ratePerSecond.lo <= rate && rate <= p.ratePerSecond.hi) covered++;
      const truth = (remaining / rate) * S;
      if (p.timeNs.lo <= truth && truth <= p.timeNs.hi) coveredTime++;
    }
    // Garwood's interval is conservative: at least the nominal 90%, not much more
    expect(covered / RUNS).toBeGreaterThan(0.87);
    expect(covered / RUNS).toBeLessThan(0.97);
    expect(coveredTime).toBe(covered);
  });

  it('gives time and I/Os to exhaustion from one history', () => {
    // exactly one arrival every 10 s for 1000 s, 500 I/Os per second
    const h: HealthSample[] = [];
    for (let t = 0; t <= 1000; t++) h.push({ tNs: t * S, ios: t * 500, committed: Math.floor(t / 10), score: 100 });
    const p = predictExhaustion(h, 300);
    expect(p.arrivals).toBe(100);
    expect(p.ratePerSecond.point).toBeCloseTo(0.1, 10);
    expect(p.timeNs.point / S).toBeCloseTo(3000, 6);
    expect(p.ios.point).toBeCloseTo(3000 * 500, 3);
    expect(p.timeNs.lo).toBeLessThan(p.timeNs.point);
    expect(p.timeNs.hi).toBeGreaterThan(p.timeNs.point);
    expect(p.ios.lo / p.timeNs.lo).toBeCloseTo((500 * S) / S / S, 12); // the same interval, in I/Os
    // evenly spaced arrivals are underdispersed: no widening
    expect(p.dispersion).toBe(1);
  });

  it('with no arrivals the point and the far end are infinite; the near end is what the data cannot rule out', () => {
    const h: HealthSample[] = [];
    for (let t = 0; t <= 100; t++) h.push({ tNs: t * S, ios: t, committed: 7, score: 100 });
    const p = predictExhaustion(h, 1000);
    expect(p.arrivals).toBe(0);
    expect(p.timeNs.point).toBe(Infinity);
    expect(p.timeNs.hi).toBe(Infinity);
    // 90%: lambda_hi = G(0.95; 1) / 100 s = 2.9957 / 100
    expect(p.timeNs.lo / S).toBeCloseTo(1000 / (2.9957 / 100), 0);
  });

  it('bursty arrivals get a dispersion above 1 and a wider interval than a Poisson count of the same size', () => {
    const rng = new Random(5);
    const bursty = poissonHistory(rng, 1, 600, 1000, 10);
    const plain = poissonHistory(new Random(5), 1, 600, 1000, 1);
    expect(dispersionOf(bursty)).toBeGreaterThan(4);
    expect(dispersionOf(plain)).toBeLessThan(1.5);
    const pb = predictExhaustion(bursty, 1000);
    const width = (x: { lo: number; hi: number }): number => Math.log(x.hi / x.lo);
    const pp = predictExhaustion(plain, 1000);
    // about sqrt(dispersion) wider on a log scale
    expect(width(pb.ratePerSecond)).toBeGreaterThan(width(pp.ratePerSecond) * 2);
  });

  it('a window uses only recent samples', () => {
    const h: HealthSample[] = [];
    for (let t = 0; t <= 200; t++) h.push({ tNs: t * S, ios: t, committed: t <= 100 ? 0 : t - 100, score: 100 });
    expect(predictExhaustion(h, 100, { windowNs: 50 * S }).ratePerSecond.point).toBeCloseTo(1, 10);
    expect(predictExhaustion(h, 100).ratePerSecond.point).toBeCloseTo(0.5, 10);
  });
});

describe('health score', () => {
  const base = { spareTotal: 1000, spareUsed: 0, pending: 0, weakWaiting: 0, exhaustionLoNs: Infinity, horizonNs: 30 * DAY };

  it('follows the documented formula', () => {
    expect(healthScore(base)).toBe(100);
    expect(healthScore({ ...base, spareUsed: 250 })).toBe(75);
    expect(healthScore({ ...base, spareUsed: 200, pending: 30, weakWaiting: 20 })).toBe(75);
    expect(healthScore({ ...base, spareUsed: 1000 })).toBe(0);
    expect(healthScore({ ...base, spareUsed: 1200 })).toBe(0);
    // exhaustion risk: halves at most, in proportion to how soon
    expect(healthScore({ ...base, exhaustionLoNs: 0 })).toBe(50);
    expect(healthScore({ ...base, exhaustionLoNs: 15 * DAY })).toBe(75);
    expect(healthScore({ ...base, exhaustionLoNs: 60 * DAY })).toBe(100);
    expect(healthScore({ ...base, spareUsed: 500, exhaustionLoNs: 15 * DAY })).toBe(Math.round(100 * 0.5 * 0.75));
    expect(healthScore({ ...base, spareTotal: 0 })).toBe(0);
  });

  it('trend: the least-squares slope, with a direction', () => {
    const h = (scores: number[]): HealthSample[] => scores.map((score, i) => ({ tNs: i * 60 * S, ios: 0, committed: 0, score }));
    const falling = scoreTrend(h([100, 98, 96, 94, 92]));
    expect(falling.perHour).toBeCloseTo(-120, 6); // -2 per minute
    expect(falling.direction).toBe('declining');
    expect(scoreTrend(h([80, 80, 80])).direction).toBe('stable');
    expect(scoreTrend(h([50, 60])).direction).toBe('improving');
    expect(scoreTrend(h([90])).direction).toBe('stable');
    // only the last samples count
    expect(scoreTrend(h([0, 0, 0, 100, 100, 100]), 3).perHour).toBe(0);
  });
});
