/**
 * The dm-remap-v4 module's metadata handling, on a spare BlockDevice: what the
 * module reads when its table is loaded and what it writes, the way it does
 * (checked against the module in the VM lane), data-loss cases included.
 * The byte format is dm-remap-v4.ts.
 *
 *   - The module keeps its five copies in dm-bufio buffers of 128 KiB, one
 *     per copy (spare sectors 0, 256, 512, 768, 1024). On load it reads all
 *     five blocks, takes the best valid copy (chooseBestCopy) and restores
 *     its entries (at most 2048, not checked against the device sizes).
 *     Damaged copies are not repaired here.
 *   - A metadata write copies the table (sequence from the module-wide
 *     counter, the current time) over the first 84,288 bytes of each buffer
 *     and marks it dirty. Nothing reaches the spare until dm-bufio writes the
 *     dirty buffers back: from its timer (every 30 s) or when the target is
 *     destroyed. A power cut before then loses every remap made since. The
 *     write-back writes whole 128 KiB blocks: past the table, each block gets
 *     back what it held when the table was loaded, over anything written
 *     there since.
 *   - Nothing reserves the area: the module's allocator hands out spare
 *     sectors from 0, so remapped data and the copies overwrite each other.
 *     The allocation cursor is not persisted either: after a reload new
 *     remaps start again at spare sector 0.
 */
import { type BlockDevice, OK, SECTOR_SIZE } from '../block/device.js';
import type { V4MetadataSink, V4Restorable, V4TargetEntry as TargetEntry } from './journal.js';
import { log } from '../util/log.js';
import {
  type V4Choice,
  type V4Metadata,
  type V4RemapEntry,
  V4_COPY_SECTORS,
  V4_ENTRY_ACTIVE,
  V4_ENTRY_PENDING,
  V4_MAX_REMAPS,
  V4_STRUCT_SIZE,
  chooseBestCopy,
  encodeV4Copy,
  v4EmptyTable,
} from './dm-remap-v4.js';
import { type ReadBuffers, readBlocks, roundToBlocks, writeBlock } from './spare-io.js';

/** dm-bufio's block size for the module's client: one copy per 128 KiB block. */
export const V4_BUFIO_BLOCK_BYTES = 131072;
/** dm-bufio's timer: dirty buffers go out within this long. */
const BUFIO_TIMER_NS = 30e9;

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

/** The module's sequence numbers come from one counter for every device, from 0 at module load. */
let moduleSequence = 0n;

export interface V4StoreOptions {
  /** Read only: never write. */
  readOnly?: boolean;
  /** Wall-clock seconds (the module's ktime_get_real_seconds). Default: Date.now() / 1000. */
  nowSeconds?: () => number;
  /** The module-wide sequence counter: returns the next number. Default: one counter per process, as one module load. */
  nextSequence?: () => bigint;
  /** Memory to load into: close() gives the store's 128 KiB blocks back, for the next store's load (a reload). */
  readBuffers?: ReadBuffers;
}

export function toCodecEntry(e: TargetEntry): V4RemapEntry {
  return {
    originalSector: BigInt(e.originalSector),
    spareSector: BigInt(e.spareSector),
    timestampNs: BigInt(Math.max(0, Math.round(e.timeNs))),
    accessCount: 0,
    errorCount: Math.min(0xffffffff, Math.max(0, e.errorCount >>> 0)),
    reason: 0,
    flags: e.pending ? V4_ENTRY_PENDING : V4_ENTRY_ACTIVE,
  };
}

export function toTargetEntry(e: V4RemapEntry): Omit<TargetEntry, 'pending'> {
  return { originalSector: Number(e.originalSector), spareSector: Number(e.spareSector), timeNs: Number(e.timestampNs), errorCount: e.errorCount };
}

export class V4MetadataStore implements V4MetadataSink {
  readonly spare: BlockDevice;
  readonly readOnly: boolean;
  /** What the copies held when the store was opened. */
  readonly found: V4Choice;
  /** True when no copy was valid (the module then writes an empty table). */
  readonly initialized: boolean;
  /** The table as last loaded or written. */
  current: V4Metadata;
  readonly stats = { tableWrites: 0, writebacks: 0, copyWriteFailures: 0, dropped: 0 };
  /** dm-bufio's buffers: each 128 KiB block as loaded, with the table copied over its start by each write. */
  private readonly buffers: Array<Uint8Array | null>;
  /** The tables written since the last write-back, oldest first: what dm-bufio could write back next. */
  private unwrittenTables: V4Metadata[] = [];
  private dirty = false;
  private nextTimerNs: number | undefined;
  private readonly nowSeconds: () => number;
  private readonly nextSequence: () => bigint;
  private readonly readBuffers: ReadBuffers | undefined;

  private constructor(spare: BlockDevice, found: V4Choice, current: V4Metadata, initialized: boolean, buffers: Array<Uint8Array | null>, opts: V4StoreOptions) {
    this.spare = spare;
    this.found = found;
    this.current = current;
    this.initialized = initialized;
    this.buffers = buffers;
    this.readOnly = opts.readOnly ?? false;
    this.nowSeconds = opts.nowSeconds ?? (() => Date.now() / 1000);
    this.nextSequence = opts.nextSequence ?? (() => ++moduleSequence);
    this.readBuffers = opts.readBuffers;
  }

  /** The target is gone (after destroy()): the blocks go back to the store's read buffers, if it has any, for the next load. */
  close(): void {
    this.readBuffers?.giveBack(this.buffers);
    this.buffers.fill(null);
  }

  /** Loads the table as the module does when its target is constructed (the deferred metadata read). */
  static open(spare: BlockDevice, mainSectors: number, opts: V4StoreOptions = {}): V4MetadataStore {
    const now = Math.floor((opts.nowSeconds ?? (() => Date.now() / 1000))());
    const blocks = V4_COPY_SECTORS.map((s) => readBufioBlock(spare, s, opts.readBuffers));
    const found = chooseBestCopy(
      blocks.map((b) => (b === null ? null : b.subarray(0, Math.min(b.length, v4CopyIoBytes(spare.logicalBlockSize))))),
      now,
    );
    if (found.best) return new V4MetadataStore(spare, found, found.best.metadata, false, blocks, opts);
    const empty = v4EmptyTable({ mainSectors, spareSectors: spare.sectors, timestamp: now });
    return new V4MetadataStore(spare, found, empty, true, blocks, opts);
  }

  /** The entries the module restores (all of the best copy's, at most 2048). */
  restoredEntries(): Array<Omit<TargetEntry, 'pending'>> {
    return this.initialized ? [] : this.current.entries.map(toTargetEntry);
  }

  /** Restores the table into `target` and takes its metadata writes. */
  attach(target: V4Restorable): number {
    const n = target.restore(this.restoredEntries());
    target.attachMetadata(this, { initial: this.initialized });
    return n;
  }

  /** One metadata write of the module: into the buffers, not yet to the spare. */
  writeTable(entries: readonly TargetEntry[]): void {
    const kept = entries.slice(0, V4_MAX_REMAPS).map(toCodecEntry);
    const dropped = Math.max(0, entries.length - V4_MAX_REMAPS);
    if (dropped > 0) log.warn(`dm-remap-v4: ${dropped} remaps beyond ${V4_MAX_REMAPS} are not persisted`);
    this.stats.dropped = dropped;
    this.current = { ...this.current, sequence: this.nextSequence(), timestamp: BigInt(Math.floor(this.nowSeconds())), copyIndex: 0, entries: kept };
    this.stats.tableWrites++;
    if (this.readOnly) return;
    const encoded = encodeV4Copy(this.current, encodeScratch()).bytes;
    for (let i = 0; i < this.buffers.length; i++) {
      this.buffers[i] ??= new Uint8Array(V4_BUFIO_BLOCK_BYTES); // a block the load could not read: a new buffer
      this.buffers[i]!.set(encoded);
    }
    this.unwrittenTables.push(this.current);
    this.dirty = true;
  }

  /** The tables written since the last write-back, oldest first. */
  unwritten(): readonly V4Metadata[] {
    return this.unwrittenTables;
  }

  /**
   * dm-bufio wrote its buffers back while they held unwritten()[i] (its timer
   * is not ours to know: a tester that sees which table reached the disk
   * tells the model). The tables written after it stay dirty.
   */
  writebackAt(i: number): void {
    const table = this.unwrittenTables[i];
    if (!table || this.readOnly) return;
    const encoded = encodeV4Copy(table, encodeScratch()).bytes;
    this.writeBuffers(this.buffers.map((b) => (b === null ? null : withHead(b, encoded))));
    this.unwrittenTables = this.unwrittenTables.slice(i + 1);
    this.dirty = this.unwrittenTables.length > 0;
  }

  /** The blocks a write-back would write now (undefined when nothing is dirty). */
  pendingWriteback(): ReadonlyArray<Uint8Array | null> | undefined {
    return this.dirty ? this.buffers : undefined;
  }

  /** dm-bufio writes the dirty buffers back, whole blocks. */
  writeback(): void {
    if (!this.dirty || this.readOnly) return;
    this.writeBuffers(this.buffers);
    this.unwrittenTables = [];
    this.dirty = false;
  }

  private writeBuffers(blocks: ReadonlyArray<Uint8Array | null>): void {
    this.stats.writebacks++;
    blocks.forEach((b, i) => {
      if (!b) return;
      const sector = V4_COPY_SECTORS[i];
      // a block that does not fit on the spare is refused whole, as the block layer refuses dm-bufio's bio
      if (writeBlock(this.spare, sector, b) !== OK) {
        this.stats.copyWriteFailures++;
        log.error(`dm-remap-v4: dm-bufio could not write metadata block ${i} at spare sector ${sector}`);
      }
    });
  }

  destroy(): void {
    this.writeback();
  }

  tick(nowNs: number): void {
    if (!this.dirty) {
      this.nextTimerNs = undefined;
      return;
    }
    this.nextTimerNs ??= nowNs + BUFIO_TIMER_NS;
    if (nowNs >= this.nextTimerNs) {
      this.nextTimerNs = undefined;
      this.writeback();
    }
  }
}

let scratch: Uint8Array | undefined;
/** Memory to encode a table into that is copied at once (into the buffers): one per thread, not one per write. */
function encodeScratch(): Uint8Array {
  scratch ??= new Uint8Array(V4_STRUCT_SIZE);
  return scratch;
}

function withHead(block: Uint8Array, head: Uint8Array): Uint8Array {
  const b = block.slice();
  b.set(head);
  return b;
}

/** One 128 KiB dm-bufio block at `sector`, or null when it cannot be read (past the spare's end: the module's read fails). */
function readBufioBlock(spare: BlockDevice, sector: number, buffers: ReadBuffers | undefined): Uint8Array | null {
  return readBlocks(spare, sector, 1, V4_BUFIO_BLOCK_BYTES, buffers)[0];
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
