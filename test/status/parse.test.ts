/**
 * Status lines parsed into named fields: recorded lines of the kernel targets
 * (dm-remap-v4's documented example, dust and flakey as the kernel lane
 * printed them) and of the models, and live lines from the models.
 */
import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { FlakeyDevice } from '../../src/faults/flakey.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { ManualClock } from '../../src/util/clock.js';
import { StatusParseError, V4_STATUS_FIELDS, fieldNumber, fieldRecord, parseDustCount, parseStatusLine, parseStatusText } from '../../src/status/parse.js';

/** design/dm-remap-v4.md: the module's own example of `dmsetup status`. */
const V4_DOC_LINE =
  '0 204800 dm-remap-v4 v4.0-phase1.4 /dev/mapper/lin /dev/loop18 42 0 0 0 0 42 261566 6227 21166194365 512 40960 42 42 0 0 1 41 1 0 0 100 0 2 operational real';
/** The loaded module in the kernel lane (main 131072 sectors, spare 32768): token 14 is the spare's size. */
const V4_KERNEL_LINE =
  '0 131072 dm-remap-v4 v4.0-phase1.4 /dev/mapper/bad /dev/loop1 4 1 0 0 2 5 337431 67486 233483440 512 32768 5 5 0 0 0 5 0 0 0 100 0 0 operational real';
/** The kernel lane (test/vm/dm-control.test.ts): dust over a loop device, as the kernel returns it. */
const DUST_KERNEL_LINE = '0 8192 dust 7:0 fail_read_on_bad_block verbose';
/** flakey's kernel status has no tokens: `dmsetup status` printed '0 8192 flakey ' in the VM; DmDeviceTarget drops the space. */
const FLAKEY_KERNEL_LINE = '0 8192 flakey';
const FLAKEY_DMSETUP_LINE = '0 8192 flakey \n';
const SAFE_LINE = '0 524288 remap v1 main spare 5 23 5/53584 5 5 0 ok 97';

describe('dm-remap-v4 status (28 tokens)', () => {
  it("names every token of the module's documented example", () => {
    const s = parseStatusLine(V4_DOC_LINE);
    expect(s).toMatchObject({ start: 0, length: 204800, type: 'dm-remap-v4', known: true });
    expect(s.tokens).toHaveLength(28);
    const f = fieldRecord(s);
    expect(f).toEqual({
      version: 'v4.0-phase1.4',
      mainPath: '/dev/mapper/lin',
      sparePath: '/dev/loop18',
      reads: 42,
      writes: 0,
      remappedReads: 0,
      errors: 0,
      activeMappings: 0,
      ioOperations: 42,
      totalMapTimeNs: 261566,
      avgMapTimeNs: 6227,
      peakThroughput: 21166194365,
      sectorSize: 512,
      spareSectors: 40960,
      totalIos: 42,
      normalIos: 42,
      remappedIos: 0,
      remappedSectors: 0,
      cacheHits: 1,
      cacheMisses: 41,
      fastPathHits: 1,
      slowPathHits: 0,
      healthScans: 0,
      healthScore: 100,
      hotspots: 0,
      cacheHitRatePct: 2,
      mode: 'operational',
      deviceMode: 'real',
    });
    // the example is self-consistent, as the research found: avg = floor(total / ops), hit rate = floor(hits * 100 / lookups)
    expect(Math.floor(261566 / 42)).toBe(f.avgMapTimeNs);
    expect(Math.floor((1 * 100) / 42)).toBe(f.cacheHitRatePct);
    expect(s.fields.find((x) => x.key === 'spareSectors')!.note).toMatch(/mod 2\^32/);
  });

  it('reads a line of the loaded module: token 14 is the spare size', () => {
    const s = parseStatusLine(V4_KERNEL_LINE);
    expect(s.known).toBe(true);
    expect(fieldNumber(s, 'spareSectors')).toBe(32768);
    expect(fieldNumber(s, 'activeMappings')).toBe(2);
    expect(fieldNumber(s, 'normalIos')).toBe(5);
  });

  it('matches the live model token for token, and its counters move with I/O', () => {
    const clock = new ManualClock(0);
    const main = new DustDevice(new MemoryDevice({ sectors: 8192, name: 'm' }));
    main.enable();
    main.addBadBlock(100);
    const t = new DmRemapV4Target({ main, spare: new MemoryDevice({ sectors: 4096, name: 's' }), mainPath: '/dev/loop1', sparePath: '/dev/loop2', clock });
    const buf = new Uint8Array(512);
    for (let i = 0; i < 10; i++) t.read(i * 8, buf);
    for (let i = 0; i < 3; i++) t.write(1000 + i, buf);
    expect(t.read(100, buf)).not.toBe(0); // the bad sector fails and a (pending) remap is added
    const line = t.status();
    const s = parseStatusLine(line);
    expect(s.known).toBe(true);
    const tokens = line.split(' ').slice(3);
    V4_STATUS_FIELDS.forEach((def, i) => expect(String(fieldRecord(s)[def.key])).toBe(tokens[i]));
    expect(fieldNumber(s, 'reads')).toBe(11);
    expect(fieldNumber(s, 'writes')).toBe(3);
    expect(fieldNumber(s, 'activeMappings')).toBe(1);
    expect(fieldNumber(s, 'spareSectors')).toBe(4096);
  });

  it('keeps u64 counters beyond 2^53 exact, as text', () => {
    const big = V4_DOC_LINE.replace(' 21166194365 ', ' 18446744073709551615 ');
    const s = parseStatusLine(big);
    expect(s.known).toBe(true);
    expect(fieldRecord(s).peakThroughput).toBe('18446744073709551615');
  });

  it('says why a line does not fit the layout, and keeps its tokens', () => {
    const short = parseStatusLine(V4_DOC_LINE.replace(' real', ''));
    expect(short.known).toBe(false);
    expect(short.mismatch).toBe('dm-remap-v4 prints 28 status tokens, this line has 27');
    expect(short.tokens).toHaveLength(27);
    const word = parseStatusLine(V4_DOC_LINE.replace(' 261566 ', ' lots '));
    expect(word.mismatch).toMatch(/token 10 \(totalMapTimeNs\) must be a decimal number, got 'lots'/);
  });
});

describe('dust, flakey and the safe remap target', () => {
  it('dust: the kernel line and the model line, with the table adding the block size', () => {
    const k = parseStatusLine(DUST_KERNEL_LINE, '0 8192 dust 7:0 0 4096');
    expect(fieldRecord(k)).toEqual({ device: '7:0', failReads: true, quiet: false, blockSize: 4096 });
    const dust = new DustDevice(new MemoryDevice({ sectors: 1024, name: '/dev/loop7' }));
    expect(fieldRecord(parseStatusLine(dust.status(), dust.table()))).toEqual({ device: '/dev/loop7', failReads: false, quiet: false, blockSize: 512 });
    dust.enable();
    dust.message(['quiet']);
    expect(fieldRecord(parseStatusLine(dust.status()))).toEqual({ device: '/dev/loop7', failReads: true, quiet: true });
    expect(parseStatusLine('0 8 dust 7:0 sometimes verbose').mismatch).toMatch(/fail_read_on_bad_block or bypass, got 'sometimes'/);
  });

  it("dust's countbadblocks reply", () => {
    const dust = new DustDevice(new MemoryDevice({ sectors: 1024 }));
    dust.addBadBlock(3);
    dust.addBadBlock(9);
    expect(parseDustCount(dust.message(['countbadblocks']))).toBe(2);
    // what Linux 6.1's dm-dust returned through DM_TARGET_MSG in the kernel lane's VM
    expect(parseDustCount('countbadblocks: 2 badblock(s) found\n')).toBe(2);
    expect(parseDustCount('Invalid argument')).toBeUndefined();
  });

  it('flakey: an empty status, the table supplying up/down and features', () => {
    const bare = parseStatusLine(FLAKEY_KERNEL_LINE);
    expect(bare).toMatchObject({ type: 'flakey', known: true, fields: [], tokens: [] });
    expect(parseStatusLine(FLAKEY_DMSETUP_LINE)).toEqual(bare);
    expect(fieldRecord(parseStatusLine(FLAKEY_DMSETUP_LINE, '0 8192 flakey 7:0 0 3 1 1 drop_writes'))).toEqual({
      device: '7:0',
      offset: 0,
      upSeconds: 3,
      downSeconds: 1,
      features: 'drop_writes',
    });
    const f = FlakeyDevice.fromTable(new MemoryDevice({ sectors: 8192, name: '7:0' }), ['7:0', '0', '5', '1', '1', 'drop_writes'], {
      clock: new ManualClock(0),
    });
    expect(f.status()).toBe('0 8192 flakey '); // dmsetup's form, trailing space
    expect(fieldRecord(parseStatusLine(f.status(), f.table()))).toEqual({ device: '7:0', offset: 0, upSeconds: 5, downSeconds: 1, features: 'drop_writes' });
    expect(parseStatusLine('0 8192 flakey x').mismatch).toBe('flakey prints no status tokens, this line has 1');
  });

  it('remap (safe): the recorded line and the live model', () => {
    expect(fieldRecord(parseStatusLine(SAFE_LINE))).toEqual({
      version: 'v1',
      mainPath: 'main',
      sparePath: 'spare',
      remaps: 5,
      pending: 23,
      spareUsed: 5,
      spareTotal: 53584,
      readErrors: 5,
      writeErrors: 5,
      enospc: 0,
      state: 'ok',
      health: 97,
    });
    const main = new DustDevice(new MemoryDevice({ sectors: 8192, name: 'main' }));
    main.enable();
    main.addBadBlock(40, 1);
    const t = new SafeRemapTarget({ main, spare: new MemoryDevice({ sectors: 4096, name: 'spare' }), reservedSectors: 8 });
    expect(t.write(40, new Uint8Array(512))).toBe(0); // the failed write goes to the spare
    const s = parseStatusLine(t.status());
    expect(s.known).toBe(true);
    expect(fieldNumber(s, 'remaps')).toBe(t.stats().remaps);
    expect(fieldNumber(s, 'remaps')).toBe(1);
    expect(fieldNumber(s, 'spareTotal')).toBe(t.stats().spareTotal);
    expect(parseStatusLine(SAFE_LINE.replace('5/53584', '5of53584')).mismatch).toMatch(/<used>\/<total>/);
  });

  it('other types keep their tokens; several targets pair with their table lines', () => {
    const lin = parseStatusLine('0 2048 linear');
    expect(lin).toMatchObject({ type: 'linear', known: false, fields: [], tokens: [] });
    const both = parseStatusText(`${DUST_KERNEL_LINE}\n8192 8192 flakey\n`, '0 8192 dust 7:0 0 512\n8192 8192 flakey 7:1 0 3 2\n');
    expect(both.map((s) => [s.start, s.type, fieldRecord(s).blockSize ?? fieldRecord(s).upSeconds])).toEqual([
      [0, 'dust', 512],
      [8192, 'flakey', 3],
    ]);
  });

  it('refuses what is not a status line, in one line', () => {
    expect(() => parseStatusLine('dust 7:0 bypass verbose')).toThrow(StatusParseError);
    expect(() => parseStatusLine('')).toThrow(/not a status line \(expected '<start> <length> <type> \.\.\.'\)/);
    expect(() => parseStatusText('\n\n')).toThrow(/empty status: the device has no active table/);
  });
});
