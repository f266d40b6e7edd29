/**
 * fio's latency bins, as `--output-format=json+` prints them ("bins" in each
 * clat_ns and the sync block's lat_ns): fio keeps 29 groups of 64 buckets
 * (FIO_IO_U_PLAT_BITS 6, FIO_IO_U_PLAT_GROUP_NR 29; stat.c plat_val_to_idx /
 * plat_idx_to_val), each bucket named by the mean of its range in ns.
 *
 * Our histogram is an HdrHistogram with 3 significant digits: its buckets are
 * 16 times narrower than fio's, so each of ours is put in the fio bucket of
 * its lowest value; a count lands in a neighbouring fio bucket only when one
 * of our buckets straddles a fio boundary (values within 0.1% of it).
 */
import type { LatencyHistogram } from './latency.js';

const PLAT_BITS = 6;
const PLAT_VAL = 1 << PLAT_BITS;
const PLAT_NR = 29 * PLAT_VAL;

/** fio's plat_val_to_idx: the bucket of a latency in ns. */
export function fioPlatIndex(ns: number): number {
  const v = Math.max(0, Math.floor(ns));
  const msb = v === 0 ? 0 : Math.floor(Math.log2(v));
  // log2 of a double can round up just below a power of two: correct it
  const bit = v >= 2 ** msb ? msb : msb - 1;
  if (bit <= PLAT_BITS) return v;
  const errorBits = bit - PLAT_BITS;
  const base = (errorBits + 1) << PLAT_BITS;
  const offset = (PLAT_VAL - 1) & Math.floor(v / 2 ** errorBits);
  return Math.min(base + offset, PLAT_NR - 1);
}

/** fio's plat_idx_to_val: the value (ns) fio names a bucket by, the mean of its range. */
export function fioPlatValue(idx: number): number {
  if (idx < PLAT_VAL << 1) return idx;
  const errorBits = (idx >> PLAT_BITS) - 1;
  const base = 2 ** (errorBits + PLAT_BITS);
  const k = idx % PLAT_VAL;
  return base + Math.floor((k + 0.5) * 2 ** errorBits);
}

/** The json+ "bins" object of a histogram: fio bucket value (ns, as text) -> count, ascending. */
export function fioBins(h: LatencyHistogram): Record<string, number> {
  const counts = new Map<number, number>();
  h.forEachBucket((lowest, _highest, c) => {
    const idx = fioPlatIndex(lowest);
    counts.set(idx, (counts.get(idx) ?? 0) + c);
  });
  const out: Record<string, number> = {};
  for (const idx of [...counts.keys()].sort((a, b) => a - b)) out[String(fioPlatValue(idx))] = counts.get(idx)!;
  return out;
}
