/**
 * The store of the `safe` policy: remapsim's own metadata (safe-format.ts) on
 * the spare's reserved areas, and the journal SafeRemapTarget commits remaps
 * through.
 *
 * ## Commit protocol (recordRemap)
 *
 *   0. (the target) the data of the remapped block is written to its new
 *      spare block;
 *   1. barrier: spare.flush(), so that data is durable before any record
 *      points at it (otherwise a power loss could keep the record and lose
 *      the data, and the block would read garbage where an older
 *      acknowledged version used to be);
 *   2. one log block with the record (and the allocation cursor when it moved
 *      past bad spare blocks) is written to log slot k of area A, then of
 *      area B;
 *   3. spare.flush() (durability 'flush', the default), or each of the two
 *      writes of step 2 carries FUA instead (durability 'fua');
 *   4. return OK: only now does the target update its table and acknowledge
 *      the write.
 *
 * A crash before step 3 completes leaves slot k torn, half written or
 * unwritten: recovery ignores it (the write was never acknowledged) or, when
 * one copy is whole, applies it (its data is durable since step 1). Any write
 * or flush error makes the store fail-stop: every later commit fails with
 * that error until the store is reopened (recovered), because the on-disk log
 * may now hold a record the in-memory table does not.
 *
 * ## Checkpoints
 *
 * When the log is full (and after a recovery that found lost records or had to
 * fall back to an older checkpoint) the whole table is written as a new
 * checkpoint into the inactive slot of A and B, flushed, then superblock A
 * (flush), then superblock B (flush), with generation + 1 and a new epoch; the
 * log restarts at slot 0. A crash at any point leaves one superblock that
 * names an intact checkpoint and log.
 *
 * ## What is persisted
 *
 * Remaps (main block -> spare block), removals, and the allocation cursor,
 * which never moves back: a spare block that failed a write lies below the
 * cursor and is never handed out again, so bad spare blocks need no list of
 * their own (recordBadSpare only advances the durable cursor, lazily, with
 * the next log block or flush). Pending blocks (main blocks whose read failed)
 * are not persisted: after a restart the next write to such a block goes to
 * main first and is remapped if it fails, so nothing acknowledged depends on
 * them.
 */
import { randomBytes } from 'node:crypto';
import { type BlockDevice, type IoStatus, OK, EROFS, ENOSPC } from '../block/device.js';
import type { RemapJournal } from './journal.js';
import { log } from '../util/log.js';
import { MetadataFormatError, MetadataValueError } from './errors.js';
import { type SpareContent, describeContent, probeSpare } from './probe.js';
import {
  AREAS,
  type Area,
  type DeviceFingerprint,
  type LogRecord,
  type SafeLayout,
  type SafeState,
  type SafeSuperblock,
  LOG_RECORDS_PER_BLOCK,
  SAFE_BLOCK_SECTORS,
  SAFE_DEFAULT_LOG_BLOCKS,
  SAFE_BLOCK_SIZE,
  dataUnits,
  encodeLogBlock,
  encodeSuperblock,
  formatSafe,
  mainUnits,
  planCheckpoint,
  safeBlockSector,
} from './safe-format.js';
import { type ReplayResult, applyRecords } from './safe-replay.js';
import { type ReadBuffers, writeBlock } from './spare-io.js';
import { type SafeImage, type SafeRecovery, type SafeRepairAction, describeRepairAction, planSafeRepair, readSafeImage, replayImage } from './safe-image.js';

/** An I/O error of the spare while reading or writing metadata. */
export class MetadataIoError extends Error {
  override readonly name = 'MetadataIoError';
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------- the store

/** 'flush': write both log copies, then one flush (fdatasync). 'fua': each log copy written with FUA. */
export type SafeDurability = 'flush' | 'fua';

export interface SafeStoreOptions {
  durability?: SafeDurability;
  /** Replay only: nothing is written, and commits fail with EROFS. */
  readOnly?: boolean;
}

export interface SafeStoreOpenOptions extends SafeStoreOptions {
  /** The main device the metadata must belong to. */
  fingerprint: DeviceFingerprint;
  /** Memory to read the checkpoints and logs into; given back when open returns (nothing keeps a block of them). */
  readBuffers?: ReadBuffers;
}

export interface SafeStoreFormatOptions extends SafeStoreOptions {
  fingerprint: DeviceFingerprint;
  /** Sectors per remap block: the main device's logical block (1 for 512-byte, 8 for 4 KiB). */
  remapBlockSectors: number;
  logBlocks?: number;
  checkpointSlotBlocks?: number;
  /** Random by default. */
  volumeId?: number;
  /** Format over whatever the spare holds. */
  force?: boolean;
  /** Initial table (import): written as the first checkpoint after the format. */
  initial?: { remaps: Iterable<readonly [number, number]>; cursor: number };
}

export interface SafeStoreStats {
  commits: number;
  logBlocksWritten: number;
  checkpoints: number;
  /** Flushes of the spare issued by the store (barriers and commits). */
  flushes: number;
  failed: boolean;
}

/**
 * Log blocks per area when not given: the format's default (256, 1 MiB) on
 * spares of 32 MiB and more; on smaller spares 1/32 of the spare's 4 KiB
 * blocks, at least 4, so the two areas stay small next to the data region.
 */
export function defaultLogBlocks(spareSectors: number): number {
  const blocks = Math.floor(spareSectors / SAFE_BLOCK_SECTORS);
  return Math.max(4, Math.min(SAFE_DEFAULT_LOG_BLOCKS, Math.floor(blocks / 32)));
}

function randomVolumeId(): number {
  return randomBytes(6).readUIntLE(0, 6) + 1;
}

function refusal(spareName: string, content: SpareContent, doing: string): MetadataFormatError {
  const problem = content.kind === 'safe-damaged' || content.kind === 'dm-remap-v4-damaged' ? 'no-valid-superblock' : 'foreign-device';
  return new MetadataFormatError(problem, `${spareName}: refusing to ${doing}: the spare holds ${describeContent(content)}; use --force to overwrite it`);
}

/**
 * Checks a whole table against a layout and main device: main blocks on the
 * device, spare blocks in the data region, no main or spare block twice. The
 * cursor is raised above every spare block used. Throws MetadataValueError
 * naming the entry.
 */
export function validateTable(fingerprint: DeviceFingerprint, layout: SafeLayout, remaps: Iterable<readonly [number, number]>, cursor: number): SafeState {
  const units = dataUnits(layout);
  const mainBlocks = mainUnits(fingerprint, layout);
  const table = new Map<number, number>();
  const usedSpare = new Map<number, number>();
  let top = units.first;
  let i = 0;
  for (const [main, spare] of remaps) {
    if (!Number.isSafeInteger(main) || main < 0 || main >= mainBlocks) {
      throw new MetadataValueError(`remaps[${i}].main`, `remaps[${i}].main must be a main block in [0, ${mainBlocks - 1}], got ${main}`);
    }
    if (!Number.isSafeInteger(spare) || spare < units.first || spare >= units.end) {
      throw new MetadataValueError(
        `remaps[${i}].spare`,
        `remaps[${i}].spare must be a spare block in this spare's data region [${units.first}, ${units.end - 1}], got ${spare}`,
      );
    }
    if (table.has(main)) throw new MetadataValueError(`remaps[${i}].main`, `remaps[${i}].main: main block ${main} appears twice`);
    const other = usedSpare.get(spare);
    if (other !== undefined)
      throw new MetadataValueError(`remaps[${i}].spare`, `remaps[${i}].spare: spare block ${spare} is already given to main block ${other}`);
    table.set(main, spare);
    usedSpare.set(spare, main);
    top = Math.max(top, spare + 1);
    i++;
  }
  if (!Number.isSafeInteger(cursor) || cursor < units.first || cursor > units.end) {
    throw new MetadataValueError('cursor', `cursor must be a spare block in [${units.first}, ${units.end}], got ${cursor}`);
  }
  return { remaps: table, cursor: Math.max(cursor, top) };
}

export class SafeMetadataStore implements RemapJournal {
  readonly spare: BlockDevice;
  readonly durability: SafeDurability;
  readonly readOnly: boolean;
  /** Set by open(): what recovery found and did. */
  recovery: SafeRecovery | undefined;
  private sb: SafeSuperblock;
  private readonly state: SafeState;
  private nextSlot: number;
  private nextSeq: number;
  private nextGeneration: number;
  private maxEpoch: number;
  private bufferedCursor = 0;
  private failure: IoStatus = OK;
  private readonly counters = { commits: 0, logBlocksWritten: 0, checkpoints: 0, flushes: 0 };

  private constructor(
    spare: BlockDevice,
    init: { sb: SafeSuperblock; state: SafeState; nextSlot: number; nextSeq: number; nextGeneration: number; maxEpoch: number },
    opts: SafeStoreOptions,
  ) {
    this.spare = spare;
    this.sb = init.sb;
    this.state = init.state;
    this.nextSlot = init.nextSlot;
    this.nextSeq = init.nextSeq;
    this.nextGeneration = init.nextGeneration;
    this.maxEpoch = init.maxEpoch;
    this.durability = opts.durability ?? 'flush';
    this.readOnly = opts.readOnly ?? false;
  }

  /**
   * Opens and recovers: replays the newest durable state (ignoring a torn log
   * tail), refuses metadata of another main device, and (unless read-only)
   * repairs damaged copies from good ones or writes a new checkpoint when
   * recovery needs one.
   */
  static open(spare: BlockDevice, opts: SafeStoreOpenOptions): SafeMetadataStore {
    const image = readSafeImage(spare, opts.readBuffers);
    try {
      return SafeMetadataStore.recover(spare, image, opts);
    } finally {
      if (opts.readBuffers)
        for (const area of AREAS) opts.readBuffers.giveBack([...image.checkpoint[area][0], ...image.checkpoint[area][1], ...image.log[area]]);
    }
  }

  private static recover(spare: BlockDevice, image: SafeImage, opts: SafeStoreOpenOptions): SafeMetadataStore {
    const result = replayImage(image, opts.fingerprint);
    const decoded = AREAS.flatMap((a) => (image.decoded[a] ? [image.decoded[a] as SafeSuperblock] : []));
    const store = new SafeMetadataStore(
      spare,
      {
        sb: result.superblock,
        state: { remaps: new Map(result.state.remaps), cursor: result.state.cursor },
        nextSlot: result.next.logSlot,
        nextSeq: result.next.seq,
        nextGeneration: result.next.generation,
        maxEpoch: Math.max(...decoded.map((s) => s.checkpointEpoch)),
      },
      opts,
    );
    const actions = planSafeRepair(result);
    store.recovery = { result, actions, applied: false };
    if (result.tornTail) log.info(`${spare.name}: ignored a torn log block at slot ${result.next.logSlot} (an unfinished commit)`);
    if (!store.readOnly && actions.length > 0) {
      const rc = store.applyRepair(image, result, actions);
      if (rc !== OK) throw new MetadataIoError(`${spare.name}: cannot repair the metadata (errno ${rc})`, rc);
      store.recovery.applied = true;
    }
    return store;
  }

  /**
   * Formats the spare: refuses a spare that holds any metadata or unknown
   * data where metadata goes, unless `force`. Old superblocks are zeroed
   * first, so an interrupted format never looks like the old volume.
   */
  static format(spare: BlockDevice, opts: SafeStoreFormatOptions): SafeMetadataStore {
    if (opts.readOnly) throw new MetadataValueError('readOnly', 'cannot format a spare opened read-only');
    if (!opts.force) {
      const content = probeSpare(spare);
      if (content.kind !== 'blank') throw refusal(spare.name, content, 'format');
    }
    const f = formatSafe({
      fingerprint: opts.fingerprint,
      spareSectors: spare.sectors,
      remapBlockSectors: opts.remapBlockSectors,
      logBlocks: opts.logBlocks ?? defaultLogBlocks(spare.sectors),
      checkpointSlotBlocks: opts.checkpointSlotBlocks,
      volumeId: opts.volumeId ?? randomVolumeId(),
    });
    const layout = f.superblock.layout;
    const initial = opts.initial ? validateTable(opts.fingerprint, layout, opts.initial.remaps, opts.initial.cursor) : undefined;
    const zero = new Uint8Array(SAFE_BLOCK_SIZE);
    const must = (rc: IoStatus, what: string): void => {
      if (rc !== OK) throw new MetadataIoError(`${spare.name}: format failed writing ${what} (errno ${rc})`, rc);
    };
    for (const area of AREAS) must(writeBlock(spare, safeBlockSector(layout, area, { region: 'superblock' }), zero), `superblock ${area}`);
    // dm-remap-v4 copy headers inside the spare: zeroed, so the spare is never taken for a v4 spare again
    for (const s of [256, 512, 768, 1024]) if (s + SAFE_BLOCK_SECTORS <= spare.sectors) must(writeBlock(spare, s, zero), `sector ${s}`);
    must(spare.flush(), 'flush');
    const logZeros = new Uint8Array(Math.min(layout.logBlocks, 256) * SAFE_BLOCK_SIZE);
    for (const area of AREAS) {
      for (let i = 0; i < layout.logBlocks; i += 256) {
        const n = Math.min(256, layout.logBlocks - i);
        must(writeBlock(spare, safeBlockSector(layout, area, { region: 'log', index: i }), logZeros.subarray(0, n * SAFE_BLOCK_SIZE)), `log area ${area}`);
      }
      f.checkpointBlocks.forEach((b, i) =>
        must(writeBlock(spare, safeBlockSector(layout, area, { region: 'checkpoint', slot: 0, index: i }), b), `checkpoint ${area}`),
      );
    }
    must(spare.flush(), 'flush');
    must(writeBlock(spare, safeBlockSector(layout, 'A', { region: 'superblock' }), f.superblockBytes.A), 'superblock A');
    must(spare.flush(), 'flush');
    must(writeBlock(spare, safeBlockSector(layout, 'B', { region: 'superblock' }), f.superblockBytes.B), 'superblock B');
    must(spare.flush(), 'flush');
    const store = new SafeMetadataStore(spare, { sb: f.superblock, state: f.state, nextSlot: 0, nextSeq: 1, nextGeneration: 2, maxEpoch: 1 }, opts);
    if (initial) must(store.replaceTable(initial.remaps, initial.cursor), 'the imported table');
    return store;
  }

  // ---- RemapJournal ----

  recordRemap(mainBlock: number, spareBlock: number, cursor: number): IoStatus {
    this.checkMain(mainBlock);
    const units = dataUnits(this.sb.layout);
    if (!Number.isSafeInteger(spareBlock) || spareBlock < units.first || spareBlock >= units.end) {
      throw new MetadataValueError('spareBlock', `spareBlock must be in the data region [${units.first}, ${units.end - 1}], got ${spareBlock}`);
    }
    this.checkCursor(cursor);
    if (this.readOnly) return EROFS;
    if (this.failure !== OK) return this.failure;
    this.counters.flushes++;
    const barrier = this.spare.flush();
    if (barrier !== OK) return this.fail(barrier, 'flushing the remapped data');
    const records: LogRecord[] = [{ op: 'add', main: mainBlock, spare: spareBlock }];
    const c = Math.max(cursor, this.bufferedCursor);
    if (c > Math.max(spareBlock + 1, this.state.cursor)) records.push({ op: 'cursor', cursor: c });
    return this.append(records);
  }

  recordUnremap(mainBlock: number): IoStatus {
    this.checkMain(mainBlock);
    if (this.readOnly) return EROFS;
    if (this.failure !== OK) return this.failure;
    const records: LogRecord[] = [{ op: 'remove', main: mainBlock }];
    if (this.bufferedCursor > this.state.cursor) records.push({ op: 'cursor', cursor: this.bufferedCursor });
    return this.append(records);
  }

  recordBadSpare(_spareBlock: number, cursor: number): IoStatus {
    this.checkCursor(cursor);
    if (cursor > this.bufferedCursor) this.bufferedCursor = cursor;
    return OK;
  }

  flush(): IoStatus {
    if (this.readOnly) return OK;
    if (this.failure !== OK) return this.failure;
    if (this.bufferedCursor > this.state.cursor) return this.append([{ op: 'cursor', cursor: this.bufferedCursor }]);
    return OK;
  }

  // ---- state ----

  get superblock(): SafeSuperblock {
    return this.sb;
  }

  get layout(): SafeLayout {
    return this.sb.layout;
  }

  get fingerprint(): DeviceFingerprint {
    return this.sb.fingerprint;
  }

  /** The committed table (main block -> spare block). */
  get remaps(): ReadonlyMap<number, number> {
    return this.state.remaps;
  }

  get cursor(): number {
    return this.state.cursor;
  }

  /** Log slot the next commit goes to. */
  get logSlot(): number {
    return this.nextSlot;
  }

  /** Sectors reserved at the start of the spare (area A). */
  get reservedStartSectors(): number {
    return this.sb.layout.dataStartSector;
  }

  /** Sectors reserved at the end of the spare (area B, plus a tail shorter than a 4 KiB block). */
  get reservedEndSectors(): number {
    return this.spare.sectors - this.sb.layout.dataEndSector;
  }

  get failed(): boolean {
    return this.failure !== OK;
  }

  stats(): SafeStoreStats {
    return { ...this.counters, failed: this.failed };
  }

  /** What SafeRemapTarget needs to run on this store. */
  targetOptions(): {
    journal: RemapJournal;
    reservedSectors: number;
    reservedEndSectors: number;
    restored: { remaps: Array<[number, number]>; cursor: number };
  } {
    return {
      journal: this,
      reservedSectors: this.reservedStartSectors,
      reservedEndSectors: this.reservedEndSectors,
      restored: { remaps: [...this.state.remaps.entries()], cursor: this.state.cursor },
    };
  }

  /** Writes a checkpoint of the committed table now. */
  checkpoint(): IoStatus {
    if (this.readOnly) return EROFS;
    if (this.failure !== OK) return this.failure;
    return this.checkpointNow();
  }

  /**
   * Replaces the whole table (import): validated against this layout and the
   * main device, then written as a new checkpoint, atomically.
   */
  replaceTable(remaps: Iterable<readonly [number, number]>, cursor: number): IoStatus {
    const table = validateTable(this.sb.fingerprint, this.sb.layout, remaps, cursor);
    if (this.readOnly) return EROFS;
    if (this.failure !== OK) return this.failure;
    const previous = { remaps: new Map(this.state.remaps), cursor: this.state.cursor };
    this.state.remaps = table.remaps;
    this.state.cursor = table.cursor;
    const rc = this.checkpointNow();
    if (rc !== OK) {
      this.state.remaps = previous.remaps;
      this.state.cursor = previous.cursor;
    }
    return rc;
  }

  close(): void {
    if (!this.readOnly && this.failure === OK) this.flush();
  }

  // ---- internals ----

  private checkMain(mainBlock: number): void {
    const n = mainUnits(this.sb.fingerprint, this.sb.layout);
    if (!Number.isSafeInteger(mainBlock) || mainBlock < 0 || mainBlock >= n) {
      throw new MetadataValueError('mainBlock', `main block must be in [0, ${n - 1}], got ${mainBlock}`);
    }
  }

  private checkCursor(cursor: number): void {
    const units = dataUnits(this.sb.layout);
    if (!Number.isSafeInteger(cursor) || cursor < units.first || cursor > units.end) {
      throw new MetadataValueError('cursor', `cursor must be in [${units.first}, ${units.end}], got ${cursor}`);
    }
  }

  private fail(rc: IoStatus, doing: string): IoStatus {
    this.failure = rc;
    log.error(`${this.spare.name}: metadata store failed ${doing} (errno ${rc}); no further remaps are committed until it is reopened`);
    return rc;
  }

  private writeMeta(sector: number, bytes: Uint8Array, fua = false): IoStatus {
    return writeBlock(this.spare, sector, bytes, fua);
  }

  private sync(): IoStatus {
    this.counters.flushes++;
    return this.spare.flush();
  }

  /** Steps 2 and 3 of the commit protocol. */
  private append(records: LogRecord[]): IoStatus {
    if (records.length > LOG_RECORDS_PER_BLOCK) throw new MetadataValueError('records', `at most ${LOG_RECORDS_PER_BLOCK} records per commit`);
    if (this.nextSlot >= this.sb.layout.logBlocks) {
      const rc = this.checkpointNow();
      if (rc !== OK) return rc;
    }
    const slot = this.nextSlot;
    const bytes = encodeLogBlock({ volumeId: this.sb.volumeId, epoch: this.sb.checkpointEpoch, seq: this.nextSeq, records });
    const fua = this.durability === 'fua';
    for (const area of AREAS) {
      const rc = this.writeMeta(safeBlockSector(this.sb.layout, area, { region: 'log', index: slot }), bytes, fua);
      if (rc !== OK) return this.fail(rc, `writing log slot ${slot} in area ${area}`);
    }
    if (!fua) {
      const rc = this.sync();
      if (rc !== OK) return this.fail(rc, `flushing log slot ${slot}`);
    }
    this.nextSlot++;
    this.nextSeq++;
    applyRecords(this.state, records);
    if (this.bufferedCursor <= this.state.cursor) this.bufferedCursor = 0;
    this.counters.commits++;
    this.counters.logBlocksWritten++;
    return OK;
  }

  private checkpointNow(): IoStatus {
    const state: SafeState = { remaps: this.state.remaps, cursor: Math.max(this.state.cursor, this.bufferedCursor) };
    let plan: ReturnType<typeof planCheckpoint>;
    try {
      // the epoch goes above every epoch seen, so no log block of an abandoned epoch can be taken for the new one
      plan = planCheckpoint({ ...this.sb, checkpointEpoch: this.maxEpoch }, state, this.nextSeq, this.nextGeneration);
    } catch (e) {
      if (e instanceof MetadataValueError) return this.fail(ENOSPC, `planning a checkpoint: ${e.message}`);
      throw e;
    }
    const { layout } = this.sb;
    const slot = plan.superblock.checkpointSlot;
    for (const area of AREAS) {
      for (let i = 0; i < plan.checkpointBlocks.length; i++) {
        const rc = this.writeMeta(safeBlockSector(layout, area, { region: 'checkpoint', slot, index: i }), plan.checkpointBlocks[i]);
        if (rc !== OK) return this.fail(rc, `writing checkpoint block ${i} in area ${area}`);
      }
    }
    let rc = this.sync();
    if (rc !== OK) return this.fail(rc, 'flushing a checkpoint');
    for (const area of AREAS) {
      rc = this.writeMeta(safeBlockSector(layout, area, { region: 'superblock' }), plan.superblockBytes[area]);
      if (rc === OK) rc = this.sync();
      if (rc !== OK) return this.fail(rc, `writing superblock ${area}`);
    }
    this.sb = plan.superblock;
    this.maxEpoch = plan.superblock.checkpointEpoch;
    this.nextGeneration = plan.superblock.generation + 1;
    this.nextSlot = 0;
    this.state.cursor = state.cursor;
    this.bufferedCursor = 0;
    this.counters.checkpoints++;
    return OK;
  }

  private applyRepair(image: SafeImage, result: ReplayResult, actions: SafeRepairAction[]): IoStatus {
    if (actions.some((a) => a.kind === 'checkpoint')) return this.checkpointNow();
    const layout = result.superblock.layout;
    const other = (a: Area): Area => (a === 'A' ? 'B' : 'A');
    const superblocks: Area[] = [];
    for (const a of actions) {
      let rc: IoStatus = OK;
      if (a.kind === 'checkpoint-block') {
        const src = image.checkpoint[other(a.area)][a.slot][a.index];
        if (src) rc = this.writeMeta(safeBlockSector(layout, a.area, { region: 'checkpoint', slot: a.slot, index: a.index }), src);
      } else if (a.kind === 'log-block') {
        const src = image.log[other(a.area)][a.index];
        if (src) rc = this.writeMeta(safeBlockSector(layout, a.area, { region: 'log', index: a.index }), src);
      } else if (a.kind === 'superblock') superblocks.push(a.area);
      if (rc !== OK) return this.fail(rc, `repairing ${describeRepairAction(a)}`);
    }
    let rc = this.sync();
    if (rc !== OK) return this.fail(rc, 'flushing repairs');
    for (const area of superblocks) {
      rc = this.writeMeta(safeBlockSector(layout, area, { region: 'superblock' }), encodeSuperblock(result.superblock, area));
      if (rc === OK) rc = this.sync();
      if (rc !== OK) return this.fail(rc, `rewriting superblock ${area}`);
    }
    return OK;
  }
}
