/**
 * What `remapsim inspect` shows: every metadata copy on a spare, valid or why
 * not, with sequence numbers, timestamps and entries, for either format. The
 * reports are plain JSON-able objects (u64 values beyond 2^53 as strings).
 */
import type { BlockDevice } from '../block/device.js';
import { type V4Metadata, V4_COPY_SECTORS, chooseBestCopy } from './dm-remap-v4.js';
import { MetadataFormatError } from './errors.js';
import { type SpareContent, describeContent, probeSpare, safeSuperblockSector } from './probe.js';
import {
  AREAS,
  type Area,
  type DeviceFingerprint,
  type SafeLayout,
  type SafeSuperblock,
  decodeCheckpointBlock,
  decodeLogBlock,
  isBlankBlock,
} from './safe-format.js';
import type { CopyProblem } from './safe-replay.js';
import { type SafeImage, describeRepairAction, planSafeRepair, readSafeImage, replayImage } from './safe-image.js';
import { readV4Copies } from './v4-store.js';

type U64Out = number | string;
const u64 = (v: bigint): U64Out => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString());

export interface SafeSuperblockReport {
  area: Area;
  sector: number;
  valid: boolean;
  problem?: string;
  generation?: number;
  volumeId?: number;
  checkpointEpoch?: number;
  checkpointSlot?: 0 | 1;
  checkpointEntries?: number;
  logStartSeq?: number;
  fingerprint?: DeviceFingerprint;
}

export type BlockState =
  | { state: 'valid'; seq?: number; records?: number; entries?: number }
  | { state: 'blank' }
  | { state: 'stale' | 'damaged' | 'unreadable'; why: string };

export interface SafeInspection {
  format: 'remapsim-safe';
  spare: string;
  spareSectors: number;
  superblocks: SafeSuperblockReport[];
  layout?: SafeLayout;
  fingerprint?: DeviceFingerprint;
  /** The state recovery would take; absent when none can be trusted (see error). */
  state?: { remaps: number; cursor: number; entries: Array<{ main: number; spare: number }> };
  replay?: {
    from: Area;
    generation: number;
    epoch: number;
    appliedLogBlocks: number;
    appliedRecords: number;
    nextLogSlot: number;
    tornTail: boolean;
    lostLogSlots: number[];
    fellBack: boolean;
    logFull: boolean;
  };
  /** Blocks of the current checkpoint, per copy. */
  checkpoint: Array<{ index: number; A: BlockState; B: BlockState }>;
  /** Log slots written in either copy (blank in both are left out). */
  log: Array<{ slot: number; A: BlockState; B: BlockState }>;
  problems: CopyProblem[];
  /** What `repair --write` (and opening the store) would write. */
  repair: string[];
  error?: string;
}

export interface V4CopyReport {
  index: number;
  sector: number;
  valid: boolean;
  reason?: string;
  message?: string;
  sequence?: U64Out;
  timestamp?: U64Out;
  time?: string;
  activeRemaps?: number;
  mainSectors?: U64Out;
  spareSectors?: U64Out;
  healthScore?: number;
  entries?: Array<{ originalSector: U64Out; spareSector: U64Out; timestampNs: U64Out; errorCount: number; flags: number }>;
}

export interface V4Inspection {
  format: 'dm-remap-v4';
  spare: string;
  spareSectors: number;
  copies: V4CopyReport[];
  /** The copy the module loads, or null (it would write an empty table). */
  best: number | null;
  /** Copies the module's repair rule rewrites. */
  repair: number[];
  /** Remaps whose spare sectors lie inside a copy's area: rewriting that copy destroys their data. */
  remapsInCopies: Array<{ copy: number; originalSector: U64Out; spareSector: U64Out }>;
}

export type Inspection = SafeInspection | V4Inspection | { format: 'none'; spare: string; spareSectors: number; content: string };

function isoTime(seconds: bigint): string | undefined {
  const ms = Number(seconds) * 1000;
  return Number.isFinite(ms) && ms <= 8.64e15 ? new Date(ms).toISOString() : undefined;
}

function v4Entries(m: V4Metadata): NonNullable<V4CopyReport['entries']> {
  return m.entries.map((e) => ({
    originalSector: u64(e.originalSector),
    spareSector: u64(e.spareSector),
    timestampNs: u64(e.timestampNs),
    errorCount: e.errorCount,
    flags: e.flags,
  }));
}

export function inspectV4(spare: BlockDevice, nowSeconds: number = Date.now() / 1000): V4Inspection {
  const copies = readV4Copies(spare);
  const choice = chooseBestCopy(copies, Math.floor(nowSeconds));
  const copySectors = Math.ceil(84288 / spare.logicalBlockSize) * (spare.logicalBlockSize / 512);
  const reports: V4CopyReport[] = choice.results.map((r, index) => {
    const sector = V4_COPY_SECTORS[index];
    if (!r.valid) {
      const base: V4CopyReport = { index, sector, valid: false, reason: r.reason, message: r.message };
      if (r.reason !== 'unreadable' && r.reason !== 'bad-magic') {
        base.sequence = u64(r.sequence);
        base.timestamp = u64(r.timestamp);
      }
      return base;
    }
    const m = r.metadata;
    return {
      index,
      sector,
      valid: true,
      sequence: u64(m.sequence),
      timestamp: u64(m.timestamp),
      time: isoTime(m.timestamp),
      activeRemaps: m.entries.length,
      mainSectors: u64(m.mainSectors),
      spareSectors: u64(m.spareSectors),
      healthScore: m.healthScore,
      entries: v4Entries(m),
    };
  });
  const remapsInCopies: V4Inspection['remapsInCopies'] = [];
  if (choice.best) {
    for (const e of choice.best.metadata.entries) {
      V4_COPY_SECTORS.forEach((s, copy) => {
        if (e.spareSector >= BigInt(s) && e.spareSector < BigInt(s + copySectors))
          remapsInCopies.push({ copy, originalSector: u64(e.originalSector), spareSector: u64(e.spareSector) });
      });
    }
  }
  return {
    format: 'dm-remap-v4',
    spare: spare.name,
    spareSectors: spare.sectors,
    copies: reports,
    best: choice.best?.index ?? null,
    repair: choice.rewrite,
    remapsInCopies,
  };
}

function why(e: unknown): string {
  return e instanceof MetadataFormatError ? e.message : String(e);
}

function logState(bytes: Uint8Array | null, sb: SafeSuperblock, slot: number): BlockState {
  if (bytes === null) return { state: 'unreadable', why: 'the read failed' };
  if (isBlankBlock(bytes)) return { state: 'blank' };
  try {
    const b = decodeLogBlock(bytes);
    if (b.volumeId !== sb.volumeId || b.epoch !== sb.checkpointEpoch)
      return { state: 'stale', why: `volume ${b.volumeId} epoch ${b.epoch} (current: volume ${sb.volumeId} epoch ${sb.checkpointEpoch})` };
    if (b.seq !== sb.logStartSeq + slot) return { state: 'damaged', why: `sequence ${b.seq} in slot ${slot}, expected ${sb.logStartSeq + slot}` };
    return { state: 'valid', seq: b.seq, records: b.records.length };
  } catch (e) {
    return { state: 'damaged', why: why(e) };
  }
}

function checkpointState(bytes: Uint8Array | null | undefined, sb: SafeSuperblock, index: number): BlockState {
  if (!bytes) return { state: 'unreadable', why: 'the read failed' };
  if (isBlankBlock(bytes)) return { state: 'blank' };
  try {
    const b = decodeCheckpointBlock(bytes);
    if (b.volumeId !== sb.volumeId || b.epoch !== sb.checkpointEpoch || b.index !== index) {
      return {
        state: 'stale',
        why: `volume ${b.volumeId} epoch ${b.epoch} block ${b.index} (current: volume ${sb.volumeId} epoch ${sb.checkpointEpoch} block ${index})`,
      };
    }
    return { state: 'valid', entries: b.entries.length };
  } catch (e) {
    return { state: 'damaged', why: why(e) };
  }
}

/** Reports a spare that holds (or held) safe metadata; `fingerprint` checks it against a main device. */
export function inspectSafe(spare: BlockDevice, fingerprint?: DeviceFingerprint): SafeInspection {
  const out: SafeInspection = {
    format: 'remapsim-safe',
    spare: spare.name,
    spareSectors: spare.sectors,
    superblocks: [],
    checkpoint: [],
    log: [],
    problems: [],
    repair: [],
  };
  let image: SafeImage;
  try {
    image = readSafeImage(spare);
  } catch (e) {
    for (const area of AREAS) out.superblocks.push({ area, sector: safeSuperblockSector(spare.sectors, area), valid: false, problem: why(e) });
    out.error = why(e);
    return out;
  }
  for (const area of AREAS) {
    const sb = image.decoded[area];
    const sector = safeSuperblockSector(spare.sectors, area);
    out.superblocks.push(
      sb
        ? {
            area,
            sector,
            valid: true,
            generation: sb.generation,
            volumeId: sb.volumeId,
            checkpointEpoch: sb.checkpointEpoch,
            checkpointSlot: sb.checkpointSlot,
            checkpointEntries: sb.checkpointEntries,
            logStartSeq: sb.logStartSeq,
            fingerprint: sb.fingerprint,
          }
        : { area, sector, valid: false, problem: image.superblockProblems[area] },
    );
  }
  out.layout = image.layout;
  try {
    const r = replayImage(image, fingerprint);
    const sb = r.superblock;
    out.fingerprint = sb.fingerprint;
    out.state = {
      remaps: r.state.remaps.size,
      cursor: r.state.cursor,
      entries: [...r.state.remaps.entries()].sort((a, b) => a[0] - b[0]).map(([main, s]) => ({ main, spare: s })),
    };
    out.replay = {
      from: r.superblockFrom,
      generation: sb.generation,
      epoch: sb.checkpointEpoch,
      appliedLogBlocks: r.appliedLogBlocks,
      appliedRecords: r.appliedRecords,
      nextLogSlot: r.next.logSlot,
      tornTail: r.tornTail,
      lostLogSlots: r.lostLogSlots,
      fellBack: r.fellBack,
      logFull: r.logFull,
    };
    out.problems = r.problems;
    out.repair = planSafeRepair(r).map(describeRepairAction);
    for (let i = 0; i < sb.checkpointBlocks; i++) {
      out.checkpoint.push({
        index: i,
        A: checkpointState(image.checkpoint.A[sb.checkpointSlot][i], sb, i),
        B: checkpointState(image.checkpoint.B[sb.checkpointSlot][i], sb, i),
      });
    }
    for (let slot = 0; slot < sb.layout.logBlocks; slot++) {
      const a = logState(image.log.A[slot] ?? null, sb, slot);
      const b = logState(image.log.B[slot] ?? null, sb, slot);
      if (a.state !== 'blank' || b.state !== 'blank') out.log.push({ slot, A: a, B: b });
    }
  } catch (e) {
    out.error = why(e);
  }
  return out;
}

/** Detects the format and reports it. */
export function inspectSpare(spare: BlockDevice, opts: { fingerprint?: DeviceFingerprint; nowSeconds?: number } = {}): Inspection {
  const content: SpareContent = probeSpare(spare, opts.nowSeconds);
  switch (content.kind) {
    case 'safe':
    case 'safe-damaged':
      return inspectSafe(spare, opts.fingerprint);
    case 'dm-remap-v4':
    case 'dm-remap-v4-damaged':
      return inspectV4(spare, opts.nowSeconds);
    default:
      return { format: 'none', spare: spare.name, spareSectors: spare.sectors, content: describeContent(content) };
  }
}

/** True when the metadata is whole: a valid state and nothing to repair. */
export function inspectionClean(i: Inspection): boolean {
  if (i.format === 'remapsim-safe') return !i.error && i.repair.length === 0;
  if (i.format === 'dm-remap-v4') return i.best !== null && i.repair.length === 0;
  return false;
}
