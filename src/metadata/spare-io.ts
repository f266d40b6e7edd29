/**
 * Reading and writing metadata blocks on a spare BlockDevice: the thin I/O
 * layer under the stores. A block that cannot be read comes back as null (the
 * codecs treat it as unreadable) instead of failing the whole read.
 */
import { type BlockDevice, type IoStatus, EIO, OK, SECTOR_SIZE } from '../block/device.js';

/** Largest single read (bytes); bigger ranges are read in pieces. */
const MAX_READ = 1 << 20;

/**
 * Reads `count` blocks of `blockBytes` bytes starting at `sector`. Blocks past
 * the device end, and blocks whose read fails, are null. A failed multi-block
 * read is retried block by block, so one bad sector costs one block.
 */
export function readBlocks(dev: BlockDevice, sector: number, count: number, blockBytes: number): Array<Uint8Array | null> {
  const out: Array<Uint8Array | null> = [];
  if (count <= 0) return out;
  const blockSectors = blockBytes / SECTOR_SIZE;
  const perRead = Math.max(1, Math.floor(MAX_READ / blockBytes));
  for (let first = 0; first < count; first += perRead) {
    const n = Math.min(perRead, count - first);
    const at = sector + first * blockSectors;
    const inside = Math.max(0, Math.min(n, Math.floor((dev.sectors - at) / blockSectors)));
    if (inside > 0) {
      const buf = new Uint8Array(inside * blockBytes);
      if (dev.read(at, buf) === OK) {
        for (let i = 0; i < inside; i++) out.push(buf.subarray(i * blockBytes, (i + 1) * blockBytes));
      } else {
        for (let i = 0; i < inside; i++) {
          const one = new Uint8Array(blockBytes);
          out.push(dev.read(at + i * blockSectors, one) === OK ? one : null);
        }
      }
    }
    for (let i = inside; i < n; i++) out.push(null);
  }
  return out;
}

/** One block, as readBlocks reads it; into `into` (blockBytes long) when given, a buffer to reuse. */
export function readBlock(dev: BlockDevice, sector: number, blockBytes: number, into?: Uint8Array): Uint8Array | null {
  if (!into) return readBlocks(dev, sector, 1, blockBytes)[0];
  if (sector + blockBytes / SECTOR_SIZE > dev.sectors) return null;
  return dev.read(sector, into) === OK ? into : null;
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
