import { RemapsimError } from '../util/errors.js';
/**
 * The one interface every data-holding layer implements.
 *
 * The data path is synchronous on purpose: a promise per I/O costs more than a
 * page-cache read, so I/O runs as plain syscalls inside worker threads and the
 * event loop is kept for orchestration. Device failures are returned as a
 * status (0 or an errno, the way the kernel's bi_status works) instead of
 * thrown, so a fault-heavy run does not pay for stack traces; misuse (a
 * request out of range or misaligned) throws a BlockRequestError before any
 * byte moves.
 */

export const SECTOR_SIZE = 512;
export const SECTOR_SHIFT = 9;

/** I/O status: OK or an errno value (positive, as in errno.h). */
export type IoStatus = number;
export const OK = 0;
export const ENOENT = 2;
export const EIO = 5;
export const ENXIO = 6;
export const EINVAL = 22;
export const EFBIG = 27;
export const ENOSPC = 28;
export const EROFS = 30;
export const EOPNOTSUPP = 95;
export const ENODATA = 61;
export const EILSEQ = 84;
export const ESTALE = 116;
export const EDQUOT = 122;

const ERRNO_NAMES: Record<number, string> = {
  0: 'OK',
  1: 'EPERM',
  [ENOENT]: 'ENOENT',
  [EIO]: 'EIO',
  [ENXIO]: 'ENXIO',
  9: 'EBADF',
  12: 'ENOMEM',
  13: 'EACCES',
  [EINVAL]: 'EINVAL',
  [EFBIG]: 'EFBIG',
  [ENOSPC]: 'ENOSPC',
  [EROFS]: 'EROFS',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [ENODATA]: 'ENODATA',
  [EILSEQ]: 'EILSEQ',
  [ESTALE]: 'ESTALE',
  [EDQUOT]: 'EDQUOT',
};

export function errnoName(status: IoStatus): string {
  return ERRNO_NAMES[status] ?? `errno ${status}`;
}

/**
 * Whether a failed request's status is the medium's: a sector that cannot be
 * read or written (EIO, or ENODATA and EILSEQ as the kernel reports
 * BLK_STS_MEDIUM and BLK_STS_PROTECTION; the fault layers return EIO). Any
 * other errno is the store's beneath the device (a full or read-only file
 * system, a quota, a backing file that shrank or vanished): nothing a remap
 * to a spare block can cure.
 */
export function isMediaError(status: IoStatus): boolean {
  return status === EIO || status === ENODATA || status === EILSEQ;
}

export type LogicalBlockSize = 512 | 4096;

export interface WriteFlags {
  /** Force unit access: the data is durable when the call returns. */
  fua?: boolean;
}

export interface BlockDevice {
  /** Human name: a path, or a layer description. */
  readonly name: string;
  /** Size in 512-byte sectors. */
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  /** Read buf.length bytes starting at `sector`. */
  read(sector: number, buf: Uint8Array): IoStatus;
  /** Write buf.length bytes starting at `sector`. */
  write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus;
  /** Make every acknowledged write durable. */
  flush(): IoStatus;
  /** Discard (trim) `count` sectors starting at `sector`; reads of discarded space return zeroes. */
  discard(sector: number, count: number): IoStatus;
  close(): void;
}

/** A view of `inner` whose close() leaves it open: for a layer that must outlive what is stacked on it (a disk outlives each table loaded over it). */
export function withoutClose(inner: BlockDevice): BlockDevice {
  return {
    name: inner.name,
    sectors: inner.sectors,
    logicalBlockSize: inner.logicalBlockSize,
    read: (s, b) => inner.read(s, b),
    write: (s, b, f) => inner.write(s, b, f),
    flush: () => inner.flush(),
    discard: (s, n) => inner.discard(s, n),
    close: () => {},
  };
}

/**
 * A device that can show a read's bytes where they already are (a file's
 * page cache, mapped) instead of copying them: for a caller that hands them
 * straight to the kernel, like a socket write. undefined when this range
 * cannot be shown that way; the caller then read()s it.
 */
export interface MappedReads {
  /** `resident`: only when every page of the range is in memory (sending it then cannot wait for a disk). */
  mappedRead(sector: number, count: number, opts?: { resident?: boolean }): Uint8Array | undefined;
}

/** `device`'s MappedReads, when it has them. */
export function mappedReadsOf(device: unknown): MappedReads | undefined {
  return typeof (device as Partial<MappedReads> | undefined)?.mappedRead === 'function' ? (device as MappedReads) : undefined;
}

const noRelease = (): void => {};

/**
 * A read of `bytes` at `sector` lent from `device`'s mapped page cache, or
 * undefined when it cannot be (the caller then reads it; a request the
 * device refuses is reported by that read).
 */
export function lendMapped(device: MappedReads | undefined, sector: number, bytes: number, opts?: { resident?: boolean }): LentRead | undefined {
  let data: Uint8Array | undefined;
  try {
    data = device?.mappedRead(sector, bytes >>> SECTOR_SHIFT, opts);
  } catch {
    return undefined;
  }
  return data === undefined ? undefined : { status: OK, data, release: noRelease };
}

/** A read's bytes lent from memory someone else owns (an engine's buffer slot, a mapped file) instead of copied out. */
export interface LentRead {
  status: IoStatus;
  /** The bytes read (empty when the read failed): valid until release(). */
  data: Uint8Array;
  /** Gives the memory back; later calls do nothing. */
  release(): void;
}

export type BlockRequestProblem = 'out-of-range' | 'misaligned' | 'closed';

/** A request that can never be valid for this device: thrown before anything is written. */
export class BlockRequestError extends RemapsimError {
  override readonly name = 'BlockRequestError';
  constructor(
    readonly problem: BlockRequestProblem,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Checks a request against a device's geometry. `count` is in sectors.
 * Shared by every device so the messages are the same everywhere.
 */
export function checkRequest(dev: Pick<BlockDevice, 'name' | 'sectors' | 'logicalBlockSize'>, sector: number, count: number): void {
  if (!Number.isSafeInteger(sector) || sector < 0 || !Number.isSafeInteger(count) || count < 0) {
    throw new BlockRequestError('out-of-range', `${dev.name}: invalid request sector=${sector} count=${count}`);
  }
  if (sector + count > dev.sectors) {
    throw new BlockRequestError('out-of-range', `${dev.name}: request [${sector}, ${sector + count}) is beyond the device end (${dev.sectors} sectors)`);
  }
  const lbsSectors = dev.logicalBlockSize >>> SECTOR_SHIFT;
  if (lbsSectors > 1 && (sector % lbsSectors !== 0 || count % lbsSectors !== 0)) {
    throw new BlockRequestError(
      'misaligned',
      `${dev.name}: request at sector ${sector} of ${count} sectors is not aligned to the ${dev.logicalBlockSize}-byte logical block size`,
    );
  }
}

/** Byte length of a buffer as a sector count; throws when it is not a whole number of sectors. */
export function bufferSectors(dev: Pick<BlockDevice, 'name'>, buf: Uint8Array): number {
  if ((buf.length & (SECTOR_SIZE - 1)) !== 0) {
    throw new BlockRequestError('misaligned', `${dev.name}: buffer of ${buf.length} bytes is not a whole number of 512-byte sectors`);
  }
  return buf.length >>> SECTOR_SHIFT;
}

export function checkIo(dev: Pick<BlockDevice, 'name' | 'sectors' | 'logicalBlockSize'>, sector: number, buf: Uint8Array): number {
  const count = bufferSectors(dev, buf);
  checkRequest(dev, sector, count);
  return count;
}
