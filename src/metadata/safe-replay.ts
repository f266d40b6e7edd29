/**
 * Replay of the safe policy's metadata: from the blocks read off the spare
 * (both copies of each superblock, checkpoint block and log slot), the newest
 * durable state, and which damaged copies to rewrite. Pure: bytes in, a
 * result out; the store does the reading and the rewriting.
 */
import { view } from './bytes.js';
import { MetadataFormatError } from './errors.js';
import {
  AREAS,
  type Area,
  type CheckpointBlock,
  type DeviceFingerprint,
  type LogBlock,
  type LogRecord,
  SAFE_BLOCK_SIZE,
  type SafeLayout,
  type SafeState,
  type SafeSuperblock,
  checkFingerprint,
  dataUnits,
  decodeCheckpointBlock,
  decodeLogBlock,
  decodeSuperblock,
  encodeSuperblock,
  isBlankBlock,
  mainUnits,
  setU64,
} from './safe-format.js';

type Maybe = Uint8Array | null | undefined;
export interface PerArea<T> {
  A: T;
  B: T;
}

export interface SafeExpectation {
  fingerprint: DeviceFingerprint;
  /** The spare's actual size; a superblock for another size is refused. */
  spareSectors?: number;
}

export type SafeRegion = 'superblock' | 'checkpoint' | 'log';

export interface CopyProblem {
  area: Area;
  region: SafeRegion;
  /** Checkpoint block index or log slot (0 for a superblock). */
  index: number;
  problem: string;
}

export interface ReplayResult {
  state: SafeState;
  /** The superblock the state was built from, and where it was read. */
  superblock: SafeSuperblock;
  superblockFrom: Area;
  /** Where the next log block goes and what it carries. */
  next: { logSlot: number; seq: number; epoch: number; generation: number };
  logFull: boolean;
  appliedLogBlocks: number;
  appliedRecords: number;
  /** The tail slot held a damaged block (a torn or unfinished write), which was ignored. */
  tornTail: boolean;
  /** Log slots lost in both copies although later slots are valid (records lost). */
  lostLogSlots: number[];
  /** The newest superblock's checkpoint was lost; the state comes from the older one. */
  fellBack: boolean;
  /** Write a fresh checkpoint soon: the log is full, or the state had to be rebuilt around damage. */
  needsCheckpoint: boolean;
  /**
   * Copies to rewrite. Superblocks: encodeSuperblock(result.superblock, area).
   * Checkpoint blocks and log slots: the bytes of the other (valid) copy.
   */
  rewrite: {
    superblocks: Area[];
    checkpoint: Array<{ area: Area; slot: 0 | 1; index: number }>;
    log: Array<{ area: Area; index: number }>;
  };
  /** Every damaged or stale copy met on the way, with the reason. */
  problems: CopyProblem[];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describe(e: unknown): string {
  return e instanceof MetadataFormatError ? e.message : 'undecodable';
}

function fingerprintMismatch(have: DeviceFingerprint, want: DeviceFingerprint): string | undefined {
  if (have.mainSectors !== want.mainSectors) return `main device size is ${have.mainSectors} sectors in the metadata, ${want.mainSectors} on this device`;
  if (have.logicalBlockSize !== want.logicalBlockSize)
    return `logical block size is ${have.logicalBlockSize} in the metadata, ${want.logicalBlockSize} on this device`;
  if (have.identity !== want.identity) return `identity is ${JSON.stringify(have.identity)} in the metadata, ${JSON.stringify(want.identity)} on this device`;
  return undefined;
}

function sameSuperblockContent(a: SafeSuperblock, b: SafeSuperblock): boolean {
  return sameBytes(encodeSuperblock(a, 'A'), encodeSuperblock(b, 'A'));
}

interface Candidate {
  area: Area;
  sb: SafeSuperblock;
}

/**
 * Rebuilds the newest durable state from what was read of both areas (null or
 * a missing array element = unreadable). Pure: it only looks at the bytes.
 * What to read, per area: the superblock; both checkpoint slots, at least the
 * first `checkpointBlocks` blocks of the slot each valid superblock names (the
 * other slot is needed only to fall back); the log from slot 0 (all L slots, or
 * until neither copy decodes).
 * Throws MetadataFormatError when no state can be trusted: 'unformatted' (no
 * superblock ever written), 'no-valid-superblock', 'foreign-device',
 * 'inconsistent-copies' (two valid copies disagree), 'checkpoint-lost'.
 */
export function replay(
  superblocks: PerArea<Maybe>,
  checkpointBlocks: PerArea<readonly [ReadonlyArray<Maybe>, ReadonlyArray<Maybe>]>,
  logBlocks: PerArea<ReadonlyArray<Maybe>>,
  expect: SafeExpectation,
): ReplayResult {
  checkFingerprint(expect.fingerprint);
  const problems: CopyProblem[] = [];
  const valid: Candidate[] = [];
  let blank = 0;
  for (const area of AREAS) {
    const bytes = superblocks?.[area];
    if (!(bytes instanceof Uint8Array)) {
      problems.push({ area, region: 'superblock', index: 0, problem: 'unreadable' });
      continue;
    }
    try {
      valid.push({ area, sb: decodeSuperblock(bytes, area) });
    } catch (e) {
      if (bytes.length >= SAFE_BLOCK_SIZE && isBlankBlock(bytes, SAFE_BLOCK_SIZE)) blank++;
      problems.push({ area, region: 'superblock', index: 0, problem: describe(e) });
    }
  }
  if (valid.length === 0) {
    if (blank === 2) throw new MetadataFormatError('unformatted', 'the spare holds no remapsim metadata (both superblocks are blank)');
    throw new MetadataFormatError('no-valid-superblock', `no valid superblock: ${problems.map((p) => `${p.area}: ${p.problem}`).join('; ')}`);
  }
  for (const { area, sb } of valid) {
    const why = fingerprintMismatch(sb.fingerprint, expect.fingerprint);
    if (why) throw new MetadataFormatError('foreign-device', `superblock ${area} belongs to another main device: ${why}`);
    if (expect.spareSectors !== undefined && sb.layout.spareSectors !== expect.spareSectors) {
      throw new MetadataFormatError(
        'foreign-device',
        `superblock ${area} was made for a spare of ${sb.layout.spareSectors} sectors, this spare has ${expect.spareSectors}`,
      );
    }
  }
  if (valid.length === 2) {
    const [x, y] = valid;
    if (x.sb.volumeId !== y.sb.volumeId || !sameBytes(encodeLayout(x.sb.layout), encodeLayout(y.sb.layout))) {
      throw new MetadataFormatError('inconsistent-copies', 'superblocks A and B describe different volumes (an interrupted format?)');
    }
    if (x.sb.generation === y.sb.generation && !sameSuperblockContent(x.sb, y.sb)) {
      throw new MetadataFormatError('inconsistent-copies', `superblocks A and B differ at the same generation ${x.sb.generation}`);
    }
  }
  const ordered = [...valid].sort((p, q) => q.sb.generation - p.sb.generation || (p.area === 'A' ? -1 : 1));
  const maxGeneration = ordered[0].sb.generation;

  let chosen: Candidate | undefined;
  let loaded: Extract<LoadedCheckpoint, { ok: true }> | undefined;
  let fellBack = false;
  const ckptFailures: string[] = [];
  for (const cand of ordered) {
    if (chosen && cand.sb.generation === chosen.sb.generation) continue;
    const attempt = loadCheckpoint(cand.sb, checkpointBlocks);
    if (attempt.ok) {
      chosen = cand;
      loaded = attempt;
      break;
    }
    ckptFailures.push(`generation ${cand.sb.generation}: ${attempt.why}`);
    for (const area of AREAS) {
      problems.push({
        area,
        region: 'checkpoint',
        index: 0,
        problem: `checkpoint of generation ${cand.sb.generation} (epoch ${cand.sb.checkpointEpoch}) lost: ${attempt.why}`,
      });
    }
    chosen = cand; // remember the generation tried, so its twin copy is skipped
    fellBack = true;
  }
  if (!loaded || !chosen) {
    throw new MetadataFormatError('checkpoint-lost', `no readable checkpoint: ${ckptFailures.join('; ')}`);
  }
  fellBack = fellBack && chosen.sb.generation !== maxGeneration;
  problems.push(...loaded.problems);
  const sb = chosen.sb;

  const state: SafeState = { remaps: loaded.remaps, cursor: loaded.cursor };
  const log = replayLog(sb, logBlocks, state, problems);

  const rewriteSuperblocks = AREAS.filter((area) => {
    const v = valid.find((c) => c.area === area);
    return !v || v.sb.generation !== sb.generation;
  });
  const lostLogSlots = log.lost;
  return {
    state,
    superblock: sb,
    superblockFrom: chosen.area,
    next: { logSlot: log.nextSlot, seq: sb.logStartSeq + log.nextSlot, epoch: sb.checkpointEpoch, generation: maxGeneration + 1 },
    logFull: log.nextSlot >= sb.layout.logBlocks,
    appliedLogBlocks: log.applied,
    appliedRecords: log.records,
    tornTail: log.tornTail,
    lostLogSlots,
    fellBack,
    needsCheckpoint: fellBack || lostLogSlots.length > 0 || log.nextSlot >= sb.layout.logBlocks,
    rewrite: { superblocks: rewriteSuperblocks, checkpoint: loaded.rewrite, log: log.rewrite },
    problems,
  };
}

function encodeLayout(l: SafeLayout): Uint8Array {
  const b = new Uint8Array(56);
  const dv = view(b);
  [l.spareSectors, l.remapBlockSectors, l.logBlocks, l.checkpointSlotBlocks, l.areaBlocks, l.dataStartSector, l.dataEndSector].forEach((v, i) =>
    setU64(dv, i * 8, v),
  );
  return b;
}

type LoadedCheckpoint =
  | {
      ok: true;
      remaps: Map<number, number>;
      cursor: number;
      rewrite: Array<{ area: Area; slot: 0 | 1; index: number }>;
      problems: CopyProblem[];
    }
  | { ok: false; why: string };

type CopyCheck<T> = { ok: true; value: T; bytes: Uint8Array } | { ok: false; why: string };

function checkCheckpointCopy(
  bytes: Maybe,
  sb: SafeSuperblock,
  index: number,
  units: { first: number; end: number },
  mainBlocks: number,
): CopyCheck<CheckpointBlock> {
  if (!(bytes instanceof Uint8Array)) return { ok: false, why: 'unreadable' };
  let blk: CheckpointBlock;
  try {
    blk = decodeCheckpointBlock(bytes);
  } catch (e) {
    return { ok: false, why: describe(e) };
  }
  if (blk.volumeId !== sb.volumeId) return { ok: false, why: `stale: volume id ${blk.volumeId}, expected ${sb.volumeId}` };
  if (blk.epoch !== sb.checkpointEpoch) return { ok: false, why: `stale: epoch ${blk.epoch}, expected ${sb.checkpointEpoch}` };
  if (blk.index !== index || blk.count !== sb.checkpointBlocks || blk.totalEntries !== sb.checkpointEntries) {
    return {
      ok: false,
      why: `stale: block ${blk.index} of ${blk.count} with ${blk.totalEntries} entries, expected block ${index} of ${sb.checkpointBlocks} with ${sb.checkpointEntries}`,
    };
  }
  if (blk.cursor < units.first || blk.cursor > units.end)
    return { ok: false, why: `cursor ${blk.cursor} is outside the data region [${units.first}, ${units.end}]` };
  for (const [main, spare] of blk.entries) {
    if (main >= mainBlocks) return { ok: false, why: `main block ${main} is beyond the main device (${mainBlocks} blocks)` };
    if (spare < units.first) return { ok: false, why: `spare block ${spare} is inside the metadata area` };
  }
  return { ok: true, value: blk, bytes: bytes.subarray(0, SAFE_BLOCK_SIZE) };
}

function loadCheckpoint(sb: SafeSuperblock, blocks: PerArea<readonly [ReadonlyArray<Maybe>, ReadonlyArray<Maybe>]>): LoadedCheckpoint {
  const slot = sb.checkpointSlot;
  const slotA = blocks?.A?.[slot] ?? [];
  const slotB = blocks?.B?.[slot] ?? [];
  const n = sb.checkpointBlocks;
  if (n > Math.max(slotA.length, slotB.length)) return { ok: false, why: `${n} blocks needed, ${Math.max(slotA.length, slotB.length)} read` };
  const units = dataUnits(sb.layout);
  const mainBlocks = mainUnits(sb.fingerprint, sb.layout);
  const remaps = new Map<number, number>();
  const rewrite: Array<{ area: Area; slot: 0 | 1; index: number }> = [];
  const problems: CopyProblem[] = [];
  let cursor = -1;
  let prevMain = -1;
  for (let i = 0; i < n; i++) {
    const a = checkCheckpointCopy(slotA[i], sb, i, units, mainBlocks);
    const b = checkCheckpointCopy(slotB[i], sb, i, units, mainBlocks);
    if (a.ok && b.ok && !sameBytes(a.bytes, b.bytes)) {
      throw new MetadataFormatError('inconsistent-copies', `checkpoint block ${i} (epoch ${sb.checkpointEpoch}) differs between A and B`);
    }
    const use = a.ok ? a : b.ok ? b : undefined;
    if (!use) return { ok: false, why: `block ${i} lost in both copies (A: ${a.ok ? '' : a.why}; B: ${b.ok ? '' : b.why})` };
    for (const [area, c] of [
      ['A', a],
      ['B', b],
    ] as const) {
      if (!c.ok) {
        rewrite.push({ area, slot, index: i });
        problems.push({ area, region: 'checkpoint', index: i, problem: c.why });
      }
    }
    const blk = use.value;
    if (cursor >= 0 && blk.cursor !== cursor) return { ok: false, why: `block ${i} carries cursor ${blk.cursor}, block 0 carries ${cursor}` };
    cursor = blk.cursor;
    for (const [main, spare] of blk.entries) {
      if (main <= prevMain) return { ok: false, why: `block ${i} is out of order (main block ${main} after ${prevMain})` };
      remaps.set(main, spare);
      prevMain = main;
    }
  }
  return { ok: true, remaps, cursor, rewrite, problems };
}

type LogCopy = { kind: 'valid'; block: LogBlock; bytes: Uint8Array } | { kind: 'absent'; why: string } | { kind: 'damaged'; why: string };

// every open checks each log slot's two copies, most of them never written: one answer for all of those
const UNREADABLE: LogCopy = Object.freeze({ kind: 'absent', why: 'unreadable' });
const BLANK: LogCopy = Object.freeze({ kind: 'absent', why: 'blank' });

function checkLogCopy(bytes: Maybe, sb: SafeSuperblock, slot: number, units: { first: number; end: number }, mainBlocks: number): LogCopy {
  if (!(bytes instanceof Uint8Array)) return UNREADABLE;
  if (bytes.length >= SAFE_BLOCK_SIZE && isBlankBlock(bytes, SAFE_BLOCK_SIZE)) return BLANK;
  let blk: LogBlock;
  try {
    blk = decodeLogBlock(bytes);
  } catch (e) {
    return { kind: 'damaged', why: describe(e) };
  }
  const seq = sb.logStartSeq + slot;
  if (blk.volumeId !== sb.volumeId || blk.epoch !== sb.checkpointEpoch) {
    return { kind: 'absent', why: `stale: volume ${blk.volumeId} epoch ${blk.epoch}, expected volume ${sb.volumeId} epoch ${sb.checkpointEpoch}` };
  }
  if (blk.seq !== seq) return { kind: 'damaged', why: `sequence ${blk.seq} in slot ${slot}, expected ${seq}` };
  for (const r of blk.records) {
    if (r.op !== 'cursor' && r.main >= mainBlocks) return { kind: 'damaged', why: `main block ${r.main} is beyond the main device (${mainBlocks} blocks)` };
    if (r.op === 'add' && (r.spare < units.first || r.spare >= units.end)) {
      return { kind: 'damaged', why: `spare block ${r.spare} is outside the data region [${units.first}, ${units.end})` };
    }
    if (r.op === 'cursor' && (r.cursor < units.first || r.cursor > units.end)) {
      return { kind: 'damaged', why: `cursor ${r.cursor} is outside the data region [${units.first}, ${units.end}]` };
    }
  }
  return { kind: 'valid', block: blk, bytes: bytes.length === SAFE_BLOCK_SIZE ? bytes : bytes.subarray(0, SAFE_BLOCK_SIZE) };
}

/** Applies log records to a state, in order: the one replay rule, shared with the store's own appends. */
export function applyRecords(state: SafeState, records: readonly LogRecord[]): void {
  for (const r of records) {
    if (r.op === 'add') {
      state.remaps.set(r.main, r.spare);
      if (r.spare + 1 > state.cursor) state.cursor = r.spare + 1;
    } else if (r.op === 'remove') {
      state.remaps.delete(r.main);
    } else if (r.cursor > state.cursor) {
      state.cursor = r.cursor;
    }
  }
}

function replayLog(sb: SafeSuperblock, logBlocks: PerArea<ReadonlyArray<Maybe>>, state: SafeState, problems: CopyProblem[]) {
  const logA = logBlocks?.A ?? [];
  const logB = logBlocks?.B ?? [];
  const slots = Math.min(sb.layout.logBlocks, Math.max(logA.length, logB.length));
  const units = dataUnits(sb.layout);
  const mainBlocks = mainUnits(sb.fingerprint, sb.layout);
  const copies: Array<[LogCopy, LogCopy]> = [];
  let last = -1;
  for (let slot = 0; slot < slots; slot++) {
    const pair: [LogCopy, LogCopy] = [checkLogCopy(logA[slot], sb, slot, units, mainBlocks), checkLogCopy(logB[slot], sb, slot, units, mainBlocks)];
    copies.push(pair);
    if (pair[0].kind === 'valid' || pair[1].kind === 'valid') last = slot;
  }
  const rewrite: Array<{ area: Area; index: number }> = [];
  const lost: number[] = [];
  let applied = 0;
  let records = 0;
  for (let slot = 0; slot <= last; slot++) {
    const [a, b] = copies[slot];
    if (a.kind === 'valid' && b.kind === 'valid' && !sameBytes(a.bytes, b.bytes)) {
      throw new MetadataFormatError('inconsistent-copies', `log slot ${slot} (sequence ${sb.logStartSeq + slot}) differs between A and B`);
    }
    const use = a.kind === 'valid' ? a : b.kind === 'valid' ? b : undefined;
    if (a.kind !== 'valid' && b.kind !== 'valid') {
      lost.push(slot);
      problems.push({ area: 'A', region: 'log', index: slot, problem: `lost: ${a.why}` }, { area: 'B', region: 'log', index: slot, problem: `lost: ${b.why}` });
      continue;
    }
    for (const [area, c] of [
      ['A', a],
      ['B', b],
    ] as const) {
      if (c.kind !== 'valid') {
        rewrite.push({ area, index: slot });
        problems.push({ area, region: 'log', index: slot, problem: c.why });
      }
    }
    if (!use) continue;
    applyRecords(state, use.block.records);
    applied++;
    records += use.block.records.length;
  }
  const nextSlot = last + 1;
  const tail = copies[nextSlot];
  const tornTail = tail !== undefined && (tail[0].kind === 'damaged' || tail[1].kind === 'damaged');
  return { nextSlot, applied, records, tornTail, lost, rewrite };
}
