/**
 * One per-CPU queue of the engine: a worker thread pinned to its CPU. This
 * file is the thread's entry and its job driver: it runs the job clones
 * assigned to the queue, keeps up to iodepth requests of each in flight with
 * data in its NUMA node's buffer pool, and accounts the completions of its
 * own requests (workload/completion.ts). Running requests on the device, its
 * own and ones stolen from backed-up queues, is the executor's (executor.ts).
 * Requests submitted by the main thread (the NBD server) flow through the
 * same rings and complete to the main thread's ring.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { type BlockDevice, SECTOR_SIZE } from '../block/device.js';
import { type DirIndex, IoSeries } from '../stats/series.js';
import { adoptClockOrigin, realClock } from '../util/clock.js';
import { Completions, type DirStats, newDirStats, TOTAL_BYTES, TOTAL_ERRORS, TOTAL_IOS } from '../workload/completion.js';
import { IoGenerator, newIoRequest, OP_READ, OP_TRIM, OP_WRITE, type IoRequest } from '../workload/generator.js';
import type { JobSpec } from '../workload/job.js';
import { Oracle, type OracleReport, type OracleShared, type PriorContent, type ReadClass } from '../workload/oracle.js';
import type { KnownBadRanges } from '../faults/known-bad.js';
import type { VerifyAlgorithm } from '../workload/verify-pattern.js';
import { makeUnitPattern } from '../workload/unit-pattern.js';
import { BufferPools, type BufferPoolsShared } from './buffer-pool.js';
import type { IoBackendKind } from './io-backend.js';
import { type EngineDeviceSpec, openEngineDevice } from '../stack/engine-device.js';
import { Executor, type OwnCompletions } from './executor.js';
import { pinThread } from './numa.js';
import * as P from './ring-records.js';
import { Ring, type RingShared } from './ring.js';
import { SlowPathClient, type SlowPathShared } from './slow-path.js';

export interface WorkerInit {
  queue: number;
  queues: number;
  cpu: number;
  node: number;
  pin: boolean;
  control: SharedArrayBuffer;
  progress: SharedArrayBuffer;
  sqs: RingShared[];
  cqs: RingShared[];
  mainCq: RingShared;
  pools: BufferPoolsShared;
  device: EngineDeviceSpec;
  clockOrigin: bigint;
  port: MessagePort;
  /** How reads and writes of a plain file reach the kernel: 'js' (synchronous), 'native' or 'auto' (io_uring when built). */
  io: IoBackendKind;
  ioDepth: number;
  slowPath: SlowPathShared;
}

/** A job clone this queue runs. */
export interface CloneAssignment {
  job: number;
  clone: number;
}

export interface OracleInit {
  shared: OracleShared;
  units: number;
  unitSize: number;
  runId: number;
  seed: number;
  algorithm: VerifyAlgorithm;
  /** verify_pattern's bytes (fio's header kinds). */
  verifyPattern?: Uint8Array;
  /** Sectors known bad beyond what the device's own layers know (a kernel stack's list). */
  knownBad?: KnownBadRanges;
  priorContent: PriorContent;
}

export interface RunMessage {
  type: 'run';
  runId: number;
  jobs: JobSpec[];
  clones: CloneAssignment[];
  /** Per job: when it stops (ns on the shared clock; Infinity for size-based) and when measurement starts. */
  endNs: number[];
  measureFromNs: number[];
  seeds: Array<number | undefined>;
  deviceBytes: number;
  oracle?: OracleInit;
}

export interface DirResult {
  ioBytes: number;
  totalIos: number;
  errors: number;
  clat: Uint8Array;
}

export interface JobPart {
  job: number;
  error: number;
  finishedNs: number;
  dirs: [DirResult, DirResult, DirResult];
  series: ReturnType<IoSeries['toJSON']>;
  verify?: Record<ReadClass, number>;
}

export interface RunDoneMessage {
  type: 'run-done';
  runId: number;
  queue: number;
  parts: JobPart[];
  oracle?: OracleReport;
}

interface JobLocal {
  spec: JobSpec;
  index: number;
  endNs: number;
  measureFromNs: number;
  dirs: DirStats[];
  series: IoSeries;
  error: number;
  finishedNs: number;
  tally?: Record<ReadClass, number>;
  stopped: boolean;
}

interface CloneLocal {
  job: JobLocal;
  gen: IoGenerator;
  req: IoRequest;
  held: boolean; // req holds a request not yet submitted
  inflight: number;
  depth: number;
  done: boolean;
}

// the generator's op codes are the protocol's: a request's code goes on the ring as it is
if (OP_READ !== P.OP_READ || OP_WRITE !== P.OP_WRITE || OP_TRIM !== P.OP_TRIM) throw new Error("engine protocol op codes differ from the generator's");
// a queue's first progress counters are its completion totals
if (P.QS_BYTES !== TOTAL_BYTES || P.QS_IOS !== TOTAL_IOS || P.QS_ERRORS !== TOTAL_ERRORS)
  throw new Error('engine progress counters differ from the completion totals');

class QueueWorker implements OwnCompletions {
  private readonly q: number;
  private readonly control: Int32Array;
  private readonly progress: Float64Array;
  /** This queue's completion ring: its own requests that other queues ran. */
  private readonly cq: Ring;
  private readonly pools: BufferPools;
  /**
   * Slots this queue holds between its requests during a run, most recently
   * used on top: a queue at iodepth 32 cycles through the same 32 buffers
   * (warm in its cache, as fio reuses its buffers), and skips the shared
   * pool's atomics on all but the first. Given back when the run ends.
   */
  private readonly slotCache: number[] = [];
  private readonly queueCount: number;
  private readonly device: BlockDevice;
  private readonly isKnownBad: ((sector: number, count: number) => boolean) | undefined;
  private readonly node: number;
  private readonly port: MessagePort;
  private readonly exec: Executor;
  private readonly rq = new Float64Array(P.RQ_FIELDS);
  private readonly reapCq = new Float64Array(P.CQ_FIELDS);
  private readonly pBase: number;

  // the running job set
  private run: RunMessage | undefined;
  private jobs: JobLocal[] = [];
  private clones: CloneLocal[] = [];
  private oracle: Oracle | undefined;
  private completions: Completions | undefined;
  // in-flight table for this queue's own requests, indexed by tag
  private tagClone: Array<CloneLocal | undefined> = [];
  private tagOp = new Uint8Array(0);
  private tagSector = new Float64Array(0);
  private tagBytes = new Float64Array(0);
  private tagSlot = new Int32Array(0);
  private tagSubmit = new Float64Array(0);
  private freeTags: number[] = [];
  private inflight = 0;

  constructor(init: WorkerInit) {
    adoptClockOrigin(init.clockOrigin);
    this.q = init.queue;
    this.queueCount = init.queues;
    this.node = init.node;
    this.port = init.port;
    this.control = new Int32Array(init.control);
    this.progress = new Float64Array(init.progress);
    this.pBase = init.queue * P.QS_FIELDS;
    const cqs = init.cqs.map((s) => new Ring(s));
    this.cq = cqs[init.queue];
    this.pools = BufferPools.attach(init.pools);
    const slow = new SlowPathClient(init.slowPath, init.queue);
    const opened = openEngineDevice(init.device, {
      row: init.queue + 1,
      slow: (op, args, data, readBack) => slow.call(op, args, data, readBack),
    });
    this.device = opened.device;
    this.isKnownBad = opened.isKnownBad;
    if (init.pin) pinThread(init.cpu);
    this.exec = new Executor(
      {
        queue: init.queue,
        control: this.control,
        progress: this.progress,
        sqs: init.sqs.map((s) => new Ring(s)),
        cqs,
        mainCq: new Ring(init.mainCq),
        pools: this.pools,
        device: this.device,
        io: init.io,
        ioDepth: init.ioDepth,
      },
      this,
    );
  }

  /** What this queue uses to move bytes, for the engine's status. */
  get ioMechanism(): string {
    return this.exec.ioMechanism;
  }

  loop(): void {
    const control = this.control;
    const myWake = P.wakeIndex(this.q);
    const mySleep = P.sleepIndex(this.q, this.queueCount);
    let spins = 0;
    for (;;) {
      const state = Atomics.load(control, P.CT_STATE);
      if (state === P.STATE_CLOSING) break;
      if ((spins & 255) === 0 || this.run === undefined) this.takeMessages();
      let did = false;
      if (this.run) {
        did = this.reap() || did;
        did = this.refill() || did;
      }
      if (this.exec.execute()) did = true;
      if (this.run && this.runFinished()) this.finishRun();
      if (did) {
        spins++;
        continue;
      }
      // nothing to do: sleep until someone pushes work or a completion for us (or briefly, to look for work to steal);
      // the flag goes up before the last look, so a waker that missed it bumped the word first and the wait returns at once
      Atomics.store(control, mySleep, 1);
      const seen = Atomics.load(control, myWake);
      if (this.exec.waiting === 0 && this.cq.length === 0) Atomics.wait(control, myWake, seen, this.run ? 1 : 20);
      Atomics.store(control, mySleep, 0);
      spins = 0;
    }
    this.exec.close();
    this.device.close();
    this.pools.close();
  }

  private takeMessages(): void {
    for (;;) {
      const m = receiveMessageOnPort(this.port);
      if (!m) return;
      const msg = m.message as RunMessage | { type: 'close' };
      if (msg.type === 'run') this.startRun(msg);
    }
  }

  private startRun(msg: RunMessage): void {
    this.run = msg;
    this.jobs = msg.jobs.map((spec, index) => ({
      spec,
      index,
      endNs: msg.endNs[index],
      measureFromNs: msg.measureFromNs[index],
      dirs: [newDirStats(), newDirStats(), newDirStats()],
      series: new IoSeries(msg.measureFromNs[index]),
      error: 0,
      finishedNs: 0,
      tally: msg.oracle && spec.verify !== 'none' ? Oracle.emptyTally() : undefined,
      stopped: false,
    }));
    this.clones = msg.clones.map((a) => {
      const job = this.jobs[a.job];
      return {
        job,
        gen: new IoGenerator(job.spec, { deviceBytes: msg.deviceBytes, clone: a.clone, seed: msg.seeds[a.job], alignBytes: this.device.logicalBlockSize }),
        req: newIoRequest(),
        held: false,
        inflight: 0,
        depth: job.spec.iodepth,
        done: false,
      };
    });
    if (msg.oracle) {
      const o = msg.oracle;
      this.oracle = new Oracle({
        pattern: makeUnitPattern({ unitSize: o.unitSize, runId: o.runId, seed: o.seed, algorithm: o.algorithm, verifyPattern: o.verifyPattern }),
        units: o.units,
        shared: o.shared,
        isKnownBad: this.isKnownBad,
        knownBad: o.knownBad,
        priorContent: o.priorContent,
      });
    } else this.oracle = undefined;
    this.completions = new Completions(this.progress, this.pBase, this.oracle);
    const tags = this.clones.reduce((a, c) => a + c.depth, 0);
    this.tagClone = new Array(tags).fill(undefined);
    this.tagOp = new Uint8Array(tags);
    this.tagSector = new Float64Array(tags);
    this.tagBytes = new Float64Array(tags);
    this.tagSlot = new Int32Array(tags);
    this.tagSubmit = new Float64Array(tags);
    this.freeTags = Array.from({ length: tags }, (_, i) => tags - 1 - i);
    this.inflight = 0;
    if (this.clones.length === 0) this.finishRun();
  }

  /** Keeps each clone's depth of requests submitted. */
  private refill(): boolean {
    let any = false;
    const now = realClock.nowNs(); // one reading per round (a clock read costs as much as a ring push)
    const stopping = Atomics.load(this.control, P.CT_STOP_RUN) === this.run!.runId;
    for (const c of this.clones) {
      const job = c.job;
      if (c.done) continue;
      if (job.stopped || stopping || now >= job.endNs) {
        c.done = true;
        continue;
      }
      while (c.inflight < c.depth) {
        if (!c.held) {
          if (!c.gen.next(c.req)) {
            c.done = true;
            break;
          }
          c.held = true;
        }
        if (!this.submit(c, now)) break;
        c.held = false;
        any = true;
      }
    }
    return any;
  }

  /** `now`: the refill round's clock reading. */
  private submit(c: CloneLocal, now: number): boolean {
    const req = c.req;
    const op = req.code;
    const oracle = c.job.tally ? this.oracle : undefined;
    let unit0 = 0;
    let units = 0;
    if (oracle) {
      unit0 = req.offsetBytes / oracle.unitSize;
      units = req.lengthBytes / oracle.unitSize;
      if (!oracle.tryClaim(unit0, units)) return false; // another request in flight covers it: wait for it
    }
    const slot = this.slotCache.length > 0 ? this.slotCache.pop()! : this.pools.acquire(this.node);
    if (slot < 0) {
      if (oracle) oracle.releaseClaim(unit0, units);
      return false;
    }
    const tag = this.freeTags.pop()!;
    if (op === P.OP_WRITE && oracle) oracle.prepareWrite(unit0, this.pools.view(slot).subarray(0, req.lengthBytes));
    this.tagClone[tag] = c;
    this.tagOp[tag] = op;
    this.tagSector[tag] = req.offsetBytes / SECTOR_SIZE;
    this.tagBytes[tag] = req.lengthBytes;
    this.tagSlot[tag] = slot;
    this.tagSubmit[tag] = now;
    const rq = this.rq;
    rq[P.RQ_TAG] = tag;
    rq[P.RQ_OWNER] = this.q;
    rq[P.RQ_OP] = op;
    rq[P.RQ_FLAGS] = 0;
    rq[P.RQ_SECTOR] = this.tagSector[tag];
    rq[P.RQ_BYTES] = req.lengthBytes;
    rq[P.RQ_SLOT] = slot;
    rq[P.RQ_SUBMIT_NS] = now;
    c.inflight++;
    this.inflight++;
    if (this.exec.submit(rq)) return true;
    c.inflight--;
    this.inflight--;
    this.tagClone[tag] = undefined;
    this.freeTags.push(tag);
    this.slotCache.push(slot);
    if (oracle) oracle.releaseClaim(unit0, units);
    return false;
  }

  /** Accounts the completions of this queue's own requests that other queues ran. */
  private reap(): boolean {
    const ring = this.cq;
    const cq = this.reapCq;
    let any = false;
    while (ring.pop(cq)) {
      any = true;
      this.account(cq);
    }
    return any;
  }

  /** Accounts one completion of this queue's own request (completion.ts), then gives its units, slot and tag back. */
  account(cq: Float64Array): void {
    const tag = cq[P.CQ_TAG];
    const rc = cq[P.CQ_STATUS];
    const done = cq[P.CQ_DONE_NS];
    const c = this.tagClone[tag]!;
    const job = c.job;
    const bytes = this.tagBytes[tag];
    const slot = this.tagSlot[tag];
    const offsetBytes = this.tagSector[tag] * SECTOR_SIZE;
    const stopWith = this.completions!.account(job, this.tagOp[tag] as DirIndex, offsetBytes, bytes, rc, this.tagSubmit[tag], done, this.pools.view(slot));
    const oracle = job.tally ? this.oracle : undefined;
    if (oracle) oracle.releaseClaim(offsetBytes / oracle.unitSize, bytes / oracle.unitSize);
    this.slotCache.push(slot);
    this.tagClone[tag] = undefined;
    this.freeTags.push(tag);
    c.inflight--;
    this.inflight--;
    if (stopWith !== 0 && !job.stopped) this.stopJob(job, stopWith, done);
  }

  private stopJob(job: JobLocal, error: number, now: number): void {
    job.error = error;
    job.stopped = true;
    job.finishedNs = now;
  }

  private runFinished(): boolean {
    return this.inflight === 0 && this.clones.every((c) => c.done);
  }

  private finishRun(): void {
    for (const slot of this.slotCache) this.pools.release(slot);
    this.slotCache.length = 0;
    const run = this.run!;
    const now = realClock.nowNs();
    const parts: JobPart[] = [];
    const local = new Set(this.clones.map((c) => c.job.index));
    for (const job of this.jobs) {
      if (!local.has(job.index)) continue;
      parts.push({
        job: job.index,
        error: job.error,
        finishedNs: job.stopped ? job.finishedNs : Math.min(now, job.endNs),
        dirs: job.dirs.map((d) => ({ ioBytes: d.ioBytes, totalIos: d.totalIos, errors: d.errors, clat: d.clat.encode() })) as [DirResult, DirResult, DirResult],
        series: job.series.toJSON(),
        verify: job.tally,
      });
    }
    const msg: RunDoneMessage = { type: 'run-done', runId: run.runId, queue: this.q, parts, oracle: this.oracle?.report() };
    this.port.postMessage(msg);
    this.run = undefined;
    this.jobs = [];
    this.clones = [];
    this.oracle = undefined;
    this.completions = undefined;
  }
}

const init = workerData as WorkerInit;
try {
  const w = new QueueWorker(init);
  parentPort!.postMessage({ type: 'ready', queue: init.queue, io: w.ioMechanism });
  w.loop();
} catch (err) {
  parentPort!.postMessage({ type: 'failed', queue: init.queue, message: (err as Error).message });
}
