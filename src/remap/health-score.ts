/**
 * The health score, its trend, and when the spare runs out. Pure functions of
 * a history of samples, so they can be checked on synthetic histories.
 *
 * Spare exhaustion. Every block that takes a spare block (a remap, a block
 * marked pending, a weak block waiting to be moved) is an arrival; arrivals
 * are counted as a Poisson process over the window. With n arrivals in t
 * seconds (and over I foreground I/Os) and R spare blocks left:
 *   rate  λ = n / t, interval [λlo, λhi] = Garwood's exact interval at the
 *         chosen confidence (90% by default), widened by the dispersion φ of
 *         the per-sample counts (Pearson χ² / degrees of freedom, at least 1),
 *         because latent errors arrive in bursts and a plain Poisson interval
 *         would be too narrow;
 *   time  to exhaustion R / λ, interval [R / λhi, R / λlo];
 *   I/Os  to exhaustion R · I / n, interval from the same count on I/Os.
 * No arrival yet: the point and the upper end are infinite; the lower end is
 * R / λhi (the earliest exhaustion the data cannot rule out).
 *
 * The score, 0..100 (100 = healthy):
 *   committed c = min(1, (spare used + pending + weak not yet moved) / spare total)
 *   risk      r = clamp(1 - Tlo / horizon, 0, 1) where Tlo is the lower end of the
 *                 time-to-exhaustion interval (0 when nothing has arrived yet,
 *                 since one observation window says little)
 *   score     = round(100 · (1 - c) · (1 - r / 2))
 * Spare headroom falls linearly as blocks are used or owed (a full spare is
 * 0); a spare predicted to run out within the horizon loses up to half of
 * what is left, in proportion to how soon the earliest plausible exhaustion
 * is. The horizon defaults to 30 days; compressed-time simulations set their own.
 *
 * The trend is the least-squares slope of the score over the last samples
 * (points per hour), called declining / improving when the fitted change over
 * that window is at least one point.
 */
import { poissonRateInterval, type RateInterval } from '../stats/math.js';

export interface HealthSample {
  /** Clock reading, ns. */
  tNs: number;
  /** Foreground I/Os so far. */
  ios: number;
  /** Spare blocks used or owed so far (remaps + pending + weak waiting). */
  committed: number;
  score: number;
}

export interface ScoreInputs {
  spareTotal: number;
  spareUsed: number;
  pending: number;
  /** Weak blocks found but not moved (e.g. the spare was full). */
  weakWaiting: number;
  /** Lower end of the time-to-exhaustion interval, ns (Infinity when no arrivals). */
  exhaustionLoNs: number;
  horizonNs: number;
}

export const DEFAULT_HORIZON_NS = 30 * 86400e9;
export const DEFAULT_CONFIDENCE = 0.9;

export const SCORE_FORMULA =
  'round(100 * (1 - c) * (1 - r/2)), c = min(1, (spare used + pending + weak waiting) / spare total), r = clamp(1 - Tlo/horizon, 0, 1), Tlo = earliest spare exhaustion in the interval';

export function healthScore(i: ScoreInputs): number {
  if (!(i.spareTotal > 0)) return 0;
  const c = Math.min(1, Math.max(0, (i.spareUsed + i.pending + i.weakWaiting) / i.spareTotal));
  const r = Number.isFinite(i.exhaustionLoNs) ? Math.min(1, Math.max(0, 1 - i.exhaustionLoNs / i.horizonNs)) : 0;
  return Math.round(100 * (1 - c) * (1 - r / 2));
}

export interface Interval {
  point: number;
  lo: number;
  hi: number;
}

export interface ExhaustionPrediction {
  /** Arrivals (spare blocks newly used or owed) in the window. */
  arrivals: number;
  windowNs: number;
  windowIos: number;
  remaining: number;
  confidence: number;
  dispersion: number;
  /** Arrivals per second. */
  ratePerSecond: RateInterval;
  /** Time until the spare is used up, ns (Infinity: not within what the data shows). */
  timeNs: Interval;
  /** Foreground I/Os until the spare is used up. */
  ios: Interval;
}

/** Counts per sample interval -> Pearson dispersion (>= 1; 1 with fewer than 3 intervals). */
export function dispersionOf(samples: readonly HealthSample[]): number {
  if (samples.length < 4) return 1;
  const total = samples[samples.length - 1]!.tNs - samples[0]!.tNs;
  let n = 0;
  for (let i = 1; i < samples.length; i++) n += Math.max(0, samples[i]!.committed - samples[i - 1]!.committed);
  if (n === 0 || total <= 0) return 1;
  const rate = n / total;
  let chi2 = 0;
  let k = 0;
  for (let i = 1; i < samples.length; i++) {
    const d = samples[i]!.tNs - samples[i - 1]!.tNs;
    if (d <= 0) continue;
    const x = Math.max(0, samples[i]!.committed - samples[i - 1]!.committed);
    const e = rate * d;
    chi2 += ((x - e) * (x - e)) / e;
    k++;
  }
  return k > 1 ? Math.max(1, chi2 / (k - 1)) : 1;
}

function divideInterval(remaining: number, r: { point: number; lo: number; hi: number }): Interval {
  if (remaining <= 0) return { point: 0, lo: 0, hi: 0 };
  const div = (rate: number): number => (rate > 0 ? remaining / rate : Infinity);
  return { point: div(r.point), lo: div(r.hi), hi: div(r.lo) };
}

/**
 * Predicts spare exhaustion from the samples in the window (the last
 * `windowNs`, default all of them) and the spare blocks left.
 */
export function predictExhaustion(
  samples: readonly HealthSample[],
  remaining: number,
  opts: { confidence?: number; windowNs?: number } = {},
): ExhaustionPrediction {
  const confidence = opts.confidence ?? DEFAULT_CONFIDENCE;
  let from = 0;
  if (opts.windowNs !== undefined && samples.length > 0) {
    const start = samples[samples.length - 1]!.tNs - opts.windowNs;
    while (from < samples.length - 1 && samples[from]!.tNs < start) from++;
  }
  const w = samples.slice(from);
  const first = w[0];
  const last = w[w.length - 1];
  let n = 0;
  for (let i = 1; i < w.length; i++) n += Math.max(0, w[i]!.committed - w[i - 1]!.committed);
  const windowNs = first && last ? last.tNs - first.tNs : 0;
  const windowIos = first && last ? last.ios - first.ios : 0;
  const phi = dispersionOf(w);
  const perNs = poissonRateInterval(n, windowNs, confidence, phi);
  const perSecond: RateInterval = { point: perNs.point * 1e9, lo: perNs.lo * 1e9, hi: perNs.hi * 1e9, confidence };
  const perIo = poissonRateInterval(n, windowIos, confidence, phi);
  const point = (x: number): number => (Number.isNaN(x) ? 0 : x);
  return {
    arrivals: n,
    windowNs,
    windowIos,
    remaining,
    confidence,
    dispersion: phi,
    ratePerSecond: { ...perSecond, point: point(perSecond.point) },
    timeNs: divideInterval(remaining, { point: point(perNs.point), lo: perNs.lo, hi: perNs.hi }),
    ios: divideInterval(remaining, { point: point(perIo.point), lo: perIo.lo, hi: perIo.hi }),
  };
}

export interface Trend {
  /** Score points per hour (least squares over the window). */
  perHour: number;
  direction: 'declining' | 'stable' | 'improving';
  samples: number;
  windowNs: number;
}

/** The score's slope over the last `maxSamples` samples. */
export function scoreTrend(samples: readonly HealthSample[], maxSamples = 30): Trend {
  const w = samples.slice(-maxSamples);
  const k = w.length;
  if (k < 2) return { perHour: 0, direction: 'stable', samples: k, windowNs: 0 };
  const t0 = w[0]!.tNs;
  let st = 0;
  let ss = 0;
  for (const s of w) {
    st += s.tNs - t0;
    ss += s.score;
  }
  const mt = st / k;
  const ms = ss / k;
  let num = 0;
  let den = 0;
  for (const s of w) {
    const dt = s.tNs - t0 - mt;
    num += dt * (s.score - ms);
    den += dt * dt;
  }
  const windowNs = w[k - 1]!.tNs - t0;
  const perNs = den > 0 ? num / den : 0;
  const change = perNs * windowNs;
  return { perHour: perNs * 3600e9, direction: change <= -1 ? 'declining' : change >= 1 ? 'improving' : 'stable', samples: k, windowNs };
}

/** Infinity -> null, for JSON. */
export function finiteOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}
