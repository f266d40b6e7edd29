/**
 * The libc calls Node does not offer, through koffi. Loaded once, lazily, so a
 * module that never needs them never touches FFI; everything that needs them
 * takes a `Libc` (default: `libc()`), so the binding is handed in, not imported
 * everywhere.
 */
import { createRequire } from 'node:module';
import { EXIT_ENVIRONMENT, RemapsimError } from '../util/errors.js';

const require = createRequire(import.meta.url);

export interface Libc {
  /** ioctl whose argument is a pointer to one u64 the kernel fills in. */
  ioctlGetU64(fd: number, request: number): number;
  /** ioctl whose argument is a pointer to one int the kernel fills in. */
  ioctlGetInt(fd: number, request: number): number;
  /** ioctl with a pointer to a buffer (in/out). */
  ioctlBuffer(fd: number, request: number, buf: Uint8Array): number;
  /** ioctl with an integer argument; returns the call's result. */
  ioctlInt(fd: number, request: number, arg: number): number;
  /** fallocate(2); throws SysError on failure. */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /** posix_memalign + a view of that memory; free it with `freeAligned`. */
  allocAligned(alignment: number, size: number): { ptr: unknown; buf: Uint8Array };
  freeAligned(ptr: unknown): void;
  /** sched_setaffinity(0, ...) for the calling thread; returns false when the kernel refuses. */
  setAffinity(cpus: number[]): boolean;
  /** sched_getcpu() */
  getCpu(): number;
  /**
   * pread(2) and pwrite(2) into or from `buf` whole: bytes moved (fewer only at
   * the end of a file), or -errno. The data path's syscalls: about 400 ns
   * cheaper per call than fs.readSync/writeSync, which validate their
   * arguments and build an error context on every call.
   */
  pread(fd: number, buf: Uint8Array, position: number): number;
  /** The address of buf's first byte (memory behind a typed array does not move). */
  addressOf(buf: Uint8Array): number;
  /** The address of buf's first byte when it lies in memory allocated or remembered here, else -1 (no FFI call). */
  addressIfKnown(buf: Uint8Array): number;
  /**
   * Remembers where native memory allocated elsewhere lives (a koffi.view of
   * posix_memalign memory), so pread/pwrite hand its address to the kernel
   * without koffi resolving the typed array on every call. allocAligned's
   * memory is remembered already. Forget it before it is freed.
   */
  rememberMemory(buffer: ArrayBufferLike): void;
  forgetMemory(buffer: ArrayBufferLike): void;
  /** madvise(2) on [address, address + length); false when the kernel refuses. */
  madvise(address: number, length: number, advice: number): boolean;
  /** setsockopt(2) with an int value; false when the kernel refuses. */
  setsockoptInt(fd: number, level: number, name: number, value: number): boolean;
  pwrite(fd: number, buf: Uint8Array, position: number): number;
  /**
   * mmap(2) of [offset, offset + length) of `fd`, read-only and shared (it
   * sees every write to the file). Only the kernel should read it (a socket
   * write): a page past the end of a file that shrank then fails that call
   * with EFAULT, where a read from JavaScript would kill the process (SIGBUS).
   */
  mapReadOnly(fd: number, offset: number, length: number): { ptr: unknown; address: number; buf: Uint8Array };
  /**
   * Ends a mapReadOnly mapping by mapping zero pages over it (MAP_FIXED,
   * anonymous): the file is let go, and a view someone kept reads zeroes
   * instead of faulting. The address range stays reserved (no memory).
   */
  retireMapping(ptr: unknown, length: number): void;
  /** mincore(2): one byte per page of [address, address + length) into `vec` (bit 0: in memory). 0, or -errno. */
  mincore(address: number, length: number, vec: Uint8Array): number;
  /**
   * An open file description lock over the whole file (fcntl F_OFD_SETLK):
   * 'write' takes it exclusively (the fd must be open for writing), 'unlock'
   * drops it. 0, or -errno (EAGAIN: another open file description holds a
   * conflicting lock). It lasts until the last fd of this open file
   * description is closed.
   */
  ofdSetLock(fd: number, type: 'write' | 'unlock'): number;
  /**
   * fcntl F_OFD_GETLK for a whole-file write lock: the kind of lock another
   * open file description holds on the file ('read' or 'write'), or
   * undefined when none would conflict. Works on an fd opened read-only.
   */
  ofdGetLock(fd: number): 'read' | 'write' | undefined;
  /** lseek(2): the resulting offset, or -errno (SEEK_DATA with no data from `offset` on: -ENXIO). */
  lseek(fd: number, offset: number, whence: number): number;
}

export class SysError extends RemapsimError {
  override readonly name = 'SysError';
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: ${errnoText(errno)}`, EXIT_ENVIRONMENT);
  }
}

const ERRNO_TEXT: Record<number, string> = {
  1: 'EPERM (operation not permitted)',
  2: 'ENOENT (no such file or directory)',
  5: 'EIO (input/output error)',
  6: 'ENXIO (no such device or address)',
  9: 'EBADF (bad file descriptor)',
  12: 'ENOMEM (out of memory)',
  11: 'EAGAIN (resource temporarily unavailable)',
  13: 'EACCES (permission denied)',
  16: 'EBUSY (device or resource busy)',
  17: 'EEXIST (file exists)',
  19: 'ENODEV (no such device)',
  22: 'EINVAL (invalid argument)',
  25: 'ENOTTY (inappropriate ioctl for device)',
  27: 'EFBIG (file too large)',
  28: 'ENOSPC (no space left on device)',
  30: 'EROFS (read-only file system)',
  61: 'ENODATA (no data available)',
  84: 'EILSEQ (invalid or incomplete multibyte or wide character)',
  95: 'EOPNOTSUPP (operation not supported)',
  116: 'ESTALE (stale file handle)',
  122: 'EDQUOT (disk quota exceeded)',
};

export function errnoText(errno: number): string {
  return ERRNO_TEXT[errno] ?? `errno ${errno}`;
}

let cached: Libc | undefined;

export function libc(): Libc {
  cached ??= loadLibc();
  return cached;
}

function loadLibc(): Libc {
  const koffi = require('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  const ioctlU64 = lib.func('ioctl', 'int', ['int', 'unsigned long', koffi.out(koffi.pointer('uint64_t'))]);
  const ioctlI32 = lib.func('ioctl', 'int', ['int', 'unsigned long', koffi.out(koffi.pointer('int'))]);
  const ioctlBuf = lib.func('ioctl', 'int', ['int', 'unsigned long', koffi.inout(koffi.pointer('uint8_t'))]);
  const ioctlArg = lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']);
  const fallocate = lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');
  const posixMemalign = lib.func('int posix_memalign(_Out_ void **p, size_t alignment, size_t size)');
  const free = lib.func('void free(void *p)');
  const schedSetaffinity = lib.func('int sched_setaffinity(int pid, size_t size, const uint8_t *mask)');
  const schedGetcpu = lib.func('int sched_getcpu()');
  // void *: koffi hands over the typed array's own memory (no copy in or out)
  const pread = lib.func('long pread(int fd, void *buf, size_t n, int64_t off)');
  const pwrite = lib.func('long pwrite(int fd, const void *buf, size_t n, int64_t off)');
  // the same calls given an address: ~75 ns cheaper than handing koffi a typed array to resolve
  const preadAt = lib.func('long pread(int fd, uintptr_t buf, size_t n, int64_t off)');
  const pwriteAt = lib.func('long pwrite(int fd, uintptr_t buf, size_t n, int64_t off)');
  /** Base addresses of the native memory this thread allocated or remembered here (it never moves). */
  const knownAddress = new WeakMap<ArrayBufferLike, number>();
  // The last view resolved, and its address (-1: not known memory). A loop that reuses one
  // buffer view skips the lookup, whose `.buffer` read is a call into the runtime (~25 ns).
  let lastView: Uint8Array | undefined;
  let lastAt = -1;
  const addressIfKnown = (buf: Uint8Array): number => {
    if (buf === lastView) return lastAt;
    const base = knownAddress.get(buf.buffer);
    lastView = buf;
    lastAt = base === undefined ? -1 : base + buf.byteOffset;
    return lastAt;
  };
  const madvise = lib.func('int madvise(uintptr_t addr, size_t len, int advice)');
  const setsockopt = lib.func('int setsockopt(int fd, int level, int name, const int *value, int len)');
  // memset(p, 0, 0) changes nothing and returns p: the pointer koffi passed for a typed array
  const memsetPtr = lib.func('void *memset(void *s, int c, size_t n)');
  const mmap = lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)');
  const mincore = lib.func('int mincore(uintptr_t addr, size_t len, _Out_ uint8_t *vec)');
  // fcntl is variadic; its lock argument is a pointer, passed as ioctl's is above
  const fcntlLock = lib.func('fcntl', 'int', ['int', 'int', koffi.inout(koffi.pointer('uint8_t'))]);
  const lseek = lib.func('int64_t lseek(int fd, int64_t offset, int whence)');

  // loaded once: koffi's exports object is slow to read from (a megamorphic load on every call)
  const errno = koffi.errno;
  const address = koffi.address;
  const check = (call: string, rc: number): number => {
    if (rc < 0) throw new SysError(call, errno());
    return rc;
  };

  return {
    ioctlGetU64(fd, request) {
      const out = [0];
      check(`ioctl(0x${request.toString(16)})`, ioctlU64(fd, request, out));
      return Number(out[0]);
    },
    ioctlGetInt(fd, request) {
      const out = [0];
      check(`ioctl(0x${request.toString(16)})`, ioctlI32(fd, request, out));
      return out[0];
    },
    ioctlBuffer(fd, request, buf) {
      return check(`ioctl(0x${request.toString(16)})`, ioctlBuf(fd, request, buf));
    },
    ioctlInt(fd, request, arg) {
      return check(`ioctl(0x${request.toString(16)})`, ioctlArg(fd, request, arg));
    },
    fallocate(fd, mode, offset, length) {
      check('fallocate', fallocate(fd, mode, offset, length));
    },
    allocAligned(alignment, size) {
      const out: unknown[] = [null];
      const rc = posixMemalign(out, alignment, size);
      if (rc !== 0) throw new SysError('posix_memalign', rc);
      const ab = koffi.view(out[0], size) as ArrayBuffer;
      knownAddress.set(ab, Number(address(out[0])));
      return { ptr: out[0], buf: new Uint8Array(ab) };
    },
    freeAligned(ptr) {
      free(ptr);
    },
    setAffinity(cpus) {
      const mask = new Uint8Array(128);
      for (const c of cpus) mask[c >>> 3] |= 1 << (c & 7);
      return schedSetaffinity(0, mask.length, mask) === 0;
    },
    getCpu() {
      return schedGetcpu();
    },
    pread(fd, buf, position) {
      const at = addressIfKnown(buf);
      if (at >= 0) return transferAt(preadAt, fd, at, buf.length, position, errno);
      return transferAll(pread, fd, buf, position, errno);
    },
    pwrite(fd, buf, position) {
      const at = addressIfKnown(buf);
      if (at >= 0) return transferAt(pwriteAt, fd, at, buf.length, position, errno);
      return transferAll(pwrite, fd, buf, position, errno);
    },
    addressOf(buf) {
      return Number(address(memsetPtr(buf, 0, 0)));
    },
    addressIfKnown,
    madvise(addr, length, advice) {
      return madvise(addr, length, advice) === 0;
    },
    setsockoptInt(fd, level, name, value) {
      return setsockopt(fd, level, name, [value], 4) === 0;
    },
    rememberMemory(buffer) {
      if (buffer.byteLength > 0) knownAddress.set(buffer, Number(address(memsetPtr(new Uint8Array(buffer, 0, 1), 0, 0))));
      lastView = undefined; // a view of it may have been looked up, and cached as unknown, before
      lastAt = -1;
    },
    forgetMemory(buffer) {
      knownAddress.delete(buffer);
      lastView = undefined;
      lastAt = -1;
    },
    mapReadOnly(fd, offset, length) {
      const ptr = mmap(null, length, PROT_READ, MAP_SHARED, fd, offset);
      if (address(ptr) === MAP_FAILED) throw new SysError('mmap', errno());
      return { ptr, address: Number(address(ptr)), buf: new Uint8Array(koffi.view(ptr, length) as ArrayBuffer) };
    },
    mincore(at, length, vec) {
      return mincore(at, length, vec) === 0 ? 0 : -errno();
    },
    ofdSetLock(fd, type) {
      const lk = flockBytes(type === 'write' ? F_WRLCK : F_UNLCK);
      return fcntlLock(fd, F_OFD_SETLK, lk) === 0 ? 0 : -errno();
    },
    ofdGetLock(fd) {
      const lk = flockBytes(F_WRLCK);
      if (fcntlLock(fd, F_OFD_GETLK, lk) !== 0) throw new SysError('fcntl(F_OFD_GETLK)', errno());
      const type = new DataView(lk.buffer).getInt16(0, true);
      return type === F_RDLCK ? 'read' : type === F_WRLCK ? 'write' : undefined;
    },
    lseek(fd, offset, whence) {
      const at = Number(lseek(fd, offset, whence));
      return at < 0 ? -errno() : at;
    },
    retireMapping(ptr, length) {
      if (address(mmap(ptr, length, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)) === MAP_FAILED) throw new SysError('mmap', errno());
    },
  };
}

const EINTR = 4;
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;

/** struct flock (64-bit Linux: l_type, l_whence, l_start, l_len, l_pid at 0, 2, 8, 16, 24) for the whole file. */
function flockBytes(type: number): Uint8Array {
  const b = new Uint8Array(32);
  new DataView(b.buffer).setInt16(0, type, true); // l_whence SEEK_SET, l_start 0, l_len 0 (to the end, however it grows)
  return b;
}
const PROT_READ = 1;
const MAP_SHARED = 1;
const MAP_PRIVATE = 2;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_FAILED = 0xffffffffffffffffn;

/**
 * After a first pread/pwrite that moved `first` of `len` bytes (or failed):
 * repeats the rest with `again(done)` until all is done, end of file (0) or
 * an error other than EINTR. Returns the bytes moved, or -errno.
 */
function finishTransfer(first: number, len: number, errno: () => number, again: (done: number) => number): number {
  let done = 0;
  let rc = first;
  for (;;) {
    if (rc < 0) {
      const e = errno();
      if (e !== EINTR) return -e;
    } else if (rc === 0) return done;
    else done += rc;
    if (done === len) return done;
    rc = again(done);
  }
}

/** A pread/pwrite of all of `buf`: the usual case is one call; the rest (and its closure) only when it moved less. */
function transferAll(
  call: (fd: number, buf: Uint8Array, n: number, off: number) => number,
  fd: number,
  buf: Uint8Array,
  position: number,
  errno: () => number,
): number {
  const len = buf.length;
  const n = call(fd, buf, len, position);
  if (n === len) return n;
  return finishTransfer(n, len, errno, (done) => call(fd, buf.subarray(done), len - done, position + done));
}

/** transferAll for memory given by address. */
function transferAt(
  call: (fd: number, at: number, n: number, off: number) => number,
  fd: number,
  at: number,
  len: number,
  position: number,
  errno: () => number,
): number {
  const n = call(fd, at, len, position);
  if (n === len) return n;
  return finishTransfer(n, len, errno, (done) => call(fd, at + done, len - done, position + done));
}

/** Linux ioctl request numbers used by more than one module. */
export const BLKGETSIZE64 = 0x80081272;
export const BLKSSZGET = 0x1268;
export const BLKDISCARD = 0x1277;
export const BLKFLSBUF = 0x1261;
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
