/**
 * Who holds a block device (src/sys/holders.ts), for the line that
 * explains an EBUSY table load: the table words that name devices, a real
 * mount of a real loop device (as root), the dm devices sysfs lists as
 * holders (a tree of sysfs's shape: this host has no device-mapper; the
 * kernel lane, test/vm/stack-cli.test.ts, checks it on a real kernel).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attachLoop, detachLoop, loopDeviceInfo } from '../../src/kernel/loop.js';
import { blockDeviceOf, explainBusyTable, holdersOf, mountsOf, tableDevices } from '../../src/sys/holders.js';
import { loopUnavailable, skipReason, tmpWithUndo } from '../helpers/tmp.js';

const tmp = tmpWithUndo('remapsim-holders-', afterAll);
const undo = tmp.undo;

/** A sysfs-shaped tree: dev/block/MAJ:MIN/holders/dm-N/dm/name. */
function fakeSys(dev: string, holders: Record<string, string>): string {
  const sys = fs.mkdtempSync(path.join(tmp.dir, 'sys-'));
  for (const [node, name] of Object.entries(holders)) {
    fs.mkdirSync(path.join(sys, 'dev/block', dev, 'holders', node, 'dm'), { recursive: true });
    fs.writeFileSync(path.join(sys, 'dev/block', dev, 'holders', node, 'dm', 'name'), `${name}\n`);
  }
  return sys;
}

describe('holders of a block device', () => {
  it('finds the words of a table that name block devices: MAJ:MIN and device node paths', () => {
    expect(blockDeviceOf('7:3')).toEqual({ major: 7, minor: 3 });
    expect(blockDeviceOf('0')).toBeUndefined();
    expect(blockDeviceOf('/no/such/node')).toBeUndefined();
    expect(blockDeviceOf(tmp.dir)).toBeUndefined();
    const targets = [
      { start: 0, length: 8, type: 'linear', params: '7:3 0' },
      { start: 8, length: 8, type: 'linear', params: '7:3 8' },
      { start: 16, length: 8, type: 'dust', params: '7:4 0 512' },
    ];
    expect(tableDevices(targets)).toEqual([
      { word: '7:3', dev: { major: 7, minor: 3 } },
      { word: '7:4', dev: { major: 7, minor: 4 } },
    ]);
  });

  it('names dm devices from sysfs holders and from live tables, without the device being loaded', () => {
    const sys = fakeSys('7:3', { 'dm-0': 'lin', 'dm-2': 'self' });
    const tables = [
      { name: 'lin', targets: [{ type: 'linear', params: '7:3 0' }] },
      { name: 'other', targets: [{ type: 'linear', params: '7:9 0' }] },
      { name: 'self', targets: [{ type: 'linear', params: '7:3 0' }] },
    ];
    expect(holdersOf({ major: 7, minor: 3 }, tables, { sysDir: sys, mountinfo: '/dev/null', exclude: 'self' })).toEqual([
      { kind: 'dm-table', name: 'lin', node: 'dm-0' },
    ]);
    // a dm-table holder does not block a load: the line says something else holds the device exclusively
    const line = explainBusyTable(undefined, 'new', [{ type: 'linear', params: '7:3 0' }], { sysDir: sys, mountinfo: '/dev/null' });
    expect(line).toBe(
      "device-mapper refused the table for 'new' (EBUSY: a device it names is held): 7:3 is not opened by path by a dm target nor mounted, so something else holds it open exclusively (O_EXCL) (device-mapper tables using it do not block a load: 7:3: the table of dm device 'lin' (dm-0) uses it, the table of dm device 'self' (dm-2) uses it)",
    );
    expect(explainBusyTable(undefined, 'z', [{ type: 'zero', params: '' }])).toMatch(/its parameters name no block device we can look up$/);
  });

  it('reads mount points from mountinfo, octal escapes undone', () => {
    const mi = path.join(tmp.dir, 'mountinfo');
    fs.writeFileSync(mi, '36 35 7:3 / /mnt/with\\040blank rw,relatime shared:1 - ext4 /dev/loop3 rw\n37 35 7:4 / /other rw - xfs /dev/loop4 rw\n');
    expect(mountsOf({ major: 7, minor: 3 }, mi)).toEqual([{ mountPoint: '/mnt/with blank', fsType: 'ext4' }]);
    expect(mountsOf({ major: 7, minor: 5 }, mi)).toEqual([]);
  });

  it.skipIf(skipReason(loopUnavailable(), 'the mounted loop device'))('a mounted loop device: named with its mount point, through its /dev path', () => {
    const img = path.join(tmp.dir, 'fs.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 8 << 20);
    execFileSync('mkfs.ext2', ['-q', '-F', img]);
    const loop = attachLoop(img);
    undo.push(() => detachLoop(loop.number));
    const mnt = fs.mkdtempSync(path.join(tmp.dir, 'mnt-'));
    execFileSync('mount', [loop.device, mnt]);
    undo.push(() => execFileSync('umount', [mnt]));
    const info = loopDeviceInfo(loop.number)!;
    const dev = blockDeviceOf(loop.device);
    expect(dev).toEqual({ major: info.major, minor: info.minor });
    expect(holdersOf(dev!, [])).toEqual([{ kind: 'mount', mountPoint: mnt, fsType: 'ext2' }]);
    expect(explainBusyTable(undefined, 'new', [{ type: 'linear', params: `${loop.device} 0` }])).toBe(
      `device-mapper refused the table for 'new' (EBUSY: a device it names is held): ${loop.device}: it is mounted on ${mnt} (ext2)`,
    );
  });
});
