import type { RunProgress } from '../workload/runner.js';

/**
 * A one-line progress display for long runs: redrawn in place on a TTY,
 * silent when stderr is piped (scripts get the final report only).
 */
export class ProgressLine {
  private shown = false;
  private readonly enabled: boolean;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    /** Runs shorter than this never show a line. */
    private readonly minNs = 2e9,
  ) {
    this.enabled = stream.isTTY === true;
  }

  update(p: RunProgress, label = ''): void {
    if (!this.enabled || p.elapsedNs < this.minNs) return;
    const secs = p.intervalNs / 1e9 || 1;
    const mbps = p.intervalBytes / secs / 1e6;
    const iops = p.intervalIos / secs;
    const eta = p.totalNs !== undefined ? `  ETA ${Math.max(0, Math.ceil((p.totalNs - p.elapsedNs) / 1e9))}s` : '';
    const elapsed = p.totalNs !== undefined ? `${(p.elapsedNs / 1e9).toFixed(0)}/${(p.totalNs / 1e9).toFixed(0)}s` : `${(p.elapsedNs / 1e9).toFixed(0)}s`;
    const line = `${label}${elapsed}  ${mbps.toFixed(1)} MB/s  ${formatCount(iops)} IOPS  errors ${p.errors}${eta}`;
    this.stream.write(`\r\x1b[K${line.slice(0, (this.stream.columns ?? 80) - 1)}`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}

export function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}
