/**
 * The job options remapsim implements, as one declarative table in the
 * manner of fio's options.c: each entry is keyed by the option's fio name and
 * gives its aliases, the kind of value it takes (with its range), its
 * default, and a note for help where one is worth showing. validateJob
 * (job.ts) walks the table to read a job; options.ts derives from it which
 * names exist and which may stand bare, for the job-file parser and the
 * command line. How options combine is checked in job.ts, after the walk.
 *
 * The table's order is the order help lists the options in and the order
 * they are read in, except that kb_base is read first (fio's .prio): the
 * others read sizes by it.
 */
import type { Distribution } from './distribution.js';
import { OptionValueError } from './errors.js';
import type { BsSplitEntry, ContinueOnError, RwMode } from './job.js';
import type { JobSection } from './jobfile.js';
import {
  parseBool,
  parseInteger,
  parsePerDir,
  parseRate,
  parseRateIops,
  parseSize,
  parseSizeOrPercent,
  parseTime,
  type KbBase,
  type PerDir,
  type SizeOrPercent,
  type TimeUnit,
} from './size.js';
import { parseVerifyPatternValue, parseVerifyValue, type VerifyKind } from './verify-options.js';

/** What a value reader knows besides the text. */
export interface ReadContext {
  /** The key as written: messages name it. */
  key: string;
  /** kb_base: how size suffixes are taken. */
  kbBase: KbBase;
  /** Records a problem that still leaves a usable value (rw=randread:0 is still randread). */
  report(detail: string): void;
}

/** How one option's value is read; parse throws an OptionValueError carrying the message the user sees. */
export interface Kind<T> {
  /** May stand bare (meaning 1) or take 0/1: fio's FIO_OPT_STR_SET. */
  bare?: boolean;
  parse(text: string, ctx: ReadContext): T;
}

export interface JobOption<T> {
  aliases?: readonly string[];
  kind: Kind<T>;
  /** The value when the option is absent or invalid; a function when it comes from the job, or is an object each job gets its own copy of. */
  default: T | ((job: JobSection) => T);
  /** Read before the others, as fio's .prio orders them. */
  first?: boolean;
  /** What remapsim does with it, where help should say (listed after the option's name). */
  note?: string;
}

type Entry<T, D> = Omit<JobOption<T>, 'kind' | 'default'> & { kind: Kind<T>; default: D | ((job: JobSection) => D) };

/** An entry, typed by its kind; a default of undefined means the option is simply not set when absent. */
function option<T>(o: Entry<T, NoInfer<T>>): JobOption<T>;
function option<T>(o: Entry<T, undefined>): JobOption<T | undefined>;
function option<T>(o: Entry<T, T | undefined>): JobOption<T | undefined> {
  return o;
}

const text: Kind<string> = { parse: (v) => v };

const flag: Kind<boolean> = { bare: true, parse: (v, c) => parseBool(v, c.key) };

const bool: Kind<boolean> = { parse: (v, c) => parseBool(v, c.key) };

/** An integer from `min` to `max` inclusive, read with fio's size syntax (1k = 1024). */
function integer(min: number, max = Number.MAX_SAFE_INTEGER): Kind<number> {
  return { parse: (v, c) => parseInteger(v, c.key, min, max, c.kbBase) };
}

/** A count of at least 1 and at most `max`; the message names the limit and `why` it is there. */
function count(max: number, why: string): Kind<number> {
  return {
    parse: (v, c) => {
      const n = parseInteger(v, c.key, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, c.kbBase);
      if (n < 1 || n > max) throw new OptionValueError(c.key, `${n} is out of range (allowed 1 to ${max}: ${why})`);
      return n;
    },
  };
}

const sizeOrPercent: Kind<SizeOrPercent> = { parse: (v, c) => parseSizeOrPercent(v, c.key, c.kbBase) };

/** A size or a percentage where 0 means not set (fio: size=0 is the whole device). */
const sizeOrPercentZeroUnset: Kind<SizeOrPercent | undefined> = {
  parse: (v, c) => {
    const s = sizeOrPercent.parse(v, c);
    return s.kind === 'bytes' && s.bytes === 0 ? undefined : s;
  },
};

function time(unit: TimeUnit): Kind<number> {
  return { parse: (v, c) => parseTime(v, c.key, unit) };
}

/** One of a fixed list of words, looked up as written; the message lists them in the order given. */
function choice<T>(values: readonly (readonly [string, T])[]): Kind<T> {
  const byWord = new Map(values);
  const words = values.map(([w]) => w);
  const allowed = words.length === 2 ? `allowed ${words[0]} or ${words[1]}` : `allowed: ${words.join(', ')}`;
  return {
    parse: (v, c) => {
      const found = byWord.get(v);
      if (found !== undefined) return found;
      throw new OptionValueError(c.key, `invalid value '${v}' (${allowed})`);
    },
  };
}

/** fio's read,write,trim list of `one`; an empty entry keeps `fallback`. */
function perDir<T>(one: Kind<T>, fallback: T): Kind<PerDir<T>> {
  return { parse: (v, c) => parsePerDir(v, c.key, (p) => one.parse(p, c), fallback) };
}

const positiveSize: Kind<number> = {
  parse: (p, c) => {
    const n = parseSize(p, c.key, c.kbBase);
    if (n < 1) throw new OptionValueError(c.key, `must be at least 1 byte, got '${p.trim()}'`);
    return n;
  },
};

const bsRange: Kind<{ min: number; max: number }> = {
  parse: (p, c) => {
    const t = p.trim();
    let sep = t.indexOf('-');
    if (sep < 0) sep = t.indexOf(':');
    if (sep < 0) throw new OptionValueError(c.key, `invalid range '${t}' (expected min-max, such as 1k-4k)`);
    let a = parseSize(t.slice(0, sep), c.key, c.kbBase);
    let b = parseSize(t.slice(sep + 1), c.key, c.kbBase);
    if (a > b) [a, b] = [b, a];
    if (a < 1) throw new OptionValueError(c.key, `block size must be at least 1 byte in '${t}'`);
    return { min: a, max: b };
  },
};

const BSSPLIT_MAX = 64;

/** One direction of bssplit=, with fio's rules for blank or zero percentages (they share what is left). */
const bsSplit: Kind<BsSplitEntry[]> = {
  parse: (p, c) => {
    const t = p.trim();
    const items = t.split(':');
    if (items[items.length - 1] === '') items.pop();
    if (items.length > BSSPLIT_MAX) throw new OptionValueError(c.key, `too many entries (at most ${BSSPLIT_MAX} per direction)`);
    const entries: { bs: number; perc: number | undefined }[] = [];
    for (const item of items) {
      if (item.trim() === '') throw new OptionValueError(c.key, `empty entry in '${t}' (expected size/percent:size/percent)`);
      const slash = item.indexOf('/');
      const bs = parseSize(slash < 0 ? item : item.slice(0, slash), c.key, c.kbBase);
      if (bs < 1) throw new OptionValueError(c.key, `block size must be at least 1 byte in '${item.trim()}'`);
      let perc: number | undefined;
      if (slash >= 0 && item.slice(slash + 1).trim() !== '') {
        const q = item.slice(slash + 1).trim();
        if (!/^\d+$/.test(q) || Number(q) > 100) throw new OptionValueError(c.key, `invalid percentage '${q}' in '${item.trim()}' (allowed 0 to 100)`);
        perc = Number(q) === 0 ? undefined : Number(q);
      }
      entries.push({ bs, perc });
    }
    const given = entries.reduce((s, e) => s + (e.perc ?? 0), 0);
    const missing = entries.filter((e) => e.perc === undefined).length;
    if (given > 100) throw new OptionValueError(c.key, `percentages add up to ${given}, more than 100`);
    const share = missing === 0 ? 0 : Math.floor((100 - given) / missing);
    const out = entries.map((e) => ({ bs: e.bs, perc: e.perc ?? share }));
    // fio sorts by percentage; whatever the entries leave of 100 ends up with the last (largest) one
    out.sort((a, b) => a.perc - b.perc);
    const total = out.reduce((s, e) => s + e.perc, 0);
    out[out.length - 1]!.perc += 100 - total;
    return out;
  },
};

const RW_MODES: Record<string, RwMode> = {
  read: 'read',
  write: 'write',
  trim: 'trim',
  randread: 'randread',
  randwrite: 'randwrite',
  randtrim: 'randtrim',
  rw: 'rw',
  readwrite: 'rw',
  randrw: 'randrw',
};
const RW_UNSUPPORTED = ['trimwrite', 'randtrimwrite'];
const RW_ALLOWED = 'read, write, trim, randread, randwrite, randtrim, rw, readwrite, randrw';

export interface RwValue {
  mode: RwMode;
  /** rw=randread:N: a new random offset every N I/Os. */
  sequence: number;
  /** rw=write:4k: bytes skipped after each sequential I/O. */
  skip: number;
}

/** rw=mode, or mode:N (random) / mode:size (sequential); a bad suffix is reported and the mode kept. */
const rwMode: Kind<RwValue> = {
  parse: (v, c) => {
    const colon = v.indexOf(':');
    const modeText = (colon < 0 ? v : v.slice(0, colon)).trim();
    const mode = Object.hasOwn(RW_MODES, modeText) ? RW_MODES[modeText] : undefined;
    if (mode === undefined) {
      if (RW_UNSUPPORTED.includes(modeText))
        throw new OptionValueError(c.key, `'${modeText}' is a fio mode remapsim does not implement (allowed: ${RW_ALLOWED})`);
      throw new OptionValueError(c.key, `invalid value '${modeText}' (allowed: ${RW_ALLOWED})`);
    }
    const rw: RwValue = { mode, sequence: 1, skip: 0 };
    if (colon < 0) return rw;
    const post = v.slice(colon + 1);
    try {
      if (mode.startsWith('rand')) rw.sequence = parseInteger(post, c.key, 1, 2 ** 32 - 1, c.kbBase);
      else rw.skip = parseSize(post, c.key, c.kbBase);
    } catch (err) {
      if (!(err instanceof OptionValueError)) throw err;
      c.report(err.detail);
    }
    return rw;
  },
};

const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseFloatStrict(text: string, option: string, what: string): number {
  const t = text.trim();
  if (!FLOAT.test(t)) throw new OptionValueError(option, `invalid ${what} '${t}' (expected a number)`);
  return Number(t);
}

const distribution: Kind<Distribution> = {
  parse: (text, c) => {
    const option = c.key;
    const parts = text.trim().split(':');
    const kind = parts[0]!;
    const params = parts.slice(1);
    if (kind === 'zoned' || kind === 'zoned_abs') {
      throw new OptionValueError(option, `'${kind}' is a fio distribution remapsim does not implement (allowed: random, zipf, pareto, normal)`);
    }
    if (kind === 'random') {
      if (params.length > 0) throw new OptionValueError(option, `'random' takes no parameters, got '${text.trim()}'`);
      return { kind: 'random' };
    }
    if (kind !== 'zipf' && kind !== 'pareto' && kind !== 'normal') {
      throw new OptionValueError(
        option,
        `invalid distribution '${text.trim()}' (allowed: random, zipf[:theta[:center]], pareto[:h[:center]], normal[:dev[:center]])`,
      );
    }
    if (params.length > 2) throw new OptionValueError(option, `too many parameters in '${text.trim()}' (at most value:center)`);
    let center: number | undefined;
    if (params[1] !== undefined) {
      center = parseFloatStrict(params[1], option, 'center');
      if (center < 0 || center > 1) throw new OptionValueError(option, `center ${center} is out of range (allowed 0 to 1)`);
    }
    const withCenter = <T extends object>(d: T): T => (center === undefined ? d : { ...d, center });
    const valueText = params[0];
    switch (kind) {
      case 'zipf': {
        const theta = valueText === undefined ? 1.1 : parseFloatStrict(valueText, option, 'zipf theta');
        if (!(theta > 0) || theta === 1) throw new OptionValueError(option, `zipf theta ${theta} is out of range (allowed: greater than 0, not 1)`);
        return withCenter({ kind: 'zipf', theta });
      }
      case 'pareto': {
        const h = valueText === undefined ? 0.2 : parseFloatStrict(valueText, option, 'pareto h');
        if (!(h > 0 && h < 1)) throw new OptionValueError(option, `pareto h ${h} is out of range (allowed: greater than 0 and less than 1)`);
        return withCenter({ kind: 'pareto', h });
      }
      case 'normal': {
        const dev = valueText === undefined ? 0 : parseFloatStrict(valueText, option, 'normal deviation');
        if (!(dev >= 0 && dev < 100)) throw new OptionValueError(option, `normal deviation ${dev} is out of range (allowed 0 to less than 100)`);
        return withCenter({ kind: 'normal', dev });
      }
    }
  },
};

const verifyKind: Kind<VerifyKind> = { parse: (v, c) => parseVerifyValue(v, c.key) };
const verifyPattern: Kind<Uint8Array> = { parse: (v, c) => parseVerifyPatternValue(v, c.key) };
const rate: Kind<PerDir<number>> = { parse: (v, c) => parseRate(v, c.key, c.kbBase) };
const rateIops: Kind<PerDir<number>> = { parse: (v, c) => parseRateIops(v, c.key, c.kbBase) };

const DEFAULT_BS = 4096;

/**
 * iodepth's bound. fio sets none (its io_uring engine refuses more than
 * 32768 entries, IORING_MAX_ENTRIES; libaio more than fs.aio-max-nr, 65536
 * by default); here every request a clone keeps in flight holds memory.
 */
export const MAX_IODEPTH = 65536;
/** numjobs' bound: fio's own limit on jobs (REAL_MAX_JOBS); each clone holds a buffer of the largest block size. */
export const MAX_NUMJOBS = 4096;

const noLimit = (): PerDir<number> => ({ read: 0, write: 0, trim: 0 });

export const JOB_OPTIONS = {
  name: option({ kind: text, default: (job) => job.name }),
  description: option({ kind: text, default: undefined }),
  rw: option({ aliases: ['readwrite'], kind: rwMode, default: { mode: 'read', sequence: 1, skip: 0 } }),
  rwmixread: option({ kind: integer(0, 100), default: 50 }),
  rwmixwrite: option({ kind: integer(0, 100), default: 50 }),
  bs: option({ aliases: ['blocksize'], kind: perDir(positiveSize, DEFAULT_BS), default: () => ({ read: DEFAULT_BS, write: DEFAULT_BS, trim: DEFAULT_BS }) }),
  bsrange: option({ aliases: ['blocksize_range'], kind: perDir(bsRange, undefined), default: undefined }),
  bssplit: option({ kind: perDir(bsSplit, undefined), default: undefined }),
  ba: option({ aliases: ['blockalign'], kind: perDir(positiveSize, undefined), default: undefined }),
  iodepth: option({
    kind: count(MAX_IODEPTH, "remapsim's limit, libaio's default in fio; fio's io_uring takes at most 32768"),
    default: 1,
  }),
  numjobs: option({ kind: count(MAX_NUMJOBS, "fio's own limit on jobs"), default: 1 }),
  size: option({ kind: sizeOrPercentZeroUnset, default: undefined }),
  offset: option({ aliases: ['fileoffset'], kind: sizeOrPercent, default: (): SizeOrPercent => ({ kind: 'bytes', bytes: 0 }) }),
  io_size: option({ aliases: ['io_limit'], kind: sizeOrPercentZeroUnset, default: undefined }),
  runtime: option({ aliases: ['timeout'], kind: time('s'), default: 0 }),
  time_based: option({ kind: flag, default: false }),
  ramp_time: option({ kind: time('s'), default: 0 }),
  rate: option({ kind: rate, default: noLimit }),
  rate_iops: option({ kind: rateIops, default: noLimit }),
  random_distribution: option({ kind: distribution, default: (): Distribution => ({ kind: 'random' }) }),
  randseed: option({ kind: integer(0), default: undefined }),
  randrepeat: option({ kind: bool, default: true }),
  norandommap: option({ kind: flag, default: false }),
  verify: option({ kind: verifyKind, default: 'none', note: "crc32c, xxhash: remapsim's header; md5, sha256, meta, pattern: fio's" }),
  verify_pattern: option({ kind: verifyPattern, default: undefined, note: 'with md5, sha256, meta, pattern' }),
  verify_only: option({ kind: flag, default: false, note: "check the blocks the job's writes left" }),
  verify_state_save: option({ kind: bool, default: true, note: "default 1: fio's state file, fio's header kinds" }),
  verify_state_load: option({ kind: bool, default: false, note: 'with verify_only' }),
  verify_backlog: option({ kind: integer(0), default: 0 }),
  continue_on_error: option({
    kind: choice<ContinueOnError>([
      ['none', 'none'],
      ['read', 'read'],
      ['write', 'write'],
      ['io', 'io'],
      ['verify', 'verify'],
      ['all', 'all'],
      ['0', 'none'],
      ['1', 'all'],
    ]),
    default: 'none',
  }),
  direct: option({ kind: bool, default: false }),
  fsync: option({ kind: integer(0, 2 ** 32 - 1), default: 0, note: 'flush the target after every N writes of a job' }),
  fdatasync: option({ kind: integer(0, 2 ** 32 - 1), default: 0, note: 'the same' }),
  filename: option({ kind: text, default: undefined, note: 'the target when --target is absent' }),
  group_reporting: option({ kind: flag, default: false }),
  thread: option({ kind: flag, default: false }),
  kb_base: option({
    kind: choice<KbBase>([
      ['1024', 1024],
      ['1000', 1000],
    ]),
    default: 1024,
    first: true,
  }),
};

export type JobOptionName = keyof typeof JOB_OPTIONS;

/** The value each option reads as, by name. */
export type JobOptionValues = { [K in JobOptionName]: (typeof JOB_OPTIONS)[K] extends JobOption<infer T> ? T : never };
