/**
 * `remapsim serve SCENARIO`: a scenario's model (its layers and growing bad
 * sectors) served as a real process, read by a real client, stopped by SIGTERM.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';

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

describe.skipIf(skipReason(hasNbdinfo(), 'serving a scenario'))('remapsim serve SCENARIO', () => {
  it('serves the model with its fault layers until SIGTERM, then removes its files', async () => {
    const sock = path.join(tmp.dir, 's.sock');
    const fixture = path.join(root, 'test/fixtures/v4-loses.yaml');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'serve', fixture, '--socket', sock], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    const deadline = Date.now() + 30_000;
    while (!/Stop with Ctrl-C/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(out).toMatch(/layers {4}: main\.dust \(dust\), target \(remap\)/);
    const info = execFileSync('nbdinfo', ['--json', `nbd+unix:///?socket=${sock}`], { encoding: 'utf8' });
    expect(JSON.parse(info).exports[0]['export-size']).toBe(16 << 20);
    // the scenario's bad sectors are in the served dust layer
    const dust = runCli(['status', sock, '--layer', 'main.dust']);
    expect(dust.stdout).toMatch(/dust .* fail_read_on_bad_block/);
    expect(runCli(['message', sock, '--layer', 'main.dust', 'queryblock', '64']).stdout).toMatch(/block 64 found in badblocklist/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toMatch(/SIGTERM: stopped after \d+ connection\(s\).*flush OK/);
    expect(fs.existsSync(sock)).toBe(false);
  }, 60_000);

  it('needs exactly one of a scenario and --table', () => {
    const r = runCli(['serve', 'default', '--table', '0 8 remap a b', '--socket', path.join(tmp.dir, 'x.sock')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a scenario .* or --table <line>, not both/);
  });
});
