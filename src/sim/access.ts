/**
 * Where the workload's I/Os land, as a rate per grain (one request-sized,
 * request-aligned piece of the device), so the simulator can follow the few
 * grains whose state matters and count the rest in bulk.
 *
 *   uniform   every grain gets iops / grains.
 *   zipf(θ)   the grain of popularity rank k (0 = hottest) gets iops · p(k),
 *             where p is the distribution fio's zipf generator (and
 *             src/workload/distribution.ts, which the real-time mode runs)
 *             actually draws from: Gray et al.'s method, rank 1 and 2 exact,
 *             the rest from its closed form. Ranks are scattered over the
 *             device by a keyed permutation (fio scatters them by a hash),
 *             so a grain's rank is known both ways: the rate of a grain a
 *             fault hit, and the grain of a rank drawn for an I/O.
 */
import type { Random } from '../util/random.js';
import { ZipfBlocks, zipfZeta } from '../workload/distribution.js';

export type AccessPattern = { kind: 'uniform' } | { kind: 'zipf'; theta: number };

/**
 * A keyed bijection of [0, n): a 4-round Feistel network over the next
 * power-of-two domain, walked until it lands inside (cycle walking).
 */
export class Permutation {
  private readonly halfBits: number;
  private readonly mask: number;
  private readonly keys: number[];

  constructor(
    readonly n: number,
    seed: number,
  ) {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`permutation size must be a positive integer, got ${n}`);
    const bits = Math.max(2, Math.ceil(Math.log2(n)));
    this.halfBits = Math.ceil(bits / 2);
    this.mask = 2 ** this.halfBits - 1;
    this.keys = [0, 1, 2, 3].map((i) => mix32(seed ^ Math.imul(i + 1, 0x9e3779b9)));
  }

  private round(x: number, k: number): number {
    return mix32(x ^ k) & this.mask;
  }

  private encrypt(x: number): number {
    const h = 2 ** this.halfBits;
    let l = Math.floor(x / h);
    let r = x % h;
    for (const k of this.keys) {
      const t = r;
      r = (l ^ this.round(r, k)) & this.mask;
      l = t;
    }
    return l * h + r;
  }

  private decrypt(x: number): number {
    const h = 2 ** this.halfBits;
    let l = Math.floor(x / h);
    let r = x % h;
    for (let i = this.keys.length - 1; i >= 0; i--) {
      const t = l;
      l = (r ^ this.round(l, this.keys[i]!)) & this.mask;
      r = t;
    }
    return l * h + r;
  }

  forward(x: number): number {
    let y = this.encrypt(x);
    while (y >= this.n) y = this.encrypt(y);
    return y;
  }

  inverse(y: number): number {
    let x = this.decrypt(y);
    while (x >= this.n) x = this.decrypt(x);
    return x;
  }
}

function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * P(rank ≤ v) for fio's zipf generator over n ranks (v in 1..n, 1-based):
 * u < 1/ζ gives rank 1, u < (1 + 2^-θ)/ζ rank 2, beyond that
 * rank = 1 + floor(n · (ηu − η + 1)^(1/(1−θ))), which is ≤ v exactly when
 * u < 1 − (1 − (v/n)^(1−θ)) / η (for θ below and above 1 alike).
 */
export function zipfCdf(v: number, n: number, theta: number): number {
  if (v <= 0) return 0;
  if (v >= n) return 1;
  const zetan = zipfZeta(n, theta);
  const second = 1 + Math.pow(0.5, theta);
  const eta = (1 - Math.pow(2 / n, 1 - theta)) / (1 - second / zetan);
  let p = 1 / zetan;
  if (v >= 2) p = second / zetan;
  const u = 1 - (1 - Math.pow(v / n, 1 - theta)) / eta;
  if (u > second / zetan) p = Math.min(1, u);
  return Math.min(1, p);
}

export class Access {
  readonly grains: number;
  private readonly perm: Permutation | undefined;
  private zipf: ZipfBlocks | undefined;

  constructor(
    readonly pattern: AccessPattern,
    grains: number,
    seed: number,
  ) {
    this.grains = grains;
    if (pattern.kind === 'zipf') this.perm = new Permutation(grains, seed);
  }

  /** The share of all I/Os that land on `grain`. */
  share(grain: number): number {
    if (this.pattern.kind === 'uniform') return 1 / this.grains;
    const rank = this.perm!.forward(grain) + 1;
    const { theta } = this.pattern;
    return zipfCdf(rank, this.grains, theta) - zipfCdf(rank - 1, this.grains, theta);
  }

  /** A grain drawn with probability share(grain). */
  draw(rng: Random): number {
    if (this.pattern.kind === 'uniform') return rng.int(this.grains);
    this.zipf ??= new ZipfBlocks(this.grains, this.pattern.theta, rng, 0);
    return this.perm!.inverse(this.zipf.nextRank());
  }
}
