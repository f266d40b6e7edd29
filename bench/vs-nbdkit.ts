/**
 * fio's nbd engine against `remapsim serve` and against `nbdkit file`, on the
 * same page-cached backing file, in one run. remapsim serves the backing file
 * as the main device of a `remap` (safe policy) target with an empty spare:
 * no faults, no remaps, the whole model in the path. Targets (issue 8):
 *   "nbd-rand-read-4k-qd16"  randread bs=4k iodepth=16  >= 0.8 x nbdkit (IOPS)
 *   "nbd-seq-read-1m"        read bs=1M iodepth=16       >= 1.0 x nbdkit (MiB/s)
 * The two servers take turns (ours, theirs, ours, ...) and each side's median
 * is reported, so a neighbour's load hits both alike; the load average is
 * printed, since on a busy 2-core machine fio and the server also compete
 * with it. Also reported: server CPU time per I/O, which load disturbs less.
 * With --engine, remapsim serves through the per-CPU engine (`serve SCENARIO
 * --engine workers`, the same files as the scenario's devices) instead of on
 * its one server thread.
 * Usage: npm run bench:nbd [-- --json] [-- --quick] [-- --engine]
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, emitJson } from './args.js';
import { spawnFio } from './fio.js';

const args = benchArgs(process.argv.slice(2), ['--engine']);
const ENGINE = args.flags.has('--engine');
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function missingTool(): string | undefined {
  for (const [cmd, arg] of [
    ['fio', '--version'],
    ['nbdkit', '--version'],
  ]) {
    if (spawnSync(cmd, [arg], { encoding: 'utf8', timeout: 10_000 }).status !== 0) return `${cmd} is not installed`;
  }
  const engines = spawnSync('fio', ['--enghelp'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  if (!/\bnbd\b/.test(engines)) return 'this fio has no nbd engine (it needs libnbd at build time)';
  return undefined;
}

const missing = missingTool();
if (missing) {
  console.log(`skipping bench:nbd: ${missing}`);
  if (args.json) emitJson({ skipped: missing, comparisons: [] });
  process.exit(0);
}

const RUNTIME_S = args.quick ? 2 : 4;
const ROUNDS = args.quick ? 1 : 3;
const MAIN_BYTES = 512 << 20;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapsim-bench-nbd-'));
const mainFile = path.join(dir, 'main.img');
const spareFile = path.join(dir, 'spare.img');
const ourSock = path.join(dir, 'remapsim.sock');
const theirSock = path.join(dir, 'nbdkit.sock');
const children: ChildProcess[] = [];

function fillAndWarm(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w+');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131 + 7) & 0xff;
  for (let off = 0; off < bytes; off += chunk.length) fs.writeSync(fd, chunk, 0, chunk.length, off);
  for (let off = 0; off < bytes; off += chunk.length) fs.readSync(fd, chunk, 0, chunk.length, off);
  fs.closeSync(fd);
}

async function waitFor(cond: () => boolean, what: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!cond()) {
    if (child.exitCode !== null) throw new Error(`${what} exited: ${stderr()}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start within 30 s: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startOurs(): Promise<ChildProcess> {
  const sectors = MAIN_BYTES / 512;
  let what = ['--table', `0 ${sectors} remap ${mainFile} ${spareFile}`];
  if (ENGINE) {
    const scenario = path.join(dir, 'serve.yaml');
    const lines = [
      'name: bench-nbd',
      'devices:',
      `  main: { path: ${JSON.stringify(mainFile)} }`,
      `  spare: { path: ${JSON.stringify(spareFile)} }`,
      'target: { policy: safe }',
      'jobs:',
      '  - { name: unused, rw: read, bs: 4k, size: 1m }',
    ];
    fs.writeFileSync(scenario, lines.join('\n'));
    what = [scenario, '--engine', 'workers'];
  }
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'serve', '--socket', ourSock, ...what], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env },
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  await waitFor(
    () => out.includes('Stop with'),
    'remapsim serve',
    child,
    () => err,
  );
  return child;
}

async function startNbdkit(): Promise<ChildProcess> {
  const pidFile = path.join(dir, 'nbdkit.pid');
  const child = spawn('nbdkit', ['-f', '--exit-with-parent', '-U', theirSock, '-P', pidFile, 'file', mainFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  await waitFor(
    () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '',
    'nbdkit',
    child,
    () => err,
  );
  return child;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const tick = 100; // USER_HZ on Linux
  return (Number(fields[11]) + Number(fields[12])) / tick;
}

interface Sample {
  iops: number;
  mibps: number;
  cpuUsPerIo: number;
}

function fio(sock: string, pid: number, rw: string, bs: string, qd: number, runtime: number): Sample {
  const out = path.join(dir, 'fio.json');
  const cpu0 = cpuSeconds(pid);
  const r = spawnFio(
    [
      '--name=bench',
      '--ioengine=nbd',
      `--uri=nbd+unix:///?socket=${sock}`,
      `--rw=${rw}`,
      `--bs=${bs}`,
      `--iodepth=${qd}`,
      `--size=${MAIN_BYTES}`,
      '--time_based',
      `--runtime=${runtime}`,
      '--norandommap',
      '--randrepeat=0',
      '--output-format=json',
      `--output=${out}`,
    ],
    runtime + 60,
  );
  if (r.status !== 0) throw new Error(`fio failed (${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const cpu = cpuSeconds(pid) - cpu0;
  const job = JSON.parse(fs.readFileSync(out, 'utf8')).jobs[0];
  const ios = job.read.total_ios as number;
  return { iops: job.read.iops, mibps: job.read.bw_bytes / (1 << 20), cpuUsPerIo: (cpu * 1e6) / Math.max(1, ios) };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Comparison {
  name: string;
  ours: number;
  theirs: number;
  unit: 'MiB/s' | 'IOPS';
  ratio: number;
}

const JOBS: Array<{ name: string; rw: string; bs: string; qd: number; unit: 'MiB/s' | 'IOPS'; target: number }> = [
  { name: 'nbd-rand-read-4k-qd16', rw: 'randread', bs: '4k', qd: 16, unit: 'IOPS', target: 0.8 },
  { name: 'nbd-seq-read-1m', rw: 'read', bs: '1M', qd: 16, unit: 'MiB/s', target: 1.0 },
];

async function main(): Promise<void> {
  fillAndWarm(mainFile, MAIN_BYTES);
  fs.writeFileSync(spareFile, '');
  fs.truncateSync(spareFile, 32 << 20); // blank: the safe metadata store formats it
  const ours = await startOurs();
  const theirs = await startNbdkit();
  const load0 = os.loadavg()[0];
  const comparisons: Comparison[] = [];
  const lines: string[] = [];
  for (const j of JOBS) {
    // a short warm-up on each (connections, JIT, page cache), not counted
    fio(ourSock, ours.pid!, j.rw, j.bs, j.qd, 1);
    fio(theirSock, theirs.pid!, j.rw, j.bs, j.qd, 1);
    const o: Sample[] = [];
    const t: Sample[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      o.push(fio(ourSock, ours.pid!, j.rw, j.bs, j.qd, RUNTIME_S));
      t.push(fio(theirSock, theirs.pid!, j.rw, j.bs, j.qd, RUNTIME_S));
    }
    const pick = (s: Sample[]) => median(s.map((x) => (j.unit === 'IOPS' ? x.iops : x.mibps)));
    const c: Comparison = { name: j.name, ours: Math.round(pick(o) * 10) / 10, theirs: Math.round(pick(t) * 10) / 10, unit: j.unit, ratio: 0 };
    c.ratio = Math.round((c.ours / c.theirs) * 1000) / 1000;
    comparisons.push(c);
    const each = (s: Sample[]) => s.map((x) => (j.unit === 'IOPS' ? x.iops : x.mibps).toFixed(0)).join('/');
    lines.push(
      `${j.name.padEnd(24)} remapsim ${c.ours.toFixed(0).padStart(7)} ${j.unit}  nbdkit ${c.theirs.toFixed(0).padStart(7)} ${j.unit}  ratio ${c.ratio.toFixed(2)} (target >= ${j.target})` +
        `  [runs ${each(o)} vs ${each(t)}; server CPU/IO ${median(o.map((x) => x.cpuUsPerIo)).toFixed(1)} vs ${median(t.map((x) => x.cpuUsPerIo)).toFixed(1)} us]`,
    );
  }
  const load1 = os.loadavg()[0];
  console.log(
    `fio nbd engine, ${MAIN_BYTES >> 20} MiB page-cached file, ${ROUNDS} x ${RUNTIME_S} s per side, alternating; remapsim: safe policy, no remaps, ${ENGINE ? 'through the per-CPU engine' : 'on its server thread'}`,
  );
  for (const l of lines) console.log(l);
  const busy = Math.max(load0, load1) > os.cpus().length * 0.5;
  console.log(`load average ${load0.toFixed(2)} -> ${load1.toFixed(2)} on ${os.cpus().length} CPUs${busy ? ': the machine was busy, numbers are noisy' : ''}`);
  if (args.json) emitJson({ comparisons, dataPath: ENGINE ? 'engine' : 'server thread', loadAverage: [load0, load1], cpus: os.cpus().length });
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  fs.rmSync(dir, { recursive: true, force: true });
}
