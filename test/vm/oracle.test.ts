/**
 * The verification oracle against real kernel targets: it must catch what
 * dm-flakey's drop_writes does (writes acknowledged and thrown away) and find
 * nothing wrong with a plain dm-linear. I/O is O_DIRECT so the page cache
 * cannot hide what the device did. Runs in the VM: `npm run test:kernel`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { FileDevice } from '../../src/block/file-device.js';
import { Oracle, type OracleReport } from '../../src/workload/oracle.js';
import { VerifyPattern } from '../../src/workload/verify-pattern.js';
import { control, loopDevice, NOT_IN_VM, removeLater, uniqueName } from './helpers.js';

assert.ok(fs.existsSync('/dev/mapper/control'), NOT_IN_VM);
const dm = control();

const UNIT = 4096;
const UNITS = 256; // 1 MiB
const RUN = 8;

/** Writes every unit once (in runs of 8), rewrites every third, then reads everything back. */
function verifiedRun(devicePath: string, seed: number): OracleReport {
  const dev = FileDevice.open(devicePath, { direct: true });
  try {
    const oracle = new Oracle({ pattern: new VerifyPattern({ unitSize: UNIT, runId: 0x5eed0000 + seed, seed }), units: UNITS });
    const buf = new Uint8Array(RUN * UNIT);
    for (let u = 0; u < UNITS; u += RUN) {
      oracle.prepareWrite(u, buf);
      oracle.completeWrite(u, RUN, dev.write(oracle.sectorOf(u), buf));
    }
    const one = new Uint8Array(UNIT);
    for (let u = 0; u < UNITS; u += 3) {
      oracle.prepareWrite(u, one);
      oracle.completeWrite(u, 1, dev.write(oracle.sectorOf(u), one));
    }
    assert.equal(dev.flush(), 0);
    oracle.finalPass(dev);
    return oracle.report();
  } finally {
    dev.close();
  }
}

test('dm-linear: every acknowledged write reads back, the oracle reports no findings', () => {
  const loop = loopDevice(2 << 20);
  const name = uniqueName('oracle-lin');
  dm.create(name);
  removeLater(dm, name);
  dm.load(name, [{ start: 0, length: (UNITS * UNIT) / 512, type: 'linear', params: `${loop.device} 0` }]);
  dm.resume(name);
  const r = verifiedRun(`/dev/mapper/${name}`, 1);
  assert.equal(r.writes.failed, 0);
  assert.equal(r.writes.acknowledged, UNITS + Math.ceil(UNITS / 3));
  assert.equal(r.findings, 0, `findings on a clean dm-linear: ${JSON.stringify(r.reads)}`);
  assert.equal(r.reads.ok, UNITS);
});

test('dm-flakey drop_writes (always down): the oracle reports the dropped writes as lost (must-fail case)', () => {
  const loop = loopDevice(2 << 20);
  const name = uniqueName('oracle-flakey');
  dm.create(name);
  removeLater(dm, name);
  // up 0 s, down 3600 s: down from the start; writes are acknowledged and dropped, reads pass through
  dm.load(name, [{ start: 0, length: (UNITS * UNIT) / 512, type: 'flakey', params: `${loop.device} 0 0 3600 1 drop_writes` }]);
  dm.resume(name);
  const r = verifiedRun(`/dev/mapper/${name}`, 2);
  assert.equal(r.writes.failed, 0, 'drop_writes acknowledges every write');
  assert.ok(r.findings > 0, `the oracle missed dm-flakey's dropped writes: ${JSON.stringify(r)}`);
  assert.equal(r.findings, UNITS);
  assert.equal(r.reads.lost, UNITS, `every unit should read back as zeroes: ${JSON.stringify(r.reads)}`);
  assert.equal(r.reads.ok, 0);
});
