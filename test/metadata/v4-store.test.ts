import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EIO, OK } from '../../src/block/device.js';
import { FileDevice } from '../../src/block/file-device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { V4_COPY_SECTORS, V4_MAGIC, V4_MAX_REMAPS, chooseBestCopy, decodeV4Copy } from '../../src/metadata/dm-remap-v4.js';
import { openV4Model } from '../../src/stack/models.js';
import { V4MetadataStore, readV4Copies, v4CopySectors } from '../../src/metadata/v4-store.js';
import { watchedReadBuffers } from '../helpers/read-buffers.js';
import { openTarget } from '../../src/stack/table.js';
import type { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { tmpDir } from '../helpers/tmp.js';
import { ManualClock } from '../../src/util/clock.js';

const MAIN = 8192;
const SPARE = 4096;
const NOW = 1_750_000_000;
const now = () => NOW;

/** The module's sequence counter, from 0 as at module load. */
function counter(): () => bigint {
  let n = 0n;
  return () => ++n;
}

/** A view of `d` whose close() keeps the data: the devices outlive each target opened on them, as disks do. */
function lasting<T extends object>(d: T): T {
  return Object.assign(Object.create(d) as T, { close() {} });
}

function devices() {
  const mainRaw = lasting(new MemoryDevice({ sectors: MAIN, name: 'main' }));
  const spare = lasting(new MemoryDevice({ sectors: SPARE, name: 'spare' }));
  const main = new DustDevice(mainRaw, { log: () => {} });
  main.enable();
  return { mainRaw, main, spare };
}

function sequences(spare: MemoryDevice): Array<bigint | string> {
  return readV4Copies(spare).map((c) => {
    if (c === null) return 'unreadable';
    const r = decodeV4Copy(c, NOW);
    return r.valid ? r.metadata.sequence : r.reason;
  });
}

/** A read of `sector` that fails on main: the module adds a pending remap for it and writes the table (twice). */
function failRead(t: DmRemapV4Target, main: DustDevice, sector: number): void {
  main.addBadBlock(sector);
  expect(t.read(sector, new Uint8Array(512))).toBe(EIO);
}

describe('dm-remap-v4 store: load and write as the module does, through dm-bufio', () => {
  it('no valid copy: the empty table is written into the buffers, and reaches the spare when the target is destroyed', () => {
    const { main, spare } = devices();
    const ro = V4MetadataStore.open(spare, MAIN, { readOnly: true, nowSeconds: now });
    expect(ro.initialized).toBe(true);
    const { target, store, restored } = openV4Model(main, spare, { nowSeconds: now, nextSequence: counter() });
    expect(store.initialized).toBe(true);
    expect(restored).toBe(0);
    expect(store.stats.tableWrites).toBe(1); // the metadata thread's initial write
    expect(sequences(spare)).toEqual(['bad-magic', 'bad-magic', 'bad-magic', 'bad-magic', 'bad-magic']); // only in dm-bufio's buffers
    target.close();
    expect(sequences(spare)).toEqual([1n, 1n, 1n, 1n, 1n]);
    const best = chooseBestCopy(readV4Copies(spare), NOW).best!;
    expect(best.metadata).toMatchObject({ mainSectors: BigInt(MAIN), spareSectors: BigInt(SPARE), timestamp: BigInt(NOW), entries: [] });
  });

  it("dm-bufio's timer writes dirty buffers within 30 s", () => {
    const clock = new ManualClock(1e9);
    const { main, spare } = devices();
    const { target } = openV4Model(main, spare, { nowSeconds: now, nextSequence: counter(), clock });
    target.statusTokens(); // one status call releases the health mutex the table load left locked
    failRead(target, main, 3000); // work runs: the table is written (twice) into the buffers
    expect(sequences(spare)[0]).toBe('bad-magic');
    clock.advance(29e9);
    target.read(8, new Uint8Array(512));
    expect(sequences(spare)[0]).toBe('bad-magic');
    clock.advance(2e9);
    target.read(8, new Uint8Array(512));
    expect(sequences(spare)).toEqual([3n, 3n, 3n, 3n, 3n]);
  });

  it('each remap writes the table twice (the work, then the metadata thread); a reload restores the entries as active', () => {
    const { main, mainRaw, spare } = devices();
    const { target, store } = openV4Model(main, spare, { nowSeconds: now, nextSequence: counter() });
    target.statusTokens(); // one status call releases the health mutex the table load left locked
    failRead(target, main, 3000);
    failRead(target, main, 5000);
    expect(store.stats.tableWrites).toBe(1 + 2 * 2);
    target.close();
    expect(sequences(spare)).toEqual([5n, 5n, 5n, 5n, 5n]);
    const copies = readV4Copies(spare);
    for (const c of copies.slice(1)) expect(Buffer.compare(c as Uint8Array, copies[0] as Uint8Array)).toBe(0);
    expect(chooseBestCopy(copies, NOW).best!.metadata.entries.map((e) => e.flags)).toEqual([1, 1]); // persisted as pending
    const again = openV4Model(new DustDevice(mainRaw, { log: () => {} }), spare, { nowSeconds: now });
    expect(again.restored).toBe(2);
    expect(again.target.lookup(3000)).toBe(0);
    expect(again.target.lookup(5000)).toBe(1);
  });

  it('after a reload a remap at spare sector 0 reads copy 0; data written there lasts until the next write-back rewrites the whole block', () => {
    const { main, mainRaw, spare } = devices();
    const first = openV4Model(main, spare, { nowSeconds: now });
    first.target.statusTokens();
    failRead(first.target, main, 100); // 100 -> spare sector 0, where copy 0 starts
    first.target.close();
    const dust = new DustDevice(mainRaw, { log: () => {} });
    const reloaded = openV4Model(dust, spare, { nowSeconds: now });
    expect(reloaded.target.lookup(100)).toBe(0);
    const out = new Uint8Array(512);
    expect(reloaded.target.read(100, out)).toBe(OK);
    expect(new DataView(out.buffer).getUint32(0, true)).toBe(V4_MAGIC); // the user's sector 100 reads the metadata
    const data = new Uint8Array(512).fill(0x5a);
    expect(reloaded.target.write(100, data)).toBe(OK); // lands on spare sector 0: copy 0's header
    expect(chooseBestCopy(readV4Copies(spare), NOW).results[0]).toMatchObject({ valid: false, reason: 'bad-magic' });
    expect(reloaded.target.read(100, out)).toBe(OK);
    expect(out).toEqual(data);
    reloaded.target.statusTokens(); // the table load left the health mutex locked: release it so the work runs
    dust.enable();
    failRead(reloaded.target, dust, 200); // a new remap: the table goes into the buffers...
    reloaded.target.close(); // ...and out at destroy, over the user's data
    const third = openV4Model(new DustDevice(mainRaw, { log: () => {} }), spare, { nowSeconds: now });
    expect(third.target.read(100, out)).toBe(OK);
    expect(new DataView(out.buffer).getUint32(0, true)).toBe(V4_MAGIC);
    expect(third.target.lookup(200)).toBe(0); // the reloaded allocator started again at spare sector 0
  });

  it('remapped data beyond copy 0 clobbers copy 1 too once remaps reach spare sector 256', () => {
    const { main, spare } = devices();
    const { target, store } = openV4Model(main, spare, { nowSeconds: now });
    for (let i = 0; i < 257; i++) target.message(['test_remap', String(4000 + i), String(i)]);
    expect(store.stats.tableWrites).toBe(1 + 257);
    target.close();
    const again = openV4Model(main, spare, { nowSeconds: now });
    expect(again.target.write(4000 + 256, new Uint8Array(512).fill(1))).toBe(OK); // spare sector 256 = copy 1's header
    expect(again.target.write(4000, new Uint8Array(512).fill(1))).toBe(OK); // spare sector 0 = copy 0's header
    const r = chooseBestCopy(readV4Copies(spare), NOW);
    expect(r.results.map((x) => x.valid)).toEqual([false, false, true, true, true]);
    expect(r.best?.index).toBe(2);
  });

  it('persists at most 2048 entries, in creation order; nothing checks them against the devices', () => {
    const { spare } = devices();
    const store = V4MetadataStore.open(spare, MAIN, { nowSeconds: now });
    const entries = Array.from({ length: V4_MAX_REMAPS + 1 }, (_, i) => ({
      originalSector: 10 * MAIN + i,
      spareSector: i,
      timeNs: 1.7e18 + i,
      errorCount: 1,
      pending: true,
    }));
    store.writeTable(entries);
    expect(store.stats.dropped).toBe(1);
    store.destroy();
    const again = V4MetadataStore.open(spare, MAIN, { nowSeconds: now });
    const restored = again.restoredEntries();
    expect(restored).toHaveLength(V4_MAX_REMAPS);
    expect(restored[0].originalSector).toBe(10 * MAIN); // beyond the main device, restored anyway
    expect(restored.at(-1)?.spareSector).toBe(V4_MAX_REMAPS - 1);
  });

  it('writebackAt: the spare gets the table dm-bufio held then; later tables stay dirty', () => {
    const { spare } = devices();
    const store = V4MetadataStore.open(spare, MAIN, { nowSeconds: now, nextSequence: counter() });
    const e = (o: number) => ({ originalSector: o, spareSector: 0, timeNs: 0, errorCount: 1, pending: true });
    store.writeTable([e(1)]);
    store.writeTable([e(1), e(2)]);
    store.writebackAt(0);
    expect(chooseBestCopy(readV4Copies(spare), NOW).best!.metadata.entries.map((x) => Number(x.originalSector))).toEqual([1]);
    expect(store.unwritten()).toHaveLength(1);
    store.destroy();
    expect(chooseBestCopy(readV4Copies(spare), NOW).best!.metadata.entries.map((x) => Number(x.originalSector))).toEqual([1, 2]);
  });

  it('a reload reads into the blocks the last store gave back, and loads the same table', () => {
    const { spare } = devices();
    const { readBuffers, taken } = watchedReadBuffers();
    const e = (o: number) => ({ originalSector: o, spareSector: 0, timeNs: 0, errorCount: 1, pending: true });
    const first = V4MetadataStore.open(spare, MAIN, { nowSeconds: now, nextSequence: counter(), readBuffers });
    first.writeTable([e(7), e(9)]);
    first.destroy();
    first.close();
    const firstBlocks = new Set(taken.splice(0));
    expect(firstBlocks.size).toBe(5);
    const second = V4MetadataStore.open(spare, MAIN, { nowSeconds: now, readBuffers });
    expect(new Set(taken.splice(0))).toEqual(firstBlocks);
    expect(second.restoredEntries().map((x) => x.originalSector)).toEqual([7, 9]);
    // the second store writes through the reused blocks, and what it wrote is what a fresh load finds
    second.writeTable([e(7), e(9), e(11)]);
    second.destroy();
    second.close();
    expect(
      V4MetadataStore.open(spare, MAIN, { nowSeconds: now })
        .restoredEntries()
        .map((x) => x.originalSector),
    ).toEqual([7, 9, 11]);
    // a copy that cannot be read counts as unreadable, and its memory goes back for the next read
    const dust = new DustDevice(spare, { log: () => {} });
    dust.enable();
    dust.addBadBlock(V4_COPY_SECTORS[2]);
    const third = V4MetadataStore.open(dust, MAIN, { nowSeconds: now, readBuffers });
    expect(third.restoredEntries()).toHaveLength(3);
    expect(new Set(taken.splice(0))).toEqual(firstBlocks);
  });

  it('a spare too small for the five 128 KiB blocks: the blocks past its end are neither read nor written', () => {
    const spare = new MemoryDevice({ sectors: 600 });
    expect(v4CopySectors(512)).toBe(165);
    const store = V4MetadataStore.open(spare, 2048, { nowSeconds: now, nextSequence: counter() });
    expect(store.initialized).toBe(true);
    store.writeTable([]);
    store.destroy();
    expect(store.stats.copyWriteFailures).toBe(3);
    expect(sequences(spare)).toEqual([1n, 1n, 'unreadable', 'unreadable', 'unreadable']);
  });
});

describe('dm-remap-v4 store through openTarget', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('a reopened table line sees its remaps; a read-only open writes nothing', () => {
    const mainPath = path.join(tmp.dir, 'main.img');
    const sparePath = path.join(tmp.dir, 'spare.img');
    FileDevice.createSparse(mainPath, MAIN * 512);
    FileDevice.createSparse(sparePath, SPARE * 512);
    const line = `0 ${MAIN} dm-remap-v4 ${mainPath} ${sparePath}`;
    const ro = openTarget(line, { readOnly: true });
    ro.close();
    const spare = FileDevice.open(sparePath, { readOnly: true });
    expect(readV4Copies(spare).every((c) => c?.every((b) => b === 0))).toBe(true);
    spare.close();
    const t = openTarget(line) as DmRemapV4Target;
    expect(t.message(['test_remap', '77', '9'])).toBe(''); // the module's replies never reach the caller
    expect(t.lookup(77)).toBe(-1); // pending while loaded
    t.close();
    const again = openTarget(line) as DmRemapV4Target;
    expect(again.lookup(77)).toBe(9);
    expect(again.messageText(['status'])).toMatch(/^mappings=0 /); // restored entries do not count as new mappings, as in the module
    again.close();
    const off = openTarget(line, { v4Metadata: false }) as DmRemapV4Target;
    expect(off.lookup(77)).toBe(-1);
    off.close();
  });
});
