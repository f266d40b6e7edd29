/**
 * Weak sectors: blocks that still read, but slowly (the drive retries and
 * re-calibrates before its ECC recovers the data), for a while before they
 * fail for good. A marginal sector's trouble can show as latency before it
 * shows as an error; this is the premise of proactive remapping, and the
 * model makes it a parameter (how long, how slow, how many fail) rather than
 * a claim. Weak sectors arrive as a Poisson process like latent errors do
 * (stochastic.ts lists the field studies). A scrubber that notices the slow
 * read can copy the data away while it is still readable.
 *
 * Two parts:
 *   - WeakSectorDevice, a layer: a read that touches a weak block sleeps (on
 *     the injected Clock) for that block's read latency, then goes through.
 *     Writes and everything else pass at full speed. The weak list lives in
 *     shared memory (`shared`), so engine worker threads see the same list.
 *   - WeakSectorProcess, a driver: weak blocks appear as a Poisson process
 *     (`rate` per second, `cluster` neighbouring blocks each); each fails
 *     after an exponential time with mean `failAfterNs` (a fraction
 *     `failFraction` of them; the rest stay weak), and is then moved to a
 *     bad-block list (a dust layer above this one) with `writeFailCount`.
 */
import { type BlockDevice, type IoStatus, checkIo, SECTOR_SHIFT } from '../block/device.js';
import { RemapTable, type RemapTableShared } from '../block/remap-table.js';
import { type Clock, realClock } from '../util/clock.js';
import { Random } from '../util/random.js';
import { ReadFaultLayer } from './read-fault-layer.js';
import { checkLatencyDist, type LatencyDist, sampleLatency } from './latency.js';
import { type BadBlockSink, checkRange, regionBlocks, StochasticFaultError } from './stochastic.js';

export interface WeakDeviceOptions {
  /** Sectors per weak-block unit (default: the inner device's logical block). */
  blockSectors?: number;
  clock?: Clock;
  random?: Random;
  /** Attach to another thread's weak list (WeakSectorDevice.shared) instead of starting empty. */
  shared?: WeakShared;
}

/** What another thread needs to see the same weak blocks: the table (block -> latency index) and the latencies. */
export interface WeakShared {
  table: RemapTableShared;
  latencies: LatencyDist[];
  blockSectors: number;
}

export class WeakSectorDevice extends ReadFaultLayer {
  readonly sectorsPerBlock: number;
  private readonly clock: Clock;
  private readonly random: Random;
  /** Weak block -> index into `latencies`; in shared memory, so worker threads see the same list. */
  private readonly weakTable: RemapTable;
  private readonly latencies: LatencyDist[];
  /** Reads this layer slowed, and the time it added (this thread's). */
  slowedReads = 0;
  addedNs = 0;

  constructor(inner: BlockDevice, opts: WeakDeviceOptions = {}) {
    super(inner, 'weak');
    this.sectorsPerBlock = opts.shared?.blockSectors ?? opts.blockSectors ?? inner.logicalBlockSize >>> SECTOR_SHIFT;
    if (!Number.isInteger(this.sectorsPerBlock) || this.sectorsPerBlock < 1)
      throw new StochasticFaultError(`weak block size must be a whole number of sectors >= 1, got ${this.sectorsPerBlock}`);
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? new Random(1);
    this.weakTable = new RemapTable(opts.shared ? opts.shared.table : { keySpace: Math.ceil(inner.sectors / this.sectorsPerBlock) });
    this.latencies = opts.shared ? opts.shared.latencies : [];
  }

  get shared(): WeakShared {
    return { table: this.weakTable.shared, latencies: this.latencies, blockSectors: this.sectorsPerBlock };
  }

  /**
   * Makes `block` weak with this read latency. Latencies are kept in a small
   * list shared with other threads by value: give every distinct latency
   * before handing `shared` to another thread (or call registerLatency first).
   */
  addWeak(block: number, latency: LatencyDist): void {
    if (!Number.isSafeInteger(block) || block < 0 || block * this.sectorsPerBlock >= this.sectors) {
      throw new StochasticFaultError(`weak block ${block} is out of range 0..${Math.ceil(this.sectors / this.sectorsPerBlock) - 1}`);
    }
    this.weakTable.set(block, this.registerLatency(latency));
  }

  /** The index of a latency in the shared list, adding it when new. */
  registerLatency(latency: LatencyDist): number {
    checkLatencyDist(latency, 'weak read latency');
    const key = JSON.stringify(latency);
    let i = this.latencies.findIndex((d) => JSON.stringify(d) === key);
    if (i < 0) i = this.latencies.push(latency) - 1;
    return i;
  }

  removeWeak(block: number): boolean {
    return this.weakTable.delete(block) >= 0;
  }

  isWeak(block: number): boolean {
    return this.weakTable.get(block) >= 0;
  }

  get weakCount(): number {
    return this.weakTable.size;
  }

  weakBlocks(): number[] {
    return Array.from(this.weakTable.snapshot().keys);
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    const count = checkIo(this, sector, buf);
    if (count > 0 && this.weakTable.size > 0) {
      const lo = Math.floor(sector / this.sectorsPerBlock);
      const n = Math.floor((sector + count - 1) / this.sectorsPerBlock) - lo + 1;
      if (this.weakTable.anyInRange(lo, n)) {
        let ns = 0;
        this.weakTable.forEachInRange(lo, n, (_b, i) => {
          const d = this.latencies[i];
          if (d) ns += sampleLatency(d, this.random);
        });
        if (ns > 0) {
          this.slowedReads++;
          this.addedNs += ns;
          this.clock.sleepNs(Math.round(ns));
        }
      }
    }
    return this.inner.read(sector, buf);
  }

  override close(): void {
    this.weakTable.close();
    super.close();
  }
}

export interface WeakProcessOptions {
  /** Nanoseconds after the run start when weak blocks begin to appear (default 0). */
  startNs?: number;
  /** Weak-block episodes per second (> 0). */
  rate: number;
  /** Neighbouring blocks per episode (default 1). */
  cluster?: number;
  /** Read latency of a weak block (default fixed 100 ms: far above any healthy read). */
  readLatency?: LatencyDist;
  /** Mean time from weak to failed, ns (exponential; default 30 s). */
  failAfterNs?: number;
  /** Fraction of weak blocks that fail at all (default 1). */
  failFraction?: number;
  /** wr_fail_cnt a failed block gets in the bad-block list (default 3). */
  writeFailCount?: number;
  /** Stop after this many episodes (default: no limit). */
  maxEpisodes?: number;
  /** Sector range weak blocks fall in (default the whole device). */
  region?: { from: number; to: number };
}

export const WEAK_DEFAULTS = {
  cluster: 1,
  readLatency: { kind: 'fixed', ns: 100e6 } as LatencyDist,
  failAfterNs: 30e9,
  failFraction: 1,
  writeFailCount: 3,
} as const;

export interface WeakEvent {
  kind: 'weak' | 'failed';
  atNs: number;
  block: number;
}

export class WeakSectorProcess {
  private nextNs: number;
  /** Failures still to come: [atNs, block], sorted by time. */
  private readonly failures: Array<[number, number]> = [];
  private readonly first: number;
  private readonly blocks: number;
  private readonly cluster: number;
  private readonly latency: LatencyDist;
  private readonly failAfterNs: number;
  private readonly failFraction: number;
  private readonly writeFailCount: number;
  episodes = 0;
  /** Blocks made weak, and weak blocks that failed. */
  madeWeak = 0;
  failed = 0;
  private readonly listeners: Array<(e: WeakEvent) => void> = [];

  constructor(
    private readonly opts: WeakProcessOptions,
    private readonly layer: WeakSectorDevice,
    private readonly bad: BadBlockSink,
    private readonly random: Random,
    runStartNs: number,
    field = 'weakSectors',
  ) {
    checkRange(`${field}.rate`, opts.rate, 0, 1e6, { loOpen: true });
    checkRange(`${field}.start`, opts.startNs, 0, Number.MAX_SAFE_INTEGER);
    checkRange(`${field}.cluster`, opts.cluster, 1, 4096, { integer: true });
    checkRange(`${field}.failAfter`, opts.failAfterNs, 0, Number.MAX_SAFE_INTEGER, { loOpen: true });
    checkRange(`${field}.failFraction`, opts.failFraction, 0, 1);
    checkRange(`${field}.writeFailCount`, opts.writeFailCount, 0, 255, { integer: true });
    checkRange(`${field}.maxEpisodes`, opts.maxEpisodes, 1, Number.MAX_SAFE_INTEGER, { integer: true });
    if (bad.sectorsPerBlock !== layer.sectorsPerBlock) {
      throw new StochasticFaultError(
        `${field}: the weak layer's blocks (${layer.sectorsPerBlock} sectors) differ from the bad-block list's (${bad.sectorsPerBlock} sectors)`,
      );
    }
    this.cluster = opts.cluster ?? WEAK_DEFAULTS.cluster;
    this.latency = opts.readLatency ?? WEAK_DEFAULTS.readLatency;
    checkLatencyDist(this.latency, `${field}.readLatency`);
    layer.registerLatency(this.latency); // before any thread attaches
    this.failAfterNs = opts.failAfterNs ?? WEAK_DEFAULTS.failAfterNs;
    this.failFraction = opts.failFraction ?? WEAK_DEFAULTS.failFraction;
    this.writeFailCount = opts.writeFailCount ?? WEAK_DEFAULTS.writeFailCount;
    const r = regionBlocks(bad, opts.region, `${field}.region`);
    this.first = r.first;
    this.blocks = r.blocks;
    this.nextNs = runStartNs + (opts.startNs ?? 0) + this.random.exponential(opts.rate) * 1e9;
  }

  onEvent(listener: (e: WeakEvent) => void): void {
    this.listeners.push(listener);
  }

  get nextDueNs(): number {
    return Math.min(this.nextNs, this.failures.length > 0 ? this.failures[0]![0] : Infinity);
  }

  /** Blocks weak now (not yet failed). */
  get weakNow(): number {
    return this.layer.weakCount;
  }

  advance(nowNs: number): void {
    for (;;) {
      const f = this.failures.length > 0 ? this.failures[0]![0] : Infinity;
      const at = Math.min(this.nextNs, f);
      if (at > nowNs) break;
      if (f <= this.nextNs) {
        const [, block] = this.failures.shift()!;
        this.fail(at, block);
      } else {
        this.episodes++;
        const max = this.opts.maxEpisodes;
        this.nextNs = max !== undefined && this.episodes >= max ? Infinity : at + this.random.exponential(this.opts.rate) * 1e9;
        this.episode(at);
      }
    }
  }

  private episode(atNs: number): void {
    const len = Math.min(this.cluster, this.blocks);
    const start = this.first + this.random.int(this.blocks - len + 1);
    for (let b = start; b < start + len; b++) {
      if (this.layer.isWeak(b) || this.bad.isBadBlock(b)) continue;
      this.layer.addWeak(b, this.latency);
      this.madeWeak++;
      this.emit({ kind: 'weak', atNs, block: b });
      if (this.random.next() < this.failFraction) {
        const t = atNs + this.random.exponential(1) * this.failAfterNs;
        let i = this.failures.length;
        while (i > 0 && this.failures[i - 1]![0] > t) i--;
        this.failures.splice(i, 0, [t, b]);
      }
    }
  }

  private fail(atNs: number, block: number): void {
    this.layer.removeWeak(block);
    if (this.bad.isBadBlock(block)) return;
    this.bad.addBadBlock(block, this.writeFailCount);
    this.failed++;
    this.emit({ kind: 'failed', atNs, block });
  }

  private emit(e: WeakEvent): void {
    for (const l of this.listeners) l(e);
  }
}
