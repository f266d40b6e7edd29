import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { DeviceBusyError, DeviceOpenError, FileDevice } from '../../src/block/file-device.js';
import { OK } from '../../src/block/device.js';
import { TableError } from '../../src/control/target.js';
import { openTarget } from '../../src/stack/table.js';
import { loopUnavailable, skipReason, tmpWithUndo } from '../helpers/tmp.js';

const { dir, undo } = tmpWithUndo('remapsim-claim-', afterAll);

function file(name: string, bytes = 4 << 20): string {
  const p = path.join(dir, name);
  FileDevice.createSparse(p, bytes);
  return p;
}

describe("a writer's claim on a regular file", () => {
  it('a second writer is refused, naming the holder; readers are not, and see the writer', () => {
    const p = file('one.img');
    const first = FileDevice.open(p, { exclusive: true });
    try {
      let err: unknown;
      try {
        FileDevice.open(p, { exclusive: true }).close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DeviceBusyError);
      expect(err).toBeInstanceOf(DeviceOpenError); // the CLI's one line and exit 2
      expect((err as Error).message).toContain(`${p}: in use by another writer, pid ${process.pid}`);
      expect((err as Error).message).not.toContain('\n');
      const reader = FileDevice.open(p, { readOnly: true });
      try {
        expect(reader.read(0, new Uint8Array(512))).toBe(OK);
        expect(reader.writerHolding()).toContain(`pid ${process.pid}`);
      } finally {
        reader.close();
      }
    } finally {
      first.close();
    }
    // the claim ends with close(): the next writer gets it, and a reader sees nobody
    const next = FileDevice.open(p, { exclusive: true });
    next.close();
    const reader = FileDevice.open(p, { readOnly: true });
    expect(reader.writerHolding()).toBeUndefined();
    reader.close();
  });

  it('two models on the same files: the second table load is refused, and the first keeps serving', () => {
    const main = file('main.img');
    const spare = file('spare.img', 2 << 20);
    const line = `0 8192 remap ${main} ${spare}`;
    const t = openTarget(line);
    try {
      expect(() => openTarget(line)).toThrow(TableError);
      expect(() => openTarget(line)).toThrow(new RegExp(`cannot open main device: ${main}: in use by another writer, pid ${process.pid}`));
      // only the spare held (another table took main meanwhile: refused all the same, and main is let go)
      const otherMain = file('main2.img');
      expect(() => openTarget(`0 8192 remap ${otherMain} ${spare}`)).toThrow(/cannot open spare device: .*in use by another writer/);
      FileDevice.open(otherMain, { exclusive: true }).close();
      expect(t.write(0, new Uint8Array(512).fill(7))).toBe(OK);
      // the dm-remap-v4 policy on the same files too
      expect(() => openTarget(`0 8192 dm-remap-v4 ${main} ${spare}`)).toThrow(/in use by another writer/);
    } finally {
      t.close();
    }
    const again = openTarget(line);
    again.close();
  });
});

describe("a writer's claim on a block device (O_EXCL)", () => {
  const why = loopUnavailable();
  it.skipIf(skipReason(why, 'block device claims'))('a second writer is refused, in this process and by a mount; readers are not', () => {
    const img = file('loop.img', 8 << 20);
    const dev = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
    undo.push(() => execFileSync('losetup', ['-d', dev]));
    const first = FileDevice.open(dev, { exclusive: true });
    try {
      // O_EXCL is refused (EBUSY); the OFD lock names who holds it
      expect(() => FileDevice.open(dev, { exclusive: true })).toThrow(new RegExp(`${dev}: in use by another writer, pid ${process.pid}`));
      const reader = FileDevice.open(dev, { readOnly: true });
      expect(reader.writerHolding()).toContain(`pid ${process.pid}`);
      reader.close();
    } finally {
      first.close();
    }
    // held by the kernel (a mount): EBUSY, said as such
    execFileSync('mkfs.ext4', ['-q', '-F', dev]);
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    execFileSync('mount', [dev, mnt]);
    undo.push(() => execFileSync('umount', [mnt]));
    try {
      expect(() => FileDevice.open(dev, { exclusive: true })).toThrow(new RegExp(`${dev}: the block device is held \\(EBUSY\\): mounted on ${mnt}`));
      FileDevice.open(dev, { readOnly: true }).close();
    } finally {
      execFileSync('umount', [mnt]);
      undo.pop();
    }
    FileDevice.open(dev, { exclusive: true }).close();
  });
});
