/**
 * The health scanner's two targets (issue 6), in one run:
 *
 *   "scanner-interference"  foreground 4k random reads (QD1, page-cached
 *       file, safe policy) with the scanner at its default settings vs
 *       without it, alternating 250 ms phases so drift hits both alike; the
 *       medians of each side's phases are compared: >= 0.95.
 *   "found_before_foreground"  growing latent sector errors (the clustered
 *       Poisson model of src/faults/stochastic.ts) under a 4k random-read
 *       foreground: the share of bad blocks the scanner (default rate) finds
 *       before a foreground read fails on them: >= 0.9. Simulated time
 *       (ManualClock; real file I/O), so the answer is exact for the seed
 *       and does not depend on how busy the machine is. Errors arrive for T
 *       seconds; the run then goes on for one scan pass so every bad block is
 *       found by one or the other. Also swept over the
 *       scan rate and the foreground rate, beside the closed form for
 *       uniform reads: P = (1 - e^-x) / x, x = foreground read bandwidth /
 *       scan rate (a block's first foreground read is exponential in time;
 *       the scanner reaches it after a uniform fraction of a pass).
 *
 * Usage: npm run bench:scanner [-- --json] [-- --quick]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileDevice } from '../src/block/file-device.js';
import { DustDevice } from '../src/faults/dust.js';
import { LatentErrorProcess } from '../src/faults/stochastic.js';
import { WeakSectorDevice, WeakSectorProcess } from '../src/faults/weak.js';
import { attachHealthMonitor, DetectionTracker } from '../src/health/monitor.js';
import { SCANNER_DEFAULTS } from '../src/health/scanner.js';
import { SafeRemapTarget } from '../src/remap/safe-target.js';
import { ManualClock, realClock } from '../src/util/clock.js';
import { Random } from '../src/util/random.js';
import { jobFromRecord } from '../src/workload/job.js';
import { runJobs } from '../src/workload/runner.js';
import { benchArgs, emitJson } from './args.js';

const args = benchArgs();
const range = (xs: number[]): string => `${Math.round(Math.min(...xs))}..${Math.round(Math.max(...xs))}`;
const log = (s: string): void => {
  if (!args.json) console.log(s);
};
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapsim-bench-scanner-'));

function fillFile(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w+');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) & 0xff;
  for (let off = 0; off < bytes; off += chunk.length) fs.writeSync(fd, chunk, 0, chunk.length, off);
  for (let off = 0; off < bytes; off += chunk.length) fs.readSync(fd, chunk, 0, chunk.length, off); // into the page cache
  fs.closeSync(fd);
}

// ---- part 1: interference, real time ----

interface Phase {
  scanner: boolean;
  iops: number;
  scanRate: number;
  /** Share of the phase's time the scanner spent in its reads (what it can take from a QD1 foreground on one thread). */
  scanShare: number;
}

function interference(): { phases: Phase[]; ours: number; theirs: number; scanShare: number; scanRate: number } {
  const MAIN = (args.quick ? 128 : 256) << 20;
  const mainFile = path.join(dir, 'main.img');
  const spareFile = path.join(dir, 'spare.img');
  fillFile(mainFile, MAIN);
  fillFile(spareFile, 32 << 20);
  const main = FileDevice.open(mainFile);
  const spare = FileDevice.open(spareFile);
  const target = new SafeRemapTarget({ main, spare });
  const phaseMs = 250;
  const rounds = args.quick ? 12 : 30;
  const job = jobFromRecord({ name: 'fg', rw: 'randread', bs: '4k', norandommap: 1, time_based: 1, runtime: `${phaseMs}ms` });
  const phases: Phase[] = [];
  const warm = jobFromRecord({ name: 'warm', rw: 'randread', bs: '4k', norandommap: 1, time_based: 1, runtime: '500ms' });
  try {
    runJobs({ device: target, jobs: [warm] });
    for (let r = 0; r < rounds; r++) {
      for (const withScanner of r % 2 === 0 ? [false, true] : [true, false]) {
        // a monitor per phase: one kept across phases would bank scan budget while it is not ticked
        const monitor = withScanner ? attachHealthMonitor(target, { clock: realClock }) : undefined;
        try {
          const res = runJobs({ device: target, jobs: [job], onTick: monitor ? (now) => monitor.tick(now) : undefined });
          const st = monitor?.scanner?.stats();
          const j = res.jobs[0]!;
          phases.push({
            scanner: withScanner,
            iops: j.read.totalIos / (j.runtimeNs / 1e9),
            scanRate: st ? st.bytesRead / (res.elapsedNs / 1e9) : 0,
            scanShare: st ? st.scanNs / res.elapsedNs : 0,
          });
        } finally {
          monitor?.close();
        }
      }
    }
  } finally {
    target.close();
  }
  // medians: other processes on the machine take whole phases away now and then
  const median = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b);
    return (v[(v.length - 1) >> 1]! + v[v.length >> 1]!) / 2;
  };
  const withPhases = phases.filter((p) => p.scanner);
  const without = phases.filter((p) => !p.scanner);
  return {
    phases,
    ours: median(withPhases.map((p) => p.iops)),
    theirs: median(without.map((p) => p.iops)),
    scanShare: median(withPhases.map((p) => p.scanShare)),
    scanRate: median(withPhases.map((p) => p.scanRate)),
  };
}

// ---- part 2: detection, simulated time ----

interface DetectionResult {
  scanRateMBps: number;
  foregroundIops: number;
  seconds: number;
  appeared: number;
  scannerFirst: number;
  foregroundFirst: number;
  undiscovered: number;
  fraction: number | null;
  predicted: number;
  meanDetectionSeconds: number | null;
  weak?: { madeWeak: number; failed: number; movedBeforeFailing: number };
}

const DET_MAIN = 64 << 20;
const detFile = path.join(dir, 'det-main.img');

function detection(scanRateMBps: number, foregroundIops: number, seconds: number, withWeak = false, seed = 1): DetectionResult {
  const clock = new ManualClock();
  FileDevice.createSparse(detFile, DET_MAIN);
  const file = FileDevice.open(detFile, { logicalBlockSize: 4096 });
  const weak = new WeakSectorDevice(file, { clock });
  const dust = new DustDevice(weak, { blockSize: 4096, log: () => {} });
  dust.enable();
  const spareFile = path.join(dir, 'det-spare.img');
  FileDevice.createSparse(spareFile, 32 << 20);
  const target = new SafeRemapTarget({ main: dust, spare: FileDevice.open(spareFile, { logicalBlockSize: 4096 }) });
  const rng = new Random(seed);
  const tracker = new DetectionTracker(8);
  // ~0.7 episodes/s of about 2 neighbouring blocks each, follow-ups within seconds nearby
  const lse = new LatentErrorProcess(
    { rate: 0.5, burstMean: 2, spread: 2, followProbability: 0.3, followMeanNs: 3e9, followDistance: 256, writeFailCount: 3 },
    dust,
    rng.fork(),
    0,
  );
  lse.onEpisode((e) => {
    for (const b of e.blocks) tracker.appeared(b * 8, 8, e.atNs);
  });
  const weakProc = withWeak
    ? new WeakSectorProcess({ rate: 0.1, failAfterNs: 60e9, readLatency: { kind: 'fixed', ns: 100e6 } }, weak, dust, rng.fork(), 0)
    : undefined;
  const monitor = attachHealthMonitor(target, { clock, rate: scanRateMBps * 1e6, tracker });
  // errors arrive for `seconds`; the run goes on for one more scan pass (at the busy rate), so every bad
  // block is found by someone and none is left out of the count (that would favour the faster finder)
  const busyRate = scanRateMBps * 1e6 * SCANNER_DEFAULTS.busyFactor;
  const drainS = Math.ceil(DET_MAIN / busyRate) + 2;
  const arrivalsEndNs = seconds * 1e9;
  const job = jobFromRecord({
    name: 'fg',
    rw: 'randread',
    bs: '4k',
    norandommap: 1,
    rate_iops: foregroundIops,
    time_based: 1,
    runtime: `${seconds + drainS}s`,
    continue_on_error: 'all',
  });
  try {
    runJobs({
      device: monitor.wrap(target),
      jobs: [job],
      clock,
      seed,
      onTick: (now) => {
        lse.advance(Math.min(now, arrivalsEndNs));
        weakProc?.advance(Math.min(now, arrivalsEndNs));
        monitor.tick(now);
      },
    });
    const s = tracker.summary();
    const x = (foregroundIops * 4096) / busyRate;
    const moved = monitor.report().actions.weakMoved;
    return {
      scanRateMBps,
      foregroundIops,
      seconds,
      appeared: s.appeared,
      scannerFirst: s.scannerFirst,
      foregroundFirst: s.foregroundFirst,
      undiscovered: s.undiscovered,
      fraction: s.foundBeforeForeground,
      predicted: (1 - Math.exp(-x)) / x,
      meanDetectionSeconds: s.meanDetectionNs === null ? null : s.meanDetectionNs / 1e9,
      weak: weakProc ? { madeWeak: weakProc.madeWeak, failed: weakProc.failed, movedBeforeFailing: moved } : undefined,
    };
  } finally {
    monitor.close();
    target.close();
  }
}

try {
  const defaultRate = SCANNER_DEFAULTS.rate / 1e6;
  log(
    `scanner defaults: ${defaultRate} MB/s idle, x${SCANNER_DEFAULTS.busyFactor} while the foreground is busy, ${SCANNER_DEFAULTS.sliceBytes >> 10} KiB slices; machine load ${os.loadavg()[0].toFixed(2)} on ${os.availableParallelism()} CPUs`,
  );

  const inter = interference();
  const ratio = inter.ours / inter.theirs;
  log(`\nscanner-interference: 4k random reads, QD1, page-cached file, safe policy, alternating phases`);
  log(
    `  ${inter.phases.length} phases of 250 ms; IOPS with the scanner ${range(inter.phases.filter((p) => p.scanner).map((p) => p.iops))}, without ${range(inter.phases.filter((p) => !p.scanner).map((p) => p.iops))}`,
  );
  log(`  median: with ${Math.round(inter.ours)} IOPS, without ${Math.round(inter.theirs)} IOPS, ratio ${ratio.toFixed(3)} (target >= 0.95)`);
  log(
    `  the scanner read ${(inter.scanRate / 1e6).toFixed(2)} MB/s and its reads took ${(inter.scanShare * 100).toFixed(2)}% of the thread's time (median phase)`,
  );

  const T = args.quick ? 150 : 300;
  const TMAIN = args.quick ? 150 : 600;
  const FG = 250;
  log(`\nfound before a foreground read: ${DET_MAIN >> 20} MiB main, latent errors ~0.7 episodes/s (~2 blocks each), 4k uniform random reads (norandommap)`);
  const main = detection(defaultRate, FG, TMAIN, true);
  const byRate = [2, 8, defaultRate, 128].map((r) => (r === defaultRate && T === TMAIN ? main : detection(r, FG, T)));
  const row = (d: DetectionResult): string =>
    `found first ${d.fraction === null ? 'n/a' : d.fraction.toFixed(3)} (closed form ${d.predicted.toFixed(3)}), ${d.scannerFirst}/${d.scannerFirst + d.foregroundFirst} of ${d.appeared} bad blocks, ${d.undiscovered} undiscovered, mean time to discovery ${d.meanDetectionSeconds?.toFixed(1) ?? 'n/a'} s`;
  log(`  default rate, foreground ${FG} IOPS, errors for ${TMAIN} s simulated: ${row(main)}`);
  log(`  by scan rate (foreground ${FG} IOPS = ${((FG * 4096) / 1e6).toFixed(2)} MB/s, errors for ${T} s simulated):`);
  for (const d of byRate)
    log(`    ${String(d.scanRateMBps).padStart(4)} MB/s idle (${(d.scanRateMBps * SCANNER_DEFAULTS.busyFactor).toFixed(1)} MB/s busy): ${row(d)}`);
  const T2 = args.quick ? 60 : 120;
  const byForeground = [250, 1000, 4000].map((f) => detection(defaultRate, f, T2));
  log(`  by foreground rate (default scan rate, ${T2} s simulated):`);
  for (const d of byForeground) log(`    ${String(d.foregroundIops).padStart(5)} IOPS (${((d.foregroundIops * 4096) / 1e6).toFixed(2)} MB/s): ${row(d)}`);
  if (main.weak)
    log(
      `  weak sectors (0.1/s, fail after 60 s on average): ${main.weak.madeWeak} appeared, ${main.weak.movedBeforeFailing} moved to the spare while readable, ${main.weak.failed} failed`,
    );

  const round3 = (x: number | null): number | null => (x === null ? null : Math.round(x * 1000) / 1000);
  const comparisons = [
    { name: 'scanner-interference', ours: Math.round(inter.ours), theirs: Math.round(inter.theirs), unit: 'IOPS', ratio: Math.round(ratio * 1000) / 1000 },
  ];
  if (args.json) {
    emitJson({
      comparisons,
      found_before_foreground: round3(main.fraction),
      found_before_foreground_by_rate: byRate.map((d) => ({
        scanRateMBps: d.scanRateMBps,
        foregroundIops: d.foregroundIops,
        fraction: round3(d.fraction),
        predicted: round3(d.predicted),
        appeared: d.appeared,
      })),
      found_before_foreground_by_foreground: byForeground.map((d) => ({
        scanRateMBps: d.scanRateMBps,
        foregroundIops: d.foregroundIops,
        fraction: round3(d.fraction),
        predicted: round3(d.predicted),
        appeared: d.appeared,
      })),
      weak: main.weak,
      scan_time_share: Math.round(inter.scanShare * 10000) / 10000,
      load: os.loadavg()[0],
    });
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
