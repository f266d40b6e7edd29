/**
 * The SVG generators on fixed data: golden files (any change to the drawing
 * shows up as a diff of test/report/golden/*.svg; update them with
 * `npx vitest run test/report/charts.test.ts -u` after looking at the new
 * drawing) and the structure the browser test counts on.
 */
import { describe, expect, it } from 'vitest';
import { barChart, heatmap, lineChart, reducePoints, type Series } from '../../src/report/charts.js';
import { buildDeviceMap } from '../../src/status/device-map.js';
import { fmtBytes, fmtBytesPerSec, fmtCount, fmtNs, fmtPercentile, fmtSeconds } from '../../src/report/format.js';
import { cdfSeries, nines, percentileSeries } from '../../src/report/html.js';
import type { ReportRun } from '../../src/report/load.js';
import { c, esc, logTicks, niceMax, niceMaxBinary, niceTicks, niceTicksBinary } from '../../src/report/svg.js';

const count = (svg: string, re: RegExp) => (svg.match(re) ?? []).length;

const BW: Series[] = [
  {
    name: 'read',
    color: '#1f77b4',
    points: [
      [0.5, 3.3e6],
      [1.5, 3.5e6],
      [2.5, 3.1e6],
      [3.5, 3.6e6],
      [4.5, 2.9e6],
    ],
  },
  {
    name: 'write',
    color: '#ff7f0e',
    points: [
      [0.5, 3.2e6],
      [1.5, 3.4e6],
      [2.5, 3.4e6],
      [3.5, 3.3e6],
      [4.5, 3.0e6],
    ],
  },
];

const PCT = {
  '1.000000': 2185,
  '5.000000': 2385,
  '10.000000': 2545,
  '50.000000': 3547,
  '90.000000': 6635,
  '99.000000': 24479,
  '99.900000': 380415,
  '99.990000': 8134655,
};
const RUN: ReportRun = {
  label: 'safe',
  source: 'r.json',
  fioVersion: 'remapsim-test',
  jobs: [
    {
      name: 'mixed',
      error: 0,
      dirs: {
        read: { ioBytes: 1, bwBytes: 1, iops: 1, totalIos: 1, runtimeMs: 1, clat: { min: 1873, max: 33154823, mean: 8556, N: 40229, percentile: PCT } },
        write: { ioBytes: 0, bwBytes: 0, iops: 0, totalIos: 0, runtimeMs: 0 },
        trim: { ioBytes: 0, bwBytes: 0, iops: 0, totalIos: 0, runtimeMs: 0 },
      },
    },
  ],
};

describe('line charts', () => {
  it('time series: a path and a circle per point, shared axes, legend (golden)', async () => {
    const svg = lineChart({
      kind: 'bandwidth',
      title: 'Bandwidth: safe',
      x: { title: 'time (s)', format: fmtSeconds, min: 0, max: 5 },
      y: { title: 'bandwidth', format: fmtBytesPerSec, min: 0, binary: true },
      series: BW,
    });
    expect(count(svg, /<circle class="pt"/g)).toBe(10);
    expect(count(svg, /<path class="line"/g)).toBe(2);
    expect(svg).toContain('data-n="5"');
    expect(svg).toContain('>1 MiB/s<'); // binary ticks: round MiB
    expect(svg).toContain('>3.5 MiB/s<');
    expect(svg).toContain('<title>read: 1.5s, 3.34 MiB/s</title>');
    await expect(svg).toMatchFileSnapshot('golden/line-bandwidth.svg');
  });

  it('latency percentiles on a nines axis and the CDF as steps (golden)', async () => {
    const p = percentileSeries(RUN);
    expect(p).toHaveLength(1);
    expect(p[0].points.map((pt) => Number(pt[0].toFixed(3)))).toEqual([0.004, 0.022, 0.046, 0.301, 1, 2, 3, 4]);
    const pct = lineChart({
      kind: 'latency',
      title: 'Latency percentiles',
      x: {
        title: 'percentile',
        format: (v) => `p${fmtPercentile(100 * (1 - 10 ** -v))}`,
        min: 0,
        max: 4,
        ticks: [0, 50, 90, 99, 99.9, 99.99].map((q) => ({ value: nines(q), label: String(q) })),
      },
      y: { title: 'completion latency', format: fmtNs, log: true },
      series: p,
    });
    expect(count(pct, /<circle class="pt"/g)).toBe(8);
    await expect(pct).toMatchFileSnapshot('golden/line-percentiles.svg');
    const cdf = cdfSeries(RUN);
    expect(cdf[0].points[0]).toEqual([1873, 0]);
    expect(cdf[0].points.at(-1)).toEqual([33154823, 1]);
    expect(cdf[0].points.map((pt) => Number(pt[1].toFixed(6)))).toEqual([0, 0.01, 0.05, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1]);
    const svg = lineChart({
      kind: 'cdf',
      title: 'Latency CDF',
      x: { title: 'completion latency', format: fmtNs, log: true },
      y: { title: 'fraction of I/Os', format: (v) => v.toFixed(2), min: 0, max: 1 },
      series: cdf,
    });
    expect(svg).toMatch(/<path class="line" d="M[\d.]+ [\d.]+(H[\d.]+V[\d.]+){9}"/);
    await expect(svg).toMatchFileSnapshot('golden/line-cdf.svg');
  });

  it('long series are drawn reduced (extremes kept), without markers; empty charts say so', () => {
    const long = Array.from({ length: 10_000 }, (_, i) => [i, i === 7777 ? 1e6 : i % 100] as const);
    const r = reducePoints(long, 600);
    expect(r.length).toBeLessThanOrEqual(600);
    expect(r).toContainEqual([7777, 1e6]);
    expect(r[0]).toEqual([0, 0]);
    expect(r.at(-1)).toEqual([9999, 99]);
    const svg = lineChart({
      kind: 'iops',
      title: 't',
      x: { title: 'x', format: String },
      y: { title: 'y', format: fmtCount },
      series: [{ name: 'a', color: '#000', points: long }],
    });
    expect(svg).toContain('data-n="10000"');
    expect(count(svg, /<circle class="pt"/g)).toBe(0);
    expect(count(svg, /[ML]/g)).toBeGreaterThan(100);
    const empty = lineChart({ kind: 'iops', title: 't', x: { title: 'x', format: String }, y: { title: 'y', format: fmtCount }, series: [] });
    expect(empty).toContain('>no data<');
  });
});

describe('bars and the map', () => {
  it('grouped bars on a log scale, zero values labelled but not drawn (golden)', async () => {
    const svg = barChart({
      kind: 'oracle',
      title: 'Reads by class',
      categories: ['ok', 'lost', 'corrupt', 'unjudged'],
      groups: [
        { name: 'safe', color: '#4c78a8', values: [5938, 0, 0, 0] },
        { name: 'dm-remap-v4', color: '#f58518', values: [6046, 50, 36, 14] },
      ],
      valueTitle: 'units',
    });
    expect(count(svg, /<rect class="bar"/g)).toBe(5);
    expect(count(svg, /<text class="value"/g)).toBe(8);
    expect(svg).toContain('<title>dm-remap-v4: lost 50</title>');
    await expect(svg).toMatchFileSnapshot('golden/bars-oracle.svg');
  });

  it('the device map: a stripe per layer per bucket, finding markers, row labels (golden)', async () => {
    const map = buildDeviceMap({
      sectors: 4096,
      buckets: 64,
      bad: { starts: [0, 8, 640, 4000], sectorsEach: 8 },
      pending: { starts: [640], sectorsEach: 8 },
      remapped: { starts: [0, 8, 2048], sectorsEach: 8 },
    });
    const svg = heatmap({
      title: 'Device map',
      map,
      columns: 16,
      markers: [
        { sector: 650, label: 'lost at sector 650' },
        { sector: 99999, label: 'off the map' },
      ],
    });
    // buckets 0 (bad+remapped), 10 (bad+pending), 32 (remapped), 62 (bad)
    expect(count(svg, /<rect class="cell"/g)).toBe(6);
    expect(count(svg, /data-layer="bad"/g)).toBe(3);
    expect(count(svg, /<circle class="finding"/g)).toBe(1);
    expect(svg).toContain('<title>sectors 640-703: bad 8, pending 8</title>');
    expect(svg).toContain('64 buckets of 32 KiB, 16 per row');
    await expect(svg).toMatchFileSnapshot('golden/heatmap.svg');
  });
});

describe('svg helpers and number formats', () => {
  it('ticks', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0, 3.6e6, 5)).toEqual([0, 500000, 1000000, 1500000, 2000000, 2500000, 3000000, 3500000]);
    expect(niceTicksBinary(0, 4 * 1048576, 4)).toEqual([0, 1, 2, 3, 4].map((v) => v * 1048576));
    expect(niceMax(3.6e6)).toBe(4e6);
    expect(niceMaxBinary(3.6e6)).toBe(3.5 * 1048576);
    expect(logTicks(1000, 1e7)).toEqual([1000, 10000, 100000, 1e6, 1e7]);
    expect(logTicks(1, 50)).toEqual([1, 2, 5, 10, 20, 50]);
  });

  it('formats', () => {
    expect([fmtBytes(512), fmtBytes(1536), fmtBytes(3.6e6), fmtBytesPerSec(0)]).toEqual(['512 B', '1.5 KiB', '3.43 MiB', '0 B/s']);
    expect([fmtNs(850), fmtNs(3547), fmtNs(24479), fmtNs(380415), fmtNs(8.1e9)]).toEqual(['850 ns', '3.55 µs', '24.5 µs', '380 µs', '8.1 s']);
    expect([fmtSeconds(0), fmtSeconds(1.5), fmtSeconds(150), fmtSeconds(3 * 3600)]).toEqual(['0', '1.5s', '2m30s', '3h']);
    expect([fmtCount(999), fmtCount(1234), fmtCount(5e6)]).toEqual(['999', '1.23k', '5M']);
    expect(fmtPercentile(99.9)).toBe('99.9');
    expect(esc('<a href="x">&')).toBe('&lt;a href=&quot;x&quot;&gt;&amp;');
    expect([c(1.26), c(-0.01), c(3)]).toEqual(['1.3', '0', '3']);
  });
});
