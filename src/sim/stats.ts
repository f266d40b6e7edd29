/**
 * The statistics a campaign reports and the closed forms it is checked
 * against. Pure.
 */
import { gammaP, gammaQuantile, poissonRateInterval } from '../stats/math.js';

export interface Interval {
  point: number;
  lo: number;
  hi: number;
}

/** z of a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

/** Wilson's score interval for a proportion: k successes in n trials (95% by default). */
export function wilson(k: number, n: number, z = Z95): Interval {
  if (n <= 0) return { point: 0, lo: 0, hi: 1 };
  const p = k / n;
  const z2 = z * z;
  const den = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / den;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / den;
  return { point: p, lo: k === 0 ? 0 : Math.max(0, centre - half), hi: k === n ? 1 : Math.min(1, centre + half) };
}

/** The q-quantile of ascending values (linear between order statistics, R's type 7). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** An exact (Garwood) 95% interval of a Poisson rate: `count` events over `exposure` units. */
export function rateInterval(count: number, exposure: number): Interval {
  const r = poissonRateInterval(count, exposure, 0.95, 1);
  return { point: exposure > 0 ? count / exposure : 0, lo: r.lo, hi: r.hi };
}

/** P(T <= t) for T ~ Erlang(k, rate): the time of the k-th event of a Poisson process. */
export function erlangCdf(k: number, rate: number, t: number): number {
  return gammaP(k, rate * t);
}

export function erlangQuantile(k: number, rate: number, p: number): number {
  return gammaQuantile(p, k) / rate;
}

/**
 * Errors arriving uniformly at random, a sequential scan that reaches any
 * block once per period T, and reads of each block at rate r: the share of
 * errors a read finds before the scan does, P(Exp(r) < U(0, T)).
 */
export function userFirstShare(rT: number): number {
  if (rT <= 0) return 0;
  return 1 - (1 - Math.exp(-rT)) / rT;
}

/** Two-sided Kolmogorov-Smirnov statistic of a sample against a CDF. */
export function ksStatistic(sample: readonly number[], cdf: (x: number) => number): number {
  const s = [...sample].sort((a, b) => a - b);
  let d = 0;
  s.forEach((x, i) => {
    const f = cdf(x);
    d = Math.max(d, Math.abs((i + 1) / s.length - f), Math.abs(f - i / s.length));
  });
  return d;
}

/** The KS statistic's critical value at 5% for a sample of n (asymptotic, good for n >= 35). */
export function ksCritical05(n: number): number {
  return 1.358 / Math.sqrt(n);
}
