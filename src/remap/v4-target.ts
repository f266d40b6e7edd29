/**
 * The `dm-remap-v4` policy: what the built dm-remap-v4 module does, including
 * the data it loses and the ways it hangs (read from its source,
 * github amigatomte/dm-remap at commit ee8a282, and checked by `remapsim
 * compare` against the loaded module, whose findings win where they differ).
 *
 * The module as it runs (checked against the kernel in the VM lane):
 *   - map(): a request goes whole to main, or whole to the spare when its
 *     FIRST sector has an ACTIVE remap (a 256-slot cache first, then the hash
 *     table; among duplicates of a sector the newest wins). Never split.
 *   - end_io(): an error from main reaches the caller; the module then queues
 *     work on its one-at-a-time work queue: error analysis (health counters),
 *     then a write-ahead remap of the request's sector as the bio reports it
 *     at completion (under dm-dust, the start of the request's last
 *     dust-block piece: dm split the bio and kept the remainder's position).
 *   - New remaps stay PENDING for ever: the work adds the entry as pending,
 *     writes the metadata, and then looks the entry up to activate it with
 *     the lookup that skips pending entries, so it never finds it. map() skips
 *     them too: a remap made while the table is loaded is never used. The
 *     next failure of the same sector adds another entry and spends another
 *     spare sector. Only a table load (deferred metadata read) makes
 *     persisted entries ACTIVE.
 *   - The status handler calls mutex_trylock() and treats 0 as success: a
 *     status call that gets the health mutex keeps it (and shows the default
 *     health 100 and 0 hotspots); the next one fails to get it, reads the
 *     real values and unlocks it. While a status call holds it, error
 *     analysis blocks, and with it every later work item: no remaps are made,
 *     and the destructor's drain_workqueue() never returns (remove hangs).
 *   - Metadata goes through dm-bufio: a write fills the five 128 KiB buffers
 *     (metadata.ts), which reach the spare on dm-bufio's timer or when the
 *     target is destroyed (the store models that, see v4-store.ts).
 *   - presuspend stops the metadata thread, cancels pending work and frees
 *     every remap in memory; nothing restarts them on resume. A second
 *     presuspend (remove after suspend and resume) stops the stopped thread:
 *     the kernel oopses (NULL pointer dereference in kthread_stop).
 *   - Message replies never reach the caller (the handler returns 0, not 1:
 *     DM_DATA_OUT_FLAG is never set); errors do.
 *   - No flush, FUA or discard support: the block layer completes flushes at
 *     once and strips FUA; discards fail EOPNOTSUPP.
 *   - status token 14 is the spare's size in sectors (mod 2^32); the
 *     `errors` and `slow_path_hits` tokens are never incremented; the 256-slot
 *     cache starts zero-filled, so a request at sector 0 counts a cache hit.
 */
import type { V4MetadataSink, V4TargetEntry } from '../metadata/journal.js';
import { type BlockDevice, type IoStatus, type LogicalBlockSize, EIO, EOPNOTSUPP, OK, SECTOR_SHIFT, bufferSectors } from '../block/device.js';
import { type ControlTarget, MessageError, TableError } from '../control/target.js';
import { type Clock, realClock } from '../util/clock.js';
import { simpleStrtoull } from '../util/kernel-parse.js';
import { log } from '../util/log.js';
import { type MinSpareParams, v4MinSpare } from '../metadata/min-spare.js';
import { RemapTable } from '../block/remap-table.js';
import type { TableLine } from '../control/table-line.js';

export const V4_TARGET_NAME = 'dm-remap-v4';
export const V4_STATUS_VERSION = 'v4.0-phase1.4';
const CACHE_SLOTS = 256;
const HEALTH_INTERVAL_NS = 300e9;
/** Sectors the health work's scan position moves each run. */
const HEALTH_SCAN_STEP = 1024;
const MAX_HOTSPOTS = 32;
const MIN_MAIN_SECTORS = 2048;
const EEXIST = 17;

/**
 * Where the module believes a failed request failed: the bio's sector as the
 * layer below leaves it at completion. 'first': the request's first sector.
 * 'dm-split': the device below is a dm target that splits requests into
 * pieces of this many sectors (dm-dust: its block size); dm resubmits the
 * remainder, so the sector is the start of the last piece.
 */
export type V4FailedSectorRule = { kind: 'first' } | { kind: 'dm-split'; sectors: number };

export interface V4Options extends MinSpareParams {
  main: BlockDevice;
  spare: BlockDevice;
  /** Paths as given in the table line (echoed by table and status). */
  mainPath?: string;
  sparePath?: string;
  clock?: Clock;
  /** Default { kind: 'first' }. */
  failedSector?: V4FailedSectorRule;
}

/** A remap as the module keeps it (and persists it). */
/** What a call into the module does to the caller: returns, never returns, or oopses the kernel. */
export type V4CallOutcome = 'ok' | 'hang' | 'oops';

type Work = 'analysis' | 'writeahead' | 'sync';

/** One thing the module did, in the order it did it (what its kernel log says). */
export interface V4Event {
  kind: 'io-error' | 'writeahead' | 'remap-added' | 'no-spare' | 'already-remapped' | 'metadata-write' | 'analysis-blocked' | 'analysis' | 'restored';
  sector?: number;
  spare?: number;
}

export class DmRemapV4Target implements BlockDevice, ControlTarget {
  readonly targetType = V4_TARGET_NAME;
  readonly name: string;
  readonly sectors: number;
  /** The dm device's: 512 whatever main's is (the target reports no devices, so dm keeps the stacking default). */
  readonly logicalBlockSize: LogicalBlockSize = 512;
  /** main's logical block size (status token 12); requests not aligned to it fail on main. */
  readonly mainBlockSize: LogicalBlockSize;
  readonly main: BlockDevice;
  readonly spare: BlockDevice;
  readonly mainPath: string;
  readonly sparePath: string;
  /** spare_sectors / 2: how many remaps the bump allocator can hand out. */
  readonly spareCapacity: number;
  /** The module's messages never reach the caller (no DM_DATA_OUT_FLAG). */
  readonly repliesToMessages = false;
  private readonly clock: Clock;
  private readonly failedRule: V4FailedSectorRule;
  /** Active remaps, for lookups (a later set of the same sector wins, as the newest entry does in the hash chain). */
  private readonly active: RemapTable;
  /** The module's remap list, in list order (cleared by presuspend). */
  readonly entries: V4TargetEntry[] = [];
  private nextSpareSector = 0;
  private readonly cache = new Float64Array(CACHE_SLOTS * 2); // [original, remapped] per slot, zero-filled
  private sink: V4MetadataSink | undefined;
  /** Told of everything the module does (what its kernel log says), in order. */
  private readonly listeners: Array<(e: V4Event) => void> = [];

  // the work queue (alloc_workqueue(..., max_active 1)) and its state
  private readonly queue: Work[] = [];
  private blockedAnalysisSector: number | undefined;
  private pendingErrorSector = 0;
  private pendingRemapSector = 0;
  private metadataDirty = false;
  private deviceActive = true;
  private threadAlive = true;
  private healthMutexHeld = false;
  private destroyed = false;

  // counters, named as in the module
  private reads = 0;
  private writes = 0;
  private remappedReads = 0;
  private readonly errorCount = 0; // never incremented by the module
  private activeMappings = 0;
  private ioOperations = 0;
  private totalMapTimeNs = 0;
  private peakThroughput = 0;
  private totalIos = 0;
  private normalIos = 0;
  private remappedIos = 0;
  private ioErrors = 0;
  private remappedSectors = 0; // counts activations, which never happen while loaded
  private totalLatencyNs = 0;
  private maxLatencyNs = 0;
  private lastIoTimeNs = 0;
  private cacheHits = 0;
  private cacheMisses = 0;
  private fastPathHits = 0;
  private readonly slowPathHits = 0; // never incremented by the module
  /** The module's remap hash: 64 buckets, doubled when load > 150%, halved when < 50% (min 64). */
  private hashBuckets = 64;
  // health
  private healthScore = 100;
  private healthScans = 0;
  private scanProgress = 0;
  private readonly hotspots: number[] = [];
  private consecutiveErrors = 0;
  private lastErrorSector = 0;
  private nextHealthRunNs: number;

  constructor(opts: V4Options) {
    const { main, spare } = opts;
    this.main = main;
    this.spare = spare;
    this.mainPath = opts.mainPath ?? main.name;
    this.sparePath = opts.sparePath ?? spare.name;
    this.name = `${V4_TARGET_NAME}(${this.mainPath},${this.sparePath})`;
    // the module's error text, then (in brackets) the line it logs
    const incompatible = (why: string, errno: number): TableError => new TableError(`Device compatibility validation failed (${why})`, errno);
    if (main.logicalBlockSize !== spare.logicalBlockSize) {
      throw incompatible(`Sector size mismatch: main=${main.logicalBlockSize}, spare=${spare.logicalBlockSize} bytes`, 22);
    }
    if (main.sectors < MIN_MAIN_SECTORS) throw incompatible(`Main device too small: ${main.sectors} < ${MIN_MAIN_SECTORS} sectors`, 28);
    const minSpare = v4MinSpare(main.sectors, main.logicalBlockSize, opts);
    if (spare.sectors < minSpare) throw incompatible(`Spare device insufficient: ${spare.sectors} < ${minSpare} sectors`, 28);
    this.sectors = main.sectors;
    this.mainBlockSize = main.logicalBlockSize;
    this.spareCapacity = Math.floor(spare.sectors / 2);
    this.clock = opts.clock ?? realClock;
    this.failedRule = opts.failedSector ?? { kind: 'first' };
    this.active = new RemapTable({ keySpace: main.sectors });
    this.nextHealthRunNs = this.clock.nowNs() + HEALTH_INTERVAL_NS;
  }

  /**
   * The table holding this target was loaded: dm's IMA measurement calls the
   * target's status function (STATUSTYPE_IMA), which takes or releases the
   * health mutex like any status call.
   */
  tableLoaded(): void {
    this.statusTokens();
  }

  /** Builds the target from a table line's arguments (`<main> <spare>`), as the module's constructor does. */
  static fromTable(
    line: TableLine,
    open: (path: string) => BlockDevice,
    params: MinSpareParams & { clock?: Clock; failedSector?: V4FailedSectorRule } = {},
  ): DmRemapV4Target {
    if (line.args.length !== 2) throw new TableError('Invalid argument count: dm-remap-v4 <main_device> <spare_device>', 22);
    const [mainPath, sparePath] = line.args;
    let main: BlockDevice;
    try {
      main = open(mainPath);
    } catch (err) {
      throw new TableError(`Cannot open main device: ${(err as Error).message}`, 2);
    }
    let spare: BlockDevice;
    try {
      spare = open(sparePath);
    } catch (err) {
      main.close();
      throw new TableError(`Cannot open spare device: ${(err as Error).message}`, 2);
    }
    try {
      return new DmRemapV4Target({ main, spare, mainPath, sparePath, ...params });
    } catch (err) {
      main.close();
      spare.close();
      throw err;
    }
  }

  /** Where metadata writes go. With `initial`, no valid copy was found: the metadata thread writes the empty table, as the module does. */
  attachMetadata(sink: V4MetadataSink, opts: { initial?: boolean } = {}): void {
    this.sink = sink;
    if (opts.initial) {
      this.metadataDirty = true;
      this.requestThreadWrite();
    }
  }

  /** The deferred metadata read: persisted entries come back ACTIVE (lookups see them; the status counters do not). */
  restore(entries: Iterable<Omit<V4TargetEntry, 'pending'>>): number {
    let n = 0;
    for (const e of entries) {
      this.entries.push({ ...e, pending: false });
      if (e.originalSector < this.sectors) this.active.set(e.originalSector, e.spareSector);
      this.note({ kind: 'restored', sector: e.originalSector, spare: e.spareSector });
      n++;
    }
    return n;
  }

  // ---- data path ----

  read(sector: number, buf: Uint8Array): IoStatus {
    return this.io(false, sector, buf);
  }

  write(sector: number, buf: Uint8Array): IoStatus {
    return this.io(true, sector, buf); // FUA is stripped: the target declares no flush support
  }

  flush(): IoStatus {
    return OK; // completed by the block layer; never reaches main or spare
  }

  discard(): IoStatus {
    return EOPNOTSUPP;
  }

  /** Removing the device: presuspend (unless suspended) and the destructor. Returns what the remove call does. */
  remove(opts: { suspended?: boolean } = {}): V4CallOutcome {
    if (!opts.suspended) {
      const pre = this.presuspend();
      if (pre !== 'ok') return pre;
    }
    return this.destroy();
  }

  close(): void {
    if (!this.destroyed) this.destroy();
  }

  /** presuspend: on every suspend and on the remove of a device that is not suspended. */
  presuspend(): V4CallOutcome {
    this.deviceActive = false;
    if (!this.threadAlive) return 'oops'; // kthread_stop() on the thread the last presuspend already stopped
    this.threadAlive = false;
    // cancel_work() takes pending items off the queue; the write-ahead work is not cancelled, nor one already running
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i] !== 'writeahead') this.queue.splice(i, 1);
    this.entries.length = 0;
    this.active.clear();
    return 'ok';
  }

  /** The destructor: drain the work queue, then dm-bufio writes back and the devices close. */
  destroy(): V4CallOutcome {
    this.deviceActive = false;
    if (this.blockedAnalysisSector !== undefined && this.healthMutexHeld) return 'hang'; // drain_workqueue() waits for work that waits for a mutex nobody will unlock
    this.runQueue();
    this.destroyed = true;
    this.sink?.destroy();
    this.active.close();
    this.main.close();
    this.spare.close();
    return 'ok';
  }

  private io(isWrite: boolean, sector: number, buf: Uint8Array): IoStatus {
    const count = bufferSectors(this, buf);
    this.runHealthIfDue();
    const t0 = this.clock.nowNs();
    if (sector >= this.sectors || sector + count > this.sectors) {
      log.error(`I/O beyond device bounds: sector ${sector} >= ${this.sectors}`);
      return EIO;
    }
    if (isWrite) this.writes++;
    else this.reads++;
    this.ioOperations++;
    this.totalIos++;
    this.lastIoTimeNs = t0;

    let dev = this.main;
    let at = sector;
    let toSpare = false;
    const cached = this.cacheLookup(sector);
    if (cached > 0) {
      this.remappedIos++;
      dev = this.spare;
      at = cached;
      toSpare = true;
    } else {
      const remapped = this.active.get(sector);
      if (remapped >= 0) {
        this.remappedIos++;
        if (!isWrite) this.remappedReads++;
        dev = this.spare;
        at = remapped;
        toSpare = true;
      } else {
        this.normalIos++;
      }
    }
    const mapNs = this.clock.nowNs() - t0;
    this.totalMapTimeNs += mapNs;
    if (mapNs > 0) this.peakThroughput = Math.max(this.peakThroughput, Math.floor((buf.length * 1e9) / mapNs));

    let status: IoStatus;
    const alignSectors = this.mainBlockSize >>> SECTOR_SHIFT;
    if (toSpare && at + count > this.spare.sectors)
      status = EIO; // past the spare's end: the spare fails it
    else if (at % alignSectors !== 0 || count % alignSectors !== 0)
      status = EIO; // the device below refuses a request its block size does not divide
    else status = isWrite ? dev.write(at, buf) : dev.read(at, buf);

    const lat = this.clock.nowNs() - this.lastIoTimeNs;
    this.totalLatencyNs += lat;
    if (lat > this.maxLatencyNs) this.maxLatencyNs = lat;
    if (status !== OK) {
      log.warn(`I/O error detected on sector ${sector} (error=-${status}, op=${isWrite ? 'WRITE' : 'READ'})`);
      if (!toSpare) this.handleIoError(this.failedSectorOf(sector, count)); // errors from the spare are only logged
    }
    this.sink?.tick?.(this.clock.nowNs());
    return status;
  }

  private failedSectorOf(sector: number, count: number): number {
    const r = this.failedRule;
    if (r.kind === 'first' || count <= r.sectors) return sector;
    const last = Math.floor((sector + count - 1) / r.sectors) * r.sectors;
    return Math.max(sector, last);
  }

  private cacheLookup(sector: number): number {
    const slot = (sector % CACHE_SLOTS) * 2;
    if (this.cache[slot] === sector) {
      this.cacheHits++;
      this.fastPathHits++;
      return this.cache[slot + 1];
    }
    this.cacheMisses++;
    return 0;
  }

  /** The module's lookup: active entries only. */
  private find(sector: number): boolean {
    return sector < this.sectors && this.active.get(sector) >= 0;
  }

  // ---- the work queue ----

  private handleIoError(sector: number): void {
    this.ioErrors++;
    this.note({ kind: 'io-error', sector });
    this.pendingErrorSector = sector;
    this.queueWork('analysis');
    if (!this.find(sector)) {
      this.pendingRemapSector = sector;
      this.queueWork('writeahead');
    }
    this.runQueue();
  }

  private queueWork(w: Work): void {
    if (!this.queue.includes(w)) this.queue.push(w); // queue_work() on a pending item does nothing
  }

  /** Runs queued work in order until it is empty or error analysis blocks on the health mutex. */
  private runQueue(): void {
    if (this.blockedAnalysisSector !== undefined) {
      if (this.healthMutexHeld) return;
      const s = this.blockedAnalysisSector;
      this.blockedAnalysisSector = undefined;
      this.analyzeError(s);
    }
    while (this.queue.length > 0) {
      const w = this.queue.shift()!;
      if (w === 'analysis') {
        const s = this.pendingErrorSector; // read when the work starts, before it waits for the mutex
        if (this.healthMutexHeld) {
          this.blockedAnalysisSector = s;
          this.note({ kind: 'analysis-blocked', sector: s });
          return;
        }
        this.analyzeError(s);
      } else if (w === 'writeahead') this.writeAhead();
      else if (this.deviceActive && this.metadataDirty) this.requestThreadWrite();
    }
  }

  private writeAhead(): void {
    const sector = this.pendingRemapSector;
    this.note({ kind: 'writeahead', sector });
    if (this.find(sector)) {
      this.note({ kind: 'already-remapped', sector });
      return;
    }
    if (this.nextSpareSector >= this.spareCapacity) {
      log.error(`No spare sectors available for write-ahead remap of sector ${sector}`);
      this.note({ kind: 'no-spare', sector });
      return;
    }
    const spare = this.nextSpareSector++;
    this.addEntry(sector, spare);
    this.writeMetadata();
    // activation looks the entry up with the lookup that skips pending entries: nothing is activated
    this.metadataDirty = true;
    this.queueWork('sync');
  }

  private addEntry(original: number, spare: number): V4TargetEntry {
    const entry: V4TargetEntry = { originalSector: original, spareSector: spare, timeNs: Date.now() * 1e6, errorCount: 1, pending: true };
    this.entries.push(entry);
    this.activeMappings++;
    this.growHashModel();
    this.metadataDirty = true;
    log.info(`Added remap entry: sector ${original} -> ${spare}`);
    this.note({ kind: 'remap-added', sector: original, spare });
    return entry;
  }

  private requestThreadWrite(): void {
    if (this.threadAlive && this.deviceActive && this.metadataDirty) this.writeMetadata();
  }

  private writeMetadata(): void {
    this.note({ kind: 'metadata-write' });
    this.sink?.writeTable(this.entries);
    this.metadataDirty = false;
  }

  /** Calls `listener` with each thing the module does from now on. */
  onEvent(listener: (e: V4Event) => void): void {
    this.listeners.push(listener);
  }

  private note(e: V4Event): void {
    for (const l of this.listeners) l(e);
  }

  private growHashModel(): void {
    const load = Math.floor((this.entries.length * 100) / this.hashBuckets);
    if (load > 150) this.hashBuckets *= 2;
    else if (load < 50 && this.hashBuckets > 64) this.hashBuckets /= 2;
  }

  private analyzeError(sector: number): void {
    this.note({ kind: 'analysis', sector });
    if (!this.hotspots.includes(sector) && this.hotspots.length < MAX_HOTSPOTS) this.hotspots.push(sector);
    if (this.lastErrorSector === sector) this.consecutiveErrors++;
    else {
      this.consecutiveErrors = 1;
      this.lastErrorSector = sector;
    }
    if (this.consecutiveErrors > 5) this.healthScore = Math.min(this.healthScore + 10, 100);
  }

  /** The module's 300-second health work: it reads nothing, it recomputes a score (and waits while a status call holds the mutex). */
  private runHealthIfDue(): void {
    if (!this.deviceActive || this.healthMutexHeld) return;
    const now = this.clock.nowNs();
    if (now < this.nextHealthRunNs) return;
    // every run that fell due since the last call at once: nothing between them changes the score, and
    // the scan position steps by 1024 sectors a run, back to 0 (one scan more) once it passes the end
    const runs = Math.floor((now - this.nextHealthRunNs) / HEALTH_INTERVAL_NS) + 1;
    this.nextHealthRunNs += runs * HEALTH_INTERVAL_NS;
    this.healthScore = this.computeHealthScore();
    const toEnd = Math.max(1, Math.ceil((this.sectors - this.scanProgress) / HEALTH_SCAN_STEP));
    if (runs < toEnd) {
      this.scanProgress += runs * HEALTH_SCAN_STEP;
      return;
    }
    const perScan = Math.max(1, Math.ceil(this.sectors / HEALTH_SCAN_STEP));
    const scans = 1 + Math.floor((runs - toEnd) / perScan);
    this.scanProgress = ((runs - toEnd) % perScan) * HEALTH_SCAN_STEP;
    for (let i = 0; i < scans; i++) {
      this.healthScans++;
      log.info(`Health scan completed. Health score: ${this.healthScore}/100, hotspots: ${this.hotspots.length}`);
    }
  }

  /** Runs the module's timed work that is due (the 300 s health work, dm-bufio's timer) without a status call. */
  runDueWork(): void {
    this.runHealthIfDue();
    this.sink?.tick?.(this.clock.nowNs());
  }

  /** Penalties are subtracted in unsigned 32-bit arithmetic, as in the module (so they can wrap). */
  computeHealthScore(): number {
    let score = 100;
    if (this.totalIos > 0) {
      const rate = Math.floor((this.ioErrors * 10000) / this.totalIos);
      if (rate > 100) score -= 50;
      else if (rate > 10) score -= 20;
      else if (rate > 1) score -= 5;
    }
    if (this.consecutiveErrors > 10) score -= 30;
    else if (this.consecutiveErrors > 5) score -= 15;
    if (this.hotspots.length > 20) score -= 25;
    else if (this.hotspots.length > 10) score -= 10;
    return score >>> 0;
  }

  // ---- control plane ----

  tableArgs(): string {
    return `${this.mainPath} ${this.sparePath}`;
  }

  table(): string {
    return `0 ${this.sectors} ${V4_TARGET_NAME} ${this.tableArgs()}`;
  }

  /**
   * The 28 status tokens after `0 <len> dm-remap-v4`. Like the module's
   * status call this takes the health mutex when it is free (and then shows
   * the defaults) and releases it when it is held (showing the real values).
   */
  statusTokens(): string[] {
    const release = this.beginStatus();
    const health = release ? this.healthScore : 100;
    const hotspots = release ? this.hotspots.length : 0;
    const avg = this.ioOperations > 0 ? Math.floor(this.totalMapTimeNs / this.ioOperations) : 0;
    const lookups = this.cacheHits + this.cacheMisses;
    const hitRate = lookups > 0 ? Math.floor((this.cacheHits * 100) / lookups) : 0;
    const spareToken = this.spare.sectors >>> 0; // a sector_t printed with %u
    const tokens = [
      V4_STATUS_VERSION,
      this.mainPath,
      this.sparePath,
      this.reads,
      this.writes,
      this.remappedReads,
      this.errorCount,
      this.activeMappings,
      this.ioOperations,
      this.totalMapTimeNs,
      avg,
      this.peakThroughput,
      this.mainBlockSize,
      spareToken,
      this.totalIos,
      this.normalIos,
      this.remappedIos,
      this.remappedSectors,
      this.cacheHits,
      this.cacheMisses,
      this.fastPathHits,
      this.slowPathHits,
      this.healthScans,
      health,
      hotspots,
      hitRate,
      'operational',
      'real',
    ].map(String);
    if (release) this.endStatus();
    return tokens;
  }

  /** What a status call does to the target, without its line (the simulator's periodic status). */
  pollStatus(): void {
    if (this.beginStatus()) this.endStatus();
  }

  /** A status call's start: due health work, then the health mutex. True when the call releases it at its end. */
  private beginStatus(): boolean {
    this.runHealthIfDue();
    const release = this.healthMutexHeld;
    this.healthMutexHeld = true;
    return release;
  }

  /** The work that waited for the mutex runs after the call has printed its line. */
  private endStatus(): void {
    this.healthMutexHeld = false;
    this.runQueue();
    this.runHealthIfDue();
  }

  status(): string {
    return `0 ${this.sectors} ${V4_TARGET_NAME} ${this.statusTokens().join(' ')}`;
  }

  /** Runs a message as the module does and returns what the caller receives: nothing (the module's replies are never delivered). Refusals throw. */
  message(args: string[]): string {
    this.messageText(args);
    return '';
  }

  /** The reply text the module's handler formats (and then does not deliver). */
  messageText(args: string[]): string {
    if (args.length === 0) throw new MessageError('Invalid message', 22);
    this.runHealthIfDue();
    const cmd = args[0].toLowerCase();
    switch (cmd) {
      case 'help':
        return 'Commands: help, status, stats, clear_stats, health, cache_stats, test_remap';
      case 'status':
        return `mappings=${this.activeMappings} reads=${this.reads} writes=${this.writes} errors=${this.ioErrors} health=${this.healthScore}%`;
      case 'stats': {
        const avgLatency = this.totalIos > 0 ? Math.floor(this.totalLatencyNs / this.totalIos) : 0;
        return `total_ios=${this.totalIos} normal=${this.normalIos} remapped=${this.remappedIos} errors=${this.ioErrors} remapped_sectors=${this.remappedSectors} avg_latency_ns=${avgLatency} max_latency_ns=${this.maxLatencyNs}`;
      }
      case 'clear_stats':
        this.reads = this.writes = this.remappedReads = 0;
        this.totalIos = this.normalIos = this.remappedIos = this.ioErrors = this.remappedSectors = 0;
        this.totalLatencyNs = this.maxLatencyNs = 0;
        return 'Statistics cleared';
      case 'health':
        return `health_score=${this.healthScore}% scan_count=${this.healthScans} hotspot_sectors=${this.hotspots.length} consecutive_errors=${this.consecutiveErrors} trend=0`;
      case 'cache_stats': {
        const lookups = this.cacheHits + this.cacheMisses;
        const rate = lookups > 0 ? Math.floor((this.cacheHits * 100) / lookups) : 0;
        return `cache_hits=${this.cacheHits} cache_misses=${this.cacheMisses} hit_rate=${rate}% fast_path=${this.fastPathHits} cache_size=${CACHE_SLOTS}`;
      }
      case 'test_remap': {
        if (args.length < 3) throw new MessageError('Usage: test_remap <bad_sector> <spare_sector>', 22);
        const bad = simpleStrtoull(args[1]);
        const spare = simpleStrtoull(args[2]);
        if (bad > BigInt(Number.MAX_SAFE_INTEGER) || spare > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new MessageError('test_remap: sectors beyond 2^53 are not modelled', 34);
        }
        const b = Number(bad);
        if (this.find(b)) throw new MessageError('Failed to add remap: -17', EEXIST);
        this.addEntry(b, Number(spare));
        this.requestThreadWrite();
        return `Created test remap: bad_sector=${bad} spare_sector=${spare} (metadata write requested)`;
      }
      default:
        throw new MessageError(`Unknown command '${args[0]}'. Try 'help'`, 22);
    }
  }

  /** Model-only view for JSON results, reports and tests: reading it changes nothing (a status call would). */
  snapshot(): {
    remaps: number;
    pending: number;
    nextSpareSector: number;
    spareCapacity: number;
    hashBuckets: number;
    ioErrors: number;
    sectorsPerRemap: number;
    healthMutexHeld: boolean;
    workBlocked: boolean;
    metadataThread: boolean;
    /** The health score as the module holds it (a status call may print the default instead). */
    healthScore: number;
  } {
    return {
      remaps: this.entries.length,
      pending: this.entries.filter((e) => e.pending).length,
      nextSpareSector: this.nextSpareSector,
      spareCapacity: this.spareCapacity,
      hashBuckets: this.hashBuckets,
      ioErrors: this.ioErrors,
      sectorsPerRemap: 1,
      healthMutexHeld: this.healthMutexHeld,
      workBlocked: this.blockedAnalysisSector !== undefined,
      metadataThread: this.threadAlive,
      healthScore: this.healthScore,
    };
  }

  /** The spare sector I/O to `sector` goes to (an active remap), or -1. */
  lookup(sector: number): number {
    return sector < this.sectors ? this.active.get(sector) : -1;
  }
}
