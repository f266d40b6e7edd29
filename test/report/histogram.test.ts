/** The latency histogram from json+ bins: fio's buckets gathered into log bins, each series the share of its I/Os. */
import { describe, expect, it } from 'vitest';
import { BINS_PER_DECADE, hasBins, histogramSeries } from '../../src/report/histogram.js';
import type { ReportRun } from '../../src/report/load.js';

function runWith(bins: Record<string, number> | undefined): ReportRun {
  const empty = { ioBytes: 0, bwBytes: 0, iops: 0, totalIos: 0, runtimeMs: 0 };
  const clat = { min: 1, max: 1e6, mean: 10, N: 10, percentile: { '50.000000': 10 }, ...(bins ? { bins } : {}) };
  return {
    label: 'r',
    source: 'r.json',
    fioVersion: 'fio-3.33',
    jobs: [{ name: 'j', error: 0, dirs: { read: { ...empty, clat }, write: empty, trim: empty } }],
  };
}

describe('histogramSeries', () => {
  it('gathers fio buckets into log bins and gives each its share of the I/Os, outline closed at zero', () => {
    // 4128 and 4192 share a bin (10^(29/8) = 4217 is the next edge); 1003520 is alone three decades up
    const run = runWith({ '4128': 2, '4192': 1, '1003520': 1 });
    expect(hasBins([run])).toBe(true);
    const [s] = histogramSeries(run, [{ name: 'read', color: '#000', job: 0, dir: 'read' }]);
    const k0 = Math.floor(Math.log10(4128) * BINS_PER_DECADE);
    const k1 = Math.floor(Math.log10(1003520) * BINS_PER_DECADE);
    expect(s!.points[0]).toEqual([10 ** (k0 / BINS_PER_DECADE), 0]);
    expect(s!.points[1]).toEqual([10 ** (k0 / BINS_PER_DECADE), 75]);
    expect(s!.points.length).toBe(1 + (k1 - k0 + 1) + 2);
    expect(s!.points.at(-3)![1]).toBe(25);
    expect(s!.points.at(-1)).toEqual([10 ** ((k1 + 1) / BINS_PER_DECADE), 0]);
    expect(s!.points.slice(1, -2).reduce((a, p) => a + p[1], 0)).toBe(100);
  });

  it('draws nothing for results without bins (plain json)', () => {
    const run = runWith(undefined);
    expect(hasBins([run])).toBe(false);
    expect(histogramSeries(run, [{ name: 'read', color: '#000', job: 0, dir: 'read' }])).toEqual([]);
  });
});
