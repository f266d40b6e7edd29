import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/util/random.js';
import { createDistribution, fioHashMod, NormalBlocks, ParetoBlocks, ZipfBlocks, zipfZeta, type Distribution } from '../../src/workload/distribution.js';
import { RandomMap } from '../../src/workload/random-map.js';

const P = 0x9e37fffffffc0001n;
const M64 = (1n << 64n) - 1n;
const refHash = (v: number, off: number, n: number) => Number(((((BigInt(v) * P) & M64) + BigInt(off)) & M64) % BigInt(n));

describe('fioHashMod', () => {
  it("equals fio's ((val * GR_PRIME_64 mod 2^64) + off) mod 2^64 mod n", () => {
    const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 32 }), u32, u32, (n, v, off) => {
        expect(fioHashMod(v, off, n)).toBe(refHash(v, off, n));
      }),
      { numRuns: 5000 },
    );
    // the carry out of the 64-bit sum, and the BigInt fallback beyond 2^32
    expect(fioHashMod(0xffffffff, 0xffffffff, 16384)).toBe(refHash(0xffffffff, 0xffffffff, 16384));
    expect(fioHashMod(2 ** 40 + 3, 7, 2 ** 35 + 1)).toBe(refHash(2 ** 40 + 3, 7, 2 ** 35 + 1));
  });
});

describe('RandomMap', () => {
  it('behaves like a plain array of flags', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), i: fc.nat(), n: fc.integer({ min: 1, max: 80 }) }),
      fc.record({ k: fc.constant('next' as const), i: fc.nat() }),
      fc.record({ k: fc.constant('reset' as const) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), fc.array(op, { maxLength: 200 }), (size, ops) => {
        const map = new RandomMap(size);
        const model = new Uint8Array(size);
        for (const o of ops) {
          if (o.k === 'reset') {
            map.reset();
            model.fill(0);
          } else if (o.k === 'set') {
            const i = o.i % size;
            let want = 0;
            while (want < o.n && i + want < size && model[i + want] === 0) model[i + want++] = 1;
            expect(map.setRun(i, o.n)).toBe(want);
          } else {
            const i = o.i % (size + 2);
            let want = -1;
            for (let b = i; b < size; b++) {
              if (model[b] === 0) {
                want = b;
                break;
              }
            }
            expect(map.nextFree(i)).toBe(want);
          }
        }
        expect(map.freeCount).toBe(model.reduce((s, x) => s + (x === 0 ? 1 : 0), 0));
        for (let b = 0; b < size; b += 7) expect(map.isSet(b)).toBe(model[b] === 1);
      }),
      { numRuns: 150 },
    );
  });

  it('finds the last free block of a large map quickly', () => {
    const n = 1 << 20;
    const map = new RandomMap(n);
    map.setRun(0, n - 1);
    const t0 = performance.now();
    for (let i = 0; i < 10000; i++) expect(map.nextFree(i * 97)).toBe(n - 1);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(map.freeCount).toBe(1);
  });
});

/**
 * How fio 3.33 spreads 524288 reads over 16384 blocks, measured with
 *   fio --name=z --ioengine=null --size=64m --io_size=2g --bs=4k --rw=randread \
 *       --random_distribution=<d> --write_iolog=z.log
 * and counting reads per block: the share of all I/O that went to the most
 * popular 0.1%, 1%, 10% and 50% of the blocks, and how many blocks were hit.
 */
const FIO_SKEW: [string, Distribution, { distinct: number; top: [number, number, number, number] }][] = [
  ['zipf:1.2', { kind: 'zipf', theta: 1.2 }, { distinct: 13855, top: [0.582, 0.7889, 0.9204, 0.9851] }],
  ['zipf:0.8', { kind: 'zipf', theta: 0.8 }, { distinct: 16381, top: [0.1485, 0.3167, 0.5828, 0.8627] }],
  ['pareto:0.9', { kind: 'pareto', h: 0.9 }, { distinct: 4721, top: [0.0214, 0.197, 0.901, 1.0] }],
  ['pareto:0.2', { kind: 'pareto', h: 0.2 }, { distinct: 16347, top: [0.3826, 0.5275, 0.7283, 0.9177] }],
  ['normal:0', { kind: 'normal', dev: 0 }, { distinct: 8836, top: [0.0054, 0.0517, 0.4508, 0.9988] }],
  ['normal:10', { kind: 'normal', dev: 10 }, { distinct: 9349, top: [0.0052, 0.0499, 0.4304, 0.9971] }],
  ['normal:50', { kind: 'normal', dev: 50 }, { distinct: 14455, top: [0.0027, 0.0251, 0.2221, 0.8698] }],
];

function skew(dist: Distribution, n: number, samples: number, seed: number) {
  const d = createDistribution(dist, n, new Random(seed));
  const counts = new Uint32Array(n);
  for (let i = 0; i < samples; i++) counts[d.next()]!++;
  const sorted = Array.from(counts).sort((a, b) => b - a);
  const share = (f: number) => sorted.slice(0, Math.max(1, Math.floor(n * f))).reduce((s, c) => s + c, 0) / samples;
  return { distinct: sorted.filter((c) => c > 0).length, top: [share(0.001), share(0.01), share(0.1), share(0.5)] };
}

describe('distributions', () => {
  it.each(FIO_SKEW)('%s skews the I/O the way fio 3.33 does', (_, dist, fio) => {
    const got = skew(dist, 16384, 524288, 7);
    got.top.forEach((s, i) => expect(s, `top share #${i}`).toBeCloseTo(fio.top[i]!, 2));
    expect(Math.abs(got.distinct - fio.distinct) / fio.distinct).toBeLessThan(0.02);
  });

  it('keeps pareto:0.9 to the 90/10 rule and zipf ranks to 1/k^theta', () => {
    expect(skew({ kind: 'pareto', h: 0.9 }, 16384, 200000, 3).top[2]).toBeCloseTo(0.9, 1);
    const z = new ZipfBlocks(1000, 1.2, new Random(5));
    const counts = new Uint32Array(1000);
    const N = 400000;
    for (let i = 0; i < N; i++) counts[z.nextRank()]!++;
    const zeta = zipfZeta(1000, 1.2);
    for (const k of [1, 2]) expect(counts[k - 1]! / N).toBeCloseTo(Math.pow(k, -1.2) / zeta, 2);
  });

  it('sums zeta like fio', () => {
    let z = 0;
    for (let i = 1; i <= 5000; i++) z += 1 / Math.pow(i, 0.9);
    expect(zipfZeta(5000, 0.9)).toBeCloseTo(z, 9);
  });

  it('moves the hot spot with center and nothing else', () => {
    const n = 10007;
    for (const make of [(c: number) => new ZipfBlocks(n, 1.1, new Random(9), c), (c: number) => new ParetoBlocks(n, 0.3, new Random(9), c)]) {
      const a = make(0);
      const b = make(0.5);
      for (let i = 0; i < 1000; i++) expect(b.next()).toBe((a.next() + Math.floor(n * 0.5)) % n);
    }
    const g0 = new NormalBlocks(n, 5, new Random(9), 0.5);
    const g1 = new NormalBlocks(n, 5, new Random(9), 0.75);
    for (let i = 0; i < 1000; i++) expect(g1.next()).toBe((g0.next() + Math.trunc(n * 0.25)) % n);
  });

  it('stays in [0, n) for every distribution and size', () => {
    const dist = fc.oneof(
      fc.constant<Distribution>({ kind: 'random' }),
      fc
        .double({ min: 0.1, max: 3, noNaN: true })
        .filter((t) => Math.abs(t - 1) > 1e-6)
        .map((theta): Distribution => ({ kind: 'zipf', theta })),
      fc.double({ min: 0.01, max: 0.99, noNaN: true }).map((h): Distribution => ({ kind: 'pareto', h })),
      fc.double({ min: 0, max: 99.9, noNaN: true }).map((dev): Distribution => ({ kind: 'normal', dev })),
    );
    fc.assert(
      fc.property(dist, fc.integer({ min: 1, max: 40000 }), fc.integer(), (d, n, seed) => {
        const g = createDistribution(d, n, new Random(seed));
        for (let i = 0; i < 200; i++) {
          const v = g.next();
          expect(Number.isInteger(v) && v >= 0 && v < n).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });
});
