/**
 * Two processes on the same backing files (issue 17, finding 1): a second
 * `remapsim serve --table` on files a first one serves is refused in one
 * line naming the first's pid (exit 2), as are the other writers (run, bench,
 * import); readers (inspect, scan, export) run and say a writer holds it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN_SECTORS = 131072;

function startServe(args: string[]): { child: ChildProcess; ready: Promise<void>; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'serve', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const ready = new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (out.includes('Stop with')) {
        clearInterval(t);
        resolve();
      } else if (child.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`remapsim serve exited ${child.exitCode}: ${out}`));
      }
    }, 50);
  });
  return { child, ready, output: () => out };
}

function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

describe('a second writer on the same devices (two processes)', () => {
  const tmp = tmpDir('remapsim-2nd-');
  const main = path.join(tmp.dir, 'main.img');
  const spare = path.join(tmp.dir, 'spare.img');
  const table = `0 ${MAIN_SECTORS} remap ${main} ${spare}`;
  let first: ReturnType<typeof startServe>;

  beforeAll(async () => {
    FileDevice.createSparse(main, MAIN_SECTORS * 512);
    FileDevice.createSparse(spare, 16 << 20);
    fs.writeFileSync(path.join(tmp.dir, 'bad-a.txt'), '100\n101\n');
    fs.writeFileSync(path.join(tmp.dir, 'bad-b.txt'), '5000\n');
    first = startServe(['--socket', path.join(tmp.dir, 'a.sock'), '--table', table, '--bad-sectors', path.join(tmp.dir, 'bad-a.txt')]);
    await first.ready;
  }, 30_000);

  afterAll(async () => {
    if (first.child.exitCode === null) first.child.kill('SIGKILL');
    tmp.cleanup();
  });

  it("a second serve --table on the same files exits 2 in one line naming the first one's pid", () => {
    const r = runCli(['serve', '--socket', path.join(tmp.dir, 'b.sock'), '--table', table, '--bad-sectors', path.join(tmp.dir, 'bad-b.txt')]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`${main}: in use by another writer, pid ${first.child.pid} (remapsim serve --socket`);
    expect(fs.existsSync(path.join(tmp.dir, 'b.sock'))).toBe(false);
  });

  it('so are run on a scenario naming the files, bench on the file and import into the spare', () => {
    const scenario = path.join(tmp.dir, 's.json');
    const jobs = [{ name: 'w', rw: 'randwrite', bs: '4k', size: '1m', verify: 'crc32c' }];
    fs.writeFileSync(scenario, JSON.stringify({ name: 'on-served', devices: { main: { path: main }, spare: { path: spare } }, jobs }));
    const run = runCli(['run', scenario]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`in use by another writer, pid ${first.child.pid}`);
    const bench = runCli(['bench', '--rw', 'write', '--bs', '4k', '--size', '1m', '--target', `file:${main}`]);
    expect(bench.code).toBe(2);
    expect(bench.stderr.trim()).toMatch(new RegExp(`^remapsim: ${main}: in use by another writer, pid ${first.child.pid} `));
    const exported = runCli(['export', spare]);
    fs.writeFileSync(path.join(tmp.dir, 't.json'), exported.stdout);
    const imp = runCli(['import', spare, path.join(tmp.dir, 't.json')]);
    expect(imp.code).toBe(2);
    expect(imp.stderr).toContain(`${spare}: in use by another writer, pid ${first.child.pid}`);
  });

  it('readers run and say that a writer holds what they show', () => {
    const ins = runCli(['inspect', spare]);
    expect(ins.stdout).toContain('remapsim safe-policy metadata');
    expect(ins.stderr).toContain(`remapsim: note: ${spare} is in use by a writer, pid ${first.child.pid}`);
    expect(ins.stderr).toContain('may change while this reads it');
    const exp = runCli(['export', spare]);
    expect(exp.code).toBe(0);
    expect(JSON.parse(exp.stdout).format).toBe('remapsim-safe');
    expect(exp.stderr).toContain(`pid ${first.child.pid}`);
    const scan = runCli(['scan', main, '--json']);
    expect(scan.code).toBe(0);
    expect(scan.stderr).toContain(`remapsim: note: ${main} is in use by a writer, pid ${first.child.pid}`);
    JSON.parse(scan.stdout);
  });

  it('once the first one stops, the files are free', async () => {
    await stopped(first.child);
    const second = startServe(['--socket', path.join(tmp.dir, 'c.sock'), '--table', table, '--bad-sectors', path.join(tmp.dir, 'bad-b.txt')]);
    try {
      await second.ready;
    } finally {
      await stopped(second.child);
    }
    const ins = runCli(['inspect', spare]);
    expect(ins.stderr).not.toContain('in use by a writer');
  }, 30_000);
});
