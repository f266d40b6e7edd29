/**
 * One per-CPU queue of the engine: a worker thread pinned to its CPU that
 *   - runs the job clones assigned to it: keeps up to iodepth requests of each
 *     in its own submission ring, with data in its NUMA node's buffer pool;
 *   - executes requests synchronously: its own first, and when its ring is
 *     empty, requests from a queue that has backed up (work stealing);
 *   - pushes each completion to the ring of the queue that submitted it;
 *   - reaps its own completions: latency, bandwidth, the oracle's verdict.
 * Requests submitted by the main thread (the NBD server) flow through the
 * same rings and complete to the main thread's ring.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { EINVAL, OK, SECTOR_SIZE, type BlockDevice } from '../block/device.js';
import { LatencyHistogram } from '../stats/latency.js';
import { IoSeries } from '../stats/series.js';
import { adoptClockOrigin, realClock } from '../util/clock.js';
import { IoGenerator, newIoRequest, OP_READ, OP_TRIM, OP_WRITE, type IoRequest } from '../workload/generator.js';
import type { JobSpec } from '../workload/job.js';
import { Oracle, type OracleReport, type OracleShared, type PriorContent, type ReadClass } from '../workload/oracle.js';
import type { KnownBadRanges } from '../faults/known-bad.js';
import { continuesAfter, EILSEQ } from '../workload/continue-on-error.js';
import type { VerifyAlgorithm } from '../workload/verify-pattern.js';
import { makeUnitPattern } from '../workload/unit-pattern.js';
import { BufferPools, type BufferPoolsShared } from './buffer-pool.js';
import { createIoBackend, IO_READ, IO_WRITE, type IoBackend, type IoBackendKind } from './io-backend.js';
import { FileDevice } from '../block/file-device.js';
import { type EngineDeviceSpec, openEngineDevice } from '../stack/engine-device.js';
import { pinThread } from './numa.js';
import * as P from './ring-records.js';
import { Ring, type RingShared } from './ring.js';
import { SlowPathClient, type SlowPathShared } from './slow-path.js';
import { SLOW_READ_ERROR } from '../remap/safe-target.js';

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
  dirs: Array<{ ioBytes: number; totalIos: number; errors: number; clat: LatencyHistogram }>;
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

class QueueWorker {
  private readonly q: number;
  private readonly control: Int32Array;
  private readonly progress: Float64Array;
  private readonly sqs: Ring[];
  private readonly cqs: Ring[];
  private readonly mainCq: Ring;
  private readonly pools: BufferPools;
  private readonly device: BlockDevice;
  private readonly isKnownBad: ((sector: number, count: number) => boolean) | undefined;
  private readonly node: number;
  private readonly port: MessagePort;
  private readonly rq = new Float64Array(P.RQ_FIELDS);
  private readonly cq = new Float64Array(P.CQ_FIELDS);
  /** reap's record (complete's `cq` may be in use further up the stack). */
  private readonly reapCq = new Float64Array(P.CQ_FIELDS);
  private readonly pBase: number;
  /** io_uring (or batch) for plain files: several requests in flight at once. */
  private readonly io: IoBackend | undefined;
  private readonly fd: number;
  private readonly ioPending: Float64Array;
  private readonly ioFrom: Int32Array;
  private readonly ioFree: number[] = [];
  private readonly ioTags: Uint32Array;
  private readonly ioResults: Int32Array;

  // the running job set
  private run: RunMessage | undefined;
  private jobs: JobLocal[] = [];
  private clones: CloneLocal[] = [];
  private oracle: Oracle | undefined;
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
    this.node = init.node;
    this.port = init.port;
    this.control = new Int32Array(init.control);
    this.progress = new Float64Array(init.progress);
    this.pBase = init.queue * P.QS_FIELDS;
    this.sqs = init.sqs.map((s) => new Ring(s));
    this.cqs = init.cqs.map((s) => new Ring(s));
    this.mainCq = new Ring(init.mainCq);
    this.pools = BufferPools.attach(init.pools);
    const slow = new SlowPathClient(init.slowPath, init.queue);
    const opened = openEngineDevice(init.device, {
      row: init.queue + 1,
      slow: (op, args, data) => slow.call(op, args, data, op === SLOW_READ_ERROR),
    });
    this.device = opened.device;
    this.isKnownBad = opened.isKnownBad;
    if (init.pin) pinThread(init.cpu);
    const plainFile = this.device instanceof FileDevice;
    this.io = plainFile && init.io !== 'js' ? createIoBackend(init.io, { depth: init.ioDepth }) : undefined;
    if (this.io && this.io.kind === 'js') {
      this.io.close();
      this.io = undefined;
    }
    this.fd = plainFile ? (this.device as FileDevice).fileDescriptor : -1;
    const depth = this.io?.depth ?? 0;
    this.ioPending = new Float64Array(depth * P.RQ_FIELDS);
    this.ioFrom = new Int32Array(depth);
    for (let t = depth - 1; t >= 0; t--) this.ioFree.push(t);
    this.ioTags = new Uint32Array(depth);
    this.ioResults = new Int32Array(depth);
  }

  /** What this queue uses to move bytes, for the engine's status. */
  get ioMechanism(): string {
    return this.io ? `${this.io.kind}:${this.io.mechanism}` : 'sync';
  }

  loop(): void {
    const control = this.control;
    const myWake = P.wakeIndex(this.q);
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
      if (this.io ? this.executeBatch() : this.executeOne()) did = true;
      if (this.run && this.runFinished()) this.finishRun();
      if (did) {
        spins++;
        continue;
      }
      const seen = Atomics.load(control, myWake);
      // nothing to do: sleep until someone pushes work or a completion for us (or briefly, to look for work to steal)
      if (this.sqs[this.q].length === 0 && this.cqs[this.q].length === 0) Atomics.wait(control, myWake, seen, this.run ? 1 : 20);
      spins = 0;
    }
    this.io?.close();
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
      dirs: [0, 1, 2].map(() => ({ ioBytes: 0, totalIos: 0, errors: 0, clat: new LatencyHistogram() })),
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
    const slot = this.pools.acquire(this.node);
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
    const ring = this.sqs[this.q];
    // blk-mq's direct issue: nothing waits in this queue and its io_uring has room, so the request
    // goes straight to it; it passes through the ring (where idle queues can steal it) when this
    // queue backs up. A synchronous device always takes the ring: executing here would block the
    // submitter, and the job's iodepth is only honoured when other queues can take requests.
    if (this.io !== undefined && ring.length === 0 && this.issueDirect(rq, this.io)) return true;
    if (!ring.push(rq)) {
      c.inflight--;
      this.inflight--;
      this.tagClone[tag] = undefined;
      this.freeTags.push(tag);
      this.pools.release(slot);
      if (oracle) oracle.releaseClaim(unit0, units);
      return false;
    }
    // a backed-up queue: wake a neighbour to steal
    if (ring.length > 1 && this.sqs.length > 1) this.wake((this.q + 1) % this.sqs.length);
    return true;
  }

  /** Queues this queue's own request on its io backend now; false when it has to wait (queue full, or an op that runs synchronously). */
  private issueDirect(rq: Float64Array, io: IoBackend): boolean {
    if (io.inFlight >= io.depth) return false;
    const op = rq[P.RQ_OP];
    const bytes = rq[P.RQ_BYTES];
    if ((op !== P.OP_READ && op !== P.OP_WRITE) || (rq[P.RQ_FLAGS] & P.FLAG_FUA) !== 0 || rq[P.RQ_SECTOR] + bytes / SECTOR_SIZE > this.device.sectors)
      return false;
    this.ioSubmit(rq, this.q);
    return true;
  }

  /** Hands a read or write to the io backend; its completion comes back through executeBatch. */
  private ioSubmit(rq: Float64Array, from: number): void {
    const t = this.ioFree.pop()!;
    this.ioPending.set(rq, t * P.RQ_FIELDS);
    this.ioFrom[t] = from;
    const bytes = rq[P.RQ_BYTES];
    this.io!.submit(
      rq[P.RQ_OP] === P.OP_READ ? IO_READ : IO_WRITE,
      this.fd,
      rq[P.RQ_SECTOR] * SECTOR_SIZE,
      this.pools.view(rq[P.RQ_SLOT]).subarray(0, bytes),
      t,
    );
  }

  /** Takes a request: ours first, else one from the queue that has the most waiting. Returns the queue it came from, or -1. */
  private popRequest(rq: Float64Array): number {
    if (this.sqs[this.q].pop(rq)) return this.q;
    let best = -1;
    let bestLen = 0;
    for (let i = 0; i < this.sqs.length; i++) {
      if (i === this.q) continue;
      const len = this.sqs[i].length;
      if (len > bestLen) {
        best = i;
        bestLen = len;
      }
    }
    return best >= 0 && this.sqs[best].pop(rq) ? best : -1;
  }

  /** Runs one request synchronously through the device. */
  private executeOne(): boolean {
    const rq = this.rq;
    const from = this.popRequest(rq);
    if (from < 0) return false;
    this.complete(rq, this.runSync(rq), from);
    return true;
  }

  private runSync(rq: Float64Array): number {
    const op = rq[P.RQ_OP];
    const sector = rq[P.RQ_SECTOR];
    const bytes = rq[P.RQ_BYTES];
    const buf = this.pools.view(rq[P.RQ_SLOT]).subarray(0, bytes);
    try {
      if (op === P.OP_READ) return this.device.read(sector, buf);
      if (op === P.OP_WRITE) return this.device.write(sector, buf, (rq[P.RQ_FLAGS] & P.FLAG_FUA) !== 0 ? { fua: true } : undefined);
      if (op === P.OP_TRIM) return this.device.discard(sector, bytes / SECTOR_SIZE);
      return this.device.flush();
    } catch {
      return EINVAL; // a request the device refuses outright (out of range)
    }
  }

  /**
   * Keeps the io_uring full of reads and writes (trims, flushes and FUA
   * writes run synchronously), then collects what has completed.
   */
  private executeBatch(): boolean {
    const io = this.io!;
    const rq = this.rq;
    let submitted = false;
    while (io.inFlight < io.depth) {
      const from = this.popRequest(rq);
      if (from < 0) break;
      const op = rq[P.RQ_OP];
      const bytes = rq[P.RQ_BYTES];
      const inRange = rq[P.RQ_SECTOR] + bytes / SECTOR_SIZE <= this.device.sectors;
      if ((op !== P.OP_READ && op !== P.OP_WRITE) || (rq[P.RQ_FLAGS] & P.FLAG_FUA) !== 0 || !inRange) {
        this.complete(rq, inRange ? this.runSync(rq) : EINVAL, from);
        submitted = true;
        continue;
      }
      this.ioSubmit(rq, from);
      submitted = true;
    }
    if (io.inFlight === 0) return submitted;
    io.flush();
    let n = io.poll(io.depth, this.ioTags, this.ioResults);
    if (n === 0 && !submitted) {
      io.waitAtLeast(1);
      n = io.poll(io.depth, this.ioTags, this.ioResults);
    }
    const rec = this.rq;
    const doneNs = n > 0 ? realClock.nowNs() : 0; // one reading for the whole batch of completions
    for (let i = 0; i < n; i++) {
      const t = this.ioTags[i];
      const base = t * P.RQ_FIELDS;
      for (let f = 0; f < P.RQ_FIELDS; f++) rec[f] = this.ioPending[base + f];
      const res = this.ioResults[i];
      const rc = res < 0 ? -res : res === rec[P.RQ_BYTES] ? OK : 5; // a short transfer inside the device is an EIO
      this.ioFree.push(t);
      this.complete(rec, rc, this.ioFrom[t], doneNs);
    }
    return submitted || n > 0;
  }

  /** Sends the result to the queue (or the main thread) that submitted the request; `doneNs` defaults to now. */
  private complete(rq: Float64Array, rc: number, from: number, doneNs = realClock.nowNs()): void {
    const cq = this.cq;
    cq[P.CQ_TAG] = rq[P.RQ_TAG];
    cq[P.CQ_STATUS] = rc;
    cq[P.CQ_DONE_NS] = doneNs;
    cq[P.CQ_EXECUTOR] = this.q;
    const owner = rq[P.RQ_OWNER];
    this.progress[this.pBase + P.QS_EXECUTED]++;
    if (from !== this.q) this.progress[this.pBase + P.QS_STOLEN]++;
    if (owner === this.q) {
      this.account(cq); // our own request: no need to mail it to ourselves
      return;
    }
    const ring = owner === P.MAIN_OWNER ? this.mainCq : this.cqs[owner];
    while (!ring.push(cq)); // completion rings hold every request a submitter can have in flight
    this.wake(owner);
  }

  private wake(queue: number): void {
    const i = P.wakeIndex(queue);
    Atomics.add(this.control, i, 1);
    Atomics.notify(this.control, i, 1);
  }

  /** Accounts the completions of this queue's own requests that other queues ran. */
  private reap(): boolean {
    const ring = this.cqs[this.q];
    const cq = this.reapCq;
    let any = false;
    while (ring.pop(cq)) {
      any = true;
      this.account(cq);
    }
    return any;
  }

  /** Accounts one completion of this queue's own request: latency, bytes, the oracle, the slot and tag back. */
  private account(cq: Float64Array): void {
    const tag = cq[P.CQ_TAG];
    const rc = cq[P.CQ_STATUS];
    const done = cq[P.CQ_DONE_NS];
    const c = this.tagClone[tag]!;
    const job = c.job;
    const op = this.tagOp[tag];
    const bytes = this.tagBytes[tag];
    const slot = this.tagSlot[tag];
    const d = job.dirs[op];
    // as fio: a failed I/O counts as an I/O with its latency, but moves no bytes
    const moved = rc === OK ? bytes : 0;
    if (done >= job.measureFromNs) {
      d.clat.record(Math.max(1, Math.round(done - this.tagSubmit[tag])));
      d.ioBytes += moved;
      d.totalIos++;
      job.series.add(op as 0 | 1 | 2, moved, done);
    }
    const p = this.pBase;
    this.progress[p + P.QS_BYTES] += moved;
    this.progress[p + P.QS_IOS]++;
    let verifyFailed = false;
    const oracle = job.tally ? this.oracle : undefined;
    if (oracle) {
      const unit0 = (this.tagSector[tag] * SECTOR_SIZE) / oracle.unitSize;
      const units = bytes / oracle.unitSize;
      if (op === P.OP_READ) verifyFailed = oracle.checkRead(unit0, this.pools.view(slot).subarray(0, bytes), rc, job.tally) > 0 && rc === OK;
      else if (op === P.OP_WRITE) oracle.completeWrite(unit0, units, rc);
      else oracle.completeTrim(unit0, units, rc);
      oracle.releaseClaim(unit0, units);
    }
    this.pools.release(slot);
    this.tagClone[tag] = undefined;
    this.freeTags.push(tag);
    c.inflight--;
    this.inflight--;
    if (rc !== OK) {
      d.errors++;
      this.progress[p + P.QS_ERRORS]++;
      if (!job.stopped && !continuesAfter(job.spec, (['read', 'write', 'trim'] as const)[op])) this.stopJob(job, rc, done);
    } else if (verifyFailed && !job.stopped && !continuesAfter(job.spec, 'verify')) this.stopJob(job, EILSEQ, done);
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
