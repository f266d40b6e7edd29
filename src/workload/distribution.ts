/**
 * Block-index distributions for random I/O, as fio defines them (lib/zipf.c,
 * lib/gauss.c, re-implemented from their description):
 *
 * - zipf(θ): rank k is drawn with probability ∝ 1/k^θ (Gray et al.'s
 *   "quickly generating billion-record synthetic databases" method, with
 *   zeta(n, θ) summed over at most 10M terms as fio does);
 * - pareto(h): rank = (n-1) · u^(log h / log(1-h)), so h=0.9 sends about 90%
 *   of the I/O to 10% of the blocks;
 * - normal(dev): the mean of 12 uniform draws (a bell curve over ranks),
 *   widened by a uniform jitter of dev% of the range.
 *
 * In all three the rank is then scattered over the device with fio's
 * multiplicative hash (rank · 0x9e37fffffffc0001 mod 2^64) plus an offset,
 * modulo n: the popular blocks are spread out, not packed at the start. The
 * offset is random unless a center (0..1) is given. The random number
 * generator is ours, so the sequence differs from fio's, but the shape is
 * the same: the test suite compares the skew with fio 3.33's own output.
 */
import type { Random } from '../util/random.js';

export type Distribution =
  | { kind: 'random' }
  | { kind: 'zipf'; theta: number; center?: number }
  | { kind: 'pareto'; h: number; center?: number }
  | { kind: 'normal'; dev: number; center?: number };

/** Draws block indexes in [0, n). */
export interface BlockDistribution {
  readonly n: number;
  next(): number;
}

const TWO32 = 4294967296;
const U32_MAX = 4294967295;
// fio's GR_PRIME_64 = 0x9e37fffffffc0001 = 0x9e380000·2^32 - 2^18 + 1
const P_HI_PLUS_1 = 0x9e380000;
const P_BIG = 0x9e37fffffffc0001n;
const MASK64 = (1n << 64n) - 1n;
const SMALL_N = 2 ** 26;

/** (a · b) mod n without losing precision, for a, b < n ≤ 2^32. */
function mulMod32(a: number, b: number, n: number): number {
  const bh = Math.floor(b / 65536);
  const bl = b % 65536;
  let t = (a * bh) % n;
  t = (t * 65536) % n;
  return (t + a * bl) % n;
}

/**
 * fio's scatter: ((val · GR_PRIME_64 mod 2^64) + off) mod 2^64 mod n,
 * computed exactly. The fast path needs val, off < 2^32 and n ≤ 2^32
 * (16 TiB of 4 KiB blocks); beyond that it falls back to BigInt.
 */
export function fioHashMod(val: number, off: number, n: number): number {
  if (val >= TWO32 || n > TWO32 || off >= TWO32) {
    const h = (((BigInt(val) * P_BIG) & MASK64) + BigInt(off)) & MASK64;
    return Number(h % BigInt(n));
  }
  // val·P = val·0x9e380000·2^32 - (val·2^18 - val), all mod 2^64
  const d = val * 262144 - val; // < 2^50, exact
  const dHi = Math.floor(d / TWO32);
  const dLo = d - dHi * TWO32;
  let lo = dLo === 0 ? 0 : TWO32 - dLo;
  let hi = (Math.imul(val, P_HI_PLUS_1) - dHi - (dLo === 0 ? 0 : 1)) >>> 0;
  lo += off;
  if (lo >= TWO32) {
    lo -= TWO32;
    hi = (hi + 1) >>> 0;
  }
  if (n <= SMALL_N) return ((hi % n) * (TWO32 % n) + lo) % n; // < 2^52 + 2^33: exact
  return (mulMod32(hi % n, TWO32 % n, n) + (lo % n)) % n;
}

export class UniformBlocks implements BlockDistribution {
  constructor(
    readonly n: number,
    private readonly rng: Random,
  ) {}

  next(): number {
    return this.rng.int(this.n);
  }
}

const ZIPF_MAX_TERMS = 10_000_000;
const zetaCache = new Map<string, number>();

/** Σ_{i=1..min(n,10M)} 1/i^θ, cached: a 10M-term sum takes a few hundred milliseconds. */
export function zipfZeta(n: number, theta: number): number {
  const key = `${n}:${theta}`;
  let z = zetaCache.get(key);
  if (z === undefined) {
    z = 0;
    const terms = Math.min(n, ZIPF_MAX_TERMS);
    for (let i = 1; i <= terms; i++) z += Math.pow(i, -theta);
    zetaCache.set(key, z);
  }
  return z;
}

function startOffset(n: number, center: number | undefined, rng: Random): number {
  return center === undefined ? rng.nextU32() : Math.floor(n * center);
}

export class ZipfBlocks implements BlockDistribution {
  private readonly alpha: number;
  private readonly eta: number;
  private readonly zetan: number;
  private readonly second: number;
  private readonly off: number;

  constructor(
    readonly n: number,
    readonly theta: number,
    private readonly rng: Random,
    center?: number,
  ) {
    this.off = startOffset(n, center, rng);
    this.zetan = zipfZeta(n, theta);
    const zeta2 = 1 + Math.pow(0.5, theta);
    this.alpha = 1 / (1 - theta);
    this.eta = (1 - Math.pow(2 / n, 1 - theta)) / (1 - zeta2 / this.zetan);
    this.second = zeta2;
  }

  /** The rank (0 = most popular) before scattering. */
  nextRank(): number {
    const u = this.rng.nextU32() / U32_MAX;
    const z = u * this.zetan;
    let val: number;
    if (z < 1) val = 1;
    else if (z < this.second) val = 2;
    else {
      val = 1 + Math.floor(this.n * Math.pow(this.eta * u - this.eta + 1, this.alpha));
      if (!(val <= this.n)) val = this.n; // NaN or overshoot when zeta was truncated
    }
    return val - 1;
  }

  next(): number {
    return fioHashMod(this.nextRank(), this.off, this.n);
  }
}

export class ParetoBlocks implements BlockDistribution {
  private readonly power: number;
  private readonly off: number;

  constructor(
    readonly n: number,
    readonly h: number,
    private readonly rng: Random,
    center?: number,
  ) {
    this.off = startOffset(n, center, rng);
    this.power = Math.log(h) / Math.log(1 - h);
  }

  nextRank(): number {
    const u = this.rng.nextU32() / U32_MAX;
    return Math.floor((this.n - 1) * Math.pow(u, this.power));
  }

  next(): number {
    return fioHashMod(this.nextRank(), this.off, this.n);
  }
}

const GAUSS_ITERS = 12;

export class NormalBlocks implements BlockDistribution {
  private readonly stddev: number;
  private readonly off: number;

  constructor(
    readonly n: number,
    readonly dev: number,
    private readonly rng: Random,
    center?: number,
  ) {
    let s = dev === 0 ? 0 : Math.ceil((n * dev) / 100);
    if (s > Math.floor(n / 2)) s = Math.floor(n / 2);
    this.stddev = s;
    this.off = center === undefined ? 0 : ((Math.trunc(n * (center - 0.5)) % n) + n) % n;
  }

  nextRank(): number {
    const m = this.n + 1;
    let sum = 0;
    if (m <= TWO32) for (let i = 0; i < GAUSS_ITERS; i++) sum += this.rng.nextU32() % m;
    else for (let i = 0; i < GAUSS_ITERS; i++) sum += this.rng.int(m);
    sum = Math.floor((sum + GAUSS_ITERS - 1) / GAUSS_ITERS);
    if (this.stddev !== 0) {
      let d = Math.floor(this.stddev * (this.rng.nextU32() / TWO32)) - Math.trunc(this.stddev / 2);
      // fio halves the jitter until the result lands inside [0, n); the mean
      // itself can be n, where fio would loop forever, so stop at no jitter
      while (d !== 0 && (sum + d >= this.n || sum + d < 0)) d = Math.trunc(d / 2);
      sum += d;
    }
    return sum;
  }

  next(): number {
    return fioHashMod(this.nextRank(), this.off, this.n);
  }
}

export function createDistribution(dist: Distribution, n: number, rng: Random): BlockDistribution {
  switch (dist.kind) {
    case 'random':
      return new UniformBlocks(n, rng);
    case 'zipf':
      return new ZipfBlocks(n, dist.theta, rng, dist.center);
    case 'pareto':
      return new ParetoBlocks(n, dist.h, rng, dist.center);
    case 'normal':
      return new NormalBlocks(n, dist.dev, rng, dist.center);
  }
}
