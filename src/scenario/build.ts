/**
 * Turns a validated scenario into devices: backing files (created sparse in a
 * work directory, or existing files and devices), the fault layers over each
 * (latency, then flakey, then a dust bad-block list on top, so the remap
 * target sees the errors), the remap target, and the bad-sector growth.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type BlockDevice, SECTOR_SIZE, withoutClose } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import type { ControlTarget } from '../control/target.js';
import { BadListError, checkDdrescueMapSize, ddrescueBadRanges, loadIntoDust, parseDdrescueMapfile, parseSectorList } from '../faults/badlist.js';
import { parseBadblocksList } from '../faults/badblocks.js';
import type { DustDevice } from '../faults/dust.js';
import { BadSectorGrowth } from '../faults/growth.js';
import { openSafeModel, openV4Model } from '../stack/models.js';
import { StochasticFaultError } from '../faults/stochastic.js';
import { StochasticFaults, type StochasticSummary } from '../faults/stochastic-stack.js';
import { DetectionTracker, type HealthMonitor } from '../health/monitor.js';
import { ScannerOptionError } from '../health/scanner.js';
import { scenarioHealthMonitor } from '../health/scenario.js';
import { type OpenedModel, ReloadingTarget, type RemapModel } from '../remap/reloading-target.js';
import { SafeRemapTarget } from '../remap/safe-target.js';
import type { EngineDeviceSpec } from '../stack/engine-device.js';
import { type LayerStackSpec, openLayers } from '../stack/layers.js';
import { type Clock, realClock } from '../util/clock.js';
import { Random } from '../util/random.js';
import { type DeviceSpec, type FaultLayersSpec, type Policy, type Scenario, ScenarioError } from './schema.js';
import type { PriorContent } from '../workload/oracle.js';
import { safeMinSpare, v4MinSpare } from '../metadata/min-spare.js';
import { checkFileSize, createSparseFile } from '../block/sparse-file.js';
import { formatSize } from '../util/format-size.js';
import { checkWorkdir, openWorkdir, type Workdir } from './workdir.js';
import { sameFile, statIfAny } from '../util/file-identity.js';

export type Layer = BlockDevice & Partial<ControlTarget>;

export interface BuiltScenario {
  scenario: Scenario;
  policy: Policy;
  workdir: string;
  /** The target the jobs run on. */
  target: BlockDevice & ControlTarget;
  /** Every layer by name: main.file, main.latency, main.flakey, main.dust, spare.*, target. */
  layers: Map<string, Layer>;
  mainDust?: DustDevice;
  spareDust?: DustDevice;
  /** The remap model serving now (with target.restartEvery, a new one after each restart). */
  model(): RemapModel;
  /** Restarts made (target.restartEvery), and why they stopped if they did. */
  restarts(): { done: number; stopped?: string };
  /** Call with the run's clock reading: adds the bad sectors that are due, reads status and restarts the target when due. */
  advanceFaults(nowNs: number): void;
  /** Bad blocks added during the run so far. */
  grownBadBlocks(): number;
  /** How a worker thread builds its own copy of this model (safe policy only; undefined for dm-remap-v4). */
  engineDevice(): EngineDeviceSpec | undefined;
  /** True when [sector, sector+count) of the target holds a sector the main fault layers know to be bad (or just failed transiently). */
  isKnownBad(sector: number, count: number): boolean;
  /** The health monitor of the scenario's `scanner` section (undefined without one). */
  health: HealthMonitor | undefined;
  /** Who found each bad block that appeared during the run first: the scanner or a foreground read. */
  detection: DetectionTracker;
  /** Counts of the stochastic fault models (latent errors, weak sectors, transient errors), per role. */
  stochasticSummary(): { main?: StochasticSummary; spare?: StochasticSummary };
  /** 'zeroes' when the build created both backing files, else 'unknown' (an existing file or device may hold an earlier run's data). */
  priorContent: PriorContent;
  close(): void;
}

export interface BuildOptions {
  clock?: Clock;
  /** Overrides scenario.target.policy. */
  policy?: Policy;
  /** Overrides scenario.workdir. */
  workdir?: string;
  /** With a work directory: remove the images an earlier run left there first (see workdir.ts). */
  fresh?: boolean;
}

/**
 * Checks what the build will make or open, before anything is made: the
 * work directory (workdir.ts), that the filesystem can hold each new backing
 * file, that main and spare are not the same file or device, and that the
 * spare is big enough for the policy. Throws a ScenarioError (one line,
 * naming the field); creates nothing.
 */
export function checkScenarioDevices(scenario: Scenario, opts: { policy?: Policy; workdir?: string; fresh?: boolean } = {}): void {
  const policy = opts.policy ?? scenario.target.policy;
  const given = opts.workdir ?? scenario.workdir;
  const what = opts.workdir !== undefined ? '--workdir' : 'workdir';
  if (given !== undefined) checkWorkdir(path.resolve(given), scenario, policy, { fresh: opts.fresh, what });
  // a new image in a temporary directory is a file of its own: nothing to compare
  const where = (role: 'main' | 'spare'): string | undefined =>
    scenario.devices[role].path ?? (given === undefined ? undefined : path.join(path.resolve(given), `${role}.img`));
  const sectors = { main: 0, spare: 0 };
  for (const role of ['main', 'spare'] as const) {
    const spec = scenario.devices[role];
    if (spec.size !== undefined) {
      if (spec.size % spec.logicalBlockSize !== 0)
        throw new ScenarioError(`devices.${role}.size: ${spec.size} bytes is not a multiple of the ${spec.logicalBlockSize}-byte logical block size`);
      sectors[role] = spec.size / 512;
      const image = where(role);
      const reusable = image !== undefined && !opts.fresh && statIfAny(image)?.size === spec.size;
      if (!reusable) checkFileSize(image === undefined ? os.tmpdir() : existingDir(path.dirname(image)), spec.size, `devices.${role}.size`);
    } else {
      const dev = FileDevice.open(spec.path!, { readOnly: true, logicalBlockSize: spec.logicalBlockSize });
      sectors[role] = dev.sectors;
      dev.close();
    }
  }
  const [m, s] = [where('main'), where('spare')];
  if (m !== undefined && s !== undefined) {
    const mid = statIfAny(m);
    const sid = statIfAny(s);
    const same = mid && sid ? sameFile(mid, sid) : path.resolve(m) === path.resolve(s);
    if (same) {
      const id = mid?.isBlockDevice() ? `device number ${mid.rdev}` : mid ? `inode ${mid.ino} on device ${mid.dev}` : 'the same path';
      throw new ScenarioError(
        `devices.spare: ${s} is the same ${mid?.isBlockDevice() ? 'block device' : 'file'} as devices.main (${m}, ${id}); main and spare must be two devices`,
      );
    }
  }
  const lbs = scenario.devices.main.logicalBlockSize;
  const min = policy === 'safe' ? safeMinSpare(lbs) : v4MinSpare(sectors.main, lbs);
  if (sectors.spare < min) {
    const needs =
      policy === 'safe' ? 'the safe policy needs' : `dm-remap-v4 needs, for a main device of ${formatSize(sectors.main * 512)} (${sectors.main} sectors),`;
    throw new ScenarioError(
      `devices.spare: ${formatSize(sectors.spare * 512)} (${sectors.spare} sectors) is too small: ${needs} a spare of at least ${formatSize(min * 512)} (${min} sectors)`,
    );
  }
}

/** `dir`, or its nearest ancestor that exists (a work directory not made yet lands on that filesystem). */
function existingDir(dir: string): string {
  let d = path.resolve(dir);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}

export function buildScenario(scenario: Scenario, opts: BuildOptions = {}): BuiltScenario {
  const clock = opts.clock ?? realClock;
  const policy = opts.policy ?? scenario.target.policy;
  const given = opts.workdir ?? scenario.workdir;
  checkScenarioDevices(scenario, { policy, workdir: opts.workdir, fresh: opts.fresh });
  const wd = openWorkdir(given, scenario, policy, { fresh: opts.fresh, what: opts.workdir !== undefined ? '--workdir' : 'workdir' });
  const workdir = wd.dir;
  const layers = new Map<string, Layer>();
  const opened: BlockDevice[] = [];
  const random = new Random(scenario.seed ^ 0x6a09e667);
  const growths: BadSectorGrowth[] = [];
  const stochastic: { main?: StochasticFaults; spare?: StochasticFaults } = {};
  let reused = 0;
  const closeAll = (): void => {
    for (const d of opened.reverse()) {
      try {
        d.close();
      } catch {
        // closing is best effort
      }
    }
    wd.close();
  };
  try {
    const stack = (
      role: 'main' | 'spare',
      spec: DeviceSpec,
      faults: FaultLayersSpec | undefined,
    ): { top: BlockDevice; dust?: DustDevice; spec: LayerStackSpec } => {
      const { file, created } = openBacking(role, spec, wd);
      if (!created) reused++;
      opened.push(file);
      layers.set(`${role}.file`, file);
      const fileSpec = { path: file.name, direct: spec.direct, logicalBlockSize: file.logicalBlockSize, sectors: file.sectors };
      if (!faults) return { top: file, spec: { file: fileSpec } };
      // the seeds are drawn in layer order, bottom up, one per layer present
      const blockBytes = faults.dustBlockSize ?? file.logicalBlockSize;
      const f = faults.flakey;
      const t = faults.transientErrors;
      const want: LayerStackSpec = {
        file: fileSpec,
        latency: faults.latency && { ...faults.latency, seed: random.nextU32() },
        flakey: f && {
          params: [String(f.up), String(f.down), ...(f.features.length > 0 ? [String(f.features.length), ...f.features] : [])],
          startNs: clock.nowNs(),
          seed: random.nextU32(),
        },
        weak: faults.weakSectors.length > 0 ? { blockSectors: blockBytes / 512, seed: random.nextU32() } : undefined,
        transient: t && { probability: t.probability, region: t.region, blockSectors: blockBytes / 512, seed: random.nextU32() },
        dust: { blockSize: blockBytes },
      };
      const sl = openLayers(want, { clock, field: `faults.${role}`, file });
      for (const name of ['latency', 'flakey', 'weak', 'transient', 'dust'] as const) {
        const layer = sl[name];
        if (layer) layers.set(`${role}.${name}`, layer as Layer);
      }
      const dust = sl.dust!;
      const initial = initialBadSectors(role, faults, dust.sectors);
      if (initial.length > 0) loadIntoDust(dust, initial, { wrFailCnt: faults.writeFailCount });
      for (const g of faults.growth) {
        growths.push(
          new BadSectorGrowth(
            { startNs: g.start, rate: g.rate, cluster: g.cluster, writeFailCount: g.writeFailCount, maxClusters: g.maxClusters, region: g.region },
            dust,
            random.fork(),
            clock.nowNs(),
          ),
        );
      }
      if (faults.latentErrors.length > 0 || faults.weakSectors.length > 0 || sl.transient) {
        stochastic[role] = new StochasticFaults(`faults.${role}`, faults, dust, sl, random.fork(), clock.nowNs());
      }
      return { top: dust, dust, spec: sl.spec };
    };
    const main = stack('main', scenario.devices.main, scenario.faults.main);
    const spare = stack('spare', scenario.devices.spare, scenario.faults.spare);
    // both policies keep their metadata on the spare, as the real targets do: the safe
    // store formats a blank spare (and refuses one holding something else); the v4
    // store reads and rewrites the module's five copies
    const restartEvery = scenario.target.restartEvery;
    const statusEvery = scenario.target.statusEvery;
    if (restartEvery !== undefined && scenario.scanner)
      throw new ScenarioError('target.restartEvery: not with a scanner section (the scanner watches one target; a restart makes another)');
    const openModel = (under: (d: BlockDevice) => BlockDevice): OpenedModel => {
      if (policy === 'safe') {
        const m = openSafeModel(under(main.top), under(spare.top), { mainPath: 'main', sparePath: 'spare' });
        return { target: m.target, closeStore: () => m.store.close() };
      }
      return { target: openV4Model(under(main.top), under(spare.top), { mainPath: 'main', sparePath: 'spare', clock }).target };
    };
    // restarts load the table again on the same layers: each target gets views that leave them open
    const reloading = restartEvery !== undefined ? new ReloadingTarget(() => openModel(withoutClose)) : undefined;
    const single = reloading ? undefined : openModel((d) => d);
    const target: BlockDevice & ControlTarget = reloading ?? single!.target;
    const model = (): RemapModel => reloading?.model ?? single!.target;
    layers.set('target', target);
    const mainDust = main.dust;
    const detection = new DetectionTracker(mainDust?.sectorsPerBlock ?? target.logicalBlockSize / 512);
    stochastic.main?.onBad((s, n, t) => detection.appeared(s, n, t));
    const health = scenarioHealthMonitor(model(), scenario.scanner, { clock, tracker: detection });
    let nextDue = Math.min(...growths.map((g) => g.nextDueNs));
    const t0 = clock.nowNs();
    let nextStatus = statusEvery === undefined ? Infinity : t0 + statusEvery;
    let nextRestart = restartEvery === undefined ? Infinity : t0 + restartEvery;
    return {
      scenario,
      policy,
      workdir,
      target,
      layers,
      mainDust,
      spareDust: spare.dust,
      model,
      restarts: () => ({ done: reloading?.reloads ?? 0, stopped: reloading?.stopped }),
      advanceFaults(nowNs) {
        stochastic.main?.advance(nowNs);
        stochastic.spare?.advance(nowNs);
        if (nowNs >= nextStatus) {
          target.status(); // the monitor's `dmsetup status`
          while (nextStatus <= nowNs) nextStatus += statusEvery!;
        }
        if (nowNs >= nextRestart) {
          if (reloading!.reload() !== 'ok') nextRestart = Infinity;
          else while (nextRestart <= nowNs) nextRestart += restartEvery!;
        }
        if (nowNs < nextDue) return;
        for (const g of growths) g.advance(nowNs);
        nextDue = Math.min(...growths.map((g) => g.nextDueNs));
      },
      grownBadBlocks: () => growths.reduce((a, g) => a + g.added, 0) + (stochastic.main?.grownBadBlocks() ?? 0) + (stochastic.spare?.grownBadBlocks() ?? 0),
      engineDevice() {
        if (!(target instanceof SafeRemapTarget)) return undefined; // dm-remap-v4, or a target that restarts
        return {
          kind: 'model',
          policy: 'safe',
          main: main.spec,
          spare: spare.spec,
          target: target.shared,
          mainPath: target.mainPath,
          sparePath: target.sparePath,
        };
      },
      isKnownBad: (sector, count) => (mainDust?.hasBadIn(sector, count) ?? false) || (stochastic.main?.isTransient(sector, count) ?? false),
      health,
      detection,
      stochasticSummary: () => ({ main: stochastic.main?.summary(), spare: stochastic.spare?.summary() }),
      priorContent: reused === 0 ? 'zeroes' : 'unknown',
      close() {
        health?.close();
        if (single?.closeStore) single.closeStore();
        target.close(); // closes the layers below it (with restarts, the views do not: those close below)
        if (reloading) {
          main.top.close();
          spare.top.close();
        }
        opened.length = 0;
        wd.close();
      },
    };
  } catch (err) {
    closeAll();
    // stochastic-fault and scanner options that only the devices can check (a region with no whole block, a slice
    // that is not a whole number of blocks): their messages start with the field path
    if (err instanceof StochasticFaultError || err instanceof ScannerOptionError) throw new ScenarioError(err.message);
    throw err;
  }
}

/** The role's backing file or device; `created`: this call made it (so it holds zeroes). */
function openBacking(role: 'main' | 'spare', spec: DeviceSpec, wd: Workdir): { file: FileDevice; created: boolean } {
  if (spec.path !== undefined)
    return { file: FileDevice.open(spec.path, { direct: spec.direct, logicalBlockSize: spec.logicalBlockSize, exclusive: true }), created: false };
  const bytes = spec.size!;
  const { file, reuse } = wd.image(role);
  if (!reuse) createSparseFile(file, bytes, `devices.${role}.size`);
  wd.record(role, { bytes, logicalBlockSize: spec.logicalBlockSize });
  return {
    file: FileDevice.open(file, { direct: spec.direct, logicalBlockSize: spec.logicalBlockSize, sectors: bytes / 512, exclusive: true }),
    created: !reuse,
  };
}

function initialBadSectors(role: string, faults: FaultLayersSpec, deviceSectors: number): Array<{ start: number; count: number }> {
  const ranges = faults.badSectors.map((s) => ({ start: s, count: 1 }));
  if (faults.badSectorsFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(faults.badSectorsFile, 'utf8');
    } catch (err) {
      throw new ScenarioError(
        `faults.${role}.badSectorsFile: cannot read ${faults.badSectorsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    try {
      if (faults.badSectorsFormat === 'ddrescue') {
        const map = parseDdrescueMapfile(text);
        checkDdrescueMapSize(map, deviceSectors * SECTOR_SIZE);
        ranges.push(...ddrescueBadRanges(map));
      } else if (faults.badSectorsFormat === 'badblocks') ranges.push(...parseBadblocksList(text, faults.badBlockSize, deviceSectors * SECTOR_SIZE));
      else ranges.push(...parseSectorList(text).map((s) => ({ start: s, count: 1 })));
    } catch (err) {
      if (err instanceof BadListError) throw new ScenarioError(`faults.${role}.badSectorsFile: ${faults.badSectorsFile}: ${err.message}`);
      throw err;
    }
  }
  for (const r of ranges) {
    if (r.start + r.count > deviceSectors)
      throw new ScenarioError(`faults.${role}: bad sector ${r.start + r.count - 1} is beyond the device end (${deviceSectors} sectors)`);
  }
  return ranges;
}
