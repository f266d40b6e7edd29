import { describe, expect, it } from 'vitest';
import { OK } from '../../src/block/device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { LatencyDevice, LatencyError, parseLatencySpec, type LatencyDist } from '../../src/faults/latency.js';
import { ManualClock } from '../../src/util/clock.js';
import { Random } from '../../src/util/random.js';

const MS = 1e6;

function measure(dist: LatencyDist, n: number, seed = 5): number[] {
  const clock = new ManualClock();
  const dev = new LatencyDevice(new MemoryDevice({ sectors: 64 }), { read: dist, clock, random: new Random(seed) });
  const buf = new Uint8Array(512);
  const out: number[] = [];
  let failed = 0;
  for (let i = 0; i < n; i++) {
    const t0 = clock.nowNs();
    if (dev.read(i % 64, buf) !== OK) failed++;
    out.push(clock.nowNs() - t0);
  }
  expect(failed).toBe(0);
  return out;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
};
const stddev = (xs: number[]): number => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

describe('LatencyDevice', () => {
  it('fixed: every operation sleeps exactly that long', () => {
    const xs = measure({ kind: 'fixed', ns: 2 * MS }, 100);
    expect(new Set(xs)).toEqual(new Set([2 * MS]));
  });

  it('uniform(1 ms, 3 ms): bounds, mean and flat deciles', () => {
    const n = 20000;
    const xs = measure({ kind: 'uniform', minNs: 1 * MS, maxNs: 3 * MS }, n);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(1 * MS);
    expect(Math.max(...xs)).toBeLessThanOrEqual(3 * MS);
    expect(Math.abs(mean(xs) - 2 * MS)).toBeLessThan(0.02 * MS);
    const deciles = new Array(10).fill(0);
    for (const x of xs) deciles[Math.min(9, Math.floor((x - MS) / (0.2 * MS)))]++;
    for (const d of deciles) expect(Math.abs(d / n - 0.1)).toBeLessThan(0.012);
  });

  it('lognormal(median 1 ms, sigma 0.5): median, mean and spread of the logs', () => {
    const n = 20000;
    const xs = measure({ kind: 'lognormal', medianNs: 1 * MS, sigma: 0.5 }, n);
    expect(Math.abs(median(xs) / MS - 1)).toBeLessThan(0.03);
    expect(Math.abs(mean(xs) / (MS * Math.exp(0.125)) - 1)).toBeLessThan(0.02);
    const logs = xs.map((x) => Math.log(x / MS));
    expect(Math.abs(stddev(logs) - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(mean(logs))).toBeLessThan(0.02);
  });

  it('keeps a separate distribution and tally per operation', () => {
    const clock = new ManualClock();
    const dev = new LatencyDevice(new MemoryDevice({ sectors: 64 }), {
      read: { kind: 'fixed', ns: 1 * MS },
      flush: { kind: 'fixed', ns: 5 * MS },
      discard: { kind: 'uniform', minNs: 7 * MS, maxNs: 7 * MS },
      clock,
    });
    const buf = new Uint8Array(512);
    dev.write(0, buf);
    expect(clock.nowNs()).toBe(0);
    dev.read(0, buf);
    expect(clock.nowNs()).toBe(1 * MS);
    dev.flush();
    expect(clock.nowNs()).toBe(6 * MS);
    dev.discard(0, 1);
    expect(clock.nowNs()).toBe(13 * MS);
    expect(dev.added('read')).toEqual({ count: 1, totalNs: MS, maxNs: MS });
    expect(dev.added('write')).toEqual({ count: 0, totalNs: 0, maxNs: 0 });
    expect(dev.added('discard').totalNs).toBe(7 * MS);
  });

  it('a request that can never be valid throws before any sleep', () => {
    const clock = new ManualClock();
    const dev = new LatencyDevice(new MemoryDevice({ sectors: 8 }), { read: { kind: 'fixed', ns: MS }, clock });
    expect(() => dev.read(8, new Uint8Array(512))).toThrow(/beyond the device end/);
    expect(clock.nowNs()).toBe(0);
  });

  it('blocks the calling thread on the real clock', () => {
    const dev = new LatencyDevice(new MemoryDevice({ sectors: 8 }), { read: { kind: 'fixed', ns: 3 * MS } });
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) dev.read(0, new Uint8Array(512));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(14);
  });

  it('refuses out-of-range parameters with the field named', () => {
    const inner = new MemoryDevice({ sectors: 8 });
    expect(() => new LatencyDevice(inner, { read: { kind: 'uniform', minNs: 5, maxNs: 1 } })).toThrow('read: uniform maxNs (1) must be >= minNs (5)');
    expect(() => new LatencyDevice(inner, { write: { kind: 'fixed', ns: -1 } })).toThrow(/write: ns must be/);
    expect(() => new LatencyDevice(inner, { flush: { kind: 'lognormal', medianNs: 0, sigma: 1 } })).toThrow(/flush: lognormal medianNs/);
  });
});

describe('parseLatencySpec', () => {
  it.each([
    ['none', { kind: 'none' }],
    ['0', { kind: 'none' }],
    ['250us', { kind: 'fixed', ns: 250_000 }],
    ['fixed:2ms', { kind: 'fixed', ns: 2_000_000 }],
    ['fixed:1.5s', { kind: 'fixed', ns: 1_500_000_000 }],
    ['fixed:800', { kind: 'fixed', ns: 800 }],
    ['uniform:1ms..5ms', { kind: 'uniform', minNs: 1_000_000, maxNs: 5_000_000 }],
    ['lognormal:2ms,0.5', { kind: 'lognormal', medianNs: 2_000_000, sigma: 0.5 }],
  ])('%s', (text, dist) => {
    expect(parseLatencySpec(text)).toEqual(dist);
  });

  it.each([
    ['fast', /is not a latency/],
    ['fixed:2 hours', /is not a duration/],
    ['uniform:5ms', /uniform needs/],
    ['uniform:5ms..1ms', /maxNs .* must be >= minNs/],
    ['lognormal:2ms', /lognormal needs/],
    ['lognormal:2ms,-1', /sigma must be 0..10/],
  ])('refuses %s', (text, re) => {
    expect(() => parseLatencySpec(text, '--read-latency')).toThrow(LatencyError);
    expect(() => parseLatencySpec(text, '--read-latency')).toThrow(re);
    expect(() => parseLatencySpec(text, '--read-latency')).toThrow(/^--read-latency: /);
  });
});
