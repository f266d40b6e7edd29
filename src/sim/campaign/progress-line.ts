/**
 * The progress of a campaign on stderr: redrawn in place on a terminal, a
 * line every 10 s otherwise (a job log), nothing with `quiet`.
 */
import { formatSeconds } from '../time.js';
import type { PoolProgress } from './pool.js';

export class CampaignProgress {
  private shown = false;
  private lastLine = 0;

  constructor(
    private readonly label: string,
    private readonly quiet = false,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  text(p: PoolProgress): string {
    const share = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 100;
    const eta = p.etaS === undefined || p.done === p.total ? '' : `, ETA ${formatSeconds(Math.ceil(p.etaS))}`;
    return `${this.label}: ${p.done}/${p.total} runs (${share}%), ${p.rate.toFixed(p.rate < 10 ? 2 : 0)} runs/s${eta}`;
  }

  update(p: PoolProgress): void {
    if (this.quiet) return;
    const line = this.text(p);
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[K${line.slice(0, (this.stream.columns ?? 80) - 1)}`);
      this.shown = true;
    } else if (Date.now() - this.lastLine >= 10_000 || p.done === p.total) {
      this.lastLine = Date.now();
      this.stream.write(`${line}\n`);
    }
  }

  done(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}
