/**
 * One side (main or spare) of a model stack: a backing file and the fault
 * layers over it, bottom up (latency, flakey, weak sectors, transient errors,
 * then the dust bad-block list the target sees). A plain, serialisable spec
 * describes it; openLayers builds it, once on the main thread (which makes
 * the shared state: the dust and weak-sector lists) and again in each engine
 * worker (which attaches to that state through the filled-in spec).
 */
import type { BlockDevice, LogicalBlockSize } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { DustDevice, type DustShared } from '../faults/dust.js';
import { FlakeyDevice } from '../faults/flakey.js';
import { LatencyDevice, parseLatencySpec } from '../faults/latency.js';
import { TransientErrorDevice } from '../faults/transient.js';
import { WeakSectorDevice, type WeakShared } from '../faults/weak.js';
import type { Clock } from '../util/clock.js';
import { Random } from '../util/random.js';

export interface FileSpec {
  path: string;
  direct?: boolean;
  readOnly?: boolean;
  logicalBlockSize?: LogicalBlockSize;
  sectors?: number;
}

export interface LayerStackSpec {
  file: FileSpec;
  latency?: { read?: string; write?: string; flush?: string; discard?: string; seed: number };
  /** dm-flakey's table arguments after `<dev> <offset>`, and when its clock started. */
  flakey?: { params: string[]; startNs: number; seed: number };
  /** Without `shared`, a new weak-sector list. */
  weak?: { blockSectors: number; seed: number; shared?: WeakShared };
  transient?: { probability: number; region?: { from: number; to: number }; blockSectors: number; seed: number };
  /** Without `shared`, a new (enabled) bad-block list; `devName`: the device its status names (default the layer below). */
  dust?: { blockSize: number; shared?: DustShared; devName?: string };
}

export interface OpenedLayers {
  top: BlockDevice;
  file: BlockDevice;
  latency?: LatencyDevice;
  flakey?: FlakeyDevice;
  weak?: WeakSectorDevice;
  transient?: TransientErrorDevice;
  dust?: DustDevice;
  /** The spec with the shared lists filled in: what another thread opens to see the same faults. */
  spec: LayerStackSpec;
}

export interface LayerContext {
  /** 0 on the main thread; a worker's row (>= 1) mixes into the random layers' seeds, so threads do not fail in lockstep. */
  thread?: number;
  clock?: Clock;
  /** Field path that option errors start with (e.g. `faults.main`). */
  field?: string;
  /** The backing device, already open (the main thread opens and claims it); default: open spec.file. */
  file?: BlockDevice;
}

export function openLayers(spec: LayerStackSpec, ctx: LayerContext = {}): OpenedLayers {
  const f = spec.file;
  const file = ctx.file ?? FileDevice.open(f.path, { direct: f.direct, readOnly: f.readOnly, logicalBlockSize: f.logicalBlockSize, sectors: f.sectors });
  const out: OpenedLayers = { top: file, file, spec: { ...spec } };
  const thread = ctx.thread ?? 0;
  const seeded = (seed: number): Random => new Random(thread === 0 ? seed : (seed ^ Math.imul(thread + 1, 0x9e3779b1)) >>> 0);
  const field = (name: string): string | undefined => (ctx.field === undefined ? undefined : `${ctx.field}.${name}`);
  try {
    if (spec.latency) {
      const l = spec.latency;
      const parse = (t: string | undefined, op: string) => (t === undefined ? undefined : parseLatencySpec(t, field(`latency.${op}`)));
      out.latency = new LatencyDevice(out.top, {
        read: parse(l.read, 'read'),
        write: parse(l.write, 'write'),
        flush: parse(l.flush, 'flush'),
        discard: parse(l.discard, 'discard'),
        clock: ctx.clock,
        random: new Random(l.seed),
      });
      out.top = out.latency;
    }
    if (spec.flakey) {
      const fl = spec.flakey;
      out.flakey = FlakeyDevice.fromTable(out.top, [out.top.name, '0', ...fl.params], { startNs: fl.startNs, clock: ctx.clock, random: new Random(fl.seed) });
      out.top = out.flakey;
    }
    if (spec.weak) {
      const w = spec.weak;
      out.weak = new WeakSectorDevice(out.top, { blockSectors: w.blockSectors, shared: w.shared, clock: ctx.clock, random: seeded(w.seed) });
      out.top = out.weak;
      out.spec.weak = { ...w, shared: out.weak.shared };
    }
    if (spec.transient) {
      const t = spec.transient;
      out.transient = new TransientErrorDevice(
        out.top,
        { probability: t.probability, region: t.region, blockSectors: t.blockSectors, random: seeded(t.seed) },
        field('transientErrors'),
      );
      out.top = out.transient;
    }
    if (spec.dust) {
      const d = spec.dust;
      out.dust = new DustDevice(out.top, { blockSize: d.blockSize, shared: d.shared, devName: d.devName });
      if (!d.shared) out.dust.enable();
      out.top = out.dust;
      out.spec.dust = { ...d, shared: out.dust.shared };
    }
    return out;
  } catch (err) {
    if (!ctx.file) file.close();
    throw err;
  }
}
