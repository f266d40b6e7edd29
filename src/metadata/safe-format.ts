/**
 * remapsim's own metadata format, for the `safe` policy. Pure codecs: bytes in,
 * objects out and back; the store does the I/O.
 *
 * Goals: nothing acknowledged is lost when one copy of any metadata block is
 * damaged or a write is torn; no fixed limit on the number of remaps (the
 * checkpoint area is sized for a remap of every data block of the spare);
 * metadata of another device is refused.
 *
 * ## Spare layout (metadata blocks are 4096 bytes; block b = spare sectors 8b..8b+7)
 *
 * Let S = floor(spareSectors / 8) (whole 4 KiB blocks), L = log blocks, C =
 * checkpoint slot blocks, and areaBlocks = 1 + 2C + L. Two mirrored areas:
 *
 *   area A (start):  block 0                  superblock A
 *                    blocks 1 .. C            checkpoint slot 0
 *                    blocks 1+C .. 2C         checkpoint slot 1
 *                    blocks 1+2C .. 2C+L      log, slots 0 .. L-1
 *   data             sectors [8*areaBlocks, 8*(S - areaBlocks))   remap targets
 *   area B (end):    base = S - areaBlocks
 *                    base .. base+C-1         checkpoint slot 0
 *                    base+C .. base+2C-1      checkpoint slot 1
 *                    base+2C .. base+2C+L-1   log
 *                    block S-1                superblock B
 *
 * Both superblocks are found from the spare size alone (first and last whole
 * block). Everything is written to A, then to B. Default L = 256 (1 MiB); the
 * default C holds one entry per data block, so the table can never outgrow it.
 *
 * Addresses in the table are in remap units of `remapBlockSectors` sectors
 * (1, 2, 4 or 8; at least the main device's logical block size): a main
 * block m covers main sectors m*u .. m*u+u-1; a spare block s covers spare
 * sectors s*u .. (absolute on the spare; always inside the data region). The
 * allocation cursor is the next free spare block.
 *
 * ## Block formats (little-endian; every block ends with CRC32C of bytes [0,4092) at 4092)
 *
 * Superblock:
 *   0 magic "remapsim" | 8 version u32 = 1 | 12 copy u32 (0 = A, 1 = B)
 *   16 generation u64 (+1 on every superblock write) | 24 volume id u64
 *   32 main sectors u64 | 40 main logical block size u32 | 44 identity length u32 (<= 128)
 *   48 identity, UTF-8, 128 bytes          (these three fields: the main device's fingerprint)
 *   176 spare sectors u64 | 184 remap block sectors u32 | 188 metadata block size u32 = 4096
 *   192 log blocks L u64 | 200 checkpoint slot blocks C u64 | 208 area blocks u64
 *   216 data start sector u64 | 224 data end sector u64
 *   232 checkpoint epoch u64 | 240 checkpoint slot u32 | 244 reserved u32
 *   248 checkpoint blocks u64 | 256 checkpoint entries u64 | 264 log start sequence u64
 *   272 .. 4092 zero
 *
 * Checkpoint block (a full snapshot of the table, blocks 0..n-1 of one slot):
 *   0 magic "RSCK" | 4 entries in this block u32 (<= 251) | 8 volume id u64 | 16 epoch u64
 *   24 block index u32 | 28 block count u32 | 32 total entries u64 | 40 cursor u64
 *   48 .. 64 zero | 64 entries: main block u64, spare block u64 (16 bytes each,
 *   sorted by main block across the whole checkpoint) | rest zero
 *   n = max(1, ceil(entries / 251)); an empty table still has one block (the cursor).
 *
 * Log block (one commit = one block; never rewritten within an epoch):
 *   0 magic "RSLG" | 4 record count u32 (<= 169) | 8 volume id u64 | 16 epoch u64
 *   24 sequence u64 | 32 records, 24 bytes each | rest zero
 *   record: 0 op u8 (1 add, 2 remove, 3 cursor) | 1..8 zero | 8 main block u64 | 16 value u64
 *     add main -> spare (value = spare block; the cursor becomes at least spare+1)
 *     remove main (value 0) | cursor (main 0, value = new cursor; the cursor never moves back)
 *
 * Unused and reserved bytes must be zero, so a block that decodes is exactly
 * what the encoder writes for the decoded value.
 *
 * ## Commit protocol (the store's side) and recovery (replay)
 *
 * - Append: log block at slot k of the current epoch carries sequence
 *   logStartSeq + k; write it to A's then B's log slot k; then acknowledge.
 * - Checkpoint (log full, or after recovery trouble): write the snapshot
 *   (epoch + 1) into the inactive slot of A and B, then superblock A, then B,
 *   with generation + 1, the new slot/epoch/size and logStartSeq = the next
 *   sequence. The log restarts at slot 0.
 * - replay(): takes the valid superblock with the highest generation (both
 *   must carry the caller's fingerprint, else MetadataFormatError
 *   'foreign-device'); loads its checkpoint, each block from whichever copy is
 *   valid; falls back to the other superblock when a checkpoint block is lost
 *   in both copies. Then it applies log slots 0, 1, ... whose block (from A or
 *   B) has the volume id, the epoch and sequence logStartSeq + slot. The first
 *   slot after the last such block is the tail: what lies there (a torn or
 *   never finished write: CRC or sequence mismatch) is ignored. A slot with no
 *   valid copy followed by valid ones is lost data and is reported. Every copy
 *   that differs from the state it should hold is listed for rewriting.
 *
 * A fresh random volume id per format keeps blocks of an earlier format of
 * the same spare from being taken for current ones.
 */

import { crc32cOf } from './crc.js';
import { checkSafe, getSafeU64, requireBytes, view } from './bytes.js';
import { MetadataFormatError, MetadataValueError } from './errors.js';

export const SAFE_BLOCK_SIZE = 4096;
export const SAFE_BLOCK_SECTORS = 8;
export const SAFE_VERSION = 1;
export const SAFE_CRC_OFFSET = 4092;
export const SAFE_IDENTITY_MAX = 128;
export const SAFE_DEFAULT_LOG_BLOCKS = 256;
export const CHECKPOINT_HEADER_SIZE = 64;
export const CHECKPOINT_ENTRY_SIZE = 16;
export const CHECKPOINT_ENTRIES_PER_BLOCK = Math.floor((SAFE_CRC_OFFSET - CHECKPOINT_HEADER_SIZE) / CHECKPOINT_ENTRY_SIZE); // 251
export const LOG_HEADER_SIZE = 32;
export const LOG_RECORD_SIZE = 24;
export const LOG_RECORDS_PER_BLOCK = Math.floor((SAFE_CRC_OFFSET - LOG_HEADER_SIZE) / LOG_RECORD_SIZE); // 169

const SUPER_MAGIC = new TextEncoder().encode('remapsim');
const CKPT_MAGIC = 0x4b435352; // "RSCK" read as u32 LE
const LOG_MAGIC = 0x474c5352; // "RSLG"
const OP_ADD = 1;
const OP_REMOVE = 2;
const OP_CURSOR = 3;

export type Area = 'A' | 'B';
export const AREAS: readonly Area[] = ['A', 'B'];

export interface DeviceFingerprint {
  /** Main device size in 512-byte sectors. */
  mainSectors: number;
  logicalBlockSize: number;
  /** Caller's identity of the main device (serial, WWN, a hash...), at most 128 bytes of UTF-8. */
  identity: string;
}

export interface SafeLayout {
  spareSectors: number;
  remapBlockSectors: number;
  logBlocks: number;
  checkpointSlotBlocks: number;
  areaBlocks: number;
  dataStartSector: number;
  dataEndSector: number;
}

export interface SafeSuperblock {
  generation: number;
  volumeId: number;
  fingerprint: DeviceFingerprint;
  layout: SafeLayout;
  checkpointEpoch: number;
  checkpointSlot: 0 | 1;
  checkpointBlocks: number;
  checkpointEntries: number;
  logStartSeq: number;
}

export type LogRecord = { op: 'add'; main: number; spare: number } | { op: 'remove'; main: number } | { op: 'cursor'; cursor: number };

export interface LogBlock {
  volumeId: number;
  epoch: number;
  seq: number;
  records: LogRecord[];
}

export interface CheckpointBlock {
  volumeId: number;
  epoch: number;
  index: number;
  count: number;
  totalEntries: number;
  cursor: number;
  /** [main block, spare block], sorted by main block. */
  entries: Array<[number, number]>;
}

// ---------------------------------------------------------------- layout

export interface SafeLayoutOptions {
  spareSectors: number;
  remapBlockSectors: number;
  logBlocks?: number;
  /** Default: enough for one entry per data block. */
  checkpointSlotBlocks?: number;
}

const REMAP_BLOCK_SECTORS = [1, 2, 4, 8];

export function computeSafeLayout(opts: SafeLayoutOptions): SafeLayout {
  const spareSectors = checkSafe('spareSectors', opts.spareSectors, 1);
  const rbs = opts.remapBlockSectors;
  if (!REMAP_BLOCK_SECTORS.includes(rbs)) {
    throw new MetadataValueError('remapBlockSectors', `remapBlockSectors must be 1, 2, 4 or 8, got ${String(rbs)}`);
  }
  const logBlocks = checkSafe('logBlocks', opts.logBlocks ?? SAFE_DEFAULT_LOG_BLOCKS, 1);
  const spareBlocks = Math.floor(spareSectors / SAFE_BLOCK_SECTORS);
  const room = spareBlocks - 2 * (1 + logBlocks); // blocks left for checkpoints and data
  let slotBlocks: number;
  if (opts.checkpointSlotBlocks === undefined) {
    const maxUnits = Math.max(0, Math.floor((room * SAFE_BLOCK_SECTORS) / rbs));
    slotBlocks = Math.max(1, Math.ceil(maxUnits / CHECKPOINT_ENTRIES_PER_BLOCK));
  } else {
    slotBlocks = checkSafe('checkpointSlotBlocks', opts.checkpointSlotBlocks, 1);
  }
  const areaBlocks = 1 + 2 * slotBlocks + logBlocks;
  const layout: SafeLayout = {
    spareSectors,
    remapBlockSectors: rbs,
    logBlocks,
    checkpointSlotBlocks: slotBlocks,
    areaBlocks,
    dataStartSector: areaBlocks * SAFE_BLOCK_SECTORS,
    dataEndSector: (spareBlocks - areaBlocks) * SAFE_BLOCK_SECTORS,
  };
  if (layout.dataEndSector - layout.dataStartSector < rbs || !Number.isSafeInteger(areaBlocks * SAFE_BLOCK_SECTORS)) {
    const need = (2 * areaBlocks + 1) * SAFE_BLOCK_SECTORS;
    throw new MetadataValueError(
      'spareSectors',
      `spareSectors is ${spareSectors}; this layout needs at least ${need} (two metadata areas of ${areaBlocks} blocks and one data block)`,
    );
  }
  return layout;
}

/** Data region in remap units: [first, end). */
export function dataUnits(layout: SafeLayout): { first: number; end: number } {
  return { first: layout.dataStartSector / layout.remapBlockSectors, end: layout.dataEndSector / layout.remapBlockSectors };
}

/** Number of main blocks (remap units) of the main device. */
export function mainUnits(fp: DeviceFingerprint, layout: SafeLayout): number {
  return Math.ceil(fp.mainSectors / layout.remapBlockSectors);
}

export type SafePlace = { region: 'superblock' } | { region: 'checkpoint'; slot: 0 | 1; index: number } | { region: 'log'; index: number };

/** Spare sector where a metadata block lives. */
export function safeBlockSector(layout: SafeLayout, area: Area, place: SafePlace): number {
  const spareBlocks = Math.floor(layout.spareSectors / SAFE_BLOCK_SECTORS);
  const C = layout.checkpointSlotBlocks;
  const bodyStart = area === 'A' ? 1 : spareBlocks - layout.areaBlocks;
  let block: number;
  switch (place.region) {
    case 'superblock':
      block = area === 'A' ? 0 : spareBlocks - 1;
      break;
    case 'checkpoint':
      if (!Number.isInteger(place.index) || place.index < 0 || place.index >= C) {
        throw new MetadataValueError('index', `checkpoint block index must be in [0, ${C - 1}], got ${place.index}`);
      }
      block = bodyStart + place.slot * C + place.index;
      break;
    case 'log':
      if (!Number.isInteger(place.index) || place.index < 0 || place.index >= layout.logBlocks) {
        throw new MetadataValueError('index', `log slot must be in [0, ${layout.logBlocks - 1}], got ${place.index}`);
      }
      block = bodyStart + 2 * C + place.index;
      break;
  }
  return block * SAFE_BLOCK_SECTORS;
}

function layoutProblem(l: SafeLayout): string | undefined {
  if (!REMAP_BLOCK_SECTORS.includes(l.remapBlockSectors)) return `remap block sectors is ${l.remapBlockSectors}, expected 1, 2, 4 or 8`;
  if (l.logBlocks < 1) return 'log blocks is 0';
  if (l.checkpointSlotBlocks < 1) return 'checkpoint slot blocks is 0';
  if (l.areaBlocks !== 1 + 2 * l.checkpointSlotBlocks + l.logBlocks)
    return `area blocks ${l.areaBlocks} is not 1 + 2 x ${l.checkpointSlotBlocks} + ${l.logBlocks}`;
  const spareBlocks = Math.floor(l.spareSectors / SAFE_BLOCK_SECTORS);
  if (l.dataStartSector !== l.areaBlocks * SAFE_BLOCK_SECTORS) return `data start sector ${l.dataStartSector} does not follow area A`;
  if (l.dataEndSector !== (spareBlocks - l.areaBlocks) * SAFE_BLOCK_SECTORS) return `data end sector ${l.dataEndSector} does not precede area B`;
  if (l.dataEndSector - l.dataStartSector < l.remapBlockSectors) return 'the data region is empty';
  return undefined;
}

// ---------------------------------------------------------------- helpers

function bad(message: string): MetadataFormatError {
  return new MetadataFormatError('bad-field', message);
}

function sealBlock(b: Uint8Array): Uint8Array {
  view(b).setUint32(SAFE_CRC_OFFSET, crc32cOf(b.subarray(0, SAFE_CRC_OFFSET)), true);
  return b;
}

function checkCrc(b: Uint8Array, what: string): void {
  const stored = view(b).getUint32(SAFE_CRC_OFFSET, true);
  const computed = crc32cOf(b.subarray(0, SAFE_CRC_OFFSET));
  if (stored !== computed) {
    throw new MetadataFormatError(
      'bad-crc',
      `${what}: CRC32C is 0x${stored.toString(16).padStart(8, '0')}, computed 0x${computed.toString(16).padStart(8, '0')}`,
    );
  }
}

const ZEROES = new Uint8Array(SAFE_BLOCK_SIZE);

function allZero(b: Uint8Array, from: number, to: number): boolean {
  // a whole block at a time through memcmp: replay checks every log block of both areas at each table load
  for (let i = from; i < to; i += ZEROES.length) {
    const n = Math.min(ZEROES.length, to - i);
    if (Buffer.compare(b.subarray(i, i + n), n === ZEROES.length ? ZEROES : ZEROES.subarray(0, n)) !== 0) return false;
  }
  return true;
}

function requireZero(b: Uint8Array, from: number, to: number, what: string): void {
  if (!allZero(b, from, to)) throw bad(`${what}: reserved bytes ${from}..${to - 1} are not zero`);
}

/** True for a block of zeros (never written): its first `length` bytes, all of them by default. */
export function isBlankBlock(bytes: Uint8Array, length = bytes.length): boolean {
  return allZero(bytes, 0, Math.min(length, bytes.length));
}

export function setU64(dv: DataView, offset: number, value: number): void {
  dv.setBigUint64(offset, BigInt(value), true);
}

function blockInput(bytes: unknown, what: string): Uint8Array {
  const b = requireBytes(bytes, SAFE_BLOCK_SIZE, what);
  return b.length === SAFE_BLOCK_SIZE ? b : b.subarray(0, SAFE_BLOCK_SIZE);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export function checkFingerprint(fp: DeviceFingerprint): Uint8Array {
  checkSafe('fingerprint.mainSectors', fp?.mainSectors, 1);
  const lbs = fp.logicalBlockSize;
  if (![512, 1024, 2048, 4096].includes(lbs)) {
    throw new MetadataValueError('fingerprint.logicalBlockSize', `fingerprint.logicalBlockSize must be 512, 1024, 2048 or 4096, got ${String(lbs)}`);
  }
  if (typeof fp.identity !== 'string') throw new MetadataValueError('fingerprint.identity', 'fingerprint.identity must be a string');
  const id = utf8Encoder.encode(fp.identity);
  if (id.length > SAFE_IDENTITY_MAX) {
    throw new MetadataValueError('fingerprint.identity', `fingerprint.identity must be at most ${SAFE_IDENTITY_MAX} bytes of UTF-8, got ${id.length}`);
  }
  return id;
}

// ---------------------------------------------------------------- superblock

const SB = {
  version: 8,
  copy: 12,
  generation: 16,
  volumeId: 24,
  mainSectors: 32,
  lbs: 40,
  identityLength: 44,
  identity: 48,
  spareSectors: 176,
  remapBlockSectors: 184,
  metaBlockSize: 188,
  logBlocks: 192,
  checkpointSlotBlocks: 200,
  areaBlocks: 208,
  dataStart: 216,
  dataEnd: 224,
  checkpointEpoch: 232,
  checkpointSlot: 240,
  reserved: 244,
  checkpointBlocks: 248,
  checkpointEntries: 256,
  logStartSeq: 264,
  end: 272,
} as const;

/** Number of checkpoint blocks a table of `entries` remaps takes. */
export function checkpointBlockCount(entries: number): number {
  return Math.max(1, Math.ceil(entries / CHECKPOINT_ENTRIES_PER_BLOCK));
}

export function encodeSuperblock(sb: SafeSuperblock, copy: Area): Uint8Array {
  const id = checkFingerprint(sb.fingerprint);
  const l = sb.layout;
  const problem = layoutProblem(l);
  if (problem) throw new MetadataValueError('layout', `layout is inconsistent: ${problem}`);
  if (l.remapBlockSectors * 512 < sb.fingerprint.logicalBlockSize) {
    throw new MetadataValueError(
      'layout.remapBlockSectors',
      `remapBlockSectors must cover the ${sb.fingerprint.logicalBlockSize}-byte logical block, got ${l.remapBlockSectors}`,
    );
  }
  if (sb.checkpointSlot !== 0 && sb.checkpointSlot !== 1)
    throw new MetadataValueError('checkpointSlot', `checkpointSlot must be 0 or 1, got ${String(sb.checkpointSlot)}`);
  const entries = checkSafe('checkpointEntries', sb.checkpointEntries);
  if (sb.checkpointBlocks !== checkpointBlockCount(entries) || sb.checkpointBlocks > l.checkpointSlotBlocks) {
    throw new MetadataValueError(
      'checkpointBlocks',
      `checkpointBlocks must be ${checkpointBlockCount(entries)} for ${entries} entries and at most the slot size ${l.checkpointSlotBlocks}, got ${String(sb.checkpointBlocks)}`,
    );
  }
  const b = new Uint8Array(SAFE_BLOCK_SIZE);
  const dv = view(b);
  b.set(SUPER_MAGIC, 0);
  dv.setUint32(SB.version, SAFE_VERSION, true);
  dv.setUint32(SB.copy, copy === 'A' ? 0 : 1, true);
  setU64(dv, SB.generation, checkSafe('generation', sb.generation, 1));
  setU64(dv, SB.volumeId, checkSafe('volumeId', sb.volumeId));
  setU64(dv, SB.mainSectors, sb.fingerprint.mainSectors);
  dv.setUint32(SB.lbs, sb.fingerprint.logicalBlockSize, true);
  dv.setUint32(SB.identityLength, id.length, true);
  b.set(id, SB.identity);
  setU64(dv, SB.spareSectors, l.spareSectors);
  dv.setUint32(SB.remapBlockSectors, l.remapBlockSectors, true);
  dv.setUint32(SB.metaBlockSize, SAFE_BLOCK_SIZE, true);
  setU64(dv, SB.logBlocks, l.logBlocks);
  setU64(dv, SB.checkpointSlotBlocks, l.checkpointSlotBlocks);
  setU64(dv, SB.areaBlocks, l.areaBlocks);
  setU64(dv, SB.dataStart, l.dataStartSector);
  setU64(dv, SB.dataEnd, l.dataEndSector);
  setU64(dv, SB.checkpointEpoch, checkSafe('checkpointEpoch', sb.checkpointEpoch, 1));
  dv.setUint32(SB.checkpointSlot, sb.checkpointSlot, true);
  setU64(dv, SB.checkpointBlocks, sb.checkpointBlocks);
  setU64(dv, SB.checkpointEntries, entries);
  setU64(dv, SB.logStartSeq, checkSafe('logStartSeq', sb.logStartSeq, 1));
  return sealBlock(b);
}

/**
 * Decodes a superblock; `copy` (when given) is where it was read from, and a
 * superblock of the other copy found there is refused.
 */
export function decodeSuperblock(bytes: Uint8Array, copy?: Area): SafeSuperblock & { copy: Area } {
  const what = `superblock${copy ? ' ' + copy : ''}`;
  const b = blockInput(bytes, what);
  for (let i = 0; i < SUPER_MAGIC.length; i++) {
    if (b[i] !== SUPER_MAGIC[i]) {
      throw new MetadataFormatError('bad-magic', isBlankBlock(b) ? `${what}: blank (never written)` : `${what}: no remapsim magic`);
    }
  }
  checkCrc(b, what);
  const dv = view(b);
  const version = dv.getUint32(SB.version, true);
  if (version !== SAFE_VERSION) throw new MetadataFormatError('bad-version', `${what}: version is ${version}, this build reads version ${SAFE_VERSION}`);
  const copyField = dv.getUint32(SB.copy, true);
  if (copyField > 1) throw bad(`${what}: copy is ${copyField}, expected 0 (A) or 1 (B)`);
  const found: Area = copyField === 0 ? 'A' : 'B';
  if (copy && found !== copy) throw bad(`${what}: holds superblock ${found}`);
  const u64 = (off: number, name: string) => getSafeU64(dv, off, `${what}: ${name}`);
  const idLen = dv.getUint32(SB.identityLength, true);
  if (idLen > SAFE_IDENTITY_MAX) throw bad(`${what}: identity length is ${idLen}, at most ${SAFE_IDENTITY_MAX}`);
  requireZero(b, SB.identity + idLen, SB.spareSectors, what);
  let identity: string;
  try {
    identity = utf8.decode(b.subarray(SB.identity, SB.identity + idLen));
  } catch {
    throw bad(`${what}: identity is not valid UTF-8`);
  }
  requireZero(b, SB.reserved, SB.reserved + 4, what);
  requireZero(b, SB.end, SAFE_CRC_OFFSET, what);
  const metaBlockSize = dv.getUint32(SB.metaBlockSize, true);
  if (metaBlockSize !== SAFE_BLOCK_SIZE) throw bad(`${what}: metadata block size is ${metaBlockSize}, expected ${SAFE_BLOCK_SIZE}`);
  const lbs = dv.getUint32(SB.lbs, true);
  const fingerprint: DeviceFingerprint = { mainSectors: u64(SB.mainSectors, 'main sectors'), logicalBlockSize: lbs, identity };
  if (fingerprint.mainSectors < 1) throw bad(`${what}: main sectors is 0`);
  if (![512, 1024, 2048, 4096].includes(lbs)) throw bad(`${what}: logical block size is ${lbs}, expected 512, 1024, 2048 or 4096`);
  const layout: SafeLayout = {
    spareSectors: u64(SB.spareSectors, 'spare sectors'),
    remapBlockSectors: dv.getUint32(SB.remapBlockSectors, true),
    logBlocks: u64(SB.logBlocks, 'log blocks'),
    checkpointSlotBlocks: u64(SB.checkpointSlotBlocks, 'checkpoint slot blocks'),
    areaBlocks: u64(SB.areaBlocks, 'area blocks'),
    dataStartSector: u64(SB.dataStart, 'data start sector'),
    dataEndSector: u64(SB.dataEnd, 'data end sector'),
  };
  const lp = layoutProblem(layout);
  if (lp) throw bad(`${what}: ${lp}`);
  if (layout.remapBlockSectors * 512 < lbs)
    throw bad(`${what}: remap block of ${layout.remapBlockSectors} sectors is smaller than the ${lbs}-byte logical block`);
  const slot = dv.getUint32(SB.checkpointSlot, true);
  if (slot > 1) throw bad(`${what}: checkpoint slot is ${slot}, expected 0 or 1`);
  const sb: SafeSuperblock & { copy: Area } = {
    copy: found,
    generation: u64(SB.generation, 'generation'),
    volumeId: u64(SB.volumeId, 'volume id'),
    fingerprint,
    layout,
    checkpointEpoch: u64(SB.checkpointEpoch, 'checkpoint epoch'),
    checkpointSlot: slot as 0 | 1,
    checkpointBlocks: u64(SB.checkpointBlocks, 'checkpoint blocks'),
    checkpointEntries: u64(SB.checkpointEntries, 'checkpoint entries'),
    logStartSeq: u64(SB.logStartSeq, 'log start sequence'),
  };
  if (sb.generation < 1) throw bad(`${what}: generation is 0`);
  if (sb.checkpointEpoch < 1) throw bad(`${what}: checkpoint epoch is 0`);
  if (sb.logStartSeq < 1) throw bad(`${what}: log start sequence is 0`);
  const safeTop = Number.MAX_SAFE_INTEGER - layout.logBlocks - 1;
  if (sb.generation > safeTop || sb.checkpointEpoch > safeTop || sb.logStartSeq > safeTop) {
    throw bad(`${what}: generation, epoch or log sequence too close to 2^53`);
  }
  if (sb.checkpointBlocks !== checkpointBlockCount(sb.checkpointEntries)) {
    throw bad(
      `${what}: checkpoint of ${sb.checkpointEntries} entries must take ${checkpointBlockCount(sb.checkpointEntries)} blocks, not ${sb.checkpointBlocks}`,
    );
  }
  if (sb.checkpointBlocks > layout.checkpointSlotBlocks) {
    throw bad(`${what}: checkpoint of ${sb.checkpointBlocks} blocks does not fit its ${layout.checkpointSlotBlocks}-block slot`);
  }
  return sb;
}

// ---------------------------------------------------------------- checkpoint

export interface CheckpointInput {
  volumeId: number;
  epoch: number;
  cursor: number;
  /** main block -> spare block */
  remaps: ReadonlyMap<number, number> | Iterable<readonly [number, number]>;
}

/** Encodes a full snapshot of the table: max(1, ceil(n / 251)) blocks, entries sorted by main block. */
export function encodeCheckpoint(input: CheckpointInput): Uint8Array[] {
  const volumeId = checkSafe('volumeId', input.volumeId);
  const epoch = checkSafe('epoch', input.epoch, 1);
  const cursor = checkSafe('cursor', input.cursor);
  const entries: Array<[number, number]> = [];
  for (const [main, spare] of input.remaps as Iterable<readonly [number, number]>) {
    checkSafe('remap main block', main);
    checkSafe('remap spare block', spare);
    if (spare >= cursor) throw new MetadataValueError('cursor', `cursor ${cursor} must be above every allocated spare block (found ${spare})`);
    entries.push([main, spare]);
  }
  entries.sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < entries.length; i++) {
    if (entries[i][0] === entries[i - 1][0]) throw new MetadataValueError('remaps', `main block ${entries[i][0]} appears twice`);
  }
  const count = checkpointBlockCount(entries.length);
  if (count > 0xffffffff) throw new MetadataValueError('remaps', `${entries.length} remaps exceed the checkpoint format`);
  const blocks: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const part = entries.slice(index * CHECKPOINT_ENTRIES_PER_BLOCK, (index + 1) * CHECKPOINT_ENTRIES_PER_BLOCK);
    const b = new Uint8Array(SAFE_BLOCK_SIZE);
    const dv = view(b);
    dv.setUint32(0, CKPT_MAGIC, true);
    dv.setUint32(4, part.length, true);
    setU64(dv, 8, volumeId);
    setU64(dv, 16, epoch);
    dv.setUint32(24, index, true);
    dv.setUint32(28, count, true);
    setU64(dv, 32, entries.length);
    setU64(dv, 40, cursor);
    part.forEach(([main, spare], i) => {
      setU64(dv, CHECKPOINT_HEADER_SIZE + i * CHECKPOINT_ENTRY_SIZE, main);
      setU64(dv, CHECKPOINT_HEADER_SIZE + i * CHECKPOINT_ENTRY_SIZE + 8, spare);
    });
    blocks.push(sealBlock(b));
  }
  return blocks;
}

export function decodeCheckpointBlock(bytes: Uint8Array): CheckpointBlock {
  const what = 'checkpoint block';
  const b = blockInput(bytes, what);
  const dv = view(b);
  if (dv.getUint32(0, true) !== CKPT_MAGIC) {
    throw new MetadataFormatError('bad-magic', isBlankBlock(b) ? `${what}: blank (never written)` : `${what}: no checkpoint magic`);
  }
  checkCrc(b, what);
  const n = dv.getUint32(4, true);
  const index = dv.getUint32(24, true);
  const count = dv.getUint32(28, true);
  const u64 = (off: number, name: string) => getSafeU64(dv, off, `${what}: ${name}`);
  const blk: CheckpointBlock = {
    volumeId: u64(8, 'volume id'),
    epoch: u64(16, 'epoch'),
    index,
    count,
    totalEntries: u64(32, 'total entries'),
    cursor: u64(40, 'cursor'),
    entries: [],
  };
  if (blk.epoch < 1) throw bad(`${what}: epoch is 0 (epochs start at 1)`);
  if (count < 1 || index >= count) throw bad(`${what}: index ${index} of ${count} blocks`);
  if (checkpointBlockCount(blk.totalEntries) !== count) throw bad(`${what}: ${blk.totalEntries} entries cannot take ${count} blocks`);
  const expected = index < count - 1 ? CHECKPOINT_ENTRIES_PER_BLOCK : blk.totalEntries - CHECKPOINT_ENTRIES_PER_BLOCK * (count - 1);
  if (n !== expected) throw bad(`${what}: block ${index} of ${count} holds ${n} entries, expected ${expected}`);
  requireZero(b, 48, CHECKPOINT_HEADER_SIZE, what);
  const end = CHECKPOINT_HEADER_SIZE + n * CHECKPOINT_ENTRY_SIZE;
  requireZero(b, end, SAFE_CRC_OFFSET, what);
  let prev = -1;
  for (let i = 0; i < n; i++) {
    const main = u64(CHECKPOINT_HEADER_SIZE + i * CHECKPOINT_ENTRY_SIZE, `entry ${i} main block`);
    const spare = u64(CHECKPOINT_HEADER_SIZE + i * CHECKPOINT_ENTRY_SIZE + 8, `entry ${i} spare block`);
    if (main <= prev) throw bad(`${what}: entries are not sorted by main block at entry ${i}`);
    if (spare >= blk.cursor) throw bad(`${what}: entry ${i} spare block ${spare} is not below the cursor ${blk.cursor}`);
    blk.entries.push([main, spare]);
    prev = main;
  }
  return blk;
}

// ---------------------------------------------------------------- log

export function encodeLogBlock(block: LogBlock): Uint8Array {
  const volumeId = checkSafe('volumeId', block.volumeId);
  const epoch = checkSafe('epoch', block.epoch, 1);
  const seq = checkSafe('seq', block.seq, 1);
  if (!Array.isArray(block.records) || block.records.length > LOG_RECORDS_PER_BLOCK) {
    throw new MetadataValueError(
      'records',
      `records must be an array of at most ${LOG_RECORDS_PER_BLOCK} records, got ${Array.isArray(block.records) ? block.records.length : typeof block.records}`,
    );
  }
  const b = new Uint8Array(SAFE_BLOCK_SIZE);
  const dv = view(b);
  dv.setUint32(0, LOG_MAGIC, true);
  dv.setUint32(4, block.records.length, true);
  setU64(dv, 8, volumeId);
  setU64(dv, 16, epoch);
  setU64(dv, 24, seq);
  block.records.forEach((r, i) => {
    const o = LOG_HEADER_SIZE + i * LOG_RECORD_SIZE;
    switch (r?.op) {
      case 'add':
        b[o] = OP_ADD;
        setU64(dv, o + 8, checkSafe(`records[${i}].main`, r.main));
        setU64(dv, o + 16, checkSafe(`records[${i}].spare`, r.spare));
        break;
      case 'remove':
        b[o] = OP_REMOVE;
        setU64(dv, o + 8, checkSafe(`records[${i}].main`, r.main));
        break;
      case 'cursor':
        b[o] = OP_CURSOR;
        setU64(dv, o + 16, checkSafe(`records[${i}].cursor`, r.cursor));
        break;
      default:
        throw new MetadataValueError(`records[${i}].op`, `records[${i}].op must be 'add', 'remove' or 'cursor'`);
    }
  });
  return sealBlock(b);
}

export function decodeLogBlock(bytes: Uint8Array): LogBlock {
  const what = 'log block';
  const b = blockInput(bytes, what);
  const dv = view(b);
  if (dv.getUint32(0, true) !== LOG_MAGIC) {
    throw new MetadataFormatError('bad-magic', isBlankBlock(b) ? `${what}: blank (never written)` : `${what}: no log magic`);
  }
  checkCrc(b, what);
  const n = dv.getUint32(4, true);
  if (n > LOG_RECORDS_PER_BLOCK) throw bad(`${what}: ${n} records, at most ${LOG_RECORDS_PER_BLOCK}`);
  const u64 = (off: number, name: string) => getSafeU64(dv, off, `${what}: ${name}`);
  const out: LogBlock = { volumeId: u64(8, 'volume id'), epoch: u64(16, 'epoch'), seq: u64(24, 'sequence'), records: [] };
  requireZero(b, LOG_HEADER_SIZE + n * LOG_RECORD_SIZE, SAFE_CRC_OFFSET, what);
  for (let i = 0; i < n; i++) {
    const o = LOG_HEADER_SIZE + i * LOG_RECORD_SIZE;
    requireZero(b, o + 1, o + 8, `${what} record ${i}`);
    const main = u64(o + 8, `record ${i} main block`);
    const value = u64(o + 16, `record ${i} value`);
    switch (b[o]) {
      case OP_ADD:
        out.records.push({ op: 'add', main, spare: value });
        break;
      case OP_REMOVE:
        if (value !== 0) throw bad(`${what}: remove record ${i} has a non-zero value`);
        out.records.push({ op: 'remove', main });
        break;
      case OP_CURSOR:
        if (main !== 0) throw bad(`${what}: cursor record ${i} has a non-zero main block`);
        out.records.push({ op: 'cursor', cursor: value });
        break;
      default:
        throw bad(`${what}: record ${i} has unknown op ${b[o]}`);
    }
  }
  if (out.epoch < 1 || out.seq < 1) throw bad(`${what}: epoch and sequence start at 1`);
  return out;
}

// ---------------------------------------------------------------- format and checkpoint planning

export interface SafeFormatOptions extends SafeLayoutOptions {
  fingerprint: DeviceFingerprint;
  /** Random per format (a safe integer); keeps an earlier format's blocks out. */
  volumeId: number;
}

export interface SafeFormatted {
  superblock: SafeSuperblock;
  /** Superblock images for A and B. */
  superblockBytes: { A: Uint8Array; B: Uint8Array };
  /** Checkpoint slot 0 (write to A and B before the superblocks). */
  checkpointBlocks: Uint8Array[];
  /** The initial state: no remaps, cursor at the start of the data region. */
  state: SafeState;
}

/** A new, empty metadata volume: generation 1, epoch 1, slot 0, log sequence from 1. */
export function formatSafe(opts: SafeFormatOptions): SafeFormatted {
  checkFingerprint(opts.fingerprint);
  const layout = computeSafeLayout(opts);
  if (layout.remapBlockSectors * 512 < opts.fingerprint.logicalBlockSize) {
    throw new MetadataValueError(
      'remapBlockSectors',
      `remapBlockSectors must cover the ${opts.fingerprint.logicalBlockSize}-byte logical block, got ${layout.remapBlockSectors}`,
    );
  }
  const cursor = dataUnits(layout).first;
  const superblock: SafeSuperblock = {
    generation: 1,
    volumeId: checkSafe('volumeId', opts.volumeId),
    fingerprint: { ...opts.fingerprint },
    layout,
    checkpointEpoch: 1,
    checkpointSlot: 0,
    checkpointBlocks: 1,
    checkpointEntries: 0,
    logStartSeq: 1,
  };
  return {
    superblock,
    superblockBytes: { A: encodeSuperblock(superblock, 'A'), B: encodeSuperblock(superblock, 'B') },
    checkpointBlocks: encodeCheckpoint({ volumeId: superblock.volumeId, epoch: 1, cursor, remaps: [] }),
    state: { remaps: new Map(), cursor },
  };
}

export interface SafeState {
  /** main block -> spare block (remap units). */
  remaps: Map<number, number>;
  /** Next free spare block. */
  cursor: number;
}

export interface SafeCheckpointPlan {
  superblock: SafeSuperblock;
  superblockBytes: { A: Uint8Array; B: Uint8Array };
  /** Write these to the slot `superblock.checkpointSlot` of A and B first. */
  checkpointBlocks: Uint8Array[];
}

/**
 * The next checkpoint of `state`, after the superblock `current` and a log
 * whose next sequence number is `nextSeq`: epoch + 1 into the other slot,
 * generation `generation` (default current + 1), and a log restarting at slot
 * 0 with sequence `nextSeq`.
 */
export function planCheckpoint(current: SafeSuperblock, state: SafeState, nextSeq: number, generation = current.generation + 1): SafeCheckpointPlan {
  const epoch = current.checkpointEpoch + 1;
  const checkpointBlocks = encodeCheckpoint({ volumeId: current.volumeId, epoch, cursor: state.cursor, remaps: state.remaps });
  if (checkpointBlocks.length > current.layout.checkpointSlotBlocks) {
    throw new MetadataValueError(
      'remaps',
      `${state.remaps.size} remaps need ${checkpointBlocks.length} checkpoint blocks; the slot has ${current.layout.checkpointSlotBlocks}`,
    );
  }
  const superblock: SafeSuperblock = {
    ...current,
    generation,
    checkpointEpoch: epoch,
    checkpointSlot: current.checkpointSlot === 0 ? 1 : 0,
    checkpointBlocks: checkpointBlocks.length,
    checkpointEntries: state.remaps.size,
    logStartSeq: checkSafe('nextSeq', nextSeq, 1),
  };
  return { superblock, superblockBytes: { A: encodeSuperblock(superblock, 'A'), B: encodeSuperblock(superblock, 'B') }, checkpointBlocks };
}
