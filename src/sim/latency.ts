/**
 * Latency distributions of simulated runs as HdrHistograms (3 significant
 * digits, 1 ns to 2^53 ns, 64-bit counts: a drive-year of bulk I/O is
 * billions), carried between processes and machines in the standard V2
 * compressed encoding, so merging shards adds counts without losing any.
 */
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

function newHistogram(): Histogram {
  return build({ bitBucketSize: 64, autoResize: true, lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3 });
}

/** Records latencies (ns) with counts; builds its histogram on the first record. */
export class LatencyRecorder {
  private h: Histogram | undefined;
  count = 0;

  record(ns: number, count: number): void {
    if (count <= 0) return;
    this.h ??= newHistogram();
    this.h.recordValueWithCount(Math.max(0, Math.round(ns)), count);
    this.count += count;
  }

  histogram(): Histogram | undefined {
    return this.h;
  }
}

export function hdrEncode(r: LatencyRecorder): string {
  return encodeIntoCompressedBase64(r.histogram()!);
}

/** Adds encoded histograms into one (undefined when there were none). */
export function mergeEncoded(encoded: Iterable<string | undefined>): Histogram | undefined {
  let out: Histogram | undefined;
  for (const e of encoded) {
    if (!e) continue;
    const h = decodeFromCompressedBase64(e, 64);
    out ??= newHistogram();
    out.add(h);
  }
  return out;
}
