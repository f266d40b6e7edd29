/**
 * `remapsim dm` on the host: the dmsetup-format helpers (pure), and the
 * binary on a kernel without device-mapper, where every verb must say so in
 * one line and exit 3. The kernel lane (test/vm/cli-dm.test.ts) compares
 * the outputs with dmsetup's on a real kernel.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { dmsetupLine, formatDmDeps, formatDmInfo, formatDmTarget, formatMessageReply, noReplyLine, parseDmTable } from '../../src/cli/commands/dm.js';
import type { DmDeviceInfo } from '../../src/kernel/dm-control.js';
import { dmMiscMinor, DmError, DmRequestError, DmUnavailableError } from '../../src/kernel/dm-control.js';
import { UsageError } from '../../src/util/errors.js';
import { skipReason } from '../helpers/tmp.js';
import { runInProcess as inProcess } from './in-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs the CLI from source without blocking, so many runs overlap. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function hostHasDm(): boolean {
  try {
    fs.closeSync(fs.openSync('/dev/mapper/control', fs.constants.O_RDWR));
    return true;
  } catch {
    return dmMiscMinor(fs.readFileSync('/proc/misc', 'utf8')) !== undefined;
  }
}

function info(over: Partial<DmDeviceInfo> = {}): DmDeviceInfo {
  return {
    name: 'lin',
    uuid: '',
    major: 254,
    minor: 0,
    openCount: 0,
    eventNr: 0,
    targetCount: 1,
    suspended: false,
    readOnly: false,
    activeTable: true,
    inactiveTable: false,
    deferredRemove: false,
    internalSuspend: false,
    flags: 0,
    ...over,
  };
}

describe('dmsetup formats', () => {
  it('info: the layout of `dmsetup info` (captured from dmsetup 1.02.185 on Linux 6.1)', () => {
    expect(formatDmInfo(info(), 256)).toBe(
      'Name:              lin\nState:             ACTIVE\nRead Ahead:        256\nTables present:    LIVE\nOpen count:        0\nEvent number:      0\nMajor, minor:      254, 0\nNumber of targets: 1\n\n',
    );
    // `dmsetup create empty --notable`: no gendisk yet, so no read-ahead line
    expect(formatDmInfo(info({ name: 'empty', minor: 3, activeTable: false, targetCount: 0 }), undefined)).toBe(
      'Name:              empty\nState:             ACTIVE\nTables present:    None\nOpen count:        0\nEvent number:      0\nMajor, minor:      254, 3\nNumber of targets: 0\n\n',
    );
    const busy = formatDmInfo(
      info({ suspended: true, readOnly: true, inactiveTable: true, deferredRemove: true, uuid: 'LVM-x', openCount: 2, eventNr: 7 }),
      8192,
    );
    expect(busy).toMatch(/^State:             SUSPENDED \(READ-ONLY\) \(DEFERRED REMOVE\)$/m);
    expect(busy).toMatch(/^Tables present:    LIVE & INACTIVE$/m);
    expect(busy).toMatch(/^Open count:        2\nEvent number:      7\n/m);
    expect(busy).toMatch(/^UUID: LVM-x\n\n$/m);
    expect(formatDmInfo(info({ activeTable: false, inactiveTable: true }), 256)).toMatch(/^Tables present:    INACTIVE$/m);
  });

  it('table/status lines keep the blank before empty parameters; deps, targets and message replies', () => {
    expect(dmsetupLine({ start: 0, length: 8192, type: 'linear', params: '7:0 0' })).toBe('0 8192 linear 7:0 0');
    expect(dmsetupLine({ start: 100, length: 200, type: 'error', params: '' })).toBe('100 200 error ');
    expect(formatDmDeps([{ major: 7, minor: 0 }])).toBe('1 dependencies\t: (7, 0)');
    expect(formatDmDeps([])).toBe('0 dependencies\t:');
    expect(
      formatDmDeps([
        { major: 7, minor: 0 },
        { major: 254, minor: 3 },
      ]),
    ).toBe('2 dependencies\t: (7, 0) (254, 3)');
    expect(formatDmTarget({ name: 'linear', version: [1, 4, 0] })).toBe('linear           v1.4.0');
    expect(formatDmTarget({ name: 'a-very-long-target', version: [1, 0, 0] })).toBe('a-very-long-target v1.0.0');
    expect(formatMessageReply('countbadblocks: 0 badblock(s) found')).toBe('countbadblocks: 0 badblock(s) found\n');
    expect(formatMessageReply('3\n5\n')).toBe('3\n5\n');
    expect(formatMessageReply('')).toBe('');
    expect(noReplyLine('dm message')).toBe('dm message: no reply (the target sent none: DM_DATA_OUT_FLAG not set)\n');
  });

  it('exit codes of device-mapper errors: 2 for a wrong request, 3 for the environment', () => {
    const cases: Array<[DmError, number]> = [
      [new DmUnavailableError(2), 3],
      [new DmRequestError('name too long', 22), 2],
      [new DmError("device 'x' does not exist", 6, 'DM_TABLE_STATUS', 'x'), 2],
      [new DmError('refused', 22, 'DM_TABLE_LOAD', 'x'), 2],
      [new DmError('refused', 22, 'DM_TARGET_MSG', 'x'), 2],
      [new DmError('exists', 16, 'DM_DEV_CREATE', 'x'), 2],
      [new DmError('held', 16, 'DM_TABLE_LOAD', 'x'), 2],
      [new DmError("device 'x' is busy", 16, 'DM_DEV_REMOVE', 'x'), 3],
      [new DmError('needs root', 1, 'DM_VERSION'), 3],
      [new DmError('cannot open /dev/mapper/control: EINVAL', 22), 3],
    ];
    for (const [err, code] of cases) expect(err.exitCode, `${err.message} ${err.command}`).toBe(code);
  });

  it('parses tables as dmsetup does: lines, comments, verbatim parameters', () => {
    expect(parseDmTable('0 100 linear /dev/loop0 0\n\n  # comment\n100 200 error   # why\n300 8 flakey /dev/loop0 0 1  1 0\n', 't')).toEqual([
      { start: 0, length: 100, type: 'linear', params: '/dev/loop0 0' },
      { start: 100, length: 200, type: 'error', params: '' },
      { start: 300, length: 8, type: 'flakey', params: '/dev/loop0 0 1  1 0' },
    ]);
    expect(parseDmTable('  0 8 zero  ', 't')).toEqual([{ start: 0, length: 8, type: 'zero', params: '' }]);
    expect(parseDmTable('# nothing\n\n', 't')).toEqual([]);
    const refused: Array<[string, RegExp]> = [
      ['0 100', /t line 1: expected '<start> <length> <target type> \[parameters\]', got '0 100'/],
      ['0 x zero', /t line 1: length must be a whole number of 512-byte sectors, got 'x'/],
      ['\n-1 8 zero', /t line 2: start must be a whole number of 512-byte sectors, got '-1'/],
      ['0 0 zero', /t line 1: length must be at least 1 sector, got 0/],
      ['0 99999999999999999999 zero', /t line 1: length 99999999999999999999 is out of range/],
    ];
    for (const [text, msg] of refused) {
      expect(() => parseDmTable(text, 't')).toThrow(UsageError);
      expect(() => parseDmTable(text, 't')).toThrow(msg);
    }
  });
});

describe('remapsim dm on a kernel without device-mapper', () => {
  const skip = skipReason(hostHasDm() ? 'this kernel has device-mapper (the kernel lane covers it)' : undefined, 'the no-device-mapper checks');

  it.skipIf(skip)(
    'every verb prints one line and exits 3',
    async () => {
      const verbs: string[][] = [
        ['create', 'x', '--table', '0 8 zero'],
        ['load', 'x', '--table', '0 8 zero'],
        ['suspend', 'x'],
        ['resume', 'x'],
        ['remove', 'x'],
        ['clear', 'x'],
        ['status'],
        ['table', 'x'],
        ['info'],
        ['deps', 'x'],
        ['message', 'x', '0', 'countbadblocks'],
        ['ls'],
        ['targets'],
        ['version', '--json'],
      ];
      const check = (r: { code: number; stdout: string; stderr: string }, what: string): void => {
        expect(r.code, what).toBe(3);
        expect(r.stdout, what).toBe('');
        expect(r.stderr, what).toMatch(/^remapsim: device-mapper is not available in this kernel \([^)\n]+\)\n$/);
      };
      for (const v of verbs) check(await inProcess(['dm', ...v]), `dm ${v.join(' ')}`);
      // and the binary itself, for two of them
      const [a, b] = await Promise.all([cli(['dm', 'create', 'x', '--table', '0 8 zero']), cli(['dm', 'ls'])]);
      check(a, 'binary: dm create');
      check(b, 'binary: dm ls');
    },
    30_000,
  );

  it.skipIf(skip)('`remapsim status NAME` and `remapsim dm status NAME` exit alike: 3 without device-mapper, 2 for bad arguments', async () => {
    const pairs: Array<[string[], string[], number, RegExp]> = [
      [['status', 'x'], ['dm', 'status', 'x'], 3, /^remapsim: device-mapper is not available in this kernel/],
      [['status', 'x', '--watch', '1'], ['dm', 'status', 'x', '--watch', '1'], 3, /^remapsim: device-mapper is not available in this kernel/],
      [['status', 'x', '--watch', 'soon'], ['dm', 'status', 'x', '--watch', 'soon'], 2, /^remapsim: --watch: must be a time from 0\.1 s to 86400 s/],
      [['status', 'x', '--count', '3'], ['dm', 'status', 'x', '--count', '3'], 2, /^remapsim: --count: only with --watch/],
      [
        ['status', 'x', '--watch', '1', '--count', '0'],
        ['dm', 'status', 'x', '--watch', '1', '--count', '0'],
        2,
        /^remapsim: --count: must be an integer from 1/,
      ],
    ];
    for (const [a, b, code, message] of pairs) {
      for (const args of [a, b]) {
        const r = await inProcess(args);
        expect(r.code, args.join(' ')).toBe(code);
        expect(r.stderr, args.join(' ')).toMatch(message);
        expect(r.stderr.split('\n'), args.join(' ')).toHaveLength(2);
      }
    }
  });

  it('usage errors come first, with exit 2', async () => {
    const [missing, unknown, help] = [await inProcess(['dm', 'create']), await inProcess(['dm', 'frob']), await inProcess(['dm', '--help'])];
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing required argument 'name'/);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frob'/);
    expect(help.code).toBe(0);
    for (const verb of ['create', 'load', 'suspend', 'resume', 'remove', 'clear', 'status', 'table', 'info', 'deps', 'message', 'ls', 'targets', 'version']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${verb}[ |]`, 'm'));
    }
  });
});
