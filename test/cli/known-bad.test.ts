/**
 * Known-bad sectors on a real block device the model does not own: a loop
 * device (direct I/O) over an nbdfuse file of `remapsim serve` with bad
 * sectors in a dust layer, so reads of those sectors fail in the kernel as
 * they would on a kernel stack with dm-dust. `bench` and `run` take the
 * sectors from a stack state (--stack-state) or a list or ddrescue mapfile
 * (--known-bad): reads over them are expected errors, not findings. Skipped,
 * with the reason printed, without root, FUSE, loop devices or nbdfuse.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { formatDdrescueMapfile } from '../../src/faults/badlist.js';
import { attachLoop, detachLoop } from '../../src/kernel/loop.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { runInProcess } from './in-process.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';
import { toolVersion, until } from '../nbd/serve-helpers.js';

function why(): string | undefined {
  const loop = loopUnavailable();
  if (loop) return loop;
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing';
  if (toolVersion('nbdfuse') === undefined) return 'nbdfuse is not installed';
  if (toolVersion('fusermount3') === undefined) return 'fusermount3 is not installed';
  return undefined;
}

const skip = skipReason(why(), 'known-bad sectors on a loop device over nbdfuse');
const tmp = tmpDir('remapsim-kbad-');
const MAIN_BYTES = 32 << 20;
const BAD = [1000, 1001, 5000, 20007];
/** The 4 KiB units holding them, as the oracle reports them (first sector of each). */
const BAD_UNITS = [1000, 5000, 20000];

const procs: ChildProcess[] = [];
const loops: number[] = [];
let dev = '';

afterAll(() => {
  for (const n of loops) {
    try {
      detachLoop(n);
    } catch {
      // already gone
    }
  }
  const fuse = path.join(tmp.dir, 'fuse');
  if (fs.existsSync(fuse)) {
    try {
      execFileSync('fusermount3', ['-u', fuse], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
  }
  for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
  tmp.cleanup();
});

/** One bench or run on the device, its JSON results and the oracle's report. */
function oracleRun(args: string[]): { code: number; stderr: string; oracle: Record<string, any> } {
  const r = runCli([...args, '--output-format', 'json'], { timeoutMs: 120_000 });
  const oracle = r.code <= 1 ? JSON.parse(r.stdout).jobs[0].verify.run : {};
  return { code: r.code, stderr: r.stderr, oracle };
}

function stackState(file: string, top: string): string {
  const state = {
    version: 1,
    name: 'kb',
    createdAt: new Date().toISOString(),
    logicalBlockSize: 512,
    files: [],
    loops: [],
    devices: [],
    badLayer: { kind: 'dust', blockSize: 512 },
    badSectors: BAD,
    remap: { target: null, present: false, reason: 'test' },
    top,
    sectors: MAIN_BYTES / 512,
    spareDevice: '',
    notes: [],
  };
  fs.writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`);
  return file;
}

describe.skipIf(skip)('known-bad sectors of a device the model does not own', () => {
  const bench = () => [
    'bench',
    '--rw',
    'read',
    '--bs',
    '4k',
    '--size',
    '12M',
    '--verify',
    'crc32c',
    '--direct',
    '1',
    '--continue_on_error',
    'all',
    '--target',
    `dev:${dev}`,
  ];
  const list = path.join(tmp.dir, 'bad.txt');

  beforeAll(async () => {
    const main = path.join(tmp.dir, 'main.img');
    const spare = path.join(tmp.dir, 'spare.img');
    FileDevice.createSparse(main, MAIN_BYTES);
    FileDevice.createSparse(spare, 8 << 20);
    fs.writeFileSync(list, `# bad sectors of the served main device\n${BAD.join('\n')}\n`);
    const sock = path.join(tmp.dir, 'model.sock');
    const server = spawnCli(['serve', '--table', `0 ${MAIN_BYTES / 512} remap ${main} ${spare}`, '--bad-sectors', list, '--socket', sock]);
    procs.push(server);
    await until(() => fs.existsSync(sock) || server.exitCode !== null, 30_000, 'remapsim serve to listen');
    expect(server.exitCode).toBeNull();
    const fuseDir = path.join(tmp.dir, 'fuse');
    fs.mkdirSync(fuseDir);
    const pidFile = path.join(tmp.dir, 'nbdfuse.pid');
    const fuse = spawn('nbdfuse', ['-P', pidFile, path.join(fuseDir, 'disk'), '--unix', sock], { stdio: 'ignore' });
    procs.push(fuse);
    await until(() => (fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '') || fuse.exitCode !== null, 10_000, 'nbdfuse to mount');
    expect(fuse.exitCode).toBeNull();
    const att = attachLoop(path.join(fuseDir, 'disk'), { direct: true });
    loops.push(att.number);
    dev = att.device;
  }, 60_000);

  it('bench: a read error over a listed sector is expected; without the list it is a finding', () => {
    const withList = oracleRun([...bench(), '--known-bad', list]);
    expect(withList.stderr).toBe('');
    expect(withList.code).toBe(0);
    expect(withList.oracle.reads).toMatchObject({ expectedError: 3, unexpectedError: 0, corrupt: 0 });
    expect(withList.oracle.first.expectedError).toEqual(BAD_UNITS);
    const without = oracleRun(bench());
    expect(without.code).toBe(1);
    expect(without.oracle.reads).toMatchObject({ expectedError: 0, unexpectedError: 3 });
    expect(without.oracle.first.unexpectedError).toEqual(BAD_UNITS);
  }, 120_000);

  it('bench: the same from a ddrescue mapfile and from a stack state naming the device; a list of one sector too few finds the other', () => {
    const map = path.join(tmp.dir, 'disk.map');
    const blocks = [
      { pos: 0, size: 1000 * 512, status: '+' as const },
      { pos: 1000 * 512, size: 1024, status: '-' as const },
      { pos: 1002 * 512, size: (5000 - 1002) * 512, status: '+' as const },
      { pos: 5000 * 512, size: 512, status: '-' as const },
      { pos: 5001 * 512, size: (20007 - 5001) * 512, status: '+' as const },
      { pos: 20007 * 512, size: 512, status: '/' as const },
      { pos: 20008 * 512, size: MAIN_BYTES - 20008 * 512, status: '?' as const }, // a mapfile spans its device (another size is refused)
    ];
    fs.writeFileSync(map, formatDdrescueMapfile({ currentPos: 0, currentStatus: '+', currentPass: 1, blocks }));
    expect(oracleRun([...bench(), '--known-bad', map]).oracle.reads).toMatchObject({ expectedError: 3, unexpectedError: 0 });

    const state = stackState(path.join(tmp.dir, 'stack.json'), dev);
    const r = runCli([...bench(), '--stack-state', state], { timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^known bad: stack 'kb' \(.*stack\.json\): 4 bad sectors, 4 sectors in failing 512-byte blocks$/m);
    expect(r.stdout).toMatch(/ expectedError=3 unexpectedError=0 /);

    const partial = path.join(tmp.dir, 'partial.txt');
    fs.writeFileSync(partial, '1000\n5000\n');
    const p = oracleRun([...bench(), '--known-bad', partial]);
    expect(p.code).toBe(1);
    expect(p.oracle.reads).toMatchObject({ expectedError: 2, unexpectedError: 1 });
    expect(p.oracle.first.unexpectedError).toEqual([20000]);
  }, 120_000);

  it('run: a scenario on the stack device takes its bad sectors from the stack state', () => {
    const scenario = path.join(tmp.dir, 'on-stack.yaml');
    fs.writeFileSync(
      scenario,
      [
        'name: on-stack',
        'seed: 3',
        'duration: 1s',
        'devices:',
        `  main: { path: ${dev}, direct: true }`,
        '  spare: { size: 8MiB }',
        'jobs:',
        '  - { name: r, rw: read, bs: 4k, size: 12m, verify: crc32c, continue_on_error: all }',
        '',
      ].join('\n'),
    );
    const state = stackState(path.join(tmp.dir, 'stack.json'), dev);
    const args = ['run', scenario, '--workdir', path.join(tmp.dir, 'wd'), '--engine', 'sync'];
    const r = runCli([...args, '--stack-state', state], { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\s+3 {2}expected errors \(known-bad blocks\)\s+first sectors: 1000 5000 20000$/m);
    expect(r.stdout).not.toMatch(/^\s+\d+  unexpected errors/m);
    const without = runCli(args, { timeoutMs: 120_000 });
    expect(without.code).toBe(1);
    expect(without.stdout).toMatch(/^\s+3 {2}unexpected errors\s+first sectors: 1000 5000 20000$/m);
  }, 120_000);

  it('refuses, in one line with exit 2, a state of another device, a file that is not a state, sectors past the end', async () => {
    const other = path.join(tmp.dir, 'other.img');
    FileDevice.createSparse(other, 1 << 20);
    const att = attachLoop(other);
    loops.push(att.number);
    const cases: Array<[string[], RegExp]> = [
      [
        ['--stack-state', stackState(path.join(tmp.dir, 'other.json'), att.device)],
        new RegExp(`^remapsim: --stack-state: .*other\\.json describes stack 'kb' on ${att.device}, but the target is block device ${dev}\\n$`),
      ],
      [['--stack-state', list], /^remapsim: --stack-state: (.*bad\.txt is not a remapsim stack state|cannot read stack state .*bad\.txt)/],
      [
        ['--stack-state', stackState(path.join(tmp.dir, 'gone.json'), '/dev/mapper/remapsim-no-such-stack')],
        /^remapsim: --stack-state: the stack's device \/dev\/mapper\/remapsim-no-such-stack does not exist/,
      ],
    ];
    const past = path.join(tmp.dir, 'past.txt');
    fs.writeFileSync(past, `12\n${MAIN_BYTES / 512}\n`);
    cases.push([
      ['--known-bad', past],
      new RegExp(
        `^remapsim: --known-bad .*past\\.txt: sector ${MAIN_BYTES / 512} is beyond the end of block device ${dev} \\(sectors 0\\.\\.${MAIN_BYTES / 512 - 1}\\)\\n$`,
      ),
    ]);
    const garbage = path.join(tmp.dir, 'garbage.txt');
    fs.writeFileSync(garbage, '17\nseventeen\n');
    cases.push([['--known-bad', garbage], /^remapsim: --known-bad .*garbage\.txt: bad-sector list, line 2: 'seventeen' is not a sector number/]);
    for (const [extra, want] of cases) {
      const r = await runInProcess([...bench(), ...extra]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(want);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 120_000);
});
