import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DM_NOT_AVAILABLE,
  DmControl,
  DmDeviceTarget,
  DmError,
  DmUnavailableError,
  devMapperNodes,
  dmMiscMinor,
  type IoctlBufferFn,
} from '../../src/kernel/dm-control.js';
import {
  align8,
  DM_BUFFER_FULL_FLAG,
  DM_DATA_OUT_FLAG,
  DM_DEFERRED_REMOVE,
  DM_INACTIVE_PRESENT_FLAG,
  DM_NOFLUSH_FLAG,
  DM_QUERY_INACTIVE_TABLE_FLAG,
  DM_READONLY_FLAG,
  DM_SKIP_LOCKFS_FLAG,
  DM_STATUS_TABLE_FLAG,
  DM_SUSPEND_FLAG,
  DM_UUID_FLAG,
  DmCmd,
  decodeDmIoctl,
  decodeTableLoad,
  newEncodeDev,
} from '../../src/kernel/dm-ioctl-codec.js';
import { nodeSys, S_IFBLK } from '../../src/kernel/mknod.js';
import { glibcMajorMinor } from '../../src/sys/dev-t.js';
import { MessageError } from '../../src/control/target.js';
import { SysError } from '../../src/sys/libc.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-dm-');
afterAll(() => tmp.cleanup());

const isRoot = process.getuid?.() === 0;
/** Whether the kernel really has device-mapper: a leftover /dev/mapper/control node (dmsetup makes one) is not enough. */
function kernelHasDm(): boolean {
  try {
    fs.closeSync(fs.openSync('/dev/mapper/control', fs.constants.O_RDWR));
    return true;
  } catch {
    return dmMiscMinor(fs.readFileSync('/proc/misc', 'utf8')) !== undefined;
  }
}
const hostHasDm = kernelHasDm();

describe('on this host', () => {
  it('opening the control node says device-mapper is not available', (ctx) => {
    if (hostHasDm) {
      console.log('skipping: this kernel has device-mapper');
      ctx.skip();
    }
    expect(() => DmControl.open()).toThrow(DmUnavailableError);
    expect(() => DmControl.open()).toThrow(DM_NOT_AVAILABLE);
    expect(DM_NOT_AVAILABLE).toBe('device-mapper is not available in this kernel');
    expect(() => DmControl.open()).toThrow(
      /^device-mapper is not available in this kernel \((no \/dev\/mapper\/control|\/dev\/mapper\/control: ENODEV \(no such device\))\)$/,
    );
  });

  it('makes the control node from /proc/misc when it is missing, then reports ENODEV as not available', (ctx) => {
    if (hostHasDm || !isRoot) {
      console.log(`skipping: ${hostHasDm ? 'this kernel has device-mapper' : 'mknod needs root'}`);
      ctx.skip();
    }
    const misc = path.join(tmp.dir, 'misc');
    fs.writeFileSync(misc, ' 237 loop-control\n236 device-mapper\n');
    const control = path.join(tmp.dir, 'mapper', 'control');
    let err: unknown;
    try {
      DmControl.open({ controlPath: control, procMiscPath: misc }).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DmUnavailableError);
    expect((err as DmError).errno).toBe(19); // ENODEV: the misc minor has no driver
    const st = fs.statSync(control);
    expect(st.isCharacterDevice()).toBe(true);
    expect(glibcMajorMinor(st.rdev)).toEqual({ major: 10, minor: 236 });
  });

  it('a /proc/misc without device-mapper is not available either', () => {
    const misc = path.join(tmp.dir, 'misc-none');
    fs.writeFileSync(misc, '237 loop-control\n');
    expect(() => DmControl.open({ controlPath: path.join(tmp.dir, 'nothing', 'control'), procMiscPath: misc })).toThrow(DM_NOT_AVAILABLE);
  });
});

// ---------------------------------------------------------------- a kernel stand-in
// The host has no device-mapper, so these tests hand DmControl an ioctl that
// answers the way drivers/md/dm-ioctl.c does, building replies byte by byte.

interface Call {
  cmd: number;
  size: number;
  flags: number;
  name: string;
  eventNr: number;
  /** The live buffer the reply goes into. */
  buf: Buffer;
  /** The request as sent (the kernel keeps its size as input_param_size). */
  input: Buffer;
}

type Handler = (c: Call) => void;

function fakeKernel(handler: Handler): { ioctl: IoctlBufferFn; calls: Call[] } {
  const calls: Call[] = [];
  const ioctl: IoctlBufferFn = (fd, request, u8) => {
    expect(fd).toBe(99);
    expect(request >>> 8).toBe(0xc138fd);
    const buf = Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
    const h = decodeDmIoctl(buf);
    expect(h.dataSize).toBe(buf.length);
    const call: Call = { cmd: request & 0xff, size: buf.length, flags: h.flags, name: h.name, eventNr: h.eventNr, buf, input: Buffer.from(buf) };
    calls.push({ ...call, buf: call.input });
    // check_version() writes the kernel's version back; ctl_ioctl() resets data_size before the command.
    buf.writeUInt32LE(4, 0);
    buf.writeUInt32LE(50, 4);
    buf.writeUInt32LE(0, 8);
    buf.writeUInt32LE(305, 12);
    handler(call);
    return 0;
  };
  return { ioctl, calls };
}

function fail(errno: number): never {
  throw new SysError('ioctl', errno);
}

/** __dev_status(): the header fields of a device. */
function devStatus(buf: Buffer, o: { minor: number; flags?: number; targets?: number; openCount?: number; eventNr?: number; uuid?: string }): void {
  buf.writeUInt32LE(o.targets ?? 0, 20);
  buf.writeInt32LE(o.openCount ?? 0, 24);
  buf.writeUInt32LE((buf.readUInt32LE(28) & ~(DM_SUSPEND_FLAG | DM_READONLY_FLAG | (1 << 5))) | (o.flags ?? 0), 28);
  buf.writeUInt32LE(o.eventNr ?? 0, 32);
  buf.writeBigUInt64LE(BigInt(newEncodeDev(253, o.minor)), 40);
  buf.fill(0, 176, 305);
  if (o.uuid) buf.write(o.uuid, 176, 'latin1');
}

/** get_result_buffer(): data_start = 312, and the room after it. */
function resultBuffer(buf: Buffer): number {
  buf.writeUInt32LE(312, 16);
  return buf.length - 312;
}

/** list_devices() output for names (with event_nr/flags trailer, uuid when asked). */
function writeNameList(buf: Buffer, devices: Array<{ name: string; minor: number; uuid?: string }>, withUuid: boolean): void {
  let needed = 0;
  for (const d of devices) needed += align8(12 + d.name.length + 1) + 8 + (withUuid && d.uuid ? align8(d.uuid.length + 1) : 0);
  const len = resultBuffer(buf);
  if (len < needed) {
    buf.writeUInt32LE(buf.readUInt32LE(28) | DM_BUFFER_FULL_FLAG, 28);
    return;
  }
  buf.writeUInt32LE(312 + needed, 12);
  let at = 312;
  let prev = -1;
  for (const d of devices) {
    if (prev >= 0) buf.writeUInt32LE(at - prev, prev + 8);
    buf.writeBigUInt64LE(BigInt(newEncodeDev(253, d.minor)), at);
    buf.writeUInt32LE(0, at + 8);
    buf.write(`${d.name}\0`, at + 12, 'latin1');
    prev = at;
    const t = align8(at + 12 + d.name.length + 1);
    buf.writeUInt32LE(d.minor * 10, t);
    let flags = 0;
    let end = t + 8;
    if (withUuid) {
      if (d.uuid) {
        flags = 1;
        buf.write(`${d.uuid}\0`, end, 'latin1');
        end = align8(end + d.uuid.length + 1);
      } else flags = 2;
    }
    buf.writeUInt32LE(flags, t + 4);
    at = end;
  }
}

/** retrieve_status(): specs with next counted from the first one. */
function writeSpecs(buf: Buffer, specs: Array<{ start: number; length: number; type: string; params: string }>): void {
  const len = resultBuffer(buf);
  let at = 312;
  let used = 0;
  for (const s of specs) {
    if (312 + len - at <= 40 + s.params.length + 1) {
      buf.writeUInt32LE(buf.readUInt32LE(28) | DM_BUFFER_FULL_FLAG, 28);
      break;
    }
    buf.writeBigUInt64LE(BigInt(s.start), at);
    buf.writeBigUInt64LE(BigInt(s.length), at + 8);
    buf.writeInt32LE(0, at + 16);
    buf.fill(0, at + 24, at + 40);
    buf.write(s.type, at + 24, 'latin1');
    buf.write(`${s.params}\0`, at + 40, 'latin1');
    used = at + 40 + s.params.length + 1;
    const spec = at;
    at = align8(used);
    buf.writeUInt32LE(at - 312, spec + 20);
  }
  if (used) buf.writeUInt32LE(used, 12);
  buf.writeUInt32LE(specs.length, 20);
}

function open(handler: Handler, extra: { nodesDir?: string } = {}) {
  const k = fakeKernel(handler);
  const sleeps: number[] = [];
  const dm = DmControl.open({
    fd: 99,
    ioctl: k.ioctl,
    nodes: extra.nodesDir ? devMapperNodes(extra.nodesDir) : null,
    sleep: (ms) => sleeps.push(ms),
  });
  return { dm, calls: k.calls, sleeps };
}

describe('DmControl against replies in the kernel layout', () => {
  it('version() returns what check_version() wrote', () => {
    const { dm, calls } = open(() => {});
    expect(dm.version()).toEqual([4, 50, 0]);
    expect(calls[0].cmd).toBe(DmCmd.VERSION);
    expect(calls[0].buf.readUInt32LE(0)).toBe(4);
  });

  it('listDevices() asks for uuids and doubles the buffer on DM_BUFFER_FULL_FLAG', () => {
    const devices = Array.from({ length: 400 }, (_, i) => ({ name: `remap-device-with-a-long-name-${i}`, minor: i, uuid: i % 2 ? `UUID-${i}` : undefined }));
    const { dm, calls } = open((c) => {
      expect(c.cmd).toBe(DmCmd.LIST_DEVICES);
      writeNameList(c.buf, devices, (c.flags & DM_UUID_FLAG) !== 0);
    });
    const list = dm.listDevices();
    expect(calls.map((c) => c.size)).toEqual([16384, 32768]);
    expect(calls[0].flags & DM_UUID_FLAG).toBeTruthy();
    expect(list).toHaveLength(400);
    expect(list[0]).toEqual({ name: 'remap-device-with-a-long-name-0', major: 253, minor: 0, eventNr: 0, uuid: '' });
    expect(list[399]).toEqual({ name: 'remap-device-with-a-long-name-399', major: 253, minor: 399, eventNr: 3990, uuid: 'UUID-399' });
  });

  it('gives up on a reply that never fits, with a clear line', () => {
    const k = fakeKernel((c) => c.buf.writeUInt32LE(DM_BUFFER_FULL_FLAG, 28));
    const dm = DmControl.open({ fd: 99, ioctl: k.ioctl, nodes: null, maxBufferSize: 65536 });
    expect(() => dm.listTargets()).toThrow('DM_LIST_VERSIONS: the reply does not fit in 65536 bytes');
    expect(k.calls.map((c) => c.size)).toEqual([16384, 32768, 65536]);
  });

  it('create() sends name, uuid and a persistent minor, then makes /dev/mapper/NAME', () => {
    const nodes = path.join(tmp.dir, 'dev-mapper');
    const { dm, calls } = open(
      (c) => {
        expect(c.cmd).toBe(DmCmd.DEV_CREATE);
        devStatus(c.buf, { minor: 4, flags: DM_SUSPEND_FLAG, uuid: 'REMAP-vol0' });
      },
      isRoot ? { nodesDir: nodes } : {},
    );
    const info = dm.create('vol0', { uuid: 'REMAP-vol0', minor: 4 });
    expect(calls[0].name).toBe('vol0');
    expect(calls[0].buf.toString('latin1', 176, 186)).toBe('REMAP-vol0');
    expect(calls[0].flags).toBe(1 << 3);
    expect(calls[0].buf.readBigUInt64LE(40)).toBe(4n);
    expect(info).toMatchObject({ name: 'vol0', uuid: 'REMAP-vol0', major: 253, minor: 4, suspended: true, activeTable: false });
    if (isRoot) {
      const st = fs.statSync(path.join(nodes, 'vol0'));
      expect(st.isBlockDevice()).toBe(true);
      expect(glibcMajorMinor(st.rdev)).toEqual({ major: 253, minor: 4 });
    }
  });

  it('create() of a name in use says it exists; bad names never reach the kernel', () => {
    const { dm, calls } = open(() => fail(16));
    expect(() => dm.create('vol0')).toThrow("device 'vol0' already exists (its name or uuid is in use)");
    expect(() => dm.create('a/b')).toThrow("device name 'a/b' must not contain '/'");
    expect(() => dm.create('control')).toThrow("device name must not be 'control'");
    expect(() => dm.create('x'.repeat(128))).toThrow(/is 128 bytes; the limit is 127/);
    expect(calls).toHaveLength(1);
  });

  it('load() sends every target the way populate_table() reads them', () => {
    const targets = [
      { start: 0, length: 1024, type: 'linear', params: '7:0 2048' },
      { start: 1024, length: 8, type: 'error', params: '' },
      { start: 1032, length: 4096, type: 'dust', params: '7:1 0 512' },
    ];
    const { dm, calls } = open((c) => {
      expect(c.cmd).toBe(DmCmd.TABLE_LOAD);
      expect(decodeTableLoad(c.input)).toEqual(targets);
      c.buf.writeUInt32LE(c.buf.readUInt32LE(28) | DM_INACTIVE_PRESENT_FLAG, 28);
      devStatus(c.buf, { minor: 4, flags: DM_SUSPEND_FLAG });
    });
    const info = dm.load('vol0', targets, { readOnly: true });
    expect(calls[0].flags & DM_READONLY_FLAG).toBeTruthy();
    expect(info.inactiveTable).toBe(true);
  });

  it('load() EINVAL: names the target type that is not loaded', () => {
    const { dm, calls } = open((c) => {
      if (c.cmd === DmCmd.TABLE_LOAD) fail(22);
      expect(c.cmd).toBe(DmCmd.GET_TARGET_VERSION);
      if (c.name === 'remap') fail(22); // dm_get_target_type() found nothing
      resultBuffer(c.buf);
      c.buf.writeUInt32LE(312 + 16 + 7 + 7, 12);
      c.buf.writeUInt32LE(0, 312);
      c.buf.writeUInt32LE(1, 316);
      c.buf.writeUInt32LE(4, 320);
      c.buf.write('linear\0', 328, 'latin1');
    });
    expect(() =>
      dm.load('vol0', [
        { start: 0, length: 8, type: 'linear', params: '7:0 0' },
        { start: 8, length: 8, type: 'remap', params: '7:1 7:2' },
      ]),
    ).toThrow("target type 'remap' is not loaded");
    expect(calls.map((c) => c.name)).toEqual(['vol0', 'linear', 'remap']);
  });

  it('load() EINVAL with every type present: the target refused its arguments', () => {
    const { dm } = open((c) => {
      if (c.cmd === DmCmd.TABLE_LOAD) fail(22);
      resultBuffer(c.buf);
      c.buf.writeUInt32LE(312 + 30, 12);
      c.buf.write('linear\0', 328, 'latin1');
    });
    expect(() => dm.load('vol0', [{ start: 0, length: 8, type: 'linear', params: 'nonsense' }])).toThrow(
      "device-mapper refused the table for 'vol0' (EINVAL): a target rejected its arguments; the kernel log (dmesg) has its reason",
    );
  });

  it('targetVersion() falls back to the full list on kernels without DM_GET_TARGET_VERSION', () => {
    const { dm } = open((c) => {
      if (c.cmd === DmCmd.GET_TARGET_VERSION) fail(25);
      expect(c.cmd).toBe(DmCmd.LIST_VERSIONS);
      resultBuffer(c.buf);
      c.buf.writeUInt32LE(312 + 64, 12);
      c.buf.writeUInt32LE(24, 312);
      c.buf.writeUInt32LE(1, 316);
      c.buf.write('zero\0', 328, 'latin1');
      c.buf.writeUInt32LE(0, 336);
      c.buf.writeUInt32LE(2, 340);
      c.buf.write('dust\0', 352, 'latin1');
    });
    expect(dm.targetVersion('dust')).toEqual({ name: 'dust', version: [2, 0, 0] });
    expect(dm.targetVersion('remap')).toBeUndefined();
  });

  it('suspend() and resume() carry noflush / nolockfs; resume makes the node', () => {
    const nodes = path.join(tmp.dir, 'dev-mapper-2');
    const { dm, calls } = open(
      (c) => {
        expect(c.cmd).toBe(DmCmd.DEV_SUSPEND);
        devStatus(c.buf, { minor: 7, flags: c.flags & DM_SUSPEND_FLAG ? DM_SUSPEND_FLAG : 1 << 5, targets: 1 });
      },
      isRoot ? { nodesDir: nodes } : {},
    );
    expect(dm.suspend('vol0', { noflush: true, nolockfs: true }).suspended).toBe(true);
    expect(calls[0].flags).toBe(DM_SUSPEND_FLAG | DM_NOFLUSH_FLAG | DM_SKIP_LOCKFS_FLAG);
    const info = dm.resume('vol0', { noflush: true });
    expect(calls[1].flags).toBe(DM_NOFLUSH_FLAG);
    expect(info).toMatchObject({ suspended: false, activeTable: true, targetCount: 1, minor: 7 });
    if (isRoot) expect(glibcMajorMinor(fs.statSync(path.join(nodes, 'vol0')).rdev)).toEqual({ major: 253, minor: 7 });
  });

  it('remove() retries EBUSY with a short sleep, then succeeds and drops the node', () => {
    const nodes = path.join(tmp.dir, 'dev-mapper-3');
    let busy = 2;
    const { dm, calls, sleeps } = open(
      (c) => {
        if (c.cmd === DmCmd.DEV_CREATE) return devStatus(c.buf, { minor: 9 });
        expect(c.cmd).toBe(DmCmd.DEV_REMOVE);
        if (busy-- > 0) fail(16);
      },
      isRoot ? { nodesDir: nodes } : {},
    );
    dm.create('vol9');
    if (isRoot) expect(fs.existsSync(path.join(nodes, 'vol9'))).toBe(true);
    expect(dm.remove('vol9')).toBe('removed');
    expect(calls.filter((c) => c.cmd === DmCmd.DEV_REMOVE)).toHaveLength(3);
    expect(sleeps).toEqual([100, 100]);
    if (isRoot) expect(fs.existsSync(path.join(nodes, 'vol9'))).toBe(false);
  });

  it('remove() of a device that stays open: busy after the retries; deferred says so', () => {
    const { dm, calls, sleeps } = open((c) => {
      if (c.flags & DM_DEFERRED_REMOVE) return; // dev_remove() returns 0 and leaves the flag set
      fail(16);
    });
    expect(() => dm.remove('vol0', { retries: 3, retryDelayMs: 20 })).toThrow("device 'vol0' is busy");
    expect(calls).toHaveLength(4);
    expect(sleeps).toEqual([20, 20, 20]);
    expect(dm.remove('vol0', { deferred: true })).toBe('deferred');
  });

  it('errno becomes a line naming the device', () => {
    const { dm } = open(() => fail(6));
    expect(() => dm.info('ghost')).toThrow("device 'ghost' does not exist");
    expect(dm.exists('ghost')).toBe(false);
    expect(() => dm.status('ghost')).toThrow(DmError);
    const perm = open(() => fail(13)).dm;
    expect(() => perm.info('x')).toThrow('DM_DEV_STATUS: device-mapper needs root (CAP_SYS_ADMIN)');
    const other = open(() => fail(12)).dm;
    expect(() => other.clear('x')).toThrow("DM_TABLE_CLEAR for 'x' failed: ENOMEM (out of memory)");
  });

  it('status() and table() decode the specs; table() sets DM_STATUS_TABLE_FLAG', () => {
    const { dm, calls } = open((c) => {
      devStatus(c.buf, { minor: 1, targets: 2, flags: 1 << 5 });
      const table = (c.flags & DM_STATUS_TABLE_FLAG) !== 0;
      writeSpecs(c.buf, [
        { start: 0, length: 100, type: 'flakey', params: table ? '7:0 0 5 5' : '' },
        { start: 100, length: 28, type: 'dust', params: table ? '7:1 0 512' : 'bypass verbose' },
      ]);
    });
    expect(dm.status('v').map((t) => [t.type, t.params])).toEqual([
      ['flakey', ''],
      ['dust', 'bypass verbose'],
    ]);
    expect(dm.table('v').map((t) => `${t.start} ${t.length} ${t.type} ${t.params}`)).toEqual(['0 100 flakey 7:0 0 5 5', '100 28 dust 7:1 0 512']);
    expect(calls[0].flags & DM_STATUS_TABLE_FLAG).toBe(0);
    expect(calls[1].flags & DM_STATUS_TABLE_FLAG).toBeTruthy();
  });

  it('status of a long table retries with a larger buffer', () => {
    const specs = Array.from({ length: 300 }, (_, i) => ({ start: i * 8, length: 8, type: 'linear', params: `7:0 ${i * 8} ${'x'.repeat(40)}` }));
    const { dm, calls } = open((c) => {
      devStatus(c.buf, { minor: 1, targets: specs.length, flags: 1 << 5 });
      writeSpecs(c.buf, specs);
    });
    const out = dm.table('big');
    expect(out).toHaveLength(300);
    expect(out[299].params).toBe(`7:0 2392 ${'x'.repeat(40)}`);
    expect(calls.map((c) => c.size)).toEqual([16384, 32768]);
  });

  it('table({ inactive }) returns nothing when the kernel says no inactive table', () => {
    const { dm, calls } = open((c) => {
      expect(c.flags & DM_QUERY_INACTIVE_TABLE_FLAG).toBeTruthy();
      devStatus(c.buf, { minor: 1, flags: 1 << 5 });
      c.buf.writeUInt32LE(c.buf.readUInt32LE(28) & ~DM_INACTIVE_PRESENT_FLAG, 28);
    });
    expect(dm.table('v', { inactive: true })).toEqual([]);
    expect(calls).toHaveLength(1);
  });

  it('deps() decodes dm_target_deps', () => {
    const { dm } = open((c) => {
      expect(c.cmd).toBe(DmCmd.TABLE_DEPS);
      resultBuffer(c.buf);
      c.buf.writeUInt32LE(2, 312);
      c.buf.writeBigUInt64LE(BigInt(newEncodeDev(7, 0)), 320);
      c.buf.writeBigUInt64LE(BigInt(newEncodeDev(259, 0x12345)), 328);
      c.buf.writeUInt32LE(336, 12);
    });
    expect(dm.deps('v')).toEqual([
      { major: 7, minor: 0 },
      { major: 259, minor: 0x12345 },
    ]);
  });

  it('message() returns the reply text when DM_DATA_OUT_FLAG is set, and "" when not', () => {
    const { dm, calls } = open((c) => {
      expect(c.cmd).toBe(DmCmd.TARGET_MSG);
      const msg = c.buf.toString('latin1', 320, c.buf.indexOf(0, 320));
      devStatus(c.buf, { minor: 1, targets: 1 });
      if (msg === 'countbadblocks') {
        resultBuffer(c.buf);
        c.buf.write('countbadblocks: 3 badblock(s) found\0', 312, 'latin1');
        c.buf.writeUInt32LE(c.buf.readUInt32LE(28) | DM_DATA_OUT_FLAG, 28);
        c.buf.writeUInt32LE(312 + 36, 12);
      }
    });
    expect(dm.message('v', 0, 'countbadblocks')).toBe('countbadblocks: 3 badblock(s) found');
    expect(calls[0].buf.readBigUInt64LE(312)).toBe(0n);
    expect(dm.message('v', 16, 'addbadblock 5')).toBe('');
    expect(calls[1].buf.readBigUInt64LE(312)).toBe(16n);
  });

  it('messageReply() tells no reply (DM_DATA_OUT_FLAG not set) from an empty one (set, no text)', () => {
    const { dm } = open((c) => {
      const msg = c.buf.toString('latin1', 320, c.buf.indexOf(0, 320));
      devStatus(c.buf, { minor: 1, targets: 1, flags: 1 << 5 });
      if (c.cmd !== DmCmd.TARGET_MSG) {
        writeSpecs(c.buf, [{ start: 0, length: 8, type: 'dm-remap-v4', params: '/dev/loop1 /dev/loop2' }]);
        return;
      }
      if (msg === 'empty') {
        resultBuffer(c.buf);
        c.buf.write('\0', 312, 'latin1');
        c.buf.writeUInt32LE(c.buf.readUInt32LE(28) | DM_DATA_OUT_FLAG, 28);
        c.buf.writeUInt32LE(313, 12);
      }
      // 'help': the handler wrote its text but returned 0, so the kernel sends none
    });
    expect(dm.messageReply('v', 0, 'help')).toEqual({ text: '', replied: false });
    expect(dm.messageReply('v', 0, 'empty')).toEqual({ text: '', replied: true });
    expect(dm.message('v', 0, 'help')).toBe('');
    const t = new DmDeviceTarget(dm, 'v');
    expect(t.messageReply(['help'])).toEqual({ text: '', replied: false });
    expect(t.messageReply(['empty'])).toEqual({ text: '', replied: true });
  });

  it('a table load refused with EBUSY names the dm target that opened the device by path (exit 2)', (ctx) => {
    if (!isRoot) {
      console.log('skipping: mknod needs root');
      ctx.skip();
    }
    const nodes = path.join(tmp.dir, 'busy');
    fs.mkdirSync(nodes, { recursive: true });
    const held = path.join(nodes, 'held');
    const free = path.join(nodes, 'free');
    nodeSys().mknod(held, S_IFBLK | 0o600, 7, 200);
    nodeSys().mknod(free, S_IFBLK | 0o600, 7, 201);
    const { dm, calls } = open((c) => {
      devStatus(c.buf, { minor: c.name === 'holder' ? 1 : 2, targets: 1, flags: 1 << 5 });
      if (c.cmd === DmCmd.TABLE_LOAD) fail(16);
      if (c.cmd === DmCmd.LIST_DEVICES)
        return writeNameList(
          c.buf,
          [
            { name: 'holder', minor: 1 },
            { name: 'new', minor: 2 },
          ],
          true,
        );
      if (c.cmd === DmCmd.TABLE_STATUS) {
        expect(c.name).toBe('holder'); // the device being loaded is not asked about itself
        writeSpecs(c.buf, [{ start: 0, length: 8, type: 'dm-remap-v4', params: `${held} /dev/other` }]);
      }
    });
    let err: unknown;
    try {
      dm.load('new', [
        { start: 0, length: 8, type: 'linear', params: `${held} 0` },
        { start: 8, length: 8, type: 'linear', params: `7:201 0` },
      ]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DmError);
    const e = err as DmError;
    expect(e.message).toBe(
      `device-mapper refused the table for 'new' (EBUSY: a device it names is held): ${held}: dm-remap-v4 device 'holder' opened it by path (${held}) and holds it exclusively`,
    );
    expect([e.errno, e.command, e.device]).toEqual([16, 'DM_TABLE_LOAD', 'new']);
    expect(e.exitCode).toBe(2);
    expect(calls.map((c) => c.cmd)).toEqual([DmCmd.TABLE_LOAD, DmCmd.LIST_DEVICES, DmCmd.TABLE_STATUS]); // the live tables are read once
  });

  it('waitEvent() passes the event number and returns the new state', () => {
    const { dm, calls } = open((c) => {
      expect(c.cmd).toBe(DmCmd.DEV_WAIT);
      devStatus(c.buf, { minor: 1, targets: 1, eventNr: c.eventNr + 1, flags: 1 << 5 });
      writeSpecs(c.buf, [{ start: 0, length: 8, type: 'flakey', params: '' }]);
    });
    const r = dm.waitEvent('v', 41);
    expect(calls[0].eventNr).toBe(41);
    expect(r.info.eventNr).toBe(42);
    expect(r.targets[0].type).toBe('flakey');
  });

  it('DmDeviceTarget speaks ControlTarget: lines as dmsetup prints them, messages as one word per argument', () => {
    const sent: string[] = [];
    const { dm } = open((c) => {
      devStatus(c.buf, { minor: 1, targets: 1, flags: 1 << 5 });
      if (c.cmd === DmCmd.TARGET_MSG) {
        const msg = c.buf.toString('latin1', 320, c.buf.indexOf(0, 320));
        sent.push(msg);
        if (msg === 'fail') fail(22);
        return;
      }
      writeSpecs(c.buf, [{ start: 0, length: 2048, type: 'dust', params: c.flags & DM_STATUS_TABLE_FLAG ? '7:0 0 512' : 'bypass' }]);
    });
    const t = new DmDeviceTarget(dm, 'v');
    expect(t.targetType).toBe('dust');
    expect(t.table()).toBe('0 2048 dust 7:0 0 512');
    expect(t.status()).toBe('0 2048 dust bypass');
    expect(t.message(['addbadblock', '12'])).toBe('');
    t.message(['set', 'a b', 'c\\d']);
    expect(sent[1]).toBe('set a\\ b c\\\\d');
    expect(() => t.message(['fail'])).toThrow(MessageError);
  });
});

describe('devMapperNodes', () => {
  it('replaces a node that points at the wrong device and keeps a right one', (ctx) => {
    if (!isRoot) {
      console.log('skipping: mknod needs root');
      ctx.skip();
    }
    const dir = path.join(tmp.dir, 'nodes');
    const nodes = devMapperNodes(dir);
    nodes.ensure('a', 253, 1);
    const first = fs.statSync(path.join(dir, 'a'));
    nodes.ensure('a', 253, 1);
    expect(fs.statSync(path.join(dir, 'a')).ino).toBe(first.ino);
    nodes.ensure('a', 253, 2);
    expect(glibcMajorMinor(fs.statSync(path.join(dir, 'a')).rdev)).toEqual({ major: 253, minor: 2 });
    fs.writeFileSync(path.join(dir, 'b'), 'not a node');
    nodes.ensure('b', 253, 3);
    expect(fs.statSync(path.join(dir, 'b')).isBlockDevice()).toBe(true);
    nodes.remove('a');
    nodes.remove('a');
    expect(fs.existsSync(path.join(dir, 'a'))).toBe(false);
  });
});

describe('user mistakes in requests', () => {
  it('are one line naming the device and the field', () => {
    const { dm, calls } = open(() => {});
    expect(() => dm.load('vol0', [{ start: 0, length: 8, type: 'a-type-name-too-long', params: '' }])).toThrow(
      "'vol0': target 0 type 'a-type-name-too-long' must be 1..15 bytes",
    );
    expect(() => dm.message('vol0', 0, '')).toThrow("'vol0': target message must not be empty");
    expect(() => dm.load('vol0', [])).toThrow(DmError);
    expect(calls).toHaveLength(0);
  });
});
