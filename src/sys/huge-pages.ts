/**
 * Transparent huge pages for large shared tables. On these machines (a VM,
 * THP in `madvise` mode) a random load from a 20 MB table costs ~46 ns with
 * 4 KiB pages and ~34 ns with 2 MiB ones: with 4 KiB pages nearly every
 * random access also misses the TLB. madvise(MADV_HUGEPAGE) has to come
 * before the memory is first touched, so call this on a fresh buffer, before
 * filling it.
 */
import { type Libc, libc } from './libc.js';

const MADV_HUGEPAGE = 14;
const HUGE_PAGE = 2 * 1024 * 1024;
let adviceOn = true;

/**
 * Turns the advice off for this process: for one that makes many short-lived,
 * sparsely used tables (the simulator), where a huge page costs a 2 MiB
 * zeroing, and often a compaction, per table touched (~10 ms here) and saves nothing.
 */
export function setHugePageAdvice(on: boolean): void {
  adviceOn = on;
}

/**
 * Asks the kernel to back the 2 MiB-aligned part of `buf` with huge pages.
 * Returns false when that part is empty, FFI is unavailable or the kernel
 * refuses (THP off): the memory then simply keeps normal pages.
 */
export function adviseHugePages(buf: SharedArrayBuffer | ArrayBuffer, sys?: Libc): boolean {
  if (!adviceOn || buf.byteLength < 2 * HUGE_PAGE) return false;
  let s: Libc;
  try {
    s = sys ?? libc();
  } catch {
    return false;
  }
  const addr = s.addressOf(new Uint8Array(buf, 0, 0));
  const lo = Math.ceil(addr / HUGE_PAGE) * HUGE_PAGE;
  const hi = Math.floor((addr + buf.byteLength) / HUGE_PAGE) * HUGE_PAGE;
  return hi > lo && s.madvise(lo, hi - lo, MADV_HUGEPAGE);
}
