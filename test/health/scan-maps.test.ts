/**
 * `remapsim scan --mapfile / --badblocks` on a disk with real read faults
 * (nbdkit + nbdfuse, test/helpers/faulty-disk.ts): the mapfile is GNU
 * ddrescue's (ddrescuelog reads it back), the list is badblocks' (e2fsck -l
 * puts it in a real ext4 image's bad-block inode), and remapsim's own loaders
 * (a scenario's badSectorsFile, --known-bad) read both back; a mapfile of a
 * device of another size is refused.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBadblocksList, parseBadblocksList } from '../../src/faults/badblocks.js';
import { buildScenario } from '../../src/scenario/build.js';
import { validateScenario } from '../../src/scenario/schema.js';
import { runInProcess } from '../cli/in-process.js';
import { type FaultyDisk, faultyDiskUnavailable, startFaultyDisk } from '../helpers/faulty-disk.js';
import { skipReason, tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-scan-maps-');
afterAll(() => tmp.cleanup());

function toolsMissing(): string | undefined {
  const disk = faultyDiskUnavailable();
  if (disk) return disk;
  for (const [tool, pkg] of [
    ['ddrescuelog', 'gddrescue'],
    ['e2fsck', 'e2fsprogs'],
    ['mke2fs', 'e2fsprogs'],
  ]) {
    try {
      execFileSync(tool!, ['-V'], { stdio: 'ignore' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `${tool} is not installed (apt-get install -y ${pkg})`;
    }
  }
  return undefined;
}

const BAD_BLOCKS = [100, 700]; // 4 KiB blocks
const BYTES = 4 << 20;
const tool = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });

function scenarioOf(mainSize: string, file: string, format: 'ddrescue' | 'badblocks', badBlockSize?: number): ReturnType<typeof validateScenario> {
  const main = { badSectorsFile: file, badSectorsFormat: format, ...(badBlockSize ? { badBlockSize } : {}) };
  return validateScenario(
    {
      name: 'readback',
      devices: { main: { size: mainSize }, spare: { size: '1MiB' } },
      faults: { main },
      jobs: [{ name: 'x', rw: 'read', bs: '4k', size: '64k' }],
    },
    'readback',
  );
}

describe.skipIf(skipReason(toolsMissing(), 'scan --mapfile/--badblocks against ddrescuelog and e2fsck'))('remapsim scan --mapfile and --badblocks', () => {
  let disk: FaultyDisk;
  const map = path.join(tmp.dir, 'disk.map');
  const list = path.join(tmp.dir, 'disk.bad');
  let scan: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    disk = await startFaultyDisk({ dir: path.join(tmp.dir, 'nbd'), bytes: BYTES, badBlocks: BAD_BLOCKS });
    scan = await runInProcess([
      'scan',
      disk.path,
      '--direct',
      '--block-size',
      '4096',
      '--slice',
      '256K',
      '--mapfile',
      map,
      '--badblocks',
      list,
      '--badblocks-block-size',
      '4096',
    ]);
  }, 60_000);
  afterAll(async () => disk?.stop());

  it('writes a ddrescue mapfile that ddrescuelog reads: bad areas -, the rest +', () => {
    expect(scan.stderr).toBe('');
    expect(scan.code).toBe(1);
    expect(fs.readFileSync(map, 'utf8')).toBe(
      [
        `# Mapfile. Created by remapsim scan ${disk.path}`,
        '# current_pos  current_status  current_pass',
        '0x00000000     +               1',
        '#      pos        size  status',
        '0x00000000  0x00064000  +',
        '0x00064000  0x00001000  -',
        '0x00065000  0x00257000  +',
        '0x002BC000  0x00001000  -',
        '0x002BD000  0x00143000  +',
        '',
      ].join('\n'),
    );
    expect(tool('ddrescuelog', ['-b', '4096', '--list-blocks=-', map])).toBe('100\n700\n');
    expect(tool('ddrescuelog', ['--list-blocks=-', map]).trim().split('\n').map(Number)).toEqual(
      BAD_BLOCKS.flatMap((b) => Array.from({ length: 8 }, (_, i) => b * 8 + i)),
    );
    const summary = tool('ddrescuelog', ['--show-status', map]);
    expect(summary).toMatch(/mapfile extent:\s+4194 kB,\s+in\s+5 area\(s\)/);
    expect(summary).toMatch(/bad-sector:\s+8192 B,\s+in\s+2 area\(s\)/);
  });

  it("writes badblocks' list in the block size asked for, which e2fsck -l puts in a real ext4 bad-block inode", () => {
    expect(fs.readFileSync(list, 'utf8')).toBe('100\n700\n');
    const img = path.join(tmp.dir, 'fs.img');
    tool('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', img, '4M']);
    execFileSync('e2fsck', ['-fy', '-l', list, img], { stdio: 'ignore', timeout: 30_000 }); // exit 1: "file system modified"
    expect(tool('dumpe2fs', ['-b', img])).toBe('100\n700\n');
  });

  it('the list in 1 KiB blocks (badblocks -b 1024, the default) names four blocks per bad 4 KiB block', () => {
    const bad = BAD_BLOCKS.map((b) => ({ start: b * 8, count: 8 }));
    expect(formatBadblocksList(bad, 1024)).toBe([400, 401, 402, 403, 2800, 2801, 2802, 2803].map((b) => `${b}\n`).join(''));
    expect(parseBadblocksList(formatBadblocksList(bad, 1024), 1024)).toEqual(bad);
    expect(() => parseBadblocksList('12\nx\n', 1024)).toThrow("badblocks list, line 2: 'x' is not a block number (one decimal number a line)");
    expect(() => parseBadblocksList('4096\n', 1024, BYTES)).toThrow('badblocks list, line 1: block 4096 of 1024 bytes is beyond the device end (4096 blocks)');
  });

  it("remapsim's scenario loader reads both back as the same bad sectors", () => {
    const sectors = BAD_BLOCKS.flatMap((b) => Array.from({ length: 8 }, (_, i) => b * 8 + i));
    for (const [format, file, size] of [
      ['ddrescue', map, undefined],
      ['badblocks', list, 4096],
    ] as const) {
      const built = buildScenario(scenarioOf('4MiB', file, format, size), { workdir: path.join(tmp.dir, `wd-${format}`) });
      try {
        for (const s of sectors) expect(built.isKnownBad(s, 1), `${format}: sector ${s}`).toBe(true);
        expect(built.isKnownBad(799, 1)).toBe(false);
        expect(built.isKnownBad(808, 1)).toBe(false);
      } finally {
        built.close();
      }
    }
  });

  it('refuses the mapfile for a device of another size, in the scenario loader and --known-bad', async () => {
    expect(() => buildScenario(scenarioOf('8MiB', map, 'ddrescue'), { workdir: path.join(tmp.dir, 'wd-8m') })).toThrow(
      `faults.main.badSectorsFile: ${map}: ddrescue mapfile: it maps 4194304 bytes, the device has 8388608: a mapfile of a device of another size is refused`,
    );
    const target = path.join(tmp.dir, 'eight.img');
    fs.writeFileSync(target, Buffer.alloc(8 << 20));
    const r = await runInProcess([
      'bench',
      '--rw',
      'read',
      '--bs',
      '4k',
      '--size',
      '64k',
      '--verify',
      'crc32c',
      '--known-bad',
      map,
      '--target',
      `file:${target}`,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `remapsim: --known-bad ${map}: ddrescue mapfile: it maps 4194304 bytes, the device has 8388608: a mapfile of a device of another size is refused\n`,
    );
  });
});
