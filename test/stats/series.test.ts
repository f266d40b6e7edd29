import { describe, expect, it } from 'vitest';
import { DIR_READ, DIR_TRIM, DIR_WRITE, IoSeries, dirIndex, sampleStats } from '../../src/stats/series.js';
import { Random } from '../../src/util/random.js';

const S = 1e9;
const KiB = 1024;
const MiB = 1024 * 1024;

describe('IoSeries bucketing', () => {
  it('puts a completion in the interval its timestamp falls in', () => {
    const start = 5_000_000_123;
    const s = new IoSeries(start);
    s.add(DIR_READ, 4096, start); // first ns of interval 0
    s.add(DIR_READ, 4096, start + S - 1); // last ns of interval 0
    s.add(DIR_READ, 512, start + S); // first ns of interval 1
    s.add(DIR_WRITE, 8192, start + 2.5 * S);
    s.add(DIR_TRIM, MiB, start - 10); // before the start: counted in interval 0
    expect(s.length).toBe(3);
    expect([s.bytes(DIR_READ, 0), s.ios(DIR_READ, 0)]).toEqual([8192, 2]);
    expect([s.bytes(DIR_READ, 1), s.ios(DIR_READ, 1)]).toEqual([512, 1]);
    expect([s.bytes(DIR_WRITE, 2), s.ios(DIR_WRITE, 2)]).toEqual([8192, 1]);
    expect([s.bytes(DIR_TRIM, 0), s.ios(DIR_TRIM, 0)]).toEqual([MiB, 1]);
    expect([s.bytes(DIR_WRITE, 0), s.bytes(DIR_READ, 7), s.ios(DIR_READ, -1)]).toEqual([0, 0, 0]);
  });

  it('grows to hours of intervals and keeps every byte', () => {
    const s = new IoSeries(0, 500e6);
    const r = new Random(1);
    const want = new Map<number, number>();
    let total = 0;
    for (let k = 0; k < 50_000; k++) {
      const t = r.int(3600 * S);
      const b = 512 * (1 + r.int(256));
      s.add(DIR_WRITE, b, t);
      const i = Math.floor(t / 500e6);
      want.set(i, (want.get(i) ?? 0) + b);
      total += b;
    }
    let sum = 0;
    for (let i = 0; i < s.length; i++) {
      expect(s.bytes(DIR_WRITE, i)).toBe(want.get(i) ?? 0);
      sum += s.bytes(DIR_WRITE, i);
    }
    expect(sum).toBe(total);
    expect(s.length).toBe(Math.max(...want.keys()) + 1);
  });

  it('refuses intervals that are not whole milliseconds, and a wild clock', () => {
    expect(() => new IoSeries(0, 1.5e6)).toThrow('intervalNs must be a positive whole number of milliseconds (got 1500000)');
    expect(() => new IoSeries(0, 0)).toThrow(RangeError);
    expect(() => new IoSeries(Number.NaN)).toThrow('startNs must be a finite number (got NaN)');
    expect(() => new IoSeries(0, 1e6).add(DIR_READ, 1, 1e18)).toThrow(/intervals after the series start/);
    expect(dirIndex('trim')).toBe(DIR_TRIM);
    expect(() => dirIndex('sync' as never)).toThrow('direction must be one of read, write, trim (got sync)');
  });
});

describe('bandwidth and IOPS samples', () => {
  it('are computed per complete interval as fio does, skipping intervals without I/O', () => {
    const s = new IoSeries(0);
    for (let k = 0; k < 2560; k++) s.add(DIR_READ, 4096, 0.3 * S); // 10 MiB in second 0
    // second 1: nothing read
    for (let k = 0; k < 1000; k++) s.add(DIR_READ, 1000, 2 * S + k); // 1,000,000 bytes in second 2
    s.add(DIR_READ, 4096, 3.2 * S); // second 3 is not over at endNs
    const end = 3.5 * S;
    expect(s.completeIntervals(end)).toBe(3);
    expect(s.bwSamples(DIR_READ, end)).toEqual([10 * KiB, Math.floor(1_000_000 / 1024)]);
    expect(s.iopsSamples(DIR_READ, end)).toEqual([2560, 1000]);
    expect(s.bwSamples(DIR_WRITE, end)).toEqual([]);
    expect(s.bwSamples(DIR_READ, 4 * S)).toHaveLength(3);
  });

  it('scale to per-second rates for sub-second intervals', () => {
    const s = new IoSeries(0, 500e6);
    s.add(DIR_WRITE, 1000 * 1024, 0); // 1000 KiB in 0.5 s
    for (let k = 0; k < 7; k++) s.add(DIR_WRITE, 1, 0.6 * S); // 7 I/Os in 0.5 s
    expect(s.bwSamples(DIR_WRITE, S)).toEqual([2000, 0]);
    expect(s.iopsSamples(DIR_WRITE, S)).toEqual([2, 14]);
  });

  it('summarise like fio: min, max, mean and the n-1 standard deviation', () => {
    expect(sampleStats([1, 2, 3, 4])).toEqual({ samples: 4, min: 1, max: 4, mean: 2.5, stddev: Math.sqrt(5 / 3) });
    expect(sampleStats([7])).toEqual({ samples: 1, min: 7, max: 7, mean: 7, stddev: 0 });
    expect(sampleStats([])).toEqual({ samples: 0, min: 0, max: 0, mean: 0, stddev: 0 });
  });
});

describe('merging and serializing', () => {
  it('merging two workers equals one series fed everything', () => {
    const a = new IoSeries(100, 1e6);
    const b = new IoSeries(100, 1e6);
    const all = new IoSeries(100, 1e6);
    const r = new Random(2);
    for (let k = 0; k < 5000; k++) {
      const dir = r.int(3) as 0 | 1 | 2;
      const t = 100 + r.int(2e8);
      const target = k % 3 === 0 ? a : b;
      target.add(dir, 4096, t);
      all.add(dir, 4096, t);
    }
    a.merge(b);
    expect(a.toJSON()).toEqual(all.toJSON());
    expect(() => a.merge(new IoSeries(101, 1e6))).toThrow(/give every worker the same start and interval/);
  });

  it('round-trips through JSON and rejects malformed input', () => {
    const s = new IoSeries(42, 2e6);
    s.add(DIR_READ, 4096, 42);
    s.add(DIR_TRIM, 1 << 20, 42 + 9e6);
    const json = JSON.parse(JSON.stringify(s)) as ReturnType<IoSeries['toJSON']>;
    expect(json.trim.bytes).toEqual([0, 0, 0, 0, 1 << 20]);
    const back = IoSeries.fromJSON(json);
    expect(back.toJSON()).toEqual(s.toJSON());
    expect(back.bwSamples(DIR_TRIM, 42 + 10e6)).toEqual(s.bwSamples(DIR_TRIM, 42 + 10e6));
    expect(() => IoSeries.fromJSON({ ...json, write: { bytes: [1], ios: 'x' } } as never)).toThrow('series: write must be { bytes: number[], ios: number[] }');
    expect(() => IoSeries.fromJSON({ ...json, read: { bytes: [-1], ios: [1] } })).toThrow('series: read.bytes[0] must be a non-negative number (got -1)');
  });
});
