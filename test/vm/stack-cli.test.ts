/**
 * What a tester needs from `stack`, `dm` and `status` on a real kernel:
 * bad sectors of a live stack changed and listed from the command line,
 * leftovers of a stack named and cleaned, `dm status --watch`, a message the
 * target sends no reply to, a table refused with EBUSY naming who holds its
 * device, and `status` / `dm status` exiting alike. Commands run in this
 * process (test/vm/helpers.ts inProcessCli), one in a child for signals.
 *
 * The VM's dm-remap-v4 module is buggy: every DM_TABLE_STATUS call (status
 * or table) toggles a mutex its health scan takes, and suspend+resume then
 * remove oopses. So it is only ever created over fresh loop devices here,
 * sent messages, asked for its table an even number of times in all, and
 * removed. Stacks are built without it (remapTarget null).
 * Runs in the VM: `npm run test:kernel -- test/vm/stack-cli.test.ts`.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileDevice } from '../../src/block/file-device.js';
import { registerDm } from '../../src/cli/commands/dm.js';
import { registerStack } from '../../src/cli/commands/stack.js';
import { registerTargetControl } from '../../src/cli/commands/target-control.js';
import { listLoops } from '../../src/kernel/loop.js';
import { buildKernelStack, loadStackState, saveStackState, type StackState, teardownKernelStack } from '../../src/kernel/stack.js';
import { type CliRun, control, inProcessCli, loopDevice, NOT_IN_VM, onCleanup, removeLater, scratchDir, uniqueName } from './helpers.js';

assert.ok(fs.existsSync('/dev/mapper/control'), NOT_IN_VM);
const dm = control();
const dir = scratchDir();
const MiB = 1 << 20;
const remapsim = inProcessCli([registerDm, registerStack, registerTargetControl]);

async function ok(...args: string[]): Promise<string> {
  const r = await remapsim(...args);
  assert.equal(r.code, 0, `remapsim ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  assert.equal(r.stderr, '', `remapsim ${args.join(' ')} wrote to stderr`);
  return r.stdout;
}

/** A one-line error with the given exit status. */
function oneLine(r: CliRun, code: number, message: RegExp | string, what: string): void {
  assert.equal(r.code, code, `${what}: exit ${r.code} (${r.stderr.trim()})`);
  assert.equal(r.stdout, '', what);
  assert.match(r.stderr, /^remapsim: [^\n]+\n$/, `${what}: not one line: ${JSON.stringify(r.stderr)}`);
  if (typeof message === 'string') assert.equal(r.stderr, `remapsim: ${message}\n`, what);
  else assert.match(r.stderr, message, what);
}

async function fails(code: number, message: RegExp | string, ...args: string[]): Promise<void> {
  oneLine(await remapsim(...args), code, message, `remapsim ${args.join(' ')}`);
}

/** Tears the stack down after the tests if a test left it up. */
function keep(state: StackState): void {
  onCleanup(() => {
    try {
      teardownKernelStack(state);
    } catch {
      // already down
    }
  });
}

function stack(tag: string, spec: Partial<Parameters<typeof buildKernelStack>[0]> = {}): { state: StackState; file: string } {
  const state = buildKernelStack({ name: `${tag}-${process.pid}`, dir, main: { bytes: 8 * MiB }, spare: { bytes: MiB }, remapTarget: null, ...spec });
  keep(state);
  const file = path.join(dir, `${state.name}.json`);
  saveStackState(file, state);
  return { state, file };
}

describe('stack bad: a live stack’s bad sectors from the command line', () => {
  test('dust: add, list (a write heals a block; a block added behind the state), remove; the state file follows', async () => {
    const { state, file } = stack('sbd', { badSectors: [100] });
    const bad = `${state.name}-bad`;
    const listed = (): string => dm.message(bad, 0, 'listbadblocks');

    const added = await ok('stack', 'bad', file, 'add', '4000', '2049');
    assert.deepEqual(added.trimEnd().split('\n'), [
      `stack '${state.name}': dm-dust on ${bad} (512-byte sectors)`,
      '  kernel: 100 2049 4000',
      '  state:  100 2049 4000',
      '  they agree',
    ]);
    assert.equal(listed(), '100\n2049\n4000\n');
    assert.deepEqual(loadStackState(file).badSectors, [100, 2049, 4000]);

    // dm-dust: a write to a bad block goes through and takes it off the kernel's list
    const dev = FileDevice.open(state.top, { direct: true });
    try {
      assert.equal(dev.write(2049, new Uint8Array(512).fill(1)), 0);
    } finally {
      dev.close();
    }
    dm.message(bad, 0, 'addbadblock 7000');
    const j = JSON.parse(await ok('stack', 'bad', file, 'list', '--json'));
    assert.deepEqual(j.kernel, [
      { first: 100, last: 100 },
      { first: 4000, last: 4000 },
      { first: 7000, last: 7000 },
    ]);
    assert.deepEqual(j.state, [100, 2049, 4000]);
    assert.deepEqual(j.onlyInState, [2049]);
    assert.deepEqual(j.onlyInKernel, [{ first: 7000, last: 7000 }]);
    const text = await ok('stack', 'bad', file, 'list');
    assert.match(text, /^ {2}in the state, not failed by the kernel: 2049: a write to a dust block takes it off the kernel's list$/m);
    assert.match(text, /^ {2}failed by the kernel, not in the state: 7000 \(added outside remapsim stack, e.g. with dm message\)$/m);

    // 100 goes off the kernel's list; 2049 was off it already; 7000 was only on the kernel's
    await ok('stack', 'bad', file, 'remove', '100', '2049', '7000');
    assert.equal(listed(), '4000\n');
    assert.deepEqual(loadStackState(file).badSectors, [4000]);
    await fails(2, `sector 555 is not bad on stack '${state.name}' (its bad sectors: 4000)`, 'stack', 'bad', file, 'remove', '555');
    await fails(
      2,
      `SECTOR must be a whole 512-byte sector number in 0..16383 (the size of stack '${state.name}'), got '16384'`,
      'stack',
      'bad',
      file,
      'add',
      '16384',
    );
    assert.equal(listed(), '4000\n', 'a refused request changed nothing');
    await ok('stack', 'down', file);
  });

  test('linear+error: add and remove swap the table live; list reads the error segments', async () => {
    const { state, file } = stack('sbl', { badLayer: 'linear-error', badSectors: [17] });
    const bad = `${state.name}-bad`;
    const errors = (): string[] =>
      dm
        .table(bad)
        .filter((t) => t.type === 'error')
        .map((t) => `${t.start}+${t.length}`);
    const dev = FileDevice.open(state.top, { direct: true });
    try {
      await ok('stack', 'bad', file, 'add', '1000');
      assert.deepEqual(errors(), ['17+1', '1000+1']);
      assert.equal(dev.read(1000, new Uint8Array(512)), 5);
      const j = JSON.parse(await ok('stack', 'bad', file, 'list', '--json'));
      assert.equal(j.layer, 'linear-error');
      assert.deepEqual(j.kernel, [
        { first: 17, last: 17 },
        { first: 1000, last: 1000 },
      ]);
      assert.deepEqual([j.onlyInState, j.onlyInKernel], [[], []]);
      await ok('stack', 'bad', file, 'remove', '17');
      assert.deepEqual(errors(), ['1000+1']);
      assert.equal(dev.read(17, new Uint8Array(512)), 0, 'sector 17 reads again, on the same open device');
      assert.equal(dm.info(bad).suspended, false);
      assert.deepEqual(loadStackState(file).badSectors, [1000]);
      await fails(2, /sector 17 is not bad on stack/, 'stack', 'bad', file, 'remove', '17');
    } finally {
      dev.close();
    }
    await ok('stack', 'down', file);
  });
});

describe('stack leftovers', () => {
  test('stack up over a stack that is up names every leftover in one line (exit 2); stack clean removes exactly those', async () => {
    const { state, file } = stack('slo');
    const other = stack('slx');
    const name = state.name;
    const [mainLoop, spareLoop] = ['main', 'spare'].map((r) => state.loops.find((l) => l.role === r)!.device);
    const real = fs.realpathSync(dir);
    const f = (role: string): string => path.join(real, `${name}-${role}.img`);
    await fails(
      2,
      `stack '${name}' looks up already: dm device ${name}-bad; loop devices ${mainLoop} (on ${f('main')}), ${spareLoop} (on ${f('spare')}); files ${f('main')}, ${f('spare')}. Tear it down with \`remapsim stack down STATE\`, or remove exactly these with \`remapsim stack clean ${name} --dir ${dir}\``,
      'stack',
      'up',
      'default',
      '--name',
      name,
      '--dir',
      dir,
      '--state',
      path.join(dir, 'unused.json'),
    );
    assert.ok(!fs.existsSync(path.join(dir, 'unused.json')));

    const report = JSON.parse(await ok('stack', 'clean', name, '--dir', dir, '--json'));
    assert.deepEqual(report, { removedDevices: [`${name}-bad`], detachedLoops: [mainLoop, spareLoop], removedFiles: [f('main'), f('spare')] });
    assert.equal(dm.exists(`${name}-bad`), false);
    const backing = new Set(listLoops().map((l) => l.backingFile));
    assert.ok(!backing.has(f('main')) && !backing.has(f('spare')));
    // the other stack in the same directory is untouched
    assert.equal(dm.exists(`${other.state.name}-bad`), true);
    for (const fl of other.state.files) assert.ok(fs.existsSync(fl.path) && backing.has(fl.path));

    assert.match(await ok('stack', 'clean', name, '--dir', dir), /^stack '.*': nothing left behind\n$/);
    // the state file still names what clean removed: down finds it all gone, which is fine
    assert.match(await ok('stack', 'down', file), /"alreadyGone":\[/);
    await ok('stack', 'down', other.file);
  });
});

describe('dm status --watch', () => {
  test('piped: a timestamped line per sample, --json an object per sample; SIGTERM ends it with exit 0', async () => {
    const loop = loopDevice(8 * MiB, { dir });
    const name = uniqueName('watch');
    removeLater(dm, name);
    await ok('dm', 'create', name, '--table', `0 16384 dust ${loop.device} 0 512`);
    const lines = (await ok('dm', 'status', name, '--watch', '250ms', '--count', '3')).trimEnd().split('\n');
    assert.equal(lines.length, 3);
    const times = lines.map((l) => {
      const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) 0 16384 dust \d+:\d+ bypass verbose$/.exec(l);
      assert.ok(m, `not a timestamped status line: ${l}`);
      return Date.parse(m[1]);
    });
    // on a schedule from the first sample: a late one is followed by an early one, so only the span is certain
    assert.ok(times[0] < times[1] && times[1] < times[2] && times[2] - times[0] >= 450, `samples not on a 250 ms schedule: ${times.join(' ')}`);
    const objs = (await ok('dm', 'status', name, '--watch', '0.25', '--count', '2', '--json'))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(objs.length, 2);
    assert.deepEqual(objs[0].status, { name, targets: [{ start: 0, length: 16384, type: 'dust', params: `${loop.majorMinor} bypass verbose` }] });
    assert.ok(Number.isFinite(Date.parse(objs[1].time)));

    // a child process (compiled beside this file), stopped by SIGTERM after two samples
    const child = spawn(process.execPath, [fileURLToPath(new URL('./cli-child.js', import.meta.url)), 'dm', 'status', name, '--watch', '300ms'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no two samples from the child: ${stdout} ${stderr}`)), 120_000);
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.split('\n').length > 2) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill('SIGTERM');
    assert.equal(await exited, 0, `exit status after SIGTERM (stderr: ${stderr})`);
    assert.equal(stderr, '');
    assert.ok(stdout.endsWith('\n'));
    await ok('dm', 'remove', name);
  });

  test("status --watch --format openmetrics on a kernel dust device: one exposition per sample, with the dust layer's metrics", async () => {
    const loop = loopDevice(8 * MiB, { dir });
    const name = uniqueName('om');
    removeLater(dm, name);
    await ok('dm', 'create', name, '--table', `0 16384 dust ${loop.device} 0 512`);
    dm.message(name, 0, 'addbadblock 7');
    dm.message(name, 0, 'enable');
    const out = await ok('status', name, '--watch', '250ms', '--count', '2', '--format', 'openmetrics');
    const expositions = out.split('# EOF\n');
    assert.equal(expositions.length, 3, out);
    assert.equal(expositions[2], '');
    for (const e of expositions.slice(0, 2)) {
      assert.match(e, /^remapsim_dust_fail_reads\{layer="[^"]+"\} 1$/m);
      assert.match(e, /^# TYPE remapsim_dust_fail_reads gauge$/m);
    }
    await ok('dm', 'remove', name);
  });

  test('`remapsim status` and `remapsim dm status` exit alike: no such device 2, a bad name 2, bad options 2', async () => {
    const absent = uniqueName('absent');
    const longName = 'x'.repeat(200);
    const cases: Array<[string[], RegExp]> = [
      [[absent], new RegExp(`device '${absent}' does not exist`)],
      [[longName], /name/],
      [[absent, '--watch', 'soon'], /--watch: must be a time/],
      [[absent, '--watch', '1', '--count', 'x'], /--count: must be an integer/],
    ];
    for (const [args, message] of cases) {
      await fails(2, message, 'status', ...args);
      await fails(2, message, 'dm', 'status', ...args);
    }
    await fails(2, new RegExp(`device '${absent}' does not exist`), 'message', absent, 'help');
    await fails(2, new RegExp(`device '${absent}' does not exist`), 'dm', 'message', absent, '0', 'help');
  });
});

describe('messages without a reply, and tables refused with EBUSY', () => {
  test('a device held open with O_EXCL: the line says no dm target or mount holds it, and names the dm tables that share the other device', async () => {
    const shared = loopDevice(MiB, { dir });
    const held = loopDevice(MiB, { dir });
    const lin = uniqueName('lin');
    removeLater(dm, lin);
    await ok('dm', 'create', lin, '--table', `0 2048 linear ${shared.device} 0`);
    const node = `dm-${dm.info(lin).minor}`;
    const fd = fs.openSync(held.device, fs.constants.O_RDONLY | fs.constants.O_EXCL);
    const busy = uniqueName('busy');
    try {
      await fails(
        2,
        `device-mapper refused the table for '${busy}' (EBUSY: a device it names is held): ${shared.device}, ${held.device} are not opened by path by a dm target nor mounted, so something else holds one open exclusively (O_EXCL) (device-mapper tables using them do not block a load: ${shared.device}: the table of dm device '${lin}' (${node}) uses it)`,
        'dm',
        'create',
        busy,
        '--table',
        `0 2048 linear ${shared.device} 0\n2048 2048 linear ${held.device} 0`,
      );
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(dm.exists(busy), false, 'the refused create left its device behind');
    await ok('dm', 'remove', lin);
  });

  test('dm-remap-v4: help gets no reply (said on stderr, exit 0; null in JSON); its devices are named when another table wants them', async (t) => {
    if (!dm.targetVersion('dm-remap-v4')) {
      t.skip('this kernel has no dm-remap-v4 target');
      return;
    }
    const main = loopDevice(8 * MiB, { dir });
    const spare = loopDevice(8 * MiB, { dir });
    const other = loopDevice(MiB, { dir });
    const rv = uniqueName('rv');
    const lin = uniqueName('lin2');
    removeLater(dm, lin);
    removeLater(dm, rv);
    await ok('dm', 'create', lin, '--table', `0 2048 linear ${other.device} 0`);
    await ok('dm', 'create', rv, '--table', `0 16384 dm-remap-v4 ${main.device} ${spare.device}`);

    const none = 'no reply (the target sent none: DM_DATA_OUT_FLAG not set)\n';
    let r = await remapsim('dm', 'message', rv, '0', 'help');
    assert.deepEqual(r, { code: 0, stdout: '', stderr: `dm message: ${none}` });
    assert.deepEqual(await remapsim('dm', 'message', '--json', rv, '0', 'help'), { code: 0, stdout: '{"reply":null}\n', stderr: '' });
    // `remapsim message` reads the device's table once per call (two here)
    r = await remapsim('message', rv, 'help');
    assert.deepEqual(r, { code: 0, stdout: '', stderr: `message: ${none}` });
    assert.deepEqual(await remapsim('message', rv, '--json', 'help'), { code: 0, stdout: '{"reply":null}\n', stderr: '' });

    // each refused load reads the live tables once (two here: rv's table read an even number of times in all)
    const busy = uniqueName('busy');
    await fails(
      2,
      `device-mapper refused the table for '${busy}' (EBUSY: a device it names is held): ${main.device}: dm-remap-v4 device '${rv}' opened it by path (${main.device}) and holds it exclusively`,
      'dm',
      'create',
      busy,
      '--table',
      `0 2048 linear ${main.device} 0`,
    );
    assert.equal(dm.exists(busy), false);
    await fails(
      2,
      `device-mapper refused the table for '${lin}' (EBUSY: a device it names is held): ${spare.device}: dm-remap-v4 device '${rv}' opened it by path (${spare.device}) and holds it exclusively`,
      'dm',
      'load',
      lin,
      '--table',
      `0 2048 linear ${spare.device} 0`,
    );
    assert.equal(dm.info(lin).inactiveTable, false);
    await ok('dm', 'remove', rv);
    await ok('dm', 'remove', lin);
    assert.equal(dm.exists(rv), false);
  });
});
