/**
 * A device a worker thread can open for itself: files and block devices by
 * path (each thread has its own descriptor), shared-memory devices by their
 * buffer, and the model: each thread builds its own copy of the layer stack
 * over its own descriptors, attached to the primary's shared state (the
 * dust lists, the remap table, pending blocks, counters), with the rare
 * paths sent to the primary.
 */
import type { BlockDevice, LogicalBlockSize } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { SharedMemoryDevice, type SharedMemoryDeviceShared } from '../block/shared-memory-device.js';
import { DustDevice, type DustShared } from '../faults/dust.js';
import { openStochasticLayers, type StochasticLayersSpec } from '../faults/stochastic-stack.js';
import type { TransientErrorDevice } from '../faults/transient.js';
import { FlakeyDevice } from '../faults/flakey.js';
import { LatencyDevice, parseLatencySpec } from '../faults/latency.js';
import { SafeRemapTarget, type SafeShared, type SafeSlowCall } from '../remap/safe-target.js';
import { Random } from '../util/random.js';

export interface FileSpec {
  path: string;
  direct?: boolean;
  readOnly?: boolean;
  logicalBlockSize?: LogicalBlockSize;
  sectors?: number;
}

/** One side (main or spare) of the model: the file and the fault layers over it, bottom up. */
export interface LayerStackSpec {
  file: FileSpec;
  latency?: { read?: string; write?: string; flush?: string; discard?: string; seed: number };
  flakey?: { args: string[]; startNs: number; seed: number };
  /** Weak sectors (a shared list) and transient errors, below the dust list. */
  stochastic?: StochasticLayersSpec;
  dust?: { shared: DustShared; blockSize: number };
}

export type EngineDeviceSpec =
  | ({ kind: 'file' } & FileSpec)
  | { kind: 'shared-memory'; shared: SharedMemoryDeviceShared }
  | { kind: 'model'; policy: 'safe'; main: LayerStackSpec; spare: LayerStackSpec; target: SafeShared; mainPath: string; sparePath: string };

export interface OpenContext {
  /** The thread's counter row in the model's shared counters (queue + 1; row 0 is the primary's). */
  row: number;
  /** Sends a slow-path call to the primary. */
  slow?: SafeSlowCall;
}

export interface OpenedEngineDevice {
  device: BlockDevice;
  /** For a model: whether a range holds a sector its main fault layers know to be bad (the oracle's expected errors). */
  isKnownBad?: (sector: number, count: number) => boolean;
}

export function openEngineDevice(spec: EngineDeviceSpec, ctx: OpenContext = { row: 0 }): OpenedEngineDevice {
  switch (spec.kind) {
    case 'file':
      return {
        device: FileDevice.open(spec.path, { direct: spec.direct, readOnly: spec.readOnly, logicalBlockSize: spec.logicalBlockSize, sectors: spec.sectors }),
      };
    case 'shared-memory':
      return { device: new SharedMemoryDevice(spec.shared) };
    case 'model': {
      if (!ctx.slow) throw new Error('a model device needs a slow path to its primary');
      const mainLayers: { transient?: TransientErrorDevice } = {};
      const main = openStack(spec.main, ctx.row, mainLayers);
      const spare = openStack(spec.spare, ctx.row);
      const device = new SafeRemapTarget({
        main,
        spare,
        mainPath: spec.mainPath,
        sparePath: spec.sparePath,
        replicaOf: { shared: spec.target, row: ctx.row, slow: ctx.slow },
      });
      const dust = main instanceof DustDevice ? main : undefined;
      const transient = mainLayers.transient;
      return { device, isKnownBad: dust ? (s, n) => dust.hasBadIn(s, n) || (transient?.failedRecently(s, n) ?? false) : undefined };
    }
  }
}

function openStack(s: LayerStackSpec, thread = 0, out: { transient?: TransientErrorDevice } = {}): BlockDevice {
  let dev: BlockDevice = FileDevice.open(s.file.path, {
    direct: s.file.direct,
    readOnly: s.file.readOnly,
    logicalBlockSize: s.file.logicalBlockSize,
    sectors: s.file.sectors,
  });
  if (s.latency) {
    const l = s.latency;
    const parse = (t: string | undefined) => (t === undefined ? undefined : parseLatencySpec(t));
    dev = new LatencyDevice(dev, { read: parse(l.read), write: parse(l.write), flush: parse(l.flush), discard: parse(l.discard), random: new Random(l.seed) });
  }
  if (s.flakey) dev = FlakeyDevice.fromTable(dev, s.flakey.args, { startNs: s.flakey.startNs, random: new Random(s.flakey.seed) });
  if (s.stochastic) {
    const sl = openStochasticLayers(dev, s.stochastic, { thread });
    dev = sl.top;
    out.transient = sl.transient;
  }
  if (s.dust) dev = new DustDevice(dev, { blockSize: s.dust.blockSize, shared: s.dust.shared });
  return dev;
}
