/**
 * The bad-block list of badblocks(8) and e2fsck(8) `-l`/`-L` as a pure codec:
 * one block number a line, decimal, in units of the file system's block size
 * (badblocks `-b`, default 1024). e2fsck adds the blocks to the bad-block
 * inode, so a list for another block size marks the wrong blocks: the size
 * travels beside the list (scan's --badblocks-block-size, a scenario's
 * badBlockSize), never in it.
 */
import { SECTOR_SIZE } from '../block/device.js';
import { BadListError, type SectorRange } from './badlist.js';

const SOURCE = 'badblocks list';

function checkBlockSize(blockSize: number): void {
  if (!Number.isSafeInteger(blockSize) || blockSize < SECTOR_SIZE || blockSize % SECTOR_SIZE !== 0) {
    throw new RangeError(`badblocks block size must be a multiple of ${SECTOR_SIZE} bytes, got ${blockSize}`);
  }
}

/** The blocks of `blockSize` bytes that hold a bad sector, one a line (a partly bad block is listed whole). */
export function formatBadblocksList(bad: readonly SectorRange[], blockSize: number): string {
  checkBlockSize(blockSize);
  const spb = blockSize / SECTOR_SIZE;
  const blocks = new Set<number>();
  for (const r of bad) for (let b = Math.floor(r.start / spb); b <= Math.floor((r.start + r.count - 1) / spb); b++) blocks.add(b);
  return [...blocks]
    .sort((a, b) => a - b)
    .map((b) => `${b}\n`)
    .join('');
}

/** A list back as the sectors of its blocks, merged; `limitBytes` (the device size) bounds the blocks. */
export function parseBadblocksList(text: string, blockSize: number, limitBytes?: number): SectorRange[] {
  checkBlockSize(blockSize);
  const spb = blockSize / SECTOR_SIZE;
  const blocks = new Set<number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const body = lines[i]!.trim();
    if (body === '') continue;
    if (!/^[0-9]+$/.test(body)) throw new BadListError(i + 1, `'${body}' is not a block number (one decimal number a line)`, SOURCE);
    const b = Number(body);
    if (!Number.isSafeInteger(b * blockSize)) throw new BadListError(i + 1, `block ${body} is too large`, SOURCE);
    if (limitBytes !== undefined && (b + 1) * blockSize > limitBytes) {
      throw new BadListError(i + 1, `block ${b} of ${blockSize} bytes is beyond the device end (${Math.floor(limitBytes / blockSize)} blocks)`, SOURCE);
    }
    blocks.add(b);
  }
  const out: SectorRange[] = [];
  for (const b of [...blocks].sort((x, y) => x - y)) {
    const last = out[out.length - 1];
    if (last && last.start + last.count === b * spb) last.count += spb;
    else out.push({ start: b * spb, count: spb });
  }
  return out;
}
