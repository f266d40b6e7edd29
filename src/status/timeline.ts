/**
 * What a run looked like over time, for the report: per-interval bandwidth
 * and IOPS per direction (from the jobs' IoSeries), and samples of the
 * target's state (remaps, spare use, pending blocks, bad blocks, health).
 *
 * TimelineRecorder is pure: the run loop hands it clock readings and
 * numbers; it never reads a clock or a device itself. Every number in its
 * JSON is an integer, so fio-format printing (which truncates numbers it
 * does not know) keeps them exact.
 */
import type { ControlTarget } from '../control/target.js';
import { SafeRemapTarget } from '../remap/safe-target.js';
import { DmRemapV4Target } from '../remap/v4-target.js';
import type { IoSeriesJSON } from '../stats/series.js';
import { fieldNumber, parseStatusLine } from './parse.js';
import type { DeviceMapJSON } from './device-map.js';

/**
 * What the report reads from the `remapsim` block at the top level of the
 * results JSON, beside `jobs` (the block holds other keys too: dataPath,
 * engine).
 */
export interface RemapsimResultsBlock {
  timeline?: TimelineJSON;
  deviceMap?: DeviceMapJSON;
}

export interface TimelineSample {
  /** Remaps in force (blocks or sectors redirected to the spare). */
  remaps: number;
  /** Spare units handed out (safe: blocks; dm-remap-v4: remap slots). */
  spareUsed: number;
  spareCapacity: number;
  /** Unreadable blocks waiting for a write (safe policy). */
  pending?: number;
  /** Bad blocks the fault layers hold on main now. */
  badBlocks?: number;
  /** Health score 0..100 (the health scanner's, or the target's own). */
  health?: number;
  /** Who gave `health` (e.g. 'scanner', 'dm-remap-v4 status'). */
  healthSource?: string;
}

export interface DirectionTimeline {
  /** Bytes per second in each interval. */
  bw: number[];
  /** I/Os per second in each interval. */
  iops: number[];
}

export interface TimelineJSON {
  /** Interval of the I/O buckets and of the state samples (ms). */
  intervalMs: number;
  /** Run length (ms) from the recorder's start to finish(). */
  durationMs: number;
  io: {
    /** Start of each interval, ms since the run started. */
    t: number[];
    read: DirectionTimeline;
    write: DirectionTimeline;
    trim: DirectionTimeline;
  };
  device: {
    /** When each sample was taken, ms since the run started. */
    t: number[];
    remaps: number[];
    spareUsed: number[];
    spareCapacity: number[];
    /** Present when any sample had the value; null where one did not. */
    pending?: Array<number | null>;
    badBlocks?: Array<number | null>;
    health?: Array<number | null>;
  };
  healthSource?: string;
}

export interface TimelineOptions {
  /** Clock reading (ns) at which the run starts: t = 0. */
  startNs: number;
  /** I/O bucket and sampling interval (ms, default 1000). */
  intervalMs?: number;
  /** Most state samples kept; past it every other one is dropped and the interval doubles (default 20000). */
  maxSamples?: number;
}

const DIRS = ['read', 'write', 'trim'] as const;
const OPTIONAL = ['pending', 'badBlocks', 'health'] as const;

function checkCount(where: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`timeline: ${where} must be a non-negative number, got ${String(v)}`);
  return Math.round(v);
}

export class TimelineRecorder {
  readonly startNs: number;
  readonly intervalMs: number;
  private readonly intervalNs: number;
  private readonly maxSamples: number;
  private sampleEveryNs: number;
  private nextDueNs: number;
  private endNs: number | undefined;
  private readonly bytes = [[], [], []] as number[][];
  private readonly ios = [[], [], []] as number[][];
  private readonly t: number[] = [];
  private readonly remaps: number[] = [];
  private readonly spareUsed: number[] = [];
  private readonly spareCapacity: number[] = [];
  private readonly optional: Record<(typeof OPTIONAL)[number], Array<number | null>> = { pending: [], badBlocks: [], health: [] };
  private healthSource: string | undefined;
  private lastNs = -Infinity;

  constructor(opts: TimelineOptions) {
    if (typeof opts.startNs !== 'number' || !Number.isFinite(opts.startNs))
      throw new RangeError(`timeline: startNs must be a finite number, got ${String(opts.startNs)}`);
    const iv = opts.intervalMs ?? 1000;
    if (!Number.isInteger(iv) || iv < 1 || iv > 3_600_000) throw new RangeError(`timeline: intervalMs must be an integer from 1 to 3600000, got ${iv}`);
    const max = opts.maxSamples ?? 20_000;
    if (!Number.isInteger(max) || max < 4) throw new RangeError(`timeline: maxSamples must be an integer >= 4, got ${max}`);
    this.startNs = opts.startNs;
    this.intervalMs = iv;
    this.intervalNs = iv * 1e6;
    this.maxSamples = max;
    this.sampleEveryNs = this.intervalNs;
    this.nextDueNs = opts.startNs;
  }

  /** True when a state sample is due at `nowNs` (cheap: call it every tick, build the sample only when true). */
  due(nowNs: number): boolean {
    return nowNs >= this.nextDueNs;
  }

  /**
   * Records the target's state at `nowNs` when a sample is due (or `force`,
   * for the first and last ones). Returns whether it was recorded.
   */
  sample(nowNs: number, s: TimelineSample, force = false): boolean {
    if (!force && !this.due(nowNs)) return false;
    if (typeof nowNs !== 'number' || !Number.isFinite(nowNs)) throw new RangeError(`timeline: nowNs must be a finite number, got ${String(nowNs)}`);
    const tMs = Math.max(0, Math.round((nowNs - this.startNs) / 1e6));
    const values = [checkCount('remaps', s.remaps), checkCount('spareUsed', s.spareUsed), checkCount('spareCapacity', s.spareCapacity)];
    const opt = OPTIONAL.map((k) => (s[k] === undefined ? null : checkCount(k, s[k])));
    if (s.health !== undefined && s.health > 100) throw new RangeError(`timeline: health must be 0..100, got ${s.health}`);
    // a forced sample at the same millisecond as the last replaces it
    if (this.t.length > 0 && this.t[this.t.length - 1] === tMs) this.dropLast();
    this.t.push(tMs);
    this.remaps.push(values[0]);
    this.spareUsed.push(values[1]);
    this.spareCapacity.push(values[2]);
    OPTIONAL.forEach((k, i) => this.optional[k].push(opt[i]));
    if (s.healthSource !== undefined) this.healthSource = s.healthSource;
    this.lastNs = Math.max(this.lastNs, nowNs);
    const k = Math.floor((nowNs - this.startNs) / this.sampleEveryNs) + 1;
    this.nextDueNs = this.startNs + Math.max(1, k) * this.sampleEveryNs;
    if (this.t.length > this.maxSamples) this.thin();
    return true;
  }

  private dropLast(): void {
    for (const a of [this.t, this.remaps, this.spareUsed, this.spareCapacity, ...OPTIONAL.map((k) => this.optional[k])]) a.pop();
  }

  /** Keeps every other sample (and the last), and samples half as often from now on. */
  private thin(): void {
    const keep = (i: number, n: number): boolean => i % 2 === 0 || i === n - 1;
    for (const a of [this.t, this.remaps, this.spareUsed, this.spareCapacity, ...OPTIONAL.map((k) => this.optional[k])] as Array<Array<number | null>>) {
      const n = a.length;
      let w = 0;
      for (let i = 0; i < n; i++) if (keep(i, n)) a[w++] = a[i];
      a.length = w;
    }
    this.sampleEveryNs *= 2;
  }

  /**
   * Adds one job's per-interval I/O (IoSeries.toJSON()). Intervals are placed
   * by their start time, so jobs with a ramp time line up with the others.
   */
  addSeries(series: IoSeriesJSON): void {
    if (
      typeof series !== 'object' ||
      series === null ||
      typeof series.startNs !== 'number' ||
      typeof series.intervalNs !== 'number' ||
      !(series.intervalNs > 0)
    ) {
      throw new TypeError('timeline: addSeries takes IoSeries.toJSON() ({startNs, intervalNs, read, write, trim})');
    }
    DIRS.forEach((d, di) => {
      const part = series[d];
      const n = Math.max(part.bytes.length, part.ios.length);
      for (let i = 0; i < n; i++) {
        const b = part.bytes[i] ?? 0;
        const c = part.ios[i] ?? 0;
        if (b === 0 && c === 0) continue;
        const at = series.startNs + i * series.intervalNs;
        const k = Math.max(0, Math.floor((at - this.startNs) / this.intervalNs));
        while (this.bytes[di].length <= k) {
          this.bytes[di].push(0);
          this.ios[di].push(0);
        }
        this.bytes[di][k] += checkCount(`${d}.bytes[${i}]`, b);
        this.ios[di][k] += checkCount(`${d}.ios[${i}]`, c);
      }
    });
  }

  /**
   * Marks the end of the run: the last interval is as wide as what remains
   * of it (under a quarter interval, it joins the one before).
   */
  finish(endNs: number): void {
    if (typeof endNs !== 'number' || !Number.isFinite(endNs) || endNs < this.startNs)
      throw new RangeError(`timeline: endNs must be a clock reading after startNs, got ${String(endNs)}`);
    this.endNs = endNs;
  }

  toJSON(): TimelineJSON {
    const buckets = Math.max(...this.bytes.map((b) => b.length), 0);
    const endNs = this.endNs ?? Math.max(this.lastNs, this.startNs + buckets * this.intervalNs);
    const durationMs = Math.max(0, Math.round((endNs - this.startNs) / 1e6));
    const t: number[] = [];
    const dirs = DIRS.map(() => ({ bw: [] as number[], iops: [] as number[] }));
    let last = buckets;
    const widthOf = (k: number): number => Math.max(0, Math.min(this.intervalMs, durationMs - k * this.intervalMs));
    // a sliver of an interval at the end would give a rate from a handful of I/Os: it joins the interval before
    if (buckets > 1 && widthOf(buckets - 1) < this.intervalMs / 4) last = buckets - 1;
    for (let k = 0; k < last; k++) {
      const ks = k === last - 1 ? [k, ...Array.from({ length: buckets - last }, (_, i) => last + i)] : [k];
      const width = Math.max(
        1,
        ks.reduce((a, x) => a + widthOf(x), 0),
      );
      t.push(k * this.intervalMs);
      DIRS.forEach((_, di) => {
        const sum = (arr: number[]): number => ks.reduce((a, x) => a + (arr[x] ?? 0), 0);
        dirs[di].bw.push(Math.round((sum(this.bytes[di]) * 1000) / width));
        dirs[di].iops.push(Math.round((sum(this.ios[di]) * 1000) / width));
      });
    }
    const device: TimelineJSON['device'] = { t: [...this.t], remaps: [...this.remaps], spareUsed: [...this.spareUsed], spareCapacity: [...this.spareCapacity] };
    for (const k of OPTIONAL) if (this.optional[k].some((v) => v !== null)) device[k] = [...this.optional[k]];
    return {
      intervalMs: this.intervalMs,
      durationMs,
      io: { t, read: dirs[0], write: dirs[1], trim: dirs[2] },
      device,
      ...(this.healthSource !== undefined && device.health ? { healthSource: this.healthSource } : {}),
    };
  }
}

/**
 * The state of a remap target for a timeline sample: the models through
 * their counters, anything else (a kernel device, say) through its status
 * line. Bad blocks and the scanner's health are the caller's to add.
 */
export function targetSample(target: ControlTarget): TimelineSample {
  if (target instanceof SafeRemapTarget) {
    const s = target.stats();
    return {
      remaps: s.remaps,
      spareUsed: s.spareUsed,
      spareCapacity: s.spareTotal,
      pending: s.pending,
      health: target.healthScore(),
      healthSource: 'remap status',
    };
  }
  if (target instanceof DmRemapV4Target) {
    // not statusTokens(): on this target a status call takes or releases the health mutex, and a sample must change nothing
    const v = target.snapshot();
    return { remaps: v.remaps, spareUsed: v.nextSpareSector, spareCapacity: v.spareCapacity, health: v.healthScore, healthSource: 'dm-remap-v4 health score' };
  }
  return statusSample(target.status());
}

/** A timeline sample from a `remap` or `dm-remap-v4` status line (e.g. of a kernel device). */
export function statusSample(line: string): TimelineSample {
  const s = parseStatusLine(line);
  const n = (k: string): number => fieldNumber(s, k) ?? 0;
  if (s.type === 'remap' && s.known)
    return {
      remaps: n('remaps'),
      spareUsed: n('spareUsed'),
      spareCapacity: n('spareTotal'),
      pending: n('pending'),
      health: n('health'),
      healthSource: 'remap status',
    };
  if (s.type === 'dm-remap-v4' && s.known) {
    // the status has no allocation cursor: every mapping made since load took one slot
    return {
      remaps: n('activeMappings'),
      spareUsed: n('activeMappings'),
      spareCapacity: Math.floor(n('spareSectors') / 2),
      health: n('healthScore'),
      healthSource: 'dm-remap-v4 status',
    };
  }
  throw new RangeError(`timeline: no remap counters in a '${s.type}' status line${s.mismatch ? ` (${s.mismatch})` : ''}`);
}
