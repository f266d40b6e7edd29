/**
 * JobSpec: a typed, validated fio job. Built from an option map, whichever
 * way the map was made (job file, command-line flags, a scenario record), so
 * all three give the same answers and the same messages.
 *
 * Option names, aliases, value syntax, defaults and ranges follow fio 3.33;
 * each option's are in the table of job-options.ts, which validateJob walks
 * before checking how the options combine. Where remapsim is stricter, it
 * says so in the message: block sizes and alignments must be multiples of
 * the 512-byte sector (the model works in sectors), and values fio would
 * silently misread are refused. Options fio knows but remapsim does not
 * implement are errors unless the caller allows them (then they are listed
 * in `ignored`, never dropped silently).
 */
import { SECTOR_SIZE } from '../block/device.js';
import type { Distribution } from './distribution.js';
import { formatIssue, OptionValueError, WorkloadSpecError, type OptionSource, type SpecIssue } from './errors.js';
import { formatSize } from '../util/format-size.js';
import { JOB_OPTIONS, type JobOption, type JobOptionName, type JobOptionValues } from './job-options.js';
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
import { lookupOption, suggestOption } from './options.js';
import { type VerifyKind, verifyRules } from './verify-options.js';
import { DIRECTIONS, type Direction, type KbBase, type PerDir, type SizeOrPercent } from './size.js';

export type { Direction, PerDir, SizeOrPercent, KbBase } from './size.js';
export type { Distribution } from './distribution.js';
export type { VerifyKind } from './verify-options.js';
export { MAX_IODEPTH, MAX_NUMJOBS } from './job-options.js';

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

/** Requests in flight over all jobs of a run, iodepth x numjobs summed (each holds a tag and a buffer slot). */
export const MAX_IN_FLIGHT = 1 << 20;

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

/** The table in reading order: the options marked first (kb_base), then the rest as listed. */
const READ_ORDER = (Object.keys(JOB_OPTIONS) as JobOptionName[]).sort((a, b) => Number(!!optionOf(b).first) - Number(!!optionOf(a).first));

function optionOf(name: JobOptionName): JobOption<unknown> {
  return JOB_OPTIONS[name] as JobOption<unknown>;
}

type Report = (e: OptionEntry, message: string) => void;

/** One option's value as the job gives it; undefined when the entry has no usable value (the problem reported). */
function readEntry(e: OptionEntry, def: JobOption<unknown>, kbBase: KbBase, report: Report): { value: unknown } | undefined {
  if (e.value === null && def.kind.bare) return { value: true };
  if (!def.kind.bare && (e.value === null || e.value === '')) {
    report(e, 'missing value');
    return undefined;
  }
  try {
    return { value: def.kind.parse(e.value ?? '', { key: e.key, kbBase, report: (detail) => report(e, detail) }) };
  } catch (err) {
    if (!(err instanceof OptionValueError)) throw err;
    report(e, err.detail);
    return undefined;
  }
}

/**
 * Reads every option of the table from the job: its value, or its default
 * when absent or invalid. `read` holds the options whose value came from the job.
 */
function readOptions(section: JobSection, sources: Record<string, OptionSource>, report: Report): { values: JobOptionValues; read: Set<JobOptionName> } {
  const values: Partial<Record<JobOptionName, unknown>> = {};
  const read = new Set<JobOptionName>();
  for (const name of READ_ORDER) {
    const def = optionOf(name);
    const e = section.options.get(name);
    if (e) sources[e.name] = e.source;
    const got = e && readEntry(e, def, values.kb_base as KbBase, report);
    if (got) read.add(name);
    values[name] = got ? got.value : typeof def.default === 'function' ? def.default(section) : def.default;
  }
  return { values: values as JobOptionValues, read };
}

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

  for (const e of opt.values()) {
    if (Object.hasOwn(JOB_OPTIONS, e.name)) continue;
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

  const { values: o, read } = readOptions(section, sources, issue);
  const { mode: rw, sequence: rwSequence, skip: rwSkipBytes } = o.rw;
  const random = rw.startsWith('rand');
  const directions = directionsOf(rw);
  // rwmixread and rwmixwrite set the same split: the later of them in the job wins
  const mixLast = [...opt.keys()].filter((k) => (k === 'rwmixread' || k === 'rwmixwrite') && read.has(k)).pop();
  const rwmixread = mixLast === 'rwmixwrite' ? 100 - o.rwmixwrite : o.rwmixread;
  const { bs, bsrange, bssplit, ba, size, offset, rate, randseed } = o;
  const timeBased = o.time_based;
  const runtimeUs = o.runtime;
  const distribution = o.random_distribution;
  let norandommap = o.norandommap;
  const rules = verifyRules({
    verify: o.verify,
    verifySet: opt.has('verify'),
    pattern: o.verify_pattern,
    verifyOnly: o.verify_only,
    stateLoad: o.verify_state_load,
    timeBased,
    writes: directions.includes('write'),
  });
  for (const r of rules.issues) issue(opt.get(r.option), r.message, r.option);
  const verify = rules.verify;

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
  const anyIops = DIRECTIONS.some((d) => o.rate_iops[d] > 0);
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
    name: o.name,
    rw,
    random,
    directions,
    rwSequence,
    rwSkipBytes,
    rwmixread,
    blockSizes,
    blockAlign,
    iodepth: o.iodepth,
    numjobs: o.numjobs,
    offset,
    runtimeUs,
    timeBased,
    rampTimeUs: o.ramp_time,
    rate,
    rateIops: o.rate_iops,
    distribution,
    randrepeat: randseed !== undefined ? false : o.randrepeat,
    norandommap,
    verify,
    verifyOnly: o.verify_only,
    verifyStateSave: o.verify_state_save,
    verifyStateLoad: o.verify_state_load,
    verifyBacklog: o.verify_backlog,
    continueOnError: o.continue_on_error,
    direct: o.direct,
    fsync: o.fsync,
    fdatasync: o.fdatasync,
    groupReporting: o.group_reporting,
    thread: o.thread,
    kbBase: o.kb_base,
    ignored,
    notes,
    sources,
    options: Object.fromEntries([...opt.values()].filter((e) => !e.global).map((e) => [e.name, e.value ?? ''])),
    globalOptions: Object.fromEntries([...opt.values()].filter((e) => e.global).map((e) => [e.name, e.value ?? ''])),
    source: section.source,
  };
  if (o.description !== undefined) spec.description = o.description;
  if (size !== undefined) spec.size = size;
  if (o.io_size !== undefined) spec.ioSize = o.io_size;
  if (randseed !== undefined) spec.randseed = randseed;
  if (o.filename !== undefined) spec.filename = o.filename;
  if (o.verify_pattern !== undefined) spec.verifyPattern = o.verify_pattern;
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
