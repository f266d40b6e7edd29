/**
 * The package imports by name: `npm pack` (which builds dist/), installed in
 * a temporary project with npm, runs the README's library example.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tmp.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = tmpDir('remapsim-package-');
afterAll(() => tmp.cleanup());

/** The js block after `<!-- library-example -->` in the README. */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- library-example -->\n```js\n([\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('README.md has no library example');
  return m[1]!;
}

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', timeout: 150_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('the package', () => {
  it("imports by name from another project and runs the README's example", () => {
    const packed = run('npm', ['pack', '--silent', '--pack-destination', tmp.dir], ROOT).trim().split('\n').pop()!;
    const project = path.join(tmp.dir, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'uses-remapsim', private: true, type: 'module' }));
    run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'error', path.join(tmp.dir, packed)], project);
    const manifest = JSON.parse(fs.readFileSync(path.join(project, 'node_modules/remapsim/package.json'), 'utf8'));
    expect(fs.existsSync(path.join(project, 'node_modules/remapsim', manifest.exports['.'].default))).toBe(true);
    expect(fs.existsSync(path.join(project, 'node_modules/remapsim', manifest.exports['.'].types))).toBe(true);
    fs.writeFileSync(path.join(project, 'main.mjs'), readmeExample());
    const out = run(process.execPath, ['main.mjs'], project);
    expect(out).toMatch(/^0 131072 remap v1 dust\(memory\(131072\)\) memory\(16384\) 3 0 3\/\d+ 0 3 0 ok 100\n/);
    expect(out).toMatch(/acknowledged data lost: 0\n$/);
  }, 240_000);
});
