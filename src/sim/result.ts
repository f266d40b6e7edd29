/**
 * What one simulated run reports (one JSON line of a campaign). Times are
 * seconds of virtual time from the run's start; null means "did not happen
 * within the horizon". A pure function of the configuration and the seed:
 * no wall-clock time goes in, so a run gives the same line on any machine.
 */
import type { Policy } from '../scenario/schema.js';
import type { ReadClass } from '../workload/oracle.js';

export interface SimRunResult {
  policy: Policy;
  horizonSeconds: number;
  /**
   * Loss of acknowledged data, as the oracle found it:
   *   silent      a read returned it damaged: lost (zeroes), stale (an older version) or corrupt;
   *   unreadable  a read failed over it: the medium lost it, and the target said so.
   * `at`: the first time a user read found it (or the read-back at the horizon, `atReadBack`).
   */
  loss: {
    at: number | null;
    silentAt: number | null;
    unreadableAt: number | null;
    /** Found only by the read-back of every followed unit at the horizon. */
    atReadBack: boolean;
    /** Distinct units (requests) found damaged, and found unreadable. */
    silentUnits: number;
    unreadableUnits: number;
  };
  /** Errors the workload saw (requests). */
  errors: { read: number; write: number; enospc: number };
  spare: {
    total: number;
    used: number;
    remaps: number;
    pending: number;
    /** First time the spare had no block left (seconds), or null. */
    exhaustedAt: number | null;
  };
  faults: {
    /** Blocks of main that went bad (grown: latent errors, weak sectors that failed, growth). */
    badBlocks: number;
    weakBlocks: number;
    transientErrors: number;
    spareBadBlocks: number;
  };
  /** Who found each grown bad block of main first: the scanner, or a user read. */
  detection: { appeared: number; scannerFirst: number; userFirst: number; undiscovered: number };
  scanner: { passes: number; bytes: number; weakMoved: number; badPending: number } | null;
  restarts: { done: number; stoppedAt: number | null; stopped?: string };
  statusCalls: number;
  ios: { reads: number; writes: number; simulated: number; bytesRead: number; bytesWritten: number };
  /** The oracle's verdicts on every read it judged (user reads and the read-back). */
  oracle: Record<ReadClass, number>;
  /** Health over time: sample times (s) and the score, spare used and pending at each. */
  health: { t: number[]; score: number[]; used: number[]; pending: number[] };
  /** User-visible latency of the I/Os, HdrHistogram (V2, compressed, base64), ns; absent when none was recorded. */
  latency?: string;
  /** Events the simulator processed. */
  events: number;
}
