/**
 * `remapsim serve` as a real process, driven by real clients: nbdinfo lists
 * the export, fio's nbd engine runs a crc32c verify job while bad blocks with
 * write-fail counts are injected through the control socket, the
 * status/table/message verbs speak to it, and SIGTERM flushes and exits.
 * The fio and nbdinfo parts skip, with the reason printed, where the tools
 * are missing.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { controlRequest } from '../../src/nbd/control-socket.js';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { cliInProcess, toolVersion, until } from './serve-helpers.js';
import { readFioJson, runTool } from './tools.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = [process.execPath, '--import', 'tsx', path.join(root, 'src/cli/main.ts')];

/** The CLI, asynchronously (the served model is another process, but several calls can run at once). */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(CLI[0], [...CLI.slice(1), ...args], { cwd: root, encoding: 'utf8' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const fioVersion = toolVersion('fio');
const nbdinfoVersion = toolVersion('nbdinfo');
const noFio = skipReason(fioVersion === undefined ? 'fio is not installed' : undefined, "the fio verify job through fio's nbd engine");
const noNbdinfo = skipReason(nbdinfoVersion === undefined ? 'nbdinfo (libnbd-bin) is not installed' : undefined, 'nbdinfo --list against remapsim serve');

const MAIN_BYTES = 64 << 20;
const MAIN_SECTORS = MAIN_BYTES / 512;

describe('remapsim serve (the CLI, as a child process)', () => {
  const tmp = tmpDir('remapsim-serve-');
  const main = path.join(tmp.dir, 'main.img');
  const spare = path.join(tmp.dir, 'spare.img');
  const sock = path.join(tmp.dir, 'model.sock');
  const ctl = `${sock}.ctl`;
  const table = `0 ${MAIN_SECTORS} remap ${main} ${spare}`;
  let child: ChildProcess;
  let stdout = '';
  let exited: Promise<number | null>;

  beforeAll(async () => {
    FileDevice.createSparse(main, MAIN_BYTES);
    FileDevice.createSparse(spare, 16 << 20);
    child = spawn(CLI[0], [...CLI.slice(1), 'serve', '--socket', sock, '--dust', '--table', table], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    await until(() => stdout.includes('Stop with') || child.exitCode !== null, 20_000, 'remapsim serve to listen');
    if (child.exitCode !== null) throw new Error(`remapsim serve exited: ${stderr}`);
  });

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    tmp.cleanup();
  });

  it('prints where it listens, how to connect, and the layers', () => {
    expect(stdout).toContain(`nbd socket: ${sock}`);
    expect(stdout).toContain(`connect   : nbdinfo 'nbd+unix:///?socket=${sock}'`);
    expect(stdout).toContain(`control   : ${ctl}`);
    expect(stdout).toMatch(/layers {4}: target \(remap\), main\.dust \(dust\)/);
  });

  it.skipIf(noNbdinfo)('nbdinfo lists the export', async () => {
    const { stdout: out } = await run('nbdinfo', ['--list', '--json', `nbd+unix:///?socket=${sock}`]);
    const info = JSON.parse(out);
    expect(info.exports).toHaveLength(1);
    const e = info.exports[0];
    expect(e['export-name']).toBe('');
    // no host paths unless --describe-paths (finding 10 of issue 17)
    expect(e.description).toBe('remapsim safe policy, 64 MiB');
    const { uri: _uri, ...told } = e; // the uri is the client's own
    expect(JSON.stringify(told)).not.toContain(tmp.dir);
    expect(e['export-size']).toBe(MAIN_BYTES);
    expect(e.block_size_minimum).toBe(512);
    expect([e.can_flush, e.can_fua, e.can_trim, e.can_zero, e.can_multi_conn, e.is_read_only]).toEqual([true, true, true, true, true, false]);
  });

  it.skipIf(noFio)('fio crc32c verify (randrw, iodepth 16) with bad blocks injected while it runs: no verify error, every write failure remapped', async () => {
    const out = path.join(tmp.dir, 'fio.json');
    const fio = runTool(
      'fio',
      [
        '--thread',
        '--name=v',
        '--ioengine=nbd',
        `--uri=nbd+unix:///?socket=${sock}`,
        '--rw=randrw',
        '--bs=4k',
        '--iodepth=16',
        `--size=${MAIN_BYTES}`,
        '--verify=crc32c',
        // reads of blocks that went bad before being rewritten fail with EIO (their data is gone, as on a
        // real disk); those are counted, not fatal. Verify mismatches (EILSEQ) and write errors stay fatal.
        '--continue_on_error=read',
        '--ignore_error=EIO',
        '--verify_state_save=0',
        '--output-format=json',
        `--output=${out}`,
      ],
      { cwd: tmp.dir, timeoutS: 120 },
    );
    let fioDone = false;
    void fio.finally(() => (fioDone = true)).catch(() => {});
    // bad blocks (512-byte dust blocks = sectors), each failing 1..3 writes, added while fio runs
    let injected = 0;
    let whileRunning = 0;
    await new Promise((r) => setTimeout(r, 150));
    for (let i = 0; i < 160; i++) {
      const sector = (i * 409_573 + 12_345) % MAIN_SECTORS;
      const r = await controlRequest(ctl, { op: 'message', layer: 'main.dust', args: ['addbadblock', String(sector), String(1 + (i % 3))] });
      if (r.ok) injected++;
      if (!fioDone) whileRunning++;
      await new Promise((res) => setTimeout(res, 3));
    }
    const { code, stderr } = await fio;
    expect(code, stderr.slice(0, 2000)).toBe(0);
    expect(stderr).not.toMatch(/verify: |verify failed|bad magic/i);
    const job = readFioJson(out).jobs[0];
    expect(injected).toBe(160);
    expect(whileRunning).toBeGreaterThan(20);
    expect([0, 5]).toContain(job.error); // 5 (EIO) is the first ignored read error, if any
    const blocks = MAIN_BYTES / 4096;
    const mixedReads = blocks - job.write.total_ios;
    expect(job.read.total_ios - mixedReads, 'every written block was read back and verified').toBe(job.write.total_ios);

    const status = await controlRequest(ctl, { op: 'message', args: ['stats'] });
    expect(status.ok).toBe(true);
    const stats = Object.fromEntries(
      (status as { result: string }).result
        .split(' ')
        .map((kv) => kv.split('='))
        .map(([k, v]) => [k, Number(v)]),
    );
    console.log(
      `fio verify: ${job.write.total_ios} writes, ${job.read.total_ios} reads, ${job.total_err} ignored read errors; ` +
        `model: ${stats.write_errors} write errors remapped (${stats.remaps} remaps), ${stats.read_errors} read errors`,
    );
    expect(stats.write_errors).toBeGreaterThan(0);
    expect(stats.remaps).toBe(stats.remaps_made);
    expect(stats.remaps_made).toBeGreaterThanOrEqual(stats.write_errors);
    expect(stats.enospc).toBe(0);
    expect(job.total_err, 'every error fio saw is a read of a block that went bad').toBe(stats.read_errors);
  });

  it('status, table and message speak to the served model; errors are one line with exit 2', async () => {
    // the program runs in this process here (a spawned CLI costs over a second of CPU); exit codes of a real process are checked below
    const json = await cliInProcess(['status', sock, '--all', '--json']);
    const bad = await cliInProcess(['message', sock, '--layer', 'main.dust', 'addbadblock', 'x']);
    expect(json.code).toBe(0);
    const layers = JSON.parse(json.stdout);
    expect(layers.map((l: { layer: string }) => l.layer)).toEqual(['target', 'main.dust']);
    expect(layers[0].parsed).toMatchObject({ version: 'v1', mainPath: main, sparePath: spare, enospc: 0, state: 'ok' });
    expect(layers[1].parsed).toEqual({ device: main, failReads: true, quiet: false });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("remapsim: addbadblock: block 'x' is not a decimal block number\n");

    const status = await cliInProcess(['status', sock]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^0 ${MAIN_SECTORS} remap v1 ${main} ${spare} \\d+ \\d+ \\d+/\\d+ \\d+ \\d+ 0 ok \\d+\\n$`));
    expect(await cliInProcess(['table', sock, '--layer', 'main.dust'])).toEqual({ code: 0, stdout: `0 ${MAIN_SECTORS} dust ${main} 0 512\n`, stderr: '' });
    const msg = await cliInProcess(['message', sock, '--layer', 'main.dust', 'countbadblocks']);
    expect(msg.code).toBe(0);
    expect(msg.stdout).toMatch(/^countbadblocks: \d+ badblock\(s\) found\n$/);
    expect(await cliInProcess(['message', sock, '--layer', 'main.dust', 'addbadblock', '7', '--json'])).toEqual({
      code: 0,
      stdout: '{"layer":"main.dust","reply":""}\n',
      stderr: '',
    });
    expect(await cliInProcess(['status', ctl, '--layer', 'spare.dust'])).toEqual({
      code: 2,
      stdout: '',
      stderr: "remapsim: no layer 'spare.dust' (layers: target, main.dust)\n",
    });
  });

  it('SIGTERM flushes, closes and removes the sockets', async () => {
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout).toMatch(/SIGTERM: stopped after \d+ connection\(s\), \d+ request\(s\); flush OK; target closed/);
    expect(fs.existsSync(sock)).toBe(false);
    expect(fs.existsSync(ctl)).toBe(false);
  });
});

describe('remapsim serve and the control verbs: refusals', () => {
  it('one-line errors: no listener, bad table, missing socket, kernel name on a host without device-mapper', async () => {
    const tmp = tmpDir('remapsim-serve-');
    try {
      const kernel = await cli(['status', 'remapsim-no-such-dm-device']);
      // exit 3 where the kernel has no device-mapper; 2 (no such device) where it has one
      expect([2, 3]).toContain(kernel.code);
      if (kernel.code === 3) expect(kernel.stderr).toMatch(/^remapsim: device-mapper is not available/);
      const noListen = await cliInProcess(['serve', '--table', '0 8 dust /nonexistent 0 512']);
      expect(noListen).toMatchObject({ code: 2, stderr: 'remapsim: serve needs --socket <path> or --port <n> (or both)\n' });
      const badTable = await cliInProcess(['serve', '--socket', path.join(tmp.dir, 'x.sock'), '--table', '0 8 striped 1 2']);
      expect(badTable.code).toBe(2);
      expect(badTable.stderr).toMatch(/^remapsim: target type 'striped' is not modelled/);
      const badPort = await cliInProcess(['serve', '--port', '70000', '--table', '0 8 striped 1 2']);
      expect(badPort).toMatchObject({ code: 2, stderr: "remapsim: --port must be a whole number in [0, 65535], got '70000'\n" });
      const noSock = await cliInProcess(['status', path.join(tmp.dir, 'nope.sock')]);
      expect(noSock.code).toBe(2);
      expect(noSock.stderr).toMatch(/no such socket, and no control socket .*nope\.sock\.ctl \(is remapsim serve running\?\)/);
      for (const r of [noListen, badTable, noSock, kernel]) expect(r.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      tmp.cleanup();
    }
  });
});
