/**
 * Rates of fault processes: a number is per second (as in a scenario's
 * faults), a string names its period: '0.04/y' (per drive-year), '2/mo',
 * '1e-3/h', '5/d', '10/s'; a string without one ('0.5') is per second too.
 */
import { SimInputError, TIME_UNITS_S, YEAR_SECONDS } from './time.js';

const PERIOD_ALIASES: Readonly<Record<string, string>> = {
  year: 'y',
  'drive-year': 'y',
  driveyear: 'y',
  month: 'mo',
  week: 'w',
  day: 'd',
  hour: 'h',
  minute: 'm',
  second: 's',
};

/** Events per second from a rate; `field` names it in errors. */
export function parseRate(value: string | number, field: string): number {
  if (typeof value === 'number') return value;
  // a sign is read so that a negative rate is told its range, not that it is no rate
  const m = /^\s*([-+]?[0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*(?:\/\s*([a-zA-Z-]+))?\s*$/.exec(value);
  const unit = m ? (m[2] === undefined ? 's' : (PERIOD_ALIASES[m[2].toLowerCase()] ?? m[2].toLowerCase())) : undefined;
  const period = unit === undefined ? undefined : TIME_UNITS_S[unit];
  if (!m || period === undefined)
    throw new SimInputError(`${field}: '${value}' is not a rate (a number per second, or per period: '0.04/y', '2/mo', '1/d', '3/h')`);
  return Number(m[1]) / period;
}

/** Per second -> per (Julian) year. */
export function perYear(perSecond: number): number {
  return perSecond * YEAR_SECONDS;
}

/** A rate for people: '0.04/y', '3.2/h', '12/s'. */
export function formatRate(perSecond: number): string {
  const y = perSecond * YEAR_SECONDS;
  if (y < 1000) return `${Number(y.toPrecision(3))}/y`;
  const h = perSecond * 3600;
  if (h < 1000) return `${Number(h.toPrecision(3))}/h`;
  return `${Number(perSecond.toPrecision(3))}/s`;
}
