/**
 * The dm-remap-v4 module's metadata handling, on a spare BlockDevice: what the
 * module reads when its table is loaded and what it writes after each remap.
 * The byte format is dm-remap-v4.ts; this file does the I/O the way the
 * module does it, data-loss cases included:
 *
 *   - On load: read the five copies (spare sectors 0, 256, 512, 768, 1024),
 *     take the best valid one (chooseBestCopy) and restore its entries (at
 *     most 2048, not checked against the device sizes). Damaged copies are
 *     NOT repaired on load. When no copy is valid, an empty table (sequence
 *     1) is written over all five.
 *   - After each new remap: the whole table (the first 2048 entries in
 *     creation order) is written to all five copies with sequence + 1 and the
 *     current time, each copy with FUA. The module does this from a work item,
 *     some time after the remap; the model writes at once, right after the
 *     remap is made (before the failed I/O completes), which is the earliest
 *     moment the module could.
 *   - Nothing reserves the area: the module's allocator hands out spare
 *     sectors from 0, so remapped data lands on copy 0 (and later copies), and
 *     each metadata write overwrites the data of remaps that live there. The
 *     allocation cursor is not persisted either: after a reload new remaps
 *     start again at spare sector 0, over the restored remaps' data.
 */
import { type BlockDevice, type IoStatus, OK, SECTOR_SIZE } from '../block/device.js';
import type { DmRemapV4Target, V4RemapEntry as TargetEntry } from '../remap/v4-target.js';
import { log } from '../util/log.js';
import {
  type V4Choice,
  type V4Metadata,
  type V4RemapEntry,
  V4_COPY_SECTORS,
  V4_ENTRY_PENDING,
  V4_MAX_REMAPS,
  V4_STRUCT_SIZE,
  chooseBestCopy,
  encodeV4Copy,
  v4EmptyTable,
} from './dm-remap-v4.js';
import { readBlocks, roundToBlocks, writeBlock } from './spare-io.js';

/** Bytes one copy occupies on a device: the struct rounded up to whole logical blocks. */
export function v4CopyIoBytes(logicalBlockSize: number): number {
  return roundToBlocks(V4_STRUCT_SIZE, logicalBlockSize);
}

/** Spare sectors one copy covers (165 with 512-byte blocks). */
export function v4CopySectors(logicalBlockSize: number): number {
  return v4CopyIoBytes(logicalBlockSize) / SECTOR_SIZE;
}

/** Reads the five copies; a copy past the spare's end or whose read fails is null. */
export function readV4Copies(spare: BlockDevice): Array<Uint8Array | null> {
  const bytes = v4CopyIoBytes(spare.logicalBlockSize);
  return V4_COPY_SECTORS.map((s) => readBlocks(spare, s, 1, bytes)[0]);
}

export interface V4StoreOptions {
  /** Read only: never write (no empty table, no table after remaps). */
  readOnly?: boolean;
  /** Wall-clock seconds (the module's ktime_get_real_seconds). Default: Date.now() / 1000. */
  nowSeconds?: () => number;
  /** Write each copy with FUA, as the module does (default true). */
  fua?: boolean;
}

export interface V4WriteResult {
  sequence: bigint;
  /** Copy indexes written, and those that failed (past the spare's end, or an I/O error). */
  written: number[];
  failed: number[];
  /** Entries past the 2048th, not persisted. */
  dropped: number;
}

export function toCodecEntry(e: TargetEntry): V4RemapEntry {
  return {
    originalSector: BigInt(e.originalSector),
    spareSector: BigInt(e.spareSector),
    timestampNs: BigInt(Math.max(0, Math.round(e.timeNs))),
    accessCount: 0,
    errorCount: Math.min(0xffffffff, Math.max(0, e.errorCount >>> 0)),
    reason: 0,
    // the module's sources leave new entries pending; on load every entry becomes active regardless
    flags: V4_ENTRY_PENDING,
  };
}

export function toTargetEntry(e: V4RemapEntry): TargetEntry {
  return { originalSector: Number(e.originalSector), spareSector: Number(e.spareSector), timeNs: Number(e.timestampNs), errorCount: e.errorCount };
}

export class V4MetadataStore {
  readonly spare: BlockDevice;
  readonly readOnly: boolean;
  /** What the copies held when the store was opened. */
  readonly found: V4Choice;
  /** True when no copy was valid and the empty table was written (or, read-only, would have been). */
  readonly initialized: boolean;
  /** The table as last loaded or written. */
  current: V4Metadata;
  readonly stats = { tableWrites: 0, copyWrites: 0, copyWriteFailures: 0, dropped: 0 };
  private readonly nowSeconds: () => number;
  private readonly fua: boolean;

  private constructor(spare: BlockDevice, found: V4Choice, current: V4Metadata, initialized: boolean, opts: V4StoreOptions) {
    this.spare = spare;
    this.found = found;
    this.current = current;
    this.initialized = initialized;
    this.readOnly = opts.readOnly ?? false;
    this.nowSeconds = opts.nowSeconds ?? (() => Date.now() / 1000);
    this.fua = opts.fua ?? true;
  }

  /** Loads the table as the module does when its target is constructed. */
  static open(spare: BlockDevice, mainSectors: number, opts: V4StoreOptions = {}): V4MetadataStore {
    const now = Math.floor((opts.nowSeconds ?? (() => Date.now() / 1000))());
    const found = chooseBestCopy(readV4Copies(spare), now);
    if (found.best) return new V4MetadataStore(spare, found, found.best.metadata, false, opts);
    const empty = v4EmptyTable({ mainSectors, spareSectors: spare.sectors, timestamp: now });
    const store = new V4MetadataStore(spare, found, empty, true, opts);
    if (!store.readOnly) {
      log.info('dm-remap-v4: no valid metadata copy; writing an empty table to all five');
      store.writeAll(empty);
    }
    return store;
  }

  /** The entries the module restores (all of the best copy's, at most 2048). */
  restoredEntries(): TargetEntry[] {
    return this.initialized ? [] : this.current.entries.map(toTargetEntry);
  }

  /** Writes `entries` (the target's, in creation order) to all five copies with sequence + 1. */
  persist(entries: readonly TargetEntry[]): V4WriteResult {
    const kept = entries.slice(0, V4_MAX_REMAPS).map(toCodecEntry);
    const dropped = Math.max(0, entries.length - V4_MAX_REMAPS);
    if (dropped > 0) log.warn(`dm-remap-v4: ${dropped} remaps beyond ${V4_MAX_REMAPS} are not persisted`);
    const next: V4Metadata = {
      ...this.current,
      sequence: this.current.sequence + 1n,
      timestamp: BigInt(Math.floor(this.nowSeconds())),
      copyIndex: 0,
      entries: kept,
    };
    this.stats.dropped = dropped;
    if (this.readOnly) return { sequence: next.sequence, written: [], failed: [], dropped };
    this.current = next;
    return { ...this.writeAll(next), dropped };
  }

  /** Restores the table into `target` and writes the table after each of its new remaps. */
  attach(target: DmRemapV4Target): number {
    const n = target.restore(this.restoredEntries());
    target.onRemap((t) => {
      this.persist(t.entries);
    });
    return n;
  }

  private writeAll(meta: V4Metadata): { sequence: bigint; written: number[]; failed: number[] } {
    const encoded = encodeV4Copy(meta).bytes;
    const io = new Uint8Array(v4CopyIoBytes(this.spare.logicalBlockSize));
    io.set(encoded);
    const written: number[] = [];
    const failed: number[] = [];
    this.stats.tableWrites++;
    V4_COPY_SECTORS.forEach((sector, i) => {
      const rc: IoStatus = writeBlock(this.spare, sector, io, this.fua);
      if (rc === OK) {
        written.push(i);
        this.stats.copyWrites++;
      } else {
        failed.push(i);
        this.stats.copyWriteFailures++;
        log.error(`dm-remap-v4: failed to write metadata copy ${i} at spare sector ${sector} (errno ${rc})`);
      }
    });
    return { sequence: meta.sequence, written, failed };
  }
}

/**
 * Writes `meta` to the copies listed (all five by default) exactly as given:
 * for `import` and `repair`, which choose the sequence themselves.
 */
export function writeV4Copies(spare: BlockDevice, meta: V4Metadata, copies: readonly number[] = [0, 1, 2, 3, 4]): { written: number[]; failed: number[] } {
  const encoded = encodeV4Copy(meta).bytes;
  const io = new Uint8Array(v4CopyIoBytes(spare.logicalBlockSize));
  io.set(encoded);
  const written: number[] = [];
  const failed: number[] = [];
  for (const i of copies) {
    const rc = writeBlock(spare, V4_COPY_SECTORS[i], io, true);
    (rc === OK ? written : failed).push(i);
  }
  return { written, failed };
}
