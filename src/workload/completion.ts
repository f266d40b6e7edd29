/**
 * What a completed I/O counts for, in one place for both data paths: the
 * one-thread runner and each worker of the per-CPU engine account their
 * completions here, so a job's bytes, latencies, errors, the oracle's
 * verdicts and fio's continue_on_error mean the same on either path.
 * Called once per I/O on the engine's hot path: it allocates nothing.
 */
import { OK } from '../block/device.js';
import { LatencyHistogram } from '../stats/latency.js';
import type { DirIndex, IoSeries } from '../stats/series.js';
import { continuesAfter, EILSEQ } from './continue-on-error.js';
import type { JobSpec } from './job.js';
import type { Oracle, ReadClass } from './oracle.js';

/** One direction's measurements (fio's read, write or trim block). */
export interface DirStats {
  ioBytes: number;
  totalIos: number;
  errors: number;
  clat: LatencyHistogram;
}

export function newDirStats(): DirStats {
  return { ioBytes: 0, totalIos: 0, errors: 0, clat: new LatencyHistogram() };
}

/** What a job's completions are accounted into (in the engine, the share of one worker). */
export interface JobAccount {
  readonly spec: JobSpec;
  /** By direction: read, write, trim. */
  readonly dirs: readonly DirStats[];
  readonly series: IoSeries;
  /** Completions before it (ramp_time) count for progress and the oracle, not for the job's numbers. */
  readonly measureFromNs: number;
  /** How the job's reads were judged: present when the oracle judges this job. */
  readonly tally?: Record<ReadClass, number>;
}

/** The running totals, for progress: three Float64 words from the `at` given to Completions. */
export const TOTAL_BYTES = 0;
export const TOTAL_IOS = 1;
export const TOTAL_ERRORS = 2;

const KIND = ['read', 'write', 'trim'] as const;

export class Completions {
  /**
   * `totals[at + TOTAL_*]` count every completion (a worker's are its progress
   * counters in shared memory); `oracle` judges the jobs that verify.
   */
  constructor(
    private readonly totals: Float64Array,
    private readonly at: number,
    private readonly oracle: Oracle | undefined,
  ) {}

  /**
   * Accounts a completed read, write or trim of `bytes` at `offsetBytes`:
   * `rc` its status, `data` its buffer (at least `bytes` long; a read's data
   * is judged there). Returns the errno the job stops with under
   * continue_on_error (EILSEQ for a failed verify), or 0 when it goes on.
   */
  account(job: JobAccount, op: DirIndex, offsetBytes: number, bytes: number, rc: number, submitNs: number, doneNs: number, data: Uint8Array): number {
    const dir = job.dirs[op];
    // as fio: a failed I/O counts as an I/O with its latency, but moves no bytes
    const moved = rc === OK ? bytes : 0;
    if (doneNs >= job.measureFromNs) {
      dir.clat.record(Math.max(1, Math.round(doneNs - submitNs)));
      dir.ioBytes += moved;
      dir.totalIos++;
      job.series.add(op, moved, doneNs);
    }
    const totals = this.totals;
    const at = this.at;
    totals[at + TOTAL_BYTES] += moved;
    totals[at + TOTAL_IOS]++;
    let verifyFailed = false;
    const oracle = job.tally ? this.oracle : undefined;
    if (oracle) {
      const unit0 = offsetBytes / oracle.unitSize;
      if (op === 0) {
        const buf = data.length === bytes ? data : data.subarray(0, bytes);
        // verify_only replays the job's writes as reads of intact blocks
        const findings = job.spec.verifyOnly ? oracle.checkIntact(unit0, buf, rc, job.tally) : oracle.checkRead(unit0, buf, rc, job.tally);
        verifyFailed = findings > 0 && rc === OK;
      } else if (op === 1) oracle.completeWrite(unit0, bytes / oracle.unitSize, rc);
      else oracle.completeTrim(unit0, bytes / oracle.unitSize, rc);
    }
    if (rc !== OK) {
      dir.errors++;
      totals[at + TOTAL_ERRORS]++;
      return continuesAfter(job.spec, KIND[op]) ? 0 : rc;
    }
    return verifyFailed && !continuesAfter(job.spec, 'verify') ? EILSEQ : 0;
  }
}
