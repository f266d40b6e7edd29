/**
 * The write-heavy job the crash tests run through a model: verified writes of
 * 1-16 units, some reads and flushes, and main sectors going bad as it runs
 * (dust bad blocks with write-fail counts). Every write's outcome is reported
 * only after the write returned; remaps are reported once made. Used by the
 * SIGKILL child and by the in-process crash-point tests, for both policies.
 */
import { type BlockDevice, OK } from '../../src/block/device.js';
import type { ControlTarget } from '../../src/control/target.js';
import { DustDevice } from '../../src/faults/dust.js';
import { openSafeModel } from '../../src/stack/models.js';
import { openV4Model } from '../../src/stack/models.js';
import type { SafeMetadataStore } from '../../src/metadata/safe-store.js';
import type { V4MetadataStore } from '../../src/metadata/v4-store.js';
import type { SafeRemapTarget } from '../../src/remap/safe-target.js';
import type { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { Random } from '../../src/util/random.js';
import { VerifyPattern } from '../../src/workload/verify-pattern.js';

export type CrashPolicy = 'safe' | 'dm-remap-v4';
export const CRASH_POLICIES: readonly CrashPolicy[] = ['safe', 'dm-remap-v4'];
export const CRASH_IDENTITY = 'crash-test-main';

export interface CrashGeometry {
  mainSectors: number;
  spareSectors: number;
  unitSize: number;
  /** Safe policy: log blocks per area (small, so checkpoints happen often). */
  logBlocks: number;
}

/**
 * Verify units of one 512-byte logical block: a device write of whole blocks
 * is atomic per block even when a crash cuts a request in pieces, so every
 * unit reads back as one whole generation.
 */
export const DEFAULT_GEOMETRY: CrashGeometry = { mainSectors: 4096, spareSectors: 8192, unitSize: 512, logBlocks: 8 };
const MAX_UNITS_PER_IO = 16;

export function crashPattern(runSeed: number, unitSize: number): VerifyPattern {
  return new VerifyPattern({ unitSize, runId: runSeed >>> 0, seed: runSeed });
}

export type CrashModel =
  | { policy: 'safe'; target: SafeRemapTarget; store: SafeMetadataStore }
  | { policy: 'dm-remap-v4'; target: DmRemapV4Target; store: V4MetadataStore };

/** Opens (recovers) the model of `policy` on main and spare, as a restart does. */
export function openCrashModel(
  policy: CrashPolicy,
  main: BlockDevice,
  spare: BlockDevice,
  geometry: CrashGeometry,
  create: 'auto' | 'never' = 'never',
): CrashModel {
  if (policy === 'safe') {
    const m = openSafeModel(main, spare, { identity: CRASH_IDENTITY, logBlocks: geometry.logBlocks, create });
    return { policy, target: m.target, store: m.store };
  }
  const m = openV4Model(main, spare);
  return { policy, target: m.target, store: m.store };
}

export function modelDevice(m: CrashModel): BlockDevice & ControlTarget & { lookup(key: number): number } {
  return m.target;
}

export interface CrashReporter {
  ack(unit: number, gen: number): void;
  fail(unit: number, gen: number, errno: number): void;
  remap(key: number, spare: number): void;
  bad(sector: number, writeFails: number): void;
}

export interface WorkloadOptions {
  seed: number;
  /** First generation this run writes; generations are unique and increase across runs. */
  genBase: number;
  geometry: CrashGeometry;
  pattern: VerifyPattern;
  /** Probability that a step adds a bad main sector. */
  badRate?: number;
}

export class CrashWorkload {
  private readonly rnd: Random;
  private readonly units: number;
  private readonly unitSectors: number;
  private nextGen: number;
  private readonly buf: Uint8Array;
  private readonly known = new Map<number, number>();
  private readonly v4Made: Array<[number, number]> = [];
  private readonly badRate: number;
  steps = 0;

  constructor(
    private readonly model: CrashModel,
    private readonly dust: DustDevice,
    private readonly reporter: CrashReporter,
    private readonly opts: WorkloadOptions,
  ) {
    this.rnd = new Random(opts.seed);
    this.unitSectors = opts.pattern.unitSize / 512;
    this.units = Math.floor(opts.geometry.mainSectors / this.unitSectors);
    this.nextGen = opts.genBase;
    this.buf = new Uint8Array(MAX_UNITS_PER_IO * opts.pattern.unitSize);
    this.badRate = opts.badRate ?? 0.08;
    if (model.policy === 'safe') {
      const { keys, values } = model.target.remaps();
      for (let i = 0; i < keys.length; i++) this.known.set(keys[i], values[i]);
    } else {
      model.target.onEvent((e) => {
        if (e.kind === 'remap-added') this.v4Made.push([e.sector!, e.spare!]);
      });
    }
  }

  step(): void {
    this.steps++;
    const r = this.rnd.next();
    // a monitor polls `dmsetup status` now and then: on dm-remap-v4 each call takes or releases the health mutex
    if (this.steps % 97 === 0) this.model.target.status();
    if (r < this.badRate) this.addBad();
    else if (r < this.badRate + 0.1) this.read();
    else if (r < this.badRate + 0.13) this.model.target.flush();
    else this.write();
    this.reportRemaps();
  }

  private addBad(): void {
    const sector = this.rnd.int(this.units * this.unitSectors);
    if (this.dust.isBadBlock(sector)) return;
    const fails = 1 + this.rnd.int(3);
    this.dust.addBadBlock(sector, fails);
    this.reporter.bad(sector, fails);
  }

  private read(): void {
    const n = 1 + this.rnd.int(MAX_UNITS_PER_IO);
    const unit = this.rnd.int(this.units - n + 1);
    this.model.target.read(unit * this.unitSectors, this.buf.subarray(0, n * this.opts.pattern.unitSize));
  }

  private write(): void {
    const n = 1 + this.rnd.int(MAX_UNITS_PER_IO);
    const unit = this.rnd.int(this.units - n + 1);
    const size = this.opts.pattern.unitSize;
    const gens: number[] = [];
    for (let i = 0; i < n; i++) {
      const gen = this.nextGen++;
      gens.push(gen);
      this.opts.pattern.fill(this.buf.subarray(i * size, (i + 1) * size), unit + i, gen);
    }
    const rc = this.model.target.write(unit * this.unitSectors, this.buf.subarray(0, n * size));
    this.reportRemaps(unit, n);
    for (let i = 0; i < n; i++) {
      if (rc === OK) this.reporter.ack(unit + i, gens[i]);
      else this.reporter.fail(unit + i, gens[i], rc);
    }
  }

  /** Safe: new or moved remaps among the blocks just written. dm-remap-v4: what the target announced. */
  private reportRemaps(unit?: number, n?: number): void {
    if (this.model.policy === 'dm-remap-v4') {
      for (const [k, s] of this.v4Made.splice(0)) this.reporter.remap(k, s);
      return;
    }
    if (unit === undefined || n === undefined) return;
    const blocksPerUnit = this.unitSectors / this.model.target.unit;
    for (let b = unit * blocksPerUnit; b < (unit + n) * blocksPerUnit; b++) {
      const s = this.model.target.lookup(b);
      if (s >= 0 && this.known.get(b) !== s) {
        this.known.set(b, s);
        this.reporter.remap(b, s);
      }
    }
  }
}

/** Builds the dust layer of a run: enabled, with the bad sectors of earlier runs. */
export function crashDust(main: BlockDevice, bad: ReadonlyArray<readonly [number, number]>): DustDevice {
  const dust = new DustDevice(main, { blockSize: 512, log: () => {} });
  dust.enable();
  for (const [sector, fails] of bad) if (!dust.isBadBlock(sector)) dust.addBadBlock(sector, fails);
  return dust;
}
