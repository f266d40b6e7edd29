/**
 * A full file system is no failing disk (issue 17, finding 2): with main and
 * spare on a small tmpfs, writes that find no space fail with ENOSPC, spend
 * no spare block, and the status says why; once space is freed writes go
 * through again and nothing acknowledged is lost.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EIO, ENOSPC, EROFS, OK } from '../../src/block/device.js';
import { FileDevice } from '../../src/block/file-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { openSafeModel } from '../../src/stack/models.js';
import { openTarget } from '../../src/stack/table.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { parseStatusLine, fieldRecord } from '../../src/status/parse.js';
import { skipReason, tmpWithUndo } from '../helpers/tmp.js';

const CHUNK = 64 << 10;
const MAIN_SECTORS = 131072; // 64 MiB: more than the tmpfs holds

function chunk(i: number, gen = 0): Uint8Array {
  const b = new Uint8Array(CHUNK);
  const dv = new DataView(b.buffer);
  for (let o = 0; o < CHUNK; o += 8) dv.setUint32(o, (i * 2654435761 + o + gen * 7919) >>> 0, true);
  return b;
}

function state(t: { status(): string }): Record<string, string | number | boolean> {
  return fieldRecord(parseStatusLine(t.status()));
}

/** Fills the file system at `dir` with a file of its own, until it is full. */
function fillUp(file: string): void {
  const fd = fs.openSync(file, 'w');
  const mb = new Uint8Array(1 << 20).fill(1);
  try {
    for (;;) fs.writeSync(fd, mb);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
}

const noRoot = process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : undefined;

describe.skipIf(skipReason(noRoot, 'store errors on a full tmpfs'))('the safe policy on a full file system', () => {
  const { dir, undo } = tmpWithUndo('remapsim-enospc-', afterAll);
  const mnt = path.join(dir, 'small');

  beforeAll(() => {
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt]);
    undo.push(() => execFileSync('umount', ['-l', mnt]));
  });

  it('main and spare on a 40 MiB tmpfs: ENOSPC fails the writes, spends no spare block, shows in the status, clears when space is freed; nothing acknowledged is lost', () => {
    const main = path.join(mnt, 'main.img');
    const spare = path.join(mnt, 'spare.img');
    const filler = path.join(mnt, 'filler');
    FileDevice.createSparse(main, MAIN_SECTORS * 512);
    FileDevice.createSparse(spare, 16 << 20);
    fs.writeFileSync(filler, new Uint8Array(8 << 20).fill(2));
    const line = `0 ${MAIN_SECTORS} remap ${main} ${spare}`;
    let t = openTarget(line) as SafeRemapTarget;
    const acked: number[] = [];
    const failed: number[] = [];
    const chunks = (MAIN_SECTORS * 512) / CHUNK;
    try {
      for (let i = 0; i < chunks; i++) {
        const rc = t.write((i * CHUNK) / 512, chunk(i));
        if (rc === OK) acked.push(i);
        else {
          expect(rc).toBe(ENOSPC);
          failed.push(i);
        }
      }
      expect(acked.length).toBeGreaterThan(100);
      expect(failed.length).toBeGreaterThan(100);
      const s = t.stats();
      expect([s.remaps, s.spareUsed, s.badSpare, s.writeErrors, s.enospc]).toEqual([0, 0, 0, 0, 0]);
      expect(s.storeErrors).toBe(failed.length);
      expect(state(t).state).toBe('store_enospc');
      expect(t.lastStoreError).toBe('ENOSPC on main');

      // space comes back: the next write goes through, and the condition clears by itself
      fs.rmSync(filler);
      const again = failed.slice(0, 40);
      for (const i of again) expect(t.write((i * CHUNK) / 512, chunk(i))).toBe(OK);
      acked.push(...again);
      expect(state(t).state).toBe('ok');
      expect(t.flush()).toBe(OK);
      expect(t.stats().remaps).toBe(0);
      const out = new Uint8Array(CHUNK);
      for (const i of acked) {
        expect(t.read((i * CHUNK) / 512, out)).toBe(OK);
        expect(Buffer.compare(out, chunk(i))).toBe(0);
      }
    } finally {
      t.close();
    }
    // a restart finds the same: no remap, every acknowledged chunk
    t = openTarget(line) as SafeRemapTarget;
    try {
      expect(t.remapCount).toBe(0);
      const out = new Uint8Array(CHUNK);
      for (const i of acked) {
        expect(t.read((i * CHUNK) / 512, out)).toBe(OK);
        expect(Buffer.compare(out, chunk(i))).toBe(0);
      }
    } finally {
      t.close();
    }
    fs.rmSync(main);
    fs.rmSync(spare);
  });

  it("a bad main block while the spare's file system is full: the remap fails with ENOSPC and marks no spare block bad; with space it is made", () => {
    const main = path.join(dir, 'main-dust.img'); // elsewhere: main has room
    const spare = path.join(mnt, 'spare2.img');
    FileDevice.createSparse(main, 8 << 20);
    FileDevice.createSparse(spare, 4 << 20);
    const dust = new DustDevice(FileDevice.open(main, { exclusive: true }), { log: () => {} });
    dust.enable();
    const m = openSafeModel(dust, FileDevice.open(spare, { exclusive: true }), { logBlocks: 16 });
    const filler = path.join(mnt, 'filler2');
    try {
      fillUp(filler);
      const data = chunk(3).subarray(0, 4096);
      dust.addBadBlock(800, 255); // sector 800 fails writes (EIO), a media error: it is remapped
      expect(m.target.write(800, data)).toBe(ENOSPC); // ... but the spare's data block finds no space
      let s = m.target.stats();
      expect([s.remaps, s.spareUsed, s.badSpare, s.spareWriteErrors, s.enospc]).toEqual([0, 0, 0, 0, 0]);
      expect(state(m.target).state).toBe('store_enospc');
      expect(m.target.lastStoreError).toBe('ENOSPC on spare');
      // a write that needs no remap succeeds (main has room): the condition clears
      expect(m.target.write(0, data)).toBe(OK);
      expect(state(m.target).state).toBe('ok');

      fs.rmSync(filler);
      expect(m.target.write(800, data)).toBe(OK);
      s = m.target.stats();
      expect([s.remaps, s.spareUsed, s.badSpare]).toEqual([1, 1, 0]); // of the 4 KiB write's 512-byte blocks, the bad one
      const out = new Uint8Array(4096);
      expect(m.target.read(800, out)).toBe(OK);
      expect(Buffer.compare(out, data)).toBe(0);
    } finally {
      fs.rmSync(filler, { force: true });
      m.target.close();
      fs.rmSync(spare);
    }
  });

  it('a replica in another thread gets ENOSPC from its primary, no remap, and one condition for both', () => {
    const main = path.join(mnt, 'main3.img');
    const spare = path.join(mnt, 'spare3.img');
    FileDevice.createSparse(main, 32 << 20);
    FileDevice.createSparse(spare, 4 << 20);
    const m = openSafeModel(FileDevice.open(main, { exclusive: true }), FileDevice.open(spare, { exclusive: true }), { logBlocks: 16 });
    const primary = m.target;
    const replica = new SafeRemapTarget({
      main: FileDevice.open(main),
      spare: FileDevice.open(spare),
      replicaOf: { shared: primary.shared, row: 1, slow: (op, args, data) => primary.handleSlowPath(op, args, data!) },
    });
    const filler = path.join(mnt, 'filler3');
    try {
      fillUp(filler);
      let rc = OK;
      for (let i = 0; i < 512 && rc === OK; i++) rc = replica.write((i * CHUNK) / 512, chunk(i));
      expect(rc).toBe(ENOSPC);
      expect(state(primary).state).toBe('store_enospc');
      expect(primary.stats().remaps).toBe(0);
      fs.rmSync(filler);
      expect(replica.write(0, chunk(0, 1))).toBe(OK);
      expect(state(primary).state).toBe('ok');
    } finally {
      fs.rmSync(filler, { force: true });
      replica.close();
      primary.close();
      fs.rmSync(main);
      fs.rmSync(spare);
    }
  });
});

describe('a read-only store under the safe policy', () => {
  const { dir } = tmpWithUndo('remapsim-erofs-', afterAll);

  it('EROFS fails the write with EROFS and remaps nothing; EIO (a medium) is remapped', () => {
    const main = path.join(dir, 'main.img');
    const spare = path.join(dir, 'spare.img');
    FileDevice.createSparse(main, 4 << 20);
    FileDevice.createSparse(spare, 1 << 20);
    const t = new SafeRemapTarget({ main: FileDevice.open(main, { readOnly: true }), spare: FileDevice.open(spare), reservedSectors: 64 });
    try {
      expect(t.write(10, new Uint8Array(512))).toBe(EROFS);
      expect(t.stats().remaps).toBe(0);
      expect(state(t).state).toBe('store_erofs');
    } finally {
      t.close();
    }
    const dust = new DustDevice(FileDevice.open(main), { log: () => {} });
    dust.enable();
    dust.addBadBlock(10);
    const u = new SafeRemapTarget({ main: dust, spare: FileDevice.open(spare), reservedSectors: 64 });
    try {
      const out = new Uint8Array(512);
      expect(u.read(10, out)).toBe(EIO);
      expect(u.pendingCount).toBe(1);
      expect(u.write(10, new Uint8Array(512).fill(9))).toBe(OK);
      expect(u.stats().remaps).toBe(1);
      expect(state(u).state).toBe('ok');
    } finally {
      u.close();
    }
  });
});
