/**
 * Runs jobs against a BlockDevice: each job's clones (numjobs) issue I/O from
 * their generators, round robin, with rate limits honoured and the oracle
 * told about every write before it goes; each completion is accounted by
 * completion.ts (latency, bandwidth, the oracle's verdict, continue_on_error).
 *
 * This is the synchronous data path: one thread, one I/O in flight at a time
 * (so iodepth has no effect here); the per-CPU engine runs the same jobs
 * across worker threads with real queue depth. A job that only reads, from a
 * remap target over page-cached files, hands its reads to the native library
 * up to 32 at a time (read-batch.ts), still one after another.
 */
import { type BlockDevice, errnoName, OK, SECTOR_SIZE } from '../block/device.js';
import { type AlignedBuffer, allocAligned } from '../block/aligned.js';
import { LatencyHistogram } from '../stats/latency.js';
import { IoSeries } from '../stats/series.js';
import { type Clock, realClock } from '../util/clock.js';
import { IoGenerator, newIoRequest, type IoRequest } from './generator.js';
import { flushInterval, type JobSpec } from './job.js';
import { WorkloadSpecError } from './errors.js';
import { Oracle, type ReadClass } from './oracle.js';
import { continuesAfter } from './continue-on-error.js';
import { Completions, type DirStats, newDirStats, TOTAL_BYTES, TOTAL_ERRORS, TOTAL_IOS } from './completion.js';
import { resourceDelta } from '../util/resources.js';
import { FioWriteLog, fioStateStops, type FioThreadState } from './fio-verify-state.js';
import { isFioFormat } from './verify-options.js';
import { ReadBatch } from './read-batch.js';

export interface JobRunResult {
  spec: JobSpec;
  /** errno the job stopped with (0 = ran to its end). */
  error: number;
  /** Time the job ran, ramp time excluded (ns). */
  runtimeNs: number;
  read: DirStats;
  write: DirStats;
  trim: DirStats;
  series: IoSeries;
  /** How this job's reads were judged (when the oracle ran). */
  verify?: Record<ReadClass, number>;
  /** The flushes the job made (fsync=, fdatasync=): fio's "sync" block. */
  flushes?: FlushStats;
  /** fio's verify state of each clone (verify_state_save, fio's header kinds): what `fio --verify_state_load` reads. */
  fioStates?: FioThreadState[];
}

export interface FlushStats {
  issued: number;
  failed: number;
  latency: LatencyHistogram;
}

export interface RunProgress {
  elapsedNs: number;
  /** Total planned run time (ns), when every job is time-based; else undefined. */
  totalNs?: number;
  bytes: number;
  ios: number;
  errors: number;
  /** Bytes and I/Os over the last interval. */
  intervalBytes: number;
  intervalIos: number;
  intervalNs: number;
}

export interface RunJobsOptions {
  device: BlockDevice;
  jobs: readonly JobSpec[];
  clock?: Clock;
  /** Run time (ns) of time-based jobs that set none (fio would run until the size is done). */
  defaultRuntimeNs?: number;
  /** Judges reads and writes of verifying jobs; its unit size must divide every block size. */
  oracle?: Oracle;
  /** Called between I/Os with the current time: fault growth and the like. */
  onTick?: (nowNs: number) => void;
  onProgress?: (p: RunProgress) => void;
  progressIntervalNs?: number;
  /** Overrides each job's seed (a scenario's seed), mixed with the job index. */
  seed?: number;
  /** Called after every flush a job makes (fsync=N, fdatasync=N), once the oracle knows its result: saving the verify state. */
  onFlush?: (status: number) => void;
  /** Aborted: every job ends now, as if its time were up, and the result holds what was done (a signal stopped the run). */
  stop?: AbortSignal;
  /** verify_state_load: per job, per clone, the state a verify_only pass stops at. */
  loadedStates?: ReadonlyArray<ReadonlyArray<FioThreadState> | undefined>;
  /**
   * 'auto' (the default): a job that only reads, from a device that plans its
   * reads, reads in native batches (read-batch.ts) when the native library is
   * built; 'js': every I/O is a call of the device.
   */
  io?: 'auto' | 'js';
}

export interface RunResult {
  startedAt: Date;
  elapsedNs: number;
  jobs: JobRunResult[];
  /** Resources the process used during the run. */
  cpu: { userMs: number; systemMs: number; ctx: number; majf: number; minf: number };
  /** Reads made in native batches (read-batch.ts) rather than by calls of the device. */
  batchedReads: number;
}

interface Clone {
  gen: IoGenerator;
  req: IoRequest;
  buf: Uint8Array;
  /** buf's first `view.length` bytes: reused while the block size stays the same. */
  view: Uint8Array;
  done: boolean;
  /** Writes since this clone's last flush. */
  writesSinceFlush: number;
  /** verify_state_save: the writes this clone issued and completed. */
  writeLog?: FioWriteLog;
  /** verify_only with verify_state_load: where the replay stops, and the verify reads made so far. */
  stopState?: FioThreadState;
  verifyReads: number;
  /** This clone's reads in native batches, when it only reads from a device that plans them. */
  reads?: ReadBatch;
}

interface JobState {
  spec: JobSpec;
  index: number;
  clones: Clone[];
  dirs: [DirStats, DirStats, DirStats];
  series: IoSeries;
  startNs: number;
  measureFromNs: number;
  endNs: number;
  error: number;
  done: boolean;
  verifies: boolean;
  tally?: Record<ReadClass, number>;
  /** Some direction has a rate or rate_iops limit. */
  limited: boolean;
  /** Bytes and I/Os issued per direction, for rate limits. */
  rateBytes: [number, number, number];
  rateIos: [number, number, number];
  finishedNs: number;
  /** Writes between flushes (0: none). */
  flushEvery: number;
  flushes: FlushStats;
}

/** fio's thread index of a job's clone: every clone of the jobs before it counts. */
export function threadIndex(jobs: readonly JobSpec[], job: number, clone: number): number {
  return jobs.slice(0, job).reduce((a, j) => a + j.numjobs, 0) + clone;
}

export function runJobs(opts: RunJobsOptions): RunResult {
  const aligned: AlignedBuffer[] = [];
  try {
    const r = runWith(opts, aligned, Infinity).next();
    if (!r.done) throw new Error('runJobs: the run paused without a time slice');
    return r.value;
  } finally {
    for (const a of aligned) a.free(); // also when a device or a job spec throws midway
  }
}

/**
 * runJobs on this thread, giving the event loop a turn every `sliceMs` of
 * run time: signal handlers and timers run meanwhile (and can abort
 * `opts.stop`). The I/O is the same as runJobs'.
 */
export async function runJobsYielding(opts: RunJobsOptions, sliceMs = 20): Promise<RunResult> {
  const aligned: AlignedBuffer[] = [];
  try {
    const steps = runWith(opts, aligned, sliceMs * 1e6);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    for (const a of aligned) a.free();
  }
}

/** runJobs' body, pausing (yield) every `sliceNs` of clock time; the job buffers it allocates go into `aligned` for the caller to free. */
function* runWith(opts: RunJobsOptions, aligned: AlignedBuffer[], sliceNs: number): Generator<void, RunResult, void> {
  const clock = opts.clock ?? realClock;
  const device = opts.device;
  const deviceBytes = device.sectors * SECTOR_SIZE;
  const startedAt = new Date();
  const usage0 = process.resourceUsage();
  const t0 = clock.nowNs();
  const defaultRuntime = opts.defaultRuntimeNs ?? 0;
  const oracle = opts.oracle;

  const states: JobState[] = opts.jobs.map((spec, index) => {
    const clones: Clone[] = [];
    const verifies = spec.verify !== 'none' && oracle !== undefined;
    const limited = (['read', 'write', 'trim'] as const).some((d) => spec.rate[d] > 0 || spec.rateIops[d] > 0);
    const batches =
      opts.io !== 'js' && clock === realClock && spec.directions.length === 1 && spec.directions[0] === 'read' && !verifies && !spec.verifyOnly && !limited;
    const maxBs = Math.max(...spec.directions.map((d) => spec.blockSizes[d].max));
    for (let c = 0; c < spec.numjobs; c++) {
      const seed = opts.seed === undefined ? undefined : (opts.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
      const gen = new IoGenerator(spec, { deviceBytes, clone: c, seed, alignBytes: device.logicalBlockSize });
      // Page-aligned, as fio's: O_DIRECT needs it, and the kernel's copies to and from a buffer
      // misaligned by 16 bytes (where malloc puts Node's) run 2-5x slower on these machines.
      const a = allocAligned(maxBs);
      aligned.push(a);
      const buf = a.buf;
      for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + c * 7 + index) & 0xff; // fio-like: filled once
      const saves = oracle !== undefined && spec.verifyStateSave && isFioFormat(spec.verify) && spec.directions.includes('write') && !spec.verifyOnly;
      clones.push({
        gen,
        req: newIoRequest(),
        buf,
        view: buf,
        done: false,
        writesSinceFlush: 0,
        writeLog: saves ? new FioWriteLog(spec.iodepth) : undefined,
        stopState: opts.loadedStates?.[index]?.[c],
        verifyReads: 0,
        reads: batches ? ReadBatch.of(device, buf) : undefined,
      });
    }
    const runtimeNs = spec.runtimeUs > 0 ? spec.runtimeUs * 1e3 : spec.timeBased ? defaultRuntime : 0;
    if (verifies) {
      for (const d of spec.directions) {
        const bs = spec.blockSizes[d];
        if (bs.min % oracle.unitSize !== 0) {
          throw new WorkloadSpecError({
            source: spec.sources.bs ?? spec.source,
            option: 'bs',
            message: `verify needs block sizes that are multiples of ${oracle.unitSize} bytes, got ${bs.min}`,
          });
        }
      }
    }
    return {
      spec,
      index,
      clones,
      dirs: [newDirStats(), newDirStats(), newDirStats()],
      series: new IoSeries(t0 + spec.rampTimeUs * 1e3),
      startNs: t0,
      measureFromNs: t0 + spec.rampTimeUs * 1e3,
      endNs: runtimeNs > 0 ? t0 + spec.rampTimeUs * 1e3 + runtimeNs : Infinity,
      error: 0,
      done: false,
      verifies,
      tally: verifies ? Oracle.emptyTally() : undefined,
      limited,
      rateBytes: [0, 0, 0],
      rateIos: [0, 0, 0],
      finishedNs: t0,
      flushEvery: flushInterval(spec),
      flushes: { issued: 0, failed: 0, latency: new LatencyHistogram() },
    };
  });

  const allTimed = states.every((s) => s.endNs !== Infinity);
  const totalNs = allTimed ? Math.max(...states.map((s) => s.endNs)) - t0 : undefined;
  const progressEvery = opts.progressIntervalNs ?? 1e9;
  let nextProgress = t0 + progressEvery;
  let lastProgress = t0;
  const totals = new Float64Array(3);
  const completions = new Completions(totals, 0, oracle);
  let lastBytes = 0;
  let lastIos = 0;
  let active = states.length;
  let batchedReads = 0;

  const finish = (s: JobState, now: number): void => {
    if (s.done) return;
    s.done = true;
    s.finishedNs = now;
    active--;
  };

  /** The earliest time a rate-limited job may issue direction d; 0 when it may now. */
  const rateWait = (s: JobState, d: 0 | 1 | 2, len: number, now: number): number => {
    const dir = (['read', 'write', 'trim'] as const)[d];
    const bps = s.spec.rate[dir];
    const iops = s.spec.rateIops[dir];
    let at = 0;
    if (bps > 0) at = Math.max(at, s.startNs + ((s.rateBytes[d] + len) / bps) * 1e9);
    if (iops > 0) at = Math.max(at, s.startNs + ((s.rateIos[d] + 1) / iops) * 1e9);
    return at > now ? at : 0;
  };

  const stop = opts.stop;
  let now = t0;
  let pausedAt = t0;
  while (active > 0) {
    if (stop?.aborted) {
      for (const s of states) finish(s, now);
      break;
    }
    if (now - pausedAt >= sliceNs) {
      yield;
      now = clock.nowNs();
      pausedAt = now;
      continue;
    }
    let issued = 0;
    let earliest = Infinity;
    for (const s of states) {
      if (s.done) continue;
      if (now >= s.endNs) {
        finish(s, now);
        continue;
      }
      for (const c of s.clones) {
        if (c.done || s.done) continue;
        const req = c.req;
        const reads = c.reads;
        if (reads !== undefined) {
          const more = reads.run(c.gen, req, s.endNs);
          for (let i = 0; i < reads.count; i++) {
            const len = reads.lengthBytes[i];
            s.rateBytes[0] += len;
            s.rateIos[0]++;
            const stopWith = completions.account(s, 0, reads.offsetBytes[i], len, reads.status[i], reads.startNs[i], reads.endNs[i], c.buf);
            if (stopWith !== 0) {
              s.error = stopWith;
              finish(s, reads.endNs[i]);
              break;
            }
          }
          batchedReads += reads.native;
          issued++;
          now = reads.lastNs;
          if (!more) {
            c.done = true;
            if (s.clones.every((x) => x.done)) finish(s, now);
          }
          continue;
        }
        if (req.lengthBytes === 0 && !c.gen.next(req)) {
          c.done = true;
          if (s.clones.every((x) => x.done)) finish(s, now);
          continue;
        }
        let d = req.code as 0 | 1 | 2;
        if (s.limited) {
          const wait = rateWait(s, d, req.lengthBytes, now);
          if (wait > 0) {
            earliest = Math.min(earliest, wait);
            continue; // keep this request for when the rate allows it
          }
        }
        if (s.spec.verifyOnly) {
          // fio's dry run: the job's writes are replayed as verify reads; its reads and trims are not made
          if (d !== 1 || (c.stopState !== undefined && fioStateStops(c.stopState, c.verifyReads, req.offsetBytes))) {
            req.lengthBytes = 0;
            if (d === 1) {
              c.done = true;
              if (s.clones.every((x) => x.done)) finish(s, now);
            }
            continue;
          }
          d = 0;
          c.verifyReads++;
        }
        issued++;
        const len = req.lengthBytes;
        const sector = req.offsetBytes / SECTOR_SIZE;
        if (c.view.length !== len) c.view = c.buf.subarray(0, len);
        const buf = c.view;
        if (d === 1 && s.verifies) oracle!.prepareWrite(req.offsetBytes / oracle!.unitSize, buf);
        if (d === 1 && c.writeLog) c.writeLog.issued++;
        const ts = clock.nowNs();
        const rc = d === 0 ? device.read(sector, buf) : d === 1 ? device.write(sector, buf) : device.discard(sector, len / SECTOR_SIZE);
        now = clock.nowNs();
        req.lengthBytes = 0;
        s.rateBytes[d] += len;
        s.rateIos[d]++;
        const stopWith = completions.account(s, d, req.offsetBytes, len, rc, ts, now, buf);
        if (d === 1 && rc === OK && c.writeLog) c.writeLog.complete(req.offsetBytes);
        if (stopWith !== 0) {
          s.error = stopWith;
          finish(s, now);
        }
        if (d === 1 && s.flushEvery > 0 && !s.done && ++c.writesSinceFlush >= s.flushEvery) {
          c.writesSinceFlush = 0;
          const f = s.flushes;
          const fs0 = clock.nowNs();
          const frc = device.flush();
          now = clock.nowNs();
          f.issued++;
          if (now >= s.measureFromNs) f.latency.record(Math.max(1, Math.round(now - fs0)));
          if (oracle?.tracksDurability) oracle.flushDone(frc);
          if (opts.onFlush) opts.onFlush(frc);
          if (frc !== OK) {
            f.failed++;
            totals[TOTAL_ERRORS]++;
            if (!continuesAfter(s.spec, 'write')) {
              s.error = frc;
              finish(s, now);
            }
          }
        }
      }
    }
    if (opts.onTick) opts.onTick(now);
    if (issued === 0) {
      if (active > 0 && earliest !== Infinity) clock.sleepNs(Math.min(earliest, ...states.filter((s) => !s.done).map((s) => s.endNs)) - now);
      now = clock.nowNs();
    } // else: `now` is the last completion's time
    if (opts.onProgress && now >= nextProgress) {
      const totBytes = totals[TOTAL_BYTES];
      const totIos = totals[TOTAL_IOS];
      opts.onProgress({
        elapsedNs: now - t0,
        totalNs,
        bytes: totBytes,
        ios: totIos,
        errors: totals[TOTAL_ERRORS],
        intervalBytes: totBytes - lastBytes,
        intervalIos: totIos - lastIos,
        intervalNs: now - lastProgress,
      });
      lastBytes = totBytes;
      lastIos = totIos;
      lastProgress = now;
      nextProgress = now + progressEvery;
    }
  }
  const end = clock.nowNs();
  const usage1 = process.resourceUsage();
  return {
    startedAt,
    elapsedNs: end - t0,
    cpu: resourceDelta(usage0, usage1),
    batchedReads,
    jobs: states.map((s) => ({
      spec: s.spec,
      error: s.error,
      runtimeNs: Math.max(0, Math.min(s.finishedNs, s.endNs) - s.measureFromNs),
      read: s.dirs[0],
      write: s.dirs[1],
      trim: s.dirs[2],
      series: s.series,
      verify: s.tally,
      flushes: s.flushEvery > 0 ? s.flushes : undefined,
      fioStates: s.clones[0]?.writeLog ? s.clones.map((c, k) => c.writeLog!.state(s.spec.name, threadIndex(opts.jobs, s.index, k))) : undefined,
    })),
  };
}

/**
 * The flush before a run: a writeback error the kernel recorded before this
 * run (and nobody has seen) is reported to the first fsync of a newly opened
 * file, so it is taken here, where it is not this run's. Returns the status.
 */
export function flushBeforeRun(device: BlockDevice): number {
  return device.flush();
}

/**
 * The flush at the end of a run: on a buffered file or device, writes were
 * acknowledged by the page cache, and this is where the kernel reports a
 * writeback that failed since the last flush (EIO, once). The oracle counts
 * the units written since its last good flush as lost. Returns the status.
 */
export function flushAfterRun(device: BlockDevice, oracle: Oracle | undefined): number {
  const rc = device.flush();
  if (oracle?.tracksDurability) oracle.flushDone(rc);
  return rc;
}

/** The flushes of a run: before it, by its jobs (fsync=N), and at its end. Statuses by errno name ('OK', 'EIO'). */
export interface RunDurability {
  /** Not OK: a writeback error from before the run was pending on the target (taken there, not counted). */
  priorFlush: string;
  jobFlushes: { issued: number; failed: number };
  finalFlush: string;
}

export function runDurability(run: RunResult, priorFlush: number, finalFlush: number): RunDurability {
  let issued = 0;
  let failed = 0;
  for (const j of run.jobs) {
    issued += j.flushes?.issued ?? 0;
    failed += j.flushes?.failed ?? 0;
  }
  return { priorFlush: errnoName(priorFlush), jobFlushes: { issued, failed }, finalFlush: errnoName(finalFlush) };
}
