import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { attachLoop, detachLoop, listLoops, loopDeviceInfo, type LoopDeviceInfo, LoopError, type LoopSys, loopStatus } from '../../src/kernel/loop.js';
import { LOOP_CTL_GET_FREE, LO_FLAGS_AUTOCLEAR, LO_FLAGS_DIRECT_IO, LO_FLAGS_READ_ONLY } from '../../src/kernel/loop-codec.js';
import { BLKSSZGET, libc } from '../../src/sys/libc.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';

const skip = skipReason(loopUnavailable(), 'loop device tests');
const tmp = tmpDir('remapsim-loop-');

/** Every loop device backed by a file of ours goes, whatever happened in the tests. */
afterAll(() => {
  if (!skip) {
    for (const d of listLoops()) {
      if (!d.backingFile.startsWith(tmp.dir)) continue;
      try {
        detachLoop(d.number);
      } catch {
        try {
          execFileSync('losetup', ['-d', d.device], { stdio: 'ignore' });
        } catch {
          // already gone
        }
      }
    }
  }
  tmp.cleanup();
});

const MiB = 1 << 20;

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 131 + seed * 17 + (i >> 9)) & 0xff;
  return b;
}

/** A backing file with a known pattern in every 4 KiB block. */
function backingFile(name: string, size = 4 * MiB): string {
  const file = path.join(tmp.dir, name);
  fs.writeFileSync(file, pattern(size, name.length));
  return file;
}

function pread(file: string, offset: number, len: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(len);
    expect(fs.readSync(fd, b, 0, len, offset)).toBe(len);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

function pwrite(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    expect(fs.writeSync(fd, data, 0, data.length, offset)).toBe(data.length);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** What `losetup --list --json` says about one device, in our field names. */
function losetupView(device: string): Partial<LoopDeviceInfo> | undefined {
  const out = execFileSync('losetup', ['--list', '--json', '-O', 'NAME,SIZELIMIT,OFFSET,AUTOCLEAR,RO,BACK-FILE,DIO,LOG-SEC', device], { encoding: 'utf8' });
  if (out.trim() === '') return undefined;
  const row = (JSON.parse(out) as { loopdevices: Array<Record<string, unknown>> }).loopdevices.find((r) => r.name === device);
  if (!row || row['back-file'] === null) return undefined; // losetup lists an unattached device with a null file
  return {
    device: row.name as string,
    sizeLimit: Number(row.sizelimit),
    offset: Number(row.offset),
    autoclear: row.autoclear === true || row.autoclear === 1 || row.autoclear === '1',
    readOnly: row.ro === true || row.ro === 1 || row.ro === '1',
    backingFile: row['back-file'] as string,
    dio: row.dio === true || row.dio === 1 || row.dio === '1',
    logicalBlockSize: Number(row['log-sec']),
  };
}

function ourView(d: LoopDeviceInfo): Partial<LoopDeviceInfo> {
  const { device, sizeLimit, offset, autoclear, readOnly, backingFile, dio, logicalBlockSize } = d;
  return { device, sizeLimit, offset, autoclear, readOnly, backingFile, dio, logicalBlockSize };
}

function supportsODirect(file: string): boolean {
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)('loop devices on this host', () => {
  it('plain attach: sysfs, LOOP_GET_STATUS64 and losetup agree; data goes both ways; detach removes it', () => {
    const file = backingFile('plain.img');
    const att = attachLoop(file);
    try {
      expect(att.method).toBe('configure');
      expect(att.fd).toBeUndefined();
      const info = loopDeviceInfo(att.device)!;
      expect(info).toMatchObject({
        backingFile: file,
        offset: 0,
        sizeLimit: 0,
        autoclear: false,
        dio: false,
        readOnly: false,
        logicalBlockSize: 512,
        sectors: 8192,
        major: 7,
      });
      expect(ourView(info)).toEqual(losetupView(att.device));
      expect(listLoops().find((d) => d.number === att.number)).toEqual(info);
      const st = loopStatus(att.device);
      expect(st).toMatchObject({ number: att.number, offset: 0, sizeLimit: 0, flags: 0, fileName: file.slice(0, 63) });
      expect(st.inode).toBe(fs.statSync(file).ino);

      expect(pread(att.device, 64 * 1024, 8192)).toEqual(pread(file, 64 * 1024, 8192));
      const data = pattern(16384, 99);
      pwrite(att.device, 1 * MiB, data);
      expect(pread(file, 1 * MiB, 16384)).toEqual(data);
    } finally {
      att.release();
    }
    expect(loopDeviceInfo(att.device)).toBeUndefined();
    expect(losetupView(att.device)).toBeUndefined();
    att.release(); // twice is harmless
  });

  it('read-only: the kernel marks the device read-only and writes fail', () => {
    const file = backingFile('ro.img', MiB);
    const before = fs.readFileSync(file);
    const att = attachLoop(file, { readOnly: true });
    try {
      const info = loopDeviceInfo(att.device)!;
      expect(info.readOnly).toBe(true);
      expect(ourView(info)).toEqual(losetupView(att.device));
      expect(loopStatus(att.number).flags & LO_FLAGS_READ_ONLY).toBeTruthy();
      expect(() => pwrite(att.device, 0, pattern(4096, 1))).toThrow();
      expect(pread(att.device, 0, 4096)).toEqual(before.subarray(0, 4096));
    } finally {
      att.release();
    }
    expect(fs.readFileSync(file).equals(before)).toBe(true); // (toEqual walks a MiB byte by byte: seconds)
  });

  it('4096-byte logical blocks with direct I/O', () => {
    const file = backingFile('dio.img');
    const att = attachLoop(file, { blockSize: 4096, direct: true });
    try {
      const info = loopDeviceInfo(att.device)!;
      expect(info.logicalBlockSize).toBe(4096);
      expect(info.dio).toBe(supportsODirect(file));
      expect(ourView(info)).toEqual(losetupView(att.device));
      expect(Boolean(loopStatus(att.number).flags & LO_FLAGS_DIRECT_IO)).toBe(info.dio);
      const fd = fs.openSync(att.device, 'r');
      try {
        expect(libc().ioctlGetInt(fd, BLKSSZGET)).toBe(4096);
      } finally {
        fs.closeSync(fd);
      }
      const data = pattern(8192, 7);
      pwrite(att.device, 2 * MiB, data);
      expect(pread(file, 2 * MiB, 8192)).toEqual(data);
      expect(pread(att.device, 12288, 4096)).toEqual(pread(file, 12288, 4096));
    } finally {
      att.release();
    }
    expect(loopDeviceInfo(att.device)).toBeUndefined();
  });

  it('read-only, 4096-byte blocks, direct I/O, offset and size limit at once', () => {
    const file = backingFile('window.img');
    const att = attachLoop(file, { readOnly: true, blockSize: 4096, direct: true, offset: 8192, sizeLimit: MiB });
    try {
      const info = loopDeviceInfo(att.device)!;
      expect(info).toMatchObject({ readOnly: true, logicalBlockSize: 4096, offset: 8192, sizeLimit: MiB, sectors: MiB / 512 });
      expect(ourView(info)).toEqual(losetupView(att.device));
      expect(pread(att.device, 0, 4096)).toEqual(pread(file, 8192, 4096));
      expect(pread(att.device, MiB - 4096, 4096)).toEqual(pread(file, 8192 + MiB - 4096, 4096));
    } finally {
      att.release();
    }
  });

  it('the LOOP_SET_FD + LOOP_SET_STATUS64 path (kernels before 5.8) gives the same device', () => {
    const file = backingFile('legacy.img');
    const att = attachLoop(file, { legacy: true, blockSize: 4096, offset: 4096, sizeLimit: 2 * MiB });
    try {
      expect(att.method).toBe('set-fd');
      const info = loopDeviceInfo(att.device)!;
      expect(info).toMatchObject({ logicalBlockSize: 4096, offset: 4096, sizeLimit: 2 * MiB, sectors: 4096, readOnly: false });
      expect(ourView(info)).toEqual(losetupView(att.device));
      expect(pread(att.device, 0, 4096)).toEqual(pread(file, 4096, 4096));
    } finally {
      att.release();
    }
  });

  it('autoclear: the attachment holds the device open and closing it detaches', () => {
    const file = backingFile('auto.img', MiB);
    const att = attachLoop(file, { autoclear: true });
    expect(att.fd).toBeTypeOf('number');
    const info = loopDeviceInfo(att.device)!;
    expect(info.autoclear).toBe(true);
    expect(ourView(info)).toEqual(losetupView(att.device));
    expect(loopStatus(att.number).flags & LO_FLAGS_AUTOCLEAR).toBeTruthy();
    att.release();
    expect(loopDeviceInfo(att.device)).toBeUndefined();
  });

  it('another process taking the free device first: we move on to the next one', () => {
    const file = backingFile('race.img', MiB);
    const other = backingFile('race-other.img', MiB);
    const real = libc();
    let stolen: string | undefined;
    // Between LOOP_CTL_GET_FREE and our LOOP_CONFIGURE, losetup binds the very device we were handed.
    const sys: LoopSys = {
      ioctlInt(fd, request, arg) {
        const r = real.ioctlInt(fd, request, arg);
        if (request === LOOP_CTL_GET_FREE && stolen === undefined) {
          stolen = `/dev/loop${r}`;
          execFileSync('losetup', [stolen, other]);
        }
        return r;
      },
      ioctlBuffer: (fd, request, buf) => real.ioctlBuffer(fd, request, buf),
    };
    const att = attachLoop(file, { sys });
    try {
      expect(stolen).toBeDefined();
      expect(att.device).not.toBe(stolen);
      expect(loopDeviceInfo(att.device)!.backingFile).toBe(file);
      expect(loopDeviceInfo(stolen!)!.backingFile).toBe(other);
    } finally {
      att.release();
      if (stolen) detachLoop(stolen);
    }
  });

  it('mistakes are one clear line', () => {
    expect(() => attachLoop(path.join(tmp.dir, 'missing.img'))).toThrow(
      `cannot open backing file ${path.join(tmp.dir, 'missing.img')}: ENOENT (no such file or directory)`,
    );
    expect(() => attachLoop(tmp.dir)).toThrow(LoopError);
    const file = backingFile('bad.img', MiB);
    expect(() => attachLoop(file, { blockSize: 1000 })).toThrow('block size 1000 must be a power of two in 512..65536');
    expect(() => attachLoop(file, { offset: -1 })).toThrow(/offset -1 must be an integer in 0\.\./);
    expect(() => detachLoop('/dev/sda')).toThrow("'/dev/sda' is not a loop device name (expected /dev/loopN)");
    const att = attachLoop(file);
    att.release();
    const gone = loopDeviceInfo(att.number);
    if (gone === undefined) {
      expect(() => detachLoop(att.number)).toThrow(`${att.device} is not attached`);
      expect(() => loopStatus(att.number)).toThrow(`${att.device} is not attached`);
    }
  });
});
