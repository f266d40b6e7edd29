/**
 * Reading and writing metadata blocks on a spare BlockDevice: the thin I/O
 * layer under the stores. A block that cannot be read comes back as null (the
 * codecs treat it as unreadable) instead of failing the whole read.
 */
import { type BlockDevice, type IoStatus, EIO, OK, SECTOR_SIZE } from '../block/device.js';

/** Largest single read (bytes); bigger ranges are read in pieces. */
const MAX_READ = 1 << 20;

/**
 * Memory for readBlocks to read into instead of new memory, where the same
 * metadata is read again and again (a simulated run loads its table every
 * month): the caller gives back what it read once it holds no block of it.
 */
export class ReadBuffers {
  private readonly free: Uint8Array[] = [];

  take(bytes: number): Uint8Array {
    const i = this.free.findIndex((b) => b.byteLength === bytes);
    return i < 0 ? new Uint8Array(bytes) : this.free.splice(i, 1)[0]!;
  }

  give(buf: Uint8Array): void {
    if (this.free.length < MAX_FREE) this.free.push(buf);
  }

  /** Gives back the memory under blocks that readBlocks returned (all of one call's, or whole blocks). */
  giveBack(blocks: ReadonlyArray<Uint8Array | null>): void {
    // each read's memory starts with its first block
    for (const b of blocks) if (b !== null && b.byteOffset === 0) this.give(b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b.buffer));
  }
}

/** Buffers a ReadBuffers keeps at most (the five dm-remap-v4 copies, the safe store's two logs and checkpoints). */
const MAX_FREE = 16;

/**
 * Reads `count` blocks of `blockBytes` bytes starting at `sector`. Blocks past
 * the device end, and blocks whose read fails, are null. A failed multi-block
 * read is retried block by block, so one bad sector costs one block. With
 * `buffers`, the memory comes from there.
 */
export function readBlocks(dev: BlockDevice, sector: number, count: number, blockBytes: number, buffers?: ReadBuffers): Array<Uint8Array | null> {
  const out: Array<Uint8Array | null> = [];
  if (count <= 0) return out;
  const alloc = (bytes: number): Uint8Array => (buffers ? buffers.take(bytes) : new Uint8Array(bytes));
  const blockSectors = blockBytes / SECTOR_SIZE;
  const perRead = Math.max(1, Math.floor(MAX_READ / blockBytes));
  for (let first = 0; first < count; first += perRead) {
    const n = Math.min(perRead, count - first);
    const at = sector + first * blockSectors;
    const inside = Math.max(0, Math.min(n, Math.floor((dev.sectors - at) / blockSectors)));
    if (inside > 0) {
      const buf = alloc(inside * blockBytes);
      if (dev.read(at, buf) === OK) {
        for (let i = 0; i < inside; i++) out.push(buf.subarray(i * blockBytes, (i + 1) * blockBytes));
      } else {
        buffers?.give(buf);
        for (let i = 0; i < inside; i++) {
          const one = alloc(blockBytes);
          if (dev.read(at + i * blockSectors, one) === OK) out.push(one);
          else {
            buffers?.give(one);
            out.push(null);
          }
        }
      }
    }
    for (let i = inside; i < n; i++) out.push(null);
  }
  return out;
}

export function readBlock(dev: BlockDevice, sector: number, blockBytes: number): Uint8Array | null {
  return readBlocks(dev, sector, 1, blockBytes)[0];
}

/** Writes `bytes` at `sector`; a range past the device end fails with EIO instead of throwing. */
export function writeBlock(dev: BlockDevice, sector: number, bytes: Uint8Array, fua = false): IoStatus {
  if (sector + bytes.length / SECTOR_SIZE > dev.sectors) return EIO;
  return dev.write(sector, bytes, fua ? { fua: true } : undefined);
}

/** Bytes rounded up to whole logical blocks of `dev`. */
export function roundToBlocks(bytes: number, logicalBlockSize: number): number {
  return Math.ceil(bytes / logicalBlockSize) * logicalBlockSize;
}
