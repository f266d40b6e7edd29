/**
 * Completion-latency recording in nanoseconds.
 *
 * `LatencyStats` keeps the exact moments fio reports (N, min, max, mean,
 * stddev, the latter two by Welford's update as fio does); `LatencyHistogram`
 * adds an HdrHistogram (3 significant digits, lowest discernible value 1 ns)
 * for percentiles, and exact counts for fio's latency_ns/us/ms buckets.
 *
 * The hot path does not call hdr-histogram-js. Measured per record (5M values,
 * a 2-CPU box): the library's JS histograms 146-196 ns (Math.log2/floor/pow
 * per value), packed 770-800 ns, WASM 19-25 ns (and its memory needs a manual
 * `destroy()`), WASM packed 320-340 ns; this class 9.2-9.5 ns, exact moments
 * included, most of it Welford's division. The counts live in a Float64Array
 * laid out exactly like the library's counts array for (lowest=1,
 * highest=2^53-1, 3 digits), indexed with Math.clz32. hdr-histogram-js does the
 * rest: `toHdr()` hands out a library histogram, and `encode()` embeds the
 * standard HdrHistogram V2 compressed encoding, which any HdrHistogram tool
 * reads.
 */
import { JsHistogram, build, decodeFromCompressedBase64, encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/** fio's default `percentile_list`. */
export const FIO_PERCENTILES: readonly number[] = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99];

/** Significant decimal digits kept by the histogram. */
export const SIGNIFICANT_DIGITS = 3;
/** Largest latency that can be recorded (ns); 2^53-1 ns is about 104 days. */
export const MAX_LATENCY_NS = Number.MAX_SAFE_INTEGER;

// Layout for lowest=1 and 3 digits: sub-buckets of 2048 entries, half = 1024.
const SUB_HALF_MAGNITUDE = 10;
const SUB_HALF = 1 << SUB_HALF_MAGNITUDE;
const SUB_MASK = SUB_HALF - 1;
/** Entries that cover every value below 2^32 (the allocation-free fast path). */
const FAST_LENGTH = 21 * SUB_HALF + 2 * SUB_HALF;
/** Entries that cover every value up to 2^53-1. */
const FULL_LENGTH = 42 * SUB_HALF + 2 * SUB_HALF;
const TWO_POW_32 = 4294967296;

/** Index of `v` (an integer in [0, 2^53)) in the HDR counts array. */
export function hdrIndex(v: number): number {
  if (v < 2 * SUB_HALF) return v;
  if (v < TWO_POW_32) {
    const b = 21 - Math.clz32(v);
    return (b << SUB_HALF_MAGNITUDE) + (v >>> b);
  }
  const hi = 63 - Math.clz32(Math.floor(v / TWO_POW_32));
  const b = hi - SUB_HALF_MAGNITUDE;
  return b * SUB_HALF + Math.floor(v / 2 ** b);
}

/** Lowest value that lands in counts entry `i`. */
export function hdrLowest(i: number): number {
  if (i < 2 * SUB_HALF) return i;
  const b = (i >>> SUB_HALF_MAGNITUDE) - 1;
  return ((i & SUB_MASK) + SUB_HALF) * 2 ** b;
}

/** Highest value that lands in counts entry `i`. */
export function hdrHighest(i: number): number {
  if (i < 2 * SUB_HALF) return i;
  const b = (i >>> SUB_HALF_MAGNITUDE) - 1;
  return ((i & SUB_MASK) + SUB_HALF + 1) * 2 ** b - 1;
}

/**
 * Lower bounds (ns) of fio's latency distribution buckets (io_u_lat_n, _u,
 * _m: "2", "4", "10", ... ns, the same in us, then ms up to ">=2000").
 */
export const FIO_LAT_BOUNDS: readonly number[] = [
  ...[0, 2, 4, 10, 20, 50, 100, 250, 500, 750],
  ...[1, 2, 4, 10, 20, 50, 100, 250, 500, 750].map((x) => x * 1e3),
  ...[1, 2, 4, 10, 20, 50, 100, 250, 500, 750, 1000, 2000].map((x) => x * 1e6),
];
const LAT_BOUNDS = new Float64Array(FIO_LAT_BOUNDS);

/**
 * For each HDR entry that starts below a fio boundary and reaches past it, the
 * boundary's number (0 elsewhere). Values landing in such an entry are also
 * counted "below the boundary" when they are, so fio's distribution is exact.
 */
const STRADDLE = new Uint8Array(FULL_LENGTH);
for (let k = 1; k < FIO_LAT_BOUNDS.length; k++) {
  const i = hdrIndex(FIO_LAT_BOUNDS[k]);
  if (hdrLowest(i) < FIO_LAT_BOUNDS[k]) STRADDLE[i] = k;
}

function badLatency(ns: number): RangeError {
  return new RangeError(`latency must be a number of nanoseconds in [0, ${MAX_LATENCY_NS}] (got ${String(ns)})`);
}

function checkedLatency(ns: number): number {
  if (typeof ns !== 'number' || !(ns >= 0) || ns > MAX_LATENCY_NS) throw badLatency(ns);
  return Math.round(ns);
}

/** Shape every latency summary shares (what fio prints for slat/clat/lat). */
export interface LatencyMoments {
  readonly count: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
}

const MAGIC = 0x484c5352; // "RSLH" little-endian
const FORMAT_VERSION = 1;
const KIND_STATS = 0;
const KIND_HISTOGRAM = 1;
const HEADER_BYTES = 48;
const BELOW_BYTES = 8 * 32;

/**
 * Exact running statistics (Welford, as fio does): count, min, max, mean and
 * the sum of squared deviations, mergeable across workers.
 */
export class LatencyStats implements LatencyMoments {
  protected n = 0;
  protected lo = Infinity;
  protected hi = 0;
  protected mu = 0;
  protected m2 = 0;

  /** Record one latency in nanoseconds. */
  record(ns: number): void {
    if (ns >>> 0 !== ns) ns = checkedLatency(ns);
    const n = ++this.n;
    if (ns < this.lo) this.lo = ns;
    if (ns > this.hi) this.hi = ns;
    const d = ns - this.mu;
    this.mu += d / n;
    this.m2 += d * (ns - this.mu);
  }

  get count(): number {
    return this.n;
  }
  get min(): number {
    return this.n === 0 ? 0 : this.lo;
  }
  get max(): number {
    return this.hi;
  }
  get mean(): number {
    return this.mu;
  }
  /** Sample standard deviation (n-1), 0 below two samples — fio's `stddev`. */
  get stddev(): number {
    return this.n > 1 ? Math.sqrt(this.m2 / (this.n - 1)) : 0;
  }

  /** Merge another summary into this one (Chan et al.'s parallel update). */
  add(other: LatencyStats): void {
    this.addMoments(other);
  }

  protected addMoments(other: LatencyStats): void {
    if (other.n === 0) return;
    if (this.n === 0) {
      this.n = other.n;
      this.lo = other.lo;
      this.hi = other.hi;
      this.mu = other.mu;
      this.m2 = other.m2;
      return;
    }
    const n = this.n + other.n;
    const delta = other.mu - this.mu;
    this.mu += (delta * other.n) / n;
    this.m2 += other.m2 + (delta * delta * this.n * other.n) / n;
    this.n = n;
    if (other.lo < this.lo) this.lo = other.lo;
    if (other.hi > this.hi) this.hi = other.hi;
  }

  reset(): void {
    this.n = 0;
    this.lo = Infinity;
    this.hi = 0;
    this.mu = 0;
    this.m2 = 0;
  }

  /** Binary form (e.g. to post from a worker thread); see `decodeLatency`. */
  encode(): Uint8Array {
    return this.encodeWith(KIND_STATS, new Uint8Array(0));
  }

  protected encodeWith(kind: number, payload: Uint8Array): Uint8Array {
    const out = new Uint8Array(HEADER_BYTES + payload.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, MAGIC, true);
    dv.setUint8(4, FORMAT_VERSION);
    dv.setUint8(5, kind);
    dv.setFloat64(8, this.n, true);
    dv.setFloat64(16, this.n === 0 ? 0 : this.lo, true);
    dv.setFloat64(24, this.hi, true);
    dv.setFloat64(32, this.mu, true);
    dv.setFloat64(40, this.m2, true);
    out.set(payload, HEADER_BYTES);
    return out;
  }

  /** The raw moments (m2 is the sum of squared deviations from the mean). */
  moments(): { count: number; min: number; max: number; mean: number; m2: number } {
    return { count: this.n, min: this.min, max: this.hi, mean: this.mu, m2: this.m2 };
  }

  /** Statistics rebuilt from `moments()`. */
  static fromMoments(m: { count: number; min: number; max: number; mean: number; m2: number }): LatencyStats {
    const s = new LatencyStats();
    s.setMoments(m.count, m.min, m.max, m.mean, m.m2);
    return s;
  }

  protected setMoments(n: number, lo: number, hi: number, mu: number, m2: number): void {
    this.n = n;
    this.lo = n === 0 ? Infinity : lo;
    this.hi = hi;
    this.mu = mu;
    this.m2 = m2;
  }

  static decode(bytes: Uint8Array): LatencyStats {
    return decodeLatency(bytes);
  }
}

/**
 * Latency statistics plus an HDR histogram for percentiles. Values below
 * 2^32 ns (4.3 s) take an allocation-free path; larger ones grow the counts
 * array once, up to 2^53-1 ns.
 */
export class LatencyHistogram extends LatencyStats {
  private counts = new Float64Array(FAST_LENGTH);
  /** below[k]: values in boundary k's straddling entry that are < FIO_LAT_BOUNDS[k]. */
  private below = new Float64Array(FIO_LAT_BOUNDS.length);

  override record(ns: number): void {
    if (ns >>> 0 !== ns) {
      this.recordWide(ns);
      return;
    }
    if (ns < 2048) {
      this.counts[ns]++;
    } else {
      const b = 21 - Math.clz32(ns);
      const i = (b << 10) + (ns >>> b);
      this.counts[i]++;
      const k = STRADDLE[i];
      if (k !== 0 && ns < LAT_BOUNDS[k]) this.below[k]++;
    }
    const n = ++this.n;
    if (ns < this.lo) this.lo = ns;
    if (ns > this.hi) this.hi = ns;
    const d = ns - this.mu;
    this.mu += d / n;
    this.m2 += d * (ns - this.mu);
  }

  private recordWide(ns: number): void {
    const v = checkedLatency(ns);
    const i = hdrIndex(v);
    if (i >= this.counts.length) this.grow();
    this.counts[i]++;
    const k = STRADDLE[i];
    if (k !== 0 && v < LAT_BOUNDS[k]) this.below[k]++;
    super.record(v);
  }

  private grow(): void {
    const bigger = new Float64Array(FULL_LENGTH);
    bigger.set(this.counts);
    this.counts = bigger;
  }

  /** Merge a histogram recorded elsewhere (another worker, a decoded one). */
  override add(other: LatencyStats): void {
    if (!(other instanceof LatencyHistogram)) {
      throw new TypeError('cannot merge plain LatencyStats into a LatencyHistogram (no counts)');
    }
    if (other.counts.length > this.counts.length) this.grow();
    const src = other.counts;
    const dst = this.counts;
    for (let i = 0; i < src.length; i++) if (src[i] !== 0) dst[i] += src[i];
    for (let k = 0; k < this.below.length; k++) this.below[k] += other.below[k];
    this.addMoments(other);
  }

  override reset(): void {
    super.reset();
    this.counts = new Float64Array(FAST_LENGTH);
    this.below.fill(0);
  }

  /** Visit every non-empty bucket in ascending order. */
  forEachBucket(fn: (lowest: number, highest: number, count: number) => void): void {
    const c = this.counts;
    const end = this.n === 0 ? 0 : hdrIndex(this.hi) + 1;
    for (let i = 0; i < end; i++) if (c[i] !== 0) fn(hdrLowest(i), hdrHighest(i), c[i]);
  }

  /**
   * Exact counts per fio latency bucket (see FIO_LAT_BOUNDS): entry k counts
   * values in [FIO_LAT_BOUNDS[k], FIO_LAT_BOUNDS[k+1]).
   */
  fioLatencyCounts(): number[] {
    const out = new Array<number>(FIO_LAT_BOUNDS.length).fill(0);
    let k = 0;
    this.forEachBucket((lowest, _highest, c) => {
      while (k + 1 < FIO_LAT_BOUNDS.length && lowest >= FIO_LAT_BOUNDS[k + 1]) k++;
      const s = STRADDLE[hdrIndex(lowest)];
      if (s !== 0) {
        out[s - 1] += this.below[s];
        out[s] += c - this.below[s];
      } else {
        out[k] += c;
      }
    });
    return out;
  }

  /**
   * Values at the given percentiles, in the order given. A percentile p
   * selects the first bucket whose cumulative count reaches p/100*N (fio's and
   * HdrHistogram's rule) and reports that bucket's highest value, clamped to
   * the exact max. 0 for an empty histogram.
   */
  percentiles(list: readonly number[] = FIO_PERCENTILES): number[] {
    for (const p of list) {
      if (typeof p !== 'number' || !(p > 0 && p <= 100)) {
        throw new RangeError(`percentile must be in (0, 100] (got ${String(p)})`);
      }
    }
    const out = new Array<number>(list.length).fill(0);
    if (this.n === 0) return out;
    const order = list.map((p, k) => ({ k, rank: rankOf(p, this.n) })).sort((a, b) => a.rank - b.rank);
    const c = this.counts;
    let sum = 0;
    let j = 0;
    for (let i = 0; i < c.length && j < order.length; i++) {
      if (c[i] === 0) continue;
      sum += c[i];
      while (j < order.length && sum >= order[j].rank) {
        out[order[j].k] = Math.min(hdrHighest(i), this.hi);
        j++;
      }
    }
    return out;
  }

  percentile(p: number): number {
    return this.percentiles([p])[0];
  }

  /** Percentiles keyed the way fio's JSON keys them ("99.000000"), ascending. */
  percentileMap(list: readonly number[] = FIO_PERCENTILES): Record<string, number> {
    const sorted = [...list].sort((a, b) => a - b);
    const values = this.percentiles(sorted);
    const out: Record<string, number> = {};
    sorted.forEach((p, k) => {
      out[p.toFixed(6)] = values[k];
    });
    return out;
  }

  /** A hdr-histogram-js histogram (JS, 64-bit counts) with the same counts. */
  toHdr(): JsHistogram {
    const h = build({
      bitBucketSize: 64,
      lowestDiscernibleValue: 1,
      highestTrackableValue: MAX_LATENCY_NS,
      numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
      autoResize: false,
    }) as JsHistogram;
    // Same layout (checked by the tests), so the counts copy over index by index.
    const c = this.counts;
    const end = this.n === 0 ? 0 : hdrIndex(this.hi) + 1;
    for (let i = 0; i < end; i++) if (c[i] !== 0) h.setCountAtIndex(i, c[i]);
    h.establishInternalTackingValues(end);
    return h;
  }

  /** The counts as a standard HdrHistogram V2 compressed base64 string ("HISTF..."). */
  toHdrBase64(): string {
    return encodeIntoCompressedBase64(this.toHdr());
  }

  override encode(): Uint8Array {
    const hdr = Buffer.from(this.toHdrBase64(), 'base64');
    const payload = new Uint8Array(BELOW_BYTES + hdr.length);
    const dv = new DataView(payload.buffer);
    for (let k = 0; k < this.below.length; k++) dv.setFloat64(k * 8, this.below[k], true);
    payload.set(hdr, BELOW_BYTES);
    return this.encodeWith(KIND_HISTOGRAM, payload);
  }

  static override decode(bytes: Uint8Array): LatencyHistogram {
    const h = decodeLatency(bytes);
    if (!(h instanceof LatencyHistogram)) {
      throw new TypeError('latency decode: the bytes hold plain statistics, not a histogram');
    }
    return h;
  }

  /** @internal */
  static fromParts(hdr: JsHistogram, below: Float64Array, n: number, lo: number, hi: number, mu: number, m2: number): LatencyHistogram {
    if (hdr.numberOfSignificantValueDigits !== SIGNIFICANT_DIGITS || hdr.lowestDiscernibleValue !== 1) {
      throw new RangeError(
        `latency decode: HDR payload has ${hdr.numberOfSignificantValueDigits} digits and lowest value ` +
          `${hdr.lowestDiscernibleValue}; only ${SIGNIFICANT_DIGITS} digits with lowest value 1 are supported`,
      );
    }
    const out = new LatencyHistogram();
    if (hdr.countsArrayLength > FAST_LENGTH) out.grow();
    if (hdr.countsArrayLength > out.counts.length) {
      throw new RangeError('latency decode: HDR payload covers values above 2^53-1 ns');
    }
    let total = 0;
    for (let i = 0; i < hdr.countsArrayLength; i++) {
      const c = hdr.getCountAtIndex(i);
      if (c !== 0) {
        out.counts[i] = c;
        total += c;
      }
    }
    if (total !== n) {
      throw new RangeError(`latency decode: histogram holds ${total} values but the header says ${n}`);
    }
    for (let k = 0; k < below.length; k++) {
      const b = below[k];
      const i = hdrIndex(FIO_LAT_BOUNDS[k]);
      const room = STRADDLE[i] === k && k !== 0 && i < out.counts.length ? out.counts[i] : 0;
      if (!(Number.isInteger(b) && b >= 0 && b <= room)) {
        throw new RangeError(`latency decode: bad boundary count ${b} for fio latency bucket ${k}`);
      }
      out.below[k] = b;
    }
    out.setMoments(n, lo, hi, mu, m2);
    return out;
  }
}

/** Rank (1-based) that percentile p selects among n values. */
function rankOf(p: number, n: number): number {
  const x = (p * n) / 100;
  const r = Math.round(x);
  // p*n/100 lands a hair above an integer for p = 99.9 and the like; treat it as that integer.
  const rank = Math.abs(x - r) <= 1e-9 * Math.max(1, x) ? r : Math.ceil(x);
  return Math.max(1, rank);
}

/** Decode what `LatencyStats.encode` / `LatencyHistogram.encode` produced. */
export function decodeLatency(bytes: Uint8Array): LatencyStats | LatencyHistogram {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('latency decode: expected a Uint8Array');
  if (bytes.length < HEADER_BYTES) {
    throw new RangeError(`latency decode: need at least ${HEADER_BYTES} bytes (got ${bytes.length})`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw new RangeError('latency decode: bad magic (not a remapsim latency record)');
  const version = dv.getUint8(4);
  if (version !== FORMAT_VERSION) {
    throw new RangeError(`latency decode: format version ${version} is not supported (expected ${FORMAT_VERSION})`);
  }
  const kind = dv.getUint8(5);
  const n = dv.getFloat64(8, true);
  const lo = dv.getFloat64(16, true);
  const hi = dv.getFloat64(24, true);
  const mu = dv.getFloat64(32, true);
  const m2 = dv.getFloat64(40, true);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`latency decode: bad count ${n}`);
  if (n > 0 && !(lo >= 0 && hi >= lo && hi <= MAX_LATENCY_NS)) {
    throw new RangeError(`latency decode: bad min/max ${lo}/${hi}`);
  }
  if (!Number.isFinite(mu) || !(m2 >= 0)) throw new RangeError('latency decode: bad mean or variance');
  if (kind === KIND_STATS) {
    if (bytes.length !== HEADER_BYTES) throw new RangeError('latency decode: trailing bytes after statistics');
    return LatencyStats.fromMoments({ count: n, min: lo, max: hi, mean: mu, m2 });
  }
  if (kind !== KIND_HISTOGRAM) throw new RangeError(`latency decode: unknown record kind ${kind}`);
  if (bytes.length < HEADER_BYTES + BELOW_BYTES) {
    throw new RangeError(`latency decode: histogram record truncated (${bytes.length} bytes)`);
  }
  const below = new Float64Array(FIO_LAT_BOUNDS.length);
  for (let k = 0; k < below.length; k++) below[k] = dv.getFloat64(HEADER_BYTES + 8 * k, true);
  let hdr: Histogram;
  try {
    hdr = decodeFromCompressedBase64(Buffer.from(bytes.subarray(HEADER_BYTES + BELOW_BYTES)).toString('base64'), 64);
  } catch (e) {
    throw new RangeError(`latency decode: bad HDR payload: ${(e as Error).message}`);
  }
  if (!(hdr instanceof JsHistogram)) throw new RangeError('latency decode: unexpected HDR histogram type');
  return LatencyHistogram.fromParts(hdr, below, n, lo, hi, mu, m2);
}
