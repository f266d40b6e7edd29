/**
 * Scenario files (JSON or YAML): the devices, the fault layers and how bad
 * sectors grow during the run, the remap target and its policy, the jobs, and
 * the duration. Validated eagerly; every message names the field path.
 */
import { z } from 'zod';
import { UsageError } from '../util/errors.js';
import { parseTime } from '../workload/size.js';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
  p: 2 ** 50,
  pib: 2 ** 50,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
};

/**
 * Sizes in scenario files: binary for K/M/G/T and KiB/MiB/...; decimal for
 * KB/MB/GB/TB. (Job options keep fio's own rules, where 'MiB' means 10^6 by
 * default.)
 */
export function parseScenarioSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new RangeError(`${what}: '${text}' is not a size (examples: 4096, 64K, 256MiB, 1G, 500MB)`);
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`${what}: '${text}' is not a whole positive number of bytes`);
  return bytes;
}

function sizeField(what: string) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v <= 0) {
        ctx.addIssue({ code: 'custom', message: `${what} must be a positive whole number of bytes or a size like '256MiB', got ${v}` });
        return z.NEVER;
      }
      return v;
    }
    try {
      return parseScenarioSize(v, what);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

/** Seconds, as a number or a time like '10s', '500ms', '2m'. Result in nanoseconds. */
function durationField(what: string) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    if (typeof v === 'number') {
      if (!Number.isFinite(v) || v < 0) {
        ctx.addIssue({ code: 'custom', message: `${what} must be a non-negative number of seconds or a time like '10s', got ${v}` });
        return z.NEVER;
      }
      return v * 1e9;
    }
    try {
      return parseTime(v, what, 's') * 1e3; // microseconds -> ns
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

const sector = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const device = z
  .object({
    /** Size of a backing file the run creates (sparse, in the work directory). */
    size: sizeField('size').optional(),
    /** An existing file or block device to use instead (never deleted). */
    path: z.string().min(1).optional(),
    logicalBlockSize: z.union([z.literal(512), z.literal(4096)]).default(512),
    /** Open with O_DIRECT (needs a filesystem or device that supports it). */
    direct: z.boolean().default(false),
  })
  .strict()
  .refine((d) => (d.size === undefined) !== (d.path === undefined), {
    message: 'give either size (a file the run creates) or path (an existing file or device), not both',
  });

const growth = z
  .object({
    /** When new bad sectors start to appear (default at once). */
    start: durationField('start').default(0),
    /** Clusters of new bad sectors per second (a Poisson process). */
    rate: z.number().positive().max(1e6),
    /** Bad blocks per cluster: neighbours of one another, as field studies of drives report. */
    cluster: z.number().int().min(1).max(4096).default(1),
    /** Write failures each new bad block gives before a write heals it (dust's wr_fail_cnt). */
    writeFailCount: z.number().int().min(0).max(255).default(3),
    /** Stop after this many clusters (default: no limit). */
    maxClusters: z.number().int().min(1).optional(),
    /** Sector range new bad sectors fall in (default the whole device). */
    region: z.object({ from: sector, to: sector }).strict().optional(),
  })
  .strict();

const region = z
  .object({ from: sector, to: sector })
  .strict()
  .refine((r) => r.to > r.from, { message: 'region.to must be greater than region.from' });

/**
 * Latent sector errors as a clustered Poisson process (src/faults/stochastic.ts):
 * episodes at `rate` per second, each a burst of neighbouring bad blocks,
 * each triggering a follow-up near it with `followProbability`.
 */
const latentErrors = z
  .object({
    start: durationField('start').default(0),
    /** Primary episodes per second. */
    rate: z.number().positive().max(1e6),
    /** Mean bad blocks per episode (geometric). */
    burstMean: z.number().min(1).max(4096).default(2),
    burstMax: z.number().int().min(1).max(4096).default(64),
    /** Mean distance (blocks) from a burst's centre to its other blocks. */
    spread: z.number().min(1).max(1e9).default(2),
    /** Probability that an episode triggers a follow-up (temporal clustering). */
    followProbability: z.number().min(0).max(0.99).default(0.3),
    /** Mean delay of a follow-up episode. */
    followMean: durationField('followMean').default(2e9),
    /** Mean distance (blocks) of a follow-up's centre from its parent's. */
    followDistance: z.number().min(1).max(1e12).default(256),
    writeFailCount: z.number().int().min(0).max(255).default(3),
    maxEpisodes: z.number().int().min(1).optional(),
    region: region.optional(),
  })
  .strict();

/** Weak sectors: slow reads for a while, then failure (src/faults/weak.ts). */
const weakSectors = z
  .object({
    start: durationField('start').default(0),
    /** Weak-block episodes per second. */
    rate: z.number().positive().max(1e6),
    /** Neighbouring blocks per episode. */
    cluster: z.number().int().min(1).max(4096).default(1),
    /** Read latency of a weak block: a latency spec ('100ms', 'uniform:50ms..200ms', 'lognormal:80ms,0.5'). */
    readLatency: z.string().default('100ms'),
    /** Mean time from weak to failed (exponential). */
    failAfter: durationField('failAfter').default(30e9),
    /** Fraction of weak blocks that fail at all. */
    failFraction: z.number().min(0).max(1).default(1),
    writeFailCount: z.number().int().min(0).max(255).default(3),
    maxEpisodes: z.number().int().min(1).optional(),
    region: region.optional(),
  })
  .strict();

/** Transient read errors that clear on retry (src/faults/transient.ts). */
const transientErrors = z
  .object({
    /** Probability that a read request fails once. */
    probability: z.number().min(0).max(1).default(1e-4),
    region: region.optional(),
  })
  .strict();

const latency = z
  .object({
    read: z.string().optional(),
    write: z.string().optional(),
    flush: z.string().optional(),
    discard: z.string().optional(),
  })
  .strict();

const flakey = z
  .object({
    up: z.number().int().min(0),
    down: z.number().int().min(0),
    /** dm-flakey feature arguments, e.g. ["drop_writes"] or ["corrupt_bio_byte", "32", "r", "1", "0"]. */
    features: z.array(z.string()).default([]),
  })
  .strict();

const faultLayers = z
  .object({
    /** Sectors that are bad from the start (dm-dust list). */
    badSectors: z.array(sector).default([]),
    /** A file of bad sectors: one a line (# comments), a GNU ddrescue mapfile, or a badblocks / e2fsck -l list. */
    badSectorsFile: z.string().optional(),
    badSectorsFormat: z.enum(['list', 'ddrescue', 'badblocks']).default('list'),
    /** Block size of a badblocks list in bytes (badblocks -b; e2fsck: the file system's block size). */
    badBlockSize: z
      .number()
      .int()
      .min(512)
      .max(1 << 20)
      .multipleOf(512)
      .default(1024),
    /** Write failures of the initial bad sectors (dust's wr_fail_cnt). */
    writeFailCount: z.number().int().min(0).max(255).default(3),
    /** dust block size in bytes (default: the device's logical block size). */
    dustBlockSize: z.number().int().min(512).optional(),
    growth: z.array(growth).default([]),
    latentErrors: z.array(latentErrors).default([]),
    weakSectors: z.array(weakSectors).default([]),
    transientErrors: transientErrors.optional(),
    flakey: flakey.optional(),
    latency: latency.optional(),
  })
  .strict();

export const POLICIES = ['safe', 'dm-remap-v4'] as const;
export type Policy = (typeof POLICIES)[number];

const target = z
  .object({
    policy: z.enum(POLICIES).default('safe'),
    /** A monitor reads the target's status this often, as `dmsetup status` in a loop would (on dm-remap-v4 each call takes or releases a mutex). */
    statusEvery: durationField('statusEvery')
      .refine((ns) => ns >= 1e6 && ns <= 86400e9, { message: 'statusEvery must be from 1ms to 1d' })
      .optional(),
    /** The target's table is loaded again this often on the same devices, as a reboot would (remove, then create). */
    restartEvery: durationField('restartEvery')
      .refine((ns) => ns >= 10e6 && ns <= 86400e9, { message: 'restartEvery must be from 10ms to 1d' })
      .optional(),
  })
  .strict();

export const SCAN_ORDERS = ['sequential', 'staggered'] as const;

/**
 * The background health scanner over the main device (src/health): present
 * means on. Under dm-remap-v4 it does what that module does: reads nothing.
 */
const scanner = z
  .object({
    enabled: z.boolean().default(true),
    /** MB (10^6 bytes) per second while the foreground is idle; 0 = unlimited. */
    rate: z.number().min(0).max(1e6).default(32),
    /** Fraction of the rate while foreground I/O is busy. */
    busyFactor: z.number().min(0).max(1).default(0.25),
    /** The foreground counts as busy this long after its last I/O. */
    idle: durationField('idle').default(100e6),
    /** Bytes per scan read. */
    slice: sizeField('slice')
      .default(128 << 10)
      .refine((v) => v % 512 === 0 && v <= 64 << 20, { message: 'slice must be a whole number of 512-byte sectors, at most 64 MiB' }),
    /** A read slower than this is slow (a weak sector when it repeats). */
    slow: durationField('slow').default(50e6),
    retries: z.number().int().min(0).max(100).default(3),
    order: z.enum(SCAN_ORDERS).default('sequential'),
    staggerRegions: z.number().int().min(1).max(1e6).default(64),
    /** One health sample per this interval. */
    sampleEvery: durationField('sampleEvery').default(1e9),
    /** Horizon of the score's spare-exhaustion risk. */
    horizon: durationField('horizon').default(30 * 86400e9),
    /** Confidence of the prediction intervals. */
    confidence: z.number().gt(0).lt(1).default(0.9),
  })
  .strict();

/** A job: fio option names and values (rw, bs, iodepth, verify, ...). */
const job = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]));

export const scenarioSchema = z
  .object({
    name: z.string().min(1).default('scenario'),
    description: z.string().optional(),
    /** Seeds the jobs, the fault growth and the verify data. */
    seed: z.number().int().min(0).max(0xffffffff).default(1),
    /** Run time of time-based jobs that do not set their own runtime. */
    duration: durationField('duration').default(10e9),
    /** Where backing files are created (default: a temporary directory, removed afterwards). */
    workdir: z.string().optional(),
    devices: z.object({ main: device, spare: device }).strict(),
    faults: z.object({ main: faultLayers.optional(), spare: faultLayers.optional() }).strict().default({}),
    target: target.default({ policy: 'safe' }),
    scanner: scanner.optional(),
    jobs: z.array(job).min(1),
  })
  .strict();

export type ScenarioInput = z.input<typeof scenarioSchema>;
export type Scenario = z.output<typeof scenarioSchema>;
export type DeviceSpec = Scenario['devices']['main'];
export type FaultLayersSpec = NonNullable<Scenario['faults']['main']>;
export type GrowthSpec = FaultLayersSpec['growth'][number];
export type LatentErrorSpec = FaultLayersSpec['latentErrors'][number];
export type WeakSectorSpec = FaultLayersSpec['weakSectors'][number];
export type TransientErrorSpec = NonNullable<FaultLayersSpec['transientErrors']>;
export type ScannerSpec = NonNullable<Scenario['scanner']>;

/** A scenario the user got wrong: one line per problem, each naming the field. */
export class ScenarioError extends UsageError {
  override readonly name: string = 'ScenarioError';
}

/** A zod issue's path as a field name: `faults.main.growth[0].rate`, or '(top level)'. */
export function issuePath(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
    .join('')
    .replace(/^\./, '');
}

/** Validates a parsed scenario object; throws ScenarioError listing every problem with its field path. */
export function validateScenario(input: unknown, source = 'scenario'): Scenario {
  const r = scenarioSchema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    return `${source}: ${issuePath(i.path)}: ${i.message}`;
  });
  throw new ScenarioError(lines.join('\n'));
}
