/**
 * What a thread opens for itself: files and block devices by path (each
 * thread has its own descriptor), shared-memory devices by their buffer, and
 * the model: each worker builds its own copy of the layer stack (layers.ts)
 * over its own descriptors, attached to the primary's shared state (the dust
 * and weak-sector lists, the remap table, pending blocks, counters), with
 * the rare paths sent to the primary.
 */
import type { BlockDevice, IoStatus } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { NullDevice } from '../block/null-device.js';
import { SharedMemoryDevice, type SharedMemoryDeviceShared } from '../block/shared-memory-device.js';
import { SafeRemapTarget, type SafeShared, type SafeSlowCall } from '../remap/safe-target.js';
import { type FileSpec, type LayerStackSpec, openLayers } from './layers.js';

export type EngineDeviceSpec =
  | ({ kind: 'file' } & FileSpec)
  | { kind: 'shared-memory'; shared: SharedMemoryDeviceShared }
  /** No data moved (fio's ioengine=null): what a job costs without its I/O. */
  | { kind: 'null'; sectors: number }
  | { kind: 'model'; policy: 'safe'; main: LayerStackSpec; spare: LayerStackSpec; target: SafeShared; mainPath: string; sparePath: string };

/** The model's target on the main thread, as the engine sees it: a device that answers its workers' slow-path calls. */
export interface ModelPrimary extends BlockDevice {
  /** Rows in the model's shared counters: the primary's and one per worker queue. */
  readonly counterRowCount: number;
  handleSlowPath(op: number, args: ArrayLike<number>, data: Uint8Array): IoStatus;
}

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
    case 'null':
      return { device: new NullDevice(spec.sectors) };
    case 'model': {
      if (!ctx.slow) throw new Error('a model device needs a slow path to its primary');
      const main = openLayers(spec.main, { thread: ctx.row });
      let spare: ReturnType<typeof openLayers>;
      try {
        spare = openLayers(spec.spare, { thread: ctx.row });
      } catch (err) {
        main.top.close();
        throw err;
      }
      const device = new SafeRemapTarget({
        main: main.top,
        spare: spare.top,
        mainPath: spec.mainPath,
        sparePath: spec.sparePath,
        replicaOf: { shared: spec.target, row: ctx.row, slow: ctx.slow },
      });
      const { dust, transient } = main;
      return { device, isKnownBad: dust ? (s, n) => dust.hasBadIn(s, n) || (transient?.failedRecently(s, n) ?? false) : undefined };
    }
  }
}
