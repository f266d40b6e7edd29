/**
 * `remapsim loop attach|detach|ls` on the host's real loop driver: attach a
 * file, write and read through the device, list, detach; option values and
 * errors. Needs root and /dev/loop-control (skips with the reason otherwise).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detachLoop, listLoops } from '../../src/kernel/loop.js';
import { formatLoopList, parseByteSize } from '../../src/cli/commands/loop.js';
import { runCli } from '../helpers/cli.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';
import { runInProcess } from './in-process.js';

const skip = skipReason(loopUnavailable(), 'remapsim loop tests');
const tmp = tmpDir('remapsim-cli-loop-');
const MiB = 1 << 20;

afterAll(() => {
  if (!skip) {
    for (const d of listLoops()) {
      if (!d.backingFile.startsWith(tmp.dir)) continue;
      try {
        detachLoop(d.number);
      } catch {
        // already going
      }
    }
  }
  tmp.cleanup();
});

function patterned(name: string, bytes: number): { file: string; data: Buffer } {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 131 + (i >> 9) * 7) & 0xff;
  const file = path.join(tmp.dir, name);
  fs.writeFileSync(file, data);
  return { file, data };
}

describe('loop helpers', () => {
  it('parses byte sizes with binary suffixes and names the option when it cannot', () => {
    expect(parseByteSize('4096', '--block-size')).toBe(4096);
    expect(parseByteSize('64K', '--offset')).toBe(65536);
    expect(parseByteSize('1MiB', '--offset')).toBe(MiB);
    expect(parseByteSize('2g', '--sizelimit')).toBe(2 * 1024 ** 3);
    expect(() => parseByteSize('1.5M', '--offset')).toThrow(
      "--offset must be a whole number of bytes, optionally with a K, M, G or T (binary) suffix, got '1.5M'",
    );
    expect(() => parseByteSize('-1', '--offset')).toThrow(/got '-1'/);
    expect(() => parseByteSize('12parsecs', '--sizelimit')).toThrow(/--sizelimit must be/);
  });

  it('lists like losetup --list', () => {
    expect(formatLoopList([])).toBe('');
    const text = formatLoopList([
      {
        device: '/dev/loop0',
        number: 0,
        major: 7,
        minor: 0,
        backingFile: '/tmp/a.img',
        offset: 0,
        sizeLimit: 0,
        autoclear: false,
        partscan: false,
        dio: false,
        readOnly: false,
        logicalBlockSize: 512,
        sectors: 16384,
      },
      {
        device: '/dev/loop12',
        number: 12,
        major: 7,
        minor: 12,
        backingFile: '/var/tmp/long-name.img',
        offset: 1048576,
        sizeLimit: 2097152,
        autoclear: true,
        partscan: false,
        dio: true,
        readOnly: true,
        logicalBlockSize: 4096,
        sectors: 4096,
      },
    ]);
    expect(text.split('\n')).toEqual([
      'NAME        SIZELIMIT  OFFSET AUTOCLEAR RO BACK-FILE              DIO LOG-SEC',
      '/dev/loop0          0       0         0  0 /tmp/a.img               0     512',
      '/dev/loop12   2097152 1048576         1  1 /var/tmp/long-name.img   1    4096',
      '',
    ]);
  });
});

describe.skipIf(skip)('remapsim loop on this kernel', () => {
  it('attach prints the device; I/O through it reaches the file; ls shows it; detach removes it', async () => {
    const { file, data } = patterned('plain.img', 4 * MiB);
    const a = runCli(['loop', 'attach', file]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toBe('');
    const dev = a.stdout.trim();
    expect(dev).toMatch(/^\/dev\/loop\d+$/);
    try {
      const fd = fs.openSync(dev, 'r+');
      try {
        const back = Buffer.alloc(64 * 1024);
        expect(fs.readSync(fd, back, 0, back.length, MiB)).toBe(back.length);
        expect(back.equals(data.subarray(MiB, MiB + back.length))).toBe(true);
        const fresh = Buffer.alloc(8192, 0x5a);
        expect(fs.writeSync(fd, fresh, 0, fresh.length, 2 * MiB)).toBe(fresh.length);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      const onDisk = fs.readFileSync(file);
      expect(onDisk.subarray(2 * MiB, 2 * MiB + 8192).every((b) => b === 0x5a)).toBe(true);
      expect(onDisk.subarray(2 * MiB + 8192, 3 * MiB).equals(data.subarray(2 * MiB + 8192, 3 * MiB))).toBe(true);

      const ls = await runInProcess(['loop', 'ls', '--json']);
      expect(ls.code).toBe(0);
      const row = (JSON.parse(ls.stdout) as Array<Record<string, unknown>>).find((r) => r.device === dev);
      expect(row).toMatchObject({ backingFile: file, offset: 0, sizeLimit: 0, readOnly: false, autoclear: false, logicalBlockSize: 512, sectors: 8192 });
      const text = await runInProcess(['loop', 'ls']);
      expect(text.stdout).toMatch(/^NAME +SIZELIMIT +OFFSET AUTOCLEAR RO BACK-FILE +DIO LOG-SEC$/m);
      expect(text.stdout).toMatch(new RegExp(`^${dev} +0 +0 +0 +0 ${file.replace(/[.]/g, '\\.')} +[01] +512$`, 'm'));
    } finally {
      const d = runCli(['loop', 'detach', dev]);
      expect(d.code, d.stderr).toBe(0);
      expect(d.stdout + d.stderr).toBe('');
    }
    expect(listLoops().some((l) => l.device === dev && l.backingFile === file)).toBe(false);
    const again = await runInProcess(['loop', 'detach', dev]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(new RegExp(`^remapsim: ${dev} (is not attached|does not exist or is being detached)\\n$`));
  });

  it('offset, size limit, block size and read-only reach the kernel', async () => {
    const { file, data } = patterned('window.img', 4 * MiB);
    const a = await runInProcess(['loop', 'attach', file, '--offset', '1M', '--sizelimit', '2MiB', '--block-size', '4096', '--read-only', '--json']);
    expect(a.code, a.stderr).toBe(0);
    const j = JSON.parse(a.stdout) as Record<string, unknown> & { device: string };
    try {
      expect(j).toMatchObject({ backingFile: file, offset: MiB, sizeLimit: 2 * MiB, logicalBlockSize: 4096, readOnly: true, sectors: 4096 });
      const fd = fs.openSync(j.device, 'r');
      try {
        const back = Buffer.alloc(4096);
        expect(fs.readSync(fd, back, 0, 4096, 0)).toBe(4096);
        expect(back.equals(data.subarray(MiB, MiB + 4096))).toBe(true);
      } finally {
        fs.closeSync(fd);
      }
      const w = fs.openSync(j.device, 'r+');
      try {
        expect(() => fs.writeSync(w, Buffer.alloc(4096), 0, 4096, 0)).toThrow(/EPERM|EROFS|EACCES/);
      } finally {
        fs.closeSync(w);
      }
    } finally {
      expect((await runInProcess(['loop', 'detach', j.device])).code).toBe(0);
    }
  });

  it('--autoclear: the kernel detaches the device as soon as remapsim lets go of it, and remapsim says so', async () => {
    const { file } = patterned('auto.img', MiB);
    const a = await runInProcess(['loop', 'attach', '--autoclear', file]);
    expect(a.code, a.stderr).toBe(0);
    const dev = a.stdout.trim();
    expect(dev).toMatch(/^\/dev\/loop\d+$/);
    expect(a.stderr).toMatch(/was attached with --autoclear and nothing else held it open/);
    expect(listLoops().some((l) => l.device === dev && l.backingFile === file)).toBe(false);
  });

  it('refuses bad input in one line with exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['loop', 'attach', path.join(tmp.dir, 'nope.img')], /cannot open backing file .*nope\.img: ENOENT/],
      [['loop', 'attach', tmp.dir], /backing file .* is a directory/],
      [['loop', 'attach', '--block-size', '1000', path.join(tmp.dir, 'x')], /block size 1000 must be a power of two in 512\.\.65536/],
      [['loop', 'attach', '--offset', 'far', path.join(tmp.dir, 'x')], /--offset must be a whole number of bytes/],
      [['loop', 'detach', '/dev/sda'], /'\/dev\/sda' is not a loop device name/],
    ];
    fs.writeFileSync(path.join(tmp.dir, 'x'), Buffer.alloc(MiB));
    for (const [args, msg] of cases) {
      const r = await runInProcess(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(msg);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });
});
