/**
 * buildKernelStack / addBadSectors / teardownKernelStack against the real
 * kernel: both bad-sector layers (dm-dust, and dm-linear with dm-error
 * segments), bad sectors added while the stack is live, I/O (O_DIRECT) that
 * sees them, a teardown from another process, and nothing left behind.
 * Runs in the VM: `npm run test:kernel`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileDevice } from '../../src/block/file-device.js';
import { DmControl } from '../../src/kernel/dm-control.js';
import { listLoops } from '../../src/kernel/loop.js';
import {
  addBadSectors,
  buildKernelStack,
  linearErrorTable,
  loadStackState,
  saveStackState,
  StackError,
  type StackState,
  teardownKernelStack,
} from '../../src/kernel/stack.js';
import { dmsetupLine } from '../../src/cli/commands/dm.js';
import { control, NOT_IN_VM, onCleanup, scratchDir, sh } from './helpers.js';

assert.ok(fs.existsSync('/dev/mapper/control'), NOT_IN_VM);
const dm = control();
const dir = scratchDir();
const MiB = 1 << 20;

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

/** Nothing of the stack is left: no dm device with its prefix, no loop device on its files, no created file. */
function assertGone(state: StackState): void {
  const names = dm.listDevices().map((d) => d.name);
  assert.deepEqual(
    names.filter((n) => n.startsWith(`${state.name}-`)),
    [],
    'dm devices left behind',
  );
  const files = new Set(state.files.map((f) => f.path));
  assert.deepEqual(
    listLoops()
      .filter((l) => files.has(l.backingFile))
      .map((l) => l.device),
    [],
    'loop devices left behind',
  );
  for (const f of state.files) if (f.created) assert.ok(!fs.existsSync(f.path), `${f.path} left behind`);
}

function readStatus(dev: FileDevice, sector: number, sectors: number): number {
  return dev.read(sector, new Uint8Array(sectors * 512));
}

test('dust layer, 512-byte blocks: bad sectors fail reads, more are added live, a write heals one, down removes everything', () => {
  // a remap target type the kernel lacks: the stack ends at the bad-sector layer and says why (the VM's
  // dm-remap-v4 module must not see I/O errors, which this test makes)
  const state0 = buildKernelStack({
    name: `stk-dust-${process.pid}`,
    dir,
    main: { bytes: 8 * MiB },
    badSectors: [100, 2049, 4000],
    remapTarget: 'no-such-tgt',
  });
  keep(state0);
  assert.equal(state0.badLayer.kind, 'dust');
  assert.equal(state0.remap.present, false);
  assert.equal(state0.remap.target, 'no-such-tgt');
  assert.match(state0.remap.reason ?? '', /target type 'no-such-tgt' is not loaded/);
  assert.equal(state0.top, `/dev/mapper/stk-dust-${process.pid}-bad`);
  assert.equal(state0.sectors, 16384);
  assert.equal(state0.loops.length, 2);
  assert.ok(fs.statSync(state0.spareDevice).isBlockDevice());
  assert.equal(dm.message(`${state0.name}-bad`, 0, 'listbadblocks'), '100\n2049\n4000\n');
  assert.match(dm.status(`${state0.name}-bad`)[0].params, / fail_read_on_bad_block verbose$/);

  const dev = FileDevice.open(state0.top, { direct: true });
  try {
    for (const s of [100, 2049, 4000]) assert.equal(readStatus(dev, s, 1), 5, `sector ${s}`);
    for (const s of [99, 101, 2048, 2050, 5000]) assert.equal(readStatus(dev, s, 1), 0, `sector ${s}`);
    assert.equal(readStatus(dev, 96, 8), 5, 'a read spanning a bad sector');

    const state1 = addBadSectors(state0, [7000, 100]);
    assert.deepEqual(state1.badSectors, [100, 2049, 4000, 7000]);
    assert.equal(readStatus(dev, 7000, 1), 5);
    assert.equal(dm.message(`${state0.name}-bad`, 0, 'countbadblocks'), 'countbadblocks: 4 badblock(s) found');

    // dm-dust semantics: a write to a bad block goes through and takes it off the list
    assert.equal(dev.write(2049, new Uint8Array(512).fill(7)), 0);
    const back = new Uint8Array(512);
    assert.equal(dev.read(2049, back), 0);
    assert.ok(back.every((b) => b === 7));
  } finally {
    dev.close();
  }

  const report = teardownKernelStack(state0);
  assert.deepEqual(report.removedDevices, [`${state0.name}-bad`]);
  assert.equal(report.detachedLoops.length, 2);
  assert.equal(report.removedFiles.length, 2);
  assertGone(state0);
  // a second teardown finds everything gone and is not an error
  const again = teardownKernelStack(state0);
  assert.equal(again.removedDevices.length + again.detachedLoops.length + again.removedFiles.length, 0);
});

test('linear+error layer, 4096-byte blocks: reads and writes of bad blocks fail; live add by suspend/load/resume; down from another process', () => {
  const name = `stk-lin-${process.pid}`;
  const state0 = buildKernelStack({
    name,
    dir,
    main: { bytes: 4 * MiB },
    spare: { bytes: MiB },
    logicalBlockSize: 4096,
    badLayer: 'linear-error',
    badSectors: [17, 1000],
    remapTarget: null,
  });
  keep(state0);
  assert.equal(state0.badLayer.kind, 'linear-error');
  assert.deepEqual(state0.remap, { target: null, present: false, reason: 'no remap target was asked for' });
  const main = state0.loops.find((l) => l.role === 'main')!;
  const mm = `${main.major}:${main.minor}`;
  const expected = linearErrorTable(main.device, 8192, [17, 1000], 4096).map((t) => dmsetupLine({ ...t, params: t.params.replace(main.device, mm) }));
  assert.deepEqual(expected, [`0 16 linear ${mm} 0`, '16 8 error ', `24 976 linear ${mm} 24`, '1000 8 error ', `1008 7184 linear ${mm} 1008`]);
  assert.deepEqual(
    sh('dmsetup', ['table', `${name}-bad`])
      .trimEnd()
      .split('\n'),
    expected,
  );
  assert.equal(sh('blockdev', ['--getss', state0.top]).trim(), '4096');

  const dev = FileDevice.open(state0.top, { direct: true });
  try {
    assert.equal(dev.logicalBlockSize, 4096);
    assert.equal(readStatus(dev, 16, 8), 5);
    assert.equal(dev.write(16, new Uint8Array(4096)), 5, 'dm-error fails writes too');
    assert.equal(readStatus(dev, 8, 8), 0);
    assert.equal(readStatus(dev, 24, 8), 0);
    assert.equal(readStatus(dev, 992, 8), 0);
    assert.equal(readStatus(dev, 1000, 8), 5);
    assert.equal(readStatus(dev, 4096, 8), 0);

    // live: the device stays open across the table swap
    const state1 = addBadSectors(state0, [4099]);
    assert.deepEqual(state1.badSectors, [17, 1000, 4099]);
    assert.equal(readStatus(dev, 4096, 8), 5);
    assert.equal(readStatus(dev, 4104, 8), 0);
    assert.equal(dm.info(`${name}-bad`).suspended, false);
    assert.equal(dm.table(`${name}-bad`).length, 7);

    const file = path.join(dir, `${name}.json`);
    saveStackState(file, state1);
    assert.deepEqual(loadStackState(file), state1);
  } finally {
    dev.close();
  }

  // down from another process, as `remapsim stack down` will do
  const stackJs = new URL('../../src/kernel/stack.js', import.meta.url).href;
  const file = path.join(dir, `${name}.json`);
  const child = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { loadStackState, teardownKernelStack } from ${JSON.stringify(stackJs)}; const r = teardownKernelStack(loadStackState(${JSON.stringify(file)})); console.log(JSON.stringify(r));`,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(child.status, 0, `teardown process failed: ${child.stderr}`);
  const report = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
  assert.deepEqual(report.removedDevices, [`${name}-bad`]);
  assertGone(state0);
});

test('a failed build leaves nothing behind and says why', () => {
  const name = `stk-bad-${process.pid}`;
  assert.throws(
    () => buildKernelStack({ name, dir, main: { bytes: MiB }, badSectors: [5000] }),
    (e: unknown) => e instanceof StackError && e.message === 'bad sector 5000 is out of range 0..2047',
  );
  assert.deepEqual(
    dm
      .listDevices()
      .map((d) => d.name)
      .filter((n) => n.startsWith(name)),
    [],
  );
  assert.ok(!fs.existsSync(path.join(dir, `${name}-main.img`)));
  assert.ok(!fs.existsSync(path.join(dir, `${name}-spare.img`)));
  assert.deepEqual(
    listLoops().filter((l) => l.backingFile.includes(name)),
    [],
  );
  assert.throws(() => buildKernelStack({ name: 'bad name', main: { bytes: MiB } }), /name must be 1\.\.64 characters/);
  assert.throws(() => buildKernelStack({ name, main: { bytes: 1000 } }), /main\.bytes must be a multiple of the 512-byte logical block size/);
  assert.throws(() => buildKernelStack({ name, main: { bytes: MiB }, dustBlockSize: 1000 }), /dustBlockSize must be a power of two/);
});

test('a stack that is up is not built twice', () => {
  const name = `stk-twice-${process.pid}`;
  const s = buildKernelStack({ name, dir, main: { bytes: MiB }, remapTarget: null });
  keep(s);
  assert.throws(
    () => buildKernelStack({ name, dir, main: { bytes: MiB } }),
    new RegExp(
      `^StackError: stack '${name}' looks up already: dm device ${name}-bad; loop devices /dev/loop\\d+ \\(on .*${name}-main\\.img\\), /dev/loop\\d+ \\(on .*${name}-spare\\.img\\); files .*${name}-main\\.img, .*${name}-spare\\.img\\. Tear it down with \`remapsim stack down STATE\`, or remove exactly these with \`remapsim stack clean ${name} --dir `,
    ),
  );
  teardownKernelStack(s);
  assertGone(s);
  // DmControl handed in: the caller's control object stays open
  const c = DmControl.open();
  try {
    const t = buildKernelStack({ name, dir, main: { bytes: MiB }, remapTarget: null }, { control: c });
    teardownKernelStack(t, { control: c });
    assert.equal(c.version()[0], 4);
  } finally {
    c.close();
  }
});
