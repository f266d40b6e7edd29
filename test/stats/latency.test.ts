import { MessageChannel } from 'node:worker_threads';
import fc from 'fast-check';
import { build, decodeFromCompressedBase64 } from 'hdr-histogram-js';
import type { JsHistogram } from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import {
  FIO_LAT_BOUNDS,
  FIO_PERCENTILES,
  LatencyHistogram,
  LatencyStats,
  MAX_LATENCY_NS,
  decodeLatency,
  hdrHighest,
  hdrIndex,
  hdrLowest,
} from '../../src/stats/latency.js';
import { Random } from '../../src/util/random.js';

const lib = build({
  bitBucketSize: 64,
  lowestDiscernibleValue: 1,
  highestTrackableValue: MAX_LATENCY_NS,
  numberOfSignificantValueDigits: 3,
  autoResize: false,
}) as JsHistogram;

/** Latencies spread over ns..s like a real device with a slow tail. */
function latencies(seed: number, n: number): number[] {
  const r = new Random(seed);
  return Array.from({ length: n }, () => {
    const base = Math.round(Math.exp(10 + 1.2 * r.normal())); // ~22 us median
    return r.next() < 0.001 ? base * 1000 : base;
  });
}

function buckets(h: LatencyHistogram): [number, number][] {
  const out: [number, number][] = [];
  h.forEachBucket((lo, _hi, c) => out.push([lo, c]));
  return out;
}

/** Rank (1-based) fio and HdrHistogram pick for percentile p (given to 2 decimals) of n values. */
function exactRank(p: number, n: number): number {
  const hundredths = BigInt(Math.round(p * 100));
  const num = hundredths * BigInt(n);
  const rank = (num + 9999n) / 10000n;
  return Math.max(1, Number(rank));
}

function exactMoments(xs: number[]): { mean: number; stddev: number } {
  const sum = xs.reduce((a, b) => a + BigInt(b), 0n);
  const mean = Number(sum) / xs.length;
  let s = 0;
  for (const x of xs) s += (x - mean) ** 2;
  return { mean, stddev: xs.length > 1 ? Math.sqrt(s / (xs.length - 1)) : 0 };
}

describe('HDR layout', () => {
  it('matches hdr-histogram-js index for index, for every magnitude', () => {
    const arb = fc.oneof(
      fc.integer({ min: 0, max: 5000 }),
      fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      fc.double({ min: 1, max: 2 ** 44, noNaN: true }).map(Math.floor),
    );
    fc.assert(
      fc.property(arb, (v) => {
        const i = hdrIndex(v);
        expect(i).toBe(lib.countsArrayIndex(v));
        expect(hdrLowest(i)).toBe(lib.lowestEquivalentValue(v));
        expect(hdrHighest(i)).toBe(lib.highestEquivalentValue(v));
      }),
      { numRuns: 3000 },
    );
  });

  it('keeps 3 significant digits up to 2^53-1 (where the library itself rounds log2)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: MAX_LATENCY_NS, noNaN: true }).map(Math.floor), (v) => {
        const i = hdrIndex(v);
        expect(hdrLowest(i)).toBeLessThanOrEqual(v);
        expect(hdrHighest(i)).toBeGreaterThanOrEqual(v);
        expect(hdrHighest(i) - hdrLowest(i)).toBeLessThanOrEqual(Math.max(0, v / 1024));
      }),
      { numRuns: 3000 },
    );
    expect(hdrIndex(MAX_LATENCY_NS)).toBe(lib.countsArrayLength - 1);
    for (const v of [2 ** 32 - 1, 2 ** 32, 2 ** 50 - 1, 2 ** 52]) {
      const h = new LatencyHistogram();
      h.record(v);
      expect(buckets(h)).toEqual([[hdrLowest(hdrIndex(v)), 1]]);
      expect(h.percentile(50)).toBe(v);
    }
  });

  it('records each value into the bucket hdrIndex names (fast path included)', () => {
    const xs = latencies(1, 20_000);
    const h = new LatencyHistogram();
    const expected = new Map<number, number>();
    for (const x of xs) {
      h.record(x);
      const lo = hdrLowest(hdrIndex(x));
      expected.set(lo, (expected.get(lo) ?? 0) + 1);
    }
    expect(buckets(h)).toEqual([...expected.entries()].sort((a, b) => a[0] - b[0]));
  });
});

describe('LatencyHistogram percentiles', () => {
  it('agree with a sorted array to within one HDR bucket (3 significant digits)', () => {
    for (const [seed, n] of [
      [2, 100_000],
      [3, 1_000],
      [4, 7],
    ] as const) {
      const xs = latencies(seed, n);
      const h = new LatencyHistogram();
      for (const x of xs) h.record(x);
      const sorted = [...xs].sort((a, b) => a - b);
      const got = h.percentiles();
      FIO_PERCENTILES.forEach((p, k) => {
        const want = sorted[exactRank(p, n) - 1];
        expect(got[k]).toBeGreaterThanOrEqual(want);
        expect(got[k] - want).toBeLessThanOrEqual(want / 1024);
        expect(got[k]).toBe(Math.min(hdrHighest(hdrIndex(want)), sorted[n - 1]));
      });
      expect(h.percentile(100)).toBe(sorted[n - 1]);
    }
  });

  it('agree with hdr-histogram-js on the same data (clamped to the exact max)', () => {
    const xs = latencies(5, 50_000);
    const h = new LatencyHistogram();
    for (const x of xs) h.record(x);
    const ref = h.toHdr();
    const max = Math.max(...xs);
    for (const p of [...FIO_PERCENTILES, 12.5, 99.999]) {
      expect(h.percentile(p)).toBe(Math.min(ref.getValueAtPercentile(p), max));
    }
    expect(ref.totalCount).toBe(xs.length);
  });

  it('fuzz: small sets, any values', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { minLength: 1, maxLength: 200 }), (xs) => {
        const h = new LatencyHistogram();
        for (const x of xs) h.record(x);
        const sorted = [...xs].sort((a, b) => a - b);
        const got = h.percentiles();
        FIO_PERCENTILES.forEach((p, k) => {
          const want = sorted[exactRank(p, xs.length) - 1];
          expect(got[k]).toBe(Math.min(hdrHighest(hdrIndex(want)), sorted[sorted.length - 1]));
        });
      }),
      { numRuns: 300 },
    );
  });

  it('keys them as fio does, ascending', () => {
    const h = new LatencyHistogram();
    for (let v = 1; v <= 1000; v++) h.record(v);
    const m = h.percentileMap([99, 1, 99.95]);
    expect(Object.keys(m)).toEqual(['1.000000', '99.000000', '99.950000']);
    expect(m).toEqual({ '1.000000': 10, '99.000000': 990, '99.950000': 1000 });
    expect(Object.keys(h.percentileMap())).toHaveLength(17);
    expect(Object.keys(h.percentileMap())[13]).toBe('99.500000');
  });

  it('reject percentiles outside (0, 100]', () => {
    const h = new LatencyHistogram();
    h.record(5);
    expect(() => h.percentile(0)).toThrow('percentile must be in (0, 100] (got 0)');
    expect(() => h.percentiles([50, 100.5])).toThrow(/got 100.5/);
    expect(() => h.percentile(Number.NaN)).toThrow(RangeError);
  });

  it('are all zero when empty', () => {
    const h = new LatencyHistogram();
    expect(h.percentiles()).toEqual(new Array(17).fill(0));
    expect([h.count, h.min, h.max, h.mean, h.stddev]).toEqual([0, 0, 0, 0, 0]);
  });
});

describe('exact moments', () => {
  it('count, min and max are exact; mean and stddev match a two-pass computation', () => {
    const xs = latencies(6, 100_000);
    for (const s of [new LatencyHistogram(), new LatencyStats()]) {
      for (const x of xs) s.record(x);
      const { mean, stddev } = exactMoments(xs);
      expect(s.count).toBe(xs.length);
      expect(s.min).toBe(Math.min(...xs));
      expect(s.max).toBe(Math.max(...xs));
      expect(Math.abs(s.mean - mean) / mean).toBeLessThan(1e-12);
      expect(Math.abs(s.stddev - stddev) / stddev).toBeLessThan(1e-9);
    }
  });

  it('stddev is 0 for a single value, as fio prints it', () => {
    const s = new LatencyStats();
    s.record(1234);
    expect([s.count, s.min, s.max, s.mean, s.stddev]).toEqual([1, 1234, 1234, 1234, 0]);
  });

  it('rounds fractional nanoseconds and rejects what is not a latency', () => {
    const h = new LatencyHistogram();
    h.record(5.4);
    h.record(2 ** 33 + 0.6);
    expect(buckets(h)).toEqual([
      [5, 1],
      [hdrLowest(hdrIndex(2 ** 33 + 1)), 1],
    ]);
    for (const bad of [-1, Number.NaN, Infinity, 2 ** 53, '7' as unknown as number]) {
      expect(() => h.record(bad)).toThrow(/latency must be a number of nanoseconds in \[0, 9007199254740991\]/);
      expect(() => new LatencyStats().record(bad)).toThrow(RangeError);
    }
    expect(h.count).toBe(2);
  });
});

/** fio's io_u_mark_latency(): bucket number 0..31 for a latency in ns. */
function fioBucket(ns: number): number {
  const steps = [2, 4, 10, 20, 50, 100, 250, 500, 750, 1000];
  const idx = (x: number) => {
    let i = 0;
    while (i < steps.length - 1 && x >= steps[i]) i++;
    return i;
  };
  if (ns < 1000) return idx(ns);
  if (ns < 1e6) return 10 + idx(Math.floor(ns / 1000));
  const ms = Math.floor(ns / 1e6);
  return ms >= 2000 ? 31 : ms >= 1000 ? 30 : 20 + idx(ms);
}

describe('fio latency distribution', () => {
  it('counts exactly what fio counts, also at the bucket boundaries', () => {
    const xs = latencies(11, 50_000);
    for (const b of FIO_LAT_BOUNDS) xs.push(b, b - 1, b + 1);
    xs.push(2_000_000_000, 1_999_999_999, 5e9);
    const h = new LatencyHistogram();
    const want = new Array<number>(32).fill(0);
    for (const x of xs) {
      h.record(Math.max(0, x));
      want[fioBucket(Math.max(0, x))]++;
    }
    expect(h.fioLatencyCounts()).toEqual(want);
    const back = LatencyHistogram.decode(h.encode());
    expect(back.fioLatencyCounts()).toEqual(want);
    const merged = new LatencyHistogram();
    merged.add(h);
    merged.add(back);
    expect(merged.fioLatencyCounts()).toEqual(want.map((c) => 2 * c));
  });
});

describe('merging across workers', () => {
  it('adding two histograms equals recording both', () => {
    const xs = latencies(7, 30_000);
    const ys = latencies(8, 20_000).map((y) => y * 3);
    ys.push(2 ** 40); // only b has a value past 2^32: a must grow
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    const both = new LatencyHistogram();
    for (const x of xs) {
      a.record(x);
      both.record(x);
    }
    for (const y of ys) {
      b.record(y);
      both.record(y);
    }
    a.add(b);
    expect(buckets(a)).toEqual(buckets(both));
    expect([a.count, a.min, a.max]).toEqual([both.count, both.min, both.max]);
    expect(a.mean).toBeCloseTo(both.mean, 6);
    expect(Math.abs(a.stddev - both.stddev) / both.stddev).toBeLessThan(1e-10);
    expect(a.percentiles()).toEqual(both.percentiles());
  });

  it('adding empty ones changes nothing, and plain stats merge too', () => {
    const a = new LatencyHistogram();
    a.add(new LatencyHistogram());
    expect(a.count).toBe(0);
    const b = new LatencyHistogram();
    b.record(10);
    b.record(30);
    a.add(b);
    a.add(new LatencyHistogram());
    expect([a.count, a.min, a.max, a.mean]).toEqual([2, 10, 30, 20]);
    const s = new LatencyStats();
    s.add(b);
    s.add(b);
    expect([s.count, s.min, s.max, s.mean]).toEqual([4, 10, 30, 20]);
    expect(s.stddev).toBeCloseTo(Math.sqrt(400 / 3), 12);
  });

  it('refuses to merge counts it does not have', () => {
    expect(() => new LatencyHistogram().add(new LatencyStats())).toThrow(/cannot merge plain LatencyStats/);
  });
});

describe('encode / decode', () => {
  it('round-trips a histogram exactly, through a real MessagePort transfer', async () => {
    const xs = latencies(9, 40_000);
    const h = new LatencyHistogram();
    for (const x of xs) h.record(x);
    h.record(2 ** 45);
    const bytes = h.encode();
    const { port1, port2 } = new MessageChannel();
    const received = new Promise<Uint8Array>((resolve) => port2.once('message', (m: Uint8Array) => resolve(m)));
    port1.postMessage(bytes, [bytes.buffer as ArrayBuffer]);
    const got = LatencyHistogram.decode(await received);
    port1.close();
    port2.close();
    expect(bytes.byteLength).toBe(0); // transferred, not copied
    expect(buckets(got)).toEqual(buckets(h));
    expect(got.moments()).toEqual(h.moments());
    expect(got.percentiles()).toEqual(h.percentiles());
  });

  it('embeds a standard HdrHistogram V2 payload', () => {
    const h = new LatencyHistogram();
    for (const x of latencies(10, 5000)) h.record(x);
    const b64 = Buffer.from(h.encode().subarray(48 + 256)).toString('base64');
    expect(b64).toBe(h.toHdrBase64());
    const other = decodeFromCompressedBase64(b64, 64);
    expect(other.totalCount).toBe(5000);
    expect(Math.min(other.getValueAtPercentile(99), h.max)).toBe(h.percentile(99));
  });

  it('round-trips plain stats and empty histograms', () => {
    const s = new LatencyStats();
    for (const x of [5, 7, 9]) s.record(x);
    const back = decodeLatency(s.encode());
    expect(back).not.toBeInstanceOf(LatencyHistogram);
    expect(back.moments()).toEqual(s.moments());
    const empty = LatencyHistogram.decode(new LatencyHistogram().encode());
    expect([empty.count, empty.min, empty.max]).toEqual([0, 0, 0]);
    expect(() => LatencyHistogram.decode(s.encode())).toThrow(/plain statistics, not a histogram/);
  });

  it('explains bad input in one line', () => {
    const h = new LatencyHistogram();
    h.record(100);
    const good = h.encode();
    expect(() => decodeLatency(good.subarray(0, 20))).toThrow('latency decode: need at least 48 bytes (got 20)');
    const badMagic = good.slice();
    badMagic[0] ^= 0xff;
    expect(() => decodeLatency(badMagic)).toThrow(/bad magic/);
    const badVersion = good.slice();
    badVersion[4] = 9;
    expect(() => decodeLatency(badVersion)).toThrow(/format version 9 is not supported/);
    const badCount = good.slice();
    new DataView(badCount.buffer).setFloat64(8, 2, true);
    expect(() => decodeLatency(badCount)).toThrow('latency decode: histogram holds 1 values but the header says 2');
    expect(() => decodeLatency(good.slice(0, 100))).toThrow('latency decode: histogram record truncated (100 bytes)');
    expect(() => decodeLatency(good.slice(0, 48 + 256 + 12))).toThrow(/latency decode: bad HDR payload/);
    const badBelow = good.slice();
    new DataView(badBelow.buffer).setFloat64(48 + 8 * 15, 1, true); // 50 us boundary: nothing was recorded there
    expect(() => decodeLatency(badBelow)).toThrow('latency decode: bad boundary count 1 for fio latency bucket 15');
  });
});
