/**
 * The optional native I/O library (native/remapsim_io.c, built by
 * `npm run build:native` into native/build/libremapsim_io.so), loaded with
 * koffi on first use. Importing this module never touches FFI and never
 * throws: `nativeIoStatus()` says whether the library is there and, if not,
 * why (not built, disabled with REMAPSIM_NATIVE=0, built for another ABI).
 *
 * Operations are exchanged through native memory the library owns (a staging
 * table of 32-byte records, and completion arrays) that JavaScript reads and
 * writes through koffi views, so a call carries only a few integers.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clockOriginNanos, clockOriginSeconds } from '../util/clock.js';

const require = createRequire(import.meta.url);

/** Must match RS_ABI_VERSION in native/remapsim_io.c. */
export const NATIVE_ABI_VERSION = 2;
/** Largest queue depth the library accepts. */
export const NATIVE_MAX_DEPTH = 4096;
/** 32-bit words per operation record (struct rs_op). */
export const OP_WORDS = 8;

/** An operation record's op (RS_OP_* in native/remapsim_io.c). */
export const IO_READ = 0;
export const IO_WRITE = 1;
/** fdatasync(2) of the fd; the buffer and offset are ignored. */
export const IO_FDATASYNC = 2;

export const QUEUE_MODE_BATCH = 0;
export const QUEUE_MODE_URING = 1;

/** io_uring setup flags (linux/io_uring.h). */
export const IORING_SETUP_SUBMIT_ALL = 1 << 7;
export const IORING_SETUP_COOP_TASKRUN = 1 << 8;
export const IORING_SETUP_TASKRUN_FLAG = 1 << 9;
export const IORING_SETUP_SINGLE_ISSUER = 1 << 12;
export const IORING_SETUP_DEFER_TASKRUN = 1 << 13;
/**
 * The flags a queue asks for by default; the library drops those an older
 * kernel refuses. SINGLE_ISSUER + DEFER_TASKRUN (6.1+): completions are
 * processed only when the owning thread enters the kernel, which it does
 * anyway to submit or wait; a ring therefore belongs to the thread that
 * created it (as any JS object does). TASKRUN_FLAG tells a poll on a 5.19-6.0
 * kernel (COOP_TASKRUN without DEFER_TASKRUN) when it must enter to see them.
 */
export const DEFAULT_URING_FLAGS =
  IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;

/** The package root: this file lives in src/engine (or dist/engine after a build). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NATIVE_LIB_PATH = path.join(ROOT, 'native', 'build', 'libremapsim_io.so');

/** An open rs_queue: the native pointer (a koffi external) and its depth. */
export interface QueueHandle {
  readonly ptr: unknown;
  readonly depth: number;
}

export interface QueueInfo {
  mode: number;
  depth: number;
  /** io_uring only: the ring sizes the kernel chose. */
  sqEntries: number;
  cqEntries: number;
  /** io_uring only: the setup flags in force (after dropping unsupported ones), and the kernel's feature bits. */
  setupFlags: number;
  features: number;
}

export interface QueueViews {
  /** The staging table: OP_WORDS u32 words per op (addr lo/hi, offset lo/hi, len, fd, op, user_data). */
  ops: Uint32Array;
  /** Completions: user_data ... */
  compTag: Uint32Array;
  /** ... and the kernel's result (bytes or -errno). */
  compRes: Int32Array;
}

export interface NativeIo {
  readonly path: string;
  /** The address of an ArrayBuffer's first byte (a JS number; user-space addresses fit in 53 bits). */
  addressOf(buf: ArrayBufferLike | ArrayBufferView): number;
  /** rs_address: the pointer the library receives for `buf` (tests use it to check koffi passes memory, not a copy). */
  pointerSeenByC(buf: Uint8Array): number;
  /** rs_batch: runs n records from `table` (OP_WORDS words each; any Uint32Array, read during the call only) synchronously; results into `results`. */
  batch(table: Uint32Array, n: number, results: Int32Array): number;
  /**
   * rs_batch_timed: as batch, one op after another, with `times[0]` the clock
   * before the first and `times[i + 1]` after op i, in the data path's clock
   * (realClock's nanoseconds).
   */
  batchTimed(table: Uint32Array, n: number, results: Int32Array, times: Float64Array): number;
  /** rs_queue_open: a queue, or the errno why not (EINVAL, ENOMEM, or io_uring_setup's: ENOSYS, EPERM, ...). */
  queueOpen(depth: number, mode: number, flags: number): { queue: QueueHandle } | { errno: number };
  queueViews(q: QueueHandle): QueueViews;
  queueInfo(q: QueueHandle): QueueInfo;
  /** rs_queue_enter: submits n staged ops, waits for `wait` completions, copies up to max of them from index dst. The count copied, or -errno. */
  queueEnter(q: QueueHandle, n: number, wait: number, dst: number, max: number): number;
  /** rs_queue_close: waits for in-flight operations, then frees the queue. */
  queueClose(q: QueueHandle): void;
}

export type NativeIoStatus = { available: true; io: NativeIo } | { available: false; reason: string };

let cached: NativeIoStatus | undefined;

/** Loads the library once per thread; later calls return the same answer. */
export function nativeIoStatus(): NativeIoStatus {
  cached ??= load(process.env.REMAPSIM_NATIVE, NATIVE_LIB_PATH);
  return cached;
}

/** Forgets the cached load result (after `npm run build:native` in the same process, e.g. in tests). */
export function resetNativeIo(): void {
  cached = undefined;
}

/** Loads a specific library file (tests, or a build elsewhere); `env` plays the part of REMAPSIM_NATIVE (pass process.env.REMAPSIM_NATIVE to honour it). */
export function loadNativeIo(libPath: string, env: string | undefined): NativeIoStatus {
  return load(env, libPath);
}

function load(env: string | undefined, libPath: string): NativeIoStatus {
  if (env === '0' || env === 'false' || env === 'off') return { available: false, reason: `native I/O disabled by REMAPSIM_NATIVE=${env}` };
  if (!fs.existsSync(libPath))
    return {
      available: false,
      reason: `native I/O library not built: ${path.relative(process.cwd(), libPath) || libPath} is missing (run npm run build:native)`,
    };
  if (process.platform !== 'linux') return { available: false, reason: `native I/O needs Linux, this is ${process.platform}` };
  try {
    return { available: true, io: bind(libPath) };
  } catch (err) {
    return { available: false, reason: `native I/O library ${libPath} did not load: ${(err as Error).message.split('\n')[0]}` };
  }
}

function bind(libPath: string): NativeIo {
  const koffi = require('koffi') as typeof import('koffi');
  const lib = koffi.load(libPath);
  const abi = lib.func('int rs_abi_version()')() as number;
  if (abi !== NATIVE_ABI_VERSION) {
    throw new Error(`ABI version ${abi}, this code expects ${NATIVE_ABI_VERSION} (rebuild with npm run build:native)`);
  }
  const rsAddress = lib.func('uint64_t rs_address(const void *p)');
  const rsBatch = lib.func('int rs_batch(const void *ops, uint32_t n, _Inout_ int32_t *res)');
  const rsBatchTimed = lib.func(
    'int rs_batch_timed(const void *ops, uint32_t n, _Inout_ int32_t *res, _Inout_ double *t, int64_t origin_s, int64_t origin_ns)',
  );
  const rsQueueOpen = lib.func('void *rs_queue_open(uint32_t depth, int mode, uint32_t flags, _Out_ int32_t *err)');
  const rsQueueOps = lib.func('void *rs_queue_ops(void *q)');
  const rsQueueCompUd = lib.func('void *rs_queue_comp_ud(void *q)');
  const rsQueueCompRes = lib.func('void *rs_queue_comp_res(void *q)');
  const rsQueueInfo = lib.func('void rs_queue_info(void *q, _Out_ uint32_t *out)');
  const rsQueueEnter = lib.func('int rs_queue_enter(void *q, uint32_t n, uint32_t wait, uint32_t dst, uint32_t max)');
  const rsQueueClose = lib.func('void rs_queue_close(void *q)');

  return {
    path: libPath,
    addressOf(buf) {
      return Number(koffi.address(buf));
    },
    pointerSeenByC(buf) {
      return Number(rsAddress(buf));
    },
    batch(table, n, results) {
      checkBatch(table, n, results, n);
      return rsBatch(table, n, results) as number;
    },
    batchTimed(table, n, results, times) {
      checkBatch(table, n, results, times.length - 1);
      return rsBatchTimed(table, n, results, times, clockOriginSeconds(), clockOriginNanos()) as number;
    },
    queueOpen(depth, mode, flags) {
      const err = [0];
      const ptr = rsQueueOpen(depth, mode, flags >>> 0, err) as unknown;
      if (ptr === null) return { errno: err[0] || 22 };
      return { queue: { ptr, depth } };
    },
    queueViews(q) {
      return {
        ops: new Uint32Array(koffi.view(rsQueueOps(q.ptr), q.depth * OP_WORDS * 4)),
        compTag: new Uint32Array(koffi.view(rsQueueCompUd(q.ptr), q.depth * 4)),
        compRes: new Int32Array(koffi.view(rsQueueCompRes(q.ptr), q.depth * 4)),
      };
    },
    queueInfo(q) {
      const out = new Uint32Array(6);
      rsQueueInfo(q.ptr, out);
      return { mode: out[0], depth: out[1], sqEntries: out[2], cqEntries: out[3], setupFlags: out[4], features: out[5] };
    },
    queueEnter(q, n, wait, dst, max) {
      return rsQueueEnter(q.ptr, n, wait, dst, max) as number;
    },
    queueClose(q) {
      rsQueueClose(q.ptr);
    },
  };
}

/** Refuses a batch of `n` ops that its table, results or (timed) clock readings cannot hold. */
function checkBatch(table: Uint32Array, n: number, results: Int32Array, timesFor: number): void {
  if (n > results.length || n * OP_WORDS > table.length || n > timesFor)
    throw new RangeError(
      `batch of ${n} ops does not fit its table (${table.length / OP_WORDS} ops), results (${results.length}) or clock readings (${timesFor + 1})`,
    );
}

/**
 * Writes one operation record into a staging table (OP_WORDS u32 words per
 * record, little-endian u64 halves), without allocating.
 */
export function encodeOp(table: Uint32Array, index: number, op: number, fd: number, offset: number, len: number, addr: number, userData: number): void {
  const w = index * OP_WORDS;
  table[w] = addr >>> 0;
  table[w + 1] = (addr / 4294967296) >>> 0;
  table[w + 2] = offset >>> 0;
  table[w + 3] = (offset / 4294967296) >>> 0;
  table[w + 4] = len;
  table[w + 5] = fd;
  table[w + 6] = op;
  table[w + 7] = userData;
}
