/**
 * The `safe` policy: remapsim's own remapping target, built to lose nothing
 * it acknowledged.
 *
 *   - The remap unit is the main device's logical block. Requests are split at
 *     remap boundaries: each block goes where it lives.
 *   - A write that fails on main is retried block by block; each failing block
 *     gets a newly allocated spare block, the data goes there, the remap is
 *     recorded (durably, through the journal) and only then is the write
 *     acknowledged.
 *   - A read that fails returns EIO and marks the failing blocks pending; the
 *     next write to a pending block remaps it (the data is then new, so nothing
 *     is lost that was not already unreadable).
 *   - The metadata areas at both ends of the spare are never given to data.
 *   - A full spare makes the write fail with ENOSPC, counted in the status.
 *   - Only media errors (isMediaError) are remapped or marked pending. An
 *     error of the store beneath (a full file system, a backing file that
 *     shrank or was deleted) fails the request with its errno, spends no
 *     spare block, and shows in the status (store-condition.ts).
 *   - flush reaches both devices; FUA is honoured on whichever device a block
 *     lands on.
 *
 * Table line: `0 <len> remap <main> <spare> [<#features> <features...>]`, with
 * features `reserved_sectors <n>` (metadata area at each end of the spare,
 * default SAFE_DEFAULT_RESERVED_SECTORS) and `no_discard_passdown`.
 */
import {
  type BlockDevice,
  type IoStatus,
  type LogicalBlockSize,
  type MappedReads,
  type WriteFlags,
  EINVAL,
  EIO,
  ENOSPC,
  OK,
  SECTOR_SHIFT,
  checkIo,
  checkRequest,
  errnoName,
  isMediaError,
  mappedReadsOf,
} from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { type PlannedReads, READ_AGAIN, type ReadPlan } from '../block/read-plan.js';
import { type ControlTarget, MessageError, TableError } from '../control/target.js';
import { kstrtoull } from '../util/kernel-parse.js';
import { log } from '../util/log.js';
import { RemapTable, type RemapTableShared } from '../block/remap-table.js';
import { StoreCondition, type StoreRole } from './store-condition.js';
import { BlockSet } from './block-set.js';
import { CounterRows } from '../util/counter-rows.js';
import { availableParallelism } from 'node:os';
import { DEFAULT_HORIZON_NS, healthScore } from './health-score.js';
import { type RemapJournal, inMemoryJournal } from '../metadata/journal.js';
import type { TableLine } from '../control/table-line.js';

export const SAFE_TARGET_NAME = 'remap';
export const SAFE_STATUS_VERSION = 'v1';
/** 1 MiB at each end of the spare by default. */
export const SAFE_DEFAULT_RESERVED_SECTORS = 2048;

export interface SafeOptions {
  main: BlockDevice;
  spare: BlockDevice;
  mainPath?: string;
  sparePath?: string;
  reservedSectors?: number;
  /** Sectors reserved at the end of the spare (default: reservedSectors). A metadata store whose end area differs sets it. */
  reservedEndSectors?: number;
  discardPassdown?: boolean;
  journal?: RemapJournal;
  /** Remaps and cursor restored from metadata. */
  restored?: { remaps: Iterable<[number, number]>; cursor: number; badSpare?: Iterable<number>; pending?: Iterable<number> };
  /**
   * Make this a replica of a primary target in another thread: the remap
   * table, pending blocks and counters are the primary's (shared memory); the
   * rare paths (a remap and its record, marking blocks pending) run in the
   * primary through `slow` (see handleSlowPath).
   */
  replicaOf?: { shared: SafeShared; row: number; slow: SafeSlowCall };
  /** Counter rows to allocate for replicas (primary only; default 1 + the CPU count). */
  counterRows?: number;
}

/** What a replica shares with its primary. */
export interface SafeShared {
  remaps: RemapTableShared;
  pending: RemapTableShared;
  counters: SharedArrayBuffer;
  /** The move sequence (SafeRemapTarget.beginMove): odd while the primary copies a block between main and spare. */
  moves: SharedArrayBuffer;
  /** The store condition (StoreCondition): one for the primary and its replicas. */
  condition: SharedArrayBuffer;
  reservedSectors: number;
  reservedEndSectors: number;
  discardPassdown: boolean;
}

/** A slow-path call to the primary: op, numeric arguments, the request's bytes; with `readBack`, the primary's bytes come back in them (a read). */
export type SafeSlowCall = (op: number, args: number[], data: Uint8Array | undefined, readBack?: boolean) => IoStatus;

/** Slow-path operations a replica sends to its primary. */
export const SLOW_AFTER_WRITE_ERROR = 1;
export const SLOW_WRITE_BLOCKS = 2;
export const SLOW_MOVE_RUN = 3;
export const SLOW_READ_ERROR = 4;
/** A replica's write or discard that may have raced a block move: done again on the primary, wherever its blocks now live. */
export const SLOW_WRITE_AGAIN = 5;
export const SLOW_DISCARD_AGAIN = 6;

/** Supplies what a metadata store decides, once the devices of a table line are open. */
export type SafeSetup = (devices: {
  main: BlockDevice;
  spare: BlockDevice;
  mainPath: string;
  sparePath: string;
  /** reserved_sectors from the table line, when it was given. */
  reservedSectors: number | undefined;
}) => Pick<SafeOptions, 'journal' | 'restored' | 'reservedSectors' | 'reservedEndSectors'>;

const COUNTERS = [
  'reads',
  'writes',
  'flushes',
  'discards',
  'readErrors',
  'writeErrors',
  'remappedReads',
  'remappedWrites',
  'remapsMade',
  'pendingRemapped',
  'spareWriteErrors',
  'enospc',
  'proactiveRemaps',
  'scannerPending',
  'storeErrors',
] as const;
type CounterName = (typeof COUNTERS)[number];

interface SafeCounters {
  reads: number;
  writes: number;
  flushes: number;
  discards: number;
  readErrors: number;
  writeErrors: number;
  remappedReads: number;
  remappedWrites: number;
  remapsMade: number;
  pendingRemapped: number;
  spareWriteErrors: number;
  enospc: number;
  /** Readable blocks the scanner had moved to the spare (weak sectors). */
  proactiveRemaps: number;
  /** Unreadable blocks the scanner marked pending. */
  scannerPending: number;
  /** Requests failed by the store under a device (not its medium): nothing remapped. */
  storeErrors: number;
}

/** What a health monitor tells the target: its `health` reply and its score. */
export interface HealthProvider {
  line(): string;
  score(): number;
}

/** What became of a block the scanner found weak. */
export type MigrateResult = 'remapped' | 'already-remapped' | 'unreadable' | 'spare-full' | 'failed';

/** Requests of up to this many blocks are split by looking each block up (above: walking the range summaries). */
const SHORT_RUN_WALK = 16; // at most 32: markedMask answers in one int

const C: Readonly<Record<CounterName, number>> = Object.fromEntries(COUNTERS.map((n, i) => [n, i])) as Record<CounterName, number>;

export class SafeRemapTarget implements BlockDevice, MappedReads, PlannedReads, ControlTarget {
  readonly targetType = SAFE_TARGET_NAME;
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  readonly main: BlockDevice;
  readonly spare: BlockDevice;
  readonly mainPath: string;
  readonly sparePath: string;
  /** Sectors per remap unit (logical block). */
  readonly unit: number;
  readonly reservedSectors: number;
  readonly reservedEndSectors: number;
  /** First and one-past-last spare block available to data. */
  readonly spareFirstBlock: number;
  readonly spareEndBlock: number;
  readonly discardPassdown: boolean;
  private readonly remapTable: RemapTable;
  /** Per-thread counter rows: this instance bumps its own row; stats() sums them all. */
  private readonly counterRows: CounterRows<CounterName>;
  private readonly c: Float64Array;
  private readonly slow: SafeSlowCall | undefined;
  /** Main is a regular file read through the page cache (no faults, no media to spare): see read(). */
  private readonly readThrough: boolean;
  /** Main and spare are both page-cached files: planRead() can hand out their descriptors. */
  readonly canPlanReads: boolean;
  /** [0]: the move sequence, shared by the primary and its replicas. */
  private readonly moves: Int32Array;
  private readonly condition: StoreCondition;
  /** condition.words: word 0 is read after each write that succeeded. */
  private readonly cond: Int32Array;
  private readonly journal: RemapJournal;
  private cursor: number;
  private readonly badSpare = new Set<number>();
  private readonly pending: BlockSet;
  private readonly unitShift: number;
  private healthProvider: HealthProvider | undefined;

  constructor(opts: SafeOptions) {
    const { main, spare } = opts;
    if (main.logicalBlockSize !== spare.logicalBlockSize) {
      throw new TableError(`main and spare logical block sizes differ (${main.logicalBlockSize} vs ${spare.logicalBlockSize} bytes)`);
    }
    this.main = main;
    this.spare = spare;
    this.mainPath = opts.mainPath ?? main.name;
    this.sparePath = opts.sparePath ?? spare.name;
    this.name = `${SAFE_TARGET_NAME}(${this.mainPath},${this.sparePath})`;
    this.sectors = main.sectors;
    this.logicalBlockSize = main.logicalBlockSize;
    this.unit = main.logicalBlockSize >>> SECTOR_SHIFT;
    this.unitShift = Math.log2(this.unit);
    // a replica takes the primary's layout and features, whatever its options say
    const shared = opts.replicaOf?.shared;
    const reserved = shared?.reservedSectors ?? opts.reservedSectors ?? SAFE_DEFAULT_RESERVED_SECTORS;
    if (!Number.isSafeInteger(reserved) || reserved < 0 || reserved % this.unit !== 0) {
      throw new TableError(`reserved_sectors must be a whole number of ${this.logicalBlockSize}-byte blocks, got ${reserved}`);
    }
    const reservedEnd = shared?.reservedEndSectors ?? opts.reservedEndSectors ?? reserved;
    if (!Number.isSafeInteger(reservedEnd) || reservedEnd < 0 || reservedEnd % this.unit !== 0) {
      throw new TableError(`reserved end sectors must be a whole number of ${this.logicalBlockSize}-byte blocks, got ${reservedEnd}`);
    }
    this.reservedSectors = reserved;
    this.reservedEndSectors = reservedEnd;
    const spareBlocks = Math.floor(spare.sectors / this.unit);
    this.spareFirstBlock = reserved / this.unit;
    this.spareEndBlock = spareBlocks - reservedEnd / this.unit;
    if (this.spareEndBlock <= this.spareFirstBlock) {
      const areas = reservedEnd === reserved ? `2 x ${reserved}` : `${reserved} + ${reservedEnd}`;
      throw new TableError(`spare too small: ${spare.sectors} sectors leave no room for data after ${areas} reserved sectors`, 28);
    }
    this.discardPassdown = shared?.discardPassdown ?? opts.discardPassdown ?? true;
    this.journal = opts.journal ?? inMemoryJournal;
    const replica = opts.replicaOf;
    const blocks = Math.floor(main.sectors / this.unit);
    this.remapTable = new RemapTable(replica ? replica.shared.remaps : { keySpace: blocks });
    this.pending = new BlockSet(replica ? replica.shared.pending : { keySpace: blocks });
    this.counterRows = new CounterRows(
      COUNTERS,
      replica ? { shared: replica.shared.counters, row: replica.row } : { rows: opts.counterRows ?? 1 + availableParallelism() },
    );
    this.c = this.counterRows.row;
    this.slow = replica?.slow;
    this.moves = new Int32Array(replica ? replica.shared.moves : new SharedArrayBuffer(4));
    this.condition = new StoreCondition(replica?.shared.condition);
    this.cond = this.condition.words;
    this.readThrough = main instanceof FileDevice && main.pageCached;
    this.canPlanReads = this.readThrough && spare instanceof FileDevice && spare.pageCached;
    this.cursor = this.spareFirstBlock;
    if (opts.restored) {
      const keys: number[] = [];
      const values: number[] = [];
      for (const [k, v] of opts.restored.remaps) {
        keys.push(k);
        values.push(v);
      }
      this.remapTable.setMany(keys, values);
      this.cursor = Math.max(this.spareFirstBlock, opts.restored.cursor);
      for (const b of opts.restored.badSpare ?? []) this.badSpare.add(b);
      for (const b of opts.restored.pending ?? []) this.pending.add(b);
    }
  }

  /**
   * `setup`, when given, runs once both devices are open and may supply the
   * journal, restored state and reserved areas (a metadata store plugs in
   * here); `reservedSectors` is what the line asked for, if anything.
   */
  static fromTable(
    line: TableLine,
    open: (path: string) => BlockDevice,
    extra: Pick<SafeOptions, 'journal' | 'restored'> = {},
    setup?: SafeSetup,
  ): SafeRemapTarget {
    const args = line.args;
    if (args.length < 2) throw new TableError(`remap: expected '<main> <spare> [<#features> <features...>]', got ${args.length} argument(s)`);
    const [mainPath, sparePath, countText, ...features] = args;
    let reservedSectors: number | undefined;
    let discardPassdown = true;
    if (countText !== undefined) {
      const n = kstrtoull(countText);
      if (n === undefined || Number(n) !== features.length) {
        throw new TableError(`remap: feature count '${countText}' does not match the ${features.length} feature argument(s) that follow`);
      }
      for (let i = 0; i < features.length; i++) {
        const f = features[i];
        if (f === 'reserved_sectors') {
          const v = features[i + 1] === undefined ? undefined : kstrtoull(features[i + 1]);
          if (v === undefined || v > BigInt(Number.MAX_SAFE_INTEGER))
            throw new TableError(`remap: reserved_sectors needs a number of sectors, got '${features[i + 1] ?? ''}'`);
          reservedSectors = Number(v);
          i++;
        } else if (f === 'no_discard_passdown') {
          discardPassdown = false;
        } else {
          throw new TableError(`remap: unknown feature '${f}' (known: reserved_sectors <n>, no_discard_passdown)`);
        }
      }
    }
    let main: BlockDevice;
    try {
      main = open(mainPath);
    } catch (err) {
      throw new TableError(`remap: cannot open main device: ${(err as Error).message}`, 2);
    }
    let spare: BlockDevice;
    try {
      spare = open(sparePath);
    } catch (err) {
      main.close();
      throw new TableError(`remap: cannot open spare device: ${(err as Error).message}`, 2);
    }
    try {
      const fromSetup = setup ? setup({ main, spare, mainPath, sparePath, reservedSectors }) : {};
      return new SafeRemapTarget({ main, spare, mainPath, sparePath, reservedSectors, discardPassdown, ...extra, ...fromSetup });
    } catch (err) {
      main.close();
      spare.close();
      throw err;
    }
  }

  // ---- data path ----

  read(sector: number, buf: Uint8Array): IoStatus {
    const count = checkIo(this, sector, buf);
    this.c[C.reads]++;
    const u = this.unitShift;
    const b0 = sector >>> 0 === sector ? sector >>> u : Math.floor(sector / this.unit);
    const nb = count >> u;
    if (!this.remapTable.anyInRange(b0, nb)) return this.readMain(sector, buf);
    if (!this.readThrough) return this.readRuns(b0, nb, buf, false);
    // a page-cached main file reads a remapped block's stale bytes as cheaply as any: one call for the whole
    // range, and the spare's blocks laid over it, saves the call for the main part after each remapped run.
    // In a replica, a block the primary moved back to main meanwhile (unremap) would keep the stale bytes: a
    // move seen during the read sends it down the run-by-run path instead.
    const seq = this.seqBefore();
    if (seq < 0 || this.main.read(sector, buf) !== OK) return this.readRuns(b0, nb, buf, false);
    const rc = this.readRuns(b0, nb, buf, true);
    return this.movedSince(seq) ? this.readRuns(b0, nb, buf, false) : rc;
  }

  /**
   * read() for a caller that moves the bytes itself (PlannedReads): main's
   * runs and the spare's remapped runs as pieces on the files' descriptors.
   * False (read() it instead): no plannable devices, a request not in whole
   * blocks, too many runs, a move under way.
   */
  planRead(sector: number, count: number, plan: ReadPlan): boolean {
    if (!this.canPlanReads || sector % this.unit !== 0 || count % this.unit !== 0 || count <= 0 || sector + count > this.sectors) return false;
    const seq = this.seqBefore();
    if (seq < 0) return false;
    plan.pieces = 0;
    plan.seq = seq;
    plan.spareRuns = 0;
    const b0 = sector / this.unit;
    const nb = count / this.unit;
    const bs = this.logicalBlockSize;
    const mainFd = (this.main as FileDevice).fileDescriptor;
    if (!this.remapTable.anyInRange(b0, nb)) return plan.add(mainFd, b0 * bs, 0, nb * bs);
    const spareFd = (this.spare as FileDevice).fileDescriptor;
    let fits = true;
    this.forEachRun(b0, nb, (first, n, spareFirst) => {
      const remapped = spareFirst >= 0;
      if (remapped) plan.spareRuns++;
      fits &&= plan.add(remapped ? spareFd : mainFd, (remapped ? spareFirst : first) * bs, (first - b0) * bs, n * bs);
    });
    return fits;
  }

  plannedReadDone(plan: ReadPlan, status: IoStatus): IoStatus | typeof READ_AGAIN {
    // a failed piece takes read()'s error handling; a move meanwhile may have sent a run elsewhere
    if (status !== OK || this.movedSince(plan.seq)) return READ_AGAIN;
    this.c[C.reads]++;
    this.c[C.remappedReads] += plan.spareRuns;
    return OK;
  }

  /** read() run by run (`overSpareOnly`: main's runs are in `buf` already). */
  private readRuns(b0: number, nb: number, buf: Uint8Array, overSpareOnly: boolean): IoStatus {
    let status: IoStatus = OK;
    this.forEachRun(b0, nb, (first, n, spareFirst) => {
      if (overSpareOnly && spareFirst < 0) return;
      const part = buf.subarray((first - b0) * this.logicalBlockSize, (first - b0 + n) * this.logicalBlockSize);
      let rc: IoStatus;
      if (spareFirst < 0) rc = this.readMain(first * this.unit, part);
      else {
        this.c[C.remappedReads]++;
        rc = this.spare.read(spareFirst * this.unit, part);
        if (rc !== OK && !isMediaError(rc)) rc = this.storeError('spare', rc, `reading spare block ${spareFirst}`);
        else if (rc !== OK) this.c[C.readErrors]++;
      }
      if (rc !== OK && status === OK) status = rc;
    });
    return status;
  }

  /** read()'s bytes where they lie, when all of them are on a main device that maps them (MappedReads); else undefined. */
  mappedRead(sector: number, count: number, opts?: { resident?: boolean }): Uint8Array | undefined {
    const main = mappedReadsOf(this.main);
    if (main === undefined) return undefined;
    checkRequest(this, sector, count);
    const b0 = Math.floor(sector / this.unit);
    const nb = Math.ceil((sector + count) / this.unit) - b0;
    if (this.remapTable.anyInRange(b0, nb)) return undefined;
    const v = main.mappedRead(sector, count, opts);
    if (v !== undefined) this.c[C.reads]++;
    return v;
  }

  write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    const count = checkIo(this, sector, buf);
    this.c[C.writes]++;
    const b0 = Math.floor(sector / this.unit);
    const nb = count >> this.unitShift;
    // in a replica, a block the primary copies meanwhile (a move) could lose this write behind the copy
    const seq = this.seqBefore();
    let rc: IoStatus;
    if (seq >= 0) {
      rc = this.writeBlocksWhereTheyLive(b0, nb, buf, flags);
      if (this.movedSince(seq)) rc = this.slow!(SLOW_WRITE_AGAIN, [b0, nb, flags?.fua ? 1 : 0], buf);
    } else rc = this.slow!(SLOW_WRITE_AGAIN, [b0, nb, flags?.fua ? 1 : 0], buf);
    // a store error clears with a write that succeeds; a failed target fails it (its data may have gone nowhere)
    return rc === OK && this.cond[0] !== 0 ? this.condition.afterWrite() : rc;
  }

  private writeBlocksWhereTheyLive(b0: number, nb: number, buf: Uint8Array, flags: WriteFlags | undefined): IoStatus {
    if (this.pending.size === 0 && !this.remapTable.anyInRange(b0, nb)) {
      const rc = this.main.write(b0 * this.unit, buf, flags);
      if (rc === OK) return OK;
      return this.slowPath(SLOW_AFTER_WRITE_ERROR, b0, nb, buf, flags, rc);
    }
    let status: IoStatus = OK;
    this.forEachRun(b0, nb, (first, n, spareFirst) => {
      const part = buf.subarray((first - b0) * this.logicalBlockSize, (first - b0 + n) * this.logicalBlockSize);
      let rc: IoStatus;
      if (spareFirst >= 0) {
        this.c[C.remappedWrites]++;
        rc = this.spare.write(spareFirst * this.unit, part, flags);
        if (rc !== OK) rc = this.slowPath(SLOW_MOVE_RUN, first, n, part, flags);
      } else if (this.hasPending(first, n)) {
        rc = this.slowPath(SLOW_WRITE_BLOCKS, first, n, part, flags);
      } else {
        rc = this.main.write(first * this.unit, part, flags);
        if (rc !== OK) rc = this.slowPath(SLOW_AFTER_WRITE_ERROR, first, n, part, flags, rc);
      }
      if (rc !== OK && status === OK) status = rc;
    });
    return status;
  }

  flush(): IoStatus {
    this.c[C.flushes]++;
    let a = this.main.flush();
    let b = this.spare.flush();
    const c = this.journal.flush();
    if (a !== OK && !isMediaError(a)) a = this.storeError('main', a, 'flushing');
    if (b !== OK && !isMediaError(b)) b = this.storeError('spare', b, 'flushing');
    if (c !== OK) this.condition.metadataFailed(this.sparePath, c);
    const failed = this.condition.failure;
    if (failed !== OK) return failed; // acknowledged data whose file is gone is not durable: no flush may say so
    return a !== OK ? a : b !== OK ? b : c;
  }

  discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    this.c[C.discards]++;
    if (!this.discardPassdown || count === 0) return OK;
    const b0 = Math.floor(sector / this.unit);
    const nb = count / this.unit;
    const seq = this.seqBefore(); // as in write()
    if (seq >= 0) {
      const rc = this.discardBlocksWhereTheyLive(b0, nb);
      if (!this.movedSince(seq)) return rc;
    }
    return this.slow!(SLOW_DISCARD_AGAIN, [b0, nb, 0], undefined);
  }

  private discardBlocksWhereTheyLive(b0: number, nb: number): IoStatus {
    let status: IoStatus = OK;
    this.forEachRun(b0, nb, (first, n, spareFirst) => {
      const rc = spareFirst < 0 ? this.main.discard(first * this.unit, n * this.unit) : this.spare.discard(spareFirst * this.unit, n * this.unit);
      if (rc !== OK && status === OK) status = rc;
    });
    return status;
  }

  close(): void {
    this.remapTable.close();
    this.pending.close();
    this.main.close();
    this.spare.close();
  }

  /**
   * Splits [b0, b0+nb) into runs that live in one place: on main (spareFirst
   * = -1) or on consecutive spare blocks.
   */
  private forEachRun(b0: number, nb: number, fn: (first: number, n: number, spareFirst: number) => void): void {
    const table = this.remapTable;
    const end = b0 + nb;
    if (nb <= SHORT_RUN_WALK) {
      // a short request: one lookup per block the summary marks, in order (a range walk would look some up twice)
      const marked = table.markedMask(b0, nb);
      let runStart = b0;
      let runSpare = (marked & 1) !== 0 ? table.get(b0) : -1;
      for (let k = b0 + 1; k < end; k++) {
        const v = (marked & (1 << (k - b0))) !== 0 ? table.get(k) : -1;
        if (runSpare < 0 ? v < 0 : v === runSpare + (k - runStart)) continue;
        fn(runStart, k - runStart, runSpare);
        runStart = k;
        runSpare = v;
      }
      fn(runStart, end - runStart, runSpare);
      return;
    }
    let pos = b0;
    while (pos < end) {
      const k = table.firstInRange(pos, end - pos);
      const mainEnd = k < 0 ? end : k;
      if (mainEnd > pos) fn(pos, mainEnd - pos, -1);
      if (k < 0) return;
      // a run of remapped blocks on consecutive spare blocks
      const v = table.get(k);
      let n = 1;
      if (v < 0) {
        fn(k, 1, -1); // unremapped since it was found (another thread): back on main
        pos = k + 1;
        continue;
      }
      while (k + n < end && table.get(k + n) === v + n) n++;
      fn(k, n, v);
      pos = k + n;
    }
  }

  private hasPending(first: number, n: number): boolean {
    return this.pending.size > 0 && this.pending.anyInRange(first, n);
  }

  /**
   * The rare paths: here in a primary; in a replica, sent to the primary
   * (whose journal and allocator are the only ones) with the request's bytes.
   */
  private slowPath(op: number, first: number, n: number, buf: Uint8Array, flags: WriteFlags | undefined, failed: IoStatus = OK): IoStatus {
    if (this.slow) return this.slow(op, [first, n, flags?.fua ? 1 : 0, failed], buf);
    return this.runSlowPath(op, first, n, buf, flags, failed);
  }

  /** `failed`: the status of the write that sent SLOW_AFTER_WRITE_ERROR here. */
  private runSlowPath(op: number, first: number, n: number, buf: Uint8Array, flags: WriteFlags | undefined, failed: IoStatus): IoStatus {
    switch (op) {
      case SLOW_AFTER_WRITE_ERROR:
        return this.afterMainWriteError(first, n, buf, flags, failed);
      case SLOW_WRITE_BLOCKS:
        return this.writeBlocks(first, n, buf, flags, first);
      case SLOW_MOVE_RUN:
        return this.moveRemappedRun(first, n, buf, flags);
      case SLOW_READ_ERROR:
        return this.readMainAgain(first * this.unit, buf);
      case SLOW_WRITE_AGAIN:
        return this.writeBlocksWhereTheyLive(first, n, buf, flags);
      case SLOW_DISCARD_AGAIN:
        return this.discardBlocksWhereTheyLive(first, n);
      default:
        return EINVAL;
    }
  }

  /** What a replica in another thread needs: `new SafeRemapTarget({ main, spare, replicaOf: { shared, row, slow } })`. */
  get shared(): SafeShared {
    return {
      remaps: this.remapTable.shared,
      pending: this.pending.shared,
      counters: this.counterRows.shared,
      moves: this.moves.buffer as SharedArrayBuffer,
      condition: this.condition.shared,
      reservedSectors: this.reservedSectors,
      reservedEndSectors: this.reservedEndSectors,
      discardPassdown: this.discardPassdown,
    };
  }

  /** Counter rows available to replicas (row 0 is the primary's). */
  get counterRowCount(): number {
    return this.counterRows.rows;
  }

  /** In the primary: serves a replica's slow-path call. `args` = [first block, blocks, fua, failed status]; `data` holds the request's bytes. */
  handleSlowPath(op: number, args: ArrayLike<number>, data: Uint8Array): IoStatus {
    const n = args[1];
    return this.runSlowPath(op, args[0], n, data.subarray(0, n * this.logicalBlockSize), args[2] ? { fua: true } : undefined, args[3] ?? EIO);
  }

  /** A request to `role` failed with a store's errno (not a media error): counted, named in the status, and the errno to fail it with. */
  private storeError(role: StoreRole, status: IoStatus, doing: string): IoStatus {
    this.c[C.storeErrors]++;
    return this.condition.storeError(role, role === 'main' ? this.mainPath : this.sparePath, status, doing);
  }

  private readMain(sector: number, buf: Uint8Array): IoStatus {
    const rc = this.main.read(sector, buf);
    if (rc === OK) return OK;
    if (this.slow) return this.slow(SLOW_READ_ERROR, [sector / this.unit, buf.length / this.logicalBlockSize, 0], buf, true);
    return this.readMainAgain(sector, buf, rc);
  }

  /** A read of main failed: read again (it may have been transient), and mark the blocks that still fail pending. */
  private readMainAgain(sector: number, buf: Uint8Array, firstRc?: IoStatus): IoStatus {
    const rc = firstRc ?? this.main.read(sector, buf);
    if (rc === OK) return OK;
    const first = Math.floor(sector / this.unit);
    if (!isMediaError(rc)) return this.storeError('main', rc, `reading main block ${first}`);
    this.c[C.readErrors]++;
    // find which blocks fail on the medium, so only those become pending
    const bs = this.logicalBlockSize;
    const n = buf.length / bs;
    for (let i = 0; i < n; i++) {
      const part = buf.subarray(i * bs, (i + 1) * bs);
      if (n === 1 || isMediaError(this.main.read((first + i) * this.unit, part))) {
        if (!this.pending.has(first + i)) log.warn(`read error on main block ${first + i}: marked pending, the next write remaps it`);
        this.pending.add(first + i);
      }
    }
    return rc;
  }

  /**
   * A write of [first, first+n) failed on main. One block: it is the failing
   * one, remap it. Several: write them one by one to find which fail.
   */
  private afterMainWriteError(first: number, n: number, buf: Uint8Array, flags: WriteFlags | undefined, failed: IoStatus): IoStatus {
    if (!isMediaError(failed)) return this.storeError('main', failed, `writing main block ${first}${n > 1 ? ` (+${n - 1})` : ''}`);
    if (n > 1) return this.writeBlocks(first, n, buf, flags, first);
    this.c[C.writeErrors]++;
    return this.remapBlock(first, buf, flags);
  }

  /**
   * Writes blocks one by one (after a failed multi-block write, or when some
   * are pending): pending or failing blocks are remapped.
   */
  private writeBlocks(first: number, n: number, buf: Uint8Array, flags: WriteFlags | undefined, bufBlock0: number): IoStatus {
    const bs = this.logicalBlockSize;
    let status: IoStatus = OK;
    for (let b = first; b < first + n; b++) {
      const part = buf.subarray((b - bufBlock0) * bs, (b - bufBlock0 + 1) * bs);
      let rc: IoStatus;
      if (this.pending.has(b)) {
        rc = this.remapBlock(b, part, flags);
        if (rc === OK) this.c[C.pendingRemapped]++;
      } else {
        rc = this.main.write(b * this.unit, part, flags);
        if (rc !== OK && !isMediaError(rc)) rc = this.storeError('main', rc, `writing main block ${b}`);
        else if (rc !== OK) {
          this.c[C.writeErrors]++;
          rc = this.remapBlock(b, part, flags);
        }
      }
      if (rc !== OK && status === OK) status = rc;
    }
    return status;
  }

  /** A write to remapped blocks failed on the spare: move each block to a fresh spare block. */
  private moveRemappedRun(first: number, n: number, buf: Uint8Array, flags: WriteFlags | undefined): IoStatus {
    const bs = this.logicalBlockSize;
    let status: IoStatus = OK;
    for (let i = 0; i < n; i++) {
      const part = buf.subarray(i * bs, (i + 1) * bs);
      const old = this.remapTable.get(first + i);
      let rc = this.spare.write(old * this.unit, part, flags);
      if (rc !== OK && !isMediaError(rc)) rc = this.storeError('spare', rc, `writing spare block ${old}`);
      else if (rc !== OK) {
        this.c[C.spareWriteErrors]++;
        this.markBadSpare(old);
        rc = this.remapBlock(first + i, part, flags);
      }
      if (rc !== OK && status === OK) status = rc;
    }
    return status;
  }

  /** Puts one block's data on a new spare block and records the remap before returning OK. */
  private remapBlock(block: number, data: Uint8Array, flags: WriteFlags | undefined): IoStatus {
    for (;;) {
      const spareBlock = this.allocate();
      if (spareBlock < 0) {
        this.c[C.enospc]++;
        log.error(`spare full: cannot remap main block ${block}`);
        return ENOSPC;
      }
      const rc = this.spare.write(spareBlock * this.unit, data, flags);
      if (rc !== OK && !isMediaError(rc)) {
        this.cursor = spareBlock; // nothing wrong with the block: the next remap takes it
        return this.storeError('spare', rc, `writing spare block ${spareBlock} for main block ${block}`);
      }
      if (rc !== OK) {
        this.c[C.spareWriteErrors]++;
        this.markBadSpare(spareBlock);
        continue;
      }
      // data first, then the durable record, then the table: the write is acknowledged only after all three
      const jr = this.journal.recordRemap(block, spareBlock, this.cursor);
      if (jr !== OK) {
        this.condition.metadataFailed(this.sparePath, jr);
        return jr;
      }
      this.remapTable.set(block, spareBlock);
      this.pending.delete(block);
      this.c[C.remapsMade]++;
      log.info(`remapped main block ${block} -> spare block ${spareBlock}`);
      return OK;
    }
  }

  private allocate(): number {
    while (this.cursor < this.spareEndBlock && this.badSpare.has(this.cursor)) this.cursor++;
    if (this.cursor >= this.spareEndBlock) return -1;
    return this.cursor++;
  }

  private markBadSpare(spareBlock: number): void {
    this.badSpare.add(spareBlock);
    this.journal.recordBadSpare(spareBlock, this.cursor);
    log.warn(`spare block ${spareBlock} failed a write: never used again`);
  }

  // ---- control plane ----

  tableArgs(): string {
    const features: string[] = [];
    if (this.reservedSectors !== SAFE_DEFAULT_RESERVED_SECTORS) features.push('reserved_sectors', String(this.reservedSectors));
    if (!this.discardPassdown) features.push('no_discard_passdown');
    return [this.mainPath, this.sparePath, ...(features.length > 0 ? [String(features.length), ...features] : [])].join(' ');
  }

  table(): string {
    return `0 ${this.sectors} ${SAFE_TARGET_NAME} ${this.tableArgs()}`;
  }

  get spareBlocksTotal(): number {
    return this.spareEndBlock - this.spareFirstBlock;
  }

  get spareBlocksUsed(): number {
    return this.cursor - this.spareFirstBlock;
  }

  get remapCount(): number {
    return this.remapTable.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** I/Os served so far by every thread (reads, writes, flushes, discards): a cheap read for the health monitor, unlike stats(). */
  get ioCount(): number {
    const r = this.counterRows;
    return r.sum('reads') + r.sum('writes') + r.sum('flushes') + r.sum('discards');
  }

  /**
   * Status tokens: `v1 <main> <spare> <remaps> <pending> <spare used>/<spare total> <read errors> <write errors> <enospc> <state> <health score>`.
   * state: the store condition when there is one (failed_<main|spare>_<deleted|shrunk>, metadata_failed, store_<errno>), else spare_full or ok.
   */
  statusTokens(): string[] {
    const state = this.condition.token() ?? (this.cursor >= this.spareEndBlock ? 'spare_full' : 'ok');
    return [
      SAFE_STATUS_VERSION,
      this.mainPath,
      this.sparePath,
      String(this.remapTable.size),
      String(this.pending.size),
      `${this.spareBlocksUsed}/${this.spareBlocksTotal}`,
      String(this.counterRows.sum('readErrors')),
      String(this.counterRows.sum('writeErrors')),
      String(this.counterRows.sum('enospc')),
      state,
      String(this.healthScore()),
    ];
  }

  status(): string {
    return `0 ${this.sectors} ${SAFE_TARGET_NAME} ${this.statusTokens().join(' ')}`;
  }

  stats(): SafeCounters & { remaps: number; pending: number; spareUsed: number; spareTotal: number; badSpare: number } {
    const counters = Object.fromEntries(COUNTERS.map((n) => [n, this.counterRows.sum(n)])) as unknown as SafeCounters;
    return {
      ...counters,
      remaps: this.remapTable.size,
      pending: this.pending.size,
      spareUsed: this.spareBlocksUsed,
      spareTotal: this.spareBlocksTotal,
      badSpare: this.badSpare.size,
    };
  }

  message(args: string[]): string {
    if (args.length === 0) throw new MessageError('remap: empty message');
    const [cmd, ...rest] = args;
    switch (cmd.toLowerCase()) {
      case 'help':
        return 'Commands: help, status, stats, clear_stats, health, remap <block>, unremap <block>, list [<first> <count>], pending';
      case 'health':
        if (rest.length > 0) throw new MessageError(`remap: 'health' takes no arguments, got ${rest.length}`);
        return this.healthProvider ? this.healthProvider.line() : this.ownHealth();
      case 'status': {
        const s = this.stats();
        return `remaps=${s.remaps} pending=${s.pending} spare_used=${s.spareUsed} spare_total=${s.spareTotal} read_errors=${s.readErrors} write_errors=${s.writeErrors} enospc=${s.enospc} store_errors=${s.storeErrors}`;
      }
      case 'stats':
        return Object.entries(this.stats())
          .map(([k, v]) => `${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}=${v}`)
          .join(' ');
      case 'clear_stats':
        this.counterRows.reset(COUNTERS);
        return 'Statistics cleared';
      case 'remap':
        return this.messageRemap(rest);
      case 'unremap':
        return this.messageUnremap(rest);
      case 'list':
        return this.messageList(rest);
      case 'pending':
        return [...this.pending].sort((a, b) => a - b).join(' ');
      default:
        throw new MessageError(`remap: unknown message '${cmd}' (try 'help')`);
    }
  }

  private parseBlock(cmd: string, args: string[], count = 1): number[] {
    if (args.length !== count) throw new MessageError(`remap: '${cmd}' takes ${count} argument(s), got ${args.length}`);
    const maxBlock = this.sectors / this.unit;
    return args.map((a) => {
      const v = kstrtoull(a);
      if (v === undefined) throw new MessageError(`remap: ${cmd}: '${a}' is not a block number`);
      if (v >= BigInt(maxBlock)) throw new MessageError(`remap: ${cmd}: block ${a} is beyond the device end (blocks 0..${maxBlock - 1})`);
      return Number(v);
    });
  }

  /** Moves a readable block to the spare (proactive remap): its data is copied first. */
  private messageRemap(args: string[]): string {
    const [block] = this.parseBlock('remap', args);
    const existing = this.remapTable.get(block);
    if (existing >= 0) throw new MessageError(`remap: block ${block} is already remapped to spare block ${existing}`, 17);
    const r = this.copyToSpare(block);
    if (r.result === 'unreadable') {
      throw new MessageError(`remap: block ${block} cannot be read, so its data cannot be moved; it is now pending and the next write remaps it`, EIO);
    }
    if (r.rc !== OK) throw new MessageError(`remap: cannot remap block ${block}: ${r.result === 'spare-full' ? 'spare full' : errnoName(r.rc)}`, r.rc);
    return `block ${block} remapped to spare block ${this.remapTable.get(block)}`;
  }

  /**
   * Reads a block from main and moves it to a new spare block (durably, FUA).
   * An unreadable block becomes pending instead. The data is read here, at
   * the moment of the move, so a write since the caller last looked is not undone.
   */
  private copyToSpare(block: number): { result: MigrateResult; rc: IoStatus } {
    this.beginMove();
    try {
      const data = new Uint8Array(this.logicalBlockSize);
      const rd = this.main.read(block * this.unit, data);
      if (rd !== OK && !isMediaError(rd)) return { result: 'failed', rc: this.storeError('main', rd, `reading main block ${block}`) };
      if (rd !== OK) {
        this.pending.add(block);
        return { result: 'unreadable', rc: rd };
      }
      const rc = this.remapBlock(block, data, { fua: true });
      if (rc === OK) return { result: 'remapped', rc };
      return { result: rc === ENOSPC && this.cursor >= this.spareEndBlock ? 'spare-full' : 'failed', rc };
    } finally {
      this.endMove();
    }
  }

  /**
   * A move copies a block's data between main and spare and then changes
   * where the block lives. A replica's write that lands on the old place
   * after the copy read it would be lost, so the primary makes the move
   * sequence odd for the move; a replica's write or discard that saw it odd,
   * or saw it change while it ran, is done again here, where moves and
   * slow paths run one at a time (write()). Seqlock-style: two atomic loads
   * per replica write, nothing on the primary's own path.
   */
  private beginMove(): void {
    Atomics.add(this.moves, 0, 1);
  }

  private endMove(): void {
    Atomics.add(this.moves, 0, 1);
  }

  /** Before a replica's data-path step: the move sequence, or -1 while a move runs (the step then goes to the primary). The primary's own steps race no move: 0. */
  private seqBefore(): number {
    if (this.slow === undefined) return 0;
    const seq = Atomics.load(this.moves, 0);
    return (seq & 1) === 0 ? seq : -1;
  }

  /** After the step: whether a move ran since seqBefore() gave `seq`. */
  private movedSince(seq: number): boolean {
    return this.slow !== undefined && Atomics.load(this.moves, 0) !== seq;
  }

  // ---- the health scanner's entry points ----

  /**
   * The scanner found `block` weak (it reads, slowly): copy its data to the
   * spare now, while it still reads. An unreadable block becomes pending.
   */
  migrateWeakBlock(block: number): MigrateResult {
    this.checkScannerBlock(block);
    if (this.remapTable.get(block) >= 0) return 'already-remapped';
    const r = this.copyToSpare(block);
    if (r.result === 'remapped') {
      this.c[C.proactiveRemaps]++;
      log.info(`scanner: weak main block ${block} moved to spare block ${this.remapTable.get(block)}`);
    } else if (r.result === 'unreadable') {
      this.c[C.scannerPending]++;
    }
    return r.result;
  }

  /** The scanner found `block` unreadable: mark it pending (the next write remaps it). True when it was not pending before. */
  markBlockPending(block: number): boolean {
    this.checkScannerBlock(block);
    if (this.remapTable.get(block) >= 0 || this.pending.has(block)) return false;
    this.pending.add(block);
    this.c[C.scannerPending]++;
    log.warn(`scanner: main block ${block} cannot be read: marked pending, the next write remaps it`);
    return true;
  }

  isPending(block: number): boolean {
    return this.pending.has(block);
  }

  /** Whether any block of [first, first + n) is remapped (one or two bit tests over clean space). */
  remappedInRange(first: number, n: number): boolean {
    return this.remapTable.anyInRange(first, n);
  }

  /** What the `health` message prints: a health monitor plugs its report in here (undefined: the target's own summary). */
  setHealthProvider(provider: HealthProvider | undefined): void {
    this.healthProvider = provider;
  }

  private checkScannerBlock(block: number): void {
    const max = this.sectors / this.unit;
    if (!Number.isSafeInteger(block) || block < 0 || block >= max) throw new RangeError(`block ${block} is out of range 0..${max - 1}`);
  }

  /** The health score (0..100): the monitor's when one runs, else the target's own from the spare alone. */
  healthScore(): number {
    return this.healthProvider ? this.healthProvider.score() : this.ownScore();
  }

  /** Without a scanner: the score from the spare alone (no arrivals seen, so no exhaustion risk). */
  private ownScore(): number {
    return healthScore({
      spareTotal: this.spareBlocksTotal,
      spareUsed: this.spareBlocksUsed,
      pending: this.pending.size,
      weakWaiting: 0,
      exhaustionLoNs: Infinity,
      horizonNs: DEFAULT_HORIZON_NS,
    });
  }

  /** The `health` reply without a scanner. */
  private ownHealth(): string {
    return `health_score=${this.ownScore()} spare_used=${this.spareBlocksUsed} spare_total=${this.spareBlocksTotal} pending=${this.pending.size} scanner=off`;
  }

  /** Moves a block back to main: its data is copied back first; the spare block is not reused. */
  private messageUnremap(args: string[]): string {
    const [block] = this.parseBlock('unremap', args);
    const spareBlock = this.remapTable.get(block);
    if (spareBlock < 0) throw new MessageError(`remap: block ${block} is not remapped`, 61);
    this.beginMove();
    try {
      const data = new Uint8Array(this.logicalBlockSize);
      if (this.spare.read(spareBlock * this.unit, data) !== OK) throw new MessageError(`remap: cannot read spare block ${spareBlock}`, EIO);
      const w = this.main.write(block * this.unit, data, { fua: true });
      if (w !== OK)
        throw new MessageError(
          `remap: main block ${block} ${isMediaError(w) ? 'still fails writes' : `cannot be written (${errnoName(w)}: the store under it, not the medium)`}; remap kept`,
          w,
        );
      const jr = this.journal.recordUnremap(block);
      if (jr !== OK) throw new MessageError(`remap: cannot record the unremap of block ${block}`, jr);
      this.remapTable.delete(block);
    } finally {
      this.endMove();
    }
    return `block ${block} moved back to main`;
  }

  private messageList(args: string[]): string {
    let first = 0;
    let count = this.sectors / this.unit;
    if (args.length > 0) [first, count] = this.parseBlock('list', args, 2);
    const lines: string[] = [];
    const { keys, values } = this.remapTable.snapshot();
    for (let i = 0; i < keys.length; i++) if (keys[i] >= first && keys[i] < first + count) lines.push(`${keys[i]} ${values[i]}`);
    return lines.join('\n');
  }

  /** The spare block `block` is remapped to, or -1. */
  lookup(block: number): number {
    return this.remapTable.get(block);
  }

  /** All remaps, sorted by main block. */
  remaps(): { keys: Float64Array; values: Float64Array } {
    return this.remapTable.snapshot();
  }

  /** The last store error a request failed with ('ENOSPC on main'), also after it cleared; undefined when none did. */
  get lastStoreError(): string | undefined {
    return this.condition.last;
  }

  get allocationCursor(): number {
    return this.cursor;
  }

  pendingBlocks(): number[] {
    return [...this.pending].sort((a, b) => a - b);
  }
}
