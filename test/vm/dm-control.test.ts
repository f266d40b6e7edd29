/**
 * DmControl (our ioctl path through koffi) against the real kernel, checked
 * against what dmsetup (libdevmapper) reports for the same devices: linear,
 * error, dust, flakey and delay; create, load, suspend/resume, message,
 * remove; waiting for events; replies larger than the first buffer; a busy
 * device. Runs in the VM: `npm run test:kernel`.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { DmControl, DmError, type IoctlBufferFn } from '../../src/kernel/dm-control.js';
import { decodeDmIoctl, DM_BUFFER_FULL_FLAG, type DmTargetSpec } from '../../src/kernel/dm-ioctl-codec.js';
import { libc } from '../../src/sys/libc.js';
import { dmsetupLine } from '../../src/cli/commands/dm.js';
import { control, loopDevice, NOT_IN_VM, parseDmsetupInfo, removeLater, sh, shTry, uniqueName } from './helpers.js';

assert.ok(fs.existsSync('/dev/mapper/control'), NOT_IN_VM);
const dm = control();

function dmsetupLines(cmd: 'table' | 'status', name: string, extra: string[] = []): string[] {
  return sh('dmsetup', [cmd, ...extra, name])
    .split('\n')
    .filter((l, i, a) => !(l === '' && i === a.length - 1));
}

function ours(kind: 'table' | 'status', name: string, inactive = false): string[] {
  return (kind === 'table' ? dm.table(name, { inactive }) : dm.status(name, { inactive })).map(dmsetupLine);
}

/** create + load + resume through our path; removed after the tests. */
function make(name: string, table: DmTargetSpec[], opts: { readOnly?: boolean } = {}): void {
  dm.create(name);
  removeLater(dm, name);
  dm.load(name, table, opts);
  dm.resume(name);
}

/** Our info of `name` agrees with `dmsetup info name` field by field. */
function assertInfoMatches(name: string): void {
  const i = dm.info(name);
  const d = parseDmsetupInfo(sh('dmsetup', ['info', name]));
  assert.equal(d.Name, i.name);
  assert.equal(d.State, `${i.suspended ? 'SUSPENDED' : 'ACTIVE'}${i.readOnly ? ' (READ-ONLY)' : ''}${i.deferredRemove ? ' (DEFERRED REMOVE)' : ''}`);
  const tables = !i.activeTable && !i.inactiveTable ? 'None' : [i.activeTable ? 'LIVE' : '', i.inactiveTable ? 'INACTIVE' : ''].filter(Boolean).join(' & ');
  assert.equal(d['Tables present'], tables);
  assert.equal(d['Open count'], String(i.openCount));
  assert.equal(d['Event number'], String(i.eventNr));
  assert.equal(d['Major, minor'], `${i.major}, ${i.minor}`);
  assert.equal(d['Number of targets'], String(i.targetCount));
}

const MiB = 1 << 20;

describe('targets through DmControl, checked against dmsetup', () => {
  const loop = loopDevice(16 * MiB);

  test('version and target list agree with dmsetup', () => {
    const v = dm.version();
    assert.match(sh('dmsetup', ['version']), new RegExp(`^Driver version:\\s+${v.join('\\.')}$`, 'm'));
    const listed = sh('dmsetup', ['targets'])
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    const mine = dm.listTargets().map((t) => [t.name, `v${t.version.join('.')}`]);
    assert.deepEqual(mine, listed);
    for (const t of ['linear', 'error', 'dust', 'flakey', 'delay']) assert.ok(dm.targetVersion(t), `target ${t} missing`);
    assert.equal(dm.targetVersion('no-such-target'), undefined);
  });

  test('linear: create, table/status/info/deps as dmsetup sees them, suspend, inactive load, clear, resume, remove', () => {
    const name = uniqueName('lin');
    make(name, [{ start: 0, length: 8192, type: 'linear', params: `${loop.device} 2048` }]);
    assert.ok(fs.statSync(`/dev/mapper/${name}`).isBlockDevice(), 'no /dev/mapper node');
    assert.deepEqual(ours('table', name), dmsetupLines('table', name));
    assert.deepEqual(ours('table', name), [`0 8192 linear ${loop.majorMinor} 2048`]);
    assert.deepEqual(ours('status', name), dmsetupLines('status', name));
    assert.deepEqual(ours('status', name), ['0 8192 linear ']);
    assertInfoMatches(name);
    const [maj, min] = loop.majorMinor.split(':').map(Number);
    assert.deepEqual(dm.deps(name), [{ major: maj, minor: min }]);
    assert.equal(sh('dmsetup', ['deps', name]).trim(), `1 dependencies\t: (${maj}, ${min})`);

    const s = dm.suspend(name, { noflush: true, nolockfs: true });
    assert.equal(s.suspended, true);
    assertInfoMatches(name);

    const next: DmTargetSpec[] = [
      { start: 0, length: 4096, type: 'linear', params: `${loop.device} 0` },
      { start: 4096, length: 4096, type: 'error', params: '' },
    ];
    const loaded = dm.load(name, next);
    assert.equal(loaded.inactiveTable, true);
    assertInfoMatches(name);
    assert.deepEqual(ours('table', name, true), dmsetupLines('table', name, ['--inactive']));
    assert.deepEqual(ours('table', name, true), [`0 4096 linear ${loop.majorMinor} 0`, '4096 4096 error ']);
    const cleared = dm.clear(name);
    assert.equal(cleared.inactiveTable, false);
    assert.deepEqual(dm.table(name, { inactive: true }), []);
    dm.load(name, next);
    const resumed = dm.resume(name);
    assert.equal(resumed.suspended, false);
    assert.equal(resumed.inactiveTable, false);
    assert.deepEqual(ours('table', name), dmsetupLines('table', name));
    assert.equal(dm.info(name).targetCount, 2);
    assertInfoMatches(name);

    assert.equal(dm.remove(name), 'removed');
    assert.equal(dm.exists(name), false);
    assert.ok(!fs.existsSync(`/dev/mapper/${name}`), 'the /dev/mapper node outlived the device');
    assert.equal(shTry('dmsetup', ['info', name]).code, 1);
  });

  test('error: reads fail with EIO; read-only load shows as READ-ONLY', () => {
    const name = uniqueName('err');
    make(name, [{ start: 0, length: 64, type: 'error', params: '' }], { readOnly: true });
    assert.deepEqual(ours('table', name), dmsetupLines('table', name));
    assert.equal(dm.info(name).readOnly, true);
    assertInfoMatches(name);
    const r = shTry('dd', [`if=/dev/mapper/${name}`, 'of=/dev/null', 'bs=512', 'count=1', 'iflag=direct', 'status=none']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Input\/output error/);
  });

  test('dust: our messages and dmsetup message see the same list; replies come back', () => {
    const name = uniqueName('dust');
    make(name, [{ start: 0, length: 8192, type: 'dust', params: `${loop.device} 0 512` }]);
    assert.deepEqual(ours('table', name), dmsetupLines('table', name));
    assert.deepEqual(ours('status', name), [`0 8192 dust ${loop.majorMinor} bypass verbose`]);
    assert.equal(dm.message(name, 0, 'addbadblock 17'), '');
    sh('dmsetup', ['message', name, '0', 'addbadblock', '5']);
    assert.equal(dm.message(name, 0, 'listbadblocks'), '5\n17\n');
    assert.equal(sh('dmsetup', ['message', name, '0', 'countbadblocks']), `${dm.message(name, 0, 'countbadblocks')}\n`);
    assert.equal(dm.message(name, 0, 'countbadblocks'), 'countbadblocks: 2 badblock(s) found');
    dm.message(name, 0, 'enable');
    assert.deepEqual(ours('status', name), dmsetupLines('status', name));
    assert.deepEqual(ours('status', name), [`0 8192 dust ${loop.majorMinor} fail_read_on_bad_block verbose`]);
    assert.throws(
      () => dm.message(name, 0, 'addbadblock 17'),
      (e: unknown) => e instanceof DmError && e.errno === 22,
    );
    assertInfoMatches(name);
  });

  test('flakey and delay: tables with features, status lines, no message handler', () => {
    const fl = uniqueName('flakey');
    make(fl, [{ start: 0, length: 8192, type: 'flakey', params: `${loop.device} 0 1 1 1 drop_writes` }]);
    assert.deepEqual(ours('table', fl), dmsetupLines('table', fl));
    assert.deepEqual(ours('status', fl), dmsetupLines('status', fl));
    assert.match(ours('table', fl)[0], new RegExp(`^0 8192 flakey ${loop.majorMinor} 0 1 1 1 drop_writes ?$`));
    const dl = uniqueName('delay');
    make(dl, [{ start: 0, length: 8192, type: 'delay', params: `${loop.device} 0 20` }]);
    assert.deepEqual(ours('table', dl), dmsetupLines('table', dl));
    assert.deepEqual(ours('status', dl), dmsetupLines('status', dl));
    assert.deepEqual(ours('table', dl), [`0 8192 delay ${loop.majorMinor} 0 20`]);
    for (const n of [fl, dl]) {
      assert.throws(
        () => dm.message(n, 0, 'hello'),
        (e: unknown) => e instanceof DmError && e.errno === 22,
      );
      assert.notEqual(shTry('dmsetup', ['message', n, '0', 'hello']).code, 0);
      assertInfoMatches(n);
    }
  });

  test('a table the kernel refuses: unknown target type, bad arguments', () => {
    const name = uniqueName('refused');
    dm.create(name);
    removeLater(dm, name);
    assert.throws(() => dm.load(name, [{ start: 0, length: 8, type: 'no-such-tgt', params: '' }]), /target type 'no-such-tgt' is not loaded/);
    assert.throws(() => dm.load(name, [{ start: 0, length: 8, type: 'dust', params: `${loop.device} 0 1000` }]), /refused the table .* \(EINVAL\)/);
    assert.equal(dm.info(name).inactiveTable, false);
    assert.throws(
      () => dm.info(uniqueName('absent')),
      (e: unknown) => e instanceof DmError && e.errno === 6 && /does not exist/.test(e.message),
    );
  });

  test('listDevices agrees with dmsetup ls', () => {
    const mine = dm
      .listDevices()
      .map((d) => `${d.name}\t(${d.major}:${d.minor})`)
      .join('\n');
    assert.equal(`${mine}\n`, sh('dmsetup', ['ls']));
  });
});

describe('waiting for events', () => {
  test('waitEvent returns at once for an old event number and blocks until the next event', async () => {
    const loop = loopDevice(MiB);
    const name = uniqueName('wait');
    make(name, [{ start: 0, length: 2048, type: 'linear', params: `${loop.device} 0` }]);
    const before = dm.info(name).eventNr;

    // A worker thread blocks in DM_DEV_WAIT; a rename (which raises a table event) wakes it.
    const moduleUrl = new URL('../../src/kernel/dm-control.js', import.meta.url).href;
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.moduleUrl).then(({ DmControl }) => {
        const c = DmControl.open({ nodes: null });
        parentPort.postMessage({ ready: true });
        const r = c.waitEvent(workerData.name, workerData.eventNr);
        parentPort.postMessage({ eventNr: r.info.eventNr, name: r.info.name, targets: r.targets.length });
        c.close();
      }).catch((e) => parentPort.postMessage({ error: String(e) }));`;
    const worker = new Worker(code, { eval: true, workerData: { moduleUrl, name, eventNr: before } });
    const messages: Array<Record<string, unknown>> = [];
    const waitFor = (pred: (m: Record<string, unknown>) => boolean, ms: number): Promise<Record<string, unknown> | undefined> =>
      new Promise((resolve) => {
        const hit = messages.find(pred);
        if (hit) return resolve(hit);
        const timer = setTimeout(() => {
          worker.off('message', on);
          resolve(undefined);
        }, ms);
        const on = (m: Record<string, unknown>): void => {
          if (!pred(m)) return;
          clearTimeout(timer);
          worker.off('message', on);
          resolve(m);
        };
        worker.on('message', on);
      });
    worker.on('message', (m: Record<string, unknown>) => messages.push(m));
    try {
      assert.ok(await waitFor((m) => 'ready' in m || 'error' in m, 60_000), 'worker did not start');
      assert.equal(messages.find((m) => 'error' in m)?.error, undefined);
      // Still blocked after a while: nothing has happened to the device.
      assert.equal(await waitFor((m) => 'eventNr' in m, 1500), undefined, 'waitEvent returned without an event');
      const renamed = `${name}-r`;
      dm.rename(name, renamed);
      removeLater(dm, renamed);
      const got = await waitFor((m) => 'eventNr' in m || 'error' in m, 30_000);
      assert.ok(got, 'waitEvent did not return after the rename');
      assert.equal(got.error, undefined);
      assert.equal(got.eventNr, before + 1);
      // (the reply names the device as it was found, before the rename)
      assert.equal(got.name, name);
      assert.equal(got.targets, 1);
      assert.equal(dm.info(renamed).eventNr, before + 1);
      assert.equal(parseDmsetupInfo(sh('dmsetup', ['info', renamed]))['Event number'], String(before + 1));
      // An event number that is already past returns at once.
      const again = dm.waitEvent(renamed, before);
      assert.equal(again.info.eventNr, before + 1);
      dm.remove(renamed);
    } finally {
      // A worker blocked in the ioctl cannot be terminated: wake it with an event first.
      if (!messages.some((m) => 'eventNr' in m || 'error' in m)) {
        for (const n of [name, `${name}-r`]) if (dm.exists(n)) dm.rename(n, `${name}-w`);
        removeLater(dm, `${name}-w`);
        await waitFor((m) => 'eventNr' in m, 10_000);
      }
      await worker.terminate();
    }
  });
});

describe('replies larger than the first buffer (DM_BUFFER_FULL_FLAG)', () => {
  /** The real ioctl, with a count of the replies the kernel marked BUFFER_FULL. */
  function countingIoctl(): { ioctl: IoctlBufferFn; full: () => number } {
    let full = 0;
    return {
      ioctl: (fd, req, buf) => {
        const rc = libc().ioctlBuffer(fd, req, buf);
        if (decodeDmIoctl(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)).flags & DM_BUFFER_FULL_FLAG) full++;
        return rc;
      },
      full: () => full,
    };
  }

  test('listDevices with 140 long-named devices (more than 16 KiB of names)', () => {
    const counting = countingIoctl();
    const c = DmControl.open({ ioctl: counting.ioctl });
    const prefix = `rs-many-${process.pid}-`.padEnd(110, 'x');
    const names: string[] = [];
    try {
      for (let i = 0; i < 140; i++) {
        const n = `${prefix}${String(i).padStart(3, '0')}`;
        c.create(n);
        names.push(n);
      }
      const listed = c.listDevices().map((d) => d.name);
      for (const n of names) assert.ok(listed.includes(n), `${n} missing from the list`);
      assert.ok(counting.full() >= 1, 'the kernel never said BUFFER_FULL: the test does not exercise the retry');
      const dmsetupNames = sh('dmsetup', ['ls'])
        .trim()
        .split('\n')
        .map((l) => l.split('\t')[0]);
      assert.deepEqual(listed, dmsetupNames);
    } finally {
      for (const n of names) c.remove(n);
      c.close();
    }
  });

  test('a 700-target table: table and status replies, and a message reply, grow the buffer', () => {
    const loop = loopDevice(4 * MiB);
    const counting = countingIoctl();
    const c = DmControl.open({ ioctl: counting.ioctl, initialBufferSize: 16 * 1024 });
    const name = uniqueName('wide');
    const table: DmTargetSpec[] = Array.from({ length: 700 }, (_, i) => ({ start: i * 8, length: 8, type: 'linear', params: `${loop.device} ${i * 8}` }));
    try {
      c.create(name);
      removeLater(dm, name);
      c.load(name, table);
      c.resume(name);
      const before = counting.full();
      const t = c.table(name).map(dmsetupLine);
      assert.equal(t.length, 700);
      assert.ok(counting.full() > before, 'no BUFFER_FULL for the table reply');
      assert.deepEqual(t, dmsetupLines('table', name));
      const st = c.status(name);
      assert.equal(st.length, 700);
      c.remove(name);
    } finally {
      c.close();
    }

    // A message reply (dust listbadblocks) that does not fit a small first buffer.
    const small = countingIoctl();
    const c2 = DmControl.open({ ioctl: small.ioctl, initialBufferSize: 1024 });
    const dust = uniqueName('dustlist');
    try {
      c2.create(dust);
      removeLater(dm, dust);
      c2.load(dust, [{ start: 0, length: 8192, type: 'dust', params: `${loop.device} 0 512` }]);
      c2.resume(dust);
      const blocks = Array.from({ length: 300 }, (_, i) => 1000 + i * 3);
      for (const b of blocks) c2.message(dust, 0, `addbadblock ${b}`);
      const before = small.full();
      const list = c2.message(dust, 0, 'listbadblocks');
      assert.ok(small.full() > before, 'no BUFFER_FULL for the message reply');
      assert.equal(list, blocks.map((b) => `${b}\n`).join(''));
      c2.remove(dust);
    } finally {
      c2.close();
    }
  });
});

describe('a device in use', () => {
  test('remove fails with EBUSY while it is open ("is busy"), deferred remove waits for the last close', () => {
    const loop = loopDevice(MiB);
    const name = uniqueName('busy');
    make(name, [{ start: 0, length: 2048, type: 'linear', params: `${loop.device} 0` }]);
    const fd = fs.openSync(`/dev/mapper/${name}`, 'r');
    let closed = false;
    try {
      assert.equal(dm.info(name).openCount, 1);
      assert.throws(
        () => dm.remove(name, { retries: 2, retryDelayMs: 20 }),
        (e: unknown) => e instanceof DmError && e.errno === 16 && e.message === `device '${name}' is busy`,
      );
      assert.match(shTry('dmsetup', ['remove', name]).stderr, /Device or resource busy/);
      assert.equal(dm.remove(name, { deferred: true }), 'deferred');
      const info = dm.info(name);
      assert.equal(info.deferredRemove, true);
      assertInfoMatches(name);
      assert.match(sh('dmsetup', ['info', name]), /^State:\s+ACTIVE \(DEFERRED REMOVE\)$/m);
      fs.closeSync(fd);
      closed = true;
      assert.equal(dm.exists(name), false, 'the deferred remove did not happen on last close');
    } finally {
      if (!closed) fs.closeSync(fd);
    }
  });
});
