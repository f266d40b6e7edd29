/**
 * What one simulated run needs, resolved and checked: from a scenario file
 * (the same file `remapsim run` takes), its optional top-level `simulate:`
 * section, and overrides (command-line options, a campaign's sweep point).
 * Every error is one line naming the field and its range.
 *
 * The scenario gives the devices, the policy, the target's status and
 * restart cadence, the fault processes (rates per second, as in real time),
 * the scanner and the job. `simulate:` adds what only virtual time needs:
 *
 *   simulate:
 *     horizon: 5y
 *     runs: 100
 *     drive: 4TB                # main device size (default devices.main.size)
 *     spare: 8MiB               # default devices.spare.size
 *     samples: 60               # health samples over the horizon
 *     workload: { iops: 150, readPercent: 70, bs: 4k, distribution: uniform | zipf:1.2,
 *                 idle: [{ from: 1h, to: 6h, factor: 0 }] }   # load over the day
 *     faults:                   # replace faults.main's processes; rates per period
 *       latentErrors: [{ rate: 0.04/y, burstMean: 2, followMean: 1d }]
 *       weakSectors: [{ rate: 1/y, failAfter: 30d }]
 *       transientErrors: { rate: 2/y }          # or { probability: 1e-9 } per read
 *       growth: [{ rate: 0.1/y, cluster: 8 }]
 *     scanner: { every: 1w }     # a pass every week ('never': no scanner); default back to back
 *     target: { restartEvery: 30d, statusEvery: 1h, spareOverheadPercent: 0 }
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { SECTOR_SIZE, type LogicalBlockSize } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { ddrescueBadRanges, parseDdrescueMapfile, parseSectorList } from '../faults/badlist.js';
import { type LatencyDist, parseLatencySpec } from '../faults/latency.js';
import { LATENT_DEFAULTS } from '../faults/stochastic.js';
import { WEAK_DEFAULTS } from '../faults/weak.js';
import type { LatentErrorSpecLike, WeakSectorSpecLike } from '../faults/stochastic-stack.js';
import { safeMinSpare, v4MinSpare } from '../metadata/min-spare.js';
import { parseScenarioText } from '../scenario/load.js';
import { type Policy, POLICIES, type Scenario, parseScenarioSize, validateScenario } from '../scenario/schema.js';
import { jobFromRecord } from '../workload/job.js';
import type { AccessPattern } from './access.js';
import { DAY_SECONDS, type ProfilePeriod } from './profile.js';
import { parseRate } from './rates.js';
import { MAX_HORIZON_YEARS, SimInputError, type VTime, YEAR_SECONDS, parseDuration, toSeconds } from './time.js';

export interface SimGrowthSpec {
  start: number;
  rate: number;
  cluster: number;
  writeFailCount: number;
  maxClusters?: number;
  region?: { from: number; to: number };
}

export interface SimFaultSpecs {
  badSectors: Array<{ start: number; count: number }>;
  writeFailCount: number;
  dustBlockSize?: number;
  latentErrors: LatentErrorSpecLike[];
  weakSectors: WeakSectorSpecLike[];
  growth: SimGrowthSpec[];
  /** Transient read errors: per read (`probability`), or per second of clock time (`ratePerSecond`). */
  transient?: { probability?: number; ratePerSecond?: number };
  latency?: { read?: LatencyDist; write?: LatencyDist };
}

export interface SimScannerConfig {
  rateBytes: number;
  busyFactor: number;
  idleS: number;
  sliceBytes: number;
  slowNs: number;
  retries: number;
  order: 'sequential' | 'staggered';
  staggerRegions: number;
  /** A pass every this long; undefined: back to back. */
  every?: VTime;
  /** Horizon and confidence of the health score's exhaustion risk. */
  scoreHorizonNs: number;
  confidence: number;
}

export interface SimConfig {
  name: string;
  policy: Policy;
  horizon: VTime;
  samples: number;
  main: { sectors: number; logicalBlockSize: LogicalBlockSize };
  spare: { sectors: number };
  workload: {
    /** I/Os per second at load factor 1. */
    iops: number;
    readFraction: number;
    /** Request size in bytes (a request is one grain, aligned to its size). */
    bs: number;
    /** First sector and number of grains of the region the job works on. */
    regionSector: number;
    grains: number;
    pattern: AccessPattern;
    idle: ProfilePeriod[];
  };
  faults: { main: SimFaultSpecs; spare?: SimFaultSpecs };
  scanner?: SimScannerConfig;
  target: { statusEvery?: VTime; restartEvery?: VTime; spareOverheadPercent?: number };
}

/** What a command line or a sweep point may change. Strings take units ('5y', '8MiB', '0.04/y', 'never'). */
export interface SimOverrides {
  policy?: string;
  horizon?: string | number;
  drive?: string | number;
  spare?: string | number;
  scanEvery?: string;
  restartEvery?: string;
  statusEvery?: string;
  latentRate?: string | number;
  weakRate?: string | number;
  transientRate?: string | number;
  iops?: number;
  readPercent?: number;
  distribution?: string;
  spareOverheadPercent?: number;
  samples?: number;
}

export const OVERRIDE_KEYS = [
  'policy',
  'horizon',
  'drive',
  'spare',
  'scanEvery',
  'restartEvery',
  'statusEvery',
  'latentRate',
  'weakRate',
  'transientRate',
  'iops',
  'readPercent',
  'distribution',
  'spareOverheadPercent',
  'samples',
] as const;

const text = z.union([z.string(), z.number()]);
const region = z.object({ from: z.number().int().min(0), to: z.number().int().min(0) }).strict();

const simLatent = z
  .object({
    start: text.optional(),
    rate: text,
    burstMean: z.number().optional(),
    burstMax: z.number().int().optional(),
    spread: z.number().optional(),
    followProbability: z.number().optional(),
    followMean: text.optional(),
    followDistance: z.number().optional(),
    writeFailCount: z.number().int().optional(),
    maxEpisodes: z.number().int().min(1).optional(),
    region: region.optional(),
  })
  .strict();

const simWeak = z
  .object({
    start: text.optional(),
    rate: text,
    cluster: z.number().int().optional(),
    readLatency: z.string().optional(),
    failAfter: text.optional(),
    failFraction: z.number().optional(),
    writeFailCount: z.number().int().optional(),
    maxEpisodes: z.number().int().min(1).optional(),
    region: region.optional(),
  })
  .strict();

const simGrowth = z
  .object({
    start: text.optional(),
    rate: text,
    cluster: z.number().int().min(1).max(4096).default(1),
    writeFailCount: z.number().int().min(0).max(255).default(3),
    maxClusters: z.number().int().min(1).optional(),
    region: region.optional(),
  })
  .strict();

export const simulateSectionSchema = z
  .object({
    horizon: text.optional(),
    runs: z.number().int().min(1).optional(),
    seed: z.number().int().min(0).max(0xffffffff).optional(),
    drive: text.optional(),
    spare: text.optional(),
    samples: z.number().int().min(2).max(10_000).optional(),
    workload: z
      .object({
        iops: z.number().optional(),
        readPercent: z.number().optional(),
        bs: text.optional(),
        distribution: z.string().optional(),
        idle: z.array(z.object({ from: text, to: text, factor: z.number().default(0) }).strict()).default([]),
      })
      .strict()
      .default({ idle: [] }),
    faults: z
      .object({
        latentErrors: z.array(simLatent).default([]),
        weakSectors: z.array(simWeak).default([]),
        transientErrors: z.object({ rate: text.optional(), probability: z.number().optional() }).strict().optional(),
        growth: z.array(simGrowth).default([]),
      })
      .strict()
      .optional(),
    scanner: z.object({ every: text.optional() }).strict().default({}),
    target: z.object({ restartEvery: text.optional(), statusEvery: text.optional(), spareOverheadPercent: z.number().optional() }).strict().default({}),
  })
  .strict();

export type SimulateSection = z.output<typeof simulateSectionSchema>;

/** A scenario file read for simulation: the scenario without its `simulate:` section, and that section. */
export interface SimSource {
  file: string;
  /** The scenario object as written, without `simulate`. */
  scenario: Record<string, unknown>;
  simulate: SimulateSection;
}

function zodLine(source: string, issues: readonly z.core.$ZodIssue[], prefix: string): string {
  return issues
    .map((i) => {
      const where = [prefix, ...i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))].join('').replace(/^\./, '');
      return `${source}: ${where}: ${i.message}`;
    })
    .join('\n');
}

/** Parses a scenario's text for simulation (JSON or YAML). */
export function simSourceFromText(textIn: string, file: string): SimSource {
  const raw = parseScenarioText(textIn, file);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new SimInputError(`${file}: a scenario is a mapping of fields (name, devices, faults, jobs, ...)`);
  const { simulate, ...scenario } = raw as Record<string, unknown>;
  const r = simulateSectionSchema.safeParse(simulate ?? {});
  if (!r.success) throw new SimInputError(zodLine(file, r.error.issues, 'simulate'));
  return { file, scenario, simulate: r.data };
}

export function readSimSource(file: string): SimSource {
  let t: string;
  try {
    t = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SimInputError(`${file}: cannot read the scenario (${code === 'ENOENT' ? 'no such file' : (code ?? (err as Error).message)})`);
  }
  return simSourceFromText(t, file);
}

const never = (v: unknown): boolean => v === 'never' || v === 'off' || v === 'none';

function size(v: string | number, field: string, maxBytes = 2 ** 50): number {
  let bytes: number;
  if (typeof v === 'number') bytes = v;
  else {
    try {
      bytes = parseScenarioSize(v, field);
    } catch (err) {
      throw new SimInputError((err as Error).message);
    }
  }
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes > maxBytes)
    throw new SimInputError(`${field}: must be a whole number of bytes from 1 to ${maxBytes} (1 PiB), got ${v}`);
  return bytes;
}

function num(v: number | undefined, field: string, lo: number, hi: number, opts: { integer?: boolean; loOpen?: boolean } = {}): number | undefined {
  if (v === undefined) return undefined;
  const ok = Number.isFinite(v) && (opts.loOpen ? v > lo : v >= lo) && v <= hi && (!opts.integer || Number.isInteger(v));
  if (!ok)
    throw new SimInputError(
      `${field}: must be ${opts.integer ? 'an integer' : 'a number'} ${opts.loOpen ? 'above' : 'from'} ${lo} ${opts.loOpen ? 'and at most' : 'to'} ${hi}, got ${v}`,
    );
  return v;
}

const MAX_DURATION_S = MAX_HORIZON_YEARS * YEAR_SECONDS;

function dur(v: string | number, field: string, opts: { minS?: number; maxS?: number; allowZero?: boolean } = {}): VTime {
  return parseDuration(v, field, { minS: opts.minS ?? 1e-9, maxS: opts.maxS ?? MAX_DURATION_S, allowZero: opts.allowZero });
}

/** The highest rate of a fault process, events per second. */
const MAX_RATE_PER_SECOND = 1e6;

/** A rate in (0, MAX_RATE_PER_SECOND] per second. */
function rate(v: string | number, field: string): number {
  const r = parseRate(v, field);
  if (!(r > 0) || !Number.isFinite(r) || r > MAX_RATE_PER_SECOND)
    throw new SimInputError(
      `${field}: must be above 0 and at most ${MAX_RATE_PER_SECOND} per second (a number per second, or per period: 0.04/y, 2/mo, 1/d), got ${v}`,
    );
  return r;
}

function timeOfDay(v: string | number, field: string): number {
  const t = parseDuration(v, field, { minS: 0, maxS: DAY_SECONDS, allowZero: true });
  return toSeconds(t);
}

/**
 * The scenario object with what the overrides change in it (policy, sizes,
 * a scanner section when a scan cadence asks for one), validated.
 */
function scenarioFor(src: SimSource, policy: Policy | undefined, scanWanted: boolean): Scenario {
  const s = structuredClone(src.scenario) as Record<string, unknown> & { target?: Record<string, unknown> };
  if (policy !== undefined) s.target = { ...(s.target ?? {}), policy };
  if (scanWanted && s.scanner === undefined) s.scanner = {};
  return validateScenario(s, src.file);
}

function parsePolicy(p: string, field: string): Policy {
  if (!(POLICIES as readonly string[]).includes(p)) throw new SimInputError(`${field}: unknown policy '${p}' (allowed: ${POLICIES.join(', ')})`);
  return p as Policy;
}

function stochasticFromScenario(f: NonNullable<Scenario['faults']['main']>, field: string): SimFaultSpecs {
  const badSectors = f.badSectors.map((s) => ({ start: s, count: 1 }));
  if (f.badSectorsFile !== undefined) {
    let t: string;
    try {
      t = fs.readFileSync(f.badSectorsFile, 'utf8');
    } catch (err) {
      throw new SimInputError(`${field}.badSectorsFile: cannot read ${f.badSectorsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (f.badSectorsFormat === 'ddrescue') badSectors.push(...ddrescueBadRanges(parseDdrescueMapfile(t)));
    else badSectors.push(...parseSectorList(t).map((s) => ({ start: s, count: 1 })));
  }
  if (f.flakey) throw new SimInputError(`${field}.flakey: dm-flakey is not simulated in virtual time (its up/down cycles are seconds of wall time); remove it`);
  const latency = f.latency
    ? {
        read: f.latency.read === undefined ? undefined : parseLatencySpec(f.latency.read, `${field}.latency.read`),
        write: f.latency.write === undefined ? undefined : parseLatencySpec(f.latency.write, `${field}.latency.write`),
      }
    : undefined;
  return {
    badSectors,
    writeFailCount: f.writeFailCount,
    dustBlockSize: f.dustBlockSize,
    latentErrors: f.latentErrors.map((l) => ({ ...l })),
    weakSectors: f.weakSectors.map((w) => ({ ...w })),
    growth: f.growth.map((g) => ({ ...g })),
    transient: f.transientErrors ? { probability: f.transientErrors.probability } : undefined,
    latency,
  };
}

function latentFromSection(l: z.output<typeof simLatent>, field: string): LatentErrorSpecLike {
  const d = LATENT_DEFAULTS;
  return {
    start: l.start === undefined ? 0 : Number(dur(l.start, `${field}.start`, { allowZero: true })),
    rate: rate(l.rate, `${field}.rate`),
    burstMean: num(l.burstMean, `${field}.burstMean`, 1, 4096) ?? d.burstMean,
    burstMax: num(l.burstMax, `${field}.burstMax`, 1, 4096, { integer: true }) ?? d.burstMax,
    spread: num(l.spread, `${field}.spread`, 1, 1e9) ?? d.spread,
    followProbability: num(l.followProbability, `${field}.followProbability`, 0, 0.99) ?? d.followProbability,
    followMean: l.followMean === undefined ? d.followMeanNs : Number(dur(l.followMean, `${field}.followMean`)),
    followDistance: num(l.followDistance, `${field}.followDistance`, 1, 1e12) ?? d.followDistance,
    writeFailCount: num(l.writeFailCount, `${field}.writeFailCount`, 0, 255, { integer: true }) ?? d.writeFailCount,
    maxEpisodes: l.maxEpisodes,
    region: l.region,
  };
}

function weakFromSection(w: z.output<typeof simWeak>, field: string): WeakSectorSpecLike {
  const d = WEAK_DEFAULTS;
  return {
    start: w.start === undefined ? 0 : Number(dur(w.start, `${field}.start`, { allowZero: true })),
    rate: rate(w.rate, `${field}.rate`),
    cluster: num(w.cluster, `${field}.cluster`, 1, 4096, { integer: true }) ?? d.cluster,
    readLatency: w.readLatency ?? '100ms',
    failAfter: w.failAfter === undefined ? d.failAfterNs : Number(dur(w.failAfter, `${field}.failAfter`)),
    failFraction: num(w.failFraction, `${field}.failFraction`, 0, 1) ?? d.failFraction,
    writeFailCount: num(w.writeFailCount, `${field}.writeFailCount`, 0, 255, { integer: true }) ?? d.writeFailCount,
    maxEpisodes: w.maxEpisodes,
    region: w.region,
  };
}

function pattern(dist: { kind: string; theta?: number }, field: string): AccessPattern {
  if (dist.kind === 'random' || dist.kind === 'uniform') return { kind: 'uniform' };
  if (dist.kind === 'zipf') return { kind: 'zipf', theta: dist.theta! };
  throw new SimInputError(`${field}: '${dist.kind}' is not simulated (allowed: uniform (fio's random), zipf:THETA)`);
}

function parseDistributionText(t: string, field: string): AccessPattern {
  const m = /^(uniform|random|zipf)(?::([0-9.]+))?$/.exec(t.trim());
  if (!m) throw new SimInputError(`${field}: '${t}' is not an access pattern (allowed: uniform, zipf:THETA, e.g. zipf:1.2)`);
  if (m[1] !== 'zipf') return { kind: 'uniform' };
  const theta = m[2] === undefined ? 1.1 : Number(m[2]);
  if (!(theta > 0) || theta === 1 || theta > 100) throw new SimInputError(`${field}: zipf theta must be above 0 and at most 100, not 1, got ${m[2]}`);
  return { kind: 'zipf', theta };
}

/** Expected bad blocks per second of a fault spec set (for the "everything bad at once" check). */
function badBlocksPerSecond(f: SimFaultSpecs): number {
  let r = 0;
  for (const l of f.latentErrors) r += (l.rate / (1 - l.followProbability)) * l.burstMean;
  for (const w of f.weakSectors) r += w.rate * w.cluster;
  for (const g of f.growth) r += g.rate * g.cluster;
  return r;
}

/** Most bad blocks a run may expect over its horizon: each one is followed, with its I/Os, one by one. */
export const MAX_EXPECTED_BAD_BLOCKS = 1e6;

const NUMERIC_OVERRIDES = ['iops', 'readPercent', 'spareOverheadPercent', 'samples'] as const;

/** Numeric overrides given as text (a command line, a sweep written as strings) become numbers. */
function normalize(o: SimOverrides): SimOverrides {
  const out = { ...o } as Record<string, unknown>;
  for (const k of NUMERIC_OVERRIDES) {
    const v = out[k];
    if (typeof v === 'string') {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) throw new SimInputError(`${k}: '${v}' is not a number`);
      out[k] = n;
    }
  }
  for (const k of Object.keys(out))
    if (
      typeof out[k] === 'number' &&
      !(NUMERIC_OVERRIDES as readonly string[]).includes(k) &&
      k !== 'horizon' &&
      k !== 'drive' &&
      k !== 'spare' &&
      k !== 'latentRate' &&
      k !== 'weakRate' &&
      k !== 'transientRate'
    )
      out[k] = String(out[k]);
  return out as SimOverrides;
}

export function resolveSimConfig(src: SimSource, oIn: SimOverrides = {}): SimConfig {
  const o = normalize(oIn);
  const sim = src.simulate;
  const f = src.file;
  const policy = o.policy !== undefined ? parsePolicy(o.policy, 'policy') : undefined;
  const scanEveryText = o.scanEvery ?? (sim.scanner.every === undefined ? undefined : String(sim.scanner.every));
  const scanOff = scanEveryText !== undefined && never(scanEveryText);
  const scenario = scenarioFor(src, policy, scanEveryText !== undefined && !scanOff);

  const horizonText = o.horizon ?? sim.horizon ?? '1y';
  const horizon = parseDuration(horizonText, o.horizon !== undefined ? 'horizon' : 'simulate.horizon', { minS: 1e-3, maxS: MAX_DURATION_S });

  // devices
  const lbs = scenario.devices.main.logicalBlockSize;
  const driveField = o.drive !== undefined ? 'drive' : sim.drive !== undefined ? 'simulate.drive' : 'devices.main.size';
  let mainBytes: number;
  if (o.drive !== undefined || sim.drive !== undefined) mainBytes = size((o.drive ?? sim.drive)!, driveField);
  else if (scenario.devices.main.size !== undefined) mainBytes = scenario.devices.main.size;
  else {
    const dev = FileDevice.open(scenario.devices.main.path!, { readOnly: true, logicalBlockSize: lbs });
    mainBytes = dev.sectors * SECTOR_SIZE;
    dev.close();
  }
  if (mainBytes % lbs !== 0) throw new SimInputError(`${driveField}: ${mainBytes} bytes is not a whole number of ${lbs}-byte blocks`);
  const spareField = o.spare !== undefined ? 'spare' : sim.spare !== undefined ? 'simulate.spare' : 'devices.spare.size';
  let spareBytes: number;
  if (o.spare !== undefined || sim.spare !== undefined) spareBytes = size((o.spare ?? sim.spare)!, spareField);
  else if (scenario.devices.spare.size !== undefined) spareBytes = scenario.devices.spare.size;
  else throw new SimInputError(`devices.spare: give a size (simulate.spare or devices.spare.size): the simulator does not read devices`);
  if (spareBytes % lbs !== 0) throw new SimInputError(`${spareField}: ${spareBytes} bytes is not a whole number of ${lbs}-byte blocks`);
  const mainSectors = mainBytes / SECTOR_SIZE;
  const spareSectors = spareBytes / SECTOR_SIZE;
  const pol = scenario.target.policy;
  const spareOverheadPercent = num(
    o.spareOverheadPercent ?? sim.target.spareOverheadPercent,
    o.spareOverheadPercent !== undefined ? 'spareOverheadPercent' : 'simulate.target.spareOverheadPercent',
    0,
    20,
  );
  const min = pol === 'safe' ? safeMinSpare(lbs) : v4MinSpare(mainSectors, lbs, { spareOverheadPercent });
  if (spareSectors < min) {
    const hint =
      pol === 'dm-remap-v4'
        ? ` (the module's spare_overhead_percent parameter sets it; simulate.target.spareOverheadPercent: 0 loads it with a spare this small)`
        : '';
    throw new SimInputError(
      `${spareField}: ${spareBytes} bytes is too small: ${pol} needs a spare of at least ${min * SECTOR_SIZE} bytes for this main device${hint}`,
    );
  }

  // workload: the scenario's first job, with simulate.workload and overrides on top
  const job = (() => {
    // the horizon stands for the job's runtime; a time-based job without one gets the scenario's duration, as in `remapsim run`
    const record = scenario.jobs[0]!;
    const timeBased = record.time_based !== undefined && record.time_based !== 0 && record.time_based !== false && record.time_based !== '0';
    const withRuntime = timeBased && record.runtime === undefined ? { ...record, runtime: `${Math.max(1, Math.round(scenario.duration / 1e6))}ms` } : record;
    try {
      return jobFromRecord(withRuntime, { source: { file: `${f}: jobs[0]` }, allowUnsupported: true });
    } catch (err) {
      throw new SimInputError((err as Error).message.split('\n')[0]!);
    }
  })();
  if (!job.random) throw new SimInputError(`${f}: jobs[0].rw: the simulator models random I/O (randread, randwrite, randrw), got '${job.rw}'`);
  const w = sim.workload;
  const jobRead = job.directions.includes('read') ? (job.directions.includes('write') ? job.rwmixread / 100 : 1) : 0;
  const readPercent = num(o.readPercent ?? w.readPercent, o.readPercent !== undefined ? 'readPercent' : 'simulate.workload.readPercent', 0, 100);
  const readFraction = readPercent !== undefined ? readPercent / 100 : jobRead;
  let iops = o.iops ?? w.iops;
  if (iops === undefined) {
    const caps: number[] = [];
    if (readFraction > 0 && job.rateIops.read > 0) caps.push(job.rateIops.read / readFraction);
    if (readFraction < 1 && job.rateIops.write > 0) caps.push(job.rateIops.write / (1 - readFraction));
    if (caps.length === 0) throw new SimInputError(`simulate.workload.iops: the scenario's job has no rate_iops; give the workload's I/Os per second`);
    iops = Math.min(...caps);
  }
  num(iops, o.iops !== undefined ? 'iops' : 'simulate.workload.iops', 0, 1e7, { loOpen: true });
  const bs = w.bs !== undefined ? size(w.bs, 'simulate.workload.bs', 64 << 20) : job.blockSizes[job.directions[0]!].min;
  if (bs % lbs !== 0 || bs % SECTOR_SIZE !== 0)
    throw new SimInputError(`simulate.workload.bs: ${bs} bytes is not a whole number of the main device's ${lbs}-byte blocks`);
  for (const d of job.directions) {
    const b = job.blockSizes[d];
    if (w.bs === undefined && (b.min !== b.max || b.split.length > 0))
      throw new SimInputError(`${f}: jobs[0].bs: the simulator takes one request size; set simulate.workload.bs`);
  }
  const regionStart = job.offset.kind === 'bytes' ? job.offset.bytes : Math.floor((mainBytes * job.offset.percent) / 100);
  const regionBytes =
    job.size === undefined ? mainBytes - regionStart : job.size.kind === 'bytes' ? job.size.bytes : Math.floor((mainBytes * job.size.percent) / 100);
  const grains = Math.floor(Math.min(regionBytes, mainBytes - regionStart) / bs);
  if (grains < 1) throw new SimInputError(`${f}: jobs[0]: the job's region holds no whole ${bs}-byte request`);
  if (regionStart % bs !== 0) throw new SimInputError(`${f}: jobs[0].offset: ${regionStart} is not a multiple of the request size ${bs}`);
  const accessText = o.distribution ?? w.distribution;
  const access =
    accessText !== undefined
      ? parseDistributionText(accessText, o.distribution !== undefined ? 'distribution' : 'simulate.workload.distribution')
      : pattern(job.distribution as { kind: string; theta?: number }, `${f}: jobs[0].random_distribution`);
  const idle = w.idle.map((p, i) => ({
    fromS: timeOfDay(p.from, `simulate.workload.idle[${i}].from`),
    toS: timeOfDay(p.to, `simulate.workload.idle[${i}].to`),
    factor: num(p.factor, `simulate.workload.idle[${i}].factor`, 0, 1000)!,
  }));

  // faults
  const fm = scenario.faults.main;
  const main: SimFaultSpecs = fm
    ? stochasticFromScenario(fm, 'faults.main')
    : { badSectors: [], writeFailCount: 3, latentErrors: [], weakSectors: [], growth: [] };
  if (sim.faults) {
    const sf = sim.faults;
    main.latentErrors = sf.latentErrors.map((l, i) => latentFromSection(l, `simulate.faults.latentErrors[${i}]`));
    main.weakSectors = sf.weakSectors.map((x, i) => weakFromSection(x, `simulate.faults.weakSectors[${i}]`));
    main.growth = sf.growth.map((g, i) => ({
      start: g.start === undefined ? 0 : Number(dur(g.start, `simulate.faults.growth[${i}].start`, { allowZero: true })),
      rate: rate(g.rate, `simulate.faults.growth[${i}].rate`),
      cluster: g.cluster,
      writeFailCount: g.writeFailCount,
      maxClusters: g.maxClusters,
      region: g.region,
    }));
    const t = sf.transientErrors;
    if (t) {
      if ((t.rate === undefined) === (t.probability === undefined))
        throw new SimInputError(`simulate.faults.transientErrors: give either rate (per period) or probability (per read)`);
      main.transient =
        t.rate !== undefined
          ? { ratePerSecond: rate(t.rate, 'simulate.faults.transientErrors.rate') }
          : { probability: num(t.probability, 'simulate.faults.transientErrors.probability', 0, 1, { loOpen: true }) };
    } else main.transient = undefined;
  }
  if (o.latentRate !== undefined) {
    if (main.latentErrors.length === 0)
      throw new SimInputError(
        `latentRate: the scenario has no latent-error process to set the rate of (add faults.main.latentErrors or simulate.faults.latentErrors)`,
      );
    const r = rate(o.latentRate, 'latentRate');
    main.latentErrors = main.latentErrors.map((l) => ({ ...l, rate: r }));
  }
  if (o.weakRate !== undefined) {
    if (main.weakSectors.length === 0) throw new SimInputError(`weakRate: the scenario has no weak-sector process to set the rate of`);
    const r = rate(o.weakRate, 'weakRate');
    main.weakSectors = main.weakSectors.map((x) => ({ ...x, rate: r }));
  }
  if (o.transientRate !== undefined) main.transient = never(o.transientRate) ? undefined : { ratePerSecond: rate(o.transientRate, 'transientRate') };
  const spare = scenario.faults.spare ? stochasticFromScenario(scenario.faults.spare, 'faults.spare') : undefined;
  if (spare?.transient) throw new SimInputError(`faults.spare.transientErrors: transient errors are simulated on main only`);

  const horizonS = toSeconds(horizon);
  const blockBytes = main.dustBlockSize ?? lbs;
  const mainBlocks = mainBytes / blockBytes;
  for (const [role, spec, blocks] of [
    ['faults.main', main, mainBlocks],
    ['faults.spare', spare, spareBytes / (spare?.dustBlockSize ?? lbs)],
  ] as const) {
    if (!spec) continue;
    const perS = badBlocksPerSecond(spec);
    if (perS >= blocks)
      throw new SimInputError(
        `${role}: the fault rates make ${perS.toPrecision(3)} blocks bad per second, every one of the device's ${blocks} blocks within a second; lower the rates`,
      );
    if (perS * horizonS > MAX_EXPECTED_BAD_BLOCKS) {
      throw new SimInputError(
        `${role}: the fault rates make about ${(perS * horizonS).toPrecision(3)} blocks bad over the horizon; the simulator follows each bad block one by one (at most ${MAX_EXPECTED_BAD_BLOCKS}): lower the rates or the horizon`,
      );
    }
  }
  if (main.transient) {
    const perS = main.transient.ratePerSecond ?? main.transient.probability! * iops * readFraction;
    if (perS * horizonS > MAX_EXPECTED_BAD_BLOCKS)
      throw new SimInputError(
        `transient errors: about ${(perS * horizonS).toPrecision(3)} over the horizon; the simulator runs each one through the policy (at most ${MAX_EXPECTED_BAD_BLOCKS}): lower the rate`,
      );
  }

  // scanner
  let scanner: SimScannerConfig | undefined;
  const sc = scenario.scanner;
  if (sc?.enabled && !scanOff) {
    const every =
      scanEveryText === undefined
        ? undefined
        : parseDuration(scanEveryText, o.scanEvery !== undefined ? 'scanEvery' : 'simulate.scanner.every', { minS: 1, maxS: MAX_DURATION_S });
    if (sc.rate <= 0) throw new SimInputError(`scanner.rate: the simulator needs a scan rate above 0 MB/s (an unlimited scan has no duration in virtual time)`);
    scanner = {
      rateBytes: sc.rate * 1e6,
      busyFactor: sc.busyFactor,
      idleS: sc.idle / 1e9,
      sliceBytes: sc.slice,
      slowNs: sc.slow,
      retries: sc.retries,
      order: sc.order,
      staggerRegions: sc.staggerRegions,
      every,
      scoreHorizonNs: sc.horizon,
      confidence: sc.confidence,
    };
    if (sc.slice % lbs !== 0) throw new SimInputError(`scanner.slice: ${sc.slice} bytes is not a whole number of ${lbs}-byte blocks`);
    if (sc.busyFactor === 0 && iops > 0)
      throw new SimInputError(`scanner.busyFactor: 0 stops the scan whenever the workload runs; the simulator needs it above 0`);
  }

  // target cadence: the simulate section and overrides allow more than a scenario's 1 d
  const cadence = (
    ov: string | undefined,
    sec: string | number | undefined,
    fromScenario: number | undefined,
    name: 'restartEvery' | 'statusEvery',
  ): VTime | undefined => {
    const field = ov !== undefined ? name : `simulate.target.${name}`;
    const v = ov ?? sec;
    if (v !== undefined) return never(v) ? undefined : dur(v, field, { minS: name === 'restartEvery' ? 1 : 1e-3 });
    return fromScenario === undefined ? undefined : BigInt(Math.round(fromScenario));
  };
  const restartEvery = cadence(o.restartEvery, sim.target.restartEvery, scenario.target.restartEvery, 'restartEvery');
  const statusEvery = cadence(o.statusEvery, sim.target.statusEvery, scenario.target.statusEvery, 'statusEvery');
  const samples = num(o.samples ?? sim.samples ?? 60, 'simulate.samples', 2, 10_000, { integer: true })!;
  if (restartEvery !== undefined && horizon / restartEvery > 1_000_000n)
    throw new SimInputError(
      `restartEvery: ${toSeconds(restartEvery)}s makes more than 1e6 restarts over the horizon; at least ${formatShort(toSeconds(horizon) / 1e6)} apart`,
    );

  return {
    name: scenario.name,
    policy: pol,
    horizon,
    samples,
    main: { sectors: mainSectors, logicalBlockSize: lbs },
    spare: { sectors: spareSectors },
    workload: { iops, readFraction, bs, regionSector: regionStart / SECTOR_SIZE, grains, pattern: access, idle },
    faults: { main, spare },
    scanner,
    target: { statusEvery, restartEvery, spareOverheadPercent },
  };
}

function formatShort(s: number): string {
  return `${Number(s.toPrecision(3))}s`;
}

/** The horizon and run count of a source, with overrides (for `remapsim simulate`). */
export function runsOf(src: SimSource, override?: number): number {
  return override ?? src.simulate.runs ?? 1;
}
