/**
 * A backing file lost under a running model (issue 17, finding 3): a spare
 * truncated, a main deleted or truncated, a spare replaced. The next flush
 * or commit notices (fstat at each flush; a read past a file's end), the
 * target fails (writes and flushes) and its status names the loss; a
 * restart never formats again a spare that held the table of remaps.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ENOENT, ENXIO, OK } from '../../src/block/device.js';
import { FileDevice } from '../../src/block/file-device.js';
import { TableError } from '../../src/control/target.js';
import { openTarget } from '../../src/stack/table.js';
import type { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { probeSpare } from '../../src/metadata/probe.js';
import { fieldRecord, parseStatusLine } from '../../src/status/parse.js';
import { tmpWithUndo } from '../helpers/tmp.js';

const MAIN_SECTORS = 16384; // 8 MiB
const SPARE_BYTES = 4 << 20;

const { dir } = tmpWithUndo('remapsim-lost-', afterAll);
let n = 0;

function block(tag: number): Uint8Array {
  const b = new Uint8Array(512);
  for (let i = 0; i < 512; i++) b[i] = (tag * 37 + i) & 0xff || 1;
  return b;
}

/** A served-like model (a remap table line on two files) with main block 12 remapped and data written. */
function model(): { t: SafeRemapTarget; main: string; spare: string; line: string } {
  const main = path.join(dir, `main-${++n}.img`);
  const spare = path.join(dir, `spare-${n}.img`);
  FileDevice.createSparse(main, MAIN_SECTORS * 512);
  FileDevice.createSparse(spare, SPARE_BYTES);
  const line = `0 ${MAIN_SECTORS} remap ${main} ${spare}`;
  const t = openTarget(line) as SafeRemapTarget;
  for (let b = 0; b < 64; b++) expect(t.write(b, block(b))).toBe(OK);
  expect(t.message(['remap', '12'])).toMatch(/remapped to spare block/);
  expect(t.write(12, block(1012))).toBe(OK); // acknowledged on the spare
  expect(t.flush()).toBe(OK);
  expect(stateOf(t)).toBe('ok');
  return { t, main, spare, line };
}

function probeOf(spare: string): ReturnType<typeof probeSpare> {
  const dev = FileDevice.open(spare, { readOnly: true });
  try {
    return probeSpare(dev);
  } finally {
    dev.close();
  }
}

function stateOf(t: { status(): string }): unknown {
  return fieldRecord(parseStatusLine(t.status())).state;
}

describe('a spare truncated under a running model', () => {
  it('the next flush fails and the status names it; writes fail, reads of main go on; a restart refuses the empty spare', () => {
    const { t, spare, line } = model();
    try {
      fs.truncateSync(spare, 0);
      expect(t.flush()).toBe(ENXIO);
      expect(stateOf(t)).toBe('failed_spare_shrunk');
      expect(t.write(20, block(2020))).toBe(ENXIO);
      expect(t.flush()).toBe(ENXIO); // and stays failed
      const out = new Uint8Array(512);
      expect(t.read(30, out)).toBe(OK);
      expect(out).toEqual(block(30));
      expect(t.read(12, out)).toBe(ENXIO); // remapped: past the spare's end now
      expect(t.pendingCount).toBe(0); // not a bad sector
    } finally {
      t.close();
    }
    expect(() => openTarget(line)).toThrow(TableError);
    expect(() => openTarget(line)).toThrow(/cannot open spare device: .*empty device/);
  });

  it('the next remap commit fails, and records nothing', () => {
    const { t, spare } = model();
    try {
      fs.truncateSync(spare, 0);
      expect(() => t.message(['remap', '40'])).toThrow(/cannot remap block 40/);
      expect(stateOf(t)).toBe('failed_spare_shrunk');
      expect(t.lookup(40)).toBe(-1);
    } finally {
      t.close();
    }
  });

  it('grown back to its size and written to: a restart refuses to format it again (unless forced)', () => {
    const { t, spare, line } = model();
    fs.truncateSync(spare, 0);
    expect(t.write(12, block(3012))).toBe(OK); // lands on the spare before anything noticed: the file grows to it
    fs.truncateSync(spare, SPARE_BYTES); // someone "fixes" the size
    t.close();
    expect(probeOf(spare).kind).toBe('used');
    let err: unknown;
    try {
      openTarget(line).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TableError);
    expect((err as Error).message).toMatch(
      /no metadata, but written data at spare sector \d+: a spare that held a table of remaps.*--force to format it anyway/,
    );
    // forced, it is formatted: an empty table
    const forced = openTarget(line, { safeMetadata: { force: true } }) as SafeRemapTarget;
    expect(forced.remapCount).toBe(0);
    forced.close();
  });

  it('a new spare, and one whose format was interrupted, are still formatted without --force', () => {
    const main = path.join(dir, 'fresh-main.img');
    const spare = path.join(dir, 'fresh-spare.img');
    FileDevice.createSparse(main, MAIN_SECTORS * 512);
    fs.writeFileSync(spare, new Uint8Array(SPARE_BYTES)); // zero-filled, not sparse: read once, found empty
    const t = openTarget(`0 ${MAIN_SECTORS} remap ${main} ${spare}`) as SafeRemapTarget;
    const end = t.spare.sectors - 8;
    t.close();
    // an interrupted format: no superblock yet, checkpoint blocks without entries
    const dev = FileDevice.open(spare);
    dev.write(0, new Uint8Array(4096));
    dev.write(end, new Uint8Array(4096));
    dev.close();
    expect(probeOf(spare).kind).toBe('blank');
    openTarget(`0 ${MAIN_SECTORS} remap ${main} ${spare}`).close();
  });
});

describe('a main deleted, truncated or a spare replaced under a running model', () => {
  it('main deleted: the next flush fails (ENOENT), the status names it, writes fail, reads go on', () => {
    const { t, main } = model();
    try {
      fs.rmSync(main);
      expect(t.flush()).toBe(ENOENT);
      expect(stateOf(t)).toBe('failed_main_deleted');
      expect(t.write(30, block(9))).toBe(ENOENT);
      const out = new Uint8Array(512);
      expect(t.read(31, out)).toBe(OK);
      expect(out).toEqual(block(31));
      expect(t.read(12, out)).toBe(OK);
      expect(out).toEqual(block(1012));
    } finally {
      t.close();
    }
  });

  it('main truncated: a read past its new end fails (ENXIO), marks nothing pending, and fails the target', () => {
    const { t, main } = model();
    try {
      fs.truncateSync(main, 4096);
      const out = new Uint8Array(512);
      expect(t.read(MAIN_SECTORS - 1, out)).toBe(ENXIO);
      expect(t.pendingCount).toBe(0);
      expect(stateOf(t)).toBe('failed_main_shrunk');
      expect(t.write(0, block(5))).toBe(ENXIO);
    } finally {
      t.close();
    }
  });

  it('spare replaced by a rename over it: the next flush fails, the status names it', () => {
    const { t, spare } = model();
    try {
      const other = `${spare}.new`;
      FileDevice.createSparse(other, SPARE_BYTES);
      fs.renameSync(other, spare);
      expect(t.flush()).toBe(ENOENT);
      expect(stateOf(t)).toBe('failed_spare_deleted');
    } finally {
      t.close();
    }
  });
});
