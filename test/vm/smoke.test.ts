/**
 * Proves the kernel lane: inside the VM (npm run test:kernel) device-mapper,
 * the targets we model and loop devices are real and usable with dmsetup.
 * Outside the VM these tests fail on purpose: they are not in `npm test`.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const NOT_IN_VM = 'kernel tests need real device-mapper: run them with `npm run test:kernel`';

/** Runs a tool; a failure throws with the tool's stderr in the message. */
function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

const cleanups: (() => void)[] = [];
after(() => {
  for (const undo of cleanups.reverse()) {
    try {
      undo();
    } catch {
      // best effort: the VM is thrown away anyway
    }
  }
});

/** A loop device over a fresh sparse file of `bytes` in the guest's /tmp. */
function loopDevice(bytes: number): { dev: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapsim-kernel-'));
  const file = path.join(dir, 'backing.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  const dev = sh('losetup', ['--find', '--show', file]).trim();
  cleanups.push(() => sh('losetup', ['--detach', dev]));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dev, file };
}

function createDm(name: string, table: string): string {
  sh('dmsetup', ['create', name, '--table', table]);
  cleanups.push(() => {
    if (fs.existsSync(`/dev/mapper/${name}`)) sh('dmsetup', ['remove', name]);
  });
  return `/dev/mapper/${name}`;
}

function majorMinor(dev: string): string {
  const rdev = fs.statSync(dev).rdev;
  // Linux dev_t: major in bits 8..19, minor in bits 0..7 and 20..31
  return `${(rdev >> 8) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}`;
}

test('/dev/mapper/control is a character device', () => {
  assert.ok(fs.existsSync('/dev/mapper/control'), `/dev/mapper/control is missing; ${NOT_IN_VM}`);
  assert.ok(fs.statSync('/dev/mapper/control').isCharacterDevice());
});

test('dmsetup version reaches the kernel driver', () => {
  const out = sh('dmsetup', ['version']);
  assert.match(out, /^Library version:\s+1\.02\.\d+/m);
  assert.match(out, /^Driver version:\s+4\.\d+\.\d+/m);
});

test('targets linear, error, flakey, delay and dust are registered', () => {
  // dm-dust is built out of tree by scripts/vm/setup.sh and inserted at boot
  assert.ok(fs.existsSync('/sys/module/dm_dust'), 'dm_dust is not loaded (did setup.sh build dm-dust.ko?)');
  const names = new Set(
    sh('dmsetup', ['targets'])
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[0])
      .filter((n): n is string => Boolean(n)),
  );
  for (const t of ['linear', 'error', 'flakey', 'delay', 'dust']) {
    assert.ok(names.has(t), `target ${t} missing; registered: ${[...names].join(', ')}`);
  }
});

test('dm-linear over a loop device: write, read back, mapping offset, remove', () => {
  const { dev: loop, file } = loopDevice(8 << 20);
  const name = `remapsim-smoke-linear-${process.pid}`;
  const offsetSectors = 2048; // the linear device starts 1 MiB into the loop device
  const dm = createDm(name, `0 8192 linear ${loop} ${offsetSectors}`);

  assert.ok(fs.statSync(dm).isBlockDevice(), `${dm} is not a block device (DM_DISABLE_UDEV=1 unset?)`);
  assert.equal(sh('blockdev', ['--getsz', dm]).trim(), '8192');
  assert.equal(sh('dmsetup', ['table', name]).trim(), `0 8192 linear ${majorMinor(loop)} ${offsetSectors}`);

  const data = randomBytes(64 << 10);
  const at = 4096;
  const fd = fs.openSync(dm, 'r+');
  try {
    assert.equal(fs.writeSync(fd, data, 0, data.length, at), data.length);
    fs.fsyncSync(fd);
    const back = Buffer.alloc(data.length);
    assert.equal(fs.readSync(fd, back, 0, back.length, at), back.length);
    assert.ok(back.equals(data), 'read back through dm-linear differs from what was written');
  } finally {
    fs.closeSync(fd);
  }
  // The bytes landed in the backing file at the table's offset, nowhere else.
  const raw = fs.readFileSync(file);
  assert.ok(raw.subarray(offsetSectors * 512 + at, offsetSectors * 512 + at + data.length).equals(data));
  assert.ok(
    raw.subarray(at, at + data.length).every((b) => b === 0),
    'data also appeared unmapped',
  );

  sh('dmsetup', ['remove', name]);
  assert.ok(!fs.existsSync(dm), `${dm} still exists after dmsetup remove`);
  assert.doesNotMatch(sh('dmsetup', ['ls']), new RegExp(name));
});

test('dm-dust fails reads of a block only after it is marked bad and enabled', () => {
  const { dev: loop } = loopDevice(4 << 20);
  const name = `remapsim-smoke-dust-${process.pid}`;
  const dm = createDm(name, `0 8192 dust ${loop} 0 4096`);
  const readBlock = (block: number): void => {
    sh('dd', [`if=${dm}`, 'of=/dev/null', 'bs=4096', `skip=${block}`, 'count=1', 'iflag=direct', 'status=none']);
  };

  sh('dmsetup', ['message', name, '0', 'addbadblock', '5']);
  readBlock(5); // bypass mode: the bad list is not applied yet
  sh('dmsetup', ['message', name, '0', 'enable']);
  assert.throws(() => readBlock(5), /Input\/output error/);
  readBlock(4);
  readBlock(6);
  assert.match(sh('dmsetup', ['message', name, '0', 'countbadblocks']), /1 badblock\(s\) found/);
  sh('dmsetup', ['remove', name]);
});

test('the real dm-remap-v4 module is loaded: `remapsim dm targets` lists dm-remap-v4 v4.0.0', async (t) => {
  const note = (() => {
    try {
      return fs.readFileSync('/proc/modules', 'utf8');
    } catch {
      return '';
    }
  })();
  if (!/^dm_remap /m.test(note)) {
    t.skip('dm_remap is not loaded in this VM: scripts/vm/setup.sh builds it from ../shared/third_party/dm-remap-v4 or $REMAPSIM_DM_REMAP_SRC');
    return;
  }
  const { runInProcess } = await import('../cli/in-process.js');
  const r = await runInProcess(['dm', 'targets']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^dm-remap-v4\s+v4\.0\.0$/m);
  assert.match(r.stdout, /^dust\s+v1\.0\.0$/m);
});
