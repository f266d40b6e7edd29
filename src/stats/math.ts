/**
 * The few special functions the prediction needs: log-gamma (Lanczos), the
 * regularized lower incomplete gamma P(a, x) (series below a + 1, continued
 * fraction above), its inverse, and the exact (Garwood) confidence interval of
 * a Poisson rate built on them.
 */

const LANCZOS = [
  676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
  1.5056327351493116e-7,
];

export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = 0.99999999999980993;
  const t = z + 7.5;
  for (let i = 0; i < LANCZOS.length; i++) a += LANCZOS[i]! / (z + i + 1);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized lower incomplete gamma P(a, x) for a > 0, x >= 0. */
export function gammaP(a: number, x: number): number {
  if (!(a > 0)) throw new RangeError(`gammaP: a must be > 0, got ${a}`);
  if (x <= 0) return 0;
  if (x === Infinity) return 1;
  const lead = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 10_000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return Math.min(1, sum * Math.exp(lead));
  }
  // Q(a, x) by the continued fraction (modified Lentz)
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.max(0, 1 - Math.exp(lead) * h);
}

// A simulation campaign asks for a few hundred (p, a) pairs tens of thousands of times (70 per
// run of loss-5y, ~6 us each): the answers are kept, p first (a handful of confidence levels).
const quantiles = new Map<number, Map<number, number>>();
const KEPT_LEVELS = 16;
const KEPT_SHAPES = 4096;

/** x with P(a, x) = p: the p-quantile of Gamma(shape a, scale 1). */
export function gammaQuantile(p: number, a: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`gammaQuantile: p must be in [0, 1], got ${p}`);
  if (p === 0) return 0;
  if (p === 1) return Infinity;
  let byShape = quantiles.get(p);
  if (byShape === undefined) {
    if (quantiles.size >= KEPT_LEVELS) quantiles.clear();
    byShape = new Map();
    quantiles.set(p, byShape);
  }
  const known = byShape.get(a);
  if (known !== undefined) return known;
  const x = bisectGammaQuantile(p, a);
  if (byShape.size >= KEPT_SHAPES) byShape.clear();
  byShape.set(a, x);
  return x;
}

function bisectGammaQuantile(p: number, a: number): number {
  let lo = 0;
  let hi = Math.max(1, a);
  while (gammaP(a, hi) < p) hi *= 2;
  // bisection to full double precision (a few dozen steps)
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (gammaP(a, mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface RateInterval {
  /** Events per unit of exposure. */
  point: number;
  lo: number;
  hi: number;
  confidence: number;
}

/**
 * Garwood's exact two-sided interval for a Poisson rate: n events in
 * `exposure` units. lo = G(α/2; n) / t, hi = G(1 - α/2; n + 1) / t, with G
 * the Gamma(shape, 1) quantile (χ²(2n)/2). `dispersion` φ >= 1 widens it for
 * overdispersed (clustered) counts by treating them as n/φ events in t/φ
 * (quasi-Poisson): the point estimate stays n/t.
 */
export function poissonRateInterval(n: number, exposure: number, confidence = 0.9, dispersion = 1): RateInterval {
  if (!(exposure > 0)) return { point: NaN, lo: 0, hi: Infinity, confidence };
  const phi = Math.max(1, dispersion);
  const ne = n / phi;
  const te = exposure / phi;
  const alpha = 1 - confidence;
  return {
    point: n / exposure,
    lo: ne > 0 ? gammaQuantile(alpha / 2, ne) / te : 0,
    hi: gammaQuantile(1 - alpha / 2, ne + 1) / te,
    confidence,
  };
}
