/**
 * `remapsim dm ...` against the real kernel, its output compared byte for
 * byte with dmsetup's for the same devices. The command runs in this process
 * (the same commander program and error mapping as the `remapsim` binary; a
 * node start costs seconds under emulation); test/cli/dm.test.ts covers the
 * binary itself on the host. Runs in the VM: `npm run test:kernel`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { registerDm } from '../../src/cli/commands/dm.js';
import { control, inProcessCli, loopDevice, NOT_IN_VM, scratchDir, sh, shTry, uniqueName } from './helpers.js';

assert.ok(fs.existsSync('/dev/mapper/control'), NOT_IN_VM);
const dm = control();

/** Runs `remapsim dm <args>` in this process. */
const run = inProcessCli([registerDm]);
const remapsim = (...args: string[]) => run('dm', ...args);

async function ok(...args: string[]): Promise<string> {
  const r = await remapsim(...args);
  assert.equal(r.code, 0, `remapsim dm ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  assert.equal(r.stderr, '', `remapsim dm ${args.join(' ')} wrote to stderr`);
  return r.stdout;
}

/** A one-line error with the given exit status. */
async function fails(code: number, message: RegExp, ...args: string[]): Promise<void> {
  const r = await remapsim(...args);
  assert.equal(r.code, code, `remapsim dm ${args.join(' ')}: exit ${r.code} (${r.stderr.trim()})`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^remapsim: [^\n]+\n$/, `not one line: ${JSON.stringify(r.stderr)}`);
  assert.match(r.stderr, message);
}

const MiB = 1 << 20;

describe('remapsim dm, compared with dmsetup', () => {
  const dir = scratchDir();
  const loop = loopDevice(8 * MiB, { dir });
  const lin = uniqueName('cli-lin');
  const dust = uniqueName('cli-dust');
  const ro = uniqueName('cli-ro');
  const none = uniqueName('cli-none');
  const all = [lin, dust, ro, none];

  before(async () => {
    await ok('create', lin, '--table', `0 4096 linear ${loop.device} 0\n# a comment line\n4096 2048 error   # a trailing comment`);
    const tableFile = path.join(dir, 'dust.table');
    fs.writeFileSync(tableFile, `0 8192 dust ${loop.device} 0 512\n`);
    await ok('create', dust, tableFile);
    await ok('create', ro, '--readonly', '--table', '0 100 zero');
    await ok('create', none, '--notable');
  });
  after(() => {
    for (const n of all) if (dm.exists(n)) dm.remove(n, { retries: 10 });
  });

  test('create made what the table said', () => {
    assert.equal(sh('dmsetup', ['table', lin]), `0 4096 linear ${loop.majorMinor} 0\n4096 2048 error \n`);
    assert.equal(sh('dmsetup', ['table', dust]), `0 8192 dust ${loop.majorMinor} 0 512\n`);
    assert.match(sh('dmsetup', ['info', ro]), /^State:\s+ACTIVE \(READ-ONLY\)$/m);
    assert.match(sh('dmsetup', ['info', none]), /^Tables present:\s+None$/m);
  });

  test('ls, ls --target, targets, version', async () => {
    assert.equal(await ok('ls'), sh('dmsetup', ['ls']));
    assert.equal(await ok('ls', '--target', 'linear'), sh('dmsetup', ['ls', '--target', 'linear']));
    assert.match(await ok('ls', '--target', 'linear'), new RegExp(`^${lin}\\t\\(\\d+, \\d+\\)$`, 'm'));
    assert.equal(await ok('targets'), sh('dmsetup', ['targets']));
    const driver = (s: string): string | undefined => /^Driver version:.*$/m.exec(s)?.[0];
    const v = await ok('version');
    assert.equal(driver(v), driver(sh('dmsetup', ['version'])));
    assert.match(v, /^Library version:   remapsim 0\.0\.0-test$/m);
  });

  test('info of one device and of all', async () => {
    for (const n of [lin, dust, ro]) assert.equal(await ok('info', n), sh('dmsetup', ['info', n]));
    // dmsetup also complains on stderr that it cannot open the table-less device's node; stdout is what compares
    assert.equal(await ok('info'), shTry('dmsetup', ['info']).stdout);
    const j = JSON.parse(await ok('info', lin, '--json'));
    assert.equal(j.name, lin);
    assert.equal(j.targetCount, 2);
    assert.equal(j.activeTable, true);
    assert.equal(typeof j.readAhead, 'number');
  });

  test('status and table: one device, all, --target, --inactive', async () => {
    for (const cmd of ['status', 'table']) {
      for (const n of all) assert.equal(await ok(cmd, n), sh('dmsetup', [cmd, n]), `${cmd} ${n}`);
      assert.equal(await ok(cmd), sh('dmsetup', [cmd]), `${cmd} (all)`);
      assert.equal(await ok(cmd, '--target', 'error'), sh('dmsetup', [cmd, '--target', 'error']));
      assert.equal(await ok(cmd, lin, '--target', 'linear'), sh('dmsetup', [cmd, lin, '--target', 'linear']));
    }
    const j = JSON.parse(await ok('table', lin, '--json'));
    assert.deepEqual(j, {
      name: lin,
      targets: [
        { start: 0, length: 4096, type: 'linear', params: `${loop.majorMinor} 0` },
        { start: 4096, length: 2048, type: 'error', params: '' },
      ],
    });
  });

  test('deps', async () => {
    assert.equal(await ok('deps', lin), sh('dmsetup', ['deps', lin]));
    assert.equal(await ok('deps'), sh('dmsetup', ['deps']));
  });

  test('message: replies printed as dmsetup prints them; refused messages', async () => {
    assert.equal(await ok('message', dust, '0', 'countbadblocks'), sh('dmsetup', ['message', dust, '0', 'countbadblocks']));
    // dm-dust answers addbadblock with no reply (its handler returns 0): nothing on stdout, as dmsetup; stderr says so
    assert.deepEqual(await remapsim('message', dust, '0', 'addbadblock', '12'), {
      code: 0,
      stdout: '',
      stderr: 'dm message: no reply (the target sent none: DM_DATA_OUT_FLAG not set)\n',
    });
    sh('dmsetup', ['message', dust, '0', 'addbadblock', '3']);
    assert.equal(await ok('message', dust, '0', 'listbadblocks'), '3\n12\n');
    assert.equal(await ok('message', dust, '0', 'listbadblocks'), sh('dmsetup', ['message', dust, '0', 'listbadblocks']));
    assert.deepEqual(JSON.parse(await ok('message', '--json', dust, '0', 'queryblock', '12')), { reply: 'dust_query_block: block 12 found in badblocklist' });
    await fails(2, /DM_TARGET_MSG for '.*' failed: EINVAL/, 'message', dust, '0', 'addbadblock', '-1');
    await fails(2, /sector must be a whole number of 512-byte sectors, got 'x'/, 'message', dust, 'x', 'countbadblocks');
  });

  test('suspend, load, info, table --inactive, clear, resume', async () => {
    assert.equal(await ok('suspend', lin, '--noflush', '--nolockfs'), '');
    assert.equal(await ok('info', lin), sh('dmsetup', ['info', lin]));
    assert.match(await ok('info', lin), /^State:\s+SUSPENDED$/m);
    assert.equal(await ok('load', lin, '--table', `0 6144 linear ${loop.device} 100`), '');
    assert.equal(await ok('info', lin), sh('dmsetup', ['info', lin]));
    assert.equal(await ok('table', '--inactive', lin), sh('dmsetup', ['table', '--inactive', lin]));
    assert.equal(await ok('table', '--inactive', lin), `0 6144 linear ${loop.majorMinor} 100\n`);
    assert.equal(await ok('clear', lin), '');
    assert.match(await ok('info', lin), /^Tables present:\s+LIVE$/m);
    assert.equal(await ok('load', lin, '--table', `0 6144 linear ${loop.device} 100`), '');
    assert.equal(await ok('resume', lin), '');
    assert.equal(sh('dmsetup', ['table', lin]), `0 6144 linear ${loop.majorMinor} 100\n`);
    assert.match(sh('dmsetup', ['info', lin]), /^State:\s+ACTIVE$/m);
  });

  test('errors are one line: unknown device (2), refused table (2, nothing left behind), busy (3)', async () => {
    const absent = uniqueName('absent');
    await fails(2, new RegExp(`device '${absent}' does not exist`), 'remove', absent);
    await fails(2, new RegExp(`device '${absent}' does not exist`), 'info', absent);
    await fails(2, new RegExp(`device '${absent}' does not exist`), 'status', absent);
    const bad = uniqueName('cli-bad');
    await fails(2, /target type 'nosuchtgt' is not loaded/, 'create', bad, '--table', '0 8 nosuchtgt');
    assert.equal(dm.exists(bad), false, 'a refused create left the device behind');
    await fails(2, /refused the table/, 'create', bad, '--table', `0 8 dust ${loop.device} 0 1000`);
    assert.equal(dm.exists(bad), false);
    await fails(2, /--table line 1: length must be a whole number of 512-byte sectors, got 'x'/, 'create', bad, '--table', '0 x zero');
    await fails(2, /already exists/, 'create', lin, '--table', '0 8 zero');
    const fd = fs.openSync(`/dev/mapper/${ro}`, 'r');
    try {
      await fails(3, new RegExp(`device '${ro}' is busy`), 'remove', ro);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('remove (and --retry) removes the device and its node', async () => {
    for (const n of [ro, none]) {
      assert.equal(await ok('remove', '--retry', n), '');
      assert.equal(dm.exists(n), false);
      assert.ok(!fs.existsSync(`/dev/mapper/${n}`));
    }
    assert.equal(await ok('remove', dust), '');
    assert.equal(await ok('remove', lin), '');
    assert.equal(shTry('dmsetup', ['info', lin]).code, 1);
  });
});
