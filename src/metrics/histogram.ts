/**
 * A fixed-bucket latency histogram in seconds, as Prometheus histograms are
 * kept: a count per bucket, the total count and the sum.
 */
import type { HistogramPoint, Labels } from './exposition.js';

/** 50 us to 10 s: page-cache hits at the bottom, a stalled device at the top. */
export const LATENCY_BOUNDS_S: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class LatencyHistogram {
  /** counts[i]: observations <= bounds[i] and > bounds[i - 1]; the last slot: above every bound. */
  private readonly counts: Float64Array;
  private sum = 0;

  constructor(readonly bounds: readonly number[] = LATENCY_BOUNDS_S) {
    for (let i = 1; i < bounds.length; i++) if (!(bounds[i] > bounds[i - 1])) throw new RangeError('histogram bounds must increase');
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
  }

  get count(): number {
    let n = 0;
    for (const c of this.counts) n += c;
    return n;
  }

  point(labels: Labels): HistogramPoint {
    const cumulative: number[] = [];
    let run = 0;
    for (const c of this.counts) {
      run += c;
      cumulative.push(run);
    }
    return { labels, bounds: this.bounds, cumulative, sum: this.sum };
  }
}
