import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { adviseHugePages } from '../../src/sys/huge-pages.js';

function thpMode(): string {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? 'absent';
  } catch {
    return 'absent';
  }
}

function anonHugeKiB(): number {
  const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('adviseHugePages', () => {
  it('leaves buffers too small for a whole huge page alone', () => {
    expect(adviseHugePages(new SharedArrayBuffer(3 * 1024 * 1024))).toBe(false);
  });

  const mode = thpMode();
  it.skipIf(mode === 'never' || mode === 'absent')(`backs an advised buffer with 2 MiB pages once it is touched (THP mode here: ${mode})`, () => {
    const before = anonHugeKiB();
    const sab = new SharedArrayBuffer(32 * 1024 * 1024);
    expect(adviseHugePages(sab)).toBe(true);
    new Float64Array(sab).fill(-1);
    // at least one of the ~15 aligned 2 MiB pieces (the kernel may fall back to small pages when memory is fragmented)
    expect(anonHugeKiB() - before).toBeGreaterThanOrEqual(2048);
    expect(new Float64Array(sab)[12345]).toBe(-1);
  });
});
