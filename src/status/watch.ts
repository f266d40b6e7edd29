/**
 * The watch loop: sample a status source every interval and print each
 * sample in the chosen format. On a terminal the human view is redrawn in
 * place; piped, it prints one line per sample (per target), so `| tee`,
 * `| grep` and log files read naturally. CSV prints its header once.
 */
import type { StatusSource } from './sources.js';
import {
  type StatusFormat,
  VIEW_WIDTH,
  type ViewSample,
  csvColumns,
  formatBlock,
  formatCsvHeader,
  formatCsvRow,
  formatJson,
  formatLine,
  toViewSample,
} from './view.js';

/** Where the view writes: process.stdout, or any stream-like sink. */
export interface ViewOutput {
  write(text: string): unknown;
  /** True on a terminal: the human view redraws in place. */
  isTTY?: boolean;
  /** Terminal width; lines are cut to min(columns, 80). */
  columns?: number;
}

export interface WatchOptions {
  source: StatusSource;
  format: StatusFormat;
  out: ViewOutput;
  /** Time between samples (ms); undefined: one sample. */
  intervalMs?: number;
  /** Stop after this many samples (default: one without intervalMs, else until aborted). */
  count?: number;
  /** Stops the loop (Ctrl-C, a closed pipe). */
  signal?: AbortSignal;
}

const CSI = '\x1b[';

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface ScheduleOptions {
  /** Time between samples (ms); undefined: one sample. */
  intervalMs?: number;
  /** Stop after this many samples (default: one without intervalMs, else until aborted). */
  count?: number;
  /** Stops the loop, even mid-wait. */
  signal?: AbortSignal;
}

/**
 * The sampling schedule every watch shares: `sample(n)` now, then every
 * `intervalMs` counted from the first (a slow sample does not shift the
 * rest), `count` times or until aborted. Returns the samples taken; a sample
 * that sees the signal aborted after its read returns false and is not counted.
 */
export async function everyInterval(opts: ScheduleOptions, sample: (n: number) => Promise<boolean | void> | boolean | void): Promise<number> {
  const { intervalMs, signal } = opts;
  if (intervalMs !== undefined && !(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
  const count = opts.count ?? (intervalMs === undefined ? 1 : Infinity);
  let n = 0;
  const t0 = Date.now();
  while (n < count && !signal?.aborted) {
    if ((await sample(n)) === false) break;
    n++;
    if (n < count && intervalMs !== undefined) await sleep(t0 + n * intervalMs - Date.now(), signal);
  }
  return n;
}

/** Terminal rows `lines` take at `columns` (a longer line wraps). */
function rowsOf(lines: readonly string[], columns: number | undefined): number {
  if (!columns || columns < 1) return lines.length;
  return lines.reduce((a, l) => a + Math.max(1, Math.ceil(l.length / columns)), 0);
}

/** Draws frames in place on a terminal: cursor up over the last frame, clear to the end, the new one; the cursor hidden meanwhile. */
export function inPlace(out: ViewOutput): { frame(lines: readonly string[]): void; end(): void } {
  let drawn = 0;
  out.write(`${CSI}?25l`);
  return {
    frame(lines) {
      out.write(`${drawn > 0 ? `${CSI}${drawn}A\r${CSI}J` : ''}${lines.join('\n')}\n`);
      drawn = rowsOf(lines, out.columns);
    },
    end: () => out.write(`${CSI}?25h`),
  };
}

/** Runs the loop; returns the number of samples printed. Errors from the source end it (after restoring the cursor). */
export async function watchStatus(opts: WatchOptions): Promise<number> {
  const { source, format, out, intervalMs } = opts;
  const tty = out.isTTY === true;
  const width = Math.max(20, Math.min(VIEW_WIDTH, out.columns ?? VIEW_WIDTH));
  const cut = (l: string): string => (l.length <= width ? l : `${l.slice(0, width - 1)}~`);
  const redraw = tty && format === 'human' && intervalMs !== undefined ? inPlace(out) : undefined;
  let prev: ViewSample | undefined;
  let columns: string[] | undefined;
  try {
    return await everyInterval(opts, async () => {
      const cur = toViewSample(source.label, await source.read());
      if (opts.signal?.aborted) return false;
      if (format === 'json') out.write(`${formatJson(cur)}\n`);
      else if (format === 'csv') {
        if (!columns) {
          columns = csvColumns(cur);
          out.write(`${formatCsvHeader(columns)}\n`);
        }
        out.write(`${formatCsvRow(cur, columns)}\n`);
      } else if (redraw) {
        redraw.frame(formatBlock(cur, prev, { intervalMs }).map(cut));
      } else if (intervalMs !== undefined) {
        out.write(`${formatLine(cur, prev).map(cut).join('\n')}\n`);
      } else {
        out.write(`${formatBlock(cur, prev).map(cut).join('\n')}\n`);
      }
      prev = cur;
    });
  } finally {
    redraw?.end();
  }
}
