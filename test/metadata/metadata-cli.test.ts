import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { openTarget } from '../../src/stack/table.js';
import type { DmRemapV4Target } from '../../src/remap/v4-target.js';
import type { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { buildProgram } from '../../src/cli/program.js';
import { runCli as runProgram } from '../../src/cli/run-cli.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

/**
 * Runs the real command in this process (a subprocess costs a second or more
 * on a busy machine); standard output and error are captured while it runs.
 * Two tests below also run it as a subprocess, through src/cli/main.ts.
 */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  const saved = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  let code: number;
  try {
    await runProgram(buildProgram(), ['node', 'remapsim', ...args]);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    code = Number(process.exitCode ?? 0);
    process.exitCode = saved;
  }
  return { code, stdout, stderr };
}

const tmp = tmpDir();
afterAll(() => tmp.cleanup());
const p = (name: string) => path.join(tmp.dir, name);
const MAIN = 8192;

function image(name: string, sectors: number): string {
  FileDevice.createSparse(p(name), sectors * 512);
  return p(name);
}

function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, offset);
  b[0] ^= 0x40;
  fs.writeSync(fd, b, 0, 1, offset);
  fs.closeSync(fd);
}

beforeAll(() => {
  image('main.img', MAIN);
  image('safe.img', 4096);
  image('v4.img', 4096);
  const t = openTarget(`0 ${MAIN} remap ${p('main.img')} ${p('safe.img')}`) as SafeRemapTarget;
  for (const b of [5, 9, 100]) t.message(['remap', String(b)]);
  t.close();
  const v = openTarget(`0 ${MAIN} dm-remap-v4 ${p('main.img')} ${p('v4.img')}`) as DmRemapV4Target;
  v.message(['test_remap', '77', '3']);
  v.message(['test_remap', '78', '600']);
  v.close();
});

describe('remapsim inspect', () => {
  it('detects both formats and shows every copy (human and --json)', async () => {
    const safe = await cli(['inspect', p('safe.img')]);
    expect(safe.code).toBe(0);
    expect(safe.stdout).toMatch(/remapsim safe-policy metadata/);
    expect(safe.stdout).toMatch(/superblock A \(sector 0\): valid, generation 1/);
    expect(safe.stdout).toMatch(/log slot 2: A valid, sequence 3, 1 record; B valid, sequence 3, 1 record/);
    expect(safe.stdout).toMatch(/state: 3 remaps/);
    expect(safe.stdout).toMatch(/ {4}100 -> \d+/);
    const sub = runCli(['inspect', p('safe.img'), '--json']); // once through src/cli/main.ts, as a user runs it
    expect(sub.code).toBe(0);
    const j = JSON.parse(sub.stdout);
    expect(j.format).toBe('remapsim-safe');
    expect(j.superblocks.map((s: { valid: boolean }) => s.valid)).toEqual([true, true]);
    expect(j.state.entries.map((e: { main: number }) => e.main)).toEqual([5, 9, 100]);

    const v4 = await cli(['inspect', p('v4.img')]);
    expect(v4.code).toBe(0);
    expect(v4.stdout).toMatch(/copy 4 \(sector 1024\): valid, sequence 3, timestamp \d+ \(\d{4}-/);
    expect(v4.stdout).toMatch(/remap of sector 77 lives at spare sector 3, inside copy 0/);
    const jv = JSON.parse((await cli(['inspect', p('v4.img'), '--json'])).stdout);
    expect(jv.format).toBe('dm-remap-v4');
    expect(jv.copies).toHaveLength(5);
    expect(jv.copies[2].entries).toEqual([
      { originalSector: 77, spareSector: 3, timestampNs: expect.anything(), errorCount: 1, flags: 1 },
      { originalSector: 78, spareSector: 600, timestampNs: expect.anything(), errorCount: 1, flags: 1 },
    ]);

    const blank = await cli(['inspect', image('blank.img', 2048)]);
    expect(blank.code).toBe(1);
    expect(blank.stdout).toMatch(/no metadata \(blank\)/);
  });

  it('says why a copy is invalid, and checks --main', async () => {
    const v4 = p('v4-damaged.img');
    fs.copyFileSync(p('v4.img'), v4);
    flipByte(v4, 256 * 512 + 5000); // copy 1: checksum
    const r = await cli(['inspect', v4]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/copy 1 \(sector 256\): invalid \(bad-crc\): checksum is 0x[0-9a-f]+, computed 0x[0-9a-f]+; sequence 3/);
    expect(r.stdout).toMatch(/copies to rewrite: 1/);
    const other = image('other-main.img', MAIN * 2);
    const bad = await cli(['inspect', p('safe.img'), '--main', other]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(
      /no usable state: superblock A belongs to another main device: main device size is 8192 sectors in the metadata, 16384 on this device/,
    );
    expect((await cli(['inspect', p('safe.img'), '--main', p('main.img')])).code).toBe(0);
  });
});

describe('remapsim repair', () => {
  it('is a dry run by default and rewrites damaged copies with --write (safe format)', async () => {
    const s = p('safe-damaged.img');
    fs.copyFileSync(p('safe.img'), s);
    flipByte(s, 300); // superblock A
    const dry = await cli(['repair', s]);
    expect(dry.code).toBe(1);
    expect(dry.stdout).toMatch(/would rewrite superblock A \(dry run; --write applies it\)/);
    expect((await cli(['repair', s])).stdout).toBe(dry.stdout); // nothing was written
    const w = await cli(['repair', s, '--write']);
    expect(w.code).toBe(0);
    expect(w.stdout).toMatch(/repaired: rewrite superblock A/);
    const after = await cli(['repair', s]);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/nothing to repair/);
  });

  it('rewrites dm-remap-v4 copies from the best one and warns about remap data in the way', async () => {
    const v4 = p('v4-repair.img');
    fs.copyFileSync(p('v4.img'), v4);
    flipByte(v4, 512 * 512 + 300); // copy 2
    const dry = await cli(['repair', v4, '--json']);
    expect(dry.code).toBe(1);
    // sector 78 is remapped to spare sector 600, inside copy 2 (sectors 512..676): rewriting the copy destroys its data
    expect(JSON.parse(dry.stdout)).toMatchObject({
      written: false,
      from: 0,
      rewrite: [2],
      remapsOverwritten: [{ copy: 2, originalSector: 78, spareSector: 600 }],
    });
    const w = await cli(['repair', v4, '--write']);
    expect(w.code).toBe(0);
    expect(w.stdout).toMatch(/rewrote copies 2 from copy 0/);
    expect((await cli(['inspect', v4])).code).toBe(0);
  });

  it('refuses what it cannot repair', async () => {
    const r = await cli(['repair', image('blank2.img', 2048)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nothing to repair: the spare holds no metadata/);
    const missing = await cli(['repair', p('nope.img')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot open .*nope.img: no such file or directory/);
  });
});

describe('remapsim export and import', () => {
  it('round-trips both formats through JSON', async () => {
    const out = p('safe.json');
    expect((await cli(['export', p('safe.img'), '-o', out])).code).toBe(0);
    const table = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(table).toMatchObject({ format: 'remapsim-safe', version: 1, remapBlockSectors: 1, fingerprint: { mainSectors: MAIN, logicalBlockSize: 512 } });
    expect(table.remaps.map((r: { main: number }) => r.main)).toEqual([5, 9, 100]);
    const fresh = image('fresh.img', 4096);
    const imp = await cli(['import', fresh, out]);
    expect(imp.code).toBe(0);
    expect(imp.stdout).toMatch(/formatted and imported 3 remaps/);
    expect(JSON.parse((await cli(['export', fresh])).stdout)).toEqual(table);
    // into the same volume: a new checkpoint replaces the table
    table.remaps.pop();
    fs.writeFileSync(out, JSON.stringify(table));
    expect((await cli(['import', fresh, out])).stdout).toMatch(/imported 2 remaps as a new checkpoint/);
    expect(JSON.parse((await cli(['export', fresh])).stdout).remaps).toHaveLength(2);

    const v4json = await cli(['export', p('v4.img')]);
    expect(v4json.code).toBe(0);
    const v4blank = image('v4-fresh.img', 4096);
    fs.writeFileSync(p('v4.json'), v4json.stdout);
    const vi = await cli(['import', v4blank, p('v4.json')]);
    expect(vi.code).toBe(0);
    expect(vi.stdout).toMatch(/imported 2 remaps into all five dm-remap-v4 copies \(sequence 4\); warning: 2 remaps live inside the copy areas/);
    const back = JSON.parse((await cli(['export', v4blank])).stdout);
    expect(back.entries).toEqual(JSON.parse(v4json.stdout).entries);
  });

  it('refuses foreign metadata unless --force, and names the bad field', async () => {
    fs.writeFileSync(p('s.json'), (await cli(['export', p('safe.img')])).stdout);
    const foreign = runCli(['import', p('v4.img'), p('s.json')]); // a subprocess: exit status and one line on stderr
    expect(foreign.code).toBe(2);
    expect(foreign.stderr.trim().split('\n')).toHaveLength(1);
    expect(foreign.stderr).toMatch(/refusing to import: the spare holds dm-remap-v4 metadata .* use --force/);
    const victim = p('v4-victim.img');
    fs.copyFileSync(p('v4.img'), victim);
    expect((await cli(['import', victim, p('s.json'), '--force'])).code).toBe(0);
    expect((await cli(['inspect', victim])).stdout).toMatch(/remapsim safe-policy metadata/);

    const cases: Array<[unknown, RegExp]> = [
      [{ format: 'remapsim-safe', version: 1 }, /spareSectors: required/],
      [
        { format: 'dm-remap-v4', version: 1, sequence: 1, timestamp: 1, mainSectors: 1, spareSectors: 1, entries: [{ originalSector: -1, spareSector: 0 }] },
        /entries\[0\]\.originalSector: expected an integer/,
      ],
      [
        {
          format: 'dm-remap-v4',
          version: 1,
          sequence: 1,
          timestamp: 1,
          mainSectors: 1,
          spareSectors: 1,
          entries: Array.from({ length: 2049 }, (_, i) => ({ originalSector: i, spareSector: i })),
        },
        /entries: expected at most 2048 entries/,
      ],
      [{ format: 'lvm' }, /format: expected "remapsim-safe" or "dm-remap-v4", got "lvm"/],
    ];
    for (const [json, msg] of cases) {
      fs.writeFileSync(p('bad.json'), JSON.stringify(json));
      const r = await cli(['import', image('target.img', 4096), p('bad.json')]);
      expect(r.code, JSON.stringify(json).slice(0, 60)).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const table = JSON.parse(fs.readFileSync(p('s.json'), 'utf8'));
    table.remaps.push({ main: 1, spare: 10 });
    fs.writeFileSync(p('bad.json'), JSON.stringify(table));
    const region = await cli(['import', image('target2.img', 4096), p('bad.json')]);
    expect(region.code).toBe(2);
    expect(region.stderr).toMatch(/remaps\[3\]\.spare must be a spare block in this spare's data region \[\d+, \d+\], got 10/);
  });
});
