/**
 * Per-interval (default per-second) bytes and I/O counts for each direction,
 * fed by completions with a timestamp, and the bandwidth / IOPS samples fio
 * derives from them.
 */

export const DIRECTIONS = ['read', 'write', 'trim'] as const;
export type Direction = (typeof DIRECTIONS)[number];
/** Direction as the hot path takes it: 0 = read, 1 = write, 2 = trim. */
export type DirIndex = 0 | 1 | 2;
export const DIR_READ: DirIndex = 0;
export const DIR_WRITE: DirIndex = 1;
export const DIR_TRIM: DirIndex = 2;

export function dirIndex(d: Direction): DirIndex {
  const i = DIRECTIONS.indexOf(d);
  if (i < 0) throw new RangeError(`direction must be one of ${DIRECTIONS.join(', ')} (got ${String(d)})`);
  return i as DirIndex;
}

/** What fio prints for a set of bw or iops samples. */
export interface SampleStats {
  samples: number;
  min: number;
  max: number;
  mean: number;
  /** Sample standard deviation (n-1); 0 below two samples. */
  stddev: number;
}

export function sampleStats(values: readonly number[]): SampleStats {
  const n = values.length;
  if (n === 0) return { samples: 0, min: 0, max: 0, mean: 0, stddev: 0 };
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  const mean = sum / n;
  let s = 0;
  for (const v of values) s += (v - mean) * (v - mean);
  return { samples: n, min, max, mean, stddev: n > 1 ? Math.sqrt(s / (n - 1)) : 0 };
}

/** Plain-data form of an IoSeries (JSON- and structured-clone-safe). */
export interface IoSeriesJSON {
  startNs: number;
  intervalNs: number;
  read: { bytes: number[]; ios: number[] };
  write: { bytes: number[]; ios: number[] };
  trim: { bytes: number[]; ios: number[] };
}

// Per interval: bytes[read, write, trim], ios[read, write, trim].
const STRIDE = 6;

export class IoSeries {
  readonly startNs: number;
  readonly intervalNs: number;
  private readonly intervalMs: number;
  private data: Float64Array;
  private used = 0;

  /**
   * @param startNs clock reading (ns) at which interval 0 begins
   * @param intervalNs interval length; a whole number of milliseconds (fio's
   *   bw_avg_time / iops_avg_time are in ms). Default 1 s.
   */
  constructor(startNs: number, intervalNs = 1e9) {
    if (typeof startNs !== 'number' || !Number.isFinite(startNs)) {
      throw new RangeError(`startNs must be a finite number (got ${String(startNs)})`);
    }
    if (typeof intervalNs !== 'number' || !(intervalNs >= 1e6) || intervalNs % 1e6 !== 0 || intervalNs > 2 ** 53) {
      throw new RangeError(`intervalNs must be a positive whole number of milliseconds (got ${String(intervalNs)})`);
    }
    this.startNs = startNs;
    this.intervalNs = intervalNs;
    this.intervalMs = intervalNs / 1e6;
    this.data = new Float64Array(STRIDE * 64);
  }

  /**
   * Count one completion of `bytes` in direction `dir` at clock time `nowNs`.
   * Completions stamped before `startNs` count in interval 0.
   */
  add(dir: DirIndex, bytes: number, nowNs: number): void {
    // Completions mostly arrive in time order: stay on the current interval without dividing.
    const o = nowNs >= this.curLo && nowNs < this.curHi ? this.curOff : this.locate(nowNs);
    this.data[o + dir] += bytes;
    this.data[o + 3 + dir] += 1;
  }

  private curLo = Infinity;
  private curHi = -Infinity;
  private curOff = 0;

  private locate(nowNs: number): number {
    let i = Math.floor((nowNs - this.startNs) / this.intervalNs);
    if (!(i >= 0)) i = 0;
    const o = i * STRIDE;
    if (o >= this.data.length) this.grow(i);
    if (i >= this.used) this.used = i + 1;
    this.curLo = i === 0 ? -Infinity : this.startNs + i * this.intervalNs;
    this.curHi = this.startNs + (i + 1) * this.intervalNs;
    this.curOff = o;
    return o;
  }

  private grow(i: number): void {
    if (i > 1e8) throw new RangeError(`completion time is ${i} intervals after the series start; is the clock right?`);
    let cap = this.data.length;
    while (cap <= i * STRIDE) cap *= 2;
    const bigger = new Float64Array(cap);
    bigger.set(this.data);
    this.data = bigger;
  }

  /** Intervals that hold data or precede one that does. */
  get length(): number {
    return this.used;
  }

  bytes(dir: DirIndex, i: number): number {
    return i >= 0 && i < this.used ? this.data[i * STRIDE + dir] : 0;
  }

  ios(dir: DirIndex, i: number): number {
    return i >= 0 && i < this.used ? this.data[i * STRIDE + 3 + dir] : 0;
  }

  /** Intervals fully elapsed at `endNs` (the partial last one is left out). */
  completeIntervals(endNs: number): number {
    return Math.max(0, Math.floor((endNs - this.startNs) / this.intervalNs));
  }

  /**
   * Bandwidth samples in KiB/s, one per complete interval that moved data in
   * this direction (fio adds no sample for an interval without I/O), computed
   * as fio does: bytes * 1000 / ms / 1024, rounded down.
   */
  bwSamples(dir: DirIndex, endNs: number): number[] {
    return this.samples(dir, endNs, 0, 1024);
  }

  /** IOPS samples, one per complete interval with I/O in this direction. */
  iopsSamples(dir: DirIndex, endNs: number): number[] {
    return this.samples(dir, endNs, 3, 1);
  }

  private samples(dir: DirIndex, endNs: number, offset: number, unit: number): number[] {
    const n = Math.min(this.completeIntervals(endNs), this.used);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const v = this.data[i * STRIDE + offset + dir];
      if (v === 0) continue;
      out.push(Math.floor(Math.floor((v * 1000) / this.intervalMs) / unit));
    }
    return out;
  }

  /** Add another worker's series (same start and interval) into this one. */
  merge(other: IoSeries): void {
    if (other.intervalNs !== this.intervalNs || other.startNs !== this.startNs) {
      throw new RangeError(
        `cannot merge series with start/interval ${other.startNs}/${other.intervalNs} ns into ` +
          `${this.startNs}/${this.intervalNs} ns; give every worker the same start and interval`,
      );
    }
    if (other.used === 0) return;
    if ((other.used - 1) * STRIDE >= this.data.length) this.grow(other.used - 1);
    const n = other.used * STRIDE;
    for (let k = 0; k < n; k++) this.data[k] += other.data[k];
    if (other.used > this.used) this.used = other.used;
  }

  toJSON(): IoSeriesJSON {
    const pick = (off: number) => Array.from({ length: this.used }, (_, i) => this.data[i * STRIDE + off]);
    return {
      startNs: this.startNs,
      intervalNs: this.intervalNs,
      read: { bytes: pick(0), ios: pick(3) },
      write: { bytes: pick(1), ios: pick(4) },
      trim: { bytes: pick(2), ios: pick(5) },
    };
  }

  static fromJSON(json: IoSeriesJSON): IoSeries {
    if (typeof json !== 'object' || json === null) throw new TypeError('series: expected an object');
    const s = new IoSeries(json.startNs, json.intervalNs);
    let len = 0;
    for (const d of DIRECTIONS) {
      const part = json[d];
      if (typeof part !== 'object' || part === null || !Array.isArray(part.bytes) || !Array.isArray(part.ios)) {
        throw new TypeError(`series: ${d} must be { bytes: number[], ios: number[] }`);
      }
      len = Math.max(len, part.bytes.length, part.ios.length);
    }
    if (len > 0) s.grow(len - 1);
    DIRECTIONS.forEach((d, dir) => {
      const fill = (arr: unknown[], off: number, field: string) =>
        arr.forEach((v, i) => {
          if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) {
            throw new RangeError(`series: ${d}.${field}[${i}] must be a non-negative number (got ${String(v)})`);
          }
          s.data[i * STRIDE + off + dir] = v;
        });
      fill(json[d].bytes, 0, 'bytes');
      fill(json[d].ios, 3, 'ios');
    });
    s.used = len;
    return s;
  }
}
