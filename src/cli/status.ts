/**
 * CLI glue for the status view: the `--watch`, `--count` and `--format`
 * options of `remapsim status`, and running the view on a source with
 * Ctrl-C and a closed pipe ending it cleanly.
 */
import type { Command } from 'commander';
import { ControlConnectError } from '../nbd/control-socket.js';
import { UsageError } from '../util/errors.js';
import { StatusParseError } from '../status/parse.js';
import { type StatusSource, StatusSourceError } from '../status/sources.js';
import { STATUS_FORMATS, type StatusFormat } from '../status/view.js';
import { type ViewOutput, watchStatus } from '../status/watch.js';
import { watchExpositions } from '../metrics/status-watch.js';

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
const WATCH_HELP = `sample every S seconds until Ctrl-C: 1, 0.5, 500ms, 2s (${MIN_WATCH_S} s to ${MAX_WATCH_S} s)`;

export function addStatusViewOptions(cmd: Command): Command {
  return cmd
    .option('--watch <seconds>', `${WATCH_HELP}; a terminal redraws in place, a pipe gets a line per sample`)
    .option('--count <n>', 'with --watch: stop after n samples')
    .option(
      '--format <format>',
      `human (every field named, 80 columns), json (a JSON object per line), csv (a header, then a row per sample) or openmetrics (an OpenMetrics exposition per sample, ending '# EOF')`,
    );
}

/** True when the options ask for the view rather than the raw status line. */
export function wantsStatusView(opts: StatusViewOptions): boolean {
  return opts.watch !== undefined || opts.format !== undefined || opts.count !== undefined;
}

/** A watch interval in ms: seconds as a plain number (`1`, `0.5`), or a time with a unit (`500ms`, `2s`, `1m`). */
export function parseWatchInterval(text: string, option = '--watch'): number {
  const t = text.trim();
  const bad = (): never => {
    throw new UsageError(`${option}: must be a time from ${MIN_WATCH_S} s to ${MAX_WATCH_S} s: seconds (1, 0.5) or with a unit (500ms, 2s, 1m), got '${text}'`);
  };
  let ms: number;
  if (/^\d+(\.\d+)?$|^\.\d+$/.test(t)) ms = Number(t) * 1000;
  else {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/i.exec(t);
    if (!m) return bad();
    ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2].toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  }
  if (!Number.isFinite(ms) || ms < MIN_WATCH_S * 1000 || ms > MAX_WATCH_S * 1000) bad();
  return Math.round(ms);
}

/** --watch and --count: the interval (undefined: one sample) and the sample count. */
export function parseWatchOptions(opts: { watch?: string; count?: string }): { intervalMs?: number; count?: number } {
  const intervalMs = opts.watch === undefined ? undefined : parseWatchInterval(opts.watch);
  let count: number | undefined;
  if (opts.count !== undefined) {
    if (intervalMs === undefined) throw new UsageError('--count: only with --watch (without it, one sample is taken)');
    const n = Number(opts.count);
    if (!/^\d+$/.test(opts.count) || n < 1 || n > 1e9) throw new UsageError(`--count: must be an integer from 1 to 1000000000, got '${opts.count}'`);
    count = n;
  }
  return { intervalMs, count };
}

export function parseStatusViewOptions(opts: StatusViewOptions): StatusViewSettings {
  const format = (opts.format ?? 'human') as StatusFormat;
  if (!STATUS_FORMATS.includes(format)) throw new UsageError(`--format: must be one of ${STATUS_FORMATS.join(', ')}, got '${opts.format}'`);
  return { format, ...parseWatchOptions(opts) };
}

/**
 * Runs `loop` with a signal that Ctrl-C, SIGTERM or a closed pipe on `out`
 * aborts, so a watch ends cleanly (exit 0) instead of being killed; the
 * handlers are gone when it returns.
 */
export async function untilStopped<T>(out: Partial<NodeJS.WritableStream>, loop: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  const onError = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'EPIPE') ac.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  out.on?.('error', onError);
  try {
    return await loop(ac.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    out.off?.('error', onError);
  }
}

/** Runs the view on `source` until done, Ctrl-C or a closed pipe; user-visible failures become UsageError. */
export async function runStatusView(
  source: StatusSource,
  opts: StatusViewOptions,
  out: ViewOutput & Partial<NodeJS.WritableStream> = process.stdout,
): Promise<number> {
  try {
    const settings = parseStatusViewOptions(opts);
    const watch = { source, out, intervalMs: settings.intervalMs, count: settings.count };
    return await untilStopped(out, (signal) =>
      settings.format === 'openmetrics' ? watchExpositions({ ...watch, signal }) : watchStatus({ ...watch, format: settings.format, signal }),
    );
  } catch (err) {
    if (err instanceof ControlConnectError || err instanceof StatusSourceError || err instanceof StatusParseError)
      throw new UsageError(`${source.label}: ${err.message}`);
    throw err;
  } finally {
    source.close();
  }
}
