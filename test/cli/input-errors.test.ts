/**
 * Issue 17, findings 7 and 8: what a user sends is refused in one line with
 * exit 2, before any work starts, and nothing is left behind: output paths
 * that cannot be written, a work directory that is a file, sizes the
 * filesystem cannot hold, a YAML alias bomb, an iodepth that would exhaust
 * memory, main and spare that are one file, a spare too small for the policy.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { jobFromRecord } from '../../src/workload/job.js';
import { tmpDir } from '../helpers/tmp.js';
import { runInProcess } from './in-process.js';

const tmp = tmpDir('remapsim-input-');
afterAll(() => tmp.cleanup());
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** One line on stderr naming the problem, no stack trace, exit 2. */
function oneLine(r: { code: number; stderr: string }, message: RegExp): void {
  expect(r.stderr).toMatch(/^remapsim: [^\n]+\n$/);
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(2);
}

function scenario(name: string, devices: object, jobs: object[] = [{ rw: 'randrw', bs: '4k', verify: 'crc32c', runtime: '500ms', time_based: 1 }]): string {
  const file = path.join(tmp.dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ name, devices, jobs }));
  return file;
}

/**
 * The CLI in a child whose file-size limit is 1 GiB (ulimit -f): a bigger
 * file fails with EFBIG as on a filesystem that cannot hold it (ext4 stops at
 * 16 TiB), whatever filesystem the test runs on.
 */
function cliWithFileLimit(args: string[]): { code: number; stdout: string; stderr: string } {
  const cmd = `ulimit -f ${1 << 20} && exec "$0" --import tsx src/cli/main.ts "$@"`;
  const r = spawnSync('sh', ['-c', cmd, process.execPath, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, TMPDIR: tmp.dir } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('finding 7: bad input is one line and exit 2, found before the run', () => {
  it('--workdir that is a regular file', async () => {
    const file = path.join(tmp.dir, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    oneLine(await runInProcess(['run', '--workdir', file, '--duration', '1s']), /^remapsim: --workdir: .*not-a-dir is not a directory$/m);
    oneLine(
      await runInProcess(['run', '--workdir', path.join(file, 'below'), '--duration', '1s']),
      /--workdir: cannot create .*below: .*not-a-dir is not a directory/,
    );
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });

  it('--json in a directory that does not exist is refused before a 30 s run starts', async () => {
    const t0 = Date.now();
    oneLine(
      await runInProcess(['run', '--duration', '30s', '--json', '/nonexistent/dir/r.json']),
      /--json: cannot write \/nonexistent\/dir\/r\.json: directory \/nonexistent\/dir does not exist/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
    oneLine(await runInProcess(['run', '--duration', '30s', '--json', tmp.dir]), /--json: .* is a directory; give a file name/);
    const htmlDir = path.join(tmp.dir, 'r.html');
    fs.mkdirSync(htmlDir);
    oneLine(
      await runInProcess(['run', '--duration', '30s', '--json', path.join(tmp.dir, 'r.json')]),
      /--json \(its HTML report; --no-report skips it\): .*r\.html is a directory/,
    );
    oneLine(
      await runInProcess([
        'bench',
        '--rw',
        'read',
        '--size',
        '1m',
        '--runtime',
        '30',
        '--time_based',
        '--target',
        'scenario:default',
        '--json',
        '/nonexistent/b.json',
      ]),
      /--json: cannot write/,
    );
  });

  it('a main bigger than the filesystem allows (EFBIG) is refused before any file is made', () => {
    const s = scenario('huge', { main: { size: '2GiB' }, spare: { size: '64MiB' } });
    const r = cliWithFileLimit(['run', s]);
    oneLine(r, /^remapsim: devices\.main\.size: 2 GiB \(2147483648 bytes\) is more than the filesystem of .* allows for one file \(EFBIG\)$/m);
    expect(fs.readdirSync(tmp.dir).filter((f) => f.startsWith('remapsim-huge-') || f.startsWith('.remapsim-size-probe'))).toEqual([]);
  });

  it('bench --size larger than the filesystem allows: one line, and no empty file left', () => {
    const target = path.join(tmp.dir, 'X.img');
    const r = cliWithFileLimit(['bench', '--rw', 'read', '--bs', '4k', '--size', '2g', '--target', `file:${target}`]);
    oneLine(r, /^remapsim: --target: 2 GiB \(2147483648 bytes\) is more than the filesystem of .* allows for one file \(EFBIG\)$/m);
    expect(fs.existsSync(target)).toBe(false);
  });

  it('a YAML alias bomb', async () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++)
      lines.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const bomb = path.join(tmp.dir, 'bomb.yaml');
    fs.writeFileSync(bomb, `${lines.join('\n')}\n`);
    oneLine(
      await runInProcess(['run', bomb]),
      /bomb\.yaml: not a usable YAML scenario: its aliases expand too far \(an anchor's uses times the aliases inside it may be at most 100; an alias bomb\?\)/,
    );
    // a few aliases are fine
    const ok = path.join(tmp.dir, 'aliases.yaml');
    fs.writeFileSync(ok, 'name: aliases\ndevices:\n  main: &d { size: 8MiB }\n  spare: *d\njobs:\n  - { rw: read, bs: 4k, size: 64k }\n');
    expect((await runInProcess(['run', ok])).code).toBe(0);
  });
});

describe('finding 8: limits', () => {
  it('iodepth and numjobs are bounded, naming the limit; so is their product over all jobs', async () => {
    expect(() => jobFromRecord({ rw: 'read', iodepth: 1_000_000_000 })).toThrow(
      /iodepth: 1000000000 is out of range \(allowed 1 to 65536: remapsim's limit, libaio's default in fio; fio's io_uring takes at most 32768\)/,
    );
    expect(jobFromRecord({ rw: 'read', iodepth: 65536 }).iodepth).toBe(65536);
    expect(() => jobFromRecord({ rw: 'read', numjobs: 4097 })).toThrow(/numjobs: 4097 is out of range \(allowed 1 to 4096: fio's own limit on jobs\)/);
    const t0 = Date.now();
    oneLine(
      await runInProcess(['bench', '--rw', 'read', '--size', '1m', '--iodepth', '1000000000', '--target', 'scenario:default']),
      /iodepth: 1000000000 is out of range \(allowed 1 to 65536/,
    );
    oneLine(
      await runInProcess(['bench', '--rw', 'read', '--size', '1m', '--iodepth', '65536', '--numjobs', '17', '--target', 'scenario:default']),
      /iodepth: the jobs keep 1114112 requests in flight \(iodepth x numjobs: job: 65536 x 17\); at most 1048576 over all jobs/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
    const s = scenario('deep', { main: { size: '8MiB' }, spare: { size: '8MiB' } }, [{ rw: 'read', iodepth: 65536, numjobs: 32 }]);
    oneLine(await runInProcess(['run', s]), /iodepth: the jobs keep 2097152 requests in flight/);
  });

  it('main and spare that are one file are refused, by device and inode (a second path or a symlink too)', async () => {
    const img = path.join(tmp.dir, 'one.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 16 << 20);
    const link = path.join(tmp.dir, 'one-link.img');
    fs.symlinkSync(img, link);
    const same = (spare: string) => scenario(`same-${path.basename(spare, '.img')}`, { main: { path: img }, spare: { path: spare } });
    oneLine(
      await runInProcess(['run', same(img)]),
      /devices\.spare: .*one\.img is the same file as devices\.main \(.*one\.img, inode \d+ on device \d+\); main and spare must be two devices/,
    );
    oneLine(await runInProcess(['run', same(link)]), /devices\.spare: .*one-link\.img is the same file as devices\.main/);
    oneLine(await runInProcess(['run', same(path.join(tmp.dir, '.', 'one.img'))]), /is the same file as devices\.main/);
  });

  it('a blank spare that is too small says so, with the minimum, for each policy', async () => {
    const tiny = scenario('tiny', { main: { size: '256MiB' }, spare: { size: '4KiB' } });
    oneLine(
      await runInProcess(['run', tiny]),
      /^remapsim: devices\.spare: 4 KiB \(8 sectors\) is too small: the safe policy needs a spare of at least 60 KiB \(120 sectors\)$/m,
    );
    oneLine(
      await runInProcess(['run', tiny, '--policy', 'dm-remap-v4']),
      /devices\.spare: 4 KiB \(8 sectors\) is too small: dm-remap-v4 needs, for a main device of 256 MiB \(524288 sectors\), a spare of at least 7083 KiB \(14166 sectors\)/,
    );
    const atMin = scenario('at-min', { main: { size: '8MiB' }, spare: { size: '60KiB' } }, [{ rw: 'write', bs: '4k', size: '64k' }]);
    expect((await runInProcess(['run', atMin])).code).toBe(0);
    const spare = path.join(tmp.dir, 'small-spare.img');
    fs.writeFileSync(spare, '');
    fs.truncateSync(spare, 6 << 10);
    oneLine(
      await runInProcess(['run', scenario('tiny-path', { main: { size: '8MiB' }, spare: { path: spare } })]),
      /devices\.spare: 6 KiB \(12 sectors\) is too small: the safe policy needs/,
    );
  });
});
