/**
 * Block status of `remapsim serve` (a child process) read by the tools that
 * use it: nbdinfo --map (base:allocation and remapsim:health), qemu-img map,
 * and nbdcopy, whose sparse copy keeps the holes and which reads a bad block
 * (reported as data) instead of skipping it as a hole. Each tool runs under
 * `timeout` with its output capped; a missing tool skips its test with the
 * reason printed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { controlRequest } from '../../src/nbd/control-socket.js';
import { FileAllocation } from '../../src/nbd/file-allocation.js';
import { HealthFlag } from '../../src/nbd/meta-context.js';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { pattern, toolVersion, until } from './serve-helpers.js';
import { runTool } from './tools.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = [process.execPath, '--import', 'tsx', path.join(root, 'src/cli/main.ts')];

const nbdinfo = toolVersion('nbdinfo');
const nbdcopy = toolVersion('nbdcopy');
const qemuImg = toolVersion('qemu-img');
const noNbdinfo = skipReason(nbdinfo ? undefined : 'nbdinfo (libnbd-bin) is not installed', 'nbdinfo --map against remapsim serve');
const noNbdcopy = skipReason(nbdcopy ? undefined : 'nbdcopy (libnbd-bin) is not installed', 'nbdcopy from remapsim serve');
const noQemuImg = skipReason(qemuImg ? undefined : 'qemu-img (qemu-utils) is not installed', 'qemu-img map against remapsim serve');

const MiB = 1 << 20;
const SIZE = 32 * MiB;
/** Random data at [4 MiB, 6 MiB) and [20 MiB, 20 MiB + 64 KiB); holes elsewhere. */
const DATA: Array<[number, number]> = [
  [4 * MiB, 2 * MiB],
  [20 * MiB, 64 * 1024],
];

describe.skipIf(noNbdinfo)('block status of remapsim serve, read by nbdinfo, qemu-img and nbdcopy', () => {
  const tmp = tmpDir('remapsim-bstools-');
  const main = path.join(tmp.dir, 'main.img');
  const sock = path.join(tmp.dir, 'm.sock');
  const uri = `nbd+unix:///?socket=${sock}`;
  let child: ChildProcess;

  /** A message through the control socket, as `remapsim message` sends it. */
  const message = async (layer: string, ...args: string[]) => controlRequest(`${sock}.ctl`, { op: 'message', layer, args });
  const map = async (context?: string): Promise<Array<{ offset: number; length: number; type: number }>> => {
    const r = await runTool('nbdinfo', ['--json', context ? `--map=${context}` : '--map', uri], { timeoutS: 30, maxOutput: 1 << 20 });
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as Array<{ offset: number; length: number; type: number }>).map(({ offset, length, type }) => ({ offset, length, type }));
  };

  beforeAll(async () => {
    FileDevice.createSparse(main, SIZE);
    FileDevice.createSparse(path.join(tmp.dir, 'spare.img'), 8 * MiB);
    const fd = fs.openSync(main, 'r+');
    for (const [at, len] of DATA) fs.writeSync(fd, pattern(len, at), 0, len, at);
    fs.closeSync(fd);
    const table = `0 ${SIZE / 512} remap ${main} ${path.join(tmp.dir, 'spare.img')}`;
    child = spawn('timeout', ['-s', 'KILL', '300', ...CLI, 'serve', '--socket', sock, '--dust', '--table', table], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    await until(() => out.includes('Stop with') || child.exitCode !== null, 50_000, 'remapsim serve to listen');
    if (child.exitCode !== null) throw new Error(`remapsim serve exited: ${out}`);
  }, 60_000);

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGTERM'); // timeout passes it on: the server stops as on Ctrl-C
    tmp.cleanup();
  });

  it('nbdinfo --map shows the backing file: data where it was written, hole,zero elsewhere', async () => {
    expect(await map()).toEqual([
      { offset: 0, length: 4 * MiB, type: 3 },
      { offset: 4 * MiB, length: 2 * MiB, type: 0 },
      { offset: 6 * MiB, length: 14 * MiB, type: 3 },
      { offset: 20 * MiB, length: 64 * 1024, type: 0 },
      { offset: 20 * MiB + 64 * 1024, length: SIZE - 20 * MiB - 64 * 1024, type: 3 },
    ]);
  });

  it('nbdinfo --map=remapsim:health shows remapped, pending and bad sectors; base:allocation shows them as data', async () => {
    expect(await message('target', 'remap', '100')).toMatchObject({ ok: true }); // moved to the spare while it reads
    expect(await message('main.dust', 'addbadblock', '200')).toMatchObject({ ok: true });
    expect(await message('main.dust', 'addbadblock', '300')).toMatchObject({ ok: true });
    // 200 cannot be read, so a remap leaves it pending (the message says so and fails)
    expect(await message('target', 'remap', '200')).toMatchObject({ ok: false, error: expect.stringMatching(/pending/) });
    expect(await map('remapsim:health')).toEqual([
      { offset: 0, length: 100 * 512, type: 0 },
      { offset: 100 * 512, length: 512, type: HealthFlag.REMAPPED },
      { offset: 101 * 512, length: 99 * 512, type: 0 },
      { offset: 200 * 512, length: 512, type: HealthFlag.PENDING | HealthFlag.BAD },
      { offset: 201 * 512, length: 99 * 512, type: 0 },
      { offset: 300 * 512, length: 512, type: HealthFlag.BAD },
      { offset: 301 * 512, length: SIZE - 301 * 512, type: 0 },
    ]);
    expect((await map()).slice(0, 7)).toEqual([
      { offset: 0, length: 100 * 512, type: 3 },
      { offset: 100 * 512, length: 512, type: 0 },
      { offset: 101 * 512, length: 99 * 512, type: 3 },
      { offset: 200 * 512, length: 512, type: 0 },
      { offset: 201 * 512, length: 99 * 512, type: 3 },
      { offset: 300 * 512, length: 512, type: 0 },
      { offset: 301 * 512, length: 4 * MiB - 301 * 512, type: 3 },
    ]);
  });

  it.skipIf(noQemuImg)('qemu-img map --output=json sees the same data and zero extents', async () => {
    const r = await runTool('qemu-img', ['map', '--output=json', '--image-opts', `driver=nbd,server.type=unix,server.path=${sock}`], { timeoutS: 30 });
    expect(r.code, r.stderr).toBe(0);
    const extents = (JSON.parse(r.stdout) as Array<{ start: number; length: number; data: boolean; zero: boolean }>).map(({ start, length, data, zero }) => ({
      start,
      length,
      data,
      zero,
    }));
    const hole = (start: number, end: number) => ({ start, length: end - start, data: false, zero: true });
    const data = (start: number, end: number) => ({ start, length: end - start, data: true, zero: false });
    expect(extents).toEqual([
      hole(0, 100 * 512),
      data(100 * 512, 101 * 512),
      hole(101 * 512, 200 * 512),
      data(200 * 512, 201 * 512),
      hole(201 * 512, 300 * 512),
      data(300 * 512, 301 * 512),
      hole(301 * 512, 4 * MiB),
      data(4 * MiB, 6 * MiB),
      hole(6 * MiB, 20 * MiB),
      data(20 * MiB, 20 * MiB + 64 * 1024),
      hole(20 * MiB + 64 * 1024, SIZE),
    ]);
  });

  it.skipIf(noNbdcopy)('nbdcopy reads a bad block (data, not a hole) and fails; once cleared its sparse copy keeps the holes', async () => {
    const out = path.join(tmp.dir, 'copy.img');
    const failed = await runTool('nbdcopy', [uri, out], { timeoutS: 60 });
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/Input\/output error/);
    expect(await message('main.dust', 'removebadblock', '200')).toMatchObject({ ok: true });
    expect(await message('main.dust', 'removebadblock', '300')).toMatchObject({ ok: true });
    fs.rmSync(out, { force: true });
    const r = await runTool('nbdcopy', [uri, out], { timeoutS: 60 });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(main))).toBe(true);
    const alloc = FileAllocation.open(out)!;
    try {
      // the remapped and once-bad blocks hold zeroes: nbdcopy writes no data for them either
      expect(alloc.dataRuns(0, SIZE, 100).runs).toEqual(DATA.map(([at, len]) => [at, at + len]));
    } finally {
      alloc.close();
    }
  });
});
