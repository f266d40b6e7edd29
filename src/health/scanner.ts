/**
 * The background scanner: reads a device in slices, over and over, at a
 * limited rate, and classifies what does not read well (classify.ts).
 *
 * Driving it: call tick(nowNs) often (between foreground I/Os in the
 * synchronous runner, from a timer on the main thread in the engine, in a
 * loop in `remapsim scan`). Each tick earns rate x elapsed bytes of budget (a
 * token bucket holding at most a quarter second of budget, or one slice) and
 * reads slices while the budget lasts, spending at most `maxTickNs` per tick.
 *
 * Foreground I/O: the scanner is told how many foreground I/Os there have
 * been, either by a counter function (`foreground`, cumulative: a monitor on
 * the safe policy reads the target's own I/O counters, which the engine's
 * worker threads share; a ForegroundTap counts for anything else) or by
 * noteForeground(n). While a foreground I/O was seen in
 * the last `idleNs`, the foreground is busy and the scanner runs at
 * rate x busyFactor (the way md's resync drops to speed_limit_min under load
 * and ZFS delays scrub I/O after recent application I/O); when it is idle
 * the scanner runs at the full rate.
 *
 * Order: `sequential` reads slice after slice; `staggered` (Oprea and Juels,
 * FAST 2010) splits the device into regions and reads the first slice of
 * every region, then the second, and so on, so a cluster of errors anywhere is
 * reached within 1 / regions of a pass.
 */
import { type BlockDevice, SECTOR_SHIFT, SECTOR_SIZE } from '../block/device.js';
import { type Clock, realClock } from '../util/clock.js';
import { type BlockFinding, type BlockSkip, type FindingKind, LatencyMap, SliceClassifier } from './classify.js';

export type ScanOrder = 'sequential' | 'staggered';

export interface ScannerOptions {
  device: BlockDevice;
  clock?: Clock;
  /** Bytes per second while the foreground is idle; 0 = unlimited (default 32 MB/s). */
  rate?: number;
  /** Fraction of the rate while the foreground is busy, 0..1 (default 0.25). */
  busyFactor?: number;
  /** The foreground counts as busy for this long after its last I/O (default 100 ms). */
  idleNs?: number;
  /** Bytes per slice: a whole number of blocks (default 128 KiB). */
  sliceBytes?: number;
  /** Sectors per classification block (default: the device's logical block). */
  blockSectors?: number;
  /** A read slower than this is slow (default 50 ms). */
  slowNs?: number;
  /** Retries of a failing block read before it counts as bad (default 3). */
  retries?: number;
  order?: ScanOrder;
  /** Regions of the staggered order (default 64). */
  staggerRegions?: number;
  /** Cumulative count of foreground I/Os. */
  foreground?: () => number;
  /** Blocks not to read (remapped, pending). */
  skip?: BlockSkip;
  /** Told about each new finding (a block seen for the first time, or with a new kind). */
  onFinding?: (f: BlockFinding) => void;
  /** Most time one tick spends reading (default 20 ms). */
  maxTickNs?: number;
  /** Buckets of the latency map (default 64). */
  mapBuckets?: number;
}

export const SCANNER_DEFAULTS = {
  rate: 32e6,
  busyFactor: 0.25,
  idleNs: 100e6,
  sliceBytes: 128 << 10,
  slowNs: 50e6,
  retries: 3,
  order: 'sequential' as ScanOrder,
  staggerRegions: 64,
  maxTickNs: 20e6,
  mapBuckets: 64,
} as const;

/** Most budget the bucket holds, as time at the current rate. */
const BUCKET_NS = 250e6;
/** Findings kept in the list (counts go on). */
const KEEP_FINDINGS = 10_000;

export class ScannerOptionError extends RangeError {
  override readonly name = 'ScannerOptionError';
}

function check(field: string, v: number, ok: boolean, range: string): void {
  if (!ok || !Number.isFinite(v)) throw new ScannerOptionError(`scanner.${field} must be ${range}, got ${v}`);
}

export interface ScannerStats {
  passes: number;
  /** Share of the current pass done, 0..1. */
  progress: number;
  /** Bytes of the device covered (slices read). */
  bytesScanned: number;
  /** Bytes read in all, classification re-reads included: what the rate limit counts. */
  bytesRead: number;
  slices: number;
  probes: number;
  /** Slice reads that failed. */
  readErrors: number;
  /** Distinct blocks found, by kind. */
  found: Record<FindingKind, number>;
  elapsedNs: number;
  /** Time the foreground was busy. */
  busyNs: number;
  /** Time spent reading. */
  scanNs: number;
  /** Bytes read / elapsed time, per second. */
  effectiveRate: number;
  /** Duration of the last complete pass (0 before the first). */
  lastPassNs: number;
  rate: number;
  busyFactor: number;
}

export class HealthScanner {
  readonly device: BlockDevice;
  readonly clock: Clock;
  readonly rate: number;
  readonly busyFactor: number;
  readonly idleNs: number;
  readonly sliceBytes: number;
  readonly blockSectors: number;
  readonly slowNs: number;
  readonly retries: number;
  readonly order: ScanOrder;
  readonly totalBlocks: number;
  readonly sliceBlocks: number;
  readonly slices: number;
  readonly map: LatencyMap;
  private readonly classifier: SliceClassifier;
  private readonly regions: number;
  private readonly regionLen: number;
  private readonly maxTickNs: number;
  private readonly foreground: (() => number) | undefined;
  private readonly skip: BlockSkip | undefined;
  private readonly onFinding: ((f: BlockFinding) => void) | undefined;
  private pos = 0;
  private doneInPass = 0;
  private tokens = 0;
  private lastTickNs: number | undefined;
  private startNs = 0;
  private passStartNs = 0;
  private noted = 0;
  private lastFg = 0;
  private lastFgNs = -Infinity;
  private readonly known = new Map<number, FindingKind>();
  readonly findings: BlockFinding[] = [];
  private readonly st = { passes: 0, bytesScanned: 0, bytesRead: 0, slices: 0, probes: 0, readErrors: 0, busyNs: 0, scanNs: 0, lastPassNs: 0 };
  private readonly found: Record<FindingKind, number> = { transient: 0, weak: 0, bad: 0 };

  constructor(opts: ScannerOptions) {
    const d = SCANNER_DEFAULTS;
    this.device = opts.device;
    this.clock = opts.clock ?? realClock;
    this.rate = opts.rate ?? d.rate;
    check('rate', this.rate, this.rate >= 0, 'a number of bytes per second >= 0 (0: unlimited)');
    this.busyFactor = opts.busyFactor ?? d.busyFactor;
    check('busyFactor', this.busyFactor, this.busyFactor >= 0 && this.busyFactor <= 1, 'in 0..1');
    this.idleNs = opts.idleNs ?? d.idleNs;
    check('idle', this.idleNs, this.idleNs >= 0, 'a time >= 0');
    this.blockSectors = opts.blockSectors ?? this.device.logicalBlockSize >>> SECTOR_SHIFT;
    const lbsSectors = this.device.logicalBlockSize >>> SECTOR_SHIFT;
    check(
      'blockSize',
      this.blockSectors * SECTOR_SIZE,
      Number.isInteger(this.blockSectors) && this.blockSectors >= lbsSectors && this.blockSectors % lbsSectors === 0 && this.blockSectors <= 2048,
      `a multiple of the device's ${this.device.logicalBlockSize}-byte logical block, at most 1 MiB`,
    );
    const blockBytes = this.blockSectors * SECTOR_SIZE;
    this.sliceBytes = opts.sliceBytes ?? Math.max(d.sliceBytes, blockBytes);
    check(
      'slice',
      this.sliceBytes,
      Number.isInteger(this.sliceBytes) && this.sliceBytes >= blockBytes && this.sliceBytes % blockBytes === 0 && this.sliceBytes <= 64 << 20,
      `a whole number of ${blockBytes}-byte blocks, at most 64 MiB`,
    );
    this.slowNs = opts.slowNs ?? d.slowNs;
    check('slow', this.slowNs, this.slowNs > 0, 'a time > 0');
    this.retries = opts.retries ?? d.retries;
    check('retries', this.retries, Number.isInteger(this.retries) && this.retries >= 0 && this.retries <= 100, 'an integer in 0..100');
    this.order = opts.order ?? d.order;
    if (this.order !== 'sequential' && this.order !== 'staggered')
      throw new ScannerOptionError(`scanner.order must be sequential or staggered, got ${String(this.order)}`);
    this.maxTickNs = opts.maxTickNs ?? d.maxTickNs;
    check('maxTick', this.maxTickNs, this.maxTickNs > 0, 'a time > 0');
    this.totalBlocks = Math.ceil(this.device.sectors / this.blockSectors);
    this.sliceBlocks = this.sliceBytes / blockBytes;
    this.slices = Math.ceil(this.totalBlocks / this.sliceBlocks);
    const regions = this.order === 'staggered' ? (opts.staggerRegions ?? d.staggerRegions) : 1;
    check('staggerRegions', regions, Number.isInteger(regions) && regions >= 1 && regions <= 1e6, 'an integer in 1..1000000');
    this.regions = Math.min(regions, this.slices);
    this.regionLen = Math.ceil(this.slices / this.regions);
    const buckets = opts.mapBuckets ?? d.mapBuckets;
    check('mapBuckets', buckets, Number.isInteger(buckets) && buckets >= 1 && buckets <= 1e6, 'an integer in 1..1000000');
    this.map = new LatencyMap(this.device.sectors, Math.min(buckets, this.slices));
    this.foreground = opts.foreground;
    this.skip = opts.skip;
    this.onFinding = opts.onFinding;
    this.classifier = new SliceClassifier(
      this.device,
      { clock: this.clock, blockSectors: this.blockSectors, slowNs: this.slowNs, retries: this.retries },
      this.sliceBytes,
    );
    this.classifier.map = this.map;
  }

  /** Tells the scanner about `n` foreground I/Os (instead of, or besides, the counter function). */
  noteForeground(n = 1): void {
    this.noted += n;
  }

  private foregroundCount(): number {
    return (this.foreground ? this.foreground() : 0) + this.noted;
  }

  /** Whether the foreground counted as busy at the last tick. */
  get busy(): boolean {
    return this.lastTickNs !== undefined && this.lastTickNs - this.lastFgNs < this.idleNs;
  }

  /** The rate that applies now (bytes/s; 0 = unlimited). */
  get currentRate(): number {
    return this.busy ? this.rate * this.busyFactor : this.rate;
  }

  /** Earns budget for the time since the last tick and reads while it lasts. Returns the bytes read. */
  tick(nowNs: number): number {
    if (this.lastTickNs === undefined) {
      this.lastTickNs = nowNs;
      this.startNs = nowNs;
      this.passStartNs = nowNs;
      this.lastFg = this.foregroundCount();
      return 0;
    }
    const fg = this.foregroundCount();
    if (fg !== this.lastFg) {
      this.lastFg = fg;
      this.lastFgNs = nowNs;
    }
    const dt = Math.max(0, nowNs - this.lastTickNs);
    const busy = nowNs - this.lastFgNs < this.idleNs;
    if (busy) this.st.busyNs += dt;
    this.lastTickNs = nowNs;
    const rate = busy ? this.rate * this.busyFactor : this.rate;
    const unlimited = this.rate === 0;
    if (!unlimited) {
      if (rate <= 0) return 0;
      this.tokens = Math.min(Math.max(this.sliceBytes, (rate * BUCKET_NS) / 1e9), this.tokens + (rate * dt) / 1e9);
    }
    let did = 0;
    const t0 = this.clock.nowNs();
    const passes = this.st.passes;
    while (unlimited || this.tokens >= this.nextSliceBytes()) {
      const bytes = this.scanNext();
      did += bytes;
      if (!unlimited) this.tokens -= bytes;
      // unlimited: a tick ends with its time or at the end of a pass (a clock that stands still would never end it)
      if (this.clock.nowNs() - t0 >= this.maxTickNs || (unlimited && this.st.passes !== passes)) break;
    }
    this.st.scanNs += this.clock.nowNs() - t0;
    return did;
  }

  /** Clock reading when the budget allows the next slice at the current rate (now, when unlimited). */
  nextDueNs(): number {
    const now = this.lastTickNs ?? this.clock.nowNs();
    const rate = this.currentRate;
    if (this.rate === 0) return now;
    if (rate <= 0) return Infinity;
    const need = this.nextSliceBytes() - this.tokens;
    return need <= 0 ? now : now + (need / rate) * 1e9;
  }

  private sliceAt(pos: number): number {
    if (this.regions === 1) return pos;
    const r = pos % this.regions;
    const j = Math.floor(pos / this.regions);
    return r * this.regionLen + j;
  }

  /** Order positions per pass (some are empty in the staggered order). */
  private get positions(): number {
    return this.regions * this.regionLen;
  }

  private currentSlice(): number {
    return this.sliceAt(this.pos);
  }

  private nextSliceBytes(): number {
    const s = this.currentSlice();
    const firstSector = s * this.sliceBlocks * this.blockSectors;
    return Math.min(this.sliceBytes, (this.device.sectors - firstSector) * SECTOR_SIZE);
  }

  /** Moves to the next position that holds a slice; the end of the order ends a pass. */
  private advancePos(): void {
    this.pos++;
    while (this.pos < this.positions && this.sliceAt(this.pos) >= this.slices) this.pos++;
    if (this.pos >= this.positions) {
      this.pos = 0;
      this.doneInPass = 0;
      this.st.passes++;
      const now = this.clock.nowNs();
      this.st.lastPassNs = now - this.passStartNs;
      this.passStartNs = now;
    }
  }

  /** Reads the next slice now, whatever the budget; returns the bytes read (the slice's, less skipped blocks, plus re-reads). */
  scanNext(): number {
    const s = this.currentSlice();
    const first = s * this.sliceBlocks;
    const n = Math.min(this.sliceBlocks, this.totalBlocks - first);
    const r = this.classifier.scan(first, n, this.skip);
    this.st.slices++;
    this.st.probes += r.probes;
    if (r.status !== 0) this.st.readErrors++;
    const bytes = Math.min(n * this.blockSectors, this.device.sectors - first * this.blockSectors) * SECTOR_SIZE;
    this.st.bytesScanned += bytes;
    const read = r.bytes + r.probeBytes;
    this.st.bytesRead += read;
    for (const f of r.findings) this.record(f);
    this.doneInPass++;
    this.advancePos();
    return read;
  }

  private record(f: BlockFinding): void {
    if (this.known.get(f.block) === f.kind) return;
    this.known.set(f.block, f.kind);
    this.found[f.kind]++;
    if (this.findings.length < KEEP_FINDINGS) this.findings.push(f);
    this.onFinding?.(f);
  }

  /** Forgets a block's finding, so the next pass reports it again (e.g. a weak block the spare had no room for). */
  forget(block: number): void {
    this.known.delete(block);
  }

  /** The kind last found for a block, if any. */
  knownKind(block: number): FindingKind | undefined {
    return this.known.get(block);
  }

  /** True once the first whole pass is done. */
  get passComplete(): boolean {
    return this.st.passes > 0;
  }

  stats(): ScannerStats {
    const elapsedNs = this.lastTickNs === undefined ? 0 : this.lastTickNs - this.startNs;
    const slicesInPass = this.slices;
    return {
      passes: this.st.passes,
      progress: slicesInPass > 0 ? Math.min(1, this.doneInPass / slicesInPass) : 0,
      bytesScanned: this.st.bytesScanned,
      bytesRead: this.st.bytesRead,
      slices: this.st.slices,
      probes: this.st.probes,
      readErrors: this.st.readErrors,
      found: { ...this.found },
      elapsedNs,
      busyNs: this.st.busyNs,
      scanNs: this.st.scanNs,
      effectiveRate: elapsedNs > 0 ? this.st.bytesRead / (elapsedNs / 1e9) : 0,
      lastPassNs: this.st.lastPassNs,
      rate: this.rate,
      busyFactor: this.busyFactor,
    };
  }
}
