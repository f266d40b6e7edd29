/**
 * What a checkpoint looks at on each side, and how two looks are compared:
 * the status line field by field, the metadata copies on the spare, and the
 * spare's bytes where remaps point. Pure: observations in, differences out.
 */
import { crc32c } from '@node-rs/crc32';
import { type V4RemapEntry, V4_COPY_SECTORS, V4_STRUCT_SIZE, chooseBestCopy } from '../metadata/dm-remap-v4.js';
import { V4_STATUS_FIELDS } from '../status/parse.js';

/** Status fields that measure CPU time in map(): they differ between any two runs. */
export const TIMING_FIELDS: ReadonlySet<string> = new Set(['totalMapTimeNs', 'avgMapTimeNs', 'peakThroughput']);

export interface FieldDifference {
  field: string;
  model: string;
  kernel: string;
}

/** The fields of two dm-remap-v4 status lines that differ (timing fields aside). */
export function compareStatusLines(model: string, kernel: string): FieldDifference[] {
  const m = model.trim().split(/\s+/).slice(3);
  const k = kernel.trim().split(/\s+/).slice(3);
  const out: FieldDifference[] = [];
  if (m.length !== k.length) return [{ field: 'tokens', model: `${m.length} tokens`, kernel: `${k.length} tokens` }];
  V4_STATUS_FIELDS.forEach((def, i) => {
    if (TIMING_FIELDS.has(def.key) || m[i] === k[i]) return;
    out.push({ field: def.key, model: m[i], kernel: k[i] });
  });
  return out;
}

/** What the five metadata copies on a spare say. */
export interface MetadataLook {
  /** Per copy: 'valid' or why not. */
  copies: string[];
  /** Per copy: its sequence number when valid. */
  sequences: Array<bigint | null>;
  /** The copy the module would load, or -1. */
  best: number;
  sequence: bigint | null;
  entries: Array<{ original: number; spare: number; flags: number; errorCount: number }>;
}

/** Reads five copies (the first V4_STRUCT_SIZE bytes of each; null when unreadable) as the module would. */
export function lookAtMetadata(copies: ReadonlyArray<Uint8Array | null>, nowSeconds: number): MetadataLook {
  const choice = chooseBestCopy(copies, Math.floor(nowSeconds));
  const best = choice.best;
  return {
    copies: choice.results.map((r) => (r.valid ? 'valid' : r.reason)),
    sequences: choice.results.map((r) => (r.valid ? r.metadata.sequence : null)),
    best: best ? best.index : -1,
    sequence: best ? best.metadata.sequence : null,
    entries: best ? best.metadata.entries.map(entryView) : [],
  };
}

function entryView(e: V4RemapEntry): MetadataLook['entries'][number] {
  return { original: Number(e.originalSector), spare: Number(e.spareSector), flags: e.flags, errorCount: e.errorCount };
}

/** Where the metadata looks differ (sequence numbers and timestamps aside: the module numbers writes with one counter for all its devices). */
export function compareMetadata(model: MetadataLook, kernel: MetadataLook): FieldDifference[] {
  const out: FieldDifference[] = [];
  if (model.copies.join(' ') !== kernel.copies.join(' ')) out.push({ field: 'copies', model: model.copies.join(' '), kernel: kernel.copies.join(' ') });
  // which copy wins depends on how the sequence numbers of the copies compare (their values differ between any two runs)
  const seqs = (l: MetadataLook): string => l.sequences.map((x) => (x === null ? '-' : String(x))).join(' ');
  if (model.best !== kernel.best)
    out.push({ field: 'best copy', model: `${model.best} (sequences ${seqs(model)})`, kernel: `${kernel.best} (sequences ${seqs(kernel)})` });
  const fmt = (l: MetadataLook): string => l.entries.map((e) => `${e.original}->${e.spare}/${e.flags}`).join(' ');
  if (fmt(model) !== fmt(kernel))
    out.push({ field: 'entries', model: `${model.entries.length}: ${clip(fmt(model))}`, kernel: `${kernel.entries.length}: ${clip(fmt(kernel))}` });
  return out;
}

function clip(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

/** The sectors of the five copies, and how many bytes of each a look reads. */
export const COPY_SECTORS = V4_COPY_SECTORS;
export const COPY_BYTES = V4_STRUCT_SIZE;

/**
 * A copy of a spare block with the metadata fields that legitimately differ
 * between two runs zeroed: where the block overlaps one of the five copies,
 * the sequence number, the timestamp and the checksum of its header, and each
 * entry's creation time. `sector` is the block's first sector.
 */
export function maskVolatile(block: Uint8Array, sector: number): Uint8Array {
  const out = block.slice();
  const start = sector * 512;
  const end = start + block.length;
  const zero = (from: number, to: number): void => {
    const a = Math.max(from, start);
    const b = Math.min(to, end);
    if (b > a) out.fill(0, a - start, b - start);
  };
  for (const copy of V4_COPY_SECTORS) {
    const base = copy * 512;
    if (base >= end || base + V4_STRUCT_SIZE <= start) continue;
    zero(base + 8, base + 28);
    for (let i = 0; i < 2048; i++) {
      const ts = base + 312 + 40 * i + 16;
      if (ts >= end) break;
      zero(ts, ts + 8);
    }
  }
  return out;
}

/** A short digest of a block's bytes, for reports. */
export function digest(b: Uint8Array): string {
  if (b.every((x) => x === 0)) return 'zeroes';
  return `crc32c ${(crc32c(b) >>> 0).toString(16).padStart(8, '0')}`;
}
