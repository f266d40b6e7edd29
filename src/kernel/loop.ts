/**
 * Loop devices through koffi ioctls: attach (LOOP_CTL_GET_FREE, then
 * LOOP_CONFIGURE, or LOOP_SET_FD + LOOP_SET_STATUS64 on kernels before 5.8),
 * detach (LOOP_CLR_FD), and the list as sysfs shows it. Structs in loop-codec.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoText, type Libc, libc, SysError } from '../sys/libc.js';
import {
  decodeLoopInfo64,
  encodeLoopConfig,
  encodeLoopInfo64,
  type LoopInfo64,
  LOOP_CLR_FD,
  LOOP_CONFIGURE,
  LOOP_CTL_GET_FREE,
  LOOP_GET_STATUS64,
  LOOP_INFO64_SIZE,
  LOOP_MAJOR,
  LOOP_SET_BLOCK_SIZE,
  LOOP_SET_DIRECT_IO,
  LOOP_SET_FD,
  LOOP_SET_STATUS64,
  LOOP_SET_STATUS_SETTABLE_FLAGS,
  LO_FLAGS_AUTOCLEAR,
  LO_FLAGS_DIRECT_IO,
  LO_FLAGS_PARTSCAN,
  LO_FLAGS_READ_ONLY,
} from './loop-codec.js';
import { type NodeSys, nodeSys, S_IFBLK } from './mknod.js';
import { EXIT_ENVIRONMENT, EXIT_USAGE, RemapsimError } from '../util/errors.js';

const ENOENT = 2;
const ENXIO = 6;
const EPERM = 1;
const EACCES = 13;
const EBUSY = 16;
const EINVAL = 22;
const ENODEV = 19;
const ENOTTY = 25;
const EROFS = 30;

/** The two ioctl shapes loop control needs (libc() has both). */
export type LoopSys = Pick<Libc, 'ioctlInt' | 'ioctlBuffer'>;

export class LoopError extends RemapsimError {
  override readonly name = 'LoopError';
  constructor(
    message: string,
    readonly errno?: number,
  ) {
    super(message);
  }

  /** Not root, or no loop devices on this host: the environment (3); the rest is the request (2). */
  override get exitCode(): number {
    const e = this.errno;
    const noLoop = (e === ENOENT || e === ENODEV || e === ENXIO) && /loop devices are not available|loop-control/.test(this.message);
    return e === EPERM || e === EACCES || noLoop ? EXIT_ENVIRONMENT : EXIT_USAGE;
  }
}

export interface LoopPaths {
  /** Default /dev/loop-control. */
  controlPath?: string;
  /** Where loopN nodes live (default /dev). */
  devDir?: string;
  /** Default /sys/block. */
  sysBlockDir?: string;
}

export interface LoopAttachOptions extends LoopPaths {
  /** Open the backing file read-only; the device is read-only then. */
  readOnly?: boolean;
  /** Direct I/O to the backing file (LO_FLAGS_DIRECT_IO, backing fd opened O_DIRECT). The kernel quietly goes without it when the block size or offset does not allow it: check `dio` in the list. */
  direct?: boolean;
  /** LO_FLAGS_AUTOCLEAR: the device detaches itself on last close. The attachment keeps it open until release(). */
  autoclear?: boolean;
  /** LO_FLAGS_PARTSCAN: scan for partitions. */
  partscan?: boolean;
  /** Logical block size: a power of two in 512..65536 (the kernel may allow only up to the page size). */
  blockSize?: number;
  /** Byte offset into the backing file. */
  offset?: number;
  /** Bytes to expose (0 or unset: to the end of the file). */
  sizeLimit?: number;
  /** Use LOOP_SET_FD + LOOP_SET_STATUS64 even where LOOP_CONFIGURE exists. */
  legacy?: boolean;
  /** Devices to try when others win the race for the free one (default 16). */
  maxAttempts?: number;
  sys?: LoopSys;
  nodeSys?: NodeSys;
}

export interface LoopAttachment {
  /** "/dev/loopN". */
  device: string;
  number: number;
  backingFile: string;
  /** Which kernel interface attached it. */
  method: 'configure' | 'set-fd';
  /** The loop device's fd, kept open for autoclear devices (closing it detaches); undefined otherwise. */
  fd: number | undefined;
  /** Detach: close `fd` for autoclear devices, LOOP_CLR_FD otherwise. Safe to call twice. */
  release(): void;
}

export interface LoopDeviceInfo {
  device: string;
  number: number;
  major: number;
  minor: number;
  backingFile: string;
  offset: number;
  sizeLimit: number;
  autoclear: boolean;
  partscan: boolean;
  dio: boolean;
  readOnly: boolean;
  logicalBlockSize: number;
  /** Size in 512-byte sectors. */
  sectors: number;
}

function errnoOf(err: unknown): number | undefined {
  if (err instanceof SysError) return err.errno;
  const code = (err as NodeJS.ErrnoException | undefined)?.errno;
  return typeof code === 'number' ? Math.abs(code) : undefined;
}

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}

function validate(opts: LoopAttachOptions): void {
  const bs = opts.blockSize;
  if (bs !== undefined && (!Number.isInteger(bs) || bs < 512 || bs > 65536 || (bs & (bs - 1)) !== 0)) {
    throw new LoopError(`block size ${bs} must be a power of two in 512..65536`, EINVAL);
  }
  for (const [field, v] of [
    ['offset', opts.offset],
    ['size limit', opts.sizeLimit],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0))
      throw new LoopError(`${field} ${v} must be an integer in 0..${Number.MAX_SAFE_INTEGER}`, EINVAL);
  }
  const attempts = opts.maxAttempts;
  if (attempts !== undefined && (!Number.isInteger(attempts) || attempts < 1 || attempts > 1000))
    throw new LoopError(`maxAttempts ${attempts} must be an integer in 1..1000`, EINVAL);
}

/** "/dev/loop3", "loop3" or 3 -> 3. */
export function loopNumber(device: string | number): number {
  if (typeof device === 'number') {
    if (!Number.isInteger(device) || device < 0 || device > 0xfffff) throw new LoopError(`loop device number ${device} is out of range 0..1048575`, EINVAL);
    return device;
  }
  const m = /(?:^|\/)loop(\d+)$/.exec(device);
  if (!m) throw new LoopError(`'${device}' is not a loop device name (expected /dev/loopN)`, EINVAL);
  return Number(m[1]);
}

function openBacking(file: string, opts: LoopAttachOptions): number {
  let flags = opts.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR;
  if (opts.direct) flags |= fs.constants.O_DIRECT;
  let fd: number;
  try {
    fd = fs.openSync(file, flags);
  } catch (err) {
    const e = errnoOf(err);
    if (opts.direct && e === EINVAL) return openBacking(file, { ...opts, direct: false }); // filesystem without O_DIRECT
    if (e === EROFS || (e === EACCES && !opts.readOnly))
      throw new LoopError(`cannot open backing file ${file} for writing: ${errnoText(e)} (attach it read-only?)`, e);
    if (e === 21) throw new LoopError(`backing file ${file} is a directory`, e); // EISDIR
    throw new LoopError(`cannot open backing file ${file}: ${errnoText(e ?? 0)}`, e);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() && !st.isBlockDevice()) {
    fs.closeSync(fd);
    throw new LoopError(`backing file ${file} is not a regular file or block device`, EINVAL);
  }
  return fd;
}

/** /dev/loopN, made with mknod from /sys/block/loopN/dev when /dev is not a devtmpfs. */
function ensureNode(n: number, p: Required<LoopPaths>, sys: NodeSys | undefined): string {
  const dev = path.join(p.devDir, `loop${n}`);
  if (fs.existsSync(dev)) return dev;
  let major = LOOP_MAJOR;
  let minor = n;
  try {
    const [ma, mi] = fs
      .readFileSync(path.join(p.sysBlockDir, `loop${n}`, 'dev'), 'utf8')
      .trim()
      .split(':')
      .map(Number);
    major = ma;
    minor = mi;
  } catch {
    // no sysfs entry: assume max_part=0 numbering
  }
  try {
    (sys ?? nodeSys()).mknod(dev, S_IFBLK | 0o660, major, minor);
  } catch (err) {
    if (errnoOf(err) !== 17) throw new LoopError(`cannot create ${dev} (block ${major}:${minor}): ${errnoText(errnoOf(err) ?? 0)}`, errnoOf(err));
  }
  return dev;
}

function paths(p: LoopPaths): Required<LoopPaths> {
  return { controlPath: p.controlPath ?? '/dev/loop-control', devDir: p.devDir ?? '/dev', sysBlockDir: p.sysBlockDir ?? '/sys/block' };
}

/**
 * Attaches `file` to a free loop device. Another process may take the device
 * GET_FREE handed out before we configure it (EBUSY): then we ask again.
 */
export function attachLoop(file: string, opts: LoopAttachOptions = {}): LoopAttachment {
  validate(opts);
  const p = paths(opts);
  const sys = opts.sys ?? libc();
  const backingFile = path.resolve(file);
  const flags =
    (opts.readOnly ? LO_FLAGS_READ_ONLY : 0) |
    (opts.autoclear ? LO_FLAGS_AUTOCLEAR : 0) |
    (opts.partscan ? LO_FLAGS_PARTSCAN : 0) |
    (opts.direct ? LO_FLAGS_DIRECT_IO : 0);
  const info: Partial<LoopInfo64> = { offset: opts.offset ?? 0, sizeLimit: opts.sizeLimit ?? 0, flags, fileName: backingFile };

  const fileFd = openBacking(backingFile, opts);
  try {
    let ctl: number;
    try {
      ctl = fs.openSync(p.controlPath, fs.constants.O_RDWR);
    } catch (err) {
      const e = errnoOf(err);
      if (e === ENOENT || e === ENXIO || e === 19) throw new LoopError(`loop devices are not available (no ${p.controlPath})`, e);
      if (e === EACCES || e === EPERM) throw new LoopError(`cannot open ${p.controlPath}: loop devices need root`, e);
      throw new LoopError(`cannot open ${p.controlPath}: ${errnoText(e ?? 0)}`, e);
    }
    try {
      const attempts = opts.maxAttempts ?? 16;
      let legacy = opts.legacy ?? false;
      for (let attempt = 0; attempt < attempts; attempt++) {
        let n: number;
        try {
          n = sys.ioctlInt(ctl, LOOP_CTL_GET_FREE, 0);
        } catch (err) {
          throw new LoopError(`no free loop device: LOOP_CTL_GET_FREE failed: ${errnoText(errnoOf(err) ?? 0)}`, errnoOf(err));
        }
        const device = ensureNode(n, p, opts.nodeSys);
        let devFd: number | undefined;
        try {
          devFd = fs.openSync(device, opts.readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR);
        } catch (err) {
          const e = errnoOf(err);
          if (e === ENXIO || e === ENOENT) continue; // removed or being torn down under us
          throw new LoopError(`cannot open ${device}: ${errnoText(e ?? 0)}`, e);
        }
        let method: 'configure' | 'set-fd' | 'busy' = 'set-fd';
        try {
          if (!legacy) method = configure(sys, devFd, device, fileFd, opts.blockSize ?? 0, info);
          if (method === 'set-fd') {
            legacy = true; // no LOOP_CONFIGURE here: do not ask again for the next device
            method = setFd(sys, devFd, device, fileFd, info, opts);
          }
        } catch (err) {
          closeQuietly(devFd);
          throw err;
        }
        if (method === 'busy') {
          closeQuietly(devFd);
          continue;
        }
        if (!opts.autoclear) {
          closeQuietly(devFd);
          devFd = undefined;
        }
        return makeAttachment(device, n, backingFile, method, devFd, p, sys);
      }
      throw new LoopError(`no free loop device after ${attempts} attempts: other processes took each one first`, EBUSY);
    } finally {
      closeQuietly(ctl);
    }
  } finally {
    closeQuietly(fileFd);
  }
}

/** LOOP_CONFIGURE; 'set-fd' when the kernel does not have it (EINVAL or ENOTTY: before 5.8). */
function configure(sys: LoopSys, devFd: number, device: string, fileFd: number, blockSize: number, info: Partial<LoopInfo64>): 'configure' | 'set-fd' | 'busy' {
  try {
    sys.ioctlBuffer(devFd, LOOP_CONFIGURE, encodeLoopConfig({ fd: fileFd, blockSize, info }));
    return 'configure';
  } catch (err) {
    const e = errnoOf(err);
    if (e === EBUSY) return 'busy';
    // EINVAL is also what a new kernel says to a bad argument; the step-by-step path then names the one it refuses.
    if (e === EINVAL || e === ENOTTY) return 'set-fd';
    throw new LoopError(`LOOP_CONFIGURE on ${device} failed: ${errnoText(e ?? 0)}`, e);
  }
}

function setFd(sys: LoopSys, devFd: number, device: string, fileFd: number, info: Partial<LoopInfo64>, opts: LoopAttachOptions): 'set-fd' | 'busy' {
  try {
    sys.ioctlInt(devFd, LOOP_SET_FD, fileFd);
  } catch (err) {
    const e = errnoOf(err);
    if (e === EBUSY) return 'busy';
    throw new LoopError(`LOOP_SET_FD on ${device} failed: ${errnoText(e ?? 0)}`, e);
  }
  try {
    try {
      sys.ioctlBuffer(devFd, LOOP_SET_STATUS64, encodeLoopInfo64({ ...info, flags: (info.flags ?? 0) & LOOP_SET_STATUS_SETTABLE_FLAGS }));
    } catch (err) {
      const e = errnoOf(err);
      throw new LoopError(`${device}: the kernel refused offset ${info.offset} / size limit ${info.sizeLimit}: ${errnoText(e ?? 0)}`, e);
    }
    if (opts.blockSize) {
      try {
        sys.ioctlInt(devFd, LOOP_SET_BLOCK_SIZE, opts.blockSize);
      } catch (err) {
        const e = errnoOf(err);
        throw new LoopError(`${device}: the kernel refused logical block size ${opts.blockSize}: ${errnoText(e ?? 0)}`, e);
      }
    }
    if (opts.direct) {
      try {
        sys.ioctlInt(devFd, LOOP_SET_DIRECT_IO, 1);
      } catch {
        // as with LOOP_CONFIGURE, the device then runs without direct I/O (the list shows dio=false)
      }
    }
  } catch (err) {
    try {
      sys.ioctlInt(devFd, LOOP_CLR_FD, 0);
    } catch {
      // cleared on close anyway
    }
    throw err;
  }
  return 'set-fd';
}

function makeAttachment(
  device: string,
  n: number,
  backingFile: string,
  method: 'configure' | 'set-fd',
  fd: number | undefined,
  p: LoopPaths,
  sys: LoopSys,
): LoopAttachment {
  let released = false;
  return {
    device,
    number: n,
    backingFile,
    method,
    fd,
    release() {
      if (released) return;
      released = true;
      if (fd !== undefined) closeQuietly(fd);
      else detachLoop(n, { ...p, sys });
    },
  };
}

/**
 * LOOP_CLR_FD. The kernel detaches on the last close: 'deferred' when someone
 * else still holds the device open (it goes when they close it).
 */
export function detachLoop(device: string | number, opts: LoopPaths & { sys?: LoopSys } = {}): 'detached' | 'deferred' {
  const p = paths(opts);
  const n = loopNumber(device);
  const dev = path.join(p.devDir, `loop${n}`);
  let fd: number;
  try {
    fd = fs.openSync(dev, fs.constants.O_RDONLY);
  } catch (err) {
    const e = errnoOf(err);
    if (e === ENOENT || e === ENXIO) throw new LoopError(`${dev} does not exist or is being detached`, e);
    throw new LoopError(`cannot open ${dev}: ${errnoText(e ?? 0)}`, e);
  }
  try {
    (opts.sys ?? libc()).ioctlInt(fd, LOOP_CLR_FD, 0);
  } catch (err) {
    const e = errnoOf(err);
    if (e === ENXIO) throw new LoopError(`${dev} is not attached`, e);
    if (e === EBUSY) throw new LoopError(`${dev} is busy`, e);
    throw new LoopError(`LOOP_CLR_FD on ${dev} failed: ${errnoText(e ?? 0)}`, e);
  } finally {
    fs.closeSync(fd);
  }
  return fs.existsSync(path.join(p.sysBlockDir, `loop${n}`, 'loop', 'backing_file')) ? 'deferred' : 'detached';
}

/** LOOP_GET_STATUS64 of an attached device. */
export function loopStatus(device: string | number, opts: LoopPaths & { sys?: LoopSys } = {}): LoopInfo64 {
  const p = paths(opts);
  const dev = path.join(p.devDir, `loop${loopNumber(device)}`);
  let fd: number;
  try {
    fd = fs.openSync(dev, fs.constants.O_RDONLY);
  } catch (err) {
    const e = errnoOf(err);
    throw new LoopError(`cannot open ${dev}: ${errnoText(e ?? 0)}`, e);
  }
  try {
    const buf = Buffer.alloc(LOOP_INFO64_SIZE);
    try {
      (opts.sys ?? libc()).ioctlBuffer(fd, LOOP_GET_STATUS64, buf);
    } catch (err) {
      const e = errnoOf(err);
      if (e === ENXIO) throw new LoopError(`${dev} is not attached`, e);
      throw new LoopError(`LOOP_GET_STATUS64 on ${dev} failed: ${errnoText(e ?? 0)}`, e);
    }
    return decodeLoopInfo64(buf);
  } finally {
    fs.closeSync(fd);
  }
}

function readSys(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** One attached device as sysfs shows it; undefined when it is not attached (or vanished meanwhile). */
export function loopDeviceInfo(device: string | number, opts: LoopPaths = {}): LoopDeviceInfo | undefined {
  const p = paths(opts);
  const n = loopNumber(device);
  const dir = path.join(p.sysBlockDir, `loop${n}`);
  const backing = readSys(path.join(dir, 'loop', 'backing_file'));
  if (backing === undefined) return undefined;
  const values = {
    offset: readSys(path.join(dir, 'loop', 'offset')),
    sizelimit: readSys(path.join(dir, 'loop', 'sizelimit')),
    autoclear: readSys(path.join(dir, 'loop', 'autoclear')),
    partscan: readSys(path.join(dir, 'loop', 'partscan')),
    dio: readSys(path.join(dir, 'loop', 'dio')),
    ro: readSys(path.join(dir, 'ro')),
    lbs: readSys(path.join(dir, 'queue', 'logical_block_size')),
    size: readSys(path.join(dir, 'size')),
    dev: readSys(path.join(dir, 'dev')),
  };
  if (Object.values(values).some((v) => v === undefined)) return undefined; // detached while we read
  const [major, minor] = values.dev!.trim().split(':').map(Number);
  return {
    device: path.join(p.devDir, `loop${n}`),
    number: n,
    major,
    minor,
    backingFile: backing.endsWith('\n') ? backing.slice(0, -1) : backing,
    offset: Number(values.offset!.trim()),
    sizeLimit: Number(values.sizelimit!.trim()),
    autoclear: values.autoclear!.trim() === '1',
    partscan: values.partscan!.trim() === '1',
    dio: values.dio!.trim() === '1',
    readOnly: values.ro!.trim() === '1',
    logicalBlockSize: Number(values.lbs!.trim()),
    sectors: Number(values.size!.trim()),
  };
}

/** Every attached loop device, by number. */
export function listLoops(opts: LoopPaths = {}): LoopDeviceInfo[] {
  const p = paths(opts);
  let names: string[];
  try {
    names = fs.readdirSync(p.sysBlockDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^loop\d+$/.test(n))
    .map((n) => loopDeviceInfo(n, opts))
    .filter((x): x is LoopDeviceInfo => x !== undefined)
    .sort((a, b) => a.number - b.number);
}
