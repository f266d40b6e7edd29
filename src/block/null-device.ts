/**
 * A device that moves no data, as fio's `ioengine=null`: every read and write
 * succeeds at once and leaves the buffer as it was. Running a job on it
 * measures what the job costs without the I/O: the generator, the queues and
 * the accounting (bench:engine compares it with fio's null engine).
 */
import { type BlockDevice, checkIo, checkRequest, type IoStatus, type LogicalBlockSize, OK } from './device.js';

export class NullDevice implements BlockDevice {
  readonly name: string;
  readonly logicalBlockSize: LogicalBlockSize = 512;

  constructor(readonly sectors: number) {
    if (!Number.isSafeInteger(sectors) || sectors <= 0) throw new RangeError(`sectors must be a positive integer, got ${sectors}`);
    this.name = `null(${sectors})`;
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    checkIo(this, sector, buf);
    return OK;
  }

  write(sector: number, buf: Uint8Array): IoStatus {
    checkIo(this, sector, buf);
    return OK;
  }

  flush(): IoStatus {
    return OK;
  }

  discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    return OK;
  }

  close(): void {}
}
