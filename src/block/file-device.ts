import * as fs from 'node:fs';
import {
  type BlockDevice,
  type IoStatus,
  type MappedReads,
  type LogicalBlockSize,
  type WriteFlags,
  checkIo,
  checkRequest,
  EIO,
  ENOENT,
  ENXIO,
  OK,
  SECTOR_SHIFT,
  SECTOR_SIZE,
} from './device.js';
import { type AlignedBuffer, allocAligned, isAligned } from './aligned.js';
import { claimWriter, describeBusyBlockDevice, writerHolding } from './claim.js';
import {
  BLKDISCARD,
  BLKGETSIZE64,
  BLKSSZGET,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  type Libc,
  libc,
  SEEK_DATA,
  SEEK_HOLE,
  SysError,
} from '../sys/libc.js';
import { RemapsimError } from '../util/errors.js';

/** Bytes of a file one mapping of mappedRead covers; a range across two windows is not mapped. */
const MAP_WINDOW = 1 << 30;
const PAGE = 4096;

export interface FileDeviceOptions {
  readOnly?: boolean;
  /**
   * Open with O_DIRECT; unaligned caller buffers bounce through an aligned one.
   * 'block': O_DIRECT for a block device, buffered for a regular file (what a
   * reader of data the kernel writes with bios, past the page cache, needs).
   */
  direct?: boolean | 'block';
  /** Regular files only: the logical block size to present (default 512). */
  logicalBlockSize?: LogicalBlockSize;
  /** Regular files only: the size to present; the file must be at least this big. Default: the file's size. */
  sectors?: number;
  /**
   * A writer's claim (src/block/claim.ts): a whole-file OFD write lock, and
   * O_EXCL on a block device. A file or device another writer holds is
   * refused with DeviceBusyError naming it; the claim ends at close().
   * Every model and writer opens its backing so; readers do not.
   */
  exclusive?: boolean;
  /** Injected libc (tests, or machines without it). */
  sys?: Libc;
}

/** A user mistake in opening a device: reported as one line, never a stack trace. */
export class DeviceOpenError extends RemapsimError {
  override readonly name: string = 'DeviceOpenError';
}

/** Another writer holds the file or device (an exclusive open was refused). */
export class DeviceBusyError extends DeviceOpenError {
  override readonly name = 'DeviceBusyError';
}

/**
 * A regular file or a block device (/dev/loopN, /dev/mapper/x), opened once and
 * kept open. Block devices report their size (BLKGETSIZE64) and logical block
 * size (BLKSSZGET) through ioctls.
 */
export class FileDevice implements BlockDevice, MappedReads {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  readonly isBlockDevice: boolean;
  readonly direct: boolean;
  readonly readOnly: boolean;
  private fd: number;
  private readonly sys: Libc;
  private bounce: AlignedBuffer | undefined;
  /** mappedRead's windows of the file, by index (window w covers bytes [w, w + 1) * MAP_WINDOW). */
  private readonly maps = new Map<number, { ptr: unknown; address: number; buf: Uint8Array }>();
  private residency: Uint8Array | undefined;
  private mapRefused = false;

  private constructor(path: string, fd: number, sectors: number, lbs: LogicalBlockSize, isBlock: boolean, opts: FileDeviceOptions, sys: Libc) {
    this.name = path;
    this.fd = fd;
    this.sectors = sectors;
    this.logicalBlockSize = lbs;
    this.isBlockDevice = isBlock;
    this.direct = opts.direct === 'block' ? isBlock : opts.direct === true;
    this.readOnly = opts.readOnly ?? false;
    this.sys = sys;
  }

  static open(path: string, opts: FileDeviceOptions = {}): FileDevice {
    let st: fs.Stats;
    try {
      st = fs.statSync(path);
    } catch (err) {
      throw new DeviceOpenError(`cannot open ${path}: ${describeFsError(err)}`);
    }
    const isBlock = st.isBlockDevice();
    if (!isBlock && !st.isFile()) throw new DeviceOpenError(`cannot open ${path}: not a regular file or block device`);
    if (opts.exclusive && opts.readOnly) throw new RangeError(`${path}: a writer's (exclusive) open cannot be read-only`);
    let flags = opts.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
    if (opts.direct === true || (opts.direct === 'block' && isBlock)) flags |= fs.constants.O_DIRECT;
    // O_EXCL on a block device is the kernel's exclusive claim (what mounts and dm tables take)
    if (opts.exclusive && isBlock) flags |= fs.constants.O_EXCL;
    let fd: number;
    try {
      fd = openNoAtime(path, flags);
    } catch (err) {
      if (opts.exclusive && isBlock && (err as NodeJS.ErrnoException).code === 'EBUSY') throw new DeviceBusyError(describeBusyBlockDevice(path));
      throw new DeviceOpenError(`cannot open ${path}: ${describeFsError(err)}`);
    }
    try {
      let sectors: number;
      let lbs: LogicalBlockSize;
      const sys = opts.sys ?? libc();
      if (opts.exclusive) {
        const holder = claimWriter(fd, path, sys);
        if (holder !== undefined) throw new DeviceBusyError(holder);
      }
      if (isBlock) {
        const bytes = sys.ioctlGetU64(fd, BLKGETSIZE64);
        const ssz = sys.ioctlGetInt(fd, BLKSSZGET);
        if (ssz !== 512 && ssz !== 4096) throw new DeviceOpenError(`${path}: unsupported logical block size ${ssz}`);
        lbs = ssz;
        sectors = Math.floor(bytes / SECTOR_SIZE);
        if (opts.sectors !== undefined && opts.sectors !== sectors) {
          if (opts.sectors > sectors) throw new DeviceOpenError(`${path}: holds ${sectors} sectors, fewer than the ${opts.sectors} asked for`);
          sectors = opts.sectors;
        }
      } else {
        lbs = opts.logicalBlockSize ?? 512;
        const fileSectors = Math.floor(st.size / SECTOR_SIZE);
        sectors = opts.sectors ?? fileSectors;
        if (sectors > fileSectors) {
          throw new DeviceOpenError(`${path}: file holds ${fileSectors} sectors (${st.size} bytes), fewer than the ${sectors} asked for`);
        }
      }
      const lbsSectors = lbs >>> SECTOR_SHIFT;
      sectors -= sectors % lbsSectors;
      if (sectors <= 0) throw new DeviceOpenError(`${path}: empty device (${st.size} bytes)`);
      return new FileDevice(path, fd, sectors, lbs, isBlock, opts, sys);
    } catch (err) {
      fs.closeSync(fd);
      if (err instanceof DeviceOpenError) throw err;
      if (err instanceof SysError) throw new DeviceOpenError(`${path}: ${err.message}`);
      throw err;
    }
  }

  /** Creates (or extends) a sparse regular file of `bytes` bytes. */
  static createSparse(path: string, bytes: number): void {
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    try {
      if (fs.fstatSync(fd).size < bytes) fs.ftruncateSync(fd, bytes);
    } finally {
      fs.closeSync(fd);
    }
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    checkIo(this, sector, buf);
    if (this.direct && !isAligned(buf)) return this.bounced(sector, buf, false);
    return this.pread(buf, sector * SECTOR_SIZE);
  }

  write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    checkIo(this, sector, buf);
    if (this.readOnly) return 30; // EROFS
    const rc = this.direct && !isAligned(buf) ? this.bounced(sector, buf, true) : this.pwrite(buf, sector * SECTOR_SIZE);
    if (rc === OK && flags?.fua) return this.flush();
    return rc;
  }

  /**
   * fdatasync, and then the check that the data has somewhere to be: a
   * regular file deleted (or replaced by a rename over it) fails with ENOENT,
   * one that shrank below the device's size with ENXIO (blocks past its end
   * are gone). Written data would otherwise vanish at close while every
   * flush said OK. One fstat per flush, never per read or write.
   */
  flush(): IoStatus {
    try {
      fs.fdatasyncSync(this.fd);
    } catch (err) {
      return errnoOf(err);
    }
    return this.backingStatus();
  }

  /** OK while the backing file is linked and at least the device's size (a block device: always OK). */
  backingStatus(): IoStatus {
    if (this.isBlockDevice) return OK;
    let st: fs.Stats;
    try {
      st = fs.fstatSync(this.fd);
    } catch (err) {
      return errnoOf(err);
    }
    if (st.nlink === 0) return ENOENT;
    if (st.size < this.sectors * SECTOR_SIZE) return ENXIO;
    return OK;
  }

  /**
   * Who holds a writer's claim on this file or device (see `exclusive`), or
   * undefined: for a reader to say that what it shows may change under it.
   */
  writerHolding(): string | undefined {
    return writerHolding(this.fd, this.name, this.sys);
  }

  /**
   * The ranges of a regular file that hold data ([start, end) in sectors, in
   * order; holes left out: SEEK_DATA / SEEK_HOLE), or undefined for a block
   * device. A file system that cannot tell shows the whole file as data.
   */
  dataExtents(): Array<[number, number]> | undefined {
    if (this.isBlockDevice) return undefined;
    const end = this.sectors * SECTOR_SIZE;
    const out: Array<[number, number]> = [];
    for (let at = 0; at < end; ) {
      const data = this.sys.lseek(this.fd, at, SEEK_DATA);
      if (data === -ENXIO) break; // no data from here on
      if (data < 0) return [[0, this.sectors]];
      if (data >= end) break;
      let hole = this.sys.lseek(this.fd, data, SEEK_HOLE);
      if (hole < 0 || hole > end) hole = end;
      out.push([Math.floor(data / SECTOR_SIZE), Math.ceil(hole / SECTOR_SIZE)]);
      at = hole;
    }
    return out;
  }

  discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    if (count === 0) return OK;
    if (this.readOnly) return 30;
    try {
      const sys = this.sys;
      if (this.isBlockDevice) {
        const range = new Uint8Array(16);
        const dv = new DataView(range.buffer);
        dv.setBigUint64(0, BigInt(sector * SECTOR_SIZE), true);
        dv.setBigUint64(8, BigInt(count * SECTOR_SIZE), true);
        sys.ioctlBuffer(this.fd, BLKDISCARD, range);
      } else {
        sys.fallocate(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, sector * SECTOR_SIZE, count * SECTOR_SIZE);
      }
      return OK;
    } catch (err) {
      if (err instanceof SysError) return err.errno;
      return errnoOf(err);
    }
  }

  /** A regular file read through the page cache (not O_DIRECT): no media errors of its own to report, mappable. */
  get pageCached(): boolean {
    return !this.direct && !this.isBlockDevice;
  }

  /**
   * The bytes of [sector, sector + count) in the page cache, mapped read-only
   * (libc mapReadOnly: meant for the kernel to read; JavaScript reading it
   * dies of SIGBUS should the file shrink under it), zeroes after close(): regular
   * files without O_DIRECT, ranges inside one MAP_WINDOW. A block device is
   * not mapped: its read errors must reach the layers above as errors.
   */
  mappedRead(sector: number, count: number, opts?: { resident?: boolean }): Uint8Array | undefined {
    if (!this.pageCached || this.mapRefused || this.fd < 0) return undefined;
    checkRequest(this, sector, count);
    const start = sector * SECTOR_SIZE;
    const end = start + count * SECTOR_SIZE;
    const w = Math.floor(start / MAP_WINDOW);
    if (count === 0 || Math.floor((end - 1) / MAP_WINDOW) !== w) return undefined;
    let m = this.maps.get(w);
    if (m === undefined) {
      try {
        m = this.sys.mapReadOnly(this.fd, w * MAP_WINDOW, Math.min(MAP_WINDOW, this.sectors * SECTOR_SIZE - w * MAP_WINDOW));
      } catch {
        this.mapRefused = true; // a file system without mmap: read() as always
        return undefined;
      }
      this.maps.set(w, m);
    }
    const from = start - w * MAP_WINDOW;
    if (opts?.resident && !this.resident(m.address + from, end - start)) return undefined;
    return m.buf.subarray(from, end - w * MAP_WINDOW);
  }

  /** Whether every page of mapped memory [at, at + bytes) is in the page cache (mincore). */
  private resident(at: number, bytes: number): boolean {
    const first = at - (at % PAGE);
    const pages = Math.ceil((at + bytes - first) / PAGE);
    if (!this.residency || this.residency.length < pages) this.residency = new Uint8Array(Math.max(pages, 256));
    const vec = this.residency;
    if (this.sys.mincore(first, pages * PAGE, vec) !== 0) return false;
    for (let i = 0; i < pages; i++) if ((vec[i] & 1) === 0) return false;
    return true;
  }

  close(): void {
    if (this.fd < 0) return;
    for (const m of this.maps.values()) {
      try {
        this.sys.retireMapping(m.ptr, m.buf.length); // views kept past close() read zeroes
      } catch {
        // refused (out of memory maps): the window stays mapped, holding the file, rather than a view faulting
      }
    }

    this.maps.clear();
    fs.closeSync(this.fd);
    this.fd = -1;
    this.bounce?.free();
    this.bounce = undefined;
  }

  /** The open file descriptor (for native batch paths). */
  get fileDescriptor(): number {
    return this.fd;
  }

  private pread(buf: Uint8Array, position: number): IoStatus {
    const n = this.sys.pread(this.fd, buf, position);
    if (n === buf.length) return OK;
    if (n < 0) return -n as IoStatus;
    // the request lies inside the size the file had at open: the end of the file came first, so it shrank
    return ENXIO;
  }

  private pwrite(buf: Uint8Array, position: number): IoStatus {
    const n = this.sys.pwrite(this.fd, buf, position);
    if (n === buf.length) return OK;
    return n < 0 ? (-n as IoStatus) : EIO;
  }

  private bounced(sector: number, buf: Uint8Array, isWrite: boolean): IoStatus {
    if (!this.bounce || this.bounce.buf.length < buf.length) {
      this.bounce?.free();
      this.bounce = allocAligned(Math.max(buf.length, 1 << 20), 4096, this.sys);
    }
    const b = this.bounce.buf.subarray(0, buf.length);
    if (isWrite) {
      b.set(buf);
      return this.pwrite(b, sector * SECTOR_SIZE);
    }
    const rc = this.pread(b, sector * SECTOR_SIZE);
    if (rc === OK) buf.set(b);
    return rc;
  }
}

/**
 * A device's backing file is opened with O_NOATIME where the kernel allows it
 * (the owner, or root): reads through a model are not accesses a user of the
 * file should see, and each one would otherwise check, and under relatime now
 * and then write, the access time (about 3% of a 4 KiB page-cache read here).
 */
function openNoAtime(path: string, flags: number): number {
  const noatime = fs.constants.O_NOATIME ?? 0;
  if (noatime !== 0) {
    try {
      return fs.openSync(path, flags | noatime);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    }
  }
  return fs.openSync(path, flags);
}

function errnoOf(err: unknown): IoStatus {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.errno === 'number') return Math.abs(e.errno);
  return EIO;
}

export function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'EBUSY':
      return 'device or resource busy';
    case 'EINVAL':
      return 'invalid argument (O_DIRECT not supported here?)';
    default:
      return e?.message ?? String(err);
  }
}
