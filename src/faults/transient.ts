/**
 * Transient read errors: a read fails once and succeeds when retried, the
 * kind of error a cable, a controller timeout or a marginal read on a healthy
 * medium produces. Unlike a latent sector error (Bairavasundaram et al.,
 * SIGMETRICS 2007: a sector that cannot be read, its data lost), nothing is
 * lost; W. Jiang, C. Hu, Y. Zhou, A. Kanevsky, "Are Disks the Dominant
 * Contributor for Storage Failures?", FAST 2008, find interconnect and
 * protocol problems behind a large share of storage subsystem failures. The
 * default probability (1e-4 per read) is illustrative, not measured.
 *
 * Each read request fails with EIO with probability `probability`, drawn
 * from a seeded generator. The blocks of a failed request are remembered, and
 * the next read that touches them is never failed: a retry clears the error.
 * Writes, flushes and discards pass untouched.
 */
import { type BlockDevice, EIO, type IoStatus, checkIo, SECTOR_SHIFT } from '../block/device.js';
import { Random } from '../util/random.js';
import { ReadFaultLayer } from './read-fault-layer.js';
import { checkRange } from './stochastic.js';

export interface TransientOptions {
  /** Probability that a read request fails, 0..1 (default 0.0001). */
  probability?: number;
  /** Sectors per block for the "retry clears it" memory (default: the logical block). */
  blockSectors?: number;
  /** Only reads that start in this sector range can fail (default the whole device). */
  region?: { from: number; to: number };
  random?: Random;
}

export const TRANSIENT_DEFAULTS = { probability: 1e-4 } as const;

/** Requests longer than this many blocks remember only their first blocks. */
const REMEMBER_MAX = 256;
/** failedRecently() looks back over this many reads and this many injections. */
const RECENT_READS = 1024;
const RECENT_KEPT = 32;

export class TransientErrorDevice extends ReadFaultLayer {
  readonly probability: number;
  readonly sectorsPerBlock: number;
  private readonly from: number;
  private readonly to: number;
  private readonly random: Random;
  /** Blocks whose last read failed transiently: their next read goes through. */
  private readonly failedLast = new Set<number>();
  /** The last injections: [first block, last block, read number]. */
  private readonly recent: Array<[number, number, number]> = [];
  reads = 0;
  injected = 0;

  constructor(inner: BlockDevice, opts: TransientOptions = {}, field = 'transientErrors') {
    super(inner, 'transient');
    checkRange(`${field}.probability`, opts.probability, 0, 1);
    this.probability = opts.probability ?? TRANSIENT_DEFAULTS.probability;
    this.sectorsPerBlock = opts.blockSectors ?? inner.logicalBlockSize >>> SECTOR_SHIFT;
    checkRange(`${field}.blockSectors`, this.sectorsPerBlock, 1, 2097152, { integer: true });
    this.from = opts.region?.from ?? 0;
    this.to = Math.min(opts.region?.to ?? inner.sectors, inner.sectors);
    this.random = opts.random ?? new Random(1);
  }

  /**
   * True when a transient error was injected on a block of [sector, sector +
   * count) within the last 1024 reads: what an oracle asks right after a
   * read failed (a layer above may already have retried, and cleared, it).
   */
  failedRecently(sector: number, count: number): boolean {
    if (this.recent.length === 0 || count <= 0) return false;
    const lo = Math.floor(sector / this.sectorsPerBlock);
    const hi = Math.floor((sector + count - 1) / this.sectorsPerBlock);
    for (const [a, b, seq] of this.recent) if (seq > this.reads - RECENT_READS && a <= hi && b >= lo) return true;
    return false;
  }

  /** True while a block's next read is the retry that clears its transient error. */
  awaitingRetry(block: number): boolean {
    return this.failedLast.has(block);
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    const count = checkIo(this, sector, buf);
    this.reads++;
    if (count === 0) return this.inner.read(sector, buf);
    const lo = Math.floor(sector / this.sectorsPerBlock);
    const hi = Math.floor((sector + count - 1) / this.sectorsPerBlock);
    if (this.failedLast.size > 0) {
      let retried = false;
      for (let b = lo; b <= hi && b - lo < REMEMBER_MAX; b++) if (this.failedLast.delete(b)) retried = true;
      if (retried) return this.inner.read(sector, buf);
    }
    if (this.probability > 0 && sector >= this.from && sector < this.to && this.random.next() < this.probability) {
      this.injected++;
      for (let b = lo; b <= hi && b - lo < REMEMBER_MAX; b++) this.failedLast.add(b);
      this.recent.push([lo, hi, this.reads]);
      if (this.recent.length > RECENT_KEPT) this.recent.shift();
      return EIO;
    }
    return this.inner.read(sector, buf);
  }
}
