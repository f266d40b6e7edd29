import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EIO, OK } from '../../src/block/device.js';
import { FileDevice } from '../../src/block/file-device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { v4EmptyTable } from '../../src/metadata/dm-remap-v4.js';
import { MetadataFormatError } from '../../src/metadata/errors.js';
import { openSafeModel, openSafeStore, safeFingerprint } from '../../src/stack/models.js';
import { probeSpare } from '../../src/metadata/probe.js';
import { SAFE_BLOCK_SIZE, decodeLogBlock, decodeSuperblock, safeBlockSector } from '../../src/metadata/safe-format.js';
import { SafeMetadataStore } from '../../src/metadata/safe-store.js';
import { watchedReadBuffers } from '../helpers/read-buffers.js';
import { readSafeImage, replayImage } from '../../src/metadata/safe-image.js';
import { writeV4Copies } from '../../src/metadata/v4-store.js';
import { openTarget } from '../../src/stack/table.js';
import { CountingDevice, FailingDevice } from '../../scripts/crash/crash-device.js';
import { tmpDir } from '../helpers/tmp.js';

const MAIN = 8192;
const SPARE = 4096;

function devices(lbs: 512 | 4096 = 512) {
  const mainRaw = new MemoryDevice({ sectors: MAIN, logicalBlockSize: lbs, name: 'main' });
  const spare = new MemoryDevice({ sectors: SPARE, logicalBlockSize: lbs, name: 'spare' });
  const main = new DustDevice(mainRaw, { blockSize: lbs, log: () => {} });
  main.enable();
  return { mainRaw, main, spare };
}

function filled(bytes: number, tag: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (tag * 37 + i * 11) & 0xff;
  return b;
}

/** Makes `blocks` fail their next write, then writes them through the target: each one gets remapped. */
function remapBlocks(t: { write(s: number, b: Uint8Array): number; unit: number; logicalBlockSize: number }, main: DustDevice, blocks: number[]): void {
  for (const b of blocks) {
    main.addBadBlock(b, 1);
    expect(t.write(b * t.unit, filled(t.logicalBlockSize, b))).toBe(OK);
  }
}

function sortedRemaps(m: ReadonlyMap<number, number>): Array<[number, number]> {
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

describe('safe store: format, commit, reopen', () => {
  it('formats a blank spare and the target reserves exactly the metadata areas', () => {
    const { main, spare } = devices();
    const { target, store, formatted } = openSafeModel(main, spare, { identity: 'disk-1', logBlocks: 4 });
    expect(formatted).toBe(true);
    expect(target.reservedSectors).toBe(store.layout.dataStartSector);
    expect(target.spareFirstBlock * target.unit).toBe(store.layout.dataStartSector);
    expect(target.spareEndBlock * target.unit).toBe(store.layout.dataEndSector);
    expect(probeSpare(spare).kind).toBe('safe');
    expect(store.remaps.size).toBe(0);
  });

  it('a reopened model has every remap, the cursor and the data', () => {
    const { main, mainRaw, spare } = devices();
    const first = openSafeModel(main, spare, { identity: 'disk-1', logBlocks: 4 });
    remapBlocks(first.target, main, [10, 3, 4000, 77, 78, 79, 5000, 1]); // 8 commits in a 4-slot log: one checkpoint
    expect(first.store.stats().checkpoints).toBe(1);
    const cursor = first.target.allocationCursor;
    const again = openSafeModel(new DustDevice(mainRaw, { log: () => {} }), spare, { identity: 'disk-1' });
    expect(again.formatted).toBe(false);
    expect(sortedRemaps(again.store.remaps)).toEqual(sortedRemaps(first.store.remaps));
    expect(again.target.allocationCursor).toBe(cursor);
    for (const b of [10, 3, 4000, 77, 78, 79, 5000, 1]) {
      expect(again.target.lookup(b)).toBe(first.target.lookup(b));
      const out = new Uint8Array(512);
      expect(again.target.read(b, out)).toBe(OK);
      expect(out).toEqual(filled(512, b));
    }
    // new remaps continue above the restored cursor, never over restored data
    (again.target.main as DustDevice).enable();
    remapBlocks(again.target, again.target.main as DustDevice, [11]);
    expect(again.target.lookup(11)).toBe(cursor);
  });

  it('works with 4 KiB logical blocks (remap blocks of 8 sectors)', () => {
    const { main, mainRaw, spare } = devices(4096);
    const m = openSafeModel(main, spare, { logBlocks: 4 });
    expect(m.store.layout.remapBlockSectors).toBe(8);
    remapBlocks(m.target, main, [5, 9]);
    const again = openSafeModel(new DustDevice(mainRaw, { blockSize: 4096, log: () => {} }), spare);
    expect(again.target.lookup(5)).toBe(m.target.lookup(5));
    const out = new Uint8Array(4096);
    expect(again.target.read(9 * 8, out)).toBe(OK);
    expect(out).toEqual(filled(4096, 9));
  });

  it('commits durably before acknowledging: data write, flush, log A, log B, flush', () => {
    const { main, spare } = devices();
    const counting = new CountingDevice(spare);
    const m = openSafeModel(main, counting, { logBlocks: 8 });
    counting.log.length = 0;
    remapBlocks(m.target, main, [42]);
    const spareBlock = m.target.lookup(42);
    const slot0 = (area: 'A' | 'B') => safeBlockSector(m.store.layout, area, { region: 'log', index: 0 });
    expect(counting.log).toEqual([`W ${spareBlock}+1`, 'F', `W ${slot0('A')}+8`, `W ${slot0('B')}+8`, 'F']);
    // with FUA durability each log copy carries FUA instead of the final flush
    const fua = devices();
    const c2 = new CountingDevice(fua.spare);
    const m2 = openSafeModel(fua.main, c2, { logBlocks: 8, durability: 'fua' });
    c2.log.length = 0;
    remapBlocks(m2.target, fua.main, [42]);
    expect(c2.log).toEqual([`W ${m2.target.lookup(42)}+1`, 'F', `W+FUA ${slot0('A')}+8`, `W+FUA ${slot0('B')}+8`]);
  });

  it('a failed commit fails the write and stops later commits until reopened (fail-stop)', () => {
    const { main, mainRaw, spare } = devices();
    const m0 = openSafeModel(main, spare, { logBlocks: 8 });
    remapBlocks(m0.target, main, [1]);
    const logA = safeBlockSector(m0.store.layout, 'A', { region: 'log', index: 0 });
    const failing = new FailingDevice(spare, { first: logA, end: logA + 8 * 8 });
    const m = openSafeModel(new DustDevice(mainRaw, { log: () => {} }), failing);
    const dust = m.target.main as DustDevice;
    dust.enable();
    failing.failWrites = true;
    dust.addBadBlock(2, 1);
    expect(m.target.write(2, filled(512, 2))).toBe(EIO);
    expect(m.target.lookup(2)).toBe(-1);
    failing.failWrites = false;
    dust.addBadBlock(3, 1);
    expect(m.target.write(3, filled(512, 3))).toBe(EIO); // still failed: the store stopped
    expect(m.store.failed).toBe(true);
    const again = openSafeModel(new DustDevice(mainRaw, { log: () => {} }), spare);
    expect(again.target.lookup(1)).toBe(m0.target.lookup(1));
    expect(again.target.lookup(2)).toBe(-1);
  });

  it('bad spare blocks are never reused: the durable cursor passes them', () => {
    const { main, mainRaw, spare } = devices();
    const dustSpare = new DustDevice(spare, { log: () => {} });
    dustSpare.enable();
    const m = openSafeModel(main, dustSpare, { logBlocks: 8 });
    const first = m.target.spareFirstBlock;
    dustSpare.addBadBlock(first, 1);
    dustSpare.addBadBlock(first + 1, 1);
    remapBlocks(m.target, main, [7]);
    expect(m.target.lookup(7)).toBe(first + 2);
    expect(m.target.flush()).toBe(OK);
    const again = openSafeModel(new DustDevice(mainRaw, { log: () => {} }), spare);
    expect(again.target.allocationCursor).toBe(first + 3);
  });
});

describe('safe store: recovery', () => {
  it('ignores a torn log tail, then appends over it', () => {
    const { main, mainRaw, spare } = devices();
    const m = openSafeModel(main, spare, { logBlocks: 8 });
    remapBlocks(m.target, main, [1, 2, 3]);
    const tail = m.store.logSlot;
    // half of a next log block reached area A: a commit cut by a crash
    const layout = m.store.layout;
    const torn = new Uint8Array(SAFE_BLOCK_SIZE);
    const real = new Uint8Array(SAFE_BLOCK_SIZE);
    spare.read(safeBlockSector(layout, 'A', { region: 'log', index: 0 }), real);
    torn.set(real.subarray(0, 2048));
    spare.write(safeBlockSector(layout, 'A', { region: 'log', index: tail }), torn);
    const again = openSafeModel(new DustDevice(mainRaw, { log: () => {} }), spare);
    expect(again.store.recovery?.result.tornTail).toBe(true);
    expect(again.store.recovery?.actions).toEqual([]);
    expect(sortedRemaps(again.store.remaps)).toEqual(sortedRemaps(m.store.remaps));
    const dust = again.target.main as DustDevice;
    dust.enable();
    remapBlocks(again.target, dust, [4]);
    expect(again.store.logSlot).toBe(tail + 1);
    const third = SafeMetadataStore.open(spare, { fingerprint: safeFingerprint(main) });
    expect(third.remaps.get(4)).toBe(again.target.lookup(4));
    expect(third.recovery?.result.tornTail).toBe(false);
  });

  it('reads into the memory the last open gave back, and recovers the same table, repairs included', () => {
    const { main, spare } = devices();
    const m = openSafeModel(main, spare, { logBlocks: 8 });
    remapBlocks(m.target, main, [5, 6, 9]);
    const logB = safeBlockSector(m.store.layout, 'B', { region: 'log', index: 1 });
    const b = new Uint8Array(SAFE_BLOCK_SIZE);
    spare.read(logB, b);
    b[40] ^= 0x40;
    spare.write(logB, b);
    const { readBuffers, taken } = watchedReadBuffers();
    const fp = { fingerprint: safeFingerprint(main) };
    const plain = SafeMetadataStore.open(spare, { ...fp, readOnly: true });
    const first = SafeMetadataStore.open(spare, { ...fp, readOnly: true, readBuffers });
    const firstTaken = new Set(taken.splice(0));
    expect(firstTaken.size).toBeGreaterThanOrEqual(2); // both logs, and the checkpoints
    const second = SafeMetadataStore.open(spare, { ...fp, readBuffers });
    expect(new Set(taken.splice(0))).toEqual(firstTaken);
    for (const s of [first, second]) expect(sortedRemaps(s.remaps)).toEqual(sortedRemaps(plain.remaps));
    expect(first.recovery?.actions).toEqual(plain.recovery?.actions);
    expect(second.recovery?.applied).toBe(true);
    expect(SafeMetadataStore.open(spare, { ...fp, readOnly: true }).recovery?.actions).toEqual([]);
  });

  it('repairs a corrupt superblock, checkpoint block and log block from the good copy', () => {
    const { main, spare } = devices();
    const m = openSafeModel(main, spare, { logBlocks: 8 });
    remapBlocks(m.target, main, [5, 6]);
    const layout = m.store.layout;
    const flip = (sector: number, at: number) => {
      const b = new Uint8Array(SAFE_BLOCK_SIZE);
      spare.read(sector, b);
      b[at] ^= 0x40;
      spare.write(sector, b);
    };
    const sbA = safeBlockSector(layout, 'A', { region: 'superblock' });
    const ckB = safeBlockSector(layout, 'B', { region: 'checkpoint', slot: 0, index: 0 });
    const logB = safeBlockSector(layout, 'B', { region: 'log', index: 1 });
    flip(sbA, 100);
    flip(ckB, 70);
    flip(logB, 40);
    const dry = SafeMetadataStore.open(spare, { fingerprint: safeFingerprint(main), readOnly: true });
    expect(dry.recovery?.actions.map((a) => a.kind).sort()).toEqual(['checkpoint-block', 'log-block', 'superblock']);
    expect(dry.recovery?.applied).toBe(false);
    expect(dry.remaps.size).toBe(2);
    const store = SafeMetadataStore.open(spare, { fingerprint: safeFingerprint(main) });
    expect(store.recovery?.applied).toBe(true);
    const b = new Uint8Array(SAFE_BLOCK_SIZE);
    spare.read(sbA, b);
    expect(decodeSuperblock(b, 'A').generation).toBe(store.superblock.generation);
    spare.read(logB, b);
    expect(decodeLogBlock(b).records).toEqual([{ op: 'add', main: 6, spare: m.target.lookup(6) }]);
    const clean = replayImage(readSafeImage(spare), safeFingerprint(main));
    expect(clean.problems).toEqual([]);
    expect(sortedRemaps(clean.state.remaps)).toEqual(sortedRemaps(m.store.remaps));
  });

  it('refuses metadata of another main device (size or identity), and foreign or unknown spares', () => {
    const { main, spare } = devices();
    openSafeModel(main, spare, { identity: 'wwn-1' });
    const other = new MemoryDevice({ sectors: MAIN * 2 });
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as MetadataFormatError;
      }
      throw new Error('expected a refusal');
    };
    const size = err(() => openSafeModel(other, spare, { identity: 'wwn-1' }));
    expect(size).toBeInstanceOf(MetadataFormatError);
    expect(size.problem).toBe('foreign-device');
    expect(size.message).toMatch(/main device size is 8192 sectors in the metadata, 16384 on this device/);
    expect(err(() => openSafeModel(main, spare, { identity: 'wwn-2' })).message).toMatch(/identity is "wwn-1" in the metadata, "wwn-2"/);
    // format over it: refused without force
    expect(err(() => SafeMetadataStore.format(spare, { fingerprint: safeFingerprint(main), remapBlockSectors: 1 })).message).toMatch(
      /refusing to format: the spare holds remapsim safe-policy metadata.*--force/,
    );
    // dm-remap-v4 metadata, and unknown data
    const v4spare = new MemoryDevice({ sectors: SPARE });
    writeV4Copies(v4spare, v4EmptyTable({ mainSectors: MAIN, spareSectors: SPARE, timestamp: Math.floor(Date.now() / 1000) }));
    expect(err(() => openSafeModel(main, v4spare)).message).toMatch(/holds dm-remap-v4 metadata .*--force/);
    const junk = new MemoryDevice({ sectors: SPARE });
    junk.write(SPARE - 3, new Uint8Array(512).fill(1));
    expect(err(() => openSafeModel(main, junk)).message).toMatch(/unknown data at spare sector 4093/);
    // force formats over both
    expect(openSafeModel(main, v4spare, { force: true }).formatted).toBe(true);
    expect(probeSpare(v4spare).kind).toBe('safe');
    expect(openSafeModel(main, junk, { force: true }).formatted).toBe(true);
  });

  it('refuses unreadable metadata (both superblocks damaged) unless forced', () => {
    const { main, spare } = devices();
    const m = openSafeModel(main, spare);
    for (const area of ['A', 'B'] as const) {
      const s = safeBlockSector(m.store.layout, area, { region: 'superblock' });
      const b = new Uint8Array(SAFE_BLOCK_SIZE);
      spare.read(s, b);
      b[300] ^= 1;
      spare.write(s, b);
    }
    expect(probeSpare(spare).kind).toBe('safe-damaged');
    expect(() => openSafeModel(main, spare)).toThrow(/no valid superblock.*remapsim repair/);
    expect(openSafeModel(main, spare, { force: true }).formatted).toBe(true);
  });

  it('an interrupted format (no superblock yet) can be formatted again without force', () => {
    const { main, spare } = devices();
    const m = openSafeModel(main, spare);
    const zero = new Uint8Array(SAFE_BLOCK_SIZE);
    spare.write(0, zero);
    spare.write(safeBlockSector(m.store.layout, 'B', { region: 'superblock' }), zero);
    expect(probeSpare(spare).kind).toBe('blank');
    expect(openSafeStore(main, spare).formatted).toBe(true);
  });
});

describe('safe store through openTarget and on files', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('a remap table line keeps its remaps across reopening', () => {
    const mainPath = path.join(tmp.dir, 'main.img');
    const sparePath = path.join(tmp.dir, 'spare.img');
    FileDevice.createSparse(mainPath, MAIN * 512);
    FileDevice.createSparse(sparePath, SPARE * 512);
    const line = `0 ${MAIN} remap ${mainPath} ${sparePath}`;
    const t = openTarget(line) as ReturnType<typeof openSafeModel>['target'];
    expect(t.message(['remap', '12'])).toMatch(/block 12 remapped to spare block/);
    const spareBlock = t.lookup(12);
    t.close();
    const again = openTarget(line) as typeof t;
    expect(again.lookup(12)).toBe(spareBlock);
    expect(again.table()).toContain(`reserved_sectors ${again.reservedSectors}`);
    const tableLine = again.table();
    again.close();
    // the printed table reopens (its reserved_sectors matches the metadata), read-only too
    const ro = openTarget(tableLine, { readOnly: true }) as typeof t;
    expect(ro.lookup(12)).toBe(spareBlock);
    ro.close();
    expect(() => openTarget(`0 ${MAIN} remap ${mainPath} ${sparePath} 2 reserved_sectors 64`)).toThrow(/reserved_sectors 64 does not match the metadata area/);
  });

  it('measures the cost of a remap commit on a file (fdatasync)', () => {
    const mainPath = path.join(tmp.dir, 'm2.img');
    const sparePath = path.join(tmp.dir, 's2.img');
    FileDevice.createSparse(mainPath, MAIN * 512);
    FileDevice.createSparse(sparePath, SPARE * 512);
    const spare = FileDevice.open(sparePath);
    const mainRaw = FileDevice.open(mainPath);
    const main = new DustDevice(mainRaw, { log: () => {} });
    main.enable();
    const m = openSafeModel(main, spare, { logBlocks: 64 });
    const n = 20;
    const buf = filled(512, 1);
    const t0 = process.hrtime.bigint();
    for (let b = 0; b < n; b++) {
      main.addBadBlock(b, 1);
      expect(m.target.write(b, buf)).toBe(OK);
    }
    const remapUs = Number(process.hrtime.bigint() - t0) / 1000 / n;
    const t1 = process.hrtime.bigint();
    for (let b = 0; b < n; b++) expect(m.target.write(1000 + b, buf)).toBe(OK);
    const plainUs = Number(process.hrtime.bigint() - t1) / 1000 / n;
    console.log(`safe remap commit on ${tmp.dir}: ${remapUs.toFixed(0)} µs per remapped write (2 fdatasync), ${plainUs.toFixed(1)} µs per plain write`);
    expect(m.store.stats().flushes).toBe(2 * n);
    m.target.close();
  });
});
