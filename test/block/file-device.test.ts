import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice, DeviceOpenError } from '../../src/block/file-device.js';
import { allocAligned } from '../../src/block/aligned.js';
import { OK } from '../../src/block/device.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir();
afterAll(() => tmp.cleanup());

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('FileDevice on a regular file', () => {
  const file = path.join(tmp.dir, 'a.img');
  beforeAll(() => FileDevice.createSparse(file, 8 << 20));

  it("reads without touching the file's access time (O_NOATIME)", () => {
    const f = path.join(tmp.dir, 'atime.img');
    FileDevice.createSparse(f, 1 << 20);
    const old = new Date(Date.now() - 3 * 86400_000);
    fs.utimesSync(f, old, new Date(Date.now() - 4 * 86400_000)); // relatime would refresh an atime older than a day
    const dev = FileDevice.open(f);
    try {
      expect(dev.read(0, new Uint8Array(4096))).toBe(OK);
    } finally {
      dev.close();
    }
    expect(Math.abs(fs.statSync(f).atimeMs - old.getTime())).toBeLessThan(1000);
  });

  it('writes, reads back, flushes and punches holes', () => {
    const dev = FileDevice.open(file);
    try {
      expect(dev.sectors).toBe(16384);
      expect(dev.isBlockDevice).toBe(false);
      const data = pattern(65536, 3);
      expect(dev.write(100, data, { fua: true })).toBe(OK);
      const out = new Uint8Array(65536);
      expect(dev.read(100, out)).toBe(OK);
      expect(out).toEqual(data);
      expect(dev.flush()).toBe(OK);
      expect(dev.discard(104, 8)).toBe(OK);
      dev.read(100, out);
      expect(out.subarray(0, 2048)).toEqual(data.subarray(0, 2048));
      expect(out.subarray(2048, 6144).every((b) => b === 0)).toBe(true);
      expect(out.subarray(6144)).toEqual(data.subarray(6144));
    } finally {
      dev.close();
    }
  });

  it('O_DIRECT works with aligned and with ordinary buffers', () => {
    const dev = FileDevice.open(file, { direct: true, logicalBlockSize: 4096 });
    const a = allocAligned(8192);
    try {
      a.buf.set(pattern(8192, 5));
      expect(dev.write(16, a.buf)).toBe(OK);
      const plain = new Uint8Array(8192);
      expect(dev.read(16, plain)).toBe(OK); // bounced
      expect(plain).toEqual(pattern(8192, 5));
      a.buf.fill(0);
      expect(dev.read(16, a.buf)).toBe(OK); // straight to the kernel
      expect(a.buf).toEqual(pattern(8192, 5));
    } finally {
      a.free();
      dev.close();
    }
  });

  it('mappedRead shows the page cache: the bytes a read gives, later writes included; not with O_DIRECT or across a window', () => {
    const f = path.join(tmp.dir, 'mapped.img');
    FileDevice.createSparse(f, 3 << 29); // 1.5 GiB, sparse: two mapping windows
    const dev = FileDevice.open(f);
    try {
      const data = pattern(1 << 20, 4);
      expect(dev.write(2048, data)).toBe(OK);
      const v = dev.mappedRead(2048, 2048)!;
      expect(v.length).toBe(1 << 20);
      expect(Buffer.from(v).equals(Buffer.from(data))).toBe(true);
      const next = pattern(4096, 8);
      expect(dev.write(2048, next)).toBe(OK);
      expect(Buffer.from(v.subarray(0, 4096)).equals(Buffer.from(next))).toBe(true); // shared with the file: no stale copy
      const lastOfWindow = (1 << 30) / 512 - 8;
      expect(dev.mappedRead(lastOfWindow, 8)!.length).toBe(4096);
      expect(dev.mappedRead(lastOfWindow, 16)).toBeUndefined(); // crosses into the second window: read() it
      expect(dev.mappedRead((1 << 30) / 512, 16)!.length).toBe(8192);
      expect(() => dev.mappedRead(dev.sectors - 8, 16)).toThrow(/beyond|range/);
      // resident: only when every page is in the page cache (a never-touched hole is not)
      expect(dev.mappedRead(2048, 2048, { resident: true })!.length).toBe(1 << 20);
      const hole = (1 << 29) / 512;
      expect(dev.mappedRead(hole, 16, { resident: true })).toBeUndefined();
      expect(dev.write(hole, pattern(8192, 1))).toBe(OK);
      expect(dev.mappedRead(hole, 16, { resident: true })!.length).toBe(8192);
      dev.close();
      expect(v.every((b) => b === 0)).toBe(true); // a view kept past close() reads zeroes, it does not fault
    } finally {
      dev.close();
    }
    const direct = FileDevice.open(f, { direct: true });
    try {
      expect(direct.mappedRead(0, 8)).toBeUndefined();
    } finally {
      direct.close();
    }
  });

  it('names the problem when it cannot open', () => {
    expect(() => FileDevice.open(path.join(tmp.dir, 'missing.img'))).toThrow(/missing.img: no such file or directory/);
    expect(() => FileDevice.open(tmp.dir)).toThrow(DeviceOpenError);
    expect(() => FileDevice.open(file, { sectors: 1 << 20 })).toThrow(/fewer than the 1048576 asked for/);
  });
});

describe.skipIf(skipReason(loopUnavailable(), 'loop-device tests'))('FileDevice on a loop device', () => {
  let loop = '';
  const backing = path.join(tmp.dir, 'loop.img');
  beforeAll(() => {
    FileDevice.createSparse(backing, 4 << 20);
    loop = execFileSync('losetup', ['-f', '--show', '--sector-size', '4096', backing], { encoding: 'utf8' }).trim();
  });
  afterAll(() => {
    if (loop) execFileSync('losetup', ['-d', loop]);
  });

  it('gets size and logical block size from the kernel', () => {
    const dev = FileDevice.open(loop);
    try {
      expect(dev.isBlockDevice).toBe(true);
      expect(dev.sectors).toBe(8192);
      expect(dev.logicalBlockSize).toBe(4096);
      const data = pattern(4096, 9);
      expect(dev.write(8, data)).toBe(OK);
      expect(dev.flush()).toBe(OK);
      const out = new Uint8Array(4096);
      expect(dev.read(8, out)).toBe(OK);
      expect(out).toEqual(data);
      expect(() => dev.read(4, out)).toThrow(/not aligned/);
      expect(dev.discard(8, 8)).toBe(OK);
      dev.read(8, out);
      expect(out.every((b) => b === 0)).toBe(true);
    } finally {
      dev.close();
    }
    // what the device saw is what the backing file holds
    const fd = fs.openSync(backing, 'r');
    const raw = Buffer.alloc(4096);
    fs.readSync(fd, raw, 0, 4096, 8 * 512);
    fs.closeSync(fd);
    expect(raw.every((b) => b === 0)).toBe(true);
  });

  it("direct: 'block' opens a block device with O_DIRECT and a regular file buffered", () => {
    const dev = FileDevice.open(loop, { readOnly: true, direct: 'block' });
    const file = FileDevice.open(backing, { readOnly: true, direct: 'block' });
    try {
      expect(dev.direct).toBe(true);
      expect(file.direct).toBe(false);
      expect(file.pageCached).toBe(true);
      // the kernel shows the open flags of the fd
      const fdFlags = fs.readFileSync(`/proc/self/fdinfo/${(dev as unknown as { fd: number }).fd}`, 'utf8');
      expect(Number.parseInt(/^flags:\s+(\d+)$/m.exec(fdFlags)![1], 8) & fs.constants.O_DIRECT).toBe(fs.constants.O_DIRECT);
      // an unaligned caller buffer still reads (through the bounce buffer)
      const out = new Uint8Array(4097).subarray(1);
      expect(dev.read(0, out)).toBe(OK);
    } finally {
      dev.close();
      file.close();
    }
  });
});
