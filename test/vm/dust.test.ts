/**
 * The shared dm-dust spec (test/faults/dust-spec.ts) against the kernel's
 * dm-dust, reached through our own ioctl path (DmControl) and O_DIRECT I/O on
 * /dev/mapper/NAME. test/faults/dust.test.ts runs the same spec against the
 * userspace model: the two must agree. Runs in the VM: `npm run test:kernel`.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileDevice } from '../../src/block/file-device.js';
import { attachLoop, detachLoop } from '../../src/kernel/loop.js';
import { defineDustSpec, type DustGeometry, type DustHarness, type SpecRunner } from '../faults/dust-spec.js';
import { control, NOT_IN_VM, scratchDir, uniqueName } from './helpers.js';

assert.ok(fs.existsSync('/dev/mapper/control'), NOT_IN_VM);
const dm = control();
const dir = scratchDir();

const runner: SpecRunner = {
  describe,
  it,
  beforeEach,
  afterEach,
  assert: { equal: (a, e, m) => assert.strictEqual(a, e, m), deepEqual: (a, e, m) => assert.deepStrictEqual(a, e, m) },
};

function kernelDust(g: DustGeometry): DustHarness {
  const file = path.join(dir, `${uniqueName('dust')}.img`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, g.blocks * g.blockSize);
  const loop = attachLoop(file);
  const name = uniqueName('dust');
  const sectors = (g.blocks * g.blockSize) / 512;
  let dev: FileDevice | undefined;
  try {
    dm.create(name);
    dm.load(name, [{ start: 0, length: sectors, type: 'dust', params: `${loop.device} 0 ${g.blockSize}` }]);
    dm.resume(name);
    dev = FileDevice.open(`/dev/mapper/${name}`, { direct: true });
  } catch (err) {
    if (dm.exists(name)) dm.remove(name);
    detachLoop(loop.number);
    throw err;
  }
  const io = dev;
  const spb = g.blockSize / 512;
  const params = (lines: Array<{ type: string; params: string }>): string => {
    assert.equal(lines.length, 1);
    assert.equal(lines[0].type, 'dust');
    return lines[0].params;
  };
  return {
    message: (...args) => dm.message(name, 0, args.join(' ')),
    read: (block, count = 1) => {
      const data = new Uint8Array(count * g.blockSize);
      const status = io.read(block * spb, data);
      return { status, data };
    },
    write: (block, data) => io.write(block * spb, data),
    status: () => params(dm.status(name)),
    table: () => params(dm.table(name)),
    close: () => {
      io.close();
      dm.remove(name, { retries: 10 });
      detachLoop(loop.number);
      fs.rmSync(file, { force: true });
    },
  };
}

defineDustSpec(runner, 'kernel dm-dust through DmControl', kernelDust);
