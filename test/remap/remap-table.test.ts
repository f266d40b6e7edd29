import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RemapTable } from '../../src/block/remap-table.js';
import { startWorker } from '../../src/util/worker.js';

/** The slow obvious model the table must agree with. */
function modelFirst(m: Map<number, number>, from: number, count: number): number {
  let best = -1;
  for (const k of m.keys()) if (k >= from && k < from + count && (best < 0 || k < best)) best = k;
  return best;
}

describe('RemapTable', () => {
  // 2^28 keys: summaries of 9 MiB, which a private table makes only once it outgrows 64 slots
  it.each([6000, 2 ** 28])('agrees with a Map under random sets, deletes and queries (key space %i)', (keySpace) => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('set' as const), k: fc.integer({ min: 0, max: 5000 }), v: fc.integer({ min: 0, max: 1e6 }) }),
      fc.record({ t: fc.constant('del' as const), k: fc.integer({ min: 0, max: 5000 }) }),
      fc.record({ t: fc.constant('many' as const), ks: fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 50 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 3000 }), fc.array(fc.integer({ min: 0, max: 5100 }), { minLength: 20, maxLength: 20 }), (ops, probes) => {
        const t = new RemapTable({ keySpace });
        const m = new Map<number, number>();
        for (const o of ops) {
          if (o.t === 'set') {
            t.set(o.k, o.v);
            m.set(o.k, o.v);
          } else if (o.t === 'del') {
            expect(t.delete(o.k)).toBe(m.get(o.k) ?? -1);
            m.delete(o.k);
          } else {
            t.setMany(
              o.ks,
              o.ks.map((k) => k * 2),
            );
            for (const k of o.ks) m.set(k, k * 2);
          }
        }
        expect(t.size).toBe(m.size);
        for (const p of probes) {
          expect(t.get(p)).toBe(m.get(p) ?? -1);
          expect(t.firstInRange(p, 40)).toBe(modelFirst(m, p, 40));
          for (const [from, count] of [
            [p, 1],
            [p, 8],
            [p - (p % 8), 8],
            [p - (p % 32), 32],
            [p, 40],
            [p, 300],
          ]) {
            expect(t.anyInRange(from, count)).toBe(modelFirst(m, from, count) >= 0);
          }
          const marked = t.markedMask(p, 16);
          for (let i = 0; i < 16; i++) if (m.has(p + i)) expect((marked >>> i) & 1).toBe(1);
        }
        const snap = t.snapshot();
        expect(Array.from(snap.keys)).toEqual([...m.keys()].sort((a, b) => a - b));
      }),
      { numRuns: 60, seed: 0x5eed },
    );
  });

  it('a private table over a big key space defers its summaries until it outgrows its first slots or is shared', () => {
    const few = new RemapTable({ keySpace: 2 ** 33 });
    few.setMany([5, 2 ** 32, 77], [1, 2, 3]);
    expect(few.summaryBytes).toBe(0);
    expect([few.firstInRange(0, 2 ** 33), few.firstInRange(6, 2 ** 32), few.firstInRange(78, 2 ** 32 - 78)]).toEqual([5, 77, -1]);
    expect([few.anyInRange(2 ** 32, 1), few.anyInRange(6, 71), few.get(77), few.get(78)]).toEqual([true, false, 3, -1]);
    const shared = few.shared;
    expect(few.summaryBytes).toBe(shared.fine.byteLength + shared.coarse.byteLength);
    expect(few.summaryBytes).toBeGreaterThan(1 << 20);
    const other = new RemapTable(shared);
    expect([other.firstInRange(6, 2 ** 32), other.anyInRange(2 ** 32, 1), other.anyInRange(6, 71)]).toEqual([77, true, false]);
    other.close();
    few.close();
    const many = new RemapTable({ keySpace: 2 ** 33 });
    for (let i = 0; i < 54; i++) many.set(i * 1000, i);
    expect(many.summaryBytes).toBe(0);
    many.set(2 ** 33 - 1, 54); // past 64 slots' load limit: a rebuild, with summaries
    expect(many.summaryBytes).toBeGreaterThan(1 << 20);
    expect([many.firstInRange(1, 2 ** 33), many.firstInRange(53_001, 2 ** 33 - 53_001), many.anyInRange(53_001, 999)]).toEqual([1000, 2 ** 33 - 1, false]);
    expect(new RemapTable({ keySpace: 6000 }).summaryBytes).toBeGreaterThan(0); // small summaries come with the table
  });

  it("marks a short range's keys whose summary chunk holds a remap, and no others", () => {
    const t = new RemapTable({ keySpace: 2 ** 18 }); // one key a chunk, summaries made at once
    t.set(1003, 7);
    t.set(1010, 8);
    expect(t.markedMask(1000, 8)).toBe(1 << 3);
    expect(t.markedMask(1000, 16)).toBe((1 << 3) | (1 << 10));
    expect(t.markedMask(2000, 16)).toBe(0);
    t.delete(1003);
    expect(t.markedMask(1000, 8)).toBe(0);
  });

  it('handles sector numbers far beyond 2^48 and clustered keys', () => {
    const t = new RemapTable({ keySpace: 2 ** 51 });
    const big = 2 ** 50;
    const keys: number[] = [];
    for (let i = 0; i < 5000; i++) keys.push(big + i * 8); // one dense cluster
    keys.push(3, 2 ** 48 + 1);
    t.setMany(
      keys,
      keys.map((_, i) => i),
    );
    expect(t.get(big + 8 * 4999)).toBe(4999);
    expect(t.get(big + 1)).toBe(-1);
    expect(t.firstInRange(2 ** 48 - 5, 2048)).toBe(2 ** 48 + 1);
    expect(t.firstInRange(4, 2048)).toBe(-1);
    expect(t.anyInRange(big + 1, 7)).toBe(false);
    expect(t.anyInRange(big + 1, 8)).toBe(true);
    expect(() => t.set(2 ** 51, 0)).toThrow(/\[0, 2251799813685248\)/);
    expect(() => t.set(-1, 0)).toThrow(RangeError);
  });

  it('reports its memory and stays under 24 bytes an entry at scale', () => {
    const t = new RemapTable({ keySpace: 2 ** 32 });
    const n = 200_000;
    const keys = Array.from({ length: n }, (_, i) => i * 37 + (i % 5));
    t.setMany(keys, keys);
    expect(t.size).toBe(n);
    expect(t.entryBytes / n).toBeLessThan(24);
    for (let i = 0; i < 1000; i++) t.set(2 ** 31 + i, i); // grows a few times more
    expect(t.entryBytes / t.size).toBeLessThan(24);
    expect(t.get(keys[12345])).toBe(keys[12345]);
  });

  it('is shared by worker threads: a remap added while they read is seen whole', async () => {
    const t = new RemapTable({ keySpace: 2 ** 20 });
    const N = 20_000;
    const worker = startWorker(import.meta.url, './table-reader.worker', { workerData: { shared: t.shared, N } });
    await new Promise((r) => worker.once('message', r));
    const done = new Promise<{ bad: number; seen: number; size: number }>((r) => worker.once('message', r));
    worker.postMessage('go');
    // values encode their key, so a torn read (one entry's key, another's value) is caught
    for (let i = 0; i < N; i++) t.set(i * 3, i * 3 + 1); // the table grows ~20 times while the worker reads
    const res = await done;
    await worker.terminate();
    expect(res.bad).toBe(0);
    expect(res.seen).toBeGreaterThan(0);
    expect(res.size).toBe(N);
  });
});

describe('RemapTable under churn', () => {
  it('keeps inserting while deletes leave tombstones (the table rebuilds instead of looping)', () => {
    const t = new RemapTable({ keySpace: 1 << 20 });
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 200; i++) t.set(round * 1000 + i, i);
      for (let i = 0; i < 200; i++) t.delete(round * 1000 + i);
    }
    expect(t.size).toBe(0);
    t.set(7, 7);
    expect(t.get(7)).toBe(7);
    expect(t.update(7, (v) => v + 1)).toBe(8);
    expect(t.update(9, (v) => (v < 0 ? 1 : v))).toBe(1);
    expect(t.update(9, () => -1)).toBe(-1);
    expect(t.has(9)).toBe(false);
    expect(t.size).toBe(1);
  });
});
