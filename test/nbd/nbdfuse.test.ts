/**
 * A real filesystem on the served model: nbdfuse turns the export into a
 * file, a loop device (direct I/O, so every block reaches the server) sits on
 * it, mkfs.ext4 formats it, a tree of files is copied in while bad sectors
 * with write-fail counts are injected through the control socket, and after
 * umount `fsck.ext4 -n` finds nothing wrong and the files read back intact.
 *
 * The server runs in this process, so every external command here is run
 * asynchronously: a synchronous one would block the event loop the kernel's
 * I/O is waiting on. Skipped, with the reason printed, without root, FUSE,
 * loop devices or the tools.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { controlRequest } from '../../src/nbd/control-socket.js';
import { openModelStack, serveModel, type Serving } from '../../src/serve/served-model.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';
import { pattern, toolVersion, until } from './serve-helpers.js';

const run = promisify(execFile);

function why(): string | undefined {
  const loop = loopUnavailable();
  if (loop) return loop;
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing';
  for (const [tool, args] of [
    ['nbdfuse', ['--version']],
    ['fusermount3', ['--version']],
    ['mkfs.ext4', ['-V']],
    ['fsck.ext4', ['-V']],
    ['dumpe2fs', ['-V']],
  ] as const) {
    if (toolVersion(tool, [...args]) === undefined) return `${tool} is not installed`;
  }
  return undefined;
}

const skip = skipReason(why(), 'nbdfuse + loop + ext4 on a served model');

const MAIN_BYTES = 96 << 20;

/** Free 4 KiB blocks of the filesystem (from dumpe2fs), in order. */
async function freeBlocks(dev: string): Promise<number[]> {
  const { stdout } = await run('dumpe2fs', [dev], { maxBuffer: 64 << 20 });
  const out: number[] = [];
  for (const m of stdout.matchAll(/^\s+Free blocks: (.*)$/gm)) {
    for (const part of m[1]
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)) {
      const [a, b] = part.split('-').map(Number);
      for (let x = a; x <= (b ?? a); x++) out.push(x);
    }
  }
  return out;
}

function makeTree(dir: string, files: number, seed: number): void {
  for (let i = 0; i < files; i++) {
    const sub = path.join(dir, `d${i % 7}`, `e${i % 3}`);
    fs.mkdirSync(sub, { recursive: true });
    fs.writeFileSync(path.join(sub, `f${i}.bin`), pattern(1000 + ((i * 7919) % 120_000), seed + i));
  }
}

/**
 * Reads a whole file; a short read before the end is followed by another read, so an I/O error
 * surfaces (fs.promises.readFile takes a short read for the end of the file and truncates).
 */
async function readAll(p: string): Promise<Buffer> {
  const fh = await fs.promises.open(p, 'r');
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(size);
    for (let got = 0; got < size; ) {
      const { bytesRead } = await fh.read(buf, got, size - got, got);
      if (bytesRead === 0) throw new Error(`${p}: ends at ${got} of ${size} bytes`);
      got += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** File digests of a tree, read asynchronously (see the note at the top: this may be the served model). */
async function treeDigest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.promises.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else
        out.set(
          path.relative(dir, p),
          createHash('sha256')
            .update(await readAll(p))
            .digest('hex'),
        );
    }
  };
  await walk(dir);
  return new Map([...out].sort());
}

describe.skipIf(skip)('ext4 on nbdfuse on the served model, with bad sectors injected during the copy', () => {
  const tmp = tmpDir('remapsim-fuse-');
  const cleanups: Array<() => Promise<unknown>> = [];

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    // Whatever is still mounted (a failed step) goes lazily; removal runs off the event loop, which
    // must stay free: a synchronous call into the mounts would wait on this very process's server.
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m) => m?.startsWith(tmp.dir));
    for (const m of mounts.reverse()) await run('umount', ['-l', m]).catch(() => {});
    await fs.promises.rm(tmp.dir, { recursive: true, force: true });
  });

  it('mkfs, copy a tree, umount, fsck -n clean; every write failure remapped; files intact', async () => {
    const main = path.join(tmp.dir, 'main.img');
    const spare = path.join(tmp.dir, 'spare.img');
    FileDevice.createSparse(main, MAIN_BYTES);
    FileDevice.createSparse(spare, 16 << 20);
    const stack = openModelStack({ table: `0 ${MAIN_BYTES / 512} remap ${main} ${spare}`, dustMain: true });
    const sock = path.join(tmp.dir, 'model.sock');
    const serving: Serving = await serveModel(stack, { socket: sock });
    cleanups.push(() => serving.stop(500));
    const ctl = serving.controlPath!;

    const fuseDir = path.join(tmp.dir, 'fuse');
    fs.mkdirSync(fuseDir);
    const diskFile = path.join(fuseDir, 'disk');
    const pidFile = path.join(tmp.dir, 'nbdfuse.pid');
    const fuse: ChildProcess = spawn('nbdfuse', ['-P', pidFile, diskFile, '--unix', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
    let fuseErr = '';
    fuse.stderr!.on('data', (d) => (fuseErr += d));
    cleanups.push(async () => {
      await run('fusermount3', ['-u', fuseDir]).catch(() => {});
      if (fuse.exitCode === null) fuse.kill();
    });
    await until(() => (fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '') || fuse.exitCode !== null, 10_000, 'nbdfuse to mount');
    expect(fuse.exitCode, fuseErr).toBeNull();
    expect((await fs.promises.stat(diskFile)).size).toBe(MAIN_BYTES);

    const loop = (await run('losetup', ['-f', '--show', '--direct-io=on', diskFile])).stdout.trim();
    cleanups.push(() => run('losetup', ['-d', loop]));
    await run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-E', 'nodiscard', loop]);

    // bad sectors in blocks that are free now and that the copy's writes will reach first:
    // ext4 never reads a free block, so nothing reads these sectors before a write remaps them
    const free = (await freeBlocks(loop)).slice(0, 6000);
    expect(free.length).toBeGreaterThan(1000);
    const bad = Array.from({ length: 120 }, (_, i) => free[(i * 2503) % free.length] * 8 + (i % 8));

    const mnt = path.join(tmp.dir, 'mnt');
    fs.mkdirSync(mnt);
    await run('mount', [loop, mnt]);
    cleanups.push(() => run('umount', [mnt]));
    const src = path.join(tmp.dir, 'src');
    makeTree(src, 180, 1);

    // Injected while cp runs. The copy's data reaches the device at the sync after it (delayed
    // allocation), so every bad sector is in place before the first write to it: these are write
    // failures the safe policy must absorb. (A sector that goes bad after its data was written is a
    // latent error no remapper can undo; the fio test covers those.)
    let injected = 0;
    const inject = async (): Promise<void> => {
      for (let i = 0; i < bad.length; i++) {
        const r = await controlRequest(ctl, { op: 'message', layer: 'main.dust', args: ['addbadblock', String(bad[i]), String(1 + (i % 2))] });
        expect(r).toMatchObject({ ok: true });
        injected++;
      }
    };
    await Promise.all([run('cp', ['-a', ...fs.readdirSync(src).map((d) => path.join(src, d)), mnt]), inject()]);
    await run('sync');
    expect(injected).toBe(bad.length);
    const copied = await treeDigest(mnt);
    await run('umount', [mnt]);

    await run('blockdev', ['--flushbufs', loop]);
    const fsck = await run('fsck.ext4', ['-n', '-f', loop]).catch((e: { code: number; stdout: string; stderr: string }) => e);
    expect((fsck as { code?: number }).code ?? 0, `fsck.ext4 -n: ${(fsck as { stdout: string }).stdout}`).toBe(0);

    await run('mount', ['-o', 'ro', loop, mnt]);
    const back = await treeDigest(mnt);
    await run('umount', [mnt]);
    const want = await treeDigest(src);
    expect(back.size).toBe(180);
    expect(back).toEqual(want);
    expect(copied).toEqual(want);

    const stats = await controlRequest(ctl, { op: 'message', args: ['stats'] });
    const s = Object.fromEntries(
      (stats as { result: string }).result
        .split(' ')
        .map((kv) => kv.split('='))
        .map(([k, v]) => [k, Number(v)]),
    );
    console.log(`ext4 on nbdfuse: ${s.writes} writes, ${s.write_errors} write errors remapped (${s.remaps} remaps), ${s.read_errors} read errors`);
    expect(s.write_errors).toBeGreaterThan(0);
    expect(s.remaps_made).toBeGreaterThanOrEqual(s.write_errors);
    // A read of a bad sector before its first write fails (there is nothing to read) and leaves
    // the block pending until a write. Readahead below the filesystem (the page cache of the FUSE
    // file) can read free blocks next to the ones ext4 asked for, so a few may stay pending; what
    // matters is that none of them holds data: every unreadable block is free in the filesystem.
    const pending = ((await controlRequest(ctl, { op: 'message', args: ['pending'] })) as { result: string }).result.split(' ').filter(Boolean).map(Number);
    expect(pending.length).toBe(s.pending);
    if (pending.length > 0) console.log(`pending after the run (free blocks, read ahead before their first write): ${pending.join(' ')}`);
    const freeAfter = new Set(await freeBlocks(loop));
    expect(
      pending.filter((sector) => !freeAfter.has(Math.floor(sector / 8))),
      'unreadable sectors in blocks that hold data',
    ).toEqual([]);
    expect(s.enospc).toBe(0);
  });
});
