/**
 * The device stacks of a simulated run, bottom up as the scenario builder
 * makes them (src/scenario/build.ts): a generation store instead of a
 * backing file, then latency, weak sectors, transient errors and a dm-dust
 * bad-block list on top. The fault processes are the real-time ones
 * (latent errors, weak sectors, growth), driven with virtual time.
 *
 * Most simulated drives never see a fault, and a dust list over a 4 TB
 * drive costs an 8 MiB summary bitmap: the layers are built when first
 * needed (the first bad block listed, or the target built over them), unless
 * a process needs them from the start (weak sectors, growth, transient
 * errors, an initial bad-sector list).
 */
import type { BlockDevice } from '../block/device.js';
import { loadIntoDust } from '../faults/badlist.js';
import { DustDevice } from '../faults/dust.js';
import { BadSectorGrowth } from '../faults/growth.js';
import { LatencyDevice, parseLatencySpec } from '../faults/latency.js';
import { type BadBlockSink, LatentErrorProcess } from '../faults/stochastic.js';
import { latentOptions } from '../faults/stochastic-stack.js';
import { WeakSectorDevice, WeakSectorProcess } from '../faults/weak.js';
import { Random } from '../util/random.js';
import type { SimFaultSpecs } from './config.js';
import { GenerationDevice } from './generation-device.js';
import type { VirtualClock } from './time.js';
import { ArmedTransientLayer } from './transient-layer.js';

/** A dust layer that tells the simulator about each block it lists. */
export class SimDust extends DustDevice {
  onAdd: ((block: number) => void) | undefined;

  override addBadBlock(block: number, wrFailCnt = 0): void {
    const was = this.isBadBlock(block);
    super.addBadBlock(block, wrFailCnt);
    if (!was) this.onAdd?.(block);
  }
}

export interface StackOptions {
  role: 'main' | 'spare';
  sectors: number;
  logicalBlockSize: 512 | 4096;
  faults: SimFaultSpecs | undefined;
  clock: VirtualClock;
  random: Random;
  /** Seeds the layers' own generators (latency, weak-sector latency): built late, they draw nothing from `random`. */
  seed: number;
  /** Told about each block listed bad (after the list has it). */
  onBad?: (block: number) => void;
}

interface Layers {
  top: BlockDevice;
  dust?: SimDust;
  weak?: WeakSectorDevice;
  transient?: ArmedTransientLayer;
}

export class RoleStack implements BadBlockSink {
  readonly store: GenerationDevice;
  readonly sectorsPerBlock: number;
  readonly sectors: number;
  readonly latent: LatentErrorProcess[] = [];
  readonly weakProcs: WeakSectorProcess[] = [];
  readonly growth: BadSectorGrowth[] = [];
  private layers: Layers | undefined;

  constructor(private readonly o: StackOptions) {
    const field = `faults.${o.role}`;
    this.store = new GenerationDevice(o.role, o.sectors, o.logicalBlockSize, o.role === 'main' ? 'self' : 'zero');
    const f = o.faults;
    this.sectorsPerBlock = (f?.dustBlockSize ?? o.logicalBlockSize) / 512;
    this.sectors = o.sectors;
    if (!f) return;
    if (f.weakSectors.length > 0 || f.growth.length > 0 || f.transient || f.badSectors.length > 0) this.build();
    f.latentErrors.forEach((s, i) => {
      this.latent.push(new LatentErrorProcess(latentOptions(s), this, o.random.fork(), 0, `${field}.latentErrors[${i}]`));
    });
    f.weakSectors.forEach((s, i) => {
      const w = `${field}.weakSectors[${i}]`;
      this.weakProcs.push(
        new WeakSectorProcess(
          {
            startNs: s.start,
            rate: s.rate,
            cluster: s.cluster,
            readLatency: parseLatencySpec(s.readLatency, `${w}.readLatency`),
            failAfterNs: s.failAfter,
            failFraction: s.failFraction,
            writeFailCount: s.writeFailCount,
            maxEpisodes: s.maxEpisodes,
            region: s.region,
          },
          this.weak!,
          this.dust!,
          o.random.fork(),
          0,
          w,
        ),
      );
    });
    for (const g of f.growth) {
      this.growth.push(
        new BadSectorGrowth(
          { startNs: g.start, rate: g.rate, cluster: g.cluster, writeFailCount: g.writeFailCount, maxClusters: g.maxClusters, region: g.region },
          this.dust!,
          o.random.fork(),
          0,
        ),
      );
    }
  }

  /** Builds the layers over the store (once). */
  private build(): Layers {
    if (this.layers) return this.layers;
    const o = this.o;
    const f = o.faults;
    let dev: BlockDevice = this.store;
    if (!f) {
      this.layers = { top: dev };
      return this.layers;
    }
    const seed = (k: number): Random => new Random((o.seed ^ Math.imul(k, 0x9e3779b9)) >>> 0);
    if (f.latency && (f.latency.read || f.latency.write))
      dev = new LatencyDevice(dev, { read: f.latency.read, write: f.latency.write, clock: o.clock, random: seed(1) });
    let weak: WeakSectorDevice | undefined;
    if (f.weakSectors.length > 0) {
      weak = new WeakSectorDevice(dev, { blockSectors: this.sectorsPerBlock, clock: o.clock, random: seed(2) });
      dev = weak;
    }
    let transient: ArmedTransientLayer | undefined;
    if (f.transient) {
      transient = new ArmedTransientLayer(dev);
      dev = transient;
    }
    const dust = new SimDust(dev, { blockSize: this.sectorsPerBlock * 512 });
    dust.enable();
    dust.onAdd = o.onBad;
    this.layers = { top: dust, dust, weak, transient };
    return this.layers;
  }

  /** Lists the scenario's initial bad sectors. */
  loadInitial(): void {
    const f = this.o.faults;
    if (f && f.badSectors.length > 0) loadIntoDust(this.build().dust!, f.badSectors, { wrFailCnt: f.writeFailCount });
  }

  /** What the target sits on. */
  get top(): BlockDevice {
    return this.build().top;
  }

  get dust(): SimDust | undefined {
    return this.layers?.dust;
  }

  get weak(): WeakSectorDevice | undefined {
    return this.layers?.weak;
  }

  get transient(): ArmedTransientLayer | undefined {
    return this.layers?.transient;
  }

  // BadBlockSink, for the latent-error processes: the list is built with the first bad block
  isBadBlock(block: number): boolean {
    return this.layers?.dust?.isBadBlock(block) ?? false;
  }

  addBadBlock(block: number, wrFailCnt: number): void {
    this.build().dust!.addBadBlock(block, wrFailCnt);
  }

  hasBadIn(sector: number, count: number): boolean {
    return this.layers?.dust?.hasBadIn(sector, count) ?? false;
  }

  /** When the next fault is due (double ns; Infinity: none). */
  nextFaultNs(): number {
    let n = Infinity;
    for (const p of this.latent) n = Math.min(n, p.nextDueNs);
    for (const p of this.weakProcs) n = Math.min(n, p.nextDueNs);
    for (const g of this.growth) n = Math.min(n, g.nextDueNs);
    return n;
  }

  advance(nowNs: number): void {
    for (const p of this.latent) p.advance(nowNs);
    for (const p of this.weakProcs) p.advance(nowNs);
    for (const g of this.growth) g.advance(nowNs);
  }

  close(): void {
    this.layers?.top.close();
    this.store.close();
  }
}
