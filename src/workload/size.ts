/**
 * fio's number syntax: sizes with unit suffixes, percentages, times and the
 * comma-separated read,write,trim form. Mirrors fio 3.33 (parse.c) where its
 * behaviour is well defined, and refuses what fio would silently misread
 * (fio takes "1.5g" as 1 byte and "4kx" as 4096; here both are errors).
 */
import { OptionValueError } from './errors.js';

/** How unit prefixes are read: fio's kb_base option (default 1024). */
export type KbBase = 1000 | 1024;

export type Direction = 'read' | 'write' | 'trim';
export const DIRECTIONS: readonly Direction[] = ['read', 'write', 'trim'];

/** A value per data direction, as fio's `bs=4k,8k,16k` form gives. */
export interface PerDir<T> {
  read: T;
  write: T;
  trim: T;
}

export type SizeOrPercent = { kind: 'bytes'; bytes: number } | { kind: 'percent'; percent: number };

const POWERS: Record<string, number> = { k: 1, m: 2, g: 3, t: 4, p: 5 };

/**
 * The multiplier for a size suffix, or undefined when the suffix is not one.
 * With kb_base=1024, k/kb/ki mean 1024 and "kib" means 1000 (fio inverts the
 * IEC prefix for compatibility with old job files); kb_base=1000 swaps them.
 * Matches fio 3.33 as run: 4ki = 4096, 4KiB = 4000.
 */
function suffixMultiplier(suffix: string, kbBase: KbBase): number | undefined {
  const s = suffix.toLowerCase();
  if (s === '' || s === 'b') return 1;
  const power = POWERS[s[0]!];
  if (power === undefined) return undefined;
  const rest = s.slice(1);
  let base: number;
  if (rest === '' || rest === 'b' || rest === 'i') base = kbBase;
  else if (rest === 'ib') base = kbBase === 1024 ? 1000 : 1024;
  else return undefined;
  return base ** power;
}

function quote(text: string): string {
  return `'${text}'`;
}

/** Parses `text` as a size or a percentage; `what` names the kind in messages ('size', 'number'). */
function parseQuantity(text: string, option: string, kbBase: KbBase, allowPercent: boolean, what: string): SizeOrPercent {
  const t = text.trim();
  if (t === '') throw new OptionValueError(option, `missing value (expected a ${what} such as 4k)`);
  if (t.startsWith('(') || /\$(pagesize|mb_memory|ncpus)/.test(t) || /^\d+[*/^+]/.test(t)) {
    throw new OptionValueError(option, `arithmetic expressions are not supported: ${quote(t)}`);
  }
  if (t.startsWith('-')) throw new OptionValueError(option, `invalid ${what} ${quote(t)}: must not be negative`);
  if (/^\d*\.\d/.test(t)) {
    throw new OptionValueError(option, `invalid ${what} ${quote(t)}: fractions are not accepted (write 1536m, not 1.5g)`);
  }
  const hex = /^0[xX]([0-9a-fA-F]+)$/.exec(t);
  let value: number;
  let mult = 1;
  if (hex) {
    value = parseInt(hex[1]!, 16);
  } else {
    const m = /^(\d+)([a-zA-Z%]*)$/.exec(t);
    if (!m) throw new OptionValueError(option, `invalid ${what} ${quote(t)}`);
    value = Number(m[1]);
    const suffix = m[2]!;
    if (suffix === '%') {
      if (!allowPercent) throw new OptionValueError(option, `invalid ${what} ${quote(t)}: a percentage is not allowed here`);
      if (value < 1 || value > 100) throw new OptionValueError(option, `invalid percentage ${quote(t)}: allowed 1% to 100%`);
      return { kind: 'percent', percent: value };
    }
    const mm = suffixMultiplier(suffix, kbBase);
    if (mm === undefined) {
      throw new OptionValueError(option, `invalid ${what} ${quote(t)}: unknown unit '${suffix}' (allowed: b, k, m, g, t, p, optionally followed by b or ib)`);
    }
    mult = mm;
  }
  const bytes = value * mult;
  if (!Number.isSafeInteger(bytes)) throw new OptionValueError(option, `${what} ${quote(t)} is too large (at most 2^53-1)`);
  return { kind: 'bytes', bytes };
}

/** A size in bytes: `4096`, `4k`, `1MiB`, `0x1000`. */
export function parseSize(text: string, option: string, kbBase: KbBase = 1024): number {
  return (parseQuantity(text, option, kbBase, false, 'size') as { bytes: number }).bytes;
}

/** A size, or a percentage (1% to 100%) where fio allows one (size=, offset=, io_size=). */
export function parseSizeOrPercent(text: string, option: string, kbBase: KbBase = 1024): SizeOrPercent {
  return parseQuantity(text, option, kbBase, true, 'size');
}

/**
 * An integer option. fio reads these with the size parser, so `iodepth=1k`
 * means 1024; the range is inclusive.
 */
export function parseInteger(text: string, option: string, min: number, max = Number.MAX_SAFE_INTEGER, kbBase: KbBase = 1024): number {
  const v = (parseQuantity(text, option, kbBase, false, 'number') as { bytes: number }).bytes;
  if (v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min} to ${max}`;
    throw new OptionValueError(option, `${v} is out of range (allowed ${range})`);
  }
  return v;
}

/** fio's bool: 0 or 1. */
export function parseBool(text: string, option: string): boolean {
  const t = text.trim();
  if (t === '1') return true;
  if (t === '0') return false;
  throw new OptionValueError(option, `invalid value ${quote(t)} (allowed 0 or 1)`);
}

export type TimeUnit = 'us' | 'ms' | 's';

const TIME_UNITS_US: Record<string, number> = {
  us: 1,
  usec: 1,
  ms: 1_000,
  msec: 1_000,
  s: 1_000_000,
  sec: 1_000_000,
  m: 60_000_000,
  h: 3_600_000_000,
  d: 86_400_000_000,
};

/**
 * A time, returned in microseconds. Suffixes (any case): us/usec, ms/msec,
 * s/sec, m (minutes), h, d. Without one the value is in `defaultUnit`
 * (seconds for runtime= and ramp_time=, as in fio).
 */
export function parseTime(text: string, option: string, defaultUnit: TimeUnit = 's'): number {
  const t = text.trim();
  if (t === '') throw new OptionValueError(option, 'missing value (expected a time such as 10s or 500ms)');
  if (t.startsWith('-')) throw new OptionValueError(option, `invalid time ${quote(t)}: must not be negative`);
  if (/^\d*\.\d/.test(t)) throw new OptionValueError(option, `invalid time ${quote(t)}: fractions are not accepted (write 500ms, not 0.5s)`);
  const m = /^(\d+)([a-zA-Z]*)$/.exec(t);
  if (!m) throw new OptionValueError(option, `invalid time ${quote(t)}`);
  const unit = m[2]!.toLowerCase();
  const mult = unit === '' ? TIME_UNITS_US[defaultUnit]! : TIME_UNITS_US[unit];
  if (mult === undefined) throw new OptionValueError(option, `invalid time ${quote(t)}: unknown unit '${m[2]}' (allowed: us, ms, s, m, h, d)`);
  const us = Number(m[1]) * mult;
  if (!Number.isSafeInteger(us)) throw new OptionValueError(option, `time ${quote(t)} is too large`);
  return us;
}

/**
 * fio's read,write,trim list: a value applies to the directions after it
 * unless a comma ends the list, and an empty entry keeps the default.
 * `8k` -> 8k,8k,8k; `8k,32k` -> 8k,32k,32k; `8k,` -> 8k,default,default;
 * `,8k` -> default,8k,8k; `,8k,` -> default,8k,default (checked against fio 3.33).
 */
export function parsePerDir<T>(text: string, option: string, parseOne: (part: string) => T, fallback: T): PerDir<T> {
  if (text.trim() === '') throw new OptionValueError(option, 'missing value');
  const parts = text.split(',');
  if (parts.length > 3) throw new OptionValueError(option, `too many values in '${text.trim()}' (at most 3: read,write,trim)`);
  const out: T[] = [];
  for (let i = 0; i < 3; i++) {
    const part = parts[i];
    if (part === undefined) out.push(out[i - 1]!);
    else if (part.trim() === '') out.push(fallback);
    else out.push(parseOne(part));
  }
  return { read: out[0]!, write: out[1]!, trim: out[2]! };
}

/** rate=: bytes per second per direction; 0 means no limit (`rate=1m,500k`, `rate=,500k`). */
export function parseRate(text: string, option: string, kbBase: KbBase = 1024): PerDir<number> {
  return parsePerDir(text, option, (p) => parseSize(p, option, kbBase), 0);
}

/** rate_iops=: I/Os per second per direction; 0 means no limit. */
export function parseRateIops(text: string, option: string, kbBase: KbBase = 1024): PerDir<number> {
  return parsePerDir(text, option, (p) => parseInteger(p, option, 0, Number.MAX_SAFE_INTEGER, kbBase), 0);
}
