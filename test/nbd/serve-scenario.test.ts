/**
 * `remapsim serve SCENARIO`: a scenario's model (its layers and growing bad
 * sectors) served as a real process, read by a real client, stopped by SIGTERM.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { readFioJson, runToolSync } from './tools.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = tmpDir('remapsim-serve-scenario-');
afterAll(() => tmp.cleanup());

function hasNbdinfo(): string | undefined {
  try {
    execFileSync('nbdinfo', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'nbdinfo (libnbd-bin) is not installed';
  }
}

function hasFio(): string | undefined {
  try {
    execFileSync('fio', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'fio is not installed';
  }
  return /\bnbd\b/.test(execFileSync('fio', ['--enghelp'], { encoding: 'utf8' })) ? undefined : 'this fio has no nbd engine';
}

/** `remapsim serve ARGS` as a process, once it says it is up (or 30 s passed); its stdout and stderr together. */
async function startServe(args: string[]): Promise<{ child: ChildProcess; output: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'serve', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const deadline = Date.now() + 30_000;
  while (!/Stop with Ctrl-C/.test(out) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return { child, output: () => out, exited };
}

describe.skipIf(skipReason(hasNbdinfo(), 'serving a scenario'))('remapsim serve SCENARIO', () => {
  it('serves the model with its fault layers until SIGTERM, then removes its files', async () => {
    const sock = path.join(tmp.dir, 's.sock');
    const fixture = path.join(root, 'test/fixtures/v4-loses.yaml');
    const { child, output, exited } = await startServe([fixture, '--socket', sock]);
    expect(output()).toMatch(/layers {4}: main\.dust \(dust\), target \(remap\)/);
    const info = execFileSync('nbdinfo', ['--json', `nbd+unix:///?socket=${sock}`], { encoding: 'utf8' });
    expect(JSON.parse(info).exports[0]['export-size']).toBe(16 << 20);
    // the scenario's bad sectors are in the served dust layer
    const dust = runCli(['status', sock, '--layer', 'main.dust']);
    expect(dust.stdout).toMatch(/dust .* fail_read_on_bad_block/);
    expect(runCli(['message', sock, '--layer', 'main.dust', 'queryblock', '64']).stdout).toMatch(/block 64 found in badblocklist/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output()).toMatch(/SIGTERM: stopped after \d+ connection\(s\).*flush OK/);
    expect(fs.existsSync(sock)).toBe(false);
  }, 60_000);

  it.skipIf(skipReason(hasFio(), 'fio against the engine-served model'))(
    'serves through the per-CPU engine: fio crc32c verify at iodepth 16 over bad sectors, nothing lost, every write failure remapped',
    async () => {
      const sock = path.join(tmp.dir, 'e.sock');
      const scenario = path.join(tmp.dir, 'engine.yaml');
      const bad = Array.from({ length: 40 }, (_, i) => (i * 7919 * 8 + 8) % 65536);
      fs.writeFileSync(
        scenario,
        [
          'name: engine-serve',
          'seed: 3',
          'devices:',
          '  main: { size: 32MiB }',
          '  spare: { size: 8MiB }',
          'faults:',
          '  main:',
          `    badSectors: [${bad.join(', ')}]`,
          '    writeFailCount: 3',
          'target: { policy: safe }',
          'jobs:',
          '  - { name: unused, rw: read, bs: 4k, size: 1m }',
        ].join('\n'),
      );
      const { child, output, exited } = await startServe([scenario, '--socket', sock, '--engine', 'workers', '--queues', '2']);
      expect(output()).toMatch(/data path : per-CPU engine, 2 queue\(s\)/);
      const json = path.join(tmp.dir, 'engine-fio.json');
      // the whole device is written before it is verified: each bad sector fails its first writes (3, more than
      // the target's retry absorbs) and is remapped
      runToolSync(
        'fio',
        [
          '--thread',
          '--name=v',
          '--ioengine=nbd',
          `--uri=nbd+unix:///?socket=${sock}`,
          '--rw=randwrite',
          '--bs=4k',
          '--iodepth=16',
          '--size=32M',
          '--verify=crc32c',
          '--verify_state_save=0',
          '--output-format=json',
          `--output=${json}`,
        ],
        { cwd: tmp.dir, timeoutS: 120 },
      );
      const job = readFioJson(json).jobs[0];
      expect(job.error).toBe(0);
      expect(job.write.total_ios).toBe(8192);
      expect(job.read.total_ios, 'every block read back and verified').toBe(8192);
      const stats = runCli(['message', sock, 'stats']).stdout;
      const s = Object.fromEntries(
        stats
          .trim()
          .split(' ')
          .map((kv) => kv.split('='))
          .map(([k, v]) => [k, Number(v)]),
      );
      expect(s.write_errors).toBe(bad.length);
      expect(s.remaps).toBe(bad.length);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(output()).toMatch(/SIGTERM: stopped after \d+ connection\(s\).*flush OK/);
    },
    90_000,
  );

  it('takes a scenario or --table, and says which were given when both are', () => {
    const r = runCli(['serve', 'default', '--table', '0 8 remap a b', '--socket', path.join(tmp.dir, 'x.sock')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("remapsim: serve takes a scenario or --table <line>, not both: got scenario 'default' and --table '0 8 remap a b'\n");
  });

  it('with neither, serves the default scenario, as run does', async () => {
    const sock = path.join(tmp.dir, 'd.sock');
    const { child, output, exited } = await startServe(['--socket', sock]);
    expect(output()).toMatch(/^serving 0 524288 remap .*\(256 MiB, 512-byte logical blocks\)$/m);
    expect(output()).toMatch(/layers {4}: main\.dust \(dust\), target \(remap\)/);
    const info = execFileSync('nbdinfo', ['--json', `nbd+unix:///?socket=${sock}`], { encoding: 'utf8' });
    expect(JSON.parse(info).exports[0]['export-size']).toBe(256 << 20);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(fs.existsSync(sock)).toBe(false);
  }, 60_000);
});
