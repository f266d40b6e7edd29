/**
 * Block status extents from runs: pure arithmetic over byte ranges, no I/O.
 *
 * A source (the backing file's data, the remapped blocks, the bad ones...)
 * is a sorted list of disjoint [start, end) byte runs, complete up to some
 * offset. sweepExtents() walks all sources over a range at once and gives
 * each piece the flags of the sources covering it, merged into extents.
 */
import type { BlockExtent } from './messages.js';

/** [start, end) in bytes. */
export type Run = [number, number];

/** Runs found in a range, and how far the search got: beyond `end` nothing is known. */
export interface Runs {
  runs: Run[];
  end: number;
}

/** Widens each run to `align` boundaries (a block partly covered counts whole), merging those that then touch. */
export function alignRuns(runs: readonly Run[], align: number): Run[] {
  const out: Run[] = [];
  for (const [s, e] of runs) {
    const a = Math.floor(s / align) * align;
    const b = Math.ceil(e / align) * align;
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Appends [s, e) to sorted runs, merging with the last when they touch. */
export function pushRun(runs: Run[], s: number, e: number): void {
  const last = runs[runs.length - 1];
  if (last && s <= last[1]) last[1] = Math.max(last[1], e);
  else runs.push([s, e]);
}

/**
 * Extents for [from, to): at each byte, bit i of the mask is set when
 * sources[i] covers it; `flagsOf(mask)` gives the extent's flags. Adjacent
 * pieces with equal flags merge. At most `maxExtents` extents (the last then
 * ends short of `to`); at least one when from < to.
 */
export function sweepExtents(
  from: number,
  to: number,
  sources: ReadonlyArray<readonly Run[]>,
  flagsOf: (mask: number) => number,
  maxExtents: number,
): BlockExtent[] {
  const out: BlockExtent[] = [];
  if (!(to > from)) return out;
  const idx = sources.map((runs) => {
    let i = 0;
    while (i < runs.length && runs[i][1] <= from) i++;
    return i;
  });
  let at = from;
  while (at < to) {
    let mask = 0;
    let next = to;
    for (let k = 0; k < sources.length; k++) {
      const runs = sources[k];
      let i = idx[k];
      while (i < runs.length && runs[i][1] <= at) i++;
      idx[k] = i;
      if (i >= runs.length) continue;
      const [s, e] = runs[i];
      if (s <= at) {
        mask |= 1 << k;
        next = Math.min(next, e);
      } else next = Math.min(next, s);
    }
    const flags = flagsOf(mask);
    const last = out[out.length - 1];
    if (last && last.flags === flags) last.length += next - at;
    else {
      if (out.length === maxExtents) break;
      out.push({ length: next - at, flags });
    }
    at = next;
  }
  return out;
}

/**
 * Sorted runs of the `unit`-sized pieces of [first, first + count) for which
 * `any(start, n)` is true, found by halving: `any` is asked of whole spans
 * first, so clean space costs one call. Stops after `maxRuns` runs or
 * `maxUnits` matching units, and then says where (`end`).
 */
export function bisectRuns(any: (start: number, n: number) => boolean, first: number, count: number, limits: { maxRuns: number; maxUnits: number }): Runs {
  const runs: Run[] = [];
  let units = 0;
  let end = first + count;
  let stopped = false;
  const visit = (lo: number, n: number): void => {
    if (stopped || n <= 0 || !any(lo, n)) return;
    if (n > 1) {
      const h = Math.floor(n / 2);
      visit(lo, h);
      visit(lo + h, n - h);
      return;
    }
    const last = runs[runs.length - 1];
    if (units >= limits.maxUnits || (!(last && last[1] === lo) && runs.length >= limits.maxRuns)) {
      stopped = true;
      end = lo;
      return;
    }
    units++;
    if (last && last[1] === lo) last[1] = lo + 1;
    else runs.push([lo, lo + 1]);
  };
  visit(first, count);
  return { runs, end };
}

/** The values of sorted `keys` within [lo, hi), as runs of consecutive numbers. */
export function runsOfSorted(keys: ArrayLike<number>, lo: number, hi: number): Run[] {
  let a = 0;
  let b = keys.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (keys[m] < lo) a = m + 1;
    else b = m;
  }
  const runs: Run[] = [];
  for (let i = a; i < keys.length && keys[i] < hi; i++) pushRun(runs, keys[i], keys[i] + 1);
  return runs;
}
