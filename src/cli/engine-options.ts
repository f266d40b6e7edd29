import type { Command } from 'commander';
import type { ScenarioEngineOptions } from '../scenario/run.js';
import { UsageError } from '../util/errors.js';

/** The per-CPU engine's options as commander gives them. */
export interface EngineCliOptions {
  engine: string;
  queues?: string;
  numa?: string;
  force?: boolean;
  io: string;
}

/**
 * Adds --engine, --queues, --numa, --force and --io; `workersHelp` says what the engine runs for this command.
 * `force: false` leaves --force to the command (which then never allows more queues than CPUs);
 * `engine` is the default data path.
 */
export function addEngineOptions(cmd: Command, workersHelp: string, opts: { force?: boolean; engine?: 'workers' | 'sync' } = {}): Command {
  cmd
    .option('--engine <kind>', `data path: workers (the per-CPU engine; ${workersHelp}) or sync (one thread)`, opts.engine ?? 'workers')
    .option('--queues <n>', 'engine queues, one worker thread each (default: one per CPU)')
    .option('--numa <shape>', "simulate a NUMA topology for the engine, e.g. 2x8 (default: the machine's)");
  if (opts.force !== false) cmd.option('--force', 'allow more queues than CPUs');
  return cmd.option('--io <kind>', 'how engine workers reach files: auto (io_uring when the native library is built), native or js', 'auto');
}

/** The engine's settings, or undefined for --engine sync; bad values are one-line usage errors. */
export function parseEngineOptions(o: EngineCliOptions): ScenarioEngineOptions | undefined {
  if (o.engine !== 'workers' && o.engine !== 'sync') throw new UsageError(`--engine: must be workers or sync, got '${o.engine}'`);
  if (o.io !== 'auto' && o.io !== 'native' && o.io !== 'js') throw new UsageError(`--io: must be auto, native or js, got '${o.io}'`);
  let queues: number | undefined;
  if (o.queues !== undefined) {
    queues = Number(o.queues);
    if (!Number.isInteger(queues)) throw new UsageError(`--queues: must be a whole number, got '${o.queues}'`);
  }
  return o.engine === 'workers' ? { queues, numa: o.numa, force: o.force, io: o.io } : undefined;
}
