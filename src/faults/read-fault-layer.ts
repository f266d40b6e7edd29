/**
 * A fault layer that acts on reads only: writes, flushes, discards and close
 * pass to the device below, checked as every device checks them.
 */
import { type BlockDevice, type IoStatus, type LogicalBlockSize, type WriteFlags, checkIo, checkRequest } from '../block/device.js';

export abstract class ReadFaultLayer implements BlockDevice {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;

  constructor(
    readonly inner: BlockDevice,
    kind: string,
  ) {
    this.name = `${kind}(${inner.name})`;
    this.sectors = inner.sectors;
    this.logicalBlockSize = inner.logicalBlockSize;
  }

  abstract read(sector: number, buf: Uint8Array): IoStatus;

  write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    checkIo(this, sector, buf);
    return this.inner.write(sector, buf, flags);
  }

  flush(): IoStatus {
    return this.inner.flush();
  }

  discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    return this.inner.discard(sector, count);
  }

  close(): void {
    this.inner.close();
  }
}
