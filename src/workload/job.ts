/**
 * JobSpec: a typed, validated fio job. Built from an option map, whichever
 * way the map was made (job file, command-line flags, a scenario record), so
 * all three give the same answers and the same messages.
 *
 * Option names, aliases, value syntax, defaults and ranges follow fio 3.33.
 * Where remapsim is stricter, it says so in the message: block sizes and
 * alignments must be multiples of the 512-byte sector (the model works in
 * sectors), and values fio would silently misread are refused. Options fio
 * knows but remapsim does not implement are errors unless the caller allows
 * them (then they are listed in `ignored`, never dropped silently).
 */
import { SECTOR_SIZE } from '../block/device.js';
import type { Distribution } from './distribution.js';
import { formatIssue, OptionValueError, WorkloadSpecError, type OptionSource, type SpecIssue } from './errors.js';
import { formatSize } from '../util/format-size.js';
import {
  loadJobFile,
  makeEntry,
  parseJobFile,
  setOption,
  substituteKeywords,
  systemKeywords,
  type JobFileOptions,
  type JobSection,
  type Keywords,
  type OptionEntry,
  type OptionMap,
} from './jobfile.js';
import { lookupOption, suggestOption, SUPPORTED_OPTIONS } from './options.js';
import { parseVerifyPatternValue, parseVerifyValue, type VerifyKind, verifyRules } from './verify-options.js';
import {
  DIRECTIONS,
  parseBool,
  parseInteger,
  parsePerDir,
  parseRate,
  parseRateIops,
  parseSize,
  parseSizeOrPercent,
  parseTime,
  type Direction,
  type KbBase,
  type PerDir,
  type SizeOrPercent,
} from './size.js';

export type { Direction, PerDir, SizeOrPercent, KbBase } from './size.js';
export type { Distribution } from './distribution.js';
export type { VerifyKind } from './verify-options.js';

export type RwMode = 'read' | 'write' | 'trim' | 'randread' | 'randwrite' | 'randtrim' | 'rw' | 'randrw';

export interface BsSplitEntry {
  bs: number;
  /** Percent of I/Os; the entries of one direction add up to 100. */
  perc: number;
}

/** The block sizes of one direction: fixed (min = max), a range, or a weighted split. */
export interface BlockSizes {
  min: number;
  max: number;
  /** Non-empty when bssplit= applies; sorted by percentage as fio sorts it. */
  split: readonly BsSplitEntry[];
}

export type ContinueOnError = 'none' | 'read' | 'write' | 'io' | 'verify' | 'all';

export interface JobSpec {
  name: string;
  description?: string;
  rw: RwMode;
  /** Random offsets (randread, randwrite, randtrim, randrw). */
  random: boolean;
  /** The kinds of I/O the job issues. */
  directions: readonly Direction[];
  /** rw=randread:N: a new random offset every N I/Os, sequential in between (1 = every I/O). */
  rwSequence: number;
  /** rw=write:4k: bytes skipped after each sequential I/O (holes). */
  rwSkipBytes: number;
  /** Percent of mixed I/O that reads (rwmixread, or 100 - rwmixwrite; the later one wins). */
  rwmixread: number;
  blockSizes: PerDir<BlockSizes>;
  /** Alignment of random offsets (blockalign=); the minimum block size unless set. */
  blockAlign: PerDir<number>;
  iodepth: number;
  numjobs: number;
  /** Region size; undefined = the device (from offset to the end). */
  size?: SizeOrPercent;
  offset: SizeOrPercent;
  /** Bytes of I/O before the job ends; undefined = the region size. */
  ioSize?: SizeOrPercent;
  /** 0 = no time limit. */
  runtimeUs: number;
  timeBased: boolean;
  rampTimeUs: number;
  /** Bytes per second per direction; 0 = no limit. */
  rate: PerDir<number>;
  /** I/Os per second per direction; 0 = no limit. */
  rateIops: PerDir<number>;
  distribution: Distribution;
  randseed?: number;
  randrepeat: boolean;
  /** Whether random I/O may hit a block twice in a pass (set, or forced as fio forces it). */
  norandommap: boolean;
  verify: VerifyKind;
  /** verify_pattern's bytes: the data of every verified block (fio's header kinds). */
  verifyPattern?: Uint8Array;
  /** verify_only: replay the job's writes as reads and check the blocks are intact, writing nothing. */
  verifyOnly: boolean;
  /** verify_state_save (fio's default 1): write fio's local-<name>-<index>-verify.state at the end of a write job (fio's header kinds). */
  verifyStateSave: boolean;
  /** verify_state_load: a verify_only pass stops where that state says the writes stopped. */
  verifyStateLoad: boolean;
  verifyBacklog: number;
  continueOnError: ContinueOnError;
  direct: boolean;
  /** fsync=N: flush the device after every N writes of a clone (0 = never). */
  fsync: number;
  /** fdatasync=N: the same with fdatasync (0 = never); the device's flush is fdatasync either way. */
  fdatasync: number;
  filename?: string;
  groupReporting: boolean;
  thread: boolean;
  kbBase: KbBase;
  /** Options fio knows that remapsim does not implement, when the caller allowed them. */
  ignored: readonly OptionEntry[];
  /** Adjustments fio would also make, worth telling the user (e.g. blockalign turning off the random map). */
  notes: readonly string[];
  /** Where each option that was set came from, by fio name. */
  sources: Readonly<Record<string, OptionSource>>;
  /** The job's own options as written (fio name -> value text; '' for a bare flag): fio prints these as "job options". */
  options: Readonly<Record<string, string>>;
  /** The options it took from [global] sections or command-line globals: fio prints them once, as "global options". */
  globalOptions: Readonly<Record<string, string>>;
  /** Where the job itself was defined. */
  source?: OptionSource;
}

export interface ValidateOptions {
  /** Accept options fio knows but remapsim does not implement (listed in JobSpec.ignored). */
  allowUnsupported?: boolean;
}

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

const CONTINUE: Record<string, ContinueOnError> = {
  none: 'none',
  read: 'read',
  write: 'write',
  io: 'io',
  verify: 'verify',
  all: 'all',
  '0': 'none',
  '1': 'all',
};

const DEFAULT_BS = 4096;

/**
 * iodepth's bound. fio sets none (its io_uring engine refuses more than
 * 32768 entries, IORING_MAX_ENTRIES; libaio more than fs.aio-max-nr, 65536
 * by default); here every request a clone keeps in flight holds memory.
 */
export const MAX_IODEPTH = 65536;
/** numjobs' bound: fio's own limit on jobs (REAL_MAX_JOBS); each clone holds a buffer of the largest block size. */
export const MAX_NUMJOBS = 4096;
/** Requests in flight over all jobs of a run, iodepth x numjobs summed (each holds a tag and a buffer slot). */
export const MAX_IN_FLIGHT = 1 << 20;

/** A count of at least 1 and at most `max`; the message names the limit and `why` it is there. */
function boundedCount(text: string, option: string, max: number, why: string, kbBase: KbBase): number {
  const n = parseInteger(text, option, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, kbBase);
  if (n < 1 || n > max) throw new OptionValueError(option, `${n} is out of range (allowed 1 to ${max}: ${why})`);
  return n;
}

const supportedNames = new Set(SUPPORTED_OPTIONS.map((d) => d.name));

function directionsOf(rw: RwMode): Direction[] {
  switch (rw) {
    case 'read':
    case 'randread':
      return ['read'];
    case 'write':
    case 'randwrite':
      return ['write'];
    case 'trim':
    case 'randtrim':
      return ['trim'];
    case 'rw':
    case 'randrw':
      return ['read', 'write'];
  }
}

const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseFloatStrict(text: string, option: string, what: string): number {
  const t = text.trim();
  if (!FLOAT.test(t)) throw new OptionValueError(option, `invalid ${what} '${t}' (expected a number)`);
  return Number(t);
}

function parseDistribution(text: string, option: string): Distribution {
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
}

function parseBsRange(text: string, option: string, kb: KbBase): { min: number; max: number } {
  const t = text.trim();
  let sep = t.indexOf('-');
  if (sep < 0) sep = t.indexOf(':');
  if (sep < 0) throw new OptionValueError(option, `invalid range '${t}' (expected min-max, such as 1k-4k)`);
  let a = parseSize(t.slice(0, sep), option, kb);
  let b = parseSize(t.slice(sep + 1), option, kb);
  if (a > b) [a, b] = [b, a];
  if (a < 1) throw new OptionValueError(option, `block size must be at least 1 byte in '${t}'`);
  return { min: a, max: b };
}

const BSSPLIT_MAX = 64;

/** One direction of bssplit=, with fio's rules for blank or zero percentages (they share what is left). */
function parseBsSplit(text: string, option: string, kb: KbBase): BsSplitEntry[] {
  const t = text.trim();
  const items = t.split(':');
  if (items[items.length - 1] === '') items.pop();
  if (items.length > BSSPLIT_MAX) throw new OptionValueError(option, `too many entries (at most ${BSSPLIT_MAX} per direction)`);
  const entries: { bs: number; perc: number | undefined }[] = [];
  for (const item of items) {
    if (item.trim() === '') throw new OptionValueError(option, `empty entry in '${t}' (expected size/percent:size/percent)`);
    const slash = item.indexOf('/');
    const bs = parseSize(slash < 0 ? item : item.slice(0, slash), option, kb);
    if (bs < 1) throw new OptionValueError(option, `block size must be at least 1 byte in '${item.trim()}'`);
    let perc: number | undefined;
    if (slash >= 0 && item.slice(slash + 1).trim() !== '') {
      const p = item.slice(slash + 1).trim();
      if (!/^\d+$/.test(p) || Number(p) > 100) throw new OptionValueError(option, `invalid percentage '${p}' in '${item.trim()}' (allowed 0 to 100)`);
      perc = Number(p) === 0 ? undefined : Number(p);
    }
    entries.push({ bs, perc });
  }
  const given = entries.reduce((s, e) => s + (e.perc ?? 0), 0);
  const missing = entries.filter((e) => e.perc === undefined).length;
  if (given > 100) throw new OptionValueError(option, `percentages add up to ${given}, more than 100`);
  const share = missing === 0 ? 0 : Math.floor((100 - given) / missing);
  const out = entries.map((e) => ({ bs: e.bs, perc: e.perc ?? share }));
  // fio sorts by percentage; whatever the entries leave of 100 ends up with the last (largest) one
  out.sort((a, b) => a.perc - b.perc);
  const total = out.reduce((s, e) => s + e.perc, 0);
  out[out.length - 1]!.perc += 100 - total;
  return out;
}

/** In file order (files in the order they first appear), so the messages read like the job file. */
function sortIssues(issues: SpecIssue[]): SpecIssue[] {
  const files: string[] = [];
  for (const i of issues) if (i.source && !files.includes(i.source.file)) files.push(i.source.file);
  const key = (i: SpecIssue): [number, number] => [i.source ? files.indexOf(i.source.file) : files.length, i.source?.line ?? Infinity];
  return issues
    .map((i, n) => ({ i, n, k: key(i) }))
    .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.n - b.n)
    .map((x) => x.i);
}

type EntryParser<T> = (value: string, entry: OptionEntry) => T;

/** Validates one job's options. Throws a WorkloadSpecError listing every problem with its source. */
export function validateJob(section: JobSection, options: ValidateOptions = {}): JobSpec {
  const issues: SpecIssue[] = [];
  const opt = section.options;
  const sources: Record<string, OptionSource> = {};
  const ignored: OptionEntry[] = [];
  const notes: string[] = [];

  const issue = (e: OptionEntry | undefined, message: string, option?: string): void => {
    issues.push({ source: e?.source ?? section.source, option: option ?? e?.key, message });
  };

  const run = <T>(e: OptionEntry, fn: EntryParser<T>): T | undefined => {
    sources[e.name] = e.source;
    try {
      return fn(e.value ?? '', e);
    } catch (err) {
      if (err instanceof OptionValueError) {
        issue(e, err.detail);
        return undefined;
      }
      throw err;
    }
  };

  /** Parses a value option if set; undefined when absent or invalid (the issue is recorded). */
  const value = <T>(name: string, fn: EntryParser<T>): T | undefined => {
    const e = opt.get(name);
    if (!e) return undefined;
    if (e.value === null || e.value === '') {
      sources[e.name] = e.source;
      issue(e, 'missing value');
      return undefined;
    }
    return run(e, fn);
  };

  const flag = (name: string): boolean | undefined => {
    const e = opt.get(name);
    if (!e) return undefined;
    sources[e.name] = e.source;
    if (e.value === null) return true;
    return run(e, (v) => parseBool(v, e.key));
  };

  for (const e of opt.values()) {
    if (supportedNames.has(e.name)) continue;
    const found = lookupOption(e.key);
    const engine = found.status === 'unsupported' && found.engine;
    if (options.allowUnsupported) {
      ignored.push(e);
      continue;
    }
    issue(
      e,
      engine
        ? `'${e.key}' is an option of one of fio's I/O engines; remapsim does not use fio's engines`
        : `'${e.key}' is a fio option remapsim does not implement`,
      '',
    );
  }

  const kbBase =
    value<KbBase>('kb_base', (v, e) => {
      if (v === '1024') return 1024;
      if (v === '1000') return 1000;
      throw new OptionValueError(e.key, `invalid value '${v}' (allowed 1024 or 1000)`);
    }) ?? 1024;

  const name = value('name', (v) => v) ?? section.name;
  const description = value('description', (v) => v);

  let rw: RwMode = 'read';
  let rwSequence = 1;
  let rwSkipBytes = 0;
  value('rw', (v, e) => {
    const colon = v.indexOf(':');
    const modeText = (colon < 0 ? v : v.slice(0, colon)).trim();
    const mode = RW_MODES[modeText];
    if (mode === undefined) {
      if (RW_UNSUPPORTED.includes(modeText))
        throw new OptionValueError(e.key, `'${modeText}' is a fio mode remapsim does not implement (allowed: ${RW_ALLOWED})`);
      throw new OptionValueError(e.key, `invalid value '${modeText}' (allowed: ${RW_ALLOWED})`);
    }
    rw = mode;
    if (colon >= 0) {
      const post = v.slice(colon + 1);
      if (mode.startsWith('rand')) rwSequence = parseInteger(post, e.key, 1, 2 ** 32 - 1, kbBase);
      else rwSkipBytes = parseSize(post, e.key, kbBase);
    }
  });
  const random = rw.startsWith('rand');
  const directions = directionsOf(rw);

  let rwmixread = 50;
  for (const e of opt.values()) {
    if (e.name !== 'rwmixread' && e.name !== 'rwmixwrite') continue;
    const v = value(e.name, (t) => parseInteger(t, e.key, 0, 100, kbBase));
    if (v !== undefined) rwmixread = e.name === 'rwmixread' ? v : 100 - v;
  }

  const positiveSize = (key: string) => (p: string) => {
    const n = parseSize(p, key, kbBase);
    if (n < 1) throw new OptionValueError(key, `must be at least 1 byte, got '${p.trim()}'`);
    return n;
  };
  const bs = value('bs', (v, e) => parsePerDir(v, e.key, positiveSize(e.key), DEFAULT_BS)) ?? { read: DEFAULT_BS, write: DEFAULT_BS, trim: DEFAULT_BS };
  const bsrange = value('bsrange', (v, e) => parsePerDir<{ min: number; max: number } | undefined>(v, e.key, (p) => parseBsRange(p, e.key, kbBase), undefined));
  const bssplit = value('bssplit', (v, e) => parsePerDir<BsSplitEntry[] | undefined>(v, e.key, (p) => parseBsSplit(p, e.key, kbBase), undefined));
  const ba = value('ba', (v, e) => parsePerDir<number | undefined>(v, e.key, positiveSize(e.key), undefined));

  const iodepth =
    value('iodepth', (v, e) => boundedCount(v, e.key, MAX_IODEPTH, "remapsim's limit, libaio's default in fio; fio's io_uring takes at most 32768", kbBase)) ??
    1;
  const numjobs = value('numjobs', (v, e) => boundedCount(v, e.key, MAX_NUMJOBS, "fio's own limit on jobs", kbBase)) ?? 1;
  const sizeOpt = value('size', (v, e) => parseSizeOrPercent(v, e.key, kbBase));
  const size = sizeOpt && sizeOpt.kind === 'bytes' && sizeOpt.bytes === 0 ? undefined : sizeOpt; // fio: size=0 means the whole device
  const offset = value('offset', (v, e) => parseSizeOrPercent(v, e.key, kbBase)) ?? { kind: 'bytes', bytes: 0 };
  const ioSizeOpt = value('io_size', (v, e) => parseSizeOrPercent(v, e.key, kbBase));
  const ioSize = ioSizeOpt && ioSizeOpt.kind === 'bytes' && ioSizeOpt.bytes === 0 ? undefined : ioSizeOpt;
  const runtimeUs = value('runtime', (v, e) => parseTime(v, e.key, 's')) ?? 0;
  const timeBased = flag('time_based') ?? false;
  const rampTimeUs = value('ramp_time', (v, e) => parseTime(v, e.key, 's')) ?? 0;
  const zero = { read: 0, write: 0, trim: 0 };
  const rate = value('rate', (v, e) => parseRate(v, e.key, kbBase)) ?? zero;
  const rateIops = value('rate_iops', (v, e) => parseRateIops(v, e.key, kbBase)) ?? zero;
  const distribution = value('random_distribution', (v, e) => parseDistribution(v, e.key)) ?? { kind: 'random' };
  const randseed = value('randseed', (v, e) => parseInteger(v, e.key, 0, Number.MAX_SAFE_INTEGER, kbBase));
  const randrepeat = value('randrepeat', (v, e) => parseBool(v, e.key)) ?? true;
  let norandommap = flag('norandommap') ?? false;
  const verifyPattern = value('verify_pattern', (v, e) => parseVerifyPatternValue(v, e.key));
  const verifyOnly = flag('verify_only') ?? false;
  const verifyStateSave = value('verify_state_save', (v, e) => parseBool(v, e.key)) ?? true;
  const verifyStateLoad = value('verify_state_load', (v, e) => parseBool(v, e.key)) ?? false;
  const rules = verifyRules({
    verify: value('verify', (v, e) => parseVerifyValue(v, e.key)) ?? 'none',
    verifySet: opt.has('verify'),
    pattern: verifyPattern,
    verifyOnly,
    stateLoad: verifyStateLoad,
    timeBased,
    writes: directions.includes('write'),
  });
  for (const r of rules.issues) issue(opt.get(r.option), r.message, r.option);
  const verify = rules.verify;
  const verifyBacklog = value('verify_backlog', (v, e) => parseInteger(v, e.key, 0, Number.MAX_SAFE_INTEGER, kbBase)) ?? 0;
  const continueOnError =
    value<ContinueOnError>('continue_on_error', (v, e) => {
      const c = CONTINUE[v];
      if (c) return c;
      throw new OptionValueError(e.key, `invalid value '${v}' (allowed: none, read, write, io, verify, all, 0, 1)`);
    }) ?? 'none';
  const direct = value('direct', (v, e) => parseBool(v, e.key)) ?? false;
  const fsync = value('fsync', (v, e) => parseInteger(v, e.key, 0, 2 ** 32 - 1, kbBase)) ?? 0;
  const fdatasync = value('fdatasync', (v, e) => parseInteger(v, e.key, 0, 2 ** 32 - 1, kbBase)) ?? 0;
  const filename = value('filename', (v) => v);
  const groupReporting = flag('group_reporting') ?? false;
  const thread = flag('thread') ?? false;

  // Block sizes per direction: bssplit over bsrange over bs (fio's precedence).
  const blockSizes = {} as PerDir<BlockSizes>;
  const blockAlign = {} as PerDir<number>;
  const bsOption = {} as PerDir<string>;
  for (const d of DIRECTIONS) {
    const split = bssplit?.[d];
    const range = bsrange?.[d];
    if (split && split.length > 0) {
      const sizes = split.map((s) => s.bs);
      blockSizes[d] = { min: Math.min(...sizes), max: Math.max(...sizes), split };
      bsOption[d] = opt.get('bssplit')!.key;
    } else if (range) {
      blockSizes[d] = { min: range.min, max: range.max, split: [] };
      bsOption[d] = opt.get('bsrange')!.key;
    } else {
      blockSizes[d] = { min: bs[d], max: bs[d], split: [] };
      bsOption[d] = opt.get('bs')?.key ?? 'bs';
    }
    // fio: blockalign only matters for random I/O and defaults to the minimum block size
    blockAlign[d] = random && ba?.[d] !== undefined ? ba[d]! : blockSizes[d].min;
  }

  for (const d of directions) {
    const b = blockSizes[d];
    const e = opt.get(bsOption[d]) ?? opt.get('bs');
    for (const s of new Set([b.min, b.max, ...b.split.map((x) => x.bs)])) {
      if (s % SECTOR_SIZE !== 0) issue(e, `${d} block size ${s} is not a multiple of ${SECTOR_SIZE} (the sector size)`, bsOption[d]);
    }
    if (opt.has('ba') && blockAlign[d] % SECTOR_SIZE !== 0)
      issue(opt.get('ba'), `${d} alignment ${blockAlign[d]} is not a multiple of ${SECTOR_SIZE} (the sector size)`);
  }
  if (rwSkipBytes % SECTOR_SIZE !== 0) issue(opt.get('rw'), `the skip in '${opt.get('rw')?.value}' is not a multiple of ${SECTOR_SIZE} (the sector size)`);
  if (offset.kind === 'bytes' && offset.bytes % SECTOR_SIZE !== 0)
    issue(opt.get('offset'), `${offset.bytes} is not a multiple of ${SECTOR_SIZE} (the sector size)`);

  const minBs = Math.min(...directions.map((d) => blockSizes[d].min));
  if (size?.kind === 'bytes' && size.bytes < minBs) {
    issue(opt.get('size'), `${size.bytes} is smaller than the minimum block size (${formatSize(minBs)})`);
  }
  if (timeBased && runtimeUs === 0) {
    issue(opt.get('time_based'), 'needs a runtime (fio ignores time_based without one)');
  }
  const anyRate = DIRECTIONS.some((d) => rate[d] > 0);
  const anyIops = DIRECTIONS.some((d) => rateIops[d] > 0);
  if (anyRate && anyIops) issue(opt.get('rate_iops'), 'rate and rate_iops are mutually exclusive (as in fio)');

  if (random && !norandommap) {
    if (distribution.kind !== 'random') {
      norandommap = true;
      notes.push(`random_distribution=${distribution.kind} turns off the random map (blocks may repeat within a pass), as in fio`);
    } else if (directions.some((d) => blockAlign[d] !== blockSizes[d].min)) {
      norandommap = true;
      notes.push('blockalign different from the block size turns off the random map, as in fio');
    }
  }
  if (norandommap && verify !== 'none' && directions.some((d) => blockSizes[d].min !== blockSizes[d].max)) {
    notes.push('norandommap with variable block sizes: only blocks not partly overwritten can be verified, as in fio');
  }

  if (issues.length > 0) throw new WorkloadSpecError(sortIssues(issues));

  const spec: JobSpec = {
    name,
    rw,
    random,
    directions,
    rwSequence,
    rwSkipBytes,
    rwmixread,
    blockSizes,
    blockAlign,
    iodepth,
    numjobs,
    offset,
    runtimeUs,
    timeBased,
    rampTimeUs,
    rate,
    rateIops,
    distribution,
    randrepeat: randseed !== undefined ? false : randrepeat,
    norandommap,
    verify,
    verifyOnly,
    verifyStateSave,
    verifyStateLoad,
    verifyBacklog,
    continueOnError,
    direct,
    fsync,
    fdatasync,
    groupReporting,
    thread,
    kbBase,
    ignored,
    notes,
    sources,
    options: Object.fromEntries([...opt.values()].filter((e) => !e.global).map((e) => [e.name, e.value ?? ''])),
    globalOptions: Object.fromEntries([...opt.values()].filter((e) => e.global).map((e) => [e.name, e.value ?? ''])),
    source: section.source,
  };
  if (description !== undefined) spec.description = description;
  if (size !== undefined) spec.size = size;
  if (ioSize !== undefined) spec.ioSize = ioSize;
  if (randseed !== undefined) spec.randseed = randseed;
  if (filename !== undefined) spec.filename = filename;
  if (verifyPattern !== undefined) spec.verifyPattern = verifyPattern;
  return spec;
}

/** Validates several jobs, reporting the problems of all of them together. */
export function validateJobs(sections: readonly JobSection[], options: ValidateOptions = {}): JobSpec[] {
  const issues: SpecIssue[] = [];
  const specs: JobSpec[] = [];
  for (const s of sections) {
    try {
      specs.push(validateJob(s, options));
    } catch (err) {
      if (!(err instanceof WorkloadSpecError)) throw err;
      issues.push(...err.issues);
    }
  }
  if (issues.length > 0) {
    // a bad [global] option is copied into every job: report it once
    const seen = new Set<string>();
    throw new WorkloadSpecError(issues.filter((i) => !seen.has(formatIssue(i)) && seen.add(formatIssue(i))));
  }
  return specs;
}

/** Parses and validates job-file text. */
export function parseJobs(text: string, options: JobFileOptions & ValidateOptions = {}): JobSpec[] {
  return requireJobs(validateJobs(parseJobFile(text, options), options), options.file ?? 'job file');
}

/** Reads, parses and validates a job file. */
export function loadJobs(file: string, options: Omit<JobFileOptions, 'file'> & ValidateOptions = {}): JobSpec[] {
  return requireJobs(validateJobs(loadJobFile(file, options), options), file);
}

function requireJobs(jobs: JobSpec[], file: string): JobSpec[] {
  if (jobs.length === 0) throw new WorkloadSpecError({ source: { file }, message: 'no jobs defined (only [global] sections)' });
  return jobs;
}

export interface ArgvResult {
  /** Options before the first --name: defaults for every job, job files included (as in fio). */
  global: OptionMap;
  /** One per --name, each starting from the global options. */
  jobs: JobSection[];
  /** Arguments that are not options (job files, for instance). */
  positionals: string[];
}

/**
 * fio-style command-line options, as commander passes them through:
 * `--rw randrw --bs 4k --size=256M --iodepth 16 --time_based`. A value
 * follows the flag (`--bs 4k`) or an `=` (`--bs=4k`); options such as
 * time_based may stand alone or take 0/1. `--time-based` is accepted for
 * `--time_based`. Each `--name` starts a job, as in fio; `--` ends options.
 */
export function optionsFromArgv(argv: readonly string[], options: { keywords?: Keywords; sourceName?: string } = {}): ArgvResult {
  const keywords = options.keywords ?? systemKeywords();
  const source: OptionSource = { file: options.sourceName ?? 'command line' };
  const issues: SpecIssue[] = [];
  const global: OptionMap = new Map();
  const jobs: JobSection[] = [];
  const positionals: string[] = [];
  let current = global;

  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!tok.startsWith('--')) {
      positionals.push(tok);
      continue;
    }
    const body = tok.slice(2);
    const eq = body.indexOf('=');
    let key = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    if (lookupOption(key).status === 'unknown' && lookupOption(key.replace(/-/g, '_')).status !== 'unknown') key = key.replace(/-/g, '_');
    const next = argv[i + 1];
    const found = lookupOption(key);
    const isFlag = found.status === 'supported' && found.def.kind === 'flag';
    let val: string | null;
    if (inline !== undefined) val = inline;
    else if (isFlag) {
      val = next === '0' || next === '1' ? next : null;
      if (val !== null) i++;
    } else if (next !== undefined && !next.startsWith('--')) {
      val = next;
      i++;
    } else val = null;

    if (found.status === 'unknown') {
      const hint = suggestOption(key);
      issues.push({ source, message: `unknown option '--${key}'${hint ? ` (did you mean '--${hint}'?)` : ''}` });
      continue;
    }
    const entry = makeEntry(key, val === null ? null : substituteKeywords(val, keywords), source) as OptionEntry;
    if (entry.name === 'name') {
      if (entry.value === null || entry.value === '') {
        issues.push({ source, option: 'name', message: 'missing value' });
        continue;
      }
      const job: JobSection = { name: entry.value, source, options: new Map(global) };
      setOption(job.options, entry);
      jobs.push(job);
      current = job.options;
      continue;
    }
    if (current === global) entry.global = true;
    setOption(current, entry);
  }
  if (issues.length > 0) throw new WorkloadSpecError(issues);
  return { global, jobs, positionals };
}

/**
 * Jobs from a command line: job files named as positionals (with the
 * command-line globals as their defaults), then --name jobs; with neither,
 * the options themselves make one job called 'job'.
 */
export function jobsFromArgv(argv: readonly string[], options: Omit<JobFileOptions, 'file' | 'defaults'> & ValidateOptions = {}): JobSpec[] {
  const parsed = optionsFromArgv(argv, options);
  const sections: JobSection[] = [];
  for (const file of parsed.positionals) sections.push(...loadJobFile(file, { ...options, defaults: parsed.global }));
  sections.push(...parsed.jobs);
  if (sections.length === 0 && parsed.global.size > 0) {
    // no --name and no job file: the options are the job's own (fio would want a --name)
    const own: OptionMap = new Map([...parsed.global].map(([k, e]) => [k, { ...e, global: false }]));
    sections.push({ name: 'job', source: { file: 'command line' }, options: own });
  }
  if (sections.length === 0)
    throw new WorkloadSpecError({ source: { file: 'command line' }, message: 'no jobs defined (give a job file or options such as --rw)' });
  return validateJobs(sections, options);
}

export type OptionRecord = Readonly<Record<string, string | number | boolean | null | undefined>>;

/**
 * An option map from a plain object (a scenario file, a test): `{ rw:
 * 'randread', bs: '4k', iodepth: 16, time_based: true }`. Numbers become
 * their decimal text; for flags true means set and false means 0.
 */
export function optionMapFromRecord(record: OptionRecord, source: OptionSource = { file: 'scenario' }): OptionMap {
  const issues: SpecIssue[] = [];
  const map: OptionMap = new Map();
  for (const [key, raw] of Object.entries(record)) {
    if (raw === undefined) continue;
    let v: string | null;
    const found = lookupOption(key);
    const isFlag = found.status === 'supported' && found.def.kind === 'flag';
    if (raw === null) v = null;
    else if (typeof raw === 'boolean') v = isFlag ? (raw ? null : '0') : raw ? '1' : '0';
    else if (typeof raw === 'number') {
      if (!Number.isFinite(raw)) {
        issues.push({ source, option: key, message: `invalid value ${raw}` });
        continue;
      }
      v = String(raw);
    } else v = raw;
    const entry = makeEntry(key, v, source);
    if ('key' in entry) setOption(map, entry);
    else issues.push(entry);
  }
  if (issues.length > 0) throw new WorkloadSpecError(issues);
  return map;
}

/** A validated job from a plain object; its name comes from `name` or defaults to 'job'. */
export function jobFromRecord(record: OptionRecord, options: ValidateOptions & { source?: OptionSource } = {}): JobSpec {
  const source = options.source ?? { file: 'scenario' };
  const map = optionMapFromRecord(record, source);
  return validateJob({ name: typeof record.name === 'string' ? record.name : 'job', source, options: map }, options);
}

/** Refuses jobs that together keep more than MAX_IN_FLIGHT requests in flight (iodepth x numjobs, summed), before any memory is taken for them. */
export function checkInFlight(jobs: readonly JobSpec[]): void {
  const total = jobs.reduce((a, j) => a + j.iodepth * j.numjobs, 0);
  if (total > MAX_IN_FLIGHT) {
    const each = jobs.map((j) => `${j.name}: ${j.iodepth} x ${j.numjobs}`).join(', ');
    throw new WorkloadSpecError({
      option: 'iodepth',
      message: `the jobs keep ${total} requests in flight (iodepth x numjobs: ${each}); at most ${MAX_IN_FLIGHT} over all jobs`,
    });
  }
}

/** Writes between two flushes of one clone (fsync= or fdatasync=, the smaller when both are set); 0 = the job never flushes. */
export function flushInterval(spec: JobSpec): number {
  const set = [spec.fsync, spec.fdatasync].filter((n) => n > 0);
  return set.length === 0 ? 0 : Math.min(...set);
}

/** The smallest block size the job issues. */
export function minBlockSize(spec: JobSpec): number {
  return Math.min(...spec.directions.map((d) => spec.blockSizes[d].min));
}
