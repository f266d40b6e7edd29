/**
 * The oracle's state on disk (`--verify-state FILE`): saved when a run
 * starts, at the flushes its jobs complete, and at its end, each time
 * replacing the file whole (a crash leaves the previous save or the new
 * one), as fio's verify_state_save does; read back by `remapsim verify`.
 */
import * as fs from 'node:fs';
import { EXIT_ENVIRONMENT, UsageError } from '../util/errors.js';
import { replaceFileDurably } from '../util/atomic-file.js';
import type { Oracle } from './oracle.js';
import { decodeVerifyState, encodeVerifyState, type VerifyState, VerifyStateError } from './verify-state.js';

export interface VerifyStateSaverOptions {
  /** What the run writes to: described, with its geometry, so verify can check it is given the same. */
  target: { description: string; sectors: number; logicalBlockSize: number };
  /**
   * Least time between two saves at flushes (ms; default 0: every flush).
   * A save skipped leaves an older state, which verify still reads rightly:
   * older durable generations only accept more, and data written after a
   * save is recognised by its generation.
   */
  minIntervalMs?: number;
  now?: () => number;
}

export class VerifyStateSaver {
  readonly file: string;
  /** Saves made so far. */
  saves = 0;
  private readonly oracle: Oracle;
  private readonly opts: VerifyStateSaverOptions;
  private readonly now: () => number;
  private last = -Infinity;

  constructor(file: string, oracle: Oracle, opts: VerifyStateSaverOptions) {
    if (!oracle.tracksDurability) throw new Error('verify state: the oracle does not track durability');
    this.file = file;
    this.oracle = oracle;
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  /** Before the first I/O: a run killed before its first flush leaves a state that names it, not an earlier run's. */
  start(): void {
    this.save(false);
  }

  /** The runner's flush hook. */
  readonly onFlush = (): void => {
    if (this.now() - this.last >= (this.opts.minIntervalMs ?? 0)) this.save(false);
  };

  /** After the run's final flush. */
  finish(): void {
    this.save(true);
  }

  private save(complete: boolean): void {
    const o = this.oracle;
    const d = o.durability();
    const state: VerifyState = {
      runId: o.pattern.runId,
      unitSize: o.unitSize,
      seed: o.pattern.seed,
      algorithm: o.pattern.algorithm,
      baseSector: o.baseSector,
      units: o.units,
      complete,
      priorContent: o.priorContent,
      target: this.opts.target,
      flushes: d.flushes,
      failedFlushes: d.failedFlushes,
      savedAtMs: this.now(),
      saved: o.savedUnits(),
    };
    try {
      replaceFileDurably(this.file, encodeVerifyState(state));
    } catch (err) {
      throw new UsageError(`--verify-state: cannot save ${this.file}: ${(err as Error).message}`, EXIT_ENVIRONMENT);
    }
    this.last = this.now();
    this.saves++;
  }
}

/** Reads a verify-state file; anything that is not one, or is damaged, is a one-line UsageError (exit 2). */
export function loadVerifyState(file: string): VerifyState {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UsageError(`--state: cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  try {
    return decodeVerifyState(bytes, file);
  } catch (err) {
    if (err instanceof VerifyStateError) throw new UsageError(`--state: ${err.message}`);
    throw err;
  }
}
