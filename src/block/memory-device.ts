import { type BlockDevice, type IoStatus, type LogicalBlockSize, checkIo, checkRequest, OK, SECTOR_SHIFT } from './device.js';

const CHUNK_SHIFT = 16; // 64 KiB chunks, allocated on first write
const CHUNK_BYTES = 1 << CHUNK_SHIFT;
const SECTORS_PER_CHUNK = CHUNK_BYTES >>> SECTOR_SHIFT;

export interface MemoryDeviceOptions {
  sectors: number;
  logicalBlockSize?: LogicalBlockSize;
  name?: string;
}

/**
 * A sparse RAM disk: never-written space reads as zeroes and costs nothing, so
 * a test can model a device of many terabytes.
 */
export class MemoryDevice implements BlockDevice {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(opts: MemoryDeviceOptions) {
    if (!Number.isSafeInteger(opts.sectors) || opts.sectors <= 0) {
      throw new RangeError(`sectors must be a positive integer, got ${opts.sectors}`);
    }
    const lbs = opts.logicalBlockSize ?? 512;
    if (lbs !== 512 && lbs !== 4096) throw new RangeError(`logicalBlockSize must be 512 or 4096, got ${lbs}`);
    if (opts.sectors % (lbs >>> SECTOR_SHIFT) !== 0) {
      throw new RangeError(`sectors (${opts.sectors}) must be a multiple of the logical block size (${lbs} bytes)`);
    }
    this.sectors = opts.sectors;
    this.logicalBlockSize = lbs;
    this.name = opts.name ?? `memory(${opts.sectors})`;
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    const count = checkIo(this, sector, buf);
    this.forEachSpan(sector, count, (chunkIdx, off, len, bufOff) => {
      const chunk = this.chunks.get(chunkIdx);
      if (chunk) buf.set(chunk.subarray(off, off + len), bufOff);
      else buf.fill(0, bufOff, bufOff + len);
    });
    return OK;
  }

  write(sector: number, buf: Uint8Array): IoStatus {
    const count = checkIo(this, sector, buf);
    this.forEachSpan(sector, count, (chunkIdx, off, len, bufOff) => {
      let chunk = this.chunks.get(chunkIdx);
      if (!chunk) {
        chunk = new Uint8Array(CHUNK_BYTES);
        this.chunks.set(chunkIdx, chunk);
      }
      chunk.set(buf.subarray(bufOff, bufOff + len), off);
    });
    return OK;
  }

  flush(): IoStatus {
    return OK;
  }

  discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    this.forEachSpan(sector, count, (chunkIdx, off, len) => {
      const chunk = this.chunks.get(chunkIdx);
      if (!chunk) return;
      if (len === CHUNK_BYTES) this.chunks.delete(chunkIdx);
      else chunk.fill(0, off, off + len);
    });
    return OK;
  }

  close(): void {
    this.chunks.clear();
  }

  /** Bytes of RAM holding data. */
  get allocatedBytes(): number {
    return this.chunks.size * CHUNK_BYTES;
  }

  private forEachSpan(sector: number, count: number, fn: (chunk: number, off: number, len: number, bufOff: number) => void): void {
    let s = sector;
    const end = sector + count;
    let bufOff = 0;
    while (s < end) {
      const chunkIdx = Math.floor(s / SECTORS_PER_CHUNK);
      const inChunk = s - chunkIdx * SECTORS_PER_CHUNK;
      const n = Math.min(SECTORS_PER_CHUNK - inChunk, end - s);
      const len = n << SECTOR_SHIFT;
      fn(chunkIdx, inChunk << SECTOR_SHIFT, len, bufOff);
      bufOff += len;
      s += n;
    }
  }
}
