import { describe, expect, it } from 'vitest';
import { EIO, OK } from '../../src/block/device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import {
  BadListError,
  ddrescueBadRanges,
  formatDdrescueMapfile,
  formatSectorList,
  loadIntoDust,
  parseDdrescueMapfile,
  parseSectorList,
  sectorsToRanges,
} from '../../src/faults/badlist.js';
import { DustDevice } from '../../src/faults/dust.js';

function lineOf(fn: () => unknown): { line: number; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof BadListError) return { line: err.line, message: err.message };
    throw err;
  }
  throw new Error('expected a BadListError');
}

describe('plain bad-sector list', () => {
  const golden = ['# bad sectors of disk A', '100', '  7   # trailing comment', '0x10', '', '100', '\t', '# end'].join('\n');

  it('parses sectors, comments, blanks and duplicates into a sorted set', () => {
    expect(parseSectorList(golden)).toEqual([7, 16, 100]);
    expect(parseSectorList('5\r\n3\r\n')).toEqual([3, 5]);
    expect(parseSectorList('')).toEqual([]);
  });

  it.each([
    ['1\n2\nabc\n', 3, "'abc' is not a sector number"],
    ['# x\n5 6\n', 2, "expected one sector number, got '5 6'"],
    ['\n\n-1', 3, "'-1' is not a sector number"],
    ['1.5', 1, "'1.5' is not a sector number"],
    ['99999999999999999999', 1, 'is too large'],
    ['10\n2048\n', 2, 'sector 2048 is beyond the device end (sectors 0..2047)'],
  ])('%j fails at line %i', (text, line, msg) => {
    const e = lineOf(() => parseSectorList(text, { limit: 2048 }));
    expect(e.line).toBe(line);
    expect(e.message).toContain(`line ${line}: `);
    expect(e.message).toContain(msg);
  });

  it('formats a list that parses back, and groups runs', () => {
    const text = formatSectorList([9, 3, 4, 3, 5], 'from test');
    expect(text).toBe('# from test\n3\n4\n5\n9\n');
    expect(parseSectorList(text)).toEqual([3, 4, 5, 9]);
    expect(sectorsToRanges([9, 3, 4, 5, 11, 10])).toEqual([
      { start: 3, count: 3 },
      { start: 9, count: 3 },
    ]);
  });
});

// Expected sector lists below were produced by `ddrescuelog -b <size> -l<types>` (GNU ddrescue 1.27, Debian).
const GOLDEN_MAP = `# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue -d /dev/sdb disk.img disk.map
# Start time:   2024-03-02 10:00:00
# Current time: 2024-03-02 11:12:13
# Trimming failed blocks... (forwards)
# current_pos  current_status  current_pass
0x00011000     *               1
#      pos        size  status
0x00000000  0x00010000  +
0x00010000  0x00000400  -
0x00010400  0x00000C00  *   # trailing comment
0x00011000  0x00000100  /
0x00011100  0x0000EF00  +
0x00020000  0x00000200  -
0x00020200  0x00001E00  ?
0x00022000  01000       -
0x00022200  512         +
`;

const OLD_MAP = `# Rescue Logfile. Created by GNU ddrescue version 1.19
# current_pos  current_status
0xE8C25C2C00 +
# pos size status
0x00000000 0xE8C25C2000 +
0xE8C25C2000 0x00001000 -
0xE8C25C3000 0x1E7F3000 +
`;

function expand(ranges: { start: number; count: number }[]): number[] {
  return ranges.flatMap((r) => Array.from({ length: r.count }, (_, i) => r.start + i));
}

describe('GNU ddrescue mapfile', () => {
  it('parses the status line and the blocks (hex, decimal and octal)', () => {
    const map = parseDdrescueMapfile(GOLDEN_MAP);
    expect(map.currentPos).toBe(0x11000);
    expect(map.currentStatus).toBe('*');
    expect(map.currentPass).toBe(1);
    expect(map.blocks).toHaveLength(9);
    expect(map.blocks[2]).toEqual({ pos: 0x10400, size: 0xc00, status: '*' });
    expect(map.blocks[7]).toEqual({ pos: 0x22000, size: 512, status: '-' });
    expect(map.blocks[8]).toEqual({ pos: 0x22200, size: 512, status: '+' });
  });

  it('gives the sectors ddrescuelog lists, per status set and sector size', () => {
    const map = parseDdrescueMapfile(GOLDEN_MAP);
    expect(expand(ddrescueBadRanges(map, { statuses: ['-'] }))).toEqual([128, 129, 256, 272]);
    expect(expand(ddrescueBadRanges(map))).toEqual([128, 129, 130, 131, 132, 133, 134, 135, 136, 256, 272]);
    expect(expand(ddrescueBadRanges(map, { statuses: ['*'] }))).toEqual([130, 131, 132, 133, 134, 135]);
    expect(expand(ddrescueBadRanges(map, { statuses: ['/'] }))).toEqual([136]);
    expect(expand(ddrescueBadRanges(map, { statuses: ['?'] }))).toEqual(Array.from({ length: 15 }, (_, i) => 257 + i));
    expect(expand(ddrescueBadRanges(map, { sectorSize: 4096 }))).toEqual([16, 17, 32, 34]);
    expect(ddrescueBadRanges(map)).toEqual([
      { start: 128, count: 9 },
      { start: 256, count: 1 },
      { start: 272, count: 1 },
    ]);
  });

  it('reads mapfiles from ddrescue before 1.21 (no current_pass)', () => {
    const map = parseDdrescueMapfile(OLD_MAP);
    expect(map.currentPass).toBeUndefined();
    expect(ddrescueBadRanges(map)).toEqual([{ start: 1952525840, count: 8 }]);
  });

  it('formats a mapfile that parses back to the same map', () => {
    for (const text of [GOLDEN_MAP, OLD_MAP]) {
      const map = parseDdrescueMapfile(text);
      expect(parseDdrescueMapfile(formatDdrescueMapfile(map))).toEqual(map);
    }
    expect(formatDdrescueMapfile(parseDdrescueMapfile(OLD_MAP))).toContain('0xE8C25C2000  0x00001000  -');
  });

  it.each([
    ['0 + 1\n0 512 +\n1024 512 -\n', 3, 'blocks are not contiguous: this block starts at 1024, the previous one ends at 512'],
    ['0 + 1\n0 512 +\n256 512 -\n', 3, 'blocks are not contiguous'],
    ['0 + 1\n0 512 +\n512 0 -\n', 3, 'block size must be > 0'],
    ['0 + 1\n0 512 +\n512 512 x\n', 3, "block status 'x' is not one of ? * / - +"],
    ['# c\n0 Z 1\n0 512 -\n', 2, "current_status 'Z' is not one of ? * / - F G +"],
    ['0 + 0\n0 512 -\n', 1, "current_pass '0' must be a positive decimal integer"],
    ['0 + 1\n0x 512 -\n', 2, "pos '0x' is not an integer"],
    ['0 + 1\n0 09 -\n', 2, "size '09' is not an integer"],
    ['0 + 1\n0 512\n', 2, 'bad block line'],
    ['0 512 - 7 8\n', 1, 'bad status line'],
    ['# only comments\n', 0, 'no status line'],
  ])('%j fails at line %i', (text, line, msg) => {
    const e = lineOf(() => parseDdrescueMapfile(text));
    expect(e.line).toBe(line);
    expect(e.message).toContain(msg);
    if (line > 0) expect(e.message).toContain(`ddrescue mapfile, line ${line}: `);
  });

  it("takes '#' as a comment only at line start or after whitespace", () => {
    expect(() => parseDdrescueMapfile('0 + 1\n0 512 -#x\n')).toThrow(/block status '-#x'/);
  });
});

describe('loading bad sectors into dust', () => {
  it('lists the dust blocks that hold the sectors, numbered on the underlying device', () => {
    const dust = DustDevice.fromTable(new MemoryDevice({ sectors: 4096 }), ['m', '0', '4096']);
    expect(loadIntoDust(dust, [9, 10, 17, 100])).toEqual({ added: 3, alreadyListed: 0 });
    expect(dust.message(['listbadblocks'])).toBe('1\n2\n12\n');
    expect(loadIntoDust(dust, [{ start: 8, count: 17 }])).toEqual({ added: 1, alreadyListed: 2 });
    const shifted = DustDevice.fromTable(new MemoryDevice({ sectors: 4096 }), ['m', '16', '4096']);
    loadIntoDust(shifted, [0, 7], { wrFailCnt: 3 });
    expect(shifted.listBadBlocks()).toEqual([2]);
    expect(shifted.writeFailCount(2)).toBe(3);
  });

  it('refuses sectors past the end and sets that are too large', () => {
    const dust = DustDevice.fromTable(new MemoryDevice({ sectors: 64 }), ['m', '0', '512']);
    expect(() => loadIntoDust(dust, [63, 64])).toThrow(/beyond the end/);
    expect(() => loadIntoDust(dust, [{ start: 0, count: 20 }], { maxBlocks: 10 })).toThrow(/more than 10 blocks/);
    expect(dust.badBlockCount).toBe(0);
  });

  it('a ddrescue mapfile, loaded and enabled, fails reads of exactly its bad sectors', () => {
    const inner = new MemoryDevice({ sectors: 512 });
    const dust = DustDevice.fromTable(inner, ['m', '0', '512']);
    loadIntoDust(dust, ddrescueBadRanges(parseDdrescueMapfile(GOLDEN_MAP)));
    dust.message(['enable']);
    const bad = new Set([128, 129, 130, 131, 132, 133, 134, 135, 136, 256, 272]);
    const buf = new Uint8Array(512);
    for (let s = 0; s < 512; s++) expect(dust.read(s, buf), `sector ${s}`).toBe(bad.has(s) ? EIO : OK);
  });
});
