/**
 * The `dm-remap-v4` policy: what the built dm-remap-v4 module does to I/O,
 * including the data it loses (see ../shared/design/dm-remap-v4.md).
 *
 * Where that document is silent this follows the module's sources:
 *   - the 256-slot cache starts zero-filled, so a request that starts at
 *     sector 0 counts as a cache (and fast-path) hit before any remap exists;
 *     a cached spare sector of 0 means "no remap" and falls through to the
 *     hash lookup;
 *   - status token 14 is (spare_sectors - main_sectors) mod 2^32 (the
 *     document names it spare_sectors; its own example line says otherwise);
 *   - the `errors` and `slow_path_hits` tokens are never incremented;
 *     remapped_sectors counts remap activations;
 *   - flushes never reach the devices (the target declares no flush support:
 *     the block layer completes them at once) and discards fail EOPNOTSUPP;
 *   - clear_stats resets reads, writes, remapped reads, errors, total, normal,
 *     remapped I/Os, remapped sectors and latencies, and nothing else.
 * Where the sources contradict the document, the document wins: a remap takes
 * effect as soon as it is made (in the sources new entries stay PENDING, and
 * are skipped, until the table is loaded again).
 */
import { type BlockDevice, type IoStatus, type LogicalBlockSize, EIO, EOPNOTSUPP, OK, SECTOR_SHIFT, bufferSectors } from '../block/device.js';
import { type ControlTarget, MessageError, TableError } from '../control/target.js';
import { type Clock, realClock } from '../util/clock.js';
import { simpleStrtoull } from '../util/kernel-parse.js';
import { log } from '../util/log.js';
import { type MinSpareParams, v4MinSpare } from './min-spare.js';
import { RemapTable } from './remap-table.js';
import type { TableLine } from '../control/table-line.js';

export const V4_TARGET_NAME = 'dm-remap-v4';
export const V4_STATUS_VERSION = 'v4.0-phase1.4';
const CACHE_SLOTS = 256;
const HEALTH_INTERVAL_NS = 300e9;
const MAX_HOTSPOTS = 32;
const MIN_MAIN_SECTORS = 2048;
const EEXIST = 17;

export interface V4Options extends MinSpareParams {
  main: BlockDevice;
  spare: BlockDevice;
  /** Paths as given in the table line (echoed by table and status). */
  mainPath?: string;
  sparePath?: string;
  clock?: Clock;
}

/** A remap as the module keeps it (and persists it). */
export interface V4RemapEntry {
  originalSector: number;
  spareSector: number;
  timeNs: number;
  errorCount: number;
}

/** Something told about each new remap: the metadata writer plugs in here. */
export type V4RemapListener = (target: DmRemapV4Target, entry: V4RemapEntry) => void;

export class DmRemapV4Target implements BlockDevice, ControlTarget {
  readonly targetType = V4_TARGET_NAME;
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  readonly main: BlockDevice;
  readonly spare: BlockDevice;
  readonly mainPath: string;
  readonly sparePath: string;
  /** spare_sectors / 2: how many remaps the bump allocator can hand out. */
  readonly spareCapacity: number;
  private readonly clock: Clock;
  private readonly remapTable: RemapTable;
  /** Entries in creation order (the order the module persists them). */
  readonly entries: V4RemapEntry[] = [];
  private nextSpareSector = 0;
  private readonly cache = new Float64Array(CACHE_SLOTS * 2); // [original, remapped] per slot, zero-filled
  private listeners: V4RemapListener[] = [];

  // counters, named as in the module
  private reads = 0;
  private writes = 0;
  private remappedReads = 0;
  private readonly errorCount = 0; // the module never increments it
  private activeMappings = 0;
  private ioOperations = 0;
  private totalMapTimeNs = 0;
  private peakThroughput = 0;
  private totalIos = 0;
  private normalIos = 0;
  private remappedIos = 0;
  private ioErrors = 0;
  private remappedSectors = 0;
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
    this.logicalBlockSize = main.logicalBlockSize;
    this.spareCapacity = Math.floor(spare.sectors / 2);
    this.clock = opts.clock ?? realClock;
    this.remapTable = new RemapTable({ keySpace: main.sectors });
    this.nextHealthRunNs = this.clock.nowNs() + HEALTH_INTERVAL_NS;
  }

  /** Builds the target from a table line's arguments (`<main> <spare>`), as the module's constructor does. */
  static fromTable(line: TableLine, open: (path: string) => BlockDevice, params: MinSpareParams & { clock?: Clock } = {}): DmRemapV4Target {
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

  onRemap(listener: V4RemapListener): void {
    this.listeners.push(listener);
  }

  /** Restores persisted entries (the module's deferred metadata load): lookups see them, counters do not. */
  restore(entries: Iterable<V4RemapEntry>): number {
    let n = 0;
    for (const e of entries) {
      this.entries.push({ ...e });
      if (e.originalSector < this.sectors) this.remapTable.set(e.originalSector, e.spareSector);
      n++;
    }
    return n;
  }

  // ---- data path ----

  read(sector: number, buf: Uint8Array): IoStatus {
    return this.io(false, sector, buf);
  }

  write(sector: number, buf: Uint8Array): IoStatus {
    return this.io(true, sector, buf); // FUA is dropped: the target declares no flush support
  }

  flush(): IoStatus {
    return OK; // completed by the block layer; never reaches main or spare
  }

  discard(): IoStatus {
    return EOPNOTSUPP;
  }

  close(): void {
    this.remapTable.close();
    this.main.close();
    this.spare.close();
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
      const remapped = this.remapTable.get(sector);
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
    if (toSpare && at + count > this.spare.sectors) status = EIO; // past the spare's end: the spare fails it
    else status = isWrite ? dev.write(at, buf) : dev.read(at, buf);

    const lat = this.clock.nowNs() - this.lastIoTimeNs;
    this.totalLatencyNs += lat;
    if (lat > this.maxLatencyNs) this.maxLatencyNs = lat;
    if (status !== OK) this.endIoError(sector, status, toSpare, isWrite);
    return status;
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

  /** end_io() on an error: log, count, and (for main) remap the failing sector. The error still reaches the caller. */
  private endIoError(sector: number, status: IoStatus, fromSpare: boolean, isWrite: boolean): void {
    log.warn(`I/O error detected on sector ${sector} (error=-${status}, op=${isWrite ? 'WRITE' : 'READ'})`);
    if (fromSpare) return; // errors from the spare are only logged
    this.ioErrors++;
    this.analyzeError(sector);
    if (this.remapTable.get(sector) >= 0) return;
    if (this.nextSpareSector >= this.spareCapacity) {
      log.error(`No spare sectors available for write-ahead remap of sector ${sector}`);
      return;
    }
    const spare = this.nextSpareSector++;
    this.addRemap(sector, spare, 1);
  }

  private addRemap(original: number, spare: number, errorCount: number): V4RemapEntry {
    const entry: V4RemapEntry = { originalSector: original, spareSector: spare, timeNs: Date.now() * 1e6, errorCount };
    this.entries.push(entry);
    this.activeMappings++;
    this.growHashModel();
    if (original < this.sectors) this.remapTable.set(original, spare);
    const slot = (original % CACHE_SLOTS) * 2;
    this.cache[slot] = original;
    this.cache[slot + 1] = spare;
    this.remappedSectors++;
    log.info(`Added remap entry: sector ${original} -> ${spare}`);
    for (const l of this.listeners) l(this, entry);
    return entry;
  }

  private growHashModel(): void {
    const load = Math.floor((this.entries.length * 100) / this.hashBuckets);
    if (load > 150) this.hashBuckets *= 2;
    else if (load < 50 && this.hashBuckets > 64) this.hashBuckets /= 2;
  }

  private analyzeError(sector: number): void {
    if (!this.hotspots.includes(sector) && this.hotspots.length < MAX_HOTSPOTS) this.hotspots.push(sector);
    if (this.lastErrorSector === sector) this.consecutiveErrors++;
    else {
      this.consecutiveErrors = 1;
      this.lastErrorSector = sector;
    }
    if (this.consecutiveErrors > 5) this.healthScore = Math.min(this.healthScore + 10, 100);
  }

  /** The module's 300-second health work: it reads nothing, it recomputes a score. */
  private runHealthIfDue(): void {
    const now = this.clock.nowNs();
    while (now >= this.nextHealthRunNs) {
      this.nextHealthRunNs += HEALTH_INTERVAL_NS;
      this.healthScore = this.computeHealthScore();
      this.scanProgress += 1024;
      if (this.scanProgress >= this.sectors) {
        this.scanProgress = 0;
        this.healthScans++;
        log.info(`Health scan completed. Health score: ${this.healthScore}/100, hotspots: ${this.hotspots.length}`);
      }
    }
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

  /** The 28 status tokens after `0 <len> dm-remap-v4`. */
  statusTokens(): string[] {
    this.runHealthIfDue();
    const avg = this.ioOperations > 0 ? Math.floor(this.totalMapTimeNs / this.ioOperations) : 0;
    const lookups = this.cacheHits + this.cacheMisses;
    const hitRate = lookups > 0 ? Math.floor((this.cacheHits * 100) / lookups) : 0;
    const spareToken = (this.spare.sectors - this.sectors) >>> 0;
    return [
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
      this.logicalBlockSize,
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
      this.healthScore,
      this.hotspots.length,
      hitRate,
      'operational',
      'real',
    ].map(String);
  }

  status(): string {
    return `0 ${this.sectors} ${V4_TARGET_NAME} ${this.statusTokens().join(' ')}`;
  }

  message(args: string[]): string {
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
        if (b < this.sectors && this.remapTable.get(b) >= 0) throw new MessageError('Failed to add remap: -17', EEXIST);
        this.addRemap(b, Number(spare), 1);
        return `Created test remap: bad_sector=${bad} spare_sector=${spare} (metadata write requested)`;
      }
      default:
        throw new MessageError(`Unknown command '${args[0]}'. Try 'help'`, 22);
    }
  }

  /** Model-only view for JSON results and tests. */
  snapshot(): { remaps: number; nextSpareSector: number; spareCapacity: number; hashBuckets: number; ioErrors: number; sectorsPerRemap: number } {
    return {
      remaps: this.entries.length,
      nextSpareSector: this.nextSpareSector,
      spareCapacity: this.spareCapacity,
      hashBuckets: this.hashBuckets,
      ioErrors: this.ioErrors,
      sectorsPerRemap: this.logicalBlockSize >>> SECTOR_SHIFT,
    };
  }

  /** The spare sector `sector` is remapped to, or -1. */
  lookup(sector: number): number {
    return sector < this.sectors ? this.remapTable.get(sector) : -1;
  }
}
