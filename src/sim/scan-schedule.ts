/**
 * The health scanner in virtual time, without reading: where it is at any
 * moment. It reads the device pass after pass at its rate (the rate follows
 * the load over the day: the full rate while the foreground is idle, the
 * busy factor of it while I/O was seen within `idle`, which at a Poisson
 * load of λ I/Os per second happens with probability 1 − e^(−λ·idle)).
 * Passes run back to back (as the real-time scanner does), or one starts
 * every `every` (a weekly scrub), or as soon as the previous one ends if it
 * takes longer. The simulator asks when the scanner next reaches a block
 * and reads only that slice, through the real fault layers. Pure.
 */
import type { DayProfile } from './profile.js';
import { toSeconds, type VTime } from './time.js';

export interface ScanScheduleOptions {
  /** Bytes of the device. */
  deviceBytes: number;
  sliceBytes: number;
  order: 'sequential' | 'staggered';
  staggerRegions: number;
  /** Effective scan rate over the day, bytes per second (the profile's factors times the base rate). */
  rate: DayProfile;
  /** A pass starts every this long (undefined: back to back). */
  every?: VTime;
}

export class ScanSchedule {
  readonly slices: number;
  private readonly regions: number;
  private readonly regionLen: number;
  /**
   * How pass starts are found. 'continuous' (back to back): pass k starts when the scanner can have read k
   * devices' worth. 'periodic': every pass ends before the next period starts, so pass k starts at k · every.
   * 'iterated': some pass may outlast its period (a slow stretch of the day); starts are computed one after the
   * other and kept.
   */
  private readonly mode: 'continuous' | 'periodic' | 'iterated';
  /** Start times of the passes computed so far ('iterated' only). */
  private readonly starts: VTime[] = [0n];

  constructor(private readonly o: ScanScheduleOptions) {
    if (!(o.rate.perDay > 0)) throw new RangeError('scan rate is zero all day');
    this.slices = Math.ceil(o.deviceBytes / o.sliceBytes);
    this.regions = o.order === 'staggered' ? Math.max(1, Math.min(o.staggerRegions, this.slices)) : 1;
    this.regionLen = Math.ceil(this.slices / this.regions);
    if (o.every === undefined) this.mode = 'continuous';
    else {
      // the longest a pass can take: the whole device at the day's lowest rate (plus a nanosecond of rounding)
      const slowest = Math.min(...o.rate.factors);
      const longest = slowest > 0 ? o.deviceBytes / slowest + 1e-9 : Infinity;
      this.mode = longest <= toSeconds(o.every) ? 'periodic' : 'iterated';
    }
  }

  /** Bytes the scanner can have read by `t` since time 0 (passes not counted). */
  private capacity(t: VTime): number {
    return this.o.rate.integral(t);
  }

  private timeAtCapacity(c: number): VTime {
    return this.o.rate.inverse(c)!;
  }

  /** Position of a slice within a pass, in bytes from the pass start. */
  offsetOf(slice: number): number {
    if (this.regions === 1) return slice * this.o.sliceBytes;
    const r = Math.floor(slice / this.regionLen);
    const j = slice % this.regionLen;
    return (j * this.regions + r) * this.o.sliceBytes;
  }

  sliceOf(byteOffset: number): number {
    return Math.floor(byteOffset / this.o.sliceBytes);
  }

  /** Start of pass k. */
  passStart(k: number): VTime {
    if (this.mode === 'continuous') return k === 0 ? 0n : this.timeAtCapacity(k * this.o.deviceBytes);
    if (this.mode === 'periodic') return BigInt(k) * this.o.every!;
    while (this.starts.length <= k) {
      const prev = this.starts[this.starts.length - 1]!;
      const end = this.timeAtCapacity(this.capacity(prev) + this.o.deviceBytes);
      const periodic = BigInt(this.starts.length) * this.o.every!;
      this.starts.push(periodic > end ? periodic : end);
    }
    return this.starts[k]!;
  }

  /** When pass k reaches `slice`. */
  visitTime(k: number, slice: number): VTime {
    const s = this.passStart(k);
    return this.timeAtCapacity(this.capacity(s) + this.offsetOf(slice) + this.o.sliceBytes);
  }

  /** The first pass (index and time) that reaches `slice` at or after `t`. */
  nextVisit(slice: number, t: VTime): { pass: number; at: VTime } {
    let k = this.passIndexAt(t);
    for (;;) {
      const at = this.visitTime(k, slice);
      if (at >= t) return { pass: k, at };
      k++;
    }
  }

  /** The pass running (or last started) at `t`. */
  passIndexAt(t: VTime): number {
    let k: number;
    if (this.mode === 'continuous') k = Math.floor(this.capacity(t) / this.o.deviceBytes);
    else if (this.mode === 'periodic') k = Number(t / this.o.every!);
    else {
      // passes are few here (each outlasts its period only on a slow stretch); a walk from an estimate is enough
      const firstEnd = this.passStart(1);
      k = firstEnd > 0n ? Math.max(0, Math.floor(toSeconds(t) / toSeconds(firstEnd)) - 1) : 0;
    }
    // the estimates are exact but for a double's rounding: settle on the exact pass
    while (k > 0 && this.passStart(k) > t) k--;
    while (this.passStart(k + 1) <= t) k++;
    return k;
  }

  /** Whole passes done by `t`, and the share of the current one. */
  progressAt(t: VTime): { passes: number; current: number; bytes: number } {
    const k = this.passIndexAt(t);
    const s = this.passStart(k);
    const done = Math.min(this.o.deviceBytes, Math.max(0, this.capacity(t) - this.capacity(s)));
    const finished = done >= this.o.deviceBytes;
    return { passes: k + (finished ? 1 : 0), current: finished ? 0 : done / this.o.deviceBytes, bytes: k * this.o.deviceBytes + done };
  }

  /** Duration of one pass at the day's mean rate, seconds. */
  get passSeconds(): number {
    return this.o.deviceBytes / this.o.rate.mean;
  }
}

/** The rate profile of a scanner over the day, from the workload's. */
export function scanRateProfile(load: DayProfile, opts: { rateBytes: number; busyFactor: number; idleS: number; iops: number }): DayProfile {
  return load.map((f) => {
    const pBusy = 1 - Math.exp(-opts.iops * f * opts.idleS);
    return opts.rateBytes * (opts.busyFactor * pBusy + (1 - pBusy));
  });
}
