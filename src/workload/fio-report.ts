/**
 * A run's results in fio's --output-format=json shape, with remapsim's own
 * `verify` (how this job's reads were judged, plus the run's oracle report)
 * and `remap` (the target's counters) blocks on each job.
 */
import { buildFioResult, type DirectionInput, type FioResult, type JobInput } from '../stats/fio-json.js';
import { DIR_READ, DIR_TRIM, DIR_WRITE, type DirIndex } from '../stats/series.js';
import type { OracleReport } from './oracle.js';
import type { DirStats } from './completion.js';
import type { JobRunResult, RunResult } from './runner.js';

export interface ReportExtras {
  oracle?: OracleReport;
  remap?: unknown;
  globalOptions?: Record<string, string>;
  /** fio's json+: latency bins beside the percentiles. */
  plus?: boolean;
}

function direction(job: JobRunResult, stats: DirStats, dir: DirIndex, endNs: number): DirectionInput | undefined {
  if (stats.totalIos === 0 && stats.errors === 0) return undefined;
  return {
    ioBytes: stats.ioBytes,
    totalIos: stats.totalIos,
    runtimeMs: job.runtimeNs / 1e6,
    clat: stats.clat,
    bwSamples: job.series.bwSamples(dir, endNs),
    iopsSamples: job.series.iopsSamples(dir, endNs),
  };
}

export function toFioResult(run: RunResult, extras: ReportExtras = {}): FioResult {
  const jobs: JobInput[] = run.jobs.map((job) => {
    const endNs = job.series.startNs + job.runtimeNs;
    return {
      name: job.spec.name,
      error: job.error,
      elapsedMs: run.elapsedNs / 1e6,
      runtimeMs: job.runtimeNs / 1e6,
      options: { ...job.spec.options },
      read: direction(job, job.read, DIR_READ, endNs),
      write: direction(job, job.write, DIR_WRITE, endNs),
      trim: direction(job, job.trim, DIR_TRIM, endNs),
      sync: job.flushes?.latency,
      iodepth: job.spec.iodepth,
      // one thread runs every job: each job reports the run's usage, as fio does for threads of one process
      cpu: { userMs: run.cpu.userMs, systemMs: run.cpu.systemMs },
      ctx: run.cpu.ctx,
      majf: run.cpu.majf,
      minf: run.cpu.minf,
      verify: job.verify ? { reads: job.verify, ...(extras.oracle ? { run: extras.oracle } : {}) } : undefined,
      remap: extras.remap,
    };
  });
  // fio prints the [global] options once; jobs share them
  const globalOptions = extras.globalOptions ?? run.jobs[0]?.spec.globalOptions;
  return buildFioResult({ jobs, globalOptions, timestamp: run.startedAt, plus: extras.plus });
}
