/**
 * Transparent huge pages for large shared tables. On these machines (a VM,
 * THP in `madvise` mode) a random load from a 20 MB table costs ~46 ns with
 * 4 KiB pages and ~34 ns with 2 MiB ones: with 4 KiB pages nearly every
 * random access also misses the TLB. madvise(MADV_HUGEPAGE) has to come
 * before the memory is first touched, so call this on a fresh buffer, before
 * filling it.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const MADV_HUGEPAGE = 14;
const HUGE_PAGE = 2 * 1024 * 1024;

type Advise = (buf: SharedArrayBuffer | ArrayBuffer) => boolean;
let advise: Advise | null | undefined;

/**
 * Asks the kernel to back the 2 MiB-aligned part of `buf` with huge pages.
 * Returns false when that part is empty, FFI is unavailable or the kernel
 * refuses (THP off): the memory then simply keeps normal pages.
 */
export function adviseHugePages(buf: SharedArrayBuffer | ArrayBuffer): boolean {
  if (buf.byteLength < 2 * HUGE_PAGE) return false;
  if (advise === undefined) advise = loadAdvise();
  return advise !== null && advise(buf);
}

function loadAdvise(): Advise | null {
  try {
    const koffi = require('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    const madvise = lib.func('int madvise(uintptr_t addr, size_t len, int advice)');
    // memset(p, 0, 0) changes nothing and returns p: the address koffi passes for the buffer
    const memsetPtr = lib.func('void *memset(void *s, int c, size_t n)');
    return (buf) => {
      const addr = Number(koffi.address(memsetPtr(new Uint8Array(buf, 0, 0), 0, 0)));
      const lo = Math.ceil(addr / HUGE_PAGE) * HUGE_PAGE;
      const hi = Math.floor((addr + buf.byteLength) / HUGE_PAGE) * HUGE_PAGE;
      return hi > lo && madvise(lo, hi - lo, MADV_HUGEPAGE) === 0;
    };
  } catch {
    return null;
  }
}
