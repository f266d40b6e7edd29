/**
 * The completion-latency histogram, from fio's json+ latency bins (clat_ns
 * "bins": bucket value in ns -> I/Os). fio's buckets (64 per power of two)
 * are finer than a chart can show, so they are gathered into log-spaced
 * bins, BINS_PER_DECADE to a decade; each series is the share of its I/Os
 * (%) per bin, drawn as steps with its outline closed at zero. Pure.
 */
import type { Series } from './charts.js';
import type { Dir, ReportRun } from './load.js';

export const BINS_PER_DECADE = 8;

export interface LatencyKey {
  name: string;
  color: string;
  job: number;
  dir: Dir;
}

const edge = (k: number): number => 10 ** (k / BINS_PER_DECADE);

/** One series per job and direction whose clat has json+ bins. */
export function histogramSeries(run: ReportRun, keys: readonly LatencyKey[]): Series[] {
  const out: Series[] = [];
  for (const key of keys) {
    const bins = run.jobs[key.job]?.dirs[key.dir].clat?.bins;
    if (!bins) continue;
    const counts = new Map<number, number>();
    let total = 0;
    for (const [ns, n] of Object.entries(bins)) {
      const v = Number(ns);
      if (!(v > 0) || !(n > 0)) continue;
      const k = Math.floor(Math.log10(v) * BINS_PER_DECADE + 1e-9);
      counts.set(k, (counts.get(k) ?? 0) + n);
      total += n;
    }
    if (total === 0) continue;
    const ks = [...counts.keys()];
    const lo = Math.min(...ks);
    const hi = Math.max(...ks);
    const points: Array<readonly [number, number]> = [[edge(lo), 0]];
    for (let k = lo; k <= hi; k++) points.push([edge(k), (100 * (counts.get(k) ?? 0)) / total]);
    const last = (100 * counts.get(hi)!) / total;
    points.push([edge(hi + 1), last], [edge(hi + 1), 0]);
    out.push({ name: key.name, color: key.color, points, step: true });
  }
  return out;
}

/** True when some job of some run has json+ bins. */
export function hasBins(runs: readonly ReportRun[]): boolean {
  return runs.some((r) => r.jobs.some((j) => Object.values(j.dirs).some((d) => d.clat?.bins !== undefined && Object.keys(d.clat.bins).length > 0)));
}
