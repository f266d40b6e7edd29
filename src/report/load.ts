/**
 * Results files in, report runs out. A file holds fio's JSON (ours, with
 * `verify` and `remap` blocks per job and a top-level `remapsim` block with
 * the timeline and device map; or plain fio's), or `{runs: [...]}` as
 * `remapsim run --compare-policies` writes it. Pure apart from readResults.
 */
import { issuePath } from '../scenario/schema.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { MAP_LAYERS, type DeviceMapJSON } from '../status/device-map.js';
import type { TimelineJSON } from '../status/timeline.js';

export class ReportInputError extends Error {
  override readonly name = 'ReportInputError';
}

export const DIRECTIONS = ['read', 'write', 'trim'] as const;
export type Dir = (typeof DIRECTIONS)[number];

export interface ClatStats {
  min: number;
  max: number;
  mean: number;
  N: number;
  /** percentile (as fio prints it, e.g. "99.900000") -> ns */
  percentile?: Record<string, number>;
  /** json+ only: fio's latency bins, bucket value (ns, as text) -> I/Os */
  bins?: Record<string, number>;
}

export interface DirStats {
  ioBytes: number;
  bwBytes: number;
  iops: number;
  totalIos: number;
  runtimeMs: number;
  clat?: ClatStats;
}

export interface ReportJob {
  name: string;
  error: number;
  dirs: Record<Dir, DirStats>;
  /** How this job's reads were judged (class -> units). */
  verifyReads?: Record<string, number>;
}

export interface OracleSummary {
  unitSize?: number;
  reads: Record<string, number>;
  first: Record<string, number[]>;
  findings?: number;
  corruptReasons?: Record<string, number>;
  writes?: { acknowledged: number; failed: number };
}

export interface ReportRun {
  /** Column title: the policy (and scenario) when known, else the file. */
  label: string;
  /** The file it came from, with `#i` for runs of a {runs: [...]} file. */
  source: string;
  fioVersion: string;
  time?: string;
  scenario?: string;
  policy?: string;
  jobs: ReportJob[];
  /** The run's oracle report (the same on every job; taken from the first that has it). */
  oracle?: OracleSummary;
  /** The target's counters at the end (the first job's `remap` block). */
  remap?: Record<string, unknown>;
  timeline?: TimelineJSON;
  deviceMap?: DeviceMapJSON;
}

const nonNeg = z.number().finite().min(0);
const count = z.number().int().min(0);
const clat = z.looseObject({
  min: nonNeg,
  max: nonNeg,
  mean: nonNeg,
  N: count,
  percentile: z.record(z.string(), nonNeg).optional(),
  bins: z.record(z.string(), count).optional(),
});
const dir = z.looseObject({
  io_bytes: nonNeg,
  bw_bytes: nonNeg,
  iops: nonNeg,
  total_ios: nonNeg,
  runtime: nonNeg,
  clat_ns: clat.optional(),
});
const classCounts = z.record(z.string(), count);
const oracle = z.looseObject({
  unitSize: count.optional(),
  reads: classCounts,
  first: z.record(z.string(), z.array(count)).default({}),
  findings: count.optional(),
  corruptReasons: z.record(z.string(), count).optional(),
  writes: z.looseObject({ acknowledged: count, failed: count }).optional(),
});
const job = z.looseObject({
  jobname: z.string(),
  error: count.default(0),
  read: dir,
  write: dir,
  trim: dir.optional(),
  verify: z.looseObject({ reads: classCounts.optional(), run: oracle.optional() }).optional(),
  remap: z.record(z.string(), z.unknown()).optional(),
});
const series = z.array(count);
const optSeries = z.array(count.nullable()).optional();
const timeline = z.looseObject({
  intervalMs: count.min(1),
  durationMs: count,
  io: z.looseObject({
    t: series,
    read: z.looseObject({ bw: series, iops: series }),
    write: z.looseObject({ bw: series, iops: series }),
    trim: z.looseObject({ bw: series, iops: series }),
  }),
  device: z.looseObject({ t: series, remaps: series, spareUsed: series, spareCapacity: series, pending: optSeries, badBlocks: optSeries, health: optSeries }),
  healthSource: z.string().optional(),
});
const deviceMap = z.looseObject({
  sectors: count.min(1),
  bucketSectors: count.min(1),
  buckets: count.min(1),
  bad: series,
  pending: series,
  remapped: series,
  totals: z.looseObject({ bad: count, pending: count, remapped: count }),
});
const result = z.looseObject({
  'fio version': z.string(),
  time: z.string().optional(),
  'global options': z.record(z.string(), z.string()).optional(),
  jobs: z.array(job),
  remapsim: z.looseObject({ timeline: timeline.optional(), deviceMap: deviceMap.optional() }).optional(),
});

function issueText(err: z.ZodError, where: string): string {
  const i = err.issues[0];
  return `${where}: ${issuePath(i.path)}: ${i.message}`;
}

function checkLengths(t: TimelineJSON | undefined, m: DeviceMapJSON | undefined, where: string): void {
  if (t) {
    const n = t.io.t.length;
    for (const d of DIRECTIONS) {
      if (t.io[d].bw.length !== n || t.io[d].iops.length !== n)
        throw new ReportInputError(`${where}: remapsim.timeline.io.${d} must have ${n} values (one per io.t), has ${t.io[d].bw.length}/${t.io[d].iops.length}`);
    }
    const k = t.device.t.length;
    for (const key of ['remaps', 'spareUsed', 'spareCapacity', 'pending', 'badBlocks', 'health'] as const) {
      const a = t.device[key];
      if (a !== undefined && a.length !== k)
        throw new ReportInputError(`${where}: remapsim.timeline.device.${key} must have ${k} values (one per device.t), has ${a.length}`);
    }
  }
  if (m) {
    for (const l of MAP_LAYERS)
      if (m[l].length !== m.buckets)
        throw new ReportInputError(`${where}: remapsim.deviceMap.${l} must have ${m.buckets} values (one per bucket), has ${m[l].length}`);
    if (m.bucketSectors * m.buckets < m.sectors)
      throw new ReportInputError(`${where}: remapsim.deviceMap: ${m.buckets} buckets of ${m.bucketSectors} sectors do not cover ${m.sectors} sectors`);
  }
}

function dirStats(d: z.infer<typeof dir> | undefined): DirStats {
  if (!d) return { ioBytes: 0, bwBytes: 0, iops: 0, totalIos: 0, runtimeMs: 0 };
  return {
    ioBytes: d.io_bytes,
    bwBytes: d.bw_bytes,
    iops: d.iops,
    totalIos: d.total_ios,
    runtimeMs: d.runtime,
    ...(d.clat_ns && d.clat_ns.N > 0 ? { clat: d.clat_ns } : {}),
  };
}

/** One fio-shaped result as a report run. `where` names it in error messages. */
export function runFromResult(raw: unknown, where: string): ReportRun {
  const parsed = result.safeParse(raw);
  if (!parsed.success) throw new ReportInputError(issueText(parsed.error, where));
  const r = parsed.data;
  const tl = r.remapsim?.timeline as TimelineJSON | undefined;
  const map = r.remapsim?.deviceMap as DeviceMapJSON | undefined;
  checkLengths(tl, map, where);
  const g = r['global options'] ?? {};
  const jobs: ReportJob[] = r.jobs.map((j) => ({
    name: j.jobname,
    error: j.error,
    dirs: { read: dirStats(j.read), write: dirStats(j.write), trim: dirStats(j.trim) },
    ...(j.verify?.reads ? { verifyReads: j.verify.reads } : {}),
  }));
  const withRun = r.jobs.find((j) => j.verify?.run !== undefined);
  const remap = r.jobs.find((j) => j.remap !== undefined)?.remap;
  const policy = g.policy ?? (typeof remap?.policy === 'string' ? remap.policy : undefined);
  return {
    label: policy !== undefined ? policy : path.basename(where),
    source: where,
    fioVersion: r['fio version'],
    ...(r.time !== undefined ? { time: r.time } : {}),
    ...(g.scenario !== undefined ? { scenario: g.scenario } : {}),
    ...(policy !== undefined ? { policy } : {}),
    jobs,
    ...(withRun?.verify?.run ? { oracle: withRun.verify.run as OracleSummary } : {}),
    ...(remap ? { remap } : {}),
    ...(tl ? { timeline: tl } : {}),
    ...(map ? { deviceMap: map } : {}),
  };
}

/** A parsed results file: one run, or each of `{runs: [...]}`. */
export function runsFromJson(raw: unknown, where: string): ReportRun[] {
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw) && 'runs' in raw) {
    const runs = (raw as { runs: unknown }).runs;
    if (!Array.isArray(runs) || runs.length === 0) throw new ReportInputError(`${where}: runs must be a non-empty array of fio results`);
    return runs.map((r, i) => runFromResult(r, `${where}#${i}`));
  }
  if (typeof raw !== 'object' || raw === null || !('jobs' in raw)) {
    throw new ReportInputError(`${where}: not a results file (expected fio's JSON output with a 'jobs' array, or {"runs": [...]})`);
  }
  return [runFromResult(raw, where)];
}

/** fio may print notes before its JSON: parse from the first '{' when the whole text is not JSON. */
export function parseResultsText(text: string, where: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (first) {
    const at = text.indexOf('{');
    if (at > 0) {
      try {
        return JSON.parse(text.slice(at)) as unknown;
      } catch {
        // fall through to the first error
      }
    }
    throw new ReportInputError(`${where}: not JSON (${(first as Error).message})`);
  }
}

/** Reads results files; runs get distinct labels (the same policy twice gets the file name added). */
export function readResults(files: readonly string[]): ReportRun[] {
  if (files.length === 0) throw new ReportInputError('no results files given');
  const runs: ReportRun[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch (err) {
      throw new ReportInputError(`${f}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    runs.push(...runsFromJson(parseResultsText(text, f), f));
  }
  return distinctLabels(runs);
}

export function distinctLabels(runs: ReportRun[]): ReportRun[] {
  const seen = new Map<string, number>();
  for (const r of runs) seen.set(r.label, (seen.get(r.label) ?? 0) + 1);
  return runs.map((r) => {
    if ((seen.get(r.label) ?? 0) < 2) return r;
    const file = path.basename(r.source);
    return { ...r, label: r.label === file ? file : `${r.label} (${file})` };
  });
}
