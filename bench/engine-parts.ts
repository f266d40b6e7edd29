/**
 * What the engine's per-I/O steps cost alone, on this machine: a clock
 * reading, the job generator's next request, a completion's accounting
 * (histogram, series, totals) and a request record's trip through a ring.
 * bench/engine.ts puts them beside the costs it measures by removing a part
 * of the real run (the syscall, the model), to say where a 4 KiB read's time
 * goes.
 */
import * as P from '../src/engine/ring-records.js';
import { Ring } from '../src/engine/ring.js';
import { IoSeries } from '../src/stats/series.js';
import { realClock } from '../src/util/clock.js';
import { Completions, newDirStats } from '../src/workload/completion.js';
import { IoGenerator, newIoRequest } from '../src/workload/generator.js';
import { jobFromRecord } from '../src/workload/job.js';

const N = 3_000_000;

/** ns per call of fn, the best of 3 timings of N calls (after one to warm up). */
function perCall(fn: (i: number) => void): number {
  let best = Infinity;
  for (let round = 0; round < 4; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn(i);
    const ns = Number(process.hrtime.bigint() - t0) / N;
    if (round > 0) best = Math.min(best, ns);
  }
  return best;
}

export interface PartCosts {
  clockReadNs: number;
  generatorNs: number;
  accountingNs: number;
  ringPushPopNs: number;
}

export function partCosts(job: Record<string, string | number>, deviceBytes: number): PartCosts {
  let sink = 0;
  const clockReadNs = perCall(() => {
    sink += realClock.nowNs();
  });
  const spec = jobFromRecord({ name: 'parts', ...job, time_based: 1, runtime: 3600 }); // time-based: the generator wraps around
  const gen = new IoGenerator(spec, { deviceBytes });
  const req = newIoRequest();
  const generatorNs = perCall(() => {
    if (!gen.next(req)) throw new Error('the generator ran dry');
    sink += req.offsetBytes;
  });
  const account = { spec, dirs: [newDirStats(), newDirStats(), newDirStats()], series: new IoSeries(0), measureFromNs: 0 };
  const completions = new Completions(new Float64Array(3), 0, undefined);
  const data = new Uint8Array(4096);
  const t0 = realClock.nowNs();
  const accountingNs = perCall((i) => {
    sink += completions.account(account, 0, (i * 4096) % deviceBytes, 4096, 0, t0 + i * 1000, t0 + i * 1000 + 20_000 + (i & 1023), data);
  });
  const ring = new Ring({ capacity: 64, fields: P.RQ_FIELDS });
  const rec = new Float64Array(P.RQ_FIELDS);
  const ringPushPopNs = perCall((i) => {
    rec[0] = i;
    ring.push(rec);
    ring.pop(rec);
    sink += rec[0];
  });
  if (sink === 0.5) console.log(sink);
  return { clockReadNs, generatorNs, accountingNs, ringPushPopNs };
}
