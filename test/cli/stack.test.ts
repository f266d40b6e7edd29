/**
 * `remapsim stack` on the host: state files and arguments refused in one
 * line (exit 2) before device-mapper is looked at, the bad-sector listing's
 * text, and `stack clean` removing exactly a stack's loop devices and files
 * (real loop devices, as root; this host has no device-mapper, so no dm
 * devices). The kernel lane (test/vm/stack-cli.test.ts) runs the rest
 * against real device-mapper.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatBadListing } from '../../src/cli/commands/stack.js';
import { attachLoop, detachLoop, listLoops } from '../../src/kernel/loop.js';
import { cleanStack, describeLeftovers, findStackLeftovers, parseDustList, planClean, type StackState } from '../../src/kernel/stack.js';
import { isStackUuid, newStackUuidStem, observeLoop, planTeardown, type StackObservation } from '../../src/kernel/stack-identity.js';
import { fileIdOf } from '../../src/util/file-identity.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';
import { runInProcess } from './in-process.js';

const tmp = tmpDir('remapsim-stack-cli-');
afterAll(() => {
  for (const l of listLoops()) if (l.backingFile.startsWith(tmp.dir)) detachLoop(l.number);
  tmp.cleanup();
});

/** A state file as `stack up` writes it (nothing behind it on this host). */
function stateFile(name: string, over: Partial<StackState> = {}): string {
  const state: StackState = {
    version: 1,
    name,
    createdAt: '2024-01-01T00:00:00.000Z',
    logicalBlockSize: 512,
    files: [],
    loops: [],
    devices: [
      { role: 'bad', name: `${name}-bad`, path: `/dev/mapper/${name}-bad`, major: 254, minor: 0, sectors: 16384, table: ['0 16384 dust /dev/loop0 0 512'] },
    ],
    badLayer: { kind: 'dust', blockSize: 512 },
    badSectors: [100],
    remap: { target: null, present: false, reason: 'no remap target was asked for' },
    top: `/dev/mapper/${name}-bad`,
    sectors: 16384,
    spareDevice: '/dev/loop1',
    notes: [],
    ...over,
  };
  const file = path.join(tmp.dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(state));
  return file;
}

/** One line on stderr, nothing on stdout, this exit status. */
function oneLine(r: { code: number; stdout: string; stderr: string }, code: number, message: RegExp): void {
  expect(r.stderr).toMatch(/^remapsim: [^\n]+\n$/);
  expect(r.stderr).toMatch(message);
  expect(r.stdout).toBe('');
  expect(r.code).toBe(code);
}

describe('stack state files and arguments', () => {
  it('down and bad: a missing, garbage or foreign state file is one line, exit 2', async () => {
    const missing = path.join(tmp.dir, 'nope.json');
    oneLine(await runInProcess(['stack', 'down', missing]), 2, /cannot read stack state .*nope\.json: no such file or directory/);
    const garbage = path.join(tmp.dir, 'garbage.json');
    fs.writeFileSync(garbage, 'garbage{\n');
    oneLine(await runInProcess(['stack', 'down', garbage]), 2, /garbage\.json is not a remapsim stack state: not JSON/);
    const foreign = path.join(tmp.dir, 'foreign.json');
    fs.writeFileSync(foreign, '{"version": 1, "name": "x"}');
    oneLine(await runInProcess(['stack', 'down', foreign]), 2, /foreign\.json is not a remapsim stack state: field 'files' is missing or malformed/);
    oneLine(await runInProcess(['stack', 'bad', garbage, 'list']), 2, /not JSON/);
    oneLine(await runInProcess(['stack', 'down', tmp.dir]), 2, /cannot read stack state .*: is a directory/);
  });

  it('bad: the action and every SECTOR are checked against the stack before device-mapper is reached', async () => {
    const f = stateFile('args');
    oneLine(await runInProcess(['stack', 'bad', f, 'frob', '1']), 2, /ACTION must be add, remove or list, got 'frob'/);
    oneLine(await runInProcess(['stack', 'bad', f, 'list', '5']), 2, /list takes no SECTOR arguments, got 5/);
    oneLine(await runInProcess(['stack', 'bad', f, 'add']), 2, /add needs at least one SECTOR/);
    for (const bad of ['x', '-1', '1.5', '16384', '99999999999999999999']) {
      oneLine(
        await runInProcess(['stack', 'bad', f, 'remove', '7', bad]),
        2,
        new RegExp(`SECTOR must be a whole 512-byte sector number in 0\\.\\.16383 \\(the size of stack 'args'\\), got '${bad.replace('.', '\\.')}'`),
      );
    }
    // good arguments get as far as device-mapper, which this host does not have: exit 3
    const noDm = await runInProcess(['stack', 'bad', f, 'add', '0', '16383']);
    if (!fs.existsSync('/dev/mapper/control')) oneLine(noDm, 3, /device-mapper is not available/);
    // nothing was saved
    expect(JSON.parse(fs.readFileSync(f, 'utf8')).badSectors).toEqual([100]);
  });
});

describe('the bad-sector listing', () => {
  it('parses dm-dust lists and says where kernel and state differ, and why', () => {
    expect(parseDustList('No blocks in badblocklist')).toEqual([]);
    expect(parseDustList('3\n128\n')).toEqual([3, 128]);
    expect(parseDustList('dust_list_badblocks: something else')).toBeNull();
    const base = { name: 's', device: 's-bad', layer: 'dust' as const, blockSectors: 1 };
    expect(
      formatBadListing({
        ...base,
        state: [5, 9],
        kernel: [
          { first: 5, last: 5 },
          { first: 9, last: 9 },
        ],
        onlyInState: [],
        onlyInKernel: [],
      }),
    ).toEqual(["stack 's': dm-dust on s-bad (512-byte sectors)", '  kernel: 5 9', '  state:  5 9', '  they agree']);
    const differ = formatBadListing({
      ...base,
      blockSectors: 8,
      state: [5, 100],
      kernel: [
        { first: 0, last: 7 },
        { first: 800, last: 815 },
      ],
      onlyInState: [100],
      onlyInKernel: [{ first: 800, last: 815 }],
    });
    expect(differ[0]).toBe("stack 's': dm-dust on s-bad (512-byte sectors, in blocks of 8)");
    expect(differ[1]).toBe('  kernel: 0-7 800-815');
    expect(differ).toContain("  in the state, not failed by the kernel: 100: a write to a dust block takes it off the kernel's list");
    expect(differ).toContain('  failed by the kernel, not in the state: 800-815 (added outside remapsim stack, e.g. with dm message)');
    expect(formatBadListing({ ...base, state: [], kernel: null, onlyInState: [], onlyInKernel: [] })[1]).toMatch(
      /unknown: this kernel's dm-dust did not return its list/,
    );
  });
});

describe.skipIf(skipReason(loopUnavailable(), 'stack clean on loop devices'))('stack clean (loop devices and files; no device-mapper here)', () => {
  it('removes exactly the stack’s loop devices (also on a deleted file) and files, and names them', async () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'clean-'));
    const file = (n: string): string => {
      const p = path.join(dir, n);
      fs.writeFileSync(p, '');
      fs.truncateSync(p, 1 << 20);
      return p;
    };
    const main = file('t1-main.img');
    const spare = file('t1-spare.img');
    const other = file('t2-main.img'); // another stack's
    const extra = file('t1-notes.img'); // not a name stack up makes
    const mainLoop = attachLoop(main);
    const otherLoop = attachLoop(other);
    const spareLoop = attachLoop(spare);
    fs.unlinkSync(spare); // the loop device stays, on a deleted file

    const left = findStackLeftovers('t1', { dir });
    expect(left.files).toEqual([main]);
    expect(left.loops.map((l) => l.device).sort()).toEqual([mainLoop.device, spareLoop.device].sort());
    expect(left.devices).toEqual([]);
    expect(describeLeftovers(left)).toMatch(
      new RegExp(
        `^loop devices /dev/loop\\d+ \\(on .*t1-(main|spare)\\.img( \\(deleted\\))?\\), /dev/loop\\d+ \\(on .*\\); file ${main.replace(/[.]/g, '\\.')}$`,
      ),
    );
    expect(findStackLeftovers('t1', { dir, roles: ['spare'] }).files).toEqual([]);

    const r = await runInProcess(['stack', 'clean', 't1', '--dir', dir, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.detachedLoops.sort()).toEqual([mainLoop.device, spareLoop.device].sort());
    expect(report.removedFiles).toEqual([main]);
    expect(report.removedDevices).toEqual([]);
    if (!fs.existsSync('/dev/mapper/control')) expect(report.noDeviceMapper).toMatch(/device-mapper is not available/);

    const backing = new Set(listLoops().map((l) => l.backingFile));
    expect(backing.has(main) || backing.has(`${spare} (deleted)`)).toBe(false);
    expect(backing.has(other)).toBe(true);
    expect(fs.existsSync(other) && fs.existsSync(extra)).toBe(true);

    const again = await runInProcess(['stack', 'clean', 't1', '--dir', dir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^stack 't1': nothing left behind\n/);
    detachLoop(otherLoop.number);
  });

  it('refuses a name stack up would refuse, in one line', async () => {
    oneLine(await runInProcess(['stack', 'clean', '../etc']), 2, /name must be 1\.\.64 characters/);
    expect(() => cleanStack('a b')).toThrow(/name must be/);
  });
});

describe('stack down acts only on what its stack up made (identities)', () => {
  const uuid = `${newStackUuidStem('t9')}-bad`;
  const v2 = (over: Partial<StackState> = {}): StackState => ({
    version: 2,
    name: 't9',
    createdAt: '2024-01-01T00:00:00.000Z',
    logicalBlockSize: 512,
    files: [{ role: 'main', path: '/x/t9-main.img', bytes: 1 << 20, created: true, dev: 64, ino: 1000 }],
    loops: [{ role: 'main', device: '/dev/loop5', number: 5, major: 7, minor: 5, backingFile: '/x/t9-main.img', backingDev: 64, backingIno: 1000 }],
    devices: [{ role: 'bad', name: 't9-bad', path: '/dev/mapper/t9-bad', major: 254, minor: 3, sectors: 2048, table: ['0 2048 dust /dev/loop5 0 512'], uuid }],
    badLayer: { kind: 'dust', blockSize: 512 },
    badSectors: [],
    remap: { target: null, present: false },
    top: '/dev/mapper/t9-bad',
    sectors: 2048,
    spareDevice: '',
    notes: [],
    ...over,
  });
  const matching = (): StackObservation => ({
    devices: { 't9-bad': { uuid } },
    loops: { 5: { major: 7, minor: 5, backingFile: '/x/t9-main.img', backingDev: 64, backingIno: 1000 } },
    files: { '/x/t9-main.img': { dev: 64, ino: 1000 } },
  });

  it('UUIDs stack up sets are remapsim-<name>-<random>-<role>, and only those count as the stack’s', () => {
    expect(uuid).toMatch(/^remapsim-t9-[0-9a-f]{16}-bad$/);
    expect(newStackUuidStem('t9')).not.toBe(newStackUuidStem('t9'));
    expect(isStackUuid(uuid, 't9')).toBe(true);
    expect(isStackUuid(uuid, 't')).toBe(false);
    expect(isStackUuid('', 't9')).toBe(false);
    expect(isStackUuid('LVM-abc', 't9')).toBe(false);
  });

  it('plan: everything that still carries its identity goes; what does not is named and left alone', () => {
    expect(planTeardown(v2(), matching())).toEqual({
      removeDevices: ['t9-bad'],
      detachLoops: [{ device: '/dev/loop5', number: 5 }],
      removeFiles: ['/x/t9-main.img'],
      alreadyGone: [],
      refused: [],
    });
    const other = matching();
    other.devices['t9-bad'] = { uuid: 'CRYPT-LUKS2-1234' };
    other.loops[5] = { major: 7, minor: 5, backingFile: '/home/u/disk.img', backingDev: 64, backingIno: 77 };
    other.files['/x/t9-main.img'] = { dev: 64, ino: 1001 };
    const plan = planTeardown(v2(), other);
    expect(plan.removeDevices).toEqual([]);
    expect(plan.detachLoops).toEqual([]);
    expect(plan.removeFiles).toEqual([]);
    expect(plan.refused).toEqual([
      `dm device t9-bad (its UUID is 'CRYPT-LUKS2-1234', not this stack's '${uuid}')`,
      "loop device /dev/loop5 (now backed by /home/u/disk.img, inode 77 on device 64; this stack's was /x/t9-main.img, inode 1000 on device 64)",
      'file /x/t9-main.img (inode 1001 on device 64, not the inode 1000 on device 64 stack up created)',
    ]);
    other.devices['t9-bad'] = { uuid: '' };
    other.loops[5] = { major: 7, minor: 80, backingFile: '/x/t9-main.img', backingDev: 64, backingIno: 1000 };
    expect(planTeardown(v2(), other).refused.slice(0, 2)).toEqual([
      `dm device t9-bad (its UUID is empty, not this stack's '${uuid}')`,
      "loop device /dev/loop5 (now 7:80, not this stack's 7:5)",
    ]);
    // gone is fine; --keep-files keeps even a matching file
    expect(planTeardown(v2(), { devices: { 't9-bad': 'gone' }, loops: { 5: 'gone' }, files: { '/x/t9-main.img': 'gone' } }).alreadyGone).toEqual([
      't9-bad',
      '/dev/loop5',
      '/x/t9-main.img',
    ]);
    expect(planTeardown(v2(), matching(), { keepFiles: true }).removeFiles).toEqual([]);
    // no device-mapper: the dm devices are neither removed nor called gone
    expect(planTeardown(v2(), { ...matching(), devices: {}, dmUnreachable: 'no dm' }).removeDevices).toEqual([]);
  });

  it('plan: a version-1 state (no identities) touches nothing that still exists', () => {
    const plan = planTeardown(
      {
        ...v2(),
        version: 1,
        devices: [{ name: 't9-bad' }],
        loops: [{ device: '/dev/loop5', number: 5, major: 7, minor: 5, backingFile: '/x/t9-main.img' }],
        files: [{ path: '/x/t9-main.img', created: true }],
      },
      matching(),
    );
    expect(plan.removeDevices.length + plan.detachLoops.length + plan.removeFiles.length).toBe(0);
    expect(plan.refused).toEqual([
      'dm device t9-bad (the state records no identity to check it by)',
      'loop device /dev/loop5 (the state records no identity to check it by)',
      'file /x/t9-main.img (the state records no identity to check it by)',
    ]);
  });

  it('clean: a dm device of the stack’s name without the stack’s UUID is left alone and named', () => {
    const left = { name: 't9', devices: ['t9-remap', 't9-bad'], loops: [], files: [] };
    const plan = planClean(left, { devices: { 't9-remap': { uuid: '' }, 't9-bad': { uuid } }, loops: {}, files: {} });
    expect(plan.devices).toEqual(['t9-bad']);
    expect(plan.refused).toEqual(["dm device t9-remap (no UUID: not one remapsim stack up gives stack 't9')"]);
  });

  it('a version-2 state must carry its identities; version 1 is still read', async () => {
    const noIds = stateFile('noids', { version: 2 as 1 });
    oneLine(
      await runInProcess(['stack', 'down', noIds]),
      2,
      /noids\.json is not a remapsim stack state: field 'files' is missing or malformed|field 'devices' is missing or malformed/,
    );
  });
});

describe.skipIf(skipReason(loopUnavailable(), 'stack down on loop devices'))('stack down on real loop devices and files (no device-mapper here)', () => {
  const sized = (dir: string, n: string): string => {
    const p = path.join(dir, n);
    fs.writeFileSync(p, '');
    fs.truncateSync(p, 1 << 20);
    return p;
  };

  it('a hand-written version-1 state neither detaches a loop device remapsim did not attach nor deletes a file it did not create', async () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'v1-'));
    const theirs = sized(dir, 'theirs.img');
    const loop = attachLoop(theirs);
    try {
      const info = observeLoop(loop.number)!;
      const f = stateFile('handmade', {
        devices: [],
        loops: [{ role: 'main', device: loop.device, number: loop.number, major: info.major, minor: info.minor, backingFile: theirs }],
        files: [{ role: 'main', path: theirs, bytes: 1 << 20, created: true }],
      });
      const r = await runInProcess(['stack', 'down', f]);
      oneLine(
        r,
        2,
        new RegExp(
          `stack 'handmade' is not fully torn down: left alone, no longer what stack up made: loop device ${loop.device} \\(the state records no identity to check it by\\), file ${theirs.replace(/[.]/g, '\\.')} \\(the state records no identity to check it by\\) \\(a version-1 state`,
        ),
      );
      expect(observeLoop(loop.number)?.backingFile).toBe(theirs);
      expect(fs.existsSync(theirs)).toBe(true);
    } finally {
      loop.release();
    }
  });

  it('version 2: what still matches goes; a loop now backed by another file and a file replaced since stay, named', async () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'v2-'));
    const ours = sized(dir, 'v2s-main.img');
    const spare = sized(dir, 'v2s-spare.img');
    const other = sized(dir, 'someone-else.img');
    const mainLoop = attachLoop(ours);
    const otherLoop = attachLoop(other);
    const main = observeLoop(mainLoop.number)!;
    const spareId = fileIdOf(spare)!;
    // the spare file was replaced since stack up (another inode at its path; the old one kept so its inode is not reused)
    fs.renameSync(spare, `${spare}.old`);
    sized(dir, 'v2s-spare.img');
    const f = stateFile('v2s', {
      version: 2,
      devices: [],
      loops: [
        {
          role: 'main',
          device: mainLoop.device,
          number: mainLoop.number,
          major: main.major,
          minor: main.minor,
          backingFile: ours,
          backingDev: main.backingDev,
          backingIno: main.backingIno,
        },
        // stack up's spare loop was detached meanwhile and its number given to someone else's file
        {
          role: 'spare',
          device: otherLoop.device,
          number: otherLoop.number,
          major: 7,
          minor: observeLoop(otherLoop.number)!.minor,
          backingFile: spare,
          backingDev: spareId.dev,
          backingIno: spareId.ino,
        },
      ],
      files: [
        { role: 'main', path: ours, bytes: 1 << 20, created: true, ...fileIdOf(ours)! },
        { role: 'spare', path: spare, bytes: 1 << 20, created: true, ...spareId },
      ],
    });
    try {
      const r = await runInProcess(['stack', 'down', f]);
      oneLine(r, 2, /stack 'v2s' is not fully torn down: left alone, no longer what stack up made: /);
      expect(r.stderr).toContain(`loop device ${otherLoop.device} (now backed by ${other}, inode ${fileIdOf(other)!.ino}`);
      expect(r.stderr).toContain(`file ${spare} (inode ${fileIdOf(spare)!.ino} on device ${spareId.dev}, not the inode ${spareId.ino}`);
      expect(observeLoop(mainLoop.number)).toBeUndefined();
      expect(fs.existsSync(ours)).toBe(false);
      expect(observeLoop(otherLoop.number)?.backingFile).toBe(other);
      expect(fs.existsSync(spare)).toBe(true);
    } finally {
      otherLoop.release();
      if (observeLoop(mainLoop.number)) mainLoop.release();
    }
  });
});
