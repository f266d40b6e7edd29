import { type BlockDevice, type IoStatus, type LogicalBlockSize, checkIo, checkRequest, OK, SECTOR_SHIFT } from './device.js';

export interface SharedMemoryDeviceShared {
  data: SharedArrayBuffer;
  logicalBlockSize: LogicalBlockSize;
  name: string;
}

/**
 * A RAM disk in a SharedArrayBuffer: every thread that attaches sees the same
 * bytes, so a test can run the per-CPU engine on it. Not sparse: size it to
 * what the test needs.
 */
export class SharedMemoryDevice implements BlockDevice {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  private readonly bytes: Uint8Array;
  readonly shared: SharedMemoryDeviceShared;

  constructor(opts: { sectors: number; logicalBlockSize?: LogicalBlockSize; name?: string } | SharedMemoryDeviceShared) {
    if ('data' in opts) this.shared = opts;
    else {
      if (!Number.isSafeInteger(opts.sectors) || opts.sectors <= 0 || opts.sectors > 2 ** 22)
        throw new RangeError(`sectors must be in [1, 2^22] (2 GiB), got ${opts.sectors}`);
      this.shared = {
        data: new SharedArrayBuffer(opts.sectors << SECTOR_SHIFT),
        logicalBlockSize: opts.logicalBlockSize ?? 512,
        name: opts.name ?? `shm(${opts.sectors})`,
      };
    }
    this.bytes = new Uint8Array(this.shared.data);
    this.sectors = this.bytes.length >>> SECTOR_SHIFT;
    this.logicalBlockSize = this.shared.logicalBlockSize;
    this.name = this.shared.name;
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    checkIo(this, sector, buf);
    buf.set(this.bytes.subarray(sector << SECTOR_SHIFT, (sector << SECTOR_SHIFT) + buf.length));
    return OK;
  }

  write(sector: number, buf: Uint8Array): IoStatus {
    checkIo(this, sector, buf);
    this.bytes.set(buf, sector << SECTOR_SHIFT);
    return OK;
  }

  flush(): IoStatus {
    return OK;
  }

  discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    this.bytes.fill(0, sector << SECTOR_SHIFT, (sector + count) << SECTOR_SHIFT);
    return OK;
  }

  close(): void {}
}
