/**
 * The executing half of an engine queue: takes requests off the submission
 * rings (its own queue's first; when that is empty, one from the queue that
 * has backed up most: work stealing) and runs them on the device,
 * synchronously or through an io backend (io_uring) with several in flight:
 * a plain file's reads and writes, and the reads of a model that plans them
 * (block/read-plan.ts). Each completion goes to the ring of the queue (or the
 * main thread) that submitted it. What a request is for, jobs and their
 * accounting, is the job driver's (worker.ts).
 */
import { EINVAL, OK, SECTOR_SIZE, type BlockDevice } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { type PlannedReads, pieceStatus, READ_AGAIN, READ_PLAN_PIECES, ReadPlan, plannedReadsOf } from '../block/read-plan.js';
import { realClock } from '../util/clock.js';
import type { BufferPools } from './buffer-pool.js';
import { createIoBackend, IO_READ, IO_WRITE, type IoBackend, type IoBackendKind } from './io-backend.js';
import { NATIVE_MAX_DEPTH } from '../sys/native-io.js';
import * as P from './ring-records.js';
import type { Ring } from './ring.js';

/** Where completions of the queue's own requests go: no need to mail them to itself. */
export interface OwnCompletions {
  account(cq: Float64Array): void;
}

const SYNC_BATCH = 16;

export interface ExecutorOptions {
  queue: number;
  control: Int32Array;
  progress: Float64Array;
  sqs: Ring[];
  cqs: Ring[];
  mainCq: Ring;
  pools: BufferPools;
  device: BlockDevice;
  /** How reads and writes of a plain file reach the kernel: 'js' (synchronous), 'native' or 'auto' (io_uring when built). */
  io: IoBackendKind;
  ioDepth: number;
}

export class Executor {
  private readonly q: number;
  private readonly control: Int32Array;
  private readonly progress: Float64Array;
  private readonly pBase: number;
  private readonly sqs: Ring[];
  private readonly cqs: Ring[];
  private readonly mainCq: Ring;
  private readonly pools: BufferPools;
  private readonly device: BlockDevice;
  private readonly own: OwnCompletions;
  private readonly rq = new Float64Array(P.RQ_FIELDS);
  private readonly cq = new Float64Array(P.CQ_FIELDS);
  /**
   * io_uring (or batch) for plain files, and for a model's reads it can plan
   * (PlannedReads): several requests in flight at once. A request in flight
   * has a row; each of its pieces (one for a plain file) is an operation
   * tagged row * READ_PLAN_PIECES + piece.
   */
  private readonly io: IoBackend | undefined;
  private readonly fd: number;
  private readonly planner: PlannedReads | undefined;
  private readonly plan = new ReadPlan();
  /** Operations a request may need at once. */
  private readonly maxPieces: number;
  private readonly ioPending: Float64Array;
  private readonly ioFrom: Int32Array;
  private readonly ioFree: number[] = [];
  private readonly rowLeft: Int32Array;
  private readonly rowStatus: Int32Array;
  private readonly rowSeq: Float64Array;
  private readonly rowSpareRuns: Int32Array;
  private readonly pieceBytes: Int32Array;
  private readonly ioTags: Uint32Array;
  private readonly ioResults: Int32Array;

  constructor(opts: ExecutorOptions, own: OwnCompletions) {
    this.q = opts.queue;
    this.control = opts.control;
    this.progress = opts.progress;
    this.pBase = opts.queue * P.QS_FIELDS;
    this.sqs = opts.sqs;
    this.cqs = opts.cqs;
    this.mainCq = opts.mainCq;
    this.pools = opts.pools;
    this.device = opts.device;
    this.own = own;
    const plainFile = this.device instanceof FileDevice;
    const planner = plainFile ? undefined : plannedReadsOf(this.device);
    // a model's request takes up to READ_PLAN_PIECES ops: room for ioDepth whole plans (as far as the backend goes, and
    // at least one), so that split reads do not fill it early and send the queue's next requests through its ring
    const opDepth = planner ? Math.max(opts.ioDepth + READ_PLAN_PIECES - 1, Math.min(NATIVE_MAX_DEPTH, opts.ioDepth * READ_PLAN_PIECES)) : opts.ioDepth;
    let io = (plainFile || planner) && opts.io !== 'js' ? createIoBackend(opts.io, { depth: opDepth }) : undefined;
    if (io && (io.kind === 'js' || (planner && io.depth < READ_PLAN_PIECES))) {
      io.close();
      io = undefined;
    }
    this.io = io;
    this.planner = io ? planner : undefined;
    this.fd = plainFile ? (this.device as FileDevice).fileDescriptor : -1;
    this.maxPieces = this.planner ? READ_PLAN_PIECES : 1;
    const depth = this.io?.depth ?? 0;
    this.ioPending = new Float64Array(depth * P.RQ_FIELDS);
    this.ioFrom = new Int32Array(depth);
    for (let t = depth - 1; t >= 0; t--) this.ioFree.push(t);
    this.rowLeft = new Int32Array(depth);
    this.rowStatus = new Int32Array(depth);
    this.rowSeq = new Float64Array(depth);
    this.rowSpareRuns = new Int32Array(depth);
    this.pieceBytes = new Int32Array(depth * READ_PLAN_PIECES);
    this.ioTags = new Uint32Array(depth);
    this.ioResults = new Int32Array(depth);
  }

  /** What this queue uses to move bytes, for the engine's status. */
  get ioMechanism(): string {
    return this.io ? `${this.io.kind}:${this.io.mechanism}` : 'sync';
  }

  /** Requests waiting in this queue's own submission ring. */
  get waiting(): number {
    return this.sqs[this.q].length;
  }

  /**
   * Takes this queue's own request; false when it cannot now (its ring is full).
   * blk-mq's direct issue: nothing waits in this queue and its io_uring has room, so the request
   * goes straight to it; it passes through the ring (where idle queues can steal it) when this
   * queue backs up. A synchronous device always takes the ring: executing here would block the
   * submitter, and the job's iodepth is only honoured when other queues can take requests.
   */
  submit(rq: Float64Array): boolean {
    const ring = this.sqs[this.q];
    if (this.io !== undefined && ring.length === 0 && this.issueDirect(rq, this.io)) return true;
    if (!ring.push(rq)) return false;
    // a backed-up queue: wake a neighbour to steal
    if (ring.length > 1 && this.sqs.length > 1) this.wake((this.q + 1) % this.sqs.length);
    return true;
  }

  /** Runs what there is to run: a request, or a batch through the io backend. False when there was nothing. */
  execute(): boolean {
    return this.io ? this.executeBatch() : this.executeSome();
  }

  wake(queue: number): void {
    P.wake(this.control, queue, this.sqs.length);
  }

  close(): void {
    this.io?.close();
  }

  /** Queues this queue's own request on its io backend now; false when it has to wait (queue full, or an op that runs synchronously). */
  private issueDirect(rq: Float64Array, io: IoBackend): boolean {
    return io.inFlight + this.maxPieces <= io.depth && this.ioSubmit(rq, this.q);
  }

  /**
   * Hands a request to the io backend, whose completion comes back through
   * executeBatch: a plain file's read or write, or a model's read as its
   * plan's pieces. False, with nothing submitted, for a request that runs
   * synchronously (a trim, a flush, a FUA write, a model's write, a read the
   * model cannot plan, one past the end). The backend has room for maxPieces.
   */
  private ioSubmit(rq: Float64Array, from: number): boolean {
    const op = rq[P.RQ_OP];
    const bytes = rq[P.RQ_BYTES];
    const sector = rq[P.RQ_SECTOR];
    if ((op !== P.OP_READ && op !== P.OP_WRITE) || (rq[P.RQ_FLAGS] & P.FLAG_FUA) !== 0 || sector + bytes / SECTOR_SIZE > this.device.sectors) return false;
    const planner = this.planner;
    if (planner && (op !== P.OP_READ || !planner.planRead(sector, bytes / SECTOR_SIZE, this.plan))) return false;
    const t = this.ioFree.pop()!;
    this.ioPending.set(rq, t * P.RQ_FIELDS);
    this.ioFrom[t] = from;
    this.rowStatus[t] = OK;
    const buf = this.pools.view(rq[P.RQ_SLOT]);
    const io = this.io!;
    const tag0 = t * READ_PLAN_PIECES;
    if (!planner) {
      this.rowLeft[t] = 1;
      this.pieceBytes[tag0] = bytes;
      io.submit(op === P.OP_READ ? IO_READ : IO_WRITE, this.fd, sector * SECTOR_SIZE, buf.subarray(0, bytes), tag0);
      return true;
    }
    const plan = this.plan;
    this.rowLeft[t] = plan.pieces;
    this.rowSeq[t] = plan.seq;
    this.rowSpareRuns[t] = plan.spareRuns;
    for (let i = 0; i < plan.pieces; i++) {
      const at = plan.at[i];
      this.pieceBytes[tag0 + i] = plan.bytes[i];
      io.submit(IO_READ, plan.fd[i], plan.offset[i], buf.subarray(at, at + plan.bytes[i]), tag0 + i);
    }
    return true;
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

  /**
   * Runs up to SYNC_BATCH requests synchronously through the device: the job
   * driver's round (its reaping, its refill and that round's clock reading)
   * then comes once per batch rather than once per request.
   */
  private executeSome(): boolean {
    const rq = this.rq;
    let n = 0;
    for (; n < SYNC_BATCH; n++) {
      const from = this.popRequest(rq);
      if (from < 0) break;
      this.complete(rq, this.runSync(rq), from);
    }
    return n > 0;
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
    while (io.inFlight + this.maxPieces <= io.depth) {
      const from = this.popRequest(rq);
      if (from < 0) break;
      if (!this.ioSubmit(rq, from)) {
        const inRange = rq[P.RQ_SECTOR] + rq[P.RQ_BYTES] / SECTOR_SIZE <= this.device.sectors;
        this.complete(rq, inRange ? this.runSync(rq) : EINVAL, from);
      }
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
      const tag = this.ioTags[i];
      const t = (tag / READ_PLAN_PIECES) | 0;
      const res = this.ioResults[i];
      const rc = pieceStatus(res, this.pieceBytes[tag]);
      if (rc !== OK && this.rowStatus[t] === OK) this.rowStatus[t] = rc;
      if (--this.rowLeft[t] > 0) continue;
      const base = t * P.RQ_FIELDS;
      for (let f = 0; f < P.RQ_FIELDS; f++) rec[f] = this.ioPending[base + f];
      this.ioFree.push(t);
      let status = this.rowStatus[t];
      if (this.planner) {
        this.plan.seq = this.rowSeq[t];
        this.plan.spareRuns = this.rowSpareRuns[t];
        const done = this.planner.plannedReadDone(this.plan, status);
        status = done === READ_AGAIN ? this.runSync(rec) : done;
      }
      this.complete(rec, status, this.ioFrom[t], doneNs);
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
      this.own.account(cq);
      return;
    }
    const ring = owner === P.MAIN_OWNER ? this.mainCq : this.cqs[owner];
    while (!ring.push(cq)); // completion rings hold every request a submitter can have in flight
    this.wake(owner);
  }
}
