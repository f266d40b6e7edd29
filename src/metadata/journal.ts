/**
 * What the remap targets ask of a metadata store, defined here with the
 * stores that implement them: the safe policy's journal, and the sink for
 * dm-remap-v4's table writes (the dm-bufio model in v4-store.ts).
 */
import { type IoStatus, OK } from '../block/device.js';

/**
 * Where the safe policy records its table: the in-memory journal keeps
 * nothing across a restart; the metadata store (safe-store.ts) persists to
 * the spare's reserved areas.
 */
export interface RemapJournal {
  /** Records main block -> spare block (and the allocation cursor); durable when it returns OK. */
  recordRemap(mainBlock: number, spareBlock: number, cursor: number): IoStatus;
  recordUnremap(mainBlock: number): IoStatus;
  /** Records that a spare block must never be used again. */
  recordBadSpare(spareBlock: number, cursor: number): IoStatus;
  flush(): IoStatus;
}

export const inMemoryJournal: RemapJournal = {
  recordRemap: () => OK,
  recordUnremap: () => OK,
  recordBadSpare: () => OK,
  flush: () => OK,
};

/** One entry of dm-remap-v4's table as the target holds it. */
export interface V4TargetEntry {
  originalSector: number;
  spareSector: number;
  timeNs: number;
  errorCount: number;
  /** Made while loaded: never used for I/O. Restored entries are active. */
  pending: boolean;
}

/** Where the module's metadata writes go (the dm-bufio model in v4-store.ts). */
export interface V4MetadataSink {
  /** One metadata write: the whole table, in list order. */
  writeTable(entries: readonly V4TargetEntry[]): void;
  /** The target is destroyed: dm-bufio writes its dirty buffers. */
  destroy(): void;
  /** Time passes: dm-bufio's timer may write dirty buffers. */
  tick?(nowNs: number): void;
}

/** What a dm-remap-v4 target offers the store that loads it (DmRemapV4Target). */
export interface V4Restorable {
  restore(entries: Iterable<Omit<V4TargetEntry, 'pending'>>): number;
  attachMetadata(sink: V4MetadataSink, opts?: { initial?: boolean }): void;
}
