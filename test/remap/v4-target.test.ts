import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { EIO, EOPNOTSUPP, OK } from '../../src/block/device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { v4MinSpare } from '../../src/metadata/min-spare.js';
import { parseTableLine } from '../../src/control/table-line.js';
import { ManualClock } from '../../src/util/clock.js';

const MAIN = 204800;
const SPARE = 245760;

function fill(n: number, byte: number): Uint8Array {
  return new Uint8Array(n).fill(byte);
}

function setup(mainSectors = MAIN, spareSectors = SPARE) {
  const clock = new ManualClock(1e9);
  const mainRaw = new MemoryDevice({ sectors: mainSectors, name: '/dev/mapper/lin' });
  const dust = new DustDevice(mainRaw);
  dust.enable();
  const spare = new MemoryDevice({ sectors: spareSectors, name: '/dev/loop18' });
  const t = new DmRemapV4Target({ main: dust, spare, mainPath: '/dev/mapper/lin', sparePath: '/dev/loop18', clock });
  return { t, dust, mainRaw, spare, clock };
}

describe('dm-remap-v4 min_spare', () => {
  it('follows the module formula in integer math', () => {
    // meta = 4096/512+1 = 9; bad = 204800*2/100 = 4096; mapovh = 4096*64/512+1 = 513; base = 4618; +20% = 5541
    expect(v4MinSpare(204800, 512)).toBe(5541);
    // 4096-byte blocks: meta 2, mapovh 4096*64/4096+1 = 65, base 4163, +832 = 4995
    expect(v4MinSpare(204800, 4096)).toBe(4995);
    expect(v4MinSpare(1_000_000, 512, { spareOverheadPercent: 50 })).toBe(v4MinSpare(1_000_000, 512, { spareOverheadPercent: 20 }));
    expect(v4MinSpare(204800, 512, { strictSpareSizing: true })).toBe(215040);
  });
});

describe('dm-remap-v4 constructor checks', () => {
  const open =
    (sizes: Record<string, number>, lbs: Record<string, 512 | 4096> = {}) =>
    (p: string) => {
      if (!(p in sizes)) throw new Error(`${p}: no such file or directory`);
      return new MemoryDevice({ sectors: sizes[p], logicalBlockSize: lbs[p] ?? 512, name: p });
    };
  it('refuses a wrong argument count with the module text', () => {
    expect(() => DmRemapV4Target.fromTable(parseTableLine('0 100 dm-remap-v4 /a'), open({}))).toThrow(
      'Invalid argument count: dm-remap-v4 <main_device> <spare_device>',
    );
    expect(() => DmRemapV4Target.fromTable(parseTableLine('0 100 dm-remap-v4 /a /b /c'), open({}))).toThrow(/Invalid argument count/);
  });
  it('checks main, then spare, then compatibility', () => {
    expect(() => DmRemapV4Target.fromTable(parseTableLine('0 1 dm-remap-v4 /m /s'), open({ '/s': 9000 }))).toThrow(/^Cannot open main device/);
    expect(() => DmRemapV4Target.fromTable(parseTableLine('0 1 dm-remap-v4 /m /s'), open({ '/m': 9000 }))).toThrow(/^Cannot open spare device/);
    const lbs = () => DmRemapV4Target.fromTable(parseTableLine('0 1 dm-remap-v4 /m /s'), open({ '/m': 9000, '/s': 9000 }, { '/s': 4096 }));
    expect(lbs).toThrow('Device compatibility validation failed (Sector size mismatch: main=512, spare=4096 bytes)');
    expect(() => DmRemapV4Target.fromTable(parseTableLine('0 1 dm-remap-v4 /m /s'), open({ '/m': 2047, '/s': 9000 }))).toThrow(
      expect.objectContaining({ message: 'Device compatibility validation failed (Main device too small: 2047 < 2048 sectors)', errno: 28 }),
    );
    expect(() => DmRemapV4Target.fromTable(parseTableLine('0 1 dm-remap-v4 /m /s'), open({ '/m': MAIN, '/s': 5540 }))).toThrow(
      expect.objectContaining({ message: 'Device compatibility validation failed (Spare device insufficient: 5540 < 5541 sectors)', errno: 28 }),
    );
    const t = DmRemapV4Target.fromTable(parseTableLine('0 1 dm-remap-v4 /m /s'), open({ '/m': MAIN, '/s': 5541 }));
    expect(t.table()).toBe(`0 ${MAIN} dm-remap-v4 /m /s`); // the length given is ignored
  });
});

describe('dm-remap-v4 I/O path and status', () => {
  it('prints 28 status tokens whose counters move as the module moves them', () => {
    const { t } = setup();
    const buf = new Uint8Array(4096);
    expect(t.read(0, buf)).toBe(OK); // sector 0: the zero-filled cache slot counts a hit
    for (let i = 1; i < 42; i++) expect(t.read(i * 8, buf)).toBe(OK);
    const tokens = t.statusTokens();
    expect(tokens).toHaveLength(28);
    const status = t.status().split(' ');
    expect(status.slice(0, 3)).toEqual(['0', String(MAIN), 'dm-remap-v4']);
    expect(tokens[0]).toBe('v4.0-phase1.4');
    expect(tokens.slice(1, 9)).toEqual(['/dev/mapper/lin', '/dev/loop18', '42', '0', '0', '0', '0', '42']);
    expect(tokens[12]).toBe('512');
    expect(tokens[13]).toBe(String(SPARE)); // the spare's size in sectors, as the loaded module prints it
    expect(tokens.slice(14, 28)).toEqual(['42', '42', '0', '0', '1', '41', '1', '0', '0', '100', '0', '2', 'operational', 'real']);
    expect(Number(tokens[10])).toBe(Math.floor(Number(tokens[9]) / 42));
  });

  it('the spare token is the spare size mod 2^32', () => {
    const { t } = setup(MAIN, 40960);
    expect(t.statusTokens()[13]).toBe('40960');
  });

  it('passes a main error up and adds a PENDING remap that I/O never uses; each new failure adds another', () => {
    const { t, dust } = setup();
    expect(t.write(1000, fill(4096, 0xaa))).toBe(OK);
    dust.addBadBlock(1000);
    const out = new Uint8Array(4096);
    expect(t.read(1000, out)).toBe(EIO);
    expect(t.lookup(1000)).toBe(-1); // pending: the lookup skips it
    expect(t.entries.map((e) => [e.originalSector, e.spareSector, e.pending])).toEqual([[1000, 0, true]]);
    expect(t.read(1000, out)).toBe(EIO); // still to main
    expect(t.entries.map((e) => e.spareSector)).toEqual([0, 1]); // a duplicate, and another spare sector spent
    const s = t.statusTokens();
    expect(s[5]).toBe('0'); // remapped_reads
    expect(s[7]).toBe('2'); // active_mappings counts pending entries
    expect(s[17]).toBe('0'); // remapped_sectors counts activations: none
    expect(t.snapshot()).toMatchObject({ remaps: 2, pending: 2, nextSpareSector: 2 });
  });

  it('restored entries are active: the whole request goes by its first sector, the newest duplicate wins', () => {
    const { t, mainRaw, spare } = setup();
    t.restore([
      { originalSector: 100, spareSector: 5000, timeNs: 0, errorCount: 1 },
      { originalSector: 100, spareSector: 6000, timeNs: 0, errorCount: 1 },
    ]);
    expect(t.lookup(100)).toBe(6000);
    expect(t.write(100, fill(8 * 512, 0x22))).toBe(OK); // starts at the remapped sector: all 8 sectors to the spare
    const raw = new Uint8Array(8 * 512);
    spare.read(6000, raw);
    expect(raw.every((b) => b === 0x22)).toBe(true);
    expect(t.write(96, fill(8 * 512, 0x33))).toBe(OK); // covers sector 100 but starts at 96: all to main
    mainRaw.read(96, raw);
    expect(raw.every((b) => b === 0x33)).toBe(true);
    t.read(100, raw);
    expect(raw[0]).toBe(0x22); // sector 100 reads from the spare: the 0x33 written through main is not seen
    expect(t.statusTokens()[7]).toBe('0'); // restored entries are not counted in active_mappings
  });

  it("under dm-dust the remapped sector is the start of the request's last dust block", () => {
    const clock = new ManualClock(1e9);
    const dust = new DustDevice(new MemoryDevice({ sectors: MAIN }), { blockSize: 512 });
    dust.enable();
    const t = new DmRemapV4Target({ main: dust, spare: new MemoryDevice({ sectors: SPARE }), clock, failedSector: { kind: 'dm-split', sectors: 1 } });
    dust.addBadBlock(4096);
    expect(t.read(4096, new Uint8Array(4096))).toBe(EIO);
    expect(t.entries[0].originalSector).toBe(4103); // not the failing 4096: dm resubmitted the remainder of the split bio
  });

  it('a table load leaves the health mutex locked: error analysis waits, no remap is made, and remove hangs', () => {
    const { t, dust } = setup();
    t.tableLoaded(); // dm's IMA measurement calls the status handler
    dust.addBadBlock(64);
    expect(t.read(64, new Uint8Array(512))).toBe(EIO);
    expect(t.entries).toHaveLength(0);
    expect(t.snapshot()).toMatchObject({ healthMutexHeld: true, workBlocked: true });
    // the next status call releases the mutex; the line it prints was read before the work ran
    expect(t.statusTokens()[7]).toBe('0');
    expect(t.entries).toHaveLength(1);
    expect(t.statusTokens()[7]).toBe('1'); // ...and this one takes the mutex again
    expect(t.snapshot().healthMutexHeld).toBe(true);
    expect(t.read(64, new Uint8Array(512))).toBe(EIO);
    expect(t.remove()).toBe('hang'); // drain_workqueue() waits for analysis that waits for the mutex
  });

  it('status calls alternate: one that takes the mutex prints the defaults, the next prints the real values', () => {
    const { t, dust } = setup();
    for (let s = 0; s < 12; s++) dust.addBadBlock(4000 + s * 8);
    for (let s = 0; s < 12; s++) t.read(4000 + s * 8, new Uint8Array(512));
    const first = t.statusTokens();
    const second = t.statusTokens();
    expect(first.slice(23, 25)).toEqual(['100', '0']);
    expect(second.slice(23, 25)).toEqual(['100', '12']);
  });

  it('presuspend frees the table and stops the metadata thread; the next presuspend oopses', () => {
    const { t } = setup();
    t.restore([{ originalSector: 8, spareSector: 3000, timeNs: 0, errorCount: 1 }]);
    expect(t.lookup(8)).toBe(3000);
    expect(t.presuspend()).toBe('ok');
    expect(t.lookup(8)).toBe(-1);
    expect(t.snapshot().metadataThread).toBe(false);
    expect(t.remove()).toBe('oops'); // remove of a resumed device: presuspend again
  });

  it('a remove after one suspend runs no second presuspend', () => {
    const { t } = setup();
    expect(t.presuspend()).toBe('ok');
    expect(t.remove({ suspended: true })).toBe('ok');
  });

  it('hands out spare_sectors/2 remaps, then logs and stops remapping', () => {
    const { t, dust } = setup(4096, 5541);
    const cap = Math.floor(5541 / 2);
    expect(t.snapshot().spareCapacity).toBe(cap);
    for (let s = 0; s < cap + 5; s++) dust.addBadBlock(s);
    const out = new Uint8Array(512);
    for (let s = 0; s < cap + 5; s++) expect(t.read(s, out)).toBe(EIO);
    expect(t.snapshot().remaps).toBe(cap);
    expect(t.snapshot().nextSpareSector).toBe(cap);
  });

  it('with 4096-byte main blocks the device still takes 512-byte requests, which fail on main (and are remapped)', () => {
    const main = new MemoryDevice({ sectors: MAIN, logicalBlockSize: 4096 });
    const t = new DmRemapV4Target({ main, spare: new MemoryDevice({ sectors: SPARE, logicalBlockSize: 4096 }) });
    expect(t.logicalBlockSize).toBe(512);
    expect(t.read(8, new Uint8Array(4096))).toBe(OK);
    expect(t.read(9, new Uint8Array(512))).toBe(EIO);
    expect(t.entries).toHaveLength(1);
    expect(t.statusTokens()[12]).toBe('4096');
  });

  it('never passes flushes down and refuses discards', () => {
    const { t } = setup();
    expect(t.flush()).toBe(OK);
    expect(t.discard()).toBe(EOPNOTSUPP);
  });

  it('fails I/O beyond the device with EIO', () => {
    const { t } = setup();
    expect(t.read(MAIN, new Uint8Array(512))).toBe(EIO);
    expect(t.read(MAIN - 1, new Uint8Array(1024))).toBe(EIO);
  });
});

describe('dm-remap-v4 messages', () => {
  it('delivers no reply (as the module), and formats the module text', () => {
    const { t } = setup();
    expect(t.repliesToMessages).toBe(false);
    expect(t.message(['help'])).toBe('');
    expect(t.messageText(['help'])).toBe('Commands: help, status, stats, clear_stats, health, cache_stats, test_remap');
    expect(t.messageText(['HELP'])).toBe(t.messageText(['help']));
    expect(t.messageText(['health'])).toBe('health_score=100% scan_count=0 hotspot_sectors=0 consecutive_errors=0 trend=0');
    expect(t.messageText(['cache_stats'])).toBe('cache_hits=0 cache_misses=0 hit_rate=0% fast_path=0 cache_size=256');
    t.read(8, new Uint8Array(512));
    expect(t.messageText(['stats'])).toMatch(/^total_ios=1 normal=1 remapped=0 errors=0 remapped_sectors=0 avg_latency_ns=\d+ max_latency_ns=\d+$/);
    expect(t.message(['clear_stats'])).toBe('');
    expect(t.messageText(['stats'])).toBe('total_ios=0 normal=0 remapped=0 errors=0 remapped_sectors=0 avg_latency_ns=0 max_latency_ns=0');
    expect(t.statusTokens()[8]).toBe('1'); // io_ops survives clear_stats
    expect(t.messageText(['cache_stats'])).toBe('cache_hits=0 cache_misses=1 hit_rate=0% fast_path=0 cache_size=256');
  });

  it('test_remap parses like simple_strtoull, adds a pending entry, and refuses only an active one', () => {
    const { t } = setup();
    expect(() => t.message(['test_remap', '5'])).toThrow(expect.objectContaining({ message: 'Usage: test_remap <bad_sector> <spare_sector>', errno: 22 }));
    expect(t.messageText(['test_remap', '0x10', '010'])).toBe('Created test remap: bad_sector=16 spare_sector=8 (metadata write requested)');
    expect(t.lookup(16)).toBe(-1); // pending: never used while loaded
    expect(t.message(['test_remap', '16', '9'])).toBe(''); // the lookup skips pending entries: a duplicate
    t.restore([{ originalSector: 40, spareSector: 2, timeNs: 0, errorCount: 1 }]);
    expect(() => t.message(['test_remap', '40', '9'])).toThrow(expect.objectContaining({ message: 'Failed to add remap: -17', errno: 17 }));
    expect(t.messageText(['test_remap', 'junk', '12abc'])).toBe('Created test remap: bad_sector=0 spare_sector=12 (metadata write requested)');
    expect(() => t.message(['frobnicate'])).toThrow(expect.objectContaining({ message: "Unknown command 'frobnicate'. Try 'help'", errno: 22 }));
  });

  it('recomputes health every 300 s from errors, repeats and hotspots', () => {
    const { t, dust, clock } = setup();
    for (let s = 0; s < 12; s++) dust.addBadBlock(4000 + s * 8);
    const out = new Uint8Array(512);
    for (let s = 0; s < 12; s++) t.read(4000 + s * 8, out);
    clock.advance(299e9);
    // 12 errors in 12 I/Os: rate 10000 > 100 (-50); 12 hotspots > 10 (-10)
    expect(t.messageText(['health'])).toBe('health_score=100% scan_count=0 hotspot_sectors=12 consecutive_errors=1 trend=0');
    clock.advance(1e9); // the work runs every 300 s after construction
    expect(t.messageText(['health'])).toBe('health_score=40% scan_count=0 hotspot_sectors=12 consecutive_errors=1 trend=0');
    t.statusTokens(); // takes the mutex (and prints the defaults)
    expect(t.statusTokens().slice(23, 25)).toEqual(['40', '12']);
  });

  it('runs the health work that fell due while nobody looked as if it had run every 300 s', () => {
    // a main of 5,000 sectors: the scan position wraps every 5 runs
    const stepped = setup(5000);
    const jumped = setup(5000);
    let seed = 7;
    for (let k = 0; k < 40; k++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const ns = (seed % 4000) * 1e9; // 0 to 66 minutes: none, one or many runs due
      jumped.clock.advance(ns);
      jumped.t.runDueWork();
      for (let left = ns; left > 0; left -= Math.min(left, 300e9)) {
        stepped.clock.advance(Math.min(left, 300e9));
        stepped.t.runDueWork();
      }
      expect(jumped.t.messageText(['health'])).toBe(stepped.t.messageText(['health']));
    }
    expect(jumped.t.messageText(['health'])).toMatch(/scan_count=[1-9]\d+ /);
  });
});
