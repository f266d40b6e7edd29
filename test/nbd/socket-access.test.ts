/**
 * Who can reach a served model and what it tells them (issue 17, findings 4
 * and 10): both socket files are 0600 whatever the umask, wider only when
 * asked (--socket-mode, --socket-group); socket paths that do not fit
 * sun_path, or lie in a missing directory, are refused in one line before
 * anything is created; the export description names no host paths unless
 * --describe-paths.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { controlRequest } from '../../src/nbd/control-socket.js';
import { Info } from '../../src/nbd/protocol.js';
import { exportDescription, openModelStack, serveModel } from '../../src/serve/served-model.js';
import { MAX_SOCKET_PATH_BYTES, parseSocketMode, resolveGroup, SocketSetupError } from '../../src/nbd/unix-socket.js';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { TestNbdClient } from './client.js';
import { cliInProcess, toolVersion } from './serve-helpers.js';
import { runTool } from './tools.js';

const tmp = tmpDir('remapsim-sockacc-');
afterAll(() => tmp.cleanup());

const MAIN_BYTES = 8 << 20;
let files = 0;

/** A fresh main and spare pair and the remap table line over them. */
function tableFiles(): { table: string; main: string; spare: string } {
  const n = files++;
  const main = path.join(tmp.dir, `main${n}.img`);
  const spare = path.join(tmp.dir, `spare${n}.img`);
  FileDevice.createSparse(main, MAIN_BYTES);
  FileDevice.createSparse(spare, 4 << 20);
  return { table: `0 ${MAIN_BYTES / 512} remap ${main} ${spare}`, main, spare };
}

/** A path of exactly `bytes` bytes under the temporary directory (its directory created). */
function pathOfLength(bytes: number, suffix = '.sock'): string {
  const dir = path.join(tmp.dir, 'd'.repeat(Math.min(200, bytes - tmp.dir.length - suffix.length - 3)));
  fs.mkdirSync(dir, { recursive: true });
  const p = path.join(dir, 's'.repeat(bytes - dir.length - 1 - suffix.length) + suffix);
  expect(Buffer.byteLength(p)).toBe(bytes);
  return p;
}

function modeOf(p: string): number {
  return fs.statSync(p).mode & 0o777;
}

/** Files in `dir` (and below) other than the given ones. */
function socketsUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isSocket())
    .map((e) => path.join(e.parentPath, e.name));
}

describe('socket files: mode and group', () => {
  it('are 0600 under umask 000 (the NBD socket and the control socket)', async () => {
    const { table } = tableFiles();
    const sock = path.join(tmp.dir, 'umask.sock');
    const saved = process.umask(0);
    let serving: Awaited<ReturnType<typeof serveModel>> | undefined;
    try {
      serving = await serveModel(openModelStack({ table }), { socket: sock });
    } finally {
      process.umask(saved);
    }
    try {
      expect(modeOf(sock).toString(8)).toBe('600');
      expect(modeOf(`${sock}.ctl`).toString(8)).toBe('600');
      expect(await controlRequest(`${sock}.ctl`, { op: 'layers' })).toMatchObject({ ok: true }); // the owner still gets in
    } finally {
      expect(await serving.stop()).toBe(0);
    }
    expect(fs.existsSync(sock)).toBe(false);
  });

  it('take the mode and group asked for (group first, then the mode)', async () => {
    const { table } = tableFiles();
    const sock = path.join(tmp.dir, 'shared.sock');
    // another group than the process's where we may (root), else our own
    const gid = process.getuid?.() === 0 ? (resolveGroup('daemon') ?? 1) : process.getgid!();
    const saved = process.umask(0o077);
    let serving: Awaited<ReturnType<typeof serveModel>> | undefined;
    try {
      serving = await serveModel(openModelStack({ table }), { socket: sock, socketAccess: { mode: 0o660, group: gid } });
    } finally {
      process.umask(saved);
    }
    try {
      for (const p of [sock, `${sock}.ctl`]) {
        expect(modeOf(p).toString(8)).toBe('660');
        expect(fs.statSync(p).gid).toBe(gid);
      }
    } finally {
      await serving.stop();
    }
  });

  it('--socket-mode and --socket-group are parsed and checked', () => {
    expect([parseSocketMode('0660'), parseSocketMode('660'), parseSocketMode('0o644'), parseSocketMode('0600')]).toEqual([0o660, 0o660, 0o644, 0o600]);
    for (const bad of ['0400', '0060', '666x', '1777', '', '0xff', '9']) expect(parseSocketMode(bad), bad).toBeUndefined();
    expect(resolveGroup('root')).toBe(0);
    expect(resolveGroup('4242')).toBe(4242);
    expect(resolveGroup('no-such-group-remapsim')).toBeUndefined();
    expect(resolveGroup('../etc')).toBeUndefined();
  });
});

describe('socket paths that cannot work are refused before anything is created', () => {
  it('a control socket path past sun_path (the NBD socket fits, <socket>.ctl does not) is refused; nothing is bound at a cut path', async () => {
    const sock = pathOfLength(MAX_SOCKET_PATH_BYTES - 3); // .ctl makes it 108 bytes
    const { table, spare } = tableFiles();
    const stack = openModelStack({ table });
    try {
      await expect(serveModel(stack, { socket: sock })).rejects.toThrow(SocketSetupError);
      await expect(serveModel(stack, { socket: sock })).rejects.toThrow(`${sock}.ctl: 108 bytes, over the 107 a Unix socket path can have`);
    } finally {
      stack.target.close();
    }
    expect(socketsUnder(tmp.dir)).toEqual([]);
    expect(
      fs
        .readFileSync(spare)
        .subarray(0, 1 << 20)
        .some((b) => b !== 0),
      'the spare was formatted on open, as before',
    ).toBe(true);
  });

  it('the CLI says which path, how long, and the limit, in one line with exit 2, before opening the target', async () => {
    const { table, spare } = tableFiles();
    const long = pathOfLength(120);
    const r = await cliInProcess(['serve', '--socket', long, '--table', table]);
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr: `remapsim: --socket: '${long}': 120 bytes, over the 107 a Unix socket path can have (sun_path holds 108 bytes with the terminating NUL)\n`,
    });
    const ctlLong = pathOfLength(105);
    const c = await cliInProcess(['serve', '--socket', ctlLong, '--table', table]);
    expect(c.code).toBe(2);
    expect(c.stderr).toBe(
      `remapsim: --socket: '${ctlLong}.ctl' (its control socket; --control PATH puts it elsewhere): 109 bytes, over the 107 a Unix socket path can have (sun_path holds 108 bytes with the terminating NUL)\n`,
    );
    const viaControl = await cliInProcess(['serve', '--socket', path.join(tmp.dir, 'ok.sock'), '--control', long, '--table', table]);
    expect(viaControl.stderr).toMatch(/^remapsim: --control: '.*': 120 bytes, over the 107/);
    expect(socketsUnder(tmp.dir)).toEqual([]);
    expect(
      fs.readFileSync(spare).every((b) => b === 0),
      'the spare was not touched',
    ).toBe(true);
  });

  it('a socket in a missing directory says the directory is missing (not EACCES)', async () => {
    const { table } = tableFiles();
    const missing = path.join(tmp.dir, 'no-such-dir');
    const r = await cliInProcess(['serve', '--socket', path.join(missing, 'm.sock'), '--table', table]);
    expect(r).toEqual({ code: 2, stdout: '', stderr: `remapsim: --socket: '${missing}/m.sock': directory '${missing}' does not exist\n` });
    fs.writeFileSync(path.join(tmp.dir, 'plain'), '');
    const notDir = await cliInProcess(['serve', '--socket', path.join(tmp.dir, 'plain', 'm.sock'), '--table', table]);
    expect(notDir.stderr).toMatch(/^remapsim: --socket: '.*plain\/m\.sock': '.*plain' is not a directory\n$/);
  });

  it('bad --socket-mode, --socket-group, --handshake-timeout and --max-connections: one line naming the option and the range, exit 2', async () => {
    const sock = path.join(tmp.dir, 'opts.sock');
    const base = ['serve', '--socket', sock, '--table', '0 8 dust /nonexistent 0 512'];
    const cases: Array<[string[], string]> = [
      [
        ['--socket-mode', '0644x'],
        "remapsim: --socket-mode must be an octal mode from 0600 to 0777 that keeps the owner's read and write (0660: the group too), got '0644x'\n",
      ],
      [
        ['--socket-mode', '0400'],
        "remapsim: --socket-mode must be an octal mode from 0600 to 0777 that keeps the owner's read and write (0660: the group too), got '0400'\n",
      ],
      [['--socket-group', 'no-such-group-remapsim'], "remapsim: --socket-group: no group 'no-such-group-remapsim' (a group name or a numeric gid)\n"],
      [
        ['--handshake-timeout', '0'],
        "remapsim: --handshake-timeout must be a time from 0.1 s to 3600 s: seconds (10, 0.5) or with a unit (500ms, 2s, 1m), got '0'\n",
      ],
      [
        ['--handshake-timeout', 'soon'],
        "remapsim: --handshake-timeout must be a time from 0.1 s to 3600 s: seconds (10, 0.5) or with a unit (500ms, 2s, 1m), got 'soon'\n",
      ],
      [['--max-connections', '0'], "remapsim: --max-connections must be a whole number in [1, 65536], got '0'\n"],
    ];
    for (const [args, stderr] of cases) expect(await cliInProcess([...base, ...args]), args.join(' ')).toEqual({ code: 2, stdout: '', stderr });
  });

  it('--help teaches the access options with an example', async () => {
    const h = await cliInProcess(['serve', '--help']);
    expect(h.stdout).toMatch(/--socket-mode <mode>/);
    expect(h.stdout).toMatch(/--socket-group <group>/);
    expect(h.stdout).toMatch(/--handshake-timeout <seconds>/);
    expect(h.stdout).toMatch(/--max-connections <n>/);
    expect(h.stdout).toMatch(/--describe-paths/);
    expect(h.stdout).toMatch(/--socket-mode 0660 --socket-group disk/);
  });
});

const noNbdinfo = skipReason(
  toolVersion('nbdinfo') === undefined ? 'nbdinfo (libnbd-bin) is not installed' : undefined,
  'nbdinfo --list of the export description',
);

describe('the export description', () => {
  it('names the policy and the size, no host path; --describe-paths gives the table line', async () => {
    const { table, main } = tableFiles();
    const stack = openModelStack({ table });
    expect(exportDescription(stack.target)).toBe('remapsim safe policy, 8 MiB');
    expect(exportDescription(stack.target, true)).toBe(`remapsim ${stack.target.table()}`);
    const sock = path.join(tmp.dir, 'desc.sock');
    const serving = await serveModel(stack, { socket: sock });
    try {
      const c = await TestNbdClient.connect(sock);
      const info = await c.option({ kind: 'info', name: '', infoRequests: [Info.DESCRIPTION] });
      const list = await c.option({ kind: 'list' });
      const told = JSON.stringify([info, list]);
      expect(told).toContain('remapsim safe policy, 8 MiB');
      expect(told).not.toContain(main);
      expect(told).not.toContain(tmp.dir);
      await c.abort();
      if (!noNbdinfo) {
        const r = await runTool('nbdinfo', ['--list', '--json', `nbd+unix:///?socket=${sock}`], { timeoutS: 20 });
        expect(r.code, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout).exports[0].description).toBe('remapsim safe policy, 8 MiB');
        const { uri: _uri, ...told } = JSON.parse(r.stdout).exports[0]; // the uri is the client's own
        expect(JSON.stringify(told)).not.toContain(tmp.dir);
      }
    } finally {
      await serving.stop();
    }
    const { table: t2 } = tableFiles();
    const sock2 = path.join(tmp.dir, 'desc2.sock');
    const stack2 = openModelStack({ table: t2 });
    const withPaths = await serveModel(stack2, { socket: sock2, describePaths: true });
    try {
      const c = await TestNbdClient.connect(sock2);
      const list = await c.option({ kind: 'list' });
      expect(list[0]).toMatchObject({ kind: 'rep-server', description: `remapsim ${stack2.target.table()}` });
      expect(stack2.target.table().startsWith(t2)).toBe(true);
      await c.abort();
    } finally {
      await withPaths.stop();
    }
  });
});
