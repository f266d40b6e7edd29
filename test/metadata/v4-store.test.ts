import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EIO, OK } from '../../src/block/device.js';
import { FileDevice } from '../../src/block/file-device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { V4_COPY_SECTORS, V4_MAGIC, V4_MAX_REMAPS, chooseBestCopy, decodeV4Copy } from '../../src/metadata/dm-remap-v4.js';
import { openV4Model } from '../../src/metadata/models.js';
import { V4MetadataStore, readV4Copies, v4CopySectors } from '../../src/metadata/v4-store.js';
import { openTarget } from '../../src/remap/open-target.js';
import type { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { tmpDir } from '../helpers/tmp.js';

const MAIN = 8192;
const SPARE = 4096;
const NOW = 1_750_000_000;
const now = () => NOW;

function devices() {
  const mainRaw = new MemoryDevice({ sectors: MAIN, name: 'main' });
  const spare = new MemoryDevice({ sectors: SPARE, name: 'spare' });
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

/** A write to `sector` that fails on main: the module remaps the sector (and the write's data is lost). */
function failWrite(t: DmRemapV4Target, main: DustDevice, sector: number): void {
  main.addBadBlock(sector, 1);
  expect(t.write(sector, new Uint8Array(512).fill(0xee))).toBe(EIO);
}

describe('dm-remap-v4 store: load and write as the module does', () => {
  it('writes an empty table over all five copies when none is valid; read-only writes nothing', () => {
    const { main, spare } = devices();
    const ro = V4MetadataStore.open(spare, MAIN, { readOnly: true, nowSeconds: now });
    expect(ro.initialized).toBe(true);
    expect(sequences(spare)).toEqual(['bad-magic', 'bad-magic', 'bad-magic', 'bad-magic', 'bad-magic']);
    const { store, restored } = openV4Model(main, spare, { nowSeconds: now });
    expect(store.initialized).toBe(true);
    expect(restored).toBe(0);
    expect(sequences(spare)).toEqual([1n, 1n, 1n, 1n, 1n]);
    const best = chooseBestCopy(readV4Copies(spare), NOW).best!;
    expect(best.metadata).toMatchObject({ mainSectors: BigInt(MAIN), spareSectors: BigInt(SPARE), timestamp: BigInt(NOW), entries: [] });
  });

  it('rewrites all five copies after each remap with sequence + 1, and a reload restores the entries', () => {
    const { main, mainRaw, spare } = devices();
    const { target } = openV4Model(main, spare, { nowSeconds: now });
    failWrite(target, main, 3000);
    expect(sequences(spare)).toEqual([2n, 2n, 2n, 2n, 2n]);
    failWrite(target, main, 5000);
    expect(sequences(spare)).toEqual([3n, 3n, 3n, 3n, 3n]);
    const copies = readV4Copies(spare);
    for (const c of copies.slice(1)) expect(Buffer.compare(c as Uint8Array, copies[0] as Uint8Array)).toBe(0);
    const again = openV4Model(new DustDevice(mainRaw, { log: () => {} }), spare, { nowSeconds: now });
    expect(again.restored).toBe(2);
    expect(again.target.lookup(3000)).toBe(0);
    expect(again.target.lookup(5000)).toBe(1);
    expect(again.target.entries.map((e) => [e.originalSector, e.spareSector])).toEqual([
      [3000, 0],
      [5000, 1],
    ]);
  });

  it('a remap at spare sector 0 overwrites copy 0; the reload then takes copy 1, and the next table write destroys the data', () => {
    const { main, mainRaw, spare } = devices();
    const { target } = openV4Model(main, spare, { nowSeconds: now });
    failWrite(target, main, 100); // 100 -> spare sector 0, where copy 0 starts
    expect(target.lookup(100)).toBe(0);
    const data = new Uint8Array(512).fill(0x5a);
    expect(target.write(100, data)).toBe(OK); // lands on spare sector 0: copy 0's header
    const r = chooseBestCopy(readV4Copies(spare), NOW);
    expect(r.results[0]).toMatchObject({ valid: false, reason: 'bad-magic' });
    expect(r.best?.index).toBe(1);
    const reloaded = openV4Model(new DustDevice(mainRaw, { log: () => {} }), spare, { nowSeconds: now });
    expect(reloaded.store.found.best?.index).toBe(1);
    expect(reloaded.target.lookup(100)).toBe(0);
    const out = new Uint8Array(512);
    expect(reloaded.target.read(100, out)).toBe(OK);
    expect(out).toEqual(data); // the data is still there...
    const dust = reloaded.target.main as DustDevice;
    dust.enable();
    failWrite(reloaded.target, dust, 200); // ...until the next remap writes the table over it
    expect(reloaded.target.read(100, out)).toBe(OK);
    expect(new DataView(out.buffer).getUint32(0, true)).toBe(V4_MAGIC);
    // and the reloaded allocator started again at spare sector 0: the new remap shares the old one's sector
    expect(reloaded.target.lookup(200)).toBe(0);
  });

  it('remapped data beyond copy 0 clobbers copy 1 too once remaps reach spare sector 256', () => {
    const { main, spare } = devices();
    const { target, store } = openV4Model(main, spare, { nowSeconds: now });
    for (let i = 0; i < 257; i++) target.message(['test_remap', String(4000 + i), String(i)]);
    expect(store.stats.tableWrites).toBe(1 + 257);
    expect(target.write(4000 + 256, new Uint8Array(512).fill(1))).toBe(OK); // spare sector 256 = copy 1's header
    expect(target.write(4000, new Uint8Array(512).fill(1))).toBe(OK); // spare sector 0 = copy 0's header
    const r = chooseBestCopy(readV4Copies(spare), NOW);
    expect(r.results.map((x) => x.valid)).toEqual([false, false, true, true, true]);
    expect(r.best?.index).toBe(2);
  });

  it('persists at most 2048 entries, in creation order; nothing checks them against the devices', () => {
    const { spare } = devices();
    const store = V4MetadataStore.open(spare, MAIN, { nowSeconds: now });
    const entries = Array.from({ length: V4_MAX_REMAPS + 1 }, (_, i) => ({ originalSector: 10 * MAIN + i, spareSector: i, timeNs: 1.7e18 + i, errorCount: 1 }));
    const w = store.persist(entries);
    expect(w.dropped).toBe(1);
    expect(w.written).toEqual([0, 1, 2, 3, 4]);
    const again = V4MetadataStore.open(spare, MAIN, { nowSeconds: now });
    const restored = again.restoredEntries();
    expect(restored).toHaveLength(V4_MAX_REMAPS);
    expect(restored[0].originalSector).toBe(10 * MAIN); // beyond the main device, restored anyway
    expect(restored.at(-1)?.spareSector).toBe(V4_MAX_REMAPS - 1);
  });

  it('a spare too small for the copies: reads find none, writes fail past the end', () => {
    const spare = new MemoryDevice({ sectors: 600 });
    expect(v4CopySectors(512)).toBe(165);
    const store = V4MetadataStore.open(spare, 2048, { nowSeconds: now });
    expect(store.initialized).toBe(true);
    expect(store.stats.copyWriteFailures).toBe(V4_COPY_SECTORS.filter((s) => s + 165 > 600).length);
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
    expect(t.message(['test_remap', '77', '9'])).toMatch(/Created test remap: bad_sector=77 spare_sector=9/);
    t.close();
    const again = openTarget(line) as DmRemapV4Target;
    expect(again.lookup(77)).toBe(9);
    expect(again.message(['status'])).toMatch(/^mappings=0 /); // restored entries do not count as new mappings, as in the module
    again.close();
    const off = openTarget(line, { v4Metadata: false }) as DmRemapV4Target;
    expect(off.lookup(77)).toBe(-1);
    off.close();
  });
});
