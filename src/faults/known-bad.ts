/**
 * Sectors known to be bad on a device the model does not own (a kernel
 * stack's dm-dust list, a ddrescue mapfile of a real disk): a read error on a
 * request that covers one of them is expected, not a finding.
 *
 * Kept as sorted, merged half-open ranges in two Float64Arrays, so the set
 * crosses to the engine's worker threads as it is (structured clone) and a
 * lookup is a binary search.
 */
import { SECTOR_SIZE } from '../block/device.js';
import type { SectorRange } from './badlist.js';

/** The plain form that crosses thread boundaries. */
export interface KnownBadRanges {
  /** Range starts (sectors), ascending. */
  starts: Float64Array;
  /** Range ends (exclusive), ascending; ranges neither overlap nor touch. */
  ends: Float64Array;
}

export class KnownBadSectors {
  readonly ranges: KnownBadRanges;

  private constructor(ranges: KnownBadRanges) {
    this.ranges = ranges;
  }

  /** From ranges in any order, overlapping or not. */
  static fromRanges(ranges: readonly SectorRange[]): KnownBadSectors {
    const sorted = ranges.filter((r) => r.count > 0).sort((a, b) => a.start - b.start);
    const starts: number[] = [];
    const ends: number[] = [];
    for (const r of sorted) {
      const last = ends.length - 1;
      if (last >= 0 && r.start <= ends[last]) ends[last] = Math.max(ends[last], r.start + r.count);
      else {
        starts.push(r.start);
        ends.push(r.start + r.count);
      }
    }
    return new KnownBadSectors({ starts: Float64Array.from(starts), ends: Float64Array.from(ends) });
  }

  /** Another thread's set (KnownBadSectors.ranges), taken as it is. */
  static fromShared(ranges: KnownBadRanges): KnownBadSectors {
    return new KnownBadSectors(ranges);
  }

  /** The union of several sets. */
  static union(sets: readonly KnownBadSectors[]): KnownBadSectors {
    return KnownBadSectors.fromRanges(sets.flatMap((s) => s.toRanges()));
  }

  /**
   * Every sector the kernel fails along with these: a bad-sector layer fails
   * whole blocks (dm-dust its block size, dm-error whole logical blocks), so
   * one listed sector makes its block fail.
   */
  widenedTo(blockBytes: number): KnownBadSectors {
    const spb = blockBytes / SECTOR_SIZE;
    if (spb <= 1) return this;
    return KnownBadSectors.fromRanges(
      this.toRanges().map((r) => {
        const first = r.start - (r.start % spb);
        const end = Math.ceil((r.start + r.count) / spb) * spb;
        return { start: first, count: end - first };
      }),
    );
  }

  /** Sectors in the set. */
  get sectors(): number {
    let n = 0;
    for (let i = 0; i < this.ranges.starts.length; i++) n += this.ranges.ends[i] - this.ranges.starts[i];
    return n;
  }

  /** The first sector past the last range (0 when empty). */
  get end(): number {
    const e = this.ranges.ends;
    return e.length === 0 ? 0 : e[e.length - 1];
  }

  /** True when [sector, sector + count) holds a sector of the set. */
  covers(sector: number, count: number): boolean {
    const { starts, ends } = this.ranges;
    // the last range starting before the request's end
    let lo = 0;
    let hi = starts.length;
    const end = sector + count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid] < end) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && ends[lo - 1] > sector;
  }

  toRanges(): SectorRange[] {
    const out: SectorRange[] = [];
    for (let i = 0; i < this.ranges.starts.length; i++) out.push({ start: this.ranges.starts[i], count: this.ranges.ends[i] - this.ranges.starts[i] });
    return out;
  }
}
