import { workerData } from 'node:worker_threads';
import { Ring, type RingShared } from '../../src/engine/ring.js';

const { ring, id, n } = workerData as { ring: RingShared; id: number; n: number };
const r = new Ring(ring);
const rec = new Float64Array(3);
for (let i = 0; i < n; i++) {
  const value = id * n + i;
  rec[0] = value;
  rec[1] = value * 3; // the consumer checks that the fields of one record belong together
  rec[2] = -value;
  while (!r.push(rec));
}
