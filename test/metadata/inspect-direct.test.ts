/**
 * `remapsim inspect /dev/loopN` reads past the block device's page cache.
 * The kernel target writes its metadata with bios straight to the device; a
 * buffered read of /dev/loopN, while something holds it open (as the dm
 * table does), can come from the device's page cache and show an older copy.
 * Here the backing file is changed behind the loop device's cache, which is
 * what a bio write looks like to that cache. Needs root and loop devices.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { attachLoop, detachLoop } from '../../src/kernel/loop.js';
import { type V4Inspection, inspectSpare } from '../../src/metadata/inspect.js';
import { openTarget } from '../../src/stack/table.js';
import type { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { runInProcess } from '../cli/in-process.js';
import { loopUnavailable, skipReason, tmpWithUndo } from '../helpers/tmp.js';

const tmp = tmpWithUndo('remapsim-inspect-direct-', afterAll);
const undo = tmp.undo;

/** One more remap through the module's model on the files: all five copies rewritten, sequence + 1. */
function remap(main: string, spare: string, sector: number, spareSector: number): void {
  const t = openTarget(`0 8192 dm-remap-v4 ${main} ${spare}`) as DmRemapV4Target;
  try {
    t.message(['test_remap', String(sector), String(spareSector)]);
  } finally {
    t.close();
  }
}

describe.skipIf(skipReason(loopUnavailable(), 'inspect on a loop device'))('inspect on a block device', () => {
  it('sees the copy written behind the page cache of /dev/loopN; a buffered read does not', async () => {
    const main = path.join(tmp.dir, 'main.img');
    const spare = path.join(tmp.dir, 'spare.img');
    FileDevice.createSparse(main, 8192 * 512);
    FileDevice.createSparse(spare, 4096 * 512);
    remap(main, spare, 77, 3);

    const loop = attachLoop(spare);
    undo.push(() => detachLoop(loop.number));
    // held open, as a dm table holds its devices: the device's page cache lives as long as this
    const held = fs.openSync(loop.device, 'r');
    undo.push(() => fs.closeSync(held));
    const before = Buffer.alloc(1 << 20);
    expect(fs.readSync(held, before, 0, before.length, 0)).toBe(before.length);

    const first = await runInProcess(['inspect', loop.device, '--json']);
    expect(first.stderr).toBe('');
    const seq0 = Number((JSON.parse(first.stdout) as V4Inspection).copies[0].sequence);

    remap(main, spare, 78, 600); // the new copies go to the backing file, not through /dev/loopN

    // the device's page cache still holds the old copy: what inspect saw before this fix
    const cached = Buffer.alloc(4096);
    fs.readSync(held, cached, 0, cached.length, 0);
    expect(cached.equals(before.subarray(0, 4096))).toBe(true);
    const buffered = FileDevice.open(loop.device, { readOnly: true });
    try {
      const stale = inspectSpare(buffered, {}) as V4Inspection;
      expect(stale.copies.map((c) => Number(c.sequence))).toEqual([seq0, seq0, seq0, seq0, seq0]);
    } finally {
      buffered.close();
    }

    const r = await runInProcess(['inspect', loop.device, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const i = JSON.parse(r.stdout) as V4Inspection;
    expect(i.format).toBe('dm-remap-v4');
    expect(i.copies.map((c) => Number(c.sequence))).toEqual([seq0 + 1, seq0 + 1, seq0 + 1, seq0 + 1, seq0 + 1]);
    expect(i.copies[0].entries!.map((e) => e.originalSector)).toEqual([77, 78]);
    const exported = await runInProcess(['export', loop.device]);
    expect(exported.code).toBe(0);
    expect(JSON.parse(exported.stdout).entries.map((e: { originalSector: number }) => e.originalSector)).toEqual([77, 78]);
  });
});
