/**
 * 4k random reads, one thread, through each I/O path the engine can use, and
 * through fio in the same run:
 *
 *   page-cached file:  readSync loop | js backend | native batch (32) | native io_uring (32)
 *                      vs fio psync and fio io_uring iodepth=32
 *   O_DIRECT file:     the same, vs fio psync direct=1 and fio io_uring iodepth=32 direct=1
 *
 * fio runs with invalidate=0: by default it drops the file's pages from the
 * page cache before a job, which would turn the "page-cached" runs into disk
 * reads.
 *
 * Target (issue 4, "direct-rand-read-4k-qd32"): native io_uring at depth 32 >=
 * 0.8 x fio io_uring iodepth=32 direct=1. Files live in /var/tmp (O_DIRECT
 * needs a real filesystem, not tmpfs).
 *
 * Usage: npm run bench:native-io [-- --json] [-- --quick]
 * With --json the last line is {"comparisons":[...]}: ours/theirs in IOPS,
 * ratio = ours/theirs. Each side runs `rounds` times alternately and the best
 * round counts, which damps (but does not remove) noise from other work on a
 * 2-core machine; the load average is reported beside the numbers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { type AlignedBuffer, allocAligned } from '../src/block/aligned.js';
import { createIoBackend, IO_READ, type IoBackend } from '../src/engine/io-backend.js';
import { nativeIoStatus } from '../src/sys/native-io.js';
import { Random } from '../src/util/random.js';
import { benchArgs, emitJson } from './args.js';
import { fioMissing, runFio } from './fio.js';

const args = benchArgs();
const RUNTIME_S = args.quick ? 1.5 : 4;
const ROUNDS = args.quick ? 1 : 2;
const FILE_BYTES = args.quick ? 256 << 20 : 1 << 30;
const BS = 4096;
const DEPTH = 32;

function say(line: string): void {
  (args.json ? process.stderr : process.stdout).write(`${line}\n`);
}

const native = nativeIoStatus();
const fioWhy = fioMissing();
if (!native.available) say(`native I/O unavailable: ${native.reason}; measuring the JavaScript path only`);
if (fioWhy) say(`fio unavailable: ${fioWhy}; no comparisons against fio`);

const base = fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir();
const dir = fs.mkdtempSync(path.join(base, 'remapsim-bench-native-io-'));
const cachedFile = path.join(dir, 'cached.img');
const directFile = path.join(dir, 'direct.img');
const owned: AlignedBuffer[] = [];

function makeFile(file: string, bytes: number, warm: boolean): void {
  const fd = fs.openSync(file, 'w+');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) & 0xff;
  for (let off = 0; off < bytes; off += chunk.length) fs.writeSync(fd, chunk, 0, chunk.length, off);
  fs.fdatasyncSync(fd);
  if (warm) for (let off = 0; off < bytes; off += chunk.length) fs.readSync(fd, chunk, 0, chunk.length, off);
  fs.closeSync(fd);
}

// One table of random block offsets, shared by every JS-side run.
const OFFSETS = 1 << 16;
const offsets = new Float64Array(OFFSETS);
{
  const rnd = new Random(42);
  const blocks = FILE_BYTES / BS;
  for (let i = 0; i < OFFSETS; i++) offsets[i] = rnd.int(blocks) * BS;
}

/** IOPS of a plain fs.readSync loop: the engine's JS path without the queue interface. */
function readSyncLoop(fd: number, buf: Uint8Array): number {
  let ops = 0;
  const t0 = performance.now();
  const end = t0 + RUNTIME_S * 1000;
  let now = t0;
  while (now < end) {
    for (let j = 0; j < 256; j++) {
      const n = fs.readSync(fd, buf, 0, BS, offsets[ops++ & (OFFSETS - 1)]);
      if (n !== BS) throw new Error(`readSync returned ${n}`);
    }
    now = performance.now();
  }
  return ops / ((now - t0) / 1000);
}

/** IOPS through an IoBackend, keeping `depth` reads in flight the way an engine worker would. */
function backendLoop(io: IoBackend, fd: number, region: Uint8Array): number {
  const depth = io.depth;
  const tags = new Uint32Array(depth);
  const res = new Int32Array(depth);
  const slots: Uint8Array[] = [];
  for (let s = 0; s < depth; s++) slots.push(region.subarray(s * BS, (s + 1) * BS));
  let next = 0;
  let done = 0;
  let sinceCheck = 0;
  const t0 = performance.now();
  const end = t0 + RUNTIME_S * 1000;
  let now = t0;
  let stopping = false;
  for (let s = 0; s < depth; s++) io.submit(IO_READ, fd, offsets[next++ & (OFFSETS - 1)], slots[s], s);
  while (io.inFlight > 0) {
    io.waitAtLeast(1);
    const n = io.poll(depth, tags, res);
    for (let i = 0; i < n; i++) {
      if (res[i] !== BS) throw new Error(`read returned ${res[i]}`);
      if (!stopping) io.submit(IO_READ, fd, offsets[next++ & (OFFSETS - 1)], slots[tags[i]], tags[i]);
    }
    done += n;
    sinceCheck += n;
    if (sinceCheck >= 256) {
      sinceCheck = 0;
      now = performance.now();
      if (now >= end) stopping = true;
    }
  }
  now = performance.now();
  return done / ((now - t0) / 1000);
}

interface Side {
  label: string;
  run(): number;
}

function sides(file: string, direct: boolean): Side[] {
  const flags = fs.constants.O_RDONLY | (direct ? fs.constants.O_DIRECT : 0);
  const region = allocAligned(DEPTH * BS);
  owned.push(region);
  const withFd = (f: (fd: number) => number) => () => {
    const fd = fs.openSync(file, flags);
    try {
      return f(fd);
    } finally {
      fs.closeSync(fd);
    }
  };
  const withBackend = (make: () => IoBackend) =>
    withFd((fd) => {
      const io = make();
      try {
        return backendLoop(io, fd, region.buf);
      } finally {
        io.close();
      }
    });
  const out: Side[] = [
    { label: 'readSync loop', run: withFd((fd) => readSyncLoop(fd, region.buf.subarray(0, BS))) },
    { label: 'js backend', run: withBackend(() => createIoBackend('js')) },
  ];
  if (native.available) {
    out.push({ label: 'native batch qd32', run: withBackend(() => createIoBackend('native', { mechanism: 'batch', depth: DEPTH })) });
    let uring: string | undefined;
    try {
      createIoBackend('native', { mechanism: 'io_uring', depth: DEPTH }).close();
    } catch (err) {
      uring = (err as Error).message;
      say(`native io_uring unavailable: ${uring}`);
    }
    if (!uring) out.push({ label: 'native io_uring qd32', run: withBackend(() => createIoBackend('native', { mechanism: 'io_uring', depth: DEPTH })) });
  }
  if (!fioWhy) {
    const common = {
      filename: file,
      invalidate: 0,
      rw: 'randread',
      bs: '4k',
      runtime: RUNTIME_S,
      time_based: 1,
      norandommap: 1,
      randrepeat: 0,
      direct: direct ? 1 : 0,
      name: 'fio',
    };
    out.push({ label: 'fio psync', run: () => runFio({ ...common, ioengine: 'psync' }).iops });
    out.push({ label: 'fio io_uring qd32', run: () => runFio({ ...common, ioengine: 'io_uring', iodepth: DEPTH }).iops });
  }
  return out;
}

function measure(title: string, list: Side[]): Map<string, number> {
  const best = new Map<string, number>();
  const all = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of list) {
      const iops = s.run();
      best.set(s.label, Math.max(best.get(s.label) ?? 0, iops));
      all.set(s.label, [...(all.get(s.label) ?? []), iops]);
    }
  }
  say(`${title} (${RUNTIME_S} s per run, best of ${ROUNDS}; load average ${os.loadavg()[0].toFixed(2)} on ${os.cpus().length} CPUs)`);
  for (const s of list) {
    const rounds = all
      .get(s.label)!
      .map((x) => Math.round(x))
      .join(', ');
    say(`  ${s.label.padEnd(22)} ${String(Math.round(best.get(s.label)!)).padStart(9)} IOPS   (rounds: ${rounds})`);
  }
  return best;
}

interface Comparison {
  name: string;
  ours: number;
  theirs: number;
  unit: 'IOPS';
  ratio: number;
  oursIs: string;
  theirsIs: string;
  target?: number;
}

const comparisons: Comparison[] = [];
function compare(name: string, m: Map<string, number>, ours: string, theirs: string, target?: number): void {
  const a = m.get(ours);
  const b = m.get(theirs);
  if (a === undefined || b === undefined) return;
  comparisons.push({
    name,
    ours: Math.round(a),
    theirs: Math.round(b),
    unit: 'IOPS',
    ratio: Math.round((a / b) * 1000) / 1000,
    oursIs: ours,
    theirsIs: theirs,
    ...(target !== undefined ? { target } : {}),
  });
}

let loadBefore = 0;
try {
  say(`writing ${FILE_BYTES >> 20} MiB test files in ${dir}`);
  makeFile(cachedFile, FILE_BYTES, true);
  makeFile(directFile, FILE_BYTES, false);
  loadBefore = os.loadavg()[0];

  const cached = measure('page-cached 4k random reads', sides(cachedFile, false));
  const direct = measure('O_DIRECT 4k random reads', sides(directFile, true));

  compare('direct-rand-read-4k-qd32', direct, 'native io_uring qd32', 'fio io_uring qd32', 0.8);
  compare('direct-rand-read-4k-qd1', direct, 'readSync loop', 'fio psync');
  compare('direct-uring-vs-readsync', direct, 'native io_uring qd32', 'readSync loop');
  compare('cached-rand-read-4k-readsync', cached, 'readSync loop', 'fio psync');
  compare('cached-rand-read-4k-js-backend', cached, 'js backend', 'fio psync');
  compare('cached-rand-read-4k-batch', cached, 'native batch qd32', 'fio psync');
  compare('cached-rand-read-4k-uring', cached, 'native io_uring qd32', 'fio psync');
  compare('cached-rand-read-4k-uring-vs-fio-uring', cached, 'native io_uring qd32', 'fio io_uring qd32');
  compare('cached-batch-vs-readsync', cached, 'native batch qd32', 'readSync loop');
  compare('cached-uring-vs-readsync', cached, 'native io_uring qd32', 'readSync loop');

  if (!args.json) {
    say('comparisons (ratio = ours / theirs):');
    for (const c of comparisons) {
      const t = c.target !== undefined ? `  target >= ${c.target}: ${c.ratio >= c.target ? 'met' : 'NOT met'}` : '';
      say(`  ${c.name.padEnd(32)} ${String(c.ours).padStart(8)} vs ${String(c.theirs).padStart(8)} IOPS  ratio ${c.ratio}${t}`);
    }
  }
  if (args.json) {
    emitJson({
      comparisons,
      native: native.available ? 'available' : native.reason,
      fio: fioWhy ?? 'available',
      runtimeS: RUNTIME_S,
      rounds: ROUNDS,
      cpus: os.cpus().length,
      load: [Math.round(loadBefore * 100) / 100, Math.round(os.loadavg()[0] * 100) / 100],
    });
  }
} finally {
  for (const b of owned) b.free();
  fs.rmSync(dir, { recursive: true, force: true });
}
