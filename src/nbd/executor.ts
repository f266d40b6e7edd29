/**
 * How the NBD server runs a request against the exported device. The server
 * never calls a BlockDevice directly: it hands each request to an IoExecutor,
 * so the per-CPU engine (src/engine) can take the requests later and complete
 * them out of order, on other threads.
 *
 * A call returns either the status itself (the request completed during the
 * call) or a promise of it. The server takes both; replies of promises that
 * settle together are corked into one socket write. An executor that
 * finishes synchronously should still return the number: wrapping the same
 * device's status in a promise cost 5-8% more server CPU per 4 KiB read here
 * (about 13.2 against 12.7 us with fio randread at iodepth 16).
 *
 * Buffers: `buf` of a read is a view of the reply the server will send; of a
 * write, a view of the received bytes. Both belong to the executor only until
 * its status is delivered: it must not touch them afterwards.
 */
import {
  type BlockDevice,
  BlockRequestError,
  EINVAL,
  EIO,
  EOPNOTSUPP,
  EROFS,
  type IoStatus,
  type LentRead,
  type LogicalBlockSize,
  type MappedReads,
  OK,
  lendMapped,
  mappedReadsOf,
  SECTOR_SHIFT,
  errnoName,
} from '../block/device.js';
import { log } from '../util/log.js';

export type IoCompletion = IoStatus | Promise<IoStatus>;

/** What the exported device can do; the server derives the transmission flags from it. */
export interface ExecutorFeatures {
  /** Writes, trims and write-zeroes are refused (the export is advertised read-only). */
  readOnly: boolean;
  /** Discard does something useful (advertises NBD_FLAG_SEND_TRIM). */
  trim: boolean;
  /**
   * Every connection sees every other connection's completed writes, and a
   * flush on one makes all of them durable (advertises NBD_FLAG_CAN_MULTI_CONN).
   */
  multiConn: boolean;
}

export interface IoExecutor {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  readonly features: ExecutorFeatures;
  read(sector: number, buf: Uint8Array): IoCompletion;
  write(sector: number, buf: Uint8Array, fua: boolean): IoCompletion;
  /** Writes `count` sectors of zeroes (the data must read back as zeroes: not a discard). */
  writeZeroes(sector: number, count: number, fua: boolean): IoCompletion;
  flush(): IoCompletion;
  discard(sector: number, count: number): IoCompletion;
  /** Reads of at most this many bytes may go through lendRead (0 or absent: none). */
  readonly maxLentBytes?: number;
  /** Reads of at least this many bytes do (absent: those over 128 KiB; smaller ones are copied into the server's reply slab). */
  readonly minLentBytes?: number;
  /** A read whose data the executor lends (now or later); undefined when it cannot: the server then calls read(). */
  lendRead?(sector: number, bytes: number): LentRead | Promise<LentRead> | undefined;
}

const FUA = Object.freeze({ fua: true });

/** The largest piece a write-zeroes request is split into. */
const ZERO_CHUNK = 1 << 20;
let zeroes: Uint8Array | undefined;

export interface DeviceExecutorOptions {
  readOnly?: boolean;
  /** Override the probe (a zero-length discard that does not fail with EOPNOTSUPP). */
  trim?: boolean;
}

/**
 * The default executor: calls the synchronous BlockDevice on the server's
 * thread, so every request completes during the call, in arrival order. A
 * device that throws (a BlockRequestError the server's own checks should have
 * prevented, or a bug in a layer) fails that request, not the server.
 */
export class DeviceExecutor implements IoExecutor {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  readonly features: ExecutorFeatures;
  readonly maxLentBytes: number;
  private readonly mapped: MappedReads | undefined;

  constructor(
    readonly device: BlockDevice,
    opts: DeviceExecutorOptions = {},
  ) {
    this.name = device.name;
    this.sectors = device.sectors;
    this.logicalBlockSize = device.logicalBlockSize;
    const readOnly = opts.readOnly ?? (device as { readOnly?: unknown }).readOnly === true;
    const trim = !readOnly && (opts.trim ?? this.guard(() => device.discard(0, 0)) !== EOPNOTSUPP);
    this.features = { readOnly, trim, multiConn: true };
    this.mapped = mappedReadsOf(device);
    this.maxLentBytes = this.mapped ? Number.MAX_SAFE_INTEGER : 0;
  }

  /**
   * A read the device can show where its bytes lie (a file's page cache):
   * the socket sends them from there, and the copy a read() makes is saved.
   */
  lendRead(sector: number, bytes: number): LentRead | undefined {
    return lendMapped(this.mapped, sector, bytes);
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    try {
      return this.device.read(sector, buf);
    } catch (err) {
      return this.thrown('read', err);
    }
  }

  write(sector: number, buf: Uint8Array, fua: boolean): IoStatus {
    if (this.features.readOnly) return EROFS;
    try {
      return this.device.write(sector, buf, fua ? FUA : undefined);
    } catch (err) {
      return this.thrown('write', err);
    }
  }

  writeZeroes(sector: number, count: number, fua: boolean): IoStatus {
    if (this.features.readOnly) return EROFS;
    zeroes ??= new Uint8Array(ZERO_CHUNK);
    const chunkSectors = ZERO_CHUNK >>> SECTOR_SHIFT;
    try {
      for (let s = sector, end = sector + count; s < end; s += chunkSectors) {
        const n = Math.min(chunkSectors, end - s);
        const rc = this.device.write(s, zeroes.subarray(0, n << SECTOR_SHIFT), fua ? FUA : undefined);
        if (rc !== OK) return rc;
      }
      return OK;
    } catch (err) {
      return this.thrown('write zeroes', err);
    }
  }

  flush(): IoStatus {
    return this.guard(() => this.device.flush(), 'flush');
  }

  discard(sector: number, count: number): IoStatus {
    if (this.features.readOnly) return EROFS;
    return this.guard(() => this.device.discard(sector, count), 'discard');
  }

  private guard(fn: () => IoStatus, what = 'probe'): IoStatus {
    try {
      return fn();
    } catch (err) {
      return this.thrown(what, err);
    }
  }

  private thrown(what: string, err: unknown): IoStatus {
    if (err instanceof BlockRequestError) {
      log.warn(`${this.name}: ${what} refused: ${err.message}`);
      return EINVAL;
    }
    log.error({ err }, `${this.name}: ${what} threw; the request fails with ${errnoName(EIO)}`);
    return EIO;
  }
}
