/**
 * CLI glue for the status view: the `--watch`, `--count` and `--format`
 * options of `remapsim status`, and running the view on a source with
 * Ctrl-C and a closed pipe ending it cleanly.
 */
import type { Command } from 'commander';
import { ControlConnectError } from '../nbd/control-socket.js';
import { UsageError } from '../cli/errors.js';
import { StatusParseError } from './parse.js';
import { type StatusSource, StatusSourceError } from './sources.js';
import { STATUS_FORMATS, type StatusFormat } from './view.js';
import { type ViewOutput, watchStatus } from './watch.js';

export interface StatusViewOptions {
  watch?: string;
  count?: string;
  format?: string;
}

export interface StatusViewSettings {
  format: StatusFormat;
  intervalMs?: number;
  count?: number;
}

export const MIN_WATCH_S = 0.1;
export const MAX_WATCH_S = 86_400;

export function addStatusViewOptions(cmd: Command): Command {
  return cmd
    .option('--watch <seconds>', `sample every N seconds until Ctrl-C (${MIN_WATCH_S} to ${MAX_WATCH_S}); a terminal redraws in place, a pipe gets a line per sample`)
    .option('--count <n>', 'with --watch: stop after n samples')
    .option('--format <format>', `human (every field named, 80 columns), json (a JSON object per line) or csv (a header, then a row per sample)`);
}

/** True when the options ask for the view rather than the raw status line. */
export function wantsStatusView(opts: StatusViewOptions): boolean {
  return opts.watch !== undefined || opts.format !== undefined || opts.count !== undefined;
}

export function parseStatusViewOptions(opts: StatusViewOptions): StatusViewSettings {
  const format = (opts.format ?? 'human') as StatusFormat;
  if (!STATUS_FORMATS.includes(format)) throw new UsageError(`--format: must be one of ${STATUS_FORMATS.join(', ')}, got '${opts.format}'`);
  let intervalMs: number | undefined;
  if (opts.watch !== undefined) {
    const s = Number(opts.watch);
    if (opts.watch.trim() === '' || !Number.isFinite(s) || s < MIN_WATCH_S || s > MAX_WATCH_S) {
      throw new UsageError(`--watch: must be a number of seconds from ${MIN_WATCH_S} to ${MAX_WATCH_S}, got '${opts.watch}'`);
    }
    intervalMs = Math.round(s * 1000);
  }
  let count: number | undefined;
  if (opts.count !== undefined) {
    if (intervalMs === undefined) throw new UsageError('--count: only with --watch (without it, status takes one sample)');
    const n = Number(opts.count);
    if (!/^\d+$/.test(opts.count) || n < 1 || n > 1e9) throw new UsageError(`--count: must be an integer from 1 to 1000000000, got '${opts.count}'`);
    count = n;
  }
  return { format, intervalMs, count };
}

/** Runs the view on `source` until done, Ctrl-C or a closed pipe; user-visible failures become UsageError. */
export async function runStatusView(source: StatusSource, opts: StatusViewOptions, out: ViewOutput & Partial<NodeJS.WritableStream> = process.stdout): Promise<number> {
  const settings = parseStatusViewOptions(opts);
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  const onError = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'EPIPE') ac.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  out.on?.('error', onError);
  try {
    return await watchStatus({ source, format: settings.format, out, intervalMs: settings.intervalMs, count: settings.count, signal: ac.signal });
  } catch (err) {
    if (err instanceof ControlConnectError || err instanceof StatusSourceError || err instanceof StatusParseError) throw new UsageError(`${source.label}: ${err.message}`);
    throw err;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    out.off?.('error', onError);
    source.close();
  }
}
