import { describe, expect, it } from 'vitest';
import { Ring } from '../../src/engine/ring.js';
import { startWorker } from '../../src/util/worker.js';

describe('Ring', () => {
  it('is FIFO, reports full and empty, and wraps', () => {
    const r = new Ring({ capacity: 4, fields: 2 });
    const out = new Float64Array(2);
    expect(r.pop(out)).toBe(false);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 4; i++) expect(r.push([round * 10 + i, -i])).toBe(true);
      expect(r.push([99, 99])).toBe(false);
      expect(r.length).toBe(4);
      for (let i = 0; i < 4; i++) {
        expect(r.pop(out)).toBe(true);
        expect(Array.from(out)).toEqual([round * 10 + i, -i]);
      }
      expect(r.pop(out)).toBe(false);
    }
  });

  it('refuses bad shapes', () => {
    expect(() => new Ring({ capacity: 3, fields: 1 })).toThrow(/power of two/);
    expect(() => new Ring({ capacity: 8, fields: 0 })).toThrow(/fields/);
  });

  it('loses and duplicates nothing across 200,000 records with two producers and two consumers in four threads', async () => {
    const ring = new Ring({ capacity: 1024, fields: 3 });
    const PER = 100_000;
    const producers = [0, 1].map((id) => startWorker(import.meta.url, './ring-producer.worker', { workerData: { ring: ring.shared, id, n: PER } }));
    const producersDone = Promise.all(producers.map((w) => new Promise((res) => w.once('exit', res)))); // listen before they can exit
    const seen = new Uint8Array(2 * PER);
    const counter = new SharedArrayBuffer(4);
    const consumers = [0, 1].map(() => startWorker(import.meta.url, './ring-consumer.worker', { workerData: { ring: ring.shared, total: 2 * PER, counter } }));
    const results = await Promise.all(
      consumers.map(
        (w) =>
          new Promise<{ ids: Float64Array; bad: number }>((res, rej) => {
            w.once('message', res);
            w.once('error', rej);
          }),
      ),
    );
    await producersDone;
    let got = 0;
    for (const r of results) {
      expect(r.bad).toBe(0);
      for (const id of r.ids) {
        expect(seen[id]).toBe(0);
        seen[id] = 1;
        got++;
      }
    }
    expect(got).toBe(2 * PER);
    expect(seen.every((v) => v === 1)).toBe(true);
    for (const w of consumers) await w.terminate();
  }, 60_000);
});
