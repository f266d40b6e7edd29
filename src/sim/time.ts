/**
 * Virtual time. The simulator's clock is a bigint of nanoseconds since the
 * run started: exact over any horizon (a double of nanoseconds stops being
 * exact after 2^53 ns, about 104 days; 1,000 years is 3.2e19 ns). Event times
 * drawn from continuous distributions are rounded to whole nanoseconds once,
 * when they are scheduled; from then on every sum and comparison is exact.
 *
 * The policy code takes a Clock of double nanoseconds (its timers are 30 s
 * and 300 s, where a double's rounding at 5 years, 32 ns, is immaterial):
 * VirtualClock hands it the bigint converted, and collects what its layers
 * "sleep" (a weak sector's slow read) as the latency of the current request
 * instead of moving time.
 */
import type { Clock } from '../util/clock.js';

export type VTime = bigint;

export const NS_PER_SECOND = 1_000_000_000n;
/** The Julian year (365.25 days): what "per drive-year" counts in. */
export const YEAR_SECONDS = 365.25 * 86400;
export const YEAR_NS = BigInt(YEAR_SECONDS) * NS_PER_SECOND;
/** The longest horizon a run may have. */
export const MAX_HORIZON_YEARS = 1000;

/** Seconds per unit of the time suffixes the simulator accepts. */
export const TIME_UNITS_S: Readonly<Record<string, number>> = {
  ns: 1e-9,
  us: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  min: 60,
  h: 3600,
  d: 86400,
  w: 7 * 86400,
  mo: YEAR_SECONDS / 12,
  y: YEAR_SECONDS,
};
const UNIT_LIST = 'ns, us, ms, s, m, h, d, w, mo, y';

export class SimInputError extends Error {
  override readonly name = 'SimInputError';
}

/** Whole nanoseconds nearest to `seconds` (a duration drawn or given in seconds). */
export function fromSeconds(seconds: number): VTime {
  if (!Number.isFinite(seconds)) throw new RangeError(`not a finite number of seconds: ${seconds}`);
  return BigInt(Math.round(seconds * 1e9));
}

export function toSeconds(t: VTime): number {
  // split so that the conversion keeps every digit a double can hold
  const s = t / NS_PER_SECOND;
  return Number(s) + Number(t - s * NS_PER_SECOND) / 1e9;
}

/**
 * A duration: a number of seconds, or a number with a unit ('5y', '30d',
 * '1w', '1.5h', '500ms'). `field` names it in errors, which give the range.
 */
export function parseDuration(value: string | number, field: string, range: { minS: number; maxS: number; allowZero?: boolean }): VTime {
  let seconds: number;
  if (typeof value === 'number') seconds = value;
  else {
    // a sign is read so that a negative duration is told its range, not that it is no duration
    const m = /^\s*([-+]?[0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-zA-Zµ]*)\s*$/.exec(value);
    const unit = m ? (m[2] === '' ? 's' : m[2]!.toLowerCase().replace('µs', 'us')) : undefined;
    const mult = unit === undefined ? undefined : TIME_UNITS_S[unit];
    if (!m || mult === undefined) throw new SimInputError(`${field}: '${value}' is not a duration (a number with a unit: ${UNIT_LIST}; e.g. 5y, 30d, 1w)`);
    seconds = Number(m[1]) * mult;
  }
  const ok = Number.isFinite(seconds) && ((range.allowZero === true && seconds === 0) || (seconds > 0 && seconds >= range.minS && seconds <= range.maxS));
  if (!ok)
    throw new SimInputError(
      `${field}: must be from ${formatSeconds(range.minS)} to ${formatSeconds(range.maxS)}, got ${typeof value === 'number' ? value : `'${value}'`}`,
    );
  return fromSeconds(seconds);
}

/** A duration for people: '5y', '30d', '2.5h', '150ms'. */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return String(s);
  const units: Array<[string, number]> = [
    ['y', YEAR_SECONDS],
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
    ['ms', 1e-3],
    ['us', 1e-6],
    ['ns', 1e-9],
  ];
  for (const [u, k] of units) {
    if (s >= k || u === 'ns') {
      const v = s / k;
      return `${Number(v.toPrecision(4))}${u}`;
    }
  }
  return `${s}s`;
}

export function formatVTime(t: VTime): string {
  return formatSeconds(toSeconds(t));
}

/**
 * The Clock the policy code and fault layers see: the simulator's time as a
 * double, and sleeps collected as the current request's latency.
 */
export class VirtualClock implements Clock {
  now: VTime = 0n;
  /** Nanoseconds the layers slept during the current request. */
  sleptNs = 0;
  /**
   * The clock as a timed request sees it (the scanner's slice classifier,
   * which tells a weak block by how long its read took): the time the
   * layers slept since the request started (takeSlept) has passed. Event
   * time itself does not move.
   */
  readonly inRequest: Clock = {
    nowNs: () => Number(this.now) + this.sleptNs,
    sleepNs: (ns) => this.sleepNs(ns),
  };

  nowNs(): number {
    return Number(this.now);
  }

  sleepNs(ns: number): void {
    if (ns > 0) this.sleptNs += ns;
  }

  /** Starts a request: returns and clears what the previous one slept. */
  takeSlept(): number {
    const s = this.sleptNs;
    this.sleptNs = 0;
    return s;
  }
}
