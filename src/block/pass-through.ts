/**
 * A layer over one device that passes every operation through unchanged, as
 * nbdkit's filters pass what they do not change: a fault or counting layer
 * extends it and overrides only the operations it acts on. Requests are
 * checked against this layer's own size (a layer may expose less than the
 * device below it).
 */
import { type BlockDevice, type IoStatus, type LogicalBlockSize, type WriteFlags, checkIo, checkRequest } from './device.js';

export class PassThroughLayer implements BlockDevice {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;

  /** `kind` names the layer `kind(inner)`; without it the layer takes the inner device's name. */
  constructor(
    readonly inner: BlockDevice,
    kind?: string,
    sectors: number = inner.sectors,
  ) {
    this.name = kind === undefined ? inner.name : `${kind}(${inner.name})`;
    this.sectors = sectors;
    this.logicalBlockSize = inner.logicalBlockSize;
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    checkIo(this, sector, buf);
    return this.inner.read(sector, buf);
  }

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
