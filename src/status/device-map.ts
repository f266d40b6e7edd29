/**
 * A map of the device for the report: how many sectors in each stretch of
 * the LBA space are bad, pending or remapped. The space is cut into at most
 * `buckets` equal buckets, so a 2 TiB device costs no more than a 16 MiB one.
 */
import type { DustDevice } from '../faults/dust.js';
import { SafeRemapTarget } from '../remap/safe-target.js';
import { DmRemapV4Target } from '../remap/v4-target.js';

export const MAP_LAYERS = ['bad', 'pending', 'remapped'] as const;
export type MapLayer = (typeof MAP_LAYERS)[number];

export interface DeviceMapJSON {
  /** Device size in 512-byte sectors. */
  sectors: number;
  /** Sectors per bucket (the last bucket may be shorter). */
  bucketSectors: number;
  buckets: number;
  /** Per layer, sectors of that kind in each bucket (arrays of length `buckets`). */
  bad: number[];
  pending: number[];
  remapped: number[];
  /** Per layer, sectors in all. */
  totals: Record<MapLayer, number>;
}

/** Entries of `sectorsEach` sectors, each starting at a sector in `starts` (blocks times their size). */
export interface SectorList {
  starts: ArrayLike<number>;
  sectorsEach: number;
}

export const DEFAULT_MAP_BUCKETS = 1024;

export interface DeviceMapInput {
  sectors: number;
  /** Most buckets (default 1024). */
  buckets?: number;
  bad?: SectorList;
  pending?: SectorList;
  remapped?: SectorList;
}

export function buildDeviceMap(input: DeviceMapInput): DeviceMapJSON {
  const { sectors } = input;
  if (!Number.isSafeInteger(sectors) || sectors <= 0) throw new RangeError(`device map: sectors must be a positive integer, got ${String(sectors)}`);
  const most = input.buckets ?? DEFAULT_MAP_BUCKETS;
  if (!Number.isInteger(most) || most < 1 || most > 1 << 16)
    throw new RangeError(`device map: buckets must be an integer from 1 to 65536, got ${String(most)}`);
  const bucketSectors = Math.ceil(sectors / most);
  const buckets = Math.ceil(sectors / bucketSectors);
  const out: DeviceMapJSON = { sectors, bucketSectors, buckets, bad: [], pending: [], remapped: [], totals: { bad: 0, pending: 0, remapped: 0 } };
  for (const layer of MAP_LAYERS) {
    const counts = new Array<number>(buckets).fill(0);
    const list = input[layer];
    if (list !== undefined) {
      const each = list.sectorsEach;
      if (!Number.isSafeInteger(each) || each < 1) throw new RangeError(`device map: ${layer}.sectorsEach must be a positive integer, got ${String(each)}`);
      for (let i = 0; i < list.starts.length; i++) {
        const s = list.starts[i];
        if (!Number.isSafeInteger(s) || s < 0 || s >= sectors)
          throw new RangeError(`device map: ${layer}.starts[${i}] = ${String(s)} is outside the device (0..${sectors - 1})`);
        // an entry can straddle buckets (or run past the end of the device: that part is dropped)
        const end = Math.min(sectors, s + each);
        for (let a = s; a < end; ) {
          const b = Math.floor(a / bucketSectors);
          const next = Math.min(end, (b + 1) * bucketSectors);
          counts[b] += next - a;
          out.totals[layer] += next - a;
          a = next;
        }
      }
    }
    out[layer] = counts;
  }
  return out;
}

/**
 * The map of a model target at the end of a run: its remaps and pending
 * blocks, and the bad blocks of the dust layer under its main device.
 */
export function deviceMapOf(target: object, mainDust?: DustDevice, buckets?: number): DeviceMapJSON {
  const bad = mainDust ? { starts: mainDust.listBadBlocks().map((b) => b * mainDust.sectorsPerBlock), sectorsEach: mainDust.sectorsPerBlock } : undefined;
  if (target instanceof SafeRemapTarget) {
    const unit = target.unit;
    const keys = target.remaps().keys;
    const remapped = new Float64Array(keys.length);
    for (let i = 0; i < keys.length; i++) remapped[i] = keys[i] * unit;
    return buildDeviceMap({
      sectors: target.sectors,
      buckets,
      bad,
      pending: { starts: target.pendingBlocks().map((b) => b * unit), sectorsEach: unit },
      remapped: { starts: remapped, sectorsEach: unit },
    });
  }
  if (target instanceof DmRemapV4Target) {
    // entries restored from metadata are not checked against the device size by the module: leave those out
    const starts = target.entries.map((e) => e.originalSector).filter((s) => s < target.sectors);
    return buildDeviceMap({ sectors: target.sectors, buckets, bad, remapped: { starts, sectorsEach: target.snapshot().sectorsPerRemap } });
  }
  throw new TypeError('device map: deviceMapOf takes a SafeRemapTarget or a DmRemapV4Target');
}
