/**
 * How a worker thread moves bytes: one small queue interface with two
 * implementations.
 *
 *  - 'js': fs.readSync / fs.writeSync / fs.fdatasyncSync. Always available.
 *    Each submit runs at once (depth 1); its completion is returned by the
 *    next poll.
 *  - 'native': the C library in native/ (see sys/native-io.ts). Up to `depth`
 *    operations are staged; flush/poll/waitAtLeast hand them to an io_uring
 *    (so `depth` O_DIRECT reads are really in flight at once) or, where
 *    io_uring cannot be set up, run them as one synchronous batch.
 *
 * Usage in a worker loop (the same code drives both):
 *
 *   while (io.inFlight < io.depth && haveWork) io.submit(IO_READ, fd, off, buf, tag);
 *   io.waitAtLeast(1);
 *   const n = io.poll(io.depth, tags, results);   // results: bytes, or -errno
 *
 * Results are what the kernel returns: a byte count (short at end of file) or
 * -errno (-EBADF, -EINVAL for a misaligned O_DIRECT request, -EIO, ...).
 * Nothing is allocated per operation: tags and results come back in the
 * caller's typed arrays.
 *
 * Buffers for the native backend must be native memory (allocAligned from
 * src/block/aligned.ts, or memory passed to markAligned): the kernel
 * fills an io_uring read after submit() has returned, and only memory outside
 * the JavaScript heap is guaranteed not to move or be collected meanwhile. The
 * backend keeps a reference to each buffer until its completion is polled.
 */
import * as fs from 'node:fs';
import { errnoText, type Libc, libc } from '../sys/libc.js';
import {
  DEFAULT_URING_FLAGS,
  encodeOp,
  NATIVE_MAX_DEPTH,
  type NativeIo,
  type NativeIoStatus,
  nativeIoStatus,
  type QueueHandle,
  QUEUE_MODE_BATCH,
  QUEUE_MODE_URING,
  IO_FDATASYNC,
  IO_READ,
  IO_WRITE,
} from '../sys/native-io.js';

export { IO_FDATASYNC, IO_READ, IO_WRITE };
export type IoOp = typeof IO_READ | typeof IO_WRITE | typeof IO_FDATASYNC;

export type IoBackendKind = 'js' | 'native' | 'auto';
export type IoMechanism = 'sync' | 'batch' | 'io_uring';

/** Linux's MAX_RW_COUNT: the most one read or write transfers. */
export const MAX_IO_BYTES = 0x7ffff000;
export const DEFAULT_IO_DEPTH = 32;
/** io_uring: staged operations go to the kernel once this many wait (see NativeBackend.submit). */
const SUBMIT_EVERY = 4;

export interface IoBackendOptions {
  /** Native: operations in flight at most, 1..4096 (default 32). The JS backend always has depth 1. */
  depth?: number;
  /** Native: 'io_uring' or 'batch'. Default: io_uring, or batch when the kernel refuses io_uring. */
  mechanism?: 'io_uring' | 'batch';
  /** io_uring setup flags (default DEFAULT_URING_FLAGS; flags an older kernel lacks are dropped). */
  uringFlags?: number;
  /** The native library to use (default: nativeIoStatus()); tests hand in a specific build. */
  native?: NativeIoStatus;
}

export interface IoBackend {
  readonly kind: 'js' | 'native';
  readonly mechanism: IoMechanism;
  /** Most operations in flight (submitted and not yet returned by poll). */
  readonly depth: number;
  /** Why this is not the native io_uring backend, when native or auto was asked for and something less was given. */
  readonly fallbackReason: string | undefined;
  /** Submitted and not yet returned by poll; submit throws when this reaches depth. */
  readonly inFlight: number;
  /** Completions already collected and waiting for poll (no syscall needed to return them). */
  readonly ready: number;
  /**
   * Queues one operation. `tag` (u32) comes back with its result. For
   * IO_READ / IO_WRITE the whole of `buf` is the transfer; for IO_FDATASYNC
   * pass null. Throws RangeError for misuse (a full queue, a negative offset,
   * a buffer the backend cannot use), never for an I/O error; io_uring may
   * hand staged operations to the kernel here (see NativeBackend.submit), so
   * an io_uring_enter the kernel refuses throws IoBackendError as flush does.
   */
  submit(op: IoOp, fd: number, offsetBytes: number, buf: Uint8Array | null, tag: number): void;
  /** Hands staged operations to the kernel without waiting; returns how many. */
  flush(): number;
  /** Submits what is staged, then returns up to `max` completions (tag, result) without blocking. */
  poll(max: number, outTags: Uint32Array, outResults: Int32Array): number;
  /**
   * Submits what is staged and blocks until at least min(k, inFlight)
   * completions are ready; returns `ready`. It never waits for more than are
   * in flight; it may return fewer than k when the kernel is short of
   * resources (io_uring EAGAIN/EBUSY), so loop on it.
   */
  waitAtLeast(k: number): number;
  /** Waits for operations still in the kernel, then releases the queue. Completions not polled are dropped. */
  close(): void;
}

/** The backend asked for cannot be had here (library not built, io_uring refused, ...): one line, for the user. */
export class IoBackendError extends Error {
  override readonly name = 'IoBackendError';
}

export function createIoBackend(kind: IoBackendKind, opts: IoBackendOptions = {}): IoBackend {
  if (kind !== 'js' && kind !== 'native' && kind !== 'auto') throw new IoBackendError(`io backend must be one of js, native, auto; got '${String(kind)}'`);
  const depth = opts.depth ?? DEFAULT_IO_DEPTH;
  if (!Number.isInteger(depth) || depth < 1 || depth > NATIVE_MAX_DEPTH)
    throw new IoBackendError(`io depth must be an integer in 1..${NATIVE_MAX_DEPTH}, got ${depth}`);
  const mech = opts.mechanism;
  if (mech !== undefined && mech !== 'io_uring' && mech !== 'batch') throw new IoBackendError(`io mechanism must be io_uring or batch, got '${String(mech)}'`);
  if (kind === 'js') return new JsBackend(undefined);

  const status = opts.native ?? nativeIoStatus();
  if (!status.available) {
    if (kind === 'native') throw new IoBackendError(status.reason);
    return new JsBackend(status.reason);
  }
  const io = status.io;
  let uringReason: string | undefined;
  if (mech !== 'batch') {
    const r = io.queueOpen(depth, QUEUE_MODE_URING, opts.uringFlags ?? DEFAULT_URING_FLAGS);
    if ('queue' in r) return new NativeBackend(io, r.queue, 'io_uring', depth, undefined);
    uringReason = `io_uring unavailable: io_uring_setup failed with ${errnoText(r.errno)}`;
    if (mech === 'io_uring') {
      if (kind === 'native') throw new IoBackendError(uringReason);
      return new JsBackend(uringReason);
    }
  }
  const r = io.queueOpen(depth, QUEUE_MODE_BATCH, 0);
  if ('queue' in r) return new NativeBackend(io, r.queue, 'batch', depth, uringReason);
  const reason = `native batch queue failed: ${errnoText(r.errno)}`;
  if (kind === 'native') throw new IoBackendError(reason);
  return new JsBackend(reason);
}

function checkSubmit(op: number, fd: number, offset: number, buf: Uint8Array | null, tag: number): void {
  if (op !== IO_READ && op !== IO_WRITE && op !== IO_FDATASYNC) throw new RangeError(`io op must be IO_READ (0), IO_WRITE (1) or IO_FDATASYNC (2), got ${op}`);
  if ((fd | 0) !== fd || fd < 0) throw new RangeError(`io fd must be an integer in 0..2147483647, got ${fd}`);
  if (!(offset >= 0 && offset <= Number.MAX_SAFE_INTEGER) || Math.floor(offset) !== offset)
    throw new RangeError(`io offset must be an integer in 0..2^53-1 bytes, got ${offset}`);
  if (tag >>> 0 !== tag) throw new RangeError(`io tag must be an integer in 0..4294967295, got ${tag}`);
  if (op !== IO_FDATASYNC) {
    if (buf === null) throw new RangeError('io buffer is required for reads and writes');
    if (buf.length > MAX_IO_BYTES) throw new RangeError(`io buffer length must be at most ${MAX_IO_BYTES} bytes, got ${buf.length}`);
  }
}

function errnoResult(err: unknown): number {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.errno === 'number' && e.errno !== 0) return -Math.abs(e.errno);
  throw err;
}

class JsBackend implements IoBackend {
  readonly kind = 'js' as const;
  readonly mechanism = 'sync' as const;
  readonly depth = 1;
  private has = false;
  private tag = 0;
  private result = 0;
  private closed = false;

  constructor(readonly fallbackReason: string | undefined) {}

  get inFlight(): number {
    return this.has ? 1 : 0;
  }

  get ready(): number {
    return this.has ? 1 : 0;
  }

  submit(op: IoOp, fd: number, offsetBytes: number, buf: Uint8Array | null, tag: number): void {
    if (this.closed) throw new RangeError('io backend is closed');
    checkSubmit(op, fd, offsetBytes, buf, tag);
    if (this.has) throw new RangeError('io queue full (js backend, depth 1): poll() the previous completion first');
    let r: number;
    try {
      if (op === IO_READ) r = fs.readSync(fd, buf!, 0, buf!.length, offsetBytes);
      else if (op === IO_WRITE) r = fs.writeSync(fd, buf!, 0, buf!.length, offsetBytes);
      else {
        fs.fdatasyncSync(fd);
        r = 0;
      }
    } catch (err) {
      r = errnoResult(err);
    }
    this.tag = tag;
    this.result = r;
    this.has = true;
  }

  flush(): number {
    return 0;
  }

  poll(max: number, outTags: Uint32Array, outResults: Int32Array): number {
    if (!this.has || max < 1 || outTags.length < 1 || outResults.length < 1) return 0;
    outTags[0] = this.tag;
    outResults[0] = this.result;
    this.has = false;
    return 1;
  }

  waitAtLeast(_k: number): number {
    return this.ready;
  }

  close(): void {
    this.closed = true;
    this.has = false;
  }
}

class NativeBackend implements IoBackend {
  readonly kind = 'native' as const;
  private readonly ops: Uint32Array;
  private readonly compTag: Uint32Array;
  private readonly compRes: Int32Array;
  /** Per slot (the user_data the kernel sees): the caller's tag and the buffer kept alive until polled. */
  private readonly slotTag: Uint32Array;
  private readonly slotBuf: Array<Uint8Array | null>;
  private readonly freeSlots: Int32Array;
  private freeTop: number;
  private staged = 0;
  private cHead = 0;
  private cCount = 0;
  private queue: QueueHandle | null;
  private readonly sys: Libc = libc();

  constructor(
    private readonly io: NativeIo,
    queue: QueueHandle,
    readonly mechanism: 'batch' | 'io_uring',
    readonly depth: number,
    readonly fallbackReason: string | undefined,
  ) {
    this.queue = queue;
    const v = io.queueViews(queue);
    this.ops = v.ops;
    this.compTag = v.compTag;
    this.compRes = v.compRes;
    this.slotTag = new Uint32Array(depth);
    this.slotBuf = new Array<Uint8Array | null>(depth).fill(null);
    this.freeSlots = new Int32Array(depth);
    for (let i = 0; i < depth; i++) this.freeSlots[i] = depth - 1 - i;
    this.freeTop = depth;
  }

  get inFlight(): number {
    return this.depth - this.freeTop;
  }

  get ready(): number {
    return this.cCount - this.cHead;
  }

  /** io_uring details for status output: ring sizes and the setup flags in force. */
  info(): ReturnType<NativeIo['queueInfo']> {
    return this.io.queueInfo(this.handle());
  }

  submit(op: IoOp, fd: number, offsetBytes: number, buf: Uint8Array | null, tag: number): void {
    this.handle();
    checkSubmit(op, fd, offsetBytes, buf, tag);
    if (this.freeTop === 0) throw new RangeError(`io queue full (native ${this.mechanism}, depth ${this.depth}): poll() completions first`);
    let addr = 0;
    let len = 0;
    if (op !== IO_FDATASYNC) {
      addr = this.addressOf(buf!);
      len = buf!.length;
    }
    const slot = this.freeSlots[--this.freeTop];
    this.slotTag[slot] = tag;
    this.slotBuf[slot] = op === IO_FDATASYNC ? null : buf;
    encodeOp(this.ops, this.staged, op, fd, offsetBytes, len, addr, slot);
    // While the device still works on earlier operations, hand new ones over a few at a time, not
    // all at the next wait: a device fed in bursts of `depth` answers in bursts of `depth` and idles
    // between them (O_DIRECT 4k reads at depth 32 here: ~82k IOPS in bursts, ~118k four at a time;
    // fio submits each one). Page-cache reads complete inside the submitting call, so nothing is
    // left in the kernel and they keep going in whole batches (fewer calls).
    if (++this.staged >= SUBMIT_EVERY && this.mechanism === 'io_uring' && this.depth - this.freeTop - (this.cCount - this.cHead) - this.staged > 0)
      this.enter(0);
  }

  flush(): number {
    const n = this.staged;
    if (n > 0) this.enter(0);
    return n;
  }

  poll(max: number, outTags: Uint32Array, outResults: Int32Array): number {
    if (this.cHead === this.cCount) {
      if (this.freeTop === this.depth) return 0;
      this.enter(0);
    }
    let n = this.cCount - this.cHead;
    if (max < n) n = max;
    if (outTags.length < n) n = outTags.length;
    if (outResults.length < n) n = outResults.length;
    const h = this.cHead;
    for (let i = 0; i < n; i++) {
      const slot = this.compTag[h + i];
      outTags[i] = this.slotTag[slot];
      outResults[i] = this.compRes[h + i];
      this.slotBuf[slot] = null;
      this.freeSlots[this.freeTop++] = slot;
    }
    this.cHead = h + n;
    if (this.cHead === this.cCount) this.cHead = this.cCount = 0;
    return n;
  }

  waitAtLeast(k: number): number {
    const ready = this.cCount - this.cHead;
    const outstanding = this.depth - this.freeTop;
    const need = (k < outstanding ? k : outstanding) - ready;
    if (need > 0 || this.staged > 0) this.enter(need > 0 ? need : 0);
    return this.cCount - this.cHead;
  }

  close(): void {
    if (this.queue === null) return;
    const q = this.queue;
    this.queue = null;
    this.io.queueClose(q);
    this.slotBuf.fill(null);
    this.staged = 0;
    this.cHead = this.cCount = 0;
    this.freeTop = this.depth;
  }

  private handle(): QueueHandle {
    if (this.queue === null) throw new RangeError('io backend is closed');
    return this.queue;
  }

  private enter(wait: number): void {
    const q = this.handle();
    if (this.cHead > 0) {
      this.compTag.copyWithin(0, this.cHead, this.cCount);
      this.compRes.copyWithin(0, this.cHead, this.cCount);
      this.cCount -= this.cHead;
      this.cHead = 0;
    }
    const n = this.staged;
    const got = this.io.queueEnter(q, n, wait, this.cCount, this.depth - this.cCount);
    if (got < 0) {
      // The staged operations are in the submission ring already; the next enter retries them.
      this.staged = 0;
      throw new IoBackendError(`io_uring_enter failed: ${errnoText(-got)}`);
    }
    this.staged = 0;
    this.cCount += got;
  }

  private addressOf(buf: Uint8Array): number {
    const at = this.sys.addressIfKnown(buf);
    if (at < 0) throw new RangeError('io buffer for the native backend must be native memory (allocAligned, or markAligned), not a JavaScript-heap Uint8Array');
    return at;
  }
}

/** For status output: the io_uring ring details of a native io_uring backend, or undefined. */
export function ioBackendInfo(b: IoBackend): ReturnType<NativeIo['queueInfo']> | undefined {
  return b instanceof NativeBackend ? b.info() : undefined;
}
