/**
 * Results in the shape of `fio --output-format=json` (fio 3.33), or json+
 * with fio's latency bins (fio-bins.ts): same keys,
 * same key order, same units, ints where fio prints ints and floats where fio
 * prints "%f". `buildFioResult` makes the object; `formatFioJson` prints it
 * the way fio's json.c does (two-space indent, `"key" : value`, floats with
 * six decimals).
 *
 * Not produced: `disk_util` (per-disk kernel counters; the engine does not
 * sample /sys/block), and the fields fio adds only for options we do not have
 * (`prios`, `cachehit`, `total_err`, `desc`, `block`, `steadystate`,
 * `zone_resets`, `mixed`). Two blocks fio does not have are appended to a job
 * when given: `verify` and `remap`, printed as the caller passed them.
 */
import { VERSION } from '../version.js';
import { cFixed, ctime } from './fio-format.js';
import { fioBins } from './fio-bins.js';
import { FIO_LAT_BOUNDS, FIO_PERCENTILES, LatencyHistogram, LatencyStats } from './latency.js';
import { DIRECTIONS, sampleStats } from './series.js';
import type { Direction } from './series.js';

export interface FioLatBlock {
  min: number;
  max: number;
  mean: number;
  stddev: number;
  N: number;
  /** Present when percentiles apply (clat, sync) and N > 0. */
  percentile?: Record<string, number>;
  /** json+ only, beside percentile: fio's latency bins (bucket value in ns -> count). */
  bins?: Record<string, number>;
}

export interface FioDirBlock {
  io_bytes: number;
  io_kbytes: number;
  bw_bytes: number;
  /** KiB/s */
  bw: number;
  iops: number;
  /** ms */
  runtime: number;
  total_ios: number;
  short_ios: number;
  drop_ios: number;
  slat_ns: FioLatBlock;
  clat_ns: FioLatBlock;
  lat_ns: FioLatBlock;
  bw_min: number;
  bw_max: number;
  bw_agg: number;
  bw_mean: number;
  bw_dev: number;
  bw_samples: number;
  iops_min: number;
  iops_max: number;
  iops_mean: number;
  iops_stddev: number;
  iops_samples: number;
}

export interface FioSyncBlock {
  total_ios: number;
  lat_ns: FioLatBlock;
}

export interface FioJob {
  jobname: string;
  groupid: number;
  error: number;
  eta: number;
  elapsed: number;
  'job options'?: Record<string, string>;
  read: FioDirBlock;
  write: FioDirBlock;
  trim: FioDirBlock;
  sync: FioSyncBlock;
  job_runtime: number;
  usr_cpu: number;
  sys_cpu: number;
  ctx: number;
  majf: number;
  minf: number;
  iodepth_level: Record<string, number>;
  iodepth_submit: Record<string, number>;
  iodepth_complete: Record<string, number>;
  latency_ns: Record<string, number>;
  latency_us: Record<string, number>;
  latency_ms: Record<string, number>;
  latency_depth: number;
  latency_target: number;
  latency_percentile: number;
  latency_window: number;
  verify?: unknown;
  remap?: unknown;
}

export interface FioResult {
  'fio version': string;
  timestamp: number;
  timestamp_ms: number;
  time: string;
  'global options'?: Record<string, string>;
  jobs: FioJob[];
  /** remapsim's own run-wide data (engine, timeline, device map), printed as given. */
  remapsim?: Record<string, unknown>;
}

/** One direction's measurements. */
export interface DirectionInput {
  /** Bytes completed. */
  ioBytes: number;
  /** I/Os completed. */
  totalIos: number;
  shortIos?: number;
  dropIos?: number;
  /** Time this direction ran (ms); default: the job's runtime if it did any I/O, else 0. */
  runtimeMs?: number;
  /** Completion latency (submission to completion). */
  clat?: LatencyHistogram;
  /** Total latency (queued to completion); default: clat. */
  lat?: LatencyStats;
  /** Submission latency; default: none (fio prints N = 0 for sync engines). */
  slat?: LatencyStats;
  /** Bandwidth samples in KiB/s (IoSeries.bwSamples). */
  bwSamples?: readonly number[];
  /** IOPS samples (IoSeries.iopsSamples). */
  iopsSamples?: readonly number[];
  /** Group aggregate bandwidth (bytes/s) for bw_agg; default: this job's own. */
  groupBwBytes?: number;
}

/** Counts for fio's seven depth buckets (see depthLevelBucket / batchBucket). */
export interface DepthCounts {
  level?: readonly number[];
  submit?: readonly number[];
  complete?: readonly number[];
}

export interface JobInput {
  name: string;
  groupid?: number;
  /** errno the job ended with (0 = none). */
  error?: number;
  /** Wall time since the run started, setup included (ms); fio prints whole seconds, rounded up. */
  elapsedMs: number;
  /** Time the job ran (ms). */
  runtimeMs: number;
  options?: Record<string, string>;
  read?: DirectionInput;
  write?: DirectionInput;
  trim?: DirectionInput;
  /** Flush latencies (fio's fsync/fdatasync "sync" block). */
  sync?: LatencyStats;
  /** CPU time used by the job (ms). */
  cpu?: { userMs: number; systemMs: number };
  ctx?: number;
  majf?: number;
  minf?: number;
  /** Queue depth; default 1. */
  iodepth?: number;
  /** Raw depth counts; default: every I/O at `iodepth`, submitted and completed one at a time. */
  depth?: DepthCounts;
  latencyTarget?: { targetNs?: number; windowUs?: number; percentile?: number };
  percentiles?: readonly number[];
  verify?: unknown;
  remap?: unknown;
}

export interface FioReportInput {
  jobs: readonly JobInput[];
  globalOptions?: Record<string, string>;
  /** When the report was made; default now. */
  timestamp?: Date;
  /** Default "remapsim-<package version>". */
  version?: string;
  /** fio's --output-format=json+: latency bins beside the percentiles. */
  plus?: boolean;
}

const fail = (where: string, what: string, got: unknown): never => {
  throw new RangeError(`fio-json: ${where} must be ${what} (got ${String(got)})`);
};

function count(where: string, v: unknown, dflt = 0): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(where, 'a non-negative integer', v);
  return v as number;
}

function amount(where: string, v: unknown, dflt = 0): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(where, 'a non-negative number', v);
  return v as number;
}

function stringMap(where: string, v: unknown): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'an object of strings', v);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as object)) {
    if (typeof val !== 'string') fail(`${where}.${k}`, 'a string', val);
    out[k] = val as string;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** fio's io_u_map bucket for a queue depth: 1, 2, 4, 8, 16, 32, >=64. */
export function depthLevelBucket(depth: number): number {
  if (depth >= 64) return 6;
  if (depth >= 32) return 5;
  if (depth >= 16) return 4;
  if (depth >= 8) return 3;
  if (depth >= 4) return 2;
  if (depth >= 2) return 1;
  return 0;
}

/** fio's submit/complete bucket for a batch size: 0, 4, 8, 16, 32, 64, >=64. */
export function batchBucket(n: number): number {
  if (n > 64) return 6;
  if (n > 32) return 5;
  if (n > 16) return 4;
  if (n > 8) return 3;
  if (n > 4) return 2;
  if (n >= 1) return 1;
  return 0;
}

function latBlock(s: LatencyStats | undefined, percentiles: readonly number[] | undefined, plus = false): FioLatBlock {
  if (!s || s.count === 0) return { min: 0, max: 0, mean: 0, stddev: 0, N: 0 };
  const b: FioLatBlock = { min: s.min, max: s.max, mean: s.mean, stddev: s.stddev, N: s.count };
  if (percentiles && s instanceof LatencyHistogram) {
    b.percentile = s.percentileMap(percentiles);
    if (plus) b.bins = fioBins(s);
  }
  return b;
}

function dirBlock(where: string, d: DirectionInput | undefined, job: JobInput, plist: readonly number[], plus: boolean): FioDirBlock {
  const ioBytes = count(`${where}.ioBytes`, d?.ioBytes);
  const totalIos = count(`${where}.totalIos`, d?.totalIos);
  const defaultRuntime = ioBytes > 0 || totalIos > 0 ? job.runtimeMs : 0;
  const runtime = Math.floor(amount(`${where}.runtimeMs`, d?.runtimeMs, defaultRuntime));
  const bwBytes = runtime > 0 ? Math.floor((1000 * ioBytes) / runtime) : 0;
  if (d?.clat !== undefined && !(d.clat instanceof LatencyHistogram)) fail(`${where}.clat`, 'a LatencyHistogram', d.clat);
  for (const k of ['lat', 'slat'] as const) {
    if (d?.[k] !== undefined && !(d[k] instanceof LatencyStats)) fail(`${where}.${k}`, 'a LatencyStats', d[k]);
  }
  const bw = sampleStats(samples(`${where}.bwSamples`, d?.bwSamples));
  const iops = sampleStats(samples(`${where}.iopsSamples`, d?.iopsSamples));
  let bwAgg = 0;
  if (bw.samples > 0) {
    const agg = amount(`${where}.groupBwBytes`, d?.groupBwBytes, bwBytes);
    // fio passes the mean as an int here (convert_agg_kbytes_percent).
    bwAgg = agg > 1024 ? Math.min(100, (Math.trunc(bw.mean) * 100) / (agg / 1024)) : 100;
  }
  return {
    io_bytes: ioBytes,
    io_kbytes: Math.floor(ioBytes / 1024),
    bw_bytes: bwBytes,
    bw: Math.floor(bwBytes / 1024),
    iops: runtime > 0 ? (1000 * totalIos) / runtime : 0,
    runtime,
    total_ios: totalIos,
    short_ios: count(`${where}.shortIos`, d?.shortIos),
    drop_ios: count(`${where}.dropIos`, d?.dropIos),
    slat_ns: latBlock(d?.slat, undefined),
    clat_ns: latBlock(d?.clat, plist, plus),
    lat_ns: latBlock(d?.lat ?? d?.clat, undefined),
    bw_min: bw.min,
    bw_max: bw.max,
    bw_agg: bwAgg,
    bw_mean: bw.mean,
    bw_dev: bw.stddev,
    bw_samples: bw.samples,
    iops_min: iops.min,
    iops_max: iops.max,
    iops_mean: iops.mean,
    iops_stddev: iops.stddev,
    iops_samples: iops.samples,
  };
}

function samples(where: string, v: readonly number[] | undefined): readonly number[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail(where, 'an array of non-negative integers', v);
  v.forEach((x, i) => count(`${where}[${i}]`, x));
  return v;
}

/** Percentages as fio's stat_calc_dist: nonzero buckets show at least 0.1. */
function depthDist(where: string, counts: readonly number[], total: number, labels: readonly string[]): Record<string, number> {
  if (!Array.isArray(counts) || counts.length !== 7) fail(where, 'an array of 7 counts', counts);
  const out: Record<string, number> = {};
  labels.forEach((label, i) => {
    const c = count(`${where}[${i}]`, counts[i]);
    let pct = total > 0 ? (c / total) * 100 : 0;
    if (total > 0 && c > 0 && pct < 0.1) pct = 0.1;
    out[label] = pct;
  });
  return out;
}

const LEVEL_LABELS = ['1', '2', '4', '8', '16', '32', '>=64'];
const BATCH_LABELS = ['0', '4', '8', '16', '32', '64', '>=64'];
const LAT_LABELS = ['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000'];
const LAT_MS_LABELS = [...LAT_LABELS, '2000', '>=2000'];
/** fio's latency_ns/us/ms: completion latencies of all directions, as percentages of all I/Os. */
function latencyDist(hists: LatencyHistogram[], total: number): { ns: Record<string, number>; us: Record<string, number>; ms: Record<string, number> } {
  const buckets = new Array<number>(FIO_LAT_BOUNDS.length).fill(0);
  for (const h of hists) h.fioLatencyCounts().forEach((c, k) => (buckets[k] += c));
  const pct = (c: number): number => {
    if (total === 0) return 0;
    const p = (c / total) * 100;
    return c > 0 && p < 0.01 ? 0.01 : p;
  };
  const pick = (from: number, labels: string[]) => {
    const out: Record<string, number> = {};
    labels.forEach((l, i) => {
      out[l] = pct(buckets[from + i]);
    });
    return out;
  };
  return { ns: pick(0, LAT_LABELS), us: pick(10, LAT_LABELS), ms: pick(20, LAT_MS_LABELS) };
}

function buildJob(job: JobInput, k: number, plus: boolean): FioJob {
  const where = `jobs[${k}]`;
  if (typeof job !== 'object' || job === null) fail(where, 'an object', job);
  if (typeof job.name !== 'string' || job.name.length === 0) fail(`${where}.name`, 'a non-empty string', job.name);
  const runtimeMs = amount(`${where}.runtimeMs`, job.runtimeMs);
  const elapsedMs = amount(`${where}.elapsedMs`, job.elapsedMs);
  const iodepth = count(`${where}.iodepth`, job.iodepth, 1);
  if (iodepth < 1) fail(`${where}.iodepth`, 'at least 1', iodepth);
  const plist = job.percentiles ?? FIO_PERCENTILES;
  for (const p of plist) if (typeof p !== 'number' || !(p > 0 && p <= 100)) fail(`${where}.percentiles`, 'numbers in (0, 100]', p);
  const norm: JobInput = { ...job, runtimeMs };
  const dirs = {} as Record<Direction, FioDirBlock>;
  for (const d of DIRECTIONS) {
    if (job[d] !== undefined && (typeof job[d] !== 'object' || job[d] === null)) fail(`${where}.${d}`, 'an object', job[d]);
    dirs[d] = dirBlock(`${where}.${d}`, job[d], norm, plist, plus);
  }
  if (job.sync !== undefined && !(job.sync instanceof LatencyStats)) fail(`${where}.sync`, 'a LatencyStats', job.sync);
  const totalIos = dirs.read.total_ios + dirs.write.total_ios + dirs.trim.total_ios;
  const level = new Array<number>(7).fill(0);
  level[depthLevelBucket(iodepth)] = totalIos;
  const batch = new Array<number>(7).fill(0);
  batch[batchBucket(1)] = totalIos;
  const submitCounts = job.depth?.submit ?? batch;
  const completeCounts = job.depth?.complete ?? batch;
  const sum = (a: readonly number[]) => (Array.isArray(a) ? a.reduce((x, y) => x + (typeof y === 'number' ? y : 0), 0) : 0);
  const hists = DIRECTIONS.map((d) => job[d]?.clat).filter((h): h is LatencyHistogram => h instanceof LatencyHistogram);
  const lat = latencyDist(hists, totalIos);
  const cpuUser = amount(`${where}.cpu.userMs`, job.cpu?.userMs);
  const cpuSys = amount(`${where}.cpu.systemMs`, job.cpu?.systemMs);
  const target = job.latencyTarget ?? {};
  const out: FioJob = {
    jobname: job.name,
    groupid: count(`${where}.groupid`, job.groupid),
    error: count(`${where}.error`, job.error),
    eta: 0,
    elapsed: Math.ceil(elapsedMs / 1000),
  } as FioJob;
  const opts = stringMap(`${where}.options`, job.options);
  if (opts) out['job options'] = opts;
  out.read = dirs.read;
  out.write = dirs.write;
  out.trim = dirs.trim;
  out.sync = { total_ios: job.sync?.count ?? 0, lat_ns: latBlock(job.sync, plist, plus) };
  out.job_runtime = Math.floor(runtimeMs);
  out.usr_cpu = runtimeMs > 0 ? (cpuUser * 100) / runtimeMs : 0;
  out.sys_cpu = runtimeMs > 0 ? (cpuSys * 100) / runtimeMs : 0;
  out.ctx = count(`${where}.ctx`, job.ctx);
  out.majf = count(`${where}.majf`, job.majf);
  out.minf = count(`${where}.minf`, job.minf);
  out.iodepth_level = depthDist(`${where}.depth.level`, job.depth?.level ?? level, totalIos, LEVEL_LABELS);
  out.iodepth_submit = depthDist(`${where}.depth.submit`, submitCounts, sum(submitCounts), BATCH_LABELS);
  out.iodepth_complete = depthDist(`${where}.depth.complete`, completeCounts, sum(completeCounts), BATCH_LABELS);
  out.latency_ns = lat.ns;
  out.latency_us = lat.us;
  out.latency_ms = lat.ms;
  out.latency_depth = iodepth;
  out.latency_target = count(`${where}.latencyTarget.targetNs`, target.targetNs);
  out.latency_percentile = amount(`${where}.latencyTarget.percentile`, target.percentile, 100);
  out.latency_window = count(`${where}.latencyTarget.windowUs`, target.windowUs);
  if (job.verify !== undefined) out.verify = plainJson(`${where}.verify`, job.verify);
  if (job.remap !== undefined) out.remap = plainJson(`${where}.remap`, job.remap);
  return out;
}

function plainJson(where: string, v: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(v)) as unknown;
  } catch (e) {
    throw new TypeError(`fio-json: ${where} must be JSON-serializable (${(e as Error).message})`);
  }
}

/** The result object of one run, in fio's JSON shape. */
export function buildFioResult(input: FioReportInput): FioResult {
  if (typeof input !== 'object' || input === null || !Array.isArray(input.jobs)) {
    fail('input.jobs', 'an array of jobs', input?.jobs);
  }
  const when = input.timestamp ?? new Date();
  if (!(when instanceof Date) || Number.isNaN(when.getTime())) fail('input.timestamp', 'a valid Date', when);
  const out: FioResult = {
    'fio version': input.version ?? `remapsim-${VERSION}`,
    timestamp: Math.floor(when.getTime() / 1000),
    timestamp_ms: when.getTime(),
    time: ctime(when),
  } as FioResult;
  const globals = stringMap('input.globalOptions', input.globalOptions);
  if (globals) out['global options'] = globals;
  out.jobs = input.jobs.map((j, k) => buildJob(j, k, input.plus === true));
  return out;
}

/** Keys whose numbers fio prints with "%f"; all other fio numbers are integers. */
const FLOAT_KEYS = new Set([
  'iops',
  'mean',
  'stddev',
  'bw_agg',
  'bw_mean',
  'bw_dev',
  'iops_mean',
  'iops_stddev',
  'usr_cpu',
  'sys_cpu',
  'latency_percentile',
  'util',
  'aggr_util',
]);
/** Objects whose members are all "%f" numbers. */
const FLOAT_OBJECTS = new Set(['iodepth_level', 'iodepth_submit', 'iodepth_complete', 'latency_ns', 'latency_us', 'latency_ms']);
/** Our own blocks: printed as given (JSON numbers, not fio's int/float split). */
const OPAQUE_KEYS = new Set(['verify', 'remap']);

type Mode = 'int' | 'float' | 'opaque';

/** The text fio would print for this result (fio's json.c layout). */
export function formatFioJson(result: FioResult): string {
  return `${printValue(result, 0, 'int')}\n`;
}

function printValue(v: unknown, level: number, mode: Mode): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (mode === 'opaque') return Number.isFinite(v) ? String(v) : 'null';
    if (mode === 'float') return cFixed(Number.isFinite(v) ? v : 0, 6);
    return Number.isFinite(v) ? String(Math.trunc(v)) : '0';
  }
  const pad = '  '.repeat(level);
  const inner = '  '.repeat(level + 1);
  if (Array.isArray(v)) {
    const items = v.map((x) => inner + printValue(x, level + 1, mode));
    return `[\n${items.join(',\n')}\n${pad}]`;
  }
  if (typeof v === 'object') {
    const pairs: string[] = [];
    for (const [k, x] of Object.entries(v as object)) {
      if (x === undefined) continue;
      let m: Mode = mode;
      if (mode !== 'opaque') {
        if ((level === 2 && OPAQUE_KEYS.has(k)) || (level === 0 && k === 'remapsim')) m = 'opaque';
        else if (FLOAT_OBJECTS.has(k)) m = 'float';
        else m = FLOAT_KEYS.has(k) ? 'float' : mode === 'float' ? 'float' : 'int';
      }
      pairs.push(`${inner}${JSON.stringify(k)} : ${printValue(x, level + 1, m)}`);
    }
    return `{\n${pairs.join(',\n')}\n${pad}}`;
  }
  return 'null';
}
