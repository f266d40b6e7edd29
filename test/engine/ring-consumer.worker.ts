import { parentPort, workerData } from 'node:worker_threads';
import { Ring, type RingShared } from '../../src/engine/ring.js';

const { ring, total, counter } = workerData as { ring: RingShared; total: number; counter: SharedArrayBuffer };
const r = new Ring(ring);
const consumed = new Int32Array(counter);
const out = new Float64Array(3);
const ids: number[] = [];
let bad = 0;
const deadline = Date.now() + 50_000;
while (Atomics.load(consumed, 0) < total && Date.now() < deadline) {
  if (r.pop(out)) {
    Atomics.add(consumed, 0, 1);
    if (out[1] !== out[0] * 3 || out[2] !== -out[0]) bad++;
    ids.push(out[0]);
  }
}
parentPort!.postMessage({ ids: Float64Array.from(ids), bad });
