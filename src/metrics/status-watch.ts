/**
 * `status --watch S --format openmetrics`: one OpenMetrics exposition per
 * sample, each ending with `# EOF`. A served model gives its own (every
 * layer, the I/O its clients made, its connections: what `serve --metrics`
 * serves); any other source, a kernel device-mapper device or one layer, is
 * its status line as metric families (src/metrics/status-metrics.ts).
 */
import { renderOpenMetrics } from './exposition.js';
import { snapshotLayers, statusFamilies } from './status-metrics.js';
import type { StatusSource } from '../status/sources.js';
import { everyInterval, type ViewOutput } from '../status/watch.js';

export interface ExpositionWatchOptions {
  source: StatusSource;
  out: ViewOutput;
  intervalMs?: number;
  count?: number;
  signal?: AbortSignal;
}

/** The exposition of one sample of `source`. */
export async function sampleExposition(source: StatusSource): Promise<string> {
  if (source.metrics) return source.metrics();
  return renderOpenMetrics(statusFamilies(snapshotLayers(source.layer ?? source.label, await source.read())));
}

/** Prints an exposition per sample; returns the number printed. */
export function watchExpositions(opts: ExpositionWatchOptions): Promise<number> {
  return everyInterval(opts, async () => {
    const text = await sampleExposition(opts.source);
    if (opts.signal?.aborted) return false;
    opts.out.write(text);
  });
}
