import { describe, expect, it } from 'vitest';
import { formatDdrescueMapfile, parseBadSectorFile } from '../../src/faults/badlist.js';
import { KnownBadSectors } from '../../src/faults/known-bad.js';

describe('known-bad sectors', () => {
  const set = KnownBadSectors.fromRanges([
    { start: 100, count: 1 },
    { start: 10, count: 5 },
    { start: 12, count: 10 }, // overlaps the one before
    { start: 22, count: 2 }, // touches it
  ]);

  it('merges ranges and answers whether a request covers one of them, at every edge', () => {
    expect(set.toRanges()).toEqual([
      { start: 10, count: 14 },
      { start: 100, count: 1 },
    ]);
    expect(set.sectors).toBe(15);
    expect(set.end).toBe(101);
    const brute = (s: number, n: number) => set.toRanges().some((r) => s < r.start + r.count && r.start < s + n);
    for (let s = 0; s < 110; s++) for (const n of [1, 2, 8, 64]) expect(set.covers(s, n), `[${s}, ${s + n})`).toBe(brute(s, n));
    expect(KnownBadSectors.fromRanges([]).covers(0, 1 << 30)).toBe(false);
  });

  it('widens to the blocks a bad-sector layer fails whole, and crosses threads as two arrays', () => {
    expect(set.widenedTo(4096).toRanges()).toEqual([
      { start: 8, count: 16 },
      { start: 96, count: 8 },
    ]);
    const copy = KnownBadSectors.fromShared(structuredClone(set.ranges));
    expect(copy.covers(100, 1)).toBe(true);
    expect(copy.covers(24, 76)).toBe(false);
    expect(KnownBadSectors.union([set, KnownBadSectors.fromRanges([{ start: 24, count: 1 }])]).toRanges()[0]).toEqual({ start: 10, count: 15 });
  });

  it('reads a plain list or a ddrescue mapfile, told apart by the first data line', () => {
    expect(parseBadSectorFile('# list\n7\n8\n0x10\n')).toEqual([
      { start: 7, count: 2 },
      { start: 16, count: 1 },
    ]);
    const map = formatDdrescueMapfile({
      currentPos: 0,
      currentStatus: '+',
      blocks: [
        { pos: 0, size: 1024, status: '+' },
        { pos: 1024, size: 1536, status: '-' },
        { pos: 2560, size: 512, status: '?' },
      ],
    });
    expect(parseBadSectorFile(map)).toEqual([{ start: 2, count: 3 }]);
  });
});
