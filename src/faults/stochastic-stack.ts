/**
 * A scenario's stochastic faults as layers and drivers, for the scenario
 * builder: call stochasticLayers() on the device below the dust layer (it
 * adds the weak-sector layer, then the transient-error layer), build the dust
 * layer on what it returns, then startStochasticFaults() with that dust
 * layer, and call advance(nowNs) as the run's clock moves.
 *
 * The specs mirror the scenario schema's output (times in ns); field paths in
 * errors start at `field` (e.g. `faults.main`).
 */
import type { BlockDevice } from '../block/device.js';
import type { Clock } from '../util/clock.js';
import { Random } from '../util/random.js';
import { parseLatencySpec, LatencyError } from './latency.js';
import { type BadBlockSink, type LatentErrorCounts, type LatentErrorOptions, LatentErrorProcess, StochasticFaultError } from './stochastic.js';
import { TransientErrorDevice } from './transient.js';
import { WeakSectorDevice, WeakSectorProcess, type WeakShared } from './weak.js';

export interface LatentErrorSpecLike {
  start: number;
  rate: number;
  burstMean: number;
  burstMax: number;
  spread: number;
  followProbability: number;
  followMean: number;
  followDistance: number;
  writeFailCount: number;
  maxEpisodes?: number;
  region?: { from: number; to: number };
}

/** A scenario's latent-error spec as the process takes it. */
export function latentOptions(s: LatentErrorSpecLike): LatentErrorOptions {
  return {
    startNs: s.start,
    rate: s.rate,
    burstMean: s.burstMean,
    burstMax: s.burstMax,
    spread: s.spread,
    followProbability: s.followProbability,
    followMeanNs: s.followMean,
    followDistance: s.followDistance,
    writeFailCount: s.writeFailCount,
    maxEpisodes: s.maxEpisodes,
    region: s.region,
  };
}

export interface WeakSectorSpecLike {
  start: number;
  rate: number;
  cluster: number;
  readLatency: string;
  failAfter: number;
  failFraction: number;
  writeFailCount: number;
  maxEpisodes?: number;
  region?: { from: number; to: number };
}

export interface StochasticSpecs {
  latentErrors: readonly LatentErrorSpecLike[];
  weakSectors: readonly WeakSectorSpecLike[];
  transientErrors?: { probability: number; region?: { from: number; to: number } };
}

/** How another thread builds the same layers over its own copy of the device below (openStochasticLayers). */
export interface StochasticLayersSpec {
  weak?: { shared: WeakShared; seed: number };
  transient?: { probability: number; region?: { from: number; to: number }; blockSectors: number; seed: number };
}

export interface StochasticLayers {
  /** The device to build the dust layer on. */
  top: BlockDevice;
  weak?: WeakSectorDevice;
  transient?: TransientErrorDevice;
  /** For engine worker threads: the weak list is shared; each thread's transient layer draws from its own seed. */
  spec: StochasticLayersSpec;
}

/**
 * Adds the weak-sector layer (when weak sectors are configured) and the
 * transient-error layer (when configured) over `dev`. Draws one seed from
 * `random` per layer it adds, and nothing when it adds none.
 */
export function stochasticLayers(
  field: string,
  specs: StochasticSpecs,
  dev: BlockDevice,
  opts: { clock: Clock; random: Random; blockSectors: number },
): StochasticLayers {
  let top = dev;
  let weak: WeakSectorDevice | undefined;
  let transient: TransientErrorDevice | undefined;
  const spec: StochasticLayersSpec = {};
  if (specs.weakSectors.length > 0) {
    const seed = opts.random.nextU32();
    weak = new WeakSectorDevice(top, { blockSectors: opts.blockSectors, clock: opts.clock, random: new Random(seed) });
    top = weak;
    spec.weak = { shared: weak.shared, seed };
  }
  if (specs.transientErrors) {
    const seed = opts.random.nextU32();
    const t = specs.transientErrors;
    transient = new TransientErrorDevice(
      top,
      { probability: t.probability, region: t.region, blockSectors: opts.blockSectors, random: new Random(seed) },
      `${field}.transientErrors`,
    );
    top = transient;
    spec.transient = { probability: t.probability, region: t.region, blockSectors: opts.blockSectors, seed };
  }
  return { top, weak, transient, spec };
}

/**
 * In an engine worker thread: the same layers over this thread's device,
 * attached to the primary's weak list. Each thread's transient layer has its
 * own seed (the thread's queue number mixed in), so the threads do not fail
 * the same reads in lockstep.
 */
export function openStochasticLayers(dev: BlockDevice, spec: StochasticLayersSpec, opts: { clock?: Clock; thread?: number } = {}): StochasticLayers {
  let top = dev;
  let weak: WeakSectorDevice | undefined;
  let transient: TransientErrorDevice | undefined;
  const mix = (seed: number): number => (seed ^ Math.imul((opts.thread ?? 0) + 1, 0x9e3779b1)) >>> 0;
  if (spec.weak) {
    weak = new WeakSectorDevice(top, { shared: spec.weak.shared, clock: opts.clock, random: new Random(mix(spec.weak.seed)) });
    top = weak;
  }
  if (spec.transient) {
    const t = spec.transient;
    transient = new TransientErrorDevice(top, { probability: t.probability, region: t.region, blockSectors: t.blockSectors, random: new Random(mix(t.seed)) });
    top = transient;
  }
  return { top, weak, transient, spec };
}

export interface StochasticSummary {
  latentErrors: LatentErrorCounts[];
  weakSectors: Array<{ episodes: number; madeWeak: number; failed: number; weakNow: number; slowedReads: number }>;
  transientErrors?: { reads: number; injected: number; probability: number };
}

/** Drives a role's latent-error and weak-sector processes over time. */
export class StochasticFaults {
  private readonly latent: LatentErrorProcess[] = [];
  private readonly weakProcs: WeakSectorProcess[] = [];
  private readonly badListeners: Array<(sector: number, count: number, atNs: number) => void> = [];
  private next: number;

  constructor(
    field: string,
    specs: StochasticSpecs,
    dust: BadBlockSink,
    private readonly layers: StochasticLayers,
    random: Random,
    runStartNs: number,
  ) {
    const spb = dust.sectorsPerBlock;
    const wrap = <T>(f: () => T): T => {
      try {
        return f();
      } catch (err) {
        if (err instanceof LatencyError) throw new StochasticFaultError(err.message);
        throw err;
      }
    };
    specs.latentErrors.forEach((s, i) => {
      const p = new LatentErrorProcess(latentOptions(s), dust, random.fork(), runStartNs, `${field}.latentErrors[${i}]`);
      p.onEpisode((e) => {
        for (const b of e.blocks) this.emitBad(b * spb, spb, e.atNs);
      });
      this.latent.push(p);
    });
    specs.weakSectors.forEach((s, i) => {
      const f = `${field}.weakSectors[${i}]`;
      if (!layers.weak) throw new StochasticFaultError(`${f}: no weak-sector layer (build it with stochasticLayers)`);
      const latency = wrap(() => parseLatencySpec(s.readLatency, `${f}.readLatency`));
      const p = new WeakSectorProcess(
        {
          startNs: s.start,
          rate: s.rate,
          cluster: s.cluster,
          readLatency: latency,
          failAfterNs: s.failAfter,
          failFraction: s.failFraction,
          writeFailCount: s.writeFailCount,
          maxEpisodes: s.maxEpisodes,
          region: s.region,
        },
        layers.weak,
        dust,
        random.fork(),
        runStartNs,
        f,
      );
      p.onEvent((e) => {
        if (e.kind === 'failed') this.emitBad(e.block * spb, spb, e.atNs);
      });
      this.weakProcs.push(p);
    });
    this.next = this.computeNext();
  }

  /** Told about every block that goes bad (latent errors, weak blocks that fail): sector, count, when. */
  onBad(listener: (sector: number, count: number, atNs: number) => void): void {
    this.badListeners.push(listener);
  }

  private emitBad(sector: number, count: number, atNs: number): void {
    for (const l of this.badListeners) l(sector, count, atNs);
  }

  private computeNext(): number {
    let n = Infinity;
    for (const p of this.latent) n = Math.min(n, p.nextDueNs);
    for (const p of this.weakProcs) n = Math.min(n, p.nextDueNs);
    return n;
  }

  get nextDueNs(): number {
    return this.next;
  }

  /** Runs everything due by `nowNs`. Cheap when nothing is due. */
  advance(nowNs: number): void {
    if (nowNs < this.next) return;
    for (const p of this.latent) p.advance(nowNs);
    for (const p of this.weakProcs) p.advance(nowNs);
    this.next = this.computeNext();
  }

  /** Blocks these processes made bad so far. */
  grownBadBlocks(): number {
    let n = 0;
    for (const p of this.latent) n += p.counts.addedBlocks;
    for (const p of this.weakProcs) n += p.failed;
    return n;
  }

  /** True when a transient error was just injected in [sector, sector + count): an expected error for the oracle. */
  isTransient(sector: number, count: number): boolean {
    return this.layers.transient?.failedRecently(sector, count) ?? false;
  }

  summary(): StochasticSummary {
    const t = this.layers.transient;
    return {
      latentErrors: this.latent.map((p) => ({ ...p.counts })),
      weakSectors: this.weakProcs.map((p) => ({
        episodes: p.episodes,
        madeWeak: p.madeWeak,
        failed: p.failed,
        weakNow: p.weakNow,
        slowedReads: this.layers.weak?.slowedReads ?? 0,
      })),
      transientErrors: t ? { reads: t.reads, injected: t.injected, probability: t.probability } : undefined,
    };
  }
}
