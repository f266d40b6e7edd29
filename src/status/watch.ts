/**
 * The watch loop: sample a status source every interval and print each
 * sample in the chosen format. On a terminal the human view is redrawn in
 * place; piped, it prints one line per sample (per target), so `| tee`,
 * `| grep` and log files read naturally. CSV prints its header once.
 */
import type { StatusSource } from './sources.js';
import { type StatusFormat, VIEW_WIDTH, type ViewSample, csvColumns, formatBlock, formatCsvHeader, formatCsvRow, formatJson, formatLine, toViewSample } from './view.js';

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

/** Runs the loop; returns the number of samples printed. Errors from the source end it (after restoring the cursor). */
export async function watchStatus(opts: WatchOptions): Promise<number> {
  const { source, format, out, intervalMs, signal } = opts;
  if (intervalMs !== undefined && !(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
  const count = opts.count ?? (intervalMs === undefined ? 1 : Infinity);
  const tty = out.isTTY === true;
  const width = Math.max(20, Math.min(VIEW_WIDTH, out.columns ?? VIEW_WIDTH));
  const cut = (l: string): string => (l.length <= width ? l : `${l.slice(0, width - 1)}~`);
  const redraw = tty && format === 'human' && intervalMs !== undefined;
  let prev: ViewSample | undefined;
  let drawn = 0;
  let columns: string[] | undefined;
  let n = 0;
  const t0 = Date.now();
  if (redraw) out.write(`${CSI}?25l`); // hide the cursor while redrawing
  try {
    while (n < count && !signal?.aborted) {
      const cur = toViewSample(source.label, await source.read());
      if (signal?.aborted) break;
      if (format === 'json') out.write(`${formatJson(cur)}\n`);
      else if (format === 'csv') {
        if (!columns) {
          columns = csvColumns(cur);
          out.write(`${formatCsvHeader(columns)}\n`);
        }
        out.write(`${formatCsvRow(cur, columns)}\n`);
      } else if (redraw) {
        const lines = formatBlock(cur, prev, { intervalMs }).map(cut);
        // back to the first line of the last drawing, then clear to the end of the screen
        out.write(`${drawn > 0 ? `${CSI}${drawn}A\r${CSI}J` : ''}${lines.join('\n')}\n`);
        drawn = lines.length;
      } else if (intervalMs !== undefined) {
        out.write(`${formatLine(cur, prev).map(cut).join('\n')}\n`);
      } else {
        out.write(`${formatBlock(cur, prev).map(cut).join('\n')}\n`);
      }
      prev = cur;
      n++;
      if (n < count && intervalMs !== undefined) await sleep(t0 + n * intervalMs - Date.now(), signal);
    }
  } finally {
    if (redraw) out.write(`${CSI}?25h`);
  }
  return n;
}
