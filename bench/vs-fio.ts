/**
 * The same jobs through fio (psync) and through the model, on the same 1 GiB
 * page-cached file, in one run, from one thread (the runner: one read in
 * flight at a time; a read-only job reads in native batches, read-batch.ts).
 * Targets (issue 21):
 *   "seq-read-1m"      bs=1M sequential read, safe policy, no remaps   >= 1.0 x fio psync
 *   "rand-read-4k-qd1" bs=4k random read, iodepth 1, 10,000 remaps     >= 0.9 x fio psync
 * The machines here are shared and their speed drifts by tens of percent
 * within a minute, so fio and remapsim run alternately, ROUNDS times each,
 * and the medians are compared.
 * Usage: npm run bench:fio [-- --json] [-- --quick]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileDevice } from '../src/block/file-device.js';
import { SafeRemapTarget } from '../src/remap/safe-target.js';
import { Random } from '../src/util/random.js';
import { jobFromRecord } from '../src/workload/job.js';
import { runJobs } from '../src/workload/runner.js';
import { benchArgs, emitJson } from './args.js';
import { fioMissing, runFio } from './fio.js';
import { machineInfo } from './machine.js';

const args = benchArgs();
const missing = fioMissing();
if (missing) {
  console.log(`skipping bench:fio: ${missing}`);
  if (args.json) emitJson({ skipped: missing, comparisons: [] });
  process.exit(0);
}

const RUNTIME_S = 2;
const ROUNDS = args.quick ? 1 : 5;
const MAIN_BYTES = 1 << 30;
const SPARE_BYTES = 64 << 20;
const REMAPS = 10_000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapsim-bench-fio-'));
const mainFile = path.join(dir, 'main.img');
const spareFile = path.join(dir, 'spare.img');

function fillAndWarm(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w+');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) & 0xff;
  for (let off = 0; off < bytes; off += chunk.length) fs.writeSync(fd, chunk, 0, chunk.length, off);
  for (let off = 0; off < bytes; off += chunk.length) fs.readSync(fd, chunk, 0, chunk.length, off);
  fs.closeSync(fd);
}

function model(remaps: number): SafeRemapTarget {
  const main = FileDevice.open(mainFile);
  const spare = FileDevice.open(spareFile);
  const rnd = new Random(7);
  const blocks = main.sectors;
  const pairs: Array<[number, number]> = [];
  const used = new Set<number>();
  let next = 2048; // the first data block after the default reserved area
  while (pairs.length < remaps) {
    const b = rnd.int(blocks);
    if (used.has(b)) continue;
    used.add(b);
    pairs.push([b, next++]);
  }
  return new SafeRemapTarget({ main, spare, restored: { remaps: pairs, cursor: next } });
}

function ours(record: Record<string, string | number>, remaps: number): { bw: number; iops: number } {
  const target = model(remaps);
  try {
    const r = runJobs({ device: target, jobs: [jobFromRecord({ name: 'ours', ...record, runtime: RUNTIME_S, time_based: 1 })] });
    const j = r.jobs[0];
    const secs = j.runtimeNs / 1e9;
    return { bw: j.read.ioBytes / secs, iops: j.read.totalIos / secs };
  } finally {
    target.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

try {
  fillAndWarm(mainFile, MAIN_BYTES);
  fillAndWarm(spareFile, SPARE_BYTES);
  // invalidate=0: fio would otherwise drop the file from the page cache before each job
  const common = { filename: mainFile, ioengine: 'psync', runtime: RUNTIME_S, time_based: 1, name: 'fio', invalidate: 0 };
  const rounds = { seqFio: [] as number[], seqOurs: [] as number[], randFio: [] as number[], randOurs: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    rounds.seqFio.push(runFio({ ...common, rw: 'read', bs: '1M' }).bw);
    rounds.seqOurs.push(ours({ rw: 'read', bs: '1M' }, 0).bw);
    rounds.randFio.push(runFio({ ...common, rw: 'randread', bs: '4k', norandommap: 1, randrepeat: 0 }).iops);
    rounds.randOurs.push(ours({ rw: 'randread', bs: '4k', norandommap: 1 }, REMAPS).iops);
  }
  const seqFio = { bw: median(rounds.seqFio) };
  const seqOurs = { bw: median(rounds.seqOurs) };
  const randFio = { iops: median(rounds.randFio) };
  const randOurs = { iops: median(rounds.randOurs) };
  const MiB = 1 << 20;
  const comparisons = [
    { name: 'seq-read-1m', ours: seqOurs.bw / MiB, theirs: seqFio.bw / MiB, unit: 'MiB/s', ratio: seqOurs.bw / seqFio.bw },
    { name: 'rand-read-4k-qd1', ours: randOurs.iops, theirs: randFio.iops, unit: 'IOPS', ratio: randOurs.iops / randFio.iops },
  ].map((c) => ({ ...c, ours: Math.round(c.ours), theirs: Math.round(c.theirs), ratio: Math.round(c.ratio * 1000) / 1000 }));
  if (!args.json) {
    console.log(
      `same 1 GiB page-cached file, median of ${ROUNDS} alternating runs of ${RUNTIME_S} s; model: safe policy (${REMAPS} remaps for the random job)`,
    );
    for (const c of comparisons)
      console.log(
        `${c.name.padEnd(18)} remapsim ${String(c.ours).padStart(8)} ${c.unit.padEnd(6)}  fio psync ${String(c.theirs).padStart(8)} ${c.unit.padEnd(6)}  ratio ${c.ratio}`,
      );
  }
  if (args.json) emitJson({ comparisons, machine: machineInfo(), rounds });
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
