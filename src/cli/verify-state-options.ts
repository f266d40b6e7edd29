/** --verify-state and --verify-state-interval, shared by `bench` and `run`. */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { parseTime } from '../workload/size.js';
import { UsageError } from '../util/errors.js';
import { checkOutputPath } from './output-path.js';

export interface VerifyStateCliOptions {
  verifyState?: string;
  verifyStateInterval?: string;
}

export interface VerifyStateRequest {
  file: string;
  minIntervalMs: number;
}

export function addVerifyStateOptions(cmd: Command): Command {
  return cmd
    .option(
      '--verify-state <file>',
      "save the oracle's state to this file when the run starts, at every flush its jobs complete (fsync=N) and at its end; after a crash, `remapsim verify --state FILE` checks the device against it (runs on one thread)",
    )
    .option('--verify-state-interval <time>', 'with --verify-state: least time between two saves at flushes, e.g. 1s (default 0: at every flush)');
}

export function parseVerifyStateOptions(o: VerifyStateCliOptions): VerifyStateRequest | undefined {
  if (o.verifyState === undefined) {
    if (o.verifyStateInterval !== undefined) throw new UsageError('--verify-state-interval: only with --verify-state FILE');
    return undefined;
  }
  checkOutputPath(o.verifyState, '--verify-state');
  // saved as a new file renamed over the old one: a device or pipe cannot be replaced that way
  if (fs.existsSync(o.verifyState) && !fs.statSync(o.verifyState).isFile()) throw new UsageError(`--verify-state: ${o.verifyState} is not a regular file`);
  let minIntervalMs = 0;
  if (o.verifyStateInterval !== undefined) {
    let us: number;
    try {
      us = parseTime(o.verifyStateInterval, '--verify-state-interval', 's');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (us > 3_600e6) throw new UsageError(`--verify-state-interval: must be between 0 and 1h, got '${o.verifyStateInterval}'`);
    minIntervalMs = us / 1e3;
  }
  return { file: o.verifyState, minIntervalMs };
}
