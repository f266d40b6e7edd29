import { parentPort, workerData } from 'node:worker_threads';
import { RemapTable, type RemapTableShared } from '../../src/block/remap-table.js';

const { shared, N } = workerData as { shared: RemapTableShared; N: number };
const t = new RemapTable(shared);
parentPort!.postMessage('ready');
parentPort!.once('message', () => {
  let bad = 0;
  let seen = 0;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const k = (Math.random() * N) | 0;
    const v = t.get(k * 3);
    if (v >= 0) {
      seen++;
      if (v !== k * 3 + 1) bad++;
    }
    if (t.size === N) break;
  }
  parentPort!.postMessage({ bad, seen, size: t.size });
});
