/**
 * Latent sector errors that arrive over time, the way field studies of disk
 * drives describe them: not independent, but clustered in space (an error's
 * neighbours go bad too) and in time (a drive that just had an error is likely
 * to have another soon).
 *
 * The model is a seeded cluster process applied to a bad-block list (a dust
 * layer), like growth.ts but with both kinds of locality:
 *
 *   - Episodes start as a Poisson process: exponential gaps at `rate` per
 *     second, centre block uniform over the region.
 *   - Each episode makes a burst of B distinct bad blocks, B ~ geometric on
 *     {1, 2, ...} with mean `burstMean` (capped at `burstMax`): the centre,
 *     then blocks at signed distances D ~ geometric with mean `spread`
 *     (spatial locality); a draw that lands on a block already bad is drawn
 *     again (at most 8 B draws in all).
 *   - Each episode triggers a follow-up episode with probability
 *     `followProbability`, after an exponential delay with mean `followMeanNs`,
 *     centred at a geometric distance with mean `followDistance` from its
 *     parent (temporal locality, near the earlier damage). Follow-ups trigger
 *     their own (a branching process: with p < 1 each primary episode has
 *     1 / (1 - p) episodes in all, on average).
 *
 * So the long-run rates are: episodes/s = rate / (1 - p); bad blocks/s =
 * episodes/s x burstMean (less whatever lands on blocks already bad or is
 * clipped at the region's edges).
 *
 * Defaults (burstMean 2, spread 2 blocks, followProbability 0.3, followMean
 * 2 s, followDistance 256 blocks, writeFailCount 3; `rate` has none) give the
 * shapes the studies below report, compressed to show within a run of
 * seconds to minutes: they are not a fitted model of a drive population,
 * whose rates are per drive-year. Sources for the shape:
 *   - L. N. Bairavasundaram, G. R. Goodson, S. Pasupathy, J. Schindler, "An
 *     Analysis of Latent Sector Errors in Disk Drives", SIGMETRICS 2007:
 *     1.53 million drives over 32 months; 3.45% developed latent sector errors
 *     (8.5% of nearline, 1.9% of enterprise drives); errors are not independent
 *     (a drive with one error is much more likely to develop more) and show
 *     spatial and temporal locality.
 *   - B. Schroeder, S. Damouras, P. Gill, "Understanding latent sector errors
 *     and how to protect against them", FAST 2010 (ACM TOS 2010): errors come
 *     in bursts of neighbouring sectors and cluster in time; between 20% and
 *     50% of errors lie in the first 10% of the logical space on some models
 *     (use `region` to concentrate errors there); scrubbing policies evaluated
 *     on that data, including staggered scrubbing (A. Oprea, A. Juels, "A
 *     Clean-Slate Look at Disk Scrubbing", FAST 2010), which src/health offers.
 */
import type { Random } from '../util/random.js';

/** What a latent-error process marks blocks bad in: a DustDevice fits. */
export interface BadBlockSink {
  /** Sectors per block of the list. */
  readonly sectorsPerBlock: number;
  /** Size of the device the list covers, in sectors. */
  readonly sectors: number;
  isBadBlock(block: number): boolean;
  addBadBlock(block: number, wrFailCnt: number): void;
}

export interface LatentErrorOptions {
  /** Nanoseconds after the run start when episodes begin (default 0). */
  startNs?: number;
  /** Primary episodes per second (> 0). */
  rate: number;
  /** Mean bad blocks per episode, >= 1 (default 2). */
  burstMean?: number;
  /** Most bad blocks in one episode (default 64). */
  burstMax?: number;
  /** Mean distance in blocks from a burst's centre to its other blocks, >= 1 (default 2). */
  spread?: number;
  /** Probability that an episode triggers a follow-up episode, 0 <= p < 1 (default 0.3). */
  followProbability?: number;
  /** Mean delay of a follow-up episode, ns (default 2 s). */
  followMeanNs?: number;
  /** Mean distance in blocks between a follow-up's centre and its parent's, >= 1 (default 256). */
  followDistance?: number;
  /** wr_fail_cnt of each new bad block (default 3). */
  writeFailCount?: number;
  /** Stop after this many primary episodes (default: no limit). */
  maxEpisodes?: number;
  /** Sector range new bad blocks fall in (default the whole device). */
  region?: { from: number; to: number };
}

export const LATENT_DEFAULTS = {
  burstMean: 2,
  burstMax: 64,
  spread: 2,
  followProbability: 0.3,
  followMeanNs: 2e9,
  followDistance: 256,
  writeFailCount: 3,
} as const;

export class StochasticFaultError extends Error {
  override readonly name = 'StochasticFaultError';
}

/** Throws StochasticFaultError naming `field` when a value is out of range. */
export function checkRange(
  field: string,
  v: number | undefined,
  lo: number,
  hi: number,
  opts: { integer?: boolean; loOpen?: boolean; hiOpen?: boolean } = {},
): void {
  if (v === undefined) return;
  const okLo = opts.loOpen ? v > lo : v >= lo;
  const okHi = opts.hiOpen ? v < hi : v <= hi;
  if (!Number.isFinite(v) || !okLo || !okHi || (opts.integer && !Number.isInteger(v))) {
    const range = `${opts.loOpen ? '(' : '['}${lo}, ${hi}${opts.hiOpen ? ')' : ']'}`;
    throw new StochasticFaultError(`${field} must be ${opts.integer ? 'an integer' : 'a number'} in ${range}, got ${v}`);
  }
}

/** Geometric on {1, 2, ...} with the given mean (>= 1). */
export function geometric(rng: Random, mean: number): number {
  if (mean <= 1) return 1;
  const q = 1 - 1 / mean;
  let u = 0;
  while (u === 0) u = rng.next();
  return 1 + Math.floor(Math.log(u) / Math.log(q));
}

/** A block range [first, first + blocks) inside a device, from a sector region. */
export function regionBlocks(
  sink: Pick<BadBlockSink, 'sectorsPerBlock' | 'sectors'>,
  region: { from: number; to: number } | undefined,
  field: string,
): { first: number; blocks: number } {
  const spb = sink.sectorsPerBlock;
  const from = region?.from ?? 0;
  const to = Math.min(region?.to ?? sink.sectors, sink.sectors);
  const first = Math.ceil(from / spb);
  const blocks = Math.floor(to / spb) - first;
  if (!(blocks > 0)) throw new StochasticFaultError(`${field}: region [${from}, ${to}) holds no whole block of ${spb} sectors`);
  return { first, blocks };
}

export interface LatentEvent {
  /** When the episode was due (ns, the run's clock). */
  atNs: number;
  centre: number;
  /** Blocks this episode made bad (already-bad ones are not repeated). */
  blocks: number[];
  primary: boolean;
}

export interface LatentErrorCounts {
  primaryEpisodes: number;
  followEpisodes: number;
  /** Burst sizes drawn, summed (the blocks episodes meant to make bad). */
  drawnBlocks: number;
  /** Blocks newly made bad. */
  addedBlocks: number;
}

export class LatentErrorProcess {
  readonly opts: Required<Omit<LatentErrorOptions, 'maxEpisodes' | 'region'>> & Pick<LatentErrorOptions, 'maxEpisodes' | 'region'>;
  private nextPrimaryNs: number;
  /** Follow-up episodes still to come: [atNs, centre], kept sorted by time. */
  private readonly follow: Array<[number, number]> = [];
  private readonly first: number;
  private readonly blocks: number;
  readonly counts: LatentErrorCounts = { primaryEpisodes: 0, followEpisodes: 0, drawnBlocks: 0, addedBlocks: 0 };
  private readonly listeners: Array<(e: LatentEvent) => void> = [];

  constructor(
    opts: LatentErrorOptions,
    private readonly sink: BadBlockSink,
    private readonly random: Random,
    runStartNs: number,
    field = 'latentErrors',
  ) {
    checkRange(`${field}.rate`, opts.rate, 0, 1e6, { loOpen: true });
    checkRange(`${field}.start`, opts.startNs, 0, Number.MAX_SAFE_INTEGER);
    checkRange(`${field}.burstMean`, opts.burstMean, 1, 4096);
    checkRange(`${field}.burstMax`, opts.burstMax, 1, 4096, { integer: true });
    checkRange(`${field}.spread`, opts.spread, 1, 1e9);
    checkRange(`${field}.followProbability`, opts.followProbability, 0, 0.99);
    checkRange(`${field}.followMean`, opts.followMeanNs, 0, Number.MAX_SAFE_INTEGER, { loOpen: true });
    checkRange(`${field}.followDistance`, opts.followDistance, 1, 1e12);
    checkRange(`${field}.writeFailCount`, opts.writeFailCount, 0, 255, { integer: true });
    checkRange(`${field}.maxEpisodes`, opts.maxEpisodes, 1, Number.MAX_SAFE_INTEGER, { integer: true });
    this.opts = {
      startNs: opts.startNs ?? 0,
      rate: opts.rate,
      burstMean: opts.burstMean ?? LATENT_DEFAULTS.burstMean,
      burstMax: opts.burstMax ?? LATENT_DEFAULTS.burstMax,
      spread: opts.spread ?? LATENT_DEFAULTS.spread,
      followProbability: opts.followProbability ?? LATENT_DEFAULTS.followProbability,
      followMeanNs: opts.followMeanNs ?? LATENT_DEFAULTS.followMeanNs,
      followDistance: opts.followDistance ?? LATENT_DEFAULTS.followDistance,
      writeFailCount: opts.writeFailCount ?? LATENT_DEFAULTS.writeFailCount,
      maxEpisodes: opts.maxEpisodes,
      region: opts.region,
    };
    const r = regionBlocks(sink, opts.region, `${field}.region`);
    this.first = r.first;
    this.blocks = r.blocks;
    this.nextPrimaryNs = runStartNs + this.opts.startNs + this.random.exponential(this.opts.rate) * 1e9;
  }

  /** Called with every episode, after its blocks were added. */
  onEpisode(listener: (e: LatentEvent) => void): void {
    this.listeners.push(listener);
  }

  /** When the next episode is due (Infinity when none is). */
  get nextDueNs(): number {
    return Math.min(this.nextPrimaryNs, this.follow.length > 0 ? this.follow[0]![0] : Infinity);
  }

  /** Long-run expected episodes per second: rate / (1 - followProbability). */
  get expectedEpisodeRate(): number {
    return this.opts.rate / (1 - this.opts.followProbability);
  }

  /** Runs every episode due by `nowNs`, in time order; returns the number of blocks made bad. */
  advance(nowNs: number): number {
    let added = 0;
    for (;;) {
      const f = this.follow.length > 0 ? this.follow[0]![0] : Infinity;
      const at = Math.min(this.nextPrimaryNs, f);
      if (at > nowNs) break;
      if (f <= this.nextPrimaryNs) {
        const [, centre] = this.follow.shift()!;
        this.counts.followEpisodes++;
        added += this.episode(at, centre, false);
      } else {
        this.counts.primaryEpisodes++;
        const max = this.opts.maxEpisodes;
        this.nextPrimaryNs = max !== undefined && this.counts.primaryEpisodes >= max ? Infinity : at + this.random.exponential(this.opts.rate) * 1e9;
        added += this.episode(at, this.first + this.random.int(this.blocks), true);
      }
    }
    return added;
  }

  private clamp(b: number): number {
    return Math.min(this.first + this.blocks - 1, Math.max(this.first, b));
  }

  private signedDistance(mean: number): number {
    const d = geometric(this.random, mean);
    return this.random.next() < 0.5 ? -d : d;
  }

  private episode(atNs: number, centre: number, primary: boolean): number {
    const n = Math.min(this.opts.burstMax, geometric(this.random, this.opts.burstMean), this.blocks);
    this.counts.drawnBlocks += n;
    const made: number[] = [];
    // n distinct blocks around the centre; blocks already bad take their place (within a bounded number of draws)
    for (let tries = 0; made.length < n && tries < 8 * n; tries++) {
      const b = tries === 0 ? centre : this.clamp(centre + this.signedDistance(this.opts.spread));
      if (this.sink.isBadBlock(b)) continue;
      this.sink.addBadBlock(b, this.opts.writeFailCount);
      made.push(b);
    }
    this.counts.addedBlocks += made.length;
    if (this.random.next() < this.opts.followProbability) {
      const t = atNs + this.random.exponential(1) * this.opts.followMeanNs;
      const c = this.clamp(centre + this.signedDistance(this.opts.followDistance));
      let i = this.follow.length;
      while (i > 0 && this.follow[i - 1]![0] > t) i--;
      this.follow.splice(i, 0, [t, c]);
    }
    if (this.listeners.length > 0) {
      const e: LatentEvent = { atNs, centre, blocks: made, primary };
      for (const l of this.listeners) l(e);
    }
    return made.length;
  }
}
