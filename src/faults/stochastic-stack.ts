/**
 * A scenario's stochastic faults as drivers: StochasticFaults starts the
 * latent-error and weak-sector processes over a role's dust layer and its
 * weak-sector layer (src/stack/layers.ts builds the layers), and advance(nowNs)
 * moves them as the run's clock moves.
 *
 * The specs mirror the scenario schema's output (times in ns); field paths in
 * errors start at `field` (e.g. `faults.main`).
 */
import type { Random } from '../util/random.js';
import { parseLatencySpec, LatencyError } from './latency.js';
import { type BadBlockSink, type LatentErrorCounts, type LatentErrorOptions, LatentErrorProcess, StochasticFaultError } from './stochastic.js';
import type { TransientErrorDevice } from './transient.js';
import { type WeakSectorDevice, WeakSectorProcess } from './weak.js';

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

/** The stochastic layers of one role (src/stack/layers.ts builds them, below the dust layer). */
export interface StochasticLayers {
  weak?: WeakSectorDevice;
  transient?: TransientErrorDevice;
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
      if (!layers.weak) throw new StochasticFaultError(`${f}: no weak-sector layer (the stack builds one when weakSectors are configured)`);
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
