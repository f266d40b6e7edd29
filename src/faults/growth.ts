/**
 * Bad sectors that appear during a run: clusters arrive as a Poisson process
 * (exponential gaps at `rate` per second) and each cluster marks neighbouring
 * blocks bad, since latent sector errors on drives cluster in space. Seeded,
 * so a scenario reproduces. Applied to a dust layer as time passes.
 */
import type { Random } from '../util/random.js';
import type { DustDevice } from './dust.js';

export interface GrowthOptions {
  /** Nanoseconds after the run start when growth begins. */
  startNs: number;
  /** Clusters per second. */
  rate: number;
  /** Blocks per cluster. */
  cluster: number;
  /** wr_fail_cnt of each new bad block. */
  writeFailCount: number;
  maxClusters?: number;
  /** Sector range new bad sectors fall in (default the whole device). */
  region?: { from: number; to: number };
}

export class BadSectorGrowth {
  private nextNs: number;
  private clusters = 0;
  /** Bad blocks this growth added. */
  added = 0;
  private readonly firstBlock: number;
  private readonly blocks: number;

  constructor(
    private readonly opts: GrowthOptions,
    private readonly dust: DustDevice,
    private readonly random: Random,
    runStartNs: number,
  ) {
    const spb = dust.sectorsPerBlock;
    const from = opts.region?.from ?? 0;
    const to = Math.min(opts.region?.to ?? dust.sectors, dust.sectors);
    if (!(to > from)) throw new RangeError(`growth region [${from}, ${to}) is empty`);
    this.firstBlock = Math.ceil(from / spb);
    this.blocks = Math.max(1, Math.floor(to / spb) - this.firstBlock);
    this.nextNs = runStartNs + opts.startNs + this.gapNs();
  }

  private gapNs(): number {
    return this.random.exponential(this.opts.rate) * 1e9;
  }

  /** When the next cluster is due (Infinity when done). */
  get nextDueNs(): number {
    return this.nextNs;
  }

  /** Adds every cluster due by `nowNs`; returns the number of blocks added. */
  advance(nowNs: number): number {
    let n = 0;
    while (nowNs >= this.nextNs) {
      n += this.addCluster();
      this.clusters++;
      this.nextNs = this.opts.maxClusters !== undefined && this.clusters >= this.opts.maxClusters ? Infinity : this.nextNs + this.gapNs();
    }
    this.added += n;
    return n;
  }

  private addCluster(): number {
    const len = Math.min(this.opts.cluster, this.blocks);
    const first = this.firstBlock + this.random.int(this.blocks - len + 1);
    let n = 0;
    for (let b = first; b < first + len; b++) {
      if (this.dust.isBadBlock(b)) continue;
      this.dust.addBadBlock(b, this.opts.writeFailCount);
      n++;
    }
    return n;
  }
}
