/**
 * A load profile over the day: a factor per stretch of the day (1 = the
 * nominal rate, 0 = idle), the same every day. Poisson processes whose rate
 * follows it are simulated in "operational time", the integral of the
 * factor: there they are homogeneous, so a gap is one exponential draw, and
 * the profile's inverse maps the event back to clock time (exactly, per
 * piece). Pure.
 */
import { fromSeconds, NS_PER_SECOND, SimInputError, toSeconds, type VTime } from './time.js';

export const DAY_SECONDS = 86400;
const DAY_NS = BigInt(DAY_SECONDS) * NS_PER_SECOND;

/** A stretch of the day at a factor of the nominal rate; `to` < `from` wraps past midnight. */
export interface ProfilePeriod {
  fromS: number;
  toS: number;
  factor: number;
}

export class DayProfile {
  /** Piece starts (seconds into the day, the first 0) and their factors. */
  readonly starts: readonly number[];
  readonly factors: readonly number[];
  /** Operational seconds of one whole day. */
  readonly perDay: number;
  /** Operational seconds at each piece's start. */
  private readonly cum: readonly number[];

  constructor(starts: readonly number[], factors: readonly number[]) {
    this.starts = starts;
    this.factors = factors;
    const cum: number[] = [];
    let acc = 0;
    for (let i = 0; i < starts.length; i++) {
      cum.push(acc);
      const end = i + 1 < starts.length ? starts[i + 1]! : DAY_SECONDS;
      acc += (end - starts[i]!) * factors[i]!;
    }
    this.cum = cum;
    this.perDay = acc;
  }

  static constant(factor = 1): DayProfile {
    return new DayProfile([0], [factor]);
  }

  /** Factor 1 except in the periods given (a later period wins where two overlap). */
  static fromPeriods(periods: readonly ProfilePeriod[], field = 'idle'): DayProfile {
    const cuts = new Set<number>([0]);
    periods.forEach((p, i) => {
      for (const [k, v] of [
        ['from', p.fromS],
        ['to', p.toS],
      ] as const) {
        if (!(v >= 0 && v <= DAY_SECONDS)) throw new SimInputError(`${field}[${i}].${k}: must be a time of day from 0h to 24h, got ${v}s`);
      }
      if (!(p.factor >= 0 && p.factor <= 1000)) throw new SimInputError(`${field}[${i}].factor: must be from 0 to 1000, got ${p.factor}`);
      if (p.fromS === p.toS) throw new SimInputError(`${field}[${i}]: from and to are the same time of day`);
      cuts.add(p.fromS % DAY_SECONDS);
      cuts.add(p.toS % DAY_SECONDS);
    });
    const starts = [...cuts].sort((a, b) => a - b);
    const factors = starts.map((s) => {
      let f = 1;
      for (const p of periods) {
        const from = p.fromS % DAY_SECONDS;
        const to = p.toS % DAY_SECONDS;
        const inside = from < to ? s >= from && s < to : s >= from || s < to;
        if (inside) f = p.factor;
      }
      return f;
    });
    return new DayProfile(starts, factors);
  }

  /** The same pieces with each factor mapped. */
  map(fn: (factor: number) => number): DayProfile {
    return new DayProfile(this.starts, this.factors.map(fn));
  }

  /** Mean factor over a day. */
  get mean(): number {
    return this.perDay / DAY_SECONDS;
  }

  factorAt(t: VTime): number {
    return this.factors[this.pieceOf(toSeconds(t % DAY_NS))]!;
  }

  private pieceOf(secOfDay: number): number {
    let i = this.starts.length - 1;
    while (i > 0 && this.starts[i]! > secOfDay) i--;
    return i;
  }

  /** Operational seconds from time 0 to `t`. */
  integral(t: VTime): number {
    const days = t / DAY_NS;
    const sec = toSeconds(t - days * DAY_NS);
    const i = this.pieceOf(sec);
    return Number(days) * this.perDay + this.cum[i]! + (sec - this.starts[i]!) * this.factors[i]!;
  }

  /** The earliest time whose integral is `op` (undefined when the profile is idle all day). */
  inverse(op: number): VTime | undefined {
    if (!(this.perDay > 0)) return undefined;
    let days = Math.floor(op / this.perDay);
    let rest = op - days * this.perDay;
    if (rest < 0) rest = 0;
    if (rest >= this.perDay) {
      days++;
      rest = 0;
    }
    let i = 0;
    // the last piece that starts at or before `rest` and has room (a factor-0 piece holds no operational time)
    for (let k = 0; k < this.starts.length; k++) {
      if (this.factors[k]! > 0 && this.cum[k]! <= rest) i = k;
    }
    const sec = this.starts[i]! + (rest - this.cum[i]!) / this.factors[i]!;
    return BigInt(days) * DAY_NS + fromSeconds(Math.min(sec, DAY_SECONDS));
  }
}
