/**
 * The per-CPU I/O engine, main-thread side: starts one worker per queue
 * (pinned to its CPU, with its NUMA node's buffer pool), hands job clones to
 * the queues, merges what they measured, and serves requests the main thread
 * submits (the NBD server) without blocking its event loop.
 */
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { type BlockDevice, EIO, type LentRead, OK, SECTOR_SIZE } from '../block/device.js';
import { decodeLatency } from '../stats/latency.js';
import { IoSeries } from '../stats/series.js';
import { clockOrigin, realClock } from '../util/clock.js';
import { resourceDelta } from '../util/resources.js';
import { startWorker } from '../util/worker.js';
import { flushInterval, type JobSpec } from '../workload/job.js';
import { Oracle, type ReadClass } from '../workload/oracle.js';
import { type DirStats, newDirStats } from '../workload/completion.js';
import type { JobRunResult, RunProgress, RunResult } from '../workload/runner.js';
import { BufferPools, type BufferPoolStats } from './buffer-pool.js';
import { type EngineDeviceSpec, type ModelPrimary, openEngineDevice } from '../stack/engine-device.js';
import { assignQueues, EngineOptionError, type NumaTopology, parseNumaShape, type QueueAssignment, readTopology } from './numa.js';
import * as P from './ring-records.js';
import { Ring } from './ring.js';
import { createSlowPath, SlowPathServer, type SlowPathShared } from './slow-path.js';
import type { CloneAssignment, RunDoneMessage, RunMessage, WorkerInit } from './worker.js';

export interface EngineOptions {
  device: EngineDeviceSpec;
  /** Queues (worker threads); default one per CPU. */
  queues?: number;
  /** Allow more queues than CPUs. */
  force?: boolean;
  /** Simulated NUMA shape, e.g. '2x8'; default the machine's topology. */
  numa?: string;
  /** Pin each worker to its CPU (default true). */
  pin?: boolean;
  /** Largest request in bytes (a buffer slot); default 1 MiB. */
  maxRequestBytes?: number;
  /** Buffer slots per NUMA node; default enough for 64 requests in flight per queue. */
  slotsPerNode?: number;
  /** How workers move bytes of a plain file: 'auto' (io_uring when the native library is built), 'native' or 'js'. */
  io?: 'auto' | 'native' | 'js';
  /** Requests a worker keeps in flight through io_uring (default 32). */
  ioDepth?: number;
  /**
   * For a model device: the primary target (on this thread). Its rare paths
   * serve the workers' replicas; final verification passes read through it.
   */
  primary?: ModelPrimary;
}

export interface EngineRunOptions {
  /** Run time (ns) of time-based jobs that set none. */
  defaultRuntimeNs?: number;
  oracle?: Oracle;
  seed?: number;
  onProgress?: (p: RunProgress) => void;
  progressIntervalNs?: number;
  /** Aborting it ends the jobs now, as if their time were up; the run resolves with what was done. */
  stop?: AbortSignal;
}

export interface EngineStats {
  queues: Array<QueueAssignment & { executed: number; stolen: number; io: string }>;
  pools: BufferPoolStats;
  topology: string;
}

const RING_CAPACITY = 4096;

interface MainRequest {
  op: 'read' | 'write' | 'trim' | 'flush';
  sector: number;
  buf: Uint8Array | undefined;
  bytes: number;
  fua: boolean;
  /** A read whose data stays in its slot (lendRead): the slot goes to `resolve` instead of back to the pool. */
  lend: boolean;
  resolve: (status: number, slot: number) => void;
}

export class EngineError extends Error {
  override readonly name = 'EngineError';
}

export class Engine {
  readonly topology: NumaTopology;
  readonly assignment: QueueAssignment[];
  readonly device: EngineDeviceSpec;
  /** The main thread's own view of the device (final verification passes, geometry). */
  readonly local: BlockDevice;
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private readonly control: Int32Array;
  private readonly progress: Float64Array;
  private readonly sqs: Ring[];
  private readonly mainCq: Ring;
  private readonly pools: BufferPools;
  private failure: string | undefined;
  private runId = 0;
  private pendingRun: { id: number; parts: RunDoneMessage[]; expect: number; resolve: (m: RunDoneMessage[]) => void; reject: (e: Error) => void } | undefined;
  // main-thread submissions
  private readonly mainTags = new Map<number, { resolve: (s: number, slot: number) => void; out?: Uint8Array; slot: number; lend: boolean }>();
  private readonly toWake: Uint8Array;
  private wakeQueued = false;
  /** Slots lent out by lendRead and not yet given back. */
  private lent = 0;
  private readonly mainBacklog: MainRequest[] = [];
  private readonly mainRq = new Float64Array(P.RQ_FIELDS);
  private nextMainTag = 0;
  private nextQueue = 0;
  private polling = false;
  private closed = false;
  /** Runs and main-thread requests under way: while any are, the workers keep the process alive. */
  private busy = 0;
  /** The largest request (bytes) one submission may carry: a buffer slot. */
  readonly maxRequestBytes: number;
  private readonly ioKind: 'auto' | 'native' | 'js';
  private readonly ioDepth: number;
  private readonly ioMechanisms: string[] = [];
  private readonly ownsLocal: boolean;
  private readonly slowShared: SlowPathShared;
  private slowServer: SlowPathServer | undefined;

  private constructor(opts: EngineOptions, topology: NumaTopology, assignment: QueueAssignment[]) {
    this.topology = topology;
    this.assignment = assignment;
    this.device = opts.device;
    if (opts.device.kind === 'model') {
      if (!opts.primary) throw new EngineError('a model device needs its primary target (EngineOptions.primary)');
      if (assignment.length + 1 > opts.primary.counterRowCount) {
        throw new EngineOptionError(
          '--queues',
          `--queues ${assignment.length}: the model keeps counters for at most ${opts.primary.counterRowCount - 1} queues`,
        );
      }
      this.local = opts.primary;
    } else this.local = openEngineDevice(opts.device).device;
    this.ownsLocal = opts.device.kind !== 'model';
    const n = assignment.length;
    this.maxRequestBytes = opts.maxRequestBytes ?? 1 << 20;
    this.ioKind = opts.io ?? 'auto';
    this.ioDepth = opts.ioDepth ?? 32;
    this.control = new Int32Array(new SharedArrayBuffer(P.controlInts(n) * 4));
    this.progress = new Float64Array(new SharedArrayBuffer(n * P.QS_FIELDS * 8));
    this.sqs = assignment.map(() => new Ring({ capacity: RING_CAPACITY, fields: P.RQ_FIELDS }));
    this.toWake = new Uint8Array(n);
    this.mainCq = new Ring({ capacity: RING_CAPACITY, fields: P.CQ_FIELDS });
    const slotSize = Math.ceil(this.maxRequestBytes / 4096) * 4096;
    const perNode = opts.slotsPerNode ?? Math.max(64, Math.ceil((64 * n) / topology.nodes.length));
    this.pools = BufferPools.create({ topology, slotSize, slotsPerNode: perNode });
    this.slowShared = createSlowPath(n, slotSize);
    const primary = opts.primary;
    if (primary) this.slowServer = new SlowPathServer(this.slowShared, (op, args, data) => primary.handleSlowPath(op, args, data));
  }

  static async start(opts: EngineOptions): Promise<Engine> {
    const topology = opts.numa !== undefined ? parseNumaShape(opts.numa) : readTopology();
    const assignment = assignQueues(topology, opts.queues, { force: opts.force });
    if (opts.maxRequestBytes !== undefined && (!Number.isInteger(opts.maxRequestBytes) || opts.maxRequestBytes < 512 || opts.maxRequestBytes > 64 << 20)) {
      throw new EngineOptionError('maxRequestBytes', `the largest request must be between 512 bytes and 64 MiB, got ${opts.maxRequestBytes}`);
    }
    const engine = new Engine(opts, topology, assignment);
    try {
      await engine.spawn(opts.pin ?? true);
    } catch (err) {
      await engine.close();
      throw err;
    }
    return engine;
  }

  get queueCount(): number {
    return this.assignment.length;
  }

  private async spawn(pin: boolean): Promise<void> {
    const cqs = this.assignment.map(() => new Ring({ capacity: RING_CAPACITY, fields: P.CQ_FIELDS }));
    const ready: Array<Promise<void>> = [];
    for (const a of this.assignment) {
      const channel = new MessageChannel();
      const init: WorkerInit = {
        queue: a.queue,
        queues: this.assignment.length,
        cpu: a.cpu,
        node: a.node,
        pin,
        control: this.control.buffer as SharedArrayBuffer,
        progress: this.progress.buffer as SharedArrayBuffer,
        sqs: this.sqs.map((r) => r.shared),
        cqs: cqs.map((r) => r.shared),
        mainCq: this.mainCq.shared,
        pools: this.pools.shared,
        device: this.device,
        clockOrigin: clockOrigin(),
        port: channel.port2,
        io: this.ioKind,
        ioDepth: this.ioDepth,
        slowPath: this.slowShared,
      };
      const w = startWorker(import.meta.url, './worker', { workerData: init, transferList: [channel.port2] });
      this.workers.push(w);
      this.ports.push(channel.port1);
      channel.port1.on('message', (m: RunDoneMessage) => this.onRunDone(m));
      channel.port1.unref();
      ready.push(
        new Promise<void>((resolve, reject) => {
          w.once('message', (m: { type: string; message?: string; io?: string }) => {
            if (m.type === 'ready') {
              this.ioMechanisms[a.queue] = m.io ?? 'sync';
              resolve();
            } else reject(new EngineError(`queue ${a.queue}: ${m.message}`));
          });
          w.once('error', (err) => reject(new EngineError(`queue ${a.queue}: ${err.message}`)));
        }),
      );
      w.on('error', (err) => this.fail(`queue ${a.queue} died: ${err.message}`));
      w.on('exit', (code) => {
        if (!this.closed) this.fail(`queue ${a.queue} exited (code ${code})`);
      });
    }
    await Promise.all(ready);
    for (const w of this.workers) w.unref();
    Atomics.store(this.control, P.CT_STATE, P.STATE_RUNNING);
  }

  private hold(): void {
    if (this.busy++ === 0) for (const w of this.workers) w.ref();
  }

  private letGo(): void {
    if (--this.busy === 0) for (const w of this.workers) w.unref();
  }

  /** A worker is gone: fail what waits on it, so nothing hangs. */
  private fail(why: string): void {
    if (this.failure) return;
    this.failure = why;
    for (const [tag, t] of this.mainTags) {
      this.mainTags.delete(tag);
      t.resolve(EIO, -1);
    }
    for (const r of this.mainBacklog.splice(0)) r.resolve(EIO, -1);
    this.pendingRun?.reject(new EngineError(`the run failed: ${why}`));
    this.pendingRun = undefined;
  }

  private onRunDone(m: RunDoneMessage): void {
    const r = this.pendingRun;
    if (!r || m.runId !== r.id) return;
    r.parts.push(m);
    if (r.parts.length === r.expect) {
      this.pendingRun = undefined;
      r.resolve(r.parts);
    }
  }

  /** Runs jobs across the queues; resolves with the same result shape as the synchronous runner. */
  async runJobs(jobs: readonly JobSpec[], opts: EngineRunOptions = {}): Promise<RunResult> {
    if (this.failure) throw new EngineError(`the engine has failed: ${this.failure}`);
    if (this.pendingRun) throw new EngineError('a run is already in progress');
    for (const j of jobs) {
      for (const d of j.directions) {
        if (j.blockSizes[d].max > this.maxRequestBytes) {
          throw new EngineOptionError(
            'bs',
            `job '${j.name}': ${d} block size ${j.blockSizes[d].max} is larger than the engine's largest request (${this.maxRequestBytes} bytes)`,
          );
        }
      }
      if (flushInterval(j) > 0) {
        throw new EngineOptionError(j.fsync > 0 ? 'fsync' : 'fdatasync', `job '${j.name}': flushes (fsync=, fdatasync=) run on one thread; use --engine sync`);
      }
      if (j.direct && j.blockSizes.read.min < this.local.logicalBlockSize) {
        throw new EngineOptionError(
          'bs',
          `job '${j.name}': direct=1 needs block sizes of at least the device's logical block size (${this.local.logicalBlockSize} bytes)`,
        );
      }
    }
    const oracle = opts.oracle;
    const startedAt = new Date();
    const usage0 = process.resourceUsage();
    const t0 = realClock.nowNs();
    const defaultRuntime = opts.defaultRuntimeNs ?? 0;
    const clones: CloneAssignment[][] = this.assignment.map(() => []);
    let k = 0;
    jobs.forEach((spec, job) => {
      for (let clone = 0; clone < spec.numjobs; clone++) clones[k++ % this.assignment.length].push({ job, clone });
    });
    const measureFromNs = jobs.map((j) => t0 + j.rampTimeUs * 1e3);
    const endNs = jobs.map((j, i) => {
      const rt = j.runtimeUs > 0 ? j.runtimeUs * 1e3 : j.timeBased ? defaultRuntime : 0;
      return rt > 0 ? measureFromNs[i] + rt : Infinity;
    });
    const seeds = jobs.map((_, i) => (opts.seed === undefined ? undefined : (opts.seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0));
    const runId = ++this.runId;
    const done = new Promise<RunDoneMessage[]>((resolve, reject) => {
      this.pendingRun = { id: runId, parts: [], expect: this.workers.length, resolve, reject };
    });
    const oracleInit = oracle
      ? {
          shared: oracle.shared,
          units: oracle.units,
          unitSize: oracle.unitSize,
          runId: oracle.pattern.runId,
          seed: oracle.pattern.seed,
          algorithm: oracle.pattern.algorithm,
          verifyPattern: oracle.pattern.verifyPattern,
          knownBad: oracle.knownBad,
          priorContent: oracle.priorContent,
        }
      : undefined;
    this.ports.forEach((port, q) => {
      const msg: RunMessage = {
        type: 'run',
        runId,
        jobs: [...jobs],
        clones: clones[q],
        endNs,
        measureFromNs,
        seeds,
        deviceBytes: this.local.sectors * SECTOR_SIZE,
        oracle: oracleInit,
      };
      port.postMessage(msg);
      this.wake(q);
    });
    const progressTimer = opts.onProgress ? this.progressReporter(t0, endNs, opts.onProgress, opts.progressIntervalNs ?? 1e9) : undefined;
    const stopRun = (): void => {
      Atomics.store(this.control, P.CT_STOP_RUN, runId);
      this.ports.forEach((_, q) => this.wake(q));
    };
    if (opts.stop?.aborted) stopRun();
    opts.stop?.addEventListener('abort', stopRun);
    let parts: RunDoneMessage[];
    this.hold();
    try {
      parts = await done;
    } finally {
      opts.stop?.removeEventListener('abort', stopRun);
      this.letGo();
      if (progressTimer) clearInterval(progressTimer);
    }
    const end = realClock.nowNs();
    const usage1 = process.resourceUsage();
    if (oracle) for (const p of parts) if (p.oracle) oracle.absorb(p.oracle);
    return {
      startedAt,
      elapsedNs: end - t0,
      cpu: resourceDelta(usage0, usage1),
      batchedReads: 0, // the runner's mechanism; the engine's workers have their own io backends
      jobs: jobs.map((spec, i) => mergeJob(spec, i, parts, measureFromNs[i], endNs[i])),
    };
  }

  private progressReporter(t0: number, endNs: number[], onProgress: (p: RunProgress) => void, every: number): NodeJS.Timeout {
    let last = t0;
    let lastBytes = 0;
    let lastIos = 0;
    const finite = endNs.every((e) => e !== Infinity);
    const totalNs = finite ? Math.max(...endNs) - t0 : undefined;
    return setInterval(() => {
      const now = realClock.nowNs();
      let bytes = 0;
      let ios = 0;
      let errors = 0;
      for (let q = 0; q < this.assignment.length; q++) {
        bytes += this.progress[q * P.QS_FIELDS + P.QS_BYTES];
        ios += this.progress[q * P.QS_FIELDS + P.QS_IOS];
        errors += this.progress[q * P.QS_FIELDS + P.QS_ERRORS];
      }
      onProgress({ elapsedNs: now - t0, totalNs, bytes, ios, errors, intervalBytes: bytes - lastBytes, intervalIos: ios - lastIos, intervalNs: now - last });
      last = now;
      lastBytes = bytes;
      lastIos = ios;
    }, every / 1e6);
  }

  private wake(queue: number): void {
    P.wake(this.control, queue, this.sqs.length);
  }

  /**
   * Runs one request from the main thread through the queues; resolves with
   * its status (0 or an errno). Reads fill `buf`. The event loop stays free;
   * when every buffer slot is busy the request waits for one.
   */
  submit(op: 'read' | 'write' | 'trim' | 'flush', sector: number, buf: Uint8Array | undefined, opts: { fua?: boolean; count?: number } = {}): Promise<number> {
    if (this.failure || this.closed) return Promise.resolve(EIO);
    const bytes = op === 'trim' ? (opts.count ?? 0) * SECTOR_SIZE : (buf?.length ?? 0);
    if (bytes > this.maxRequestBytes) return this.tooLarge(bytes);
    return new Promise<number>((resolve) => this.enqueue({ op, sector, buf, bytes, fua: opts.fua ?? false, lend: false, resolve }));
  }

  /**
   * Reads `bytes` at `sector` and lends the data where the worker put it, in
   * its buffer slot, instead of copying it out: a server can send it from
   * there. The slot stays taken until release(); close() leaves the pools'
   * memory allocated while any slot is still lent (a socket may hold it).
   */
  lendRead(sector: number, bytes: number): Promise<LentRead> {
    if (this.failure || this.closed) return Promise.resolve(failedLend(EIO));
    if (bytes > this.maxRequestBytes) return this.tooLarge(bytes);
    return new Promise<LentRead>((resolve) =>
      this.enqueue({
        op: 'read',
        sector,
        buf: undefined,
        bytes,
        fua: false,
        lend: true,
        resolve: (status, slot) => {
          if (slot < 0) return resolve(failedLend(status));
          if (status !== OK) {
            this.pools.release(slot);
            return resolve(failedLend(status));
          }
          this.lent++;
          let held = true;
          const release = (): void => {
            if (!held) return;
            held = false;
            this.lent--;
            this.pools.release(slot);
            if (!this.closed) this.startBacklog();
          };
          resolve({ status, data: this.pools.view(slot).subarray(0, bytes), release });
        },
      }),
    );
  }

  private tooLarge(bytes: number): Promise<never> {
    return Promise.reject(new EngineError(`request of ${bytes} bytes is larger than the engine's largest (${this.maxRequestBytes})`));
  }

  private enqueue(req: MainRequest): void {
    this.hold();
    const resolve = req.resolve;
    req.resolve = (status, slot) => {
      this.letGo();
      resolve(status, slot);
    };
    if (!this.startMain(req)) this.mainBacklog.push(req);
  }

  private startBacklog(): void {
    while (this.mainBacklog.length > 0 && !this.failure && this.startMain(this.mainBacklog[0])) this.mainBacklog.shift();
  }

  /** Puts a main-thread request on a queue; false when no buffer slot is free (it then waits in the backlog). */
  private startMain(req: MainRequest): boolean {
    const queue = this.nextQueue % this.assignment.length;
    const slot = this.pools.acquire(this.assignment[queue].node);
    if (slot < 0) return false;
    this.nextQueue++;
    if (req.op === 'write' && req.buf) this.pools.view(slot).set(req.buf);
    const tag = this.nextMainTag++;
    const rq = this.mainRq;
    rq[P.RQ_TAG] = tag;
    rq[P.RQ_OWNER] = P.MAIN_OWNER;
    rq[P.RQ_OP] = req.op === 'read' ? P.OP_READ : req.op === 'write' ? P.OP_WRITE : req.op === 'trim' ? P.OP_TRIM : P.OP_FLUSH;
    rq[P.RQ_FLAGS] = req.fua ? P.FLAG_FUA : 0;
    rq[P.RQ_SECTOR] = req.sector;
    rq[P.RQ_BYTES] = req.bytes;
    rq[P.RQ_SLOT] = slot;
    rq[P.RQ_SUBMIT_NS] = realClock.nowNs();
    this.mainTags.set(tag, { resolve: req.resolve, out: req.op === 'read' ? req.buf : undefined, slot, lend: req.lend });
    if (!this.sqs[queue].push(rq)) {
      this.mainTags.delete(tag);
      this.pools.release(slot);
      return false;
    }
    this.wakeSoon(queue);
    this.pollMain();
    return true;
  }

  /** Wakes `queue` once the current task's submissions are all in (a server submits a socket read's requests together): one notify per queue, not per request. */
  private wakeSoon(queue: number): void {
    this.toWake[queue] = 1;
    if (this.wakeQueued) return;
    this.wakeQueued = true;
    queueMicrotask(this.flushWakes);
  }

  private readonly flushWakes = (): void => {
    this.wakeQueued = false;
    for (let q = 0; q < this.toWake.length; q++) {
      if (this.toWake[q] === 0) continue;
      this.toWake[q] = 0;
      this.wake(q);
    }
  };

  /** Drains the main thread's completion ring, waiting for it asynchronously while requests are out. */
  private pollMain(): void {
    if (this.polling) return;
    this.polling = true;
    const cq = new Float64Array(P.CQ_FIELDS);
    const idx = P.wakeIndex(P.MAIN_OWNER);
    const step = (): void => {
      while (this.mainCq.pop(cq)) {
        const t = this.mainTags.get(cq[P.CQ_TAG]);
        if (!t) continue;
        this.mainTags.delete(cq[P.CQ_TAG]);
        if (t.lend) {
          t.resolve(cq[P.CQ_STATUS], t.slot);
          continue;
        }
        if (t.out) t.out.set(this.pools.view(t.slot).subarray(0, t.out.length));
        this.pools.release(t.slot);
        t.resolve(cq[P.CQ_STATUS], -1);
        this.startBacklog();
      }
      if (this.mainTags.size === 0 || this.failure) {
        this.polling = false;
        return;
      }
      const seen = Atomics.load(this.control, idx);
      if (this.mainCq.length > 0) {
        setImmediate(step);
        return;
      }
      const w = Atomics.waitAsync(this.control, idx, seen);
      if (w.async) void w.value.then(step);
      else setImmediate(step);
    };
    step();
  }

  stats(): EngineStats {
    return {
      queues: this.assignment.map((a) => ({
        ...a,
        executed: this.progress[a.queue * P.QS_FIELDS + P.QS_EXECUTED],
        stolen: this.progress[a.queue * P.QS_FIELDS + P.QS_STOLEN],
        io: this.ioMechanisms[a.queue] ?? 'sync',
      })),
      pools: this.pools.stats(),
      topology: `${this.topology.nodes.length} node(s) (${this.topology.source})`,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.control, P.CT_STATE, P.STATE_CLOSING);
    for (const w of this.workers) w.ref(); // wait for them to exit with the process kept alive
    for (let q = 0; q < this.workers.length; q++) this.wake(q);
    await Promise.all(this.workers.map((w) => new Promise((res) => (w.threadId === -1 ? res(undefined) : w.once('exit', res)))));
    for (const p of this.ports) p.close();
    this.slowServer?.stop();
    if (this.ownsLocal) this.local.close();
    // lent slots may still be in a socket's write queue: their memory outlives the engine (a leak, not a use after free)
    if (this.lent === 0) this.pools.destroy({ force: true });
  }
}

function failedLend(status: number): LentRead {
  return { status, data: new Uint8Array(0), release: () => {} };
}

function mergeJob(spec: JobSpec, index: number, parts: RunDoneMessage[], measureFromNs: number, endNs: number): JobRunResult {
  const dirs: DirStats[] = [newDirStats(), newDirStats(), newDirStats()];
  let series: IoSeries | undefined;
  let error = 0;
  let finished = measureFromNs;
  let verify: Record<ReadClass, number> | undefined;
  for (const m of parts) {
    for (const p of m.parts) {
      if (p.job !== index) continue;
      p.dirs.forEach((d, i) => {
        dirs[i].ioBytes += d.ioBytes;
        dirs[i].totalIos += d.totalIos;
        dirs[i].errors += d.errors;
        dirs[i].clat.add(decodeLatency(d.clat));
      });
      const s = IoSeries.fromJSON(p.series);
      if (series) series.merge(s);
      else series = s;
      if (error === 0 && p.error !== 0) error = p.error;
      finished = Math.max(finished, p.finishedNs);
      if (p.verify) {
        verify ??= Oracle.emptyTally();
        for (const [k, v] of Object.entries(p.verify)) verify[k as ReadClass] += v;
      }
    }
  }
  return {
    spec,
    error,
    runtimeNs: Math.max(0, Math.min(finished, endNs) - measureFromNs),
    read: dirs[0],
    write: dirs[1],
    trim: dirs[2],
    series: series ?? new IoSeries(measureFromNs),
    verify,
  };
}
