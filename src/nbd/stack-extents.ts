/**
 * Block status of a served model, as its clients see the export:
 *
 * - `base:allocation`: a hole (NBD_STATE_HOLE | NBD_STATE_ZERO) where the
 *   main device's backing file has a hole (SEEK_DATA / SEEK_HOLE) and the
 *   block is neither remapped (its data is on the spare: reported as data,
 *   which is what a read returns), pending nor bad (a read there fails, so it
 *   is not "zeroes" either). A block device, or no file under the stack: all data.
 * - `remapsim:health`: HealthFlag bits from the remap model (remapped,
 *   pending) and from the fault layers under main (dust's bad blocks, while
 *   the layer fails reads).
 *
 * The layers are found through their `main`, `inner`, `offset` and `hasBadIn`
 * members, as the control socket finds its layers; a restarting target is
 * asked for the model it runs now.
 */
import { type BlockDevice, SECTOR_SIZE } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { DmRemapV4Target } from '../remap/v4-target.js';
import { SafeRemapTarget } from '../remap/safe-target.js';
import { BlockState } from './constants.js';
import { type BlockStatusProvider, MAX_EXTENTS, type MetaContextSource } from './block-status.js';
import { alignRuns, bisectRuns, type Run, type Runs, runsOfSorted, sweepExtents } from './extents.js';
import { FileAllocation } from './file-allocation.js';
import { BASE_ALLOCATION, HEALTH_CONTEXT } from './meta-context.js';

/** Matching units a bisection looks at per request before it answers for less than asked. */
const MAX_UNITS = 1 << 16;

export interface StackExtentOptions {
  /** The exported target: a remap model, a target that restarts one (`model`), or a dust or flakey target. */
  target: BlockDevice;
  /** The top of the main device's layers (default: the model's `main`, or the target itself when it has none). */
  mainTop?: BlockDevice;
  /** The export's minimum block size: extents are multiples of it. */
  blockSize: number;
}

/** A layer that lists bad blocks (dust): `enabled` false when it fails nothing (bypass). */
interface BadList {
  hasBadIn(sector: number, count: number): boolean;
  readonly enabled?: boolean;
}

interface BadLayer {
  /** Export sector s is sector s + offset of this layer. */
  offset: number;
  layer: BadList;
}

interface MainChain {
  file?: { alloc: FileAllocation; offsetBytes: number };
  bad: BadLayer[];
}

function liveModel(target: BlockDevice): BlockDevice {
  const m = (target as { model?: unknown }).model;
  return m instanceof SafeRemapTarget || m instanceof DmRemapV4Target ? m : target;
}

function layerOffset(dev: object): number {
  const d = dev as { offset?: unknown; config?: { offset?: unknown } };
  if (typeof d.offset === 'number') return d.offset;
  if (typeof d.config?.offset === 'number') return d.config.offset;
  return 0;
}

/** Walks from the main device's top layer down to its file, noting the layers that list bad blocks. */
function walkMain(top: BlockDevice | undefined): MainChain {
  const chain: MainChain = { bad: [] };
  let offset = 0;
  for (let d: unknown = top, depth = 0; d && typeof d === 'object' && depth < 64; depth++) {
    if (d instanceof FileDevice) {
      const alloc = FileAllocation.open(d.name);
      if (alloc) chain.file = { alloc, offsetBytes: offset * SECTOR_SIZE };
      break;
    }
    const layer = d as Partial<BadList> & { inner?: unknown };
    if (typeof layer.hasBadIn === 'function') chain.bad.push({ offset, layer: layer as BadList });
    offset += layerOffset(d);
    d = layer.inner;
  }
  return chain;
}

/** The remapped and pending byte runs of [from, to) in a remap model. */
function modelRuns(model: BlockDevice, from: number, to: number): { remapped: Runs; pending: Run[] } {
  if (model instanceof SafeRemapTarget) {
    const unitBytes = model.unit * SECTOR_SIZE;
    const b0 = Math.floor(from / unitBytes);
    const b1 = Math.ceil(to / unitBytes);
    const r = bisectRuns((b, n) => model.remappedInRange(b, n), b0, b1 - b0, { maxRuns: MAX_UNITS, maxUnits: MAX_UNITS });
    const toBytes = (runs: Run[]): Run[] => runs.map(([s, e]) => [s * unitBytes, e * unitBytes]);
    return { remapped: { runs: toBytes(r.runs), end: r.end * unitBytes }, pending: toBytes(runsOfSorted(model.pendingBlocks(), b0, b1)) };
  }
  if (model instanceof DmRemapV4Target) {
    const s0 = Math.floor(from / SECTOR_SIZE);
    const s1 = Math.ceil(to / SECTOR_SIZE);
    const remapped: number[] = [];
    const pending: number[] = [];
    for (const e of model.entries) {
      const s = e.originalSector;
      if (s < s0 || s >= s1) continue;
      if (model.lookup(s) >= 0) remapped.push(s);
      else if (e.pending) pending.push(s);
    }
    const bytes = (keys: number[]): Run[] =>
      runsOfSorted(
        keys.sort((a, b) => a - b),
        s0,
        s1,
      ).map(([s, e]) => [s * SECTOR_SIZE, e * SECTOR_SIZE]);
    return { remapped: { runs: bytes(remapped), end: to }, pending: bytes(pending) };
  }
  return { remapped: { runs: [], end: to }, pending: [] };
}

function badRuns(layers: readonly BadLayer[], from: number, to: number): Runs {
  const all: Run[] = [];
  let end = to;
  const s0 = Math.floor(from / SECTOR_SIZE);
  for (const l of layers) {
    if (l.layer.enabled === false) continue; // dust in bypass fails nothing
    const r = bisectRuns((s, n) => l.layer.hasBadIn(s + l.offset, n), s0, Math.ceil(to / SECTOR_SIZE) - s0, { maxRuns: MAX_UNITS, maxUnits: MAX_UNITS });
    end = Math.min(end, r.end * SECTOR_SIZE);
    all.push(...r.runs.map(([s, e]): Run => [s * SECTOR_SIZE, e * SECTOR_SIZE]));
  }
  all.sort((a, b) => a[0] - b[0]);
  return { runs: alignRuns(all, 1), end };
}

/** The block status provider of a served model. close() closes the backing file it opened. */
export function modelBlockStatus(opts: StackExtentOptions): BlockStatusProvider {
  const { target, blockSize } = opts;
  const model0 = liveModel(target);
  const chain = walkMain(opts.mainTop ?? (model0 as { main?: BlockDevice }).main ?? target);
  const size = target.sectors * SECTOR_SIZE;

  /** Sources over [from, to): data (optional), remapped, pending, bad; aligned to the block size, and how far they are complete. */
  const gather = (from: number, want: number, withData: boolean): { to: number; sources: Run[][] } => {
    let to = Math.min(size, from + want);
    const { remapped, pending } = modelRuns(liveModel(target), from, to);
    const bad = badRuns(chain.bad, from, to);
    let data: Runs = { runs: [[from, to]], end: to };
    if (withData && chain.file) {
      const off = chain.file.offsetBytes;
      const r = chain.file.alloc.dataRuns(from + off, to + off, MAX_EXTENTS);
      data = { runs: r.runs.map(([s, e]): Run => [s - off, e - off]), end: r.end - off };
    }
    const end = Math.min(to, remapped.end, bad.end, data.end);
    to = Math.max(from + blockSize, Math.floor(end / blockSize) * blockSize);
    const sources = [remapped.runs, pending, bad.runs, data.runs].map((runs) => alignRuns(runs, blockSize));
    return { to, sources };
  };

  const allocation: MetaContextSource = {
    name: BASE_ALLOCATION,
    extents(offset, length, maxExtents) {
      const { to, sources } = gather(offset, length, true);
      return sweepExtents(offset, to, sources, (mask) => (mask === 0 ? BlockState.HOLE | BlockState.ZERO : 0), maxExtents);
    },
  };
  const health: MetaContextSource = {
    name: HEALTH_CONTEXT,
    extents(offset, length, maxExtents) {
      const { to, sources } = gather(offset, length, false);
      // bit i of the mask is source i: remapped, pending, bad, in HealthFlag's order
      return sweepExtents(offset, to, sources.slice(0, 3), (mask) => mask, maxExtents);
    },
  };
  return { contexts: [allocation, health], close: () => chain.file?.alloc.close() };
}
