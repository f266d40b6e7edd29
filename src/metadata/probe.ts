/**
 * What a spare holds, told from the places where metadata lives: remapsim's
 * superblocks (first and last 4 KiB block) and the five dm-remap-v4 copies
 * (spare sectors 0, 256, 512, 768, 1024). Used to refuse overwriting foreign
 * or unreadable metadata, and by `inspect` to pick the format.
 */
import { type BlockDevice, OK } from '../block/device.js';
import { type V4Choice, chooseBestCopy, V4_MAGIC } from './dm-remap-v4.js';
import {
  type Area,
  type SafeSuperblock,
  SAFE_BLOCK_SECTORS,
  SAFE_BLOCK_SIZE,
  decodeCheckpointBlock,
  decodeLogBlock,
  decodeSuperblock,
  isBlankBlock,
} from './safe-format.js';
import { MetadataFormatError } from './errors.js';
import { readBlock } from './spare-io.js';
import { readV4Copies } from './v4-store.js';

export type SpareContent =
  | { kind: 'blank' }
  | { kind: 'safe'; valid: Area[]; superblock: SafeSuperblock }
  | { kind: 'safe-damaged'; problems: string[] }
  | { kind: 'dm-remap-v4'; choice: V4Choice }
  | { kind: 'dm-remap-v4-damaged'; choice: V4Choice }
  | { kind: 'unknown'; sector: number }
  /** No metadata where it goes, but written data elsewhere (firstWrittenSector): not a new spare. */
  | { kind: 'used'; sector: number };

const SAFE_MAGIC = new TextEncoder().encode('remapsim');

function hasSafeMagic(b: Uint8Array | null): boolean {
  if (!b) return false;
  for (let i = 0; i < SAFE_MAGIC.length; i++) if (b[i] !== SAFE_MAGIC[i]) return false;
  return true;
}

/** Sector of superblock A or B on a spare of `spareSectors` sectors. */
export function safeSuperblockSector(spareSectors: number, area: Area): number {
  return area === 'A' ? 0 : (Math.floor(spareSectors / SAFE_BLOCK_SECTORS) - 1) * SAFE_BLOCK_SECTORS;
}

export function readSafeSuperblocks(spare: BlockDevice): { A: Uint8Array | null; B: Uint8Array | null } {
  const blocks = Math.floor(spare.sectors / SAFE_BLOCK_SECTORS);
  if (blocks < 1) return { A: null, B: null };
  return {
    A: readBlock(spare, safeSuperblockSector(spare.sectors, 'A'), SAFE_BLOCK_SIZE),
    B: blocks > 1 ? readBlock(spare, safeSuperblockSector(spare.sectors, 'B'), SAFE_BLOCK_SIZE) : null,
  };
}

export function probeSpare(spare: BlockDevice, nowSeconds: number = Date.now() / 1000): SpareContent {
  const sbs = readSafeSuperblocks(spare);
  const valid: Array<{ area: Area; sb: SafeSuperblock }> = [];
  const problems: string[] = [];
  for (const area of ['A', 'B'] as const) {
    const bytes = sbs[area];
    if (!hasSafeMagic(bytes)) continue;
    try {
      valid.push({ area, sb: decodeSuperblock(bytes as Uint8Array, area) });
    } catch (e) {
      problems.push(`superblock ${area}: ${e instanceof MetadataFormatError ? e.message : String(e)}`);
    }
  }
  if (valid.length > 0) {
    const newest = valid.reduce((a, b) => (b.sb.generation > a.sb.generation ? b : a));
    return { kind: 'safe', valid: valid.map((v) => v.area), superblock: newest.sb };
  }
  if (problems.length > 0) return { kind: 'safe-damaged', problems };

  const copies = readV4Copies(spare);
  const choice = chooseBestCopy(copies, Math.floor(nowSeconds));
  if (choice.best) return { kind: 'dm-remap-v4', choice };
  if (copies.some((c) => c !== null && new DataView(c.buffer, c.byteOffset, 4).getUint32(0, true) === V4_MAGIC)) {
    return { kind: 'dm-remap-v4-damaged', choice };
  }

  const places: Array<[number, Uint8Array | null]> = [
    [safeSuperblockSector(spare.sectors, 'A'), sbs.A],
    [safeSuperblockSector(spare.sectors, 'B'), sbs.B],
  ];
  for (const s of [256, 512, 768, 1024]) {
    if (s + SAFE_BLOCK_SECTORS <= spare.sectors) places.push([s, readBlock(spare, s, SAFE_BLOCK_SIZE)]);
  }
  for (const [sector, bytes] of places) {
    if (bytes === null) return { kind: 'unknown', sector };
    // a checkpoint or log block of our own with no superblock: an interrupted format, free to format again
    if (!isBlankBlock(bytes) && !isOwnBodyBlock(bytes)) return { kind: 'unknown', sector: sector + firstNonZeroSector(bytes) };
  }
  const written = firstWrittenSector(spare);
  return written === undefined ? { kind: 'blank' } : { kind: 'used', sector: written };
}

/** Bytes read at a time when looking for written data. */
const SCAN_BYTES = 1 << 20;

/**
 * The first sector of a spare file that holds written data (not zeroes, not
 * the empty checkpoint an interrupted format leaves), or undefined.
 *
 * Blank metadata places alone do not make a spare new: a spare truncated
 * while a target used it, and written to again (remapped data, log blocks),
 * or shrunk, has blank superblocks too, and formatting it would send main's
 * remapped blocks back to their old contents. A spare that was never used
 * holds nothing but zeroes, and a new sparse file not even those, so only
 * the file's data extents (SEEK_DATA) are read: nothing for a new sparse
 * file, once the whole of a zero-filled one. A block device, or a device
 * that is not a file, is not read beyond the metadata places (that would be
 * all of it); neither is a spare emptied whole (truncated to zero and grown
 * again) told from a new one: nothing on it says what it held.
 */
function firstWrittenSector(spare: BlockDevice): number | undefined {
  const file = backingFile(spare);
  const extents = file?.dataExtents();
  if (!file || !extents) return undefined;
  const blockSectors = SAFE_BLOCK_SECTORS;
  for (const [start, end] of extents) {
    const last = Math.min(file.sectors, Math.ceil(end / blockSectors) * blockSectors);
    for (let at = start - (start % blockSectors); at < last; at += SCAN_BYTES / 512) {
      const buf = new Uint8Array(Math.min(SCAN_BYTES, (last - at) * 512));
      if (file.read(at, buf) !== OK) return at; // unreadable: not known to be empty
      for (let off = 0; off < buf.length; off += SAFE_BLOCK_SIZE) {
        const block = buf.subarray(off, off + SAFE_BLOCK_SIZE);
        if (!isBlankBlock(block) && !isEmptyCheckpointBlock(block)) return at + off / 512 + firstNonZeroSector(block);
      }
    }
  }
  return undefined;
}

/** The device at the bottom of `dev`'s layers (each fault layer keeps `inner`), when it can tell where a file holds data. */
function backingFile(dev: BlockDevice): (BlockDevice & { dataExtents(): Array<[number, number]> | undefined }) | undefined {
  for (let d: unknown = dev; d !== undefined && d !== null; d = (d as { inner?: unknown }).inner) {
    if (typeof (d as { dataExtents?: unknown }).dataExtents === 'function') return d as BlockDevice & { dataExtents(): Array<[number, number]> | undefined };
  }
  return undefined;
}

/** A checkpoint block without entries: what a format writes before its superblocks (an interrupted format leaves it). */
function isEmptyCheckpointBlock(b: Uint8Array): boolean {
  if (b.length !== SAFE_BLOCK_SIZE) return false;
  try {
    return decodeCheckpointBlock(b).totalEntries === 0;
  } catch {
    return false;
  }
}

function isOwnBodyBlock(b: Uint8Array): boolean {
  for (const decode of [decodeCheckpointBlock, decodeLogBlock]) {
    try {
      decode(b);
      return true;
    } catch {
      // not this kind
    }
  }
  return false;
}

function firstNonZeroSector(b: Uint8Array): number {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return Math.floor(i / 512);
  return 0;
}

/** One line saying what the spare holds. */
export function describeContent(c: SpareContent): string {
  switch (c.kind) {
    case 'blank':
      return 'no metadata (blank)';
    case 'safe':
      return `remapsim safe-policy metadata (generation ${c.superblock.generation}, ${c.superblock.checkpointEntries} remaps at the last checkpoint, valid superblock${c.valid.length > 1 ? 's' : ''} ${c.valid.join(' and ')})`;
    case 'safe-damaged':
      return `unreadable remapsim metadata (${c.problems.join('; ')})`;
    case 'dm-remap-v4': {
      const best = c.choice.best!;
      return `dm-remap-v4 metadata (copy ${best.index} wins: sequence ${best.metadata.sequence}, ${best.metadata.entries.length} remaps)`;
    }
    case 'dm-remap-v4-damaged':
      return `unreadable dm-remap-v4 metadata (no valid copy: ${c.choice.results.map((r, i) => `copy ${i}: ${r.valid ? 'valid' : r.reason}`).join(', ')})`;
    case 'unknown':
      return `unknown data at spare sector ${c.sector} (not remapsim or dm-remap-v4 metadata)`;
    case 'used':
      return `no metadata, but written data at spare sector ${c.sector}: a spare that held a table of remaps and lost its metadata (truncated, shrunk or overwritten while in use?) or data of something else`;
  }
}
