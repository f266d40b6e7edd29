import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir();
afterAll(() => tmp.cleanup());

describe('remapsim run', () => {
  it('runs the default scenario: safe exits 0, dm-remap-v4 exits 1 and lists what it lost', () => {
    const json = path.join(tmp.dir, 'r.json');
    const safe = runCli(['run', '--duration', '1500ms', '--json', json]);
    expect(safe.code).toBe(0);
    expect(safe.stdout).toMatch(/scenario 'default'.*policy safe/);
    expect(safe.stdout).toMatch(/verdict: no acknowledged data lost/);
    const fio = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(fio['fio version']).toMatch(/^remapsim-/);
    expect(fio.jobs[0].read.clat_ns.percentile).toHaveProperty('99.000000');
    expect(fio.jobs[0].verify.run.findings).toBe(0);
    const v4 = runCli(['run', new URL('../fixtures/v4-loses.yaml', import.meta.url).pathname, '--policy', 'dm-remap-v4']);
    expect(v4.code).toBe(1);
    expect(v4.stdout).toMatch(/(corrupt|lost).*first sectors: \d+/);
    expect(v4.stdout).toMatch(/verdict: \d+ units of acknowledged data lost/);
  });

  it('prints fio-shaped JSON on stdout and compares policies', () => {
    const j = runCli(['run', '--duration', '1s', '--output-format', 'json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout).jobs[0].jobname).toBe('mixed');
    const c = runCli(['run', '--duration', '1s', '--compare-policies']);
    expect(c.stdout).toMatch(/^\s+safe\s+dm-remap-v4$/m);
    expect(c.stdout).toMatch(/^verdict\s+nothing lost/m);
  });

  it('refuses bad input in one line per problem, exit 2', () => {
    const bad = path.join(tmp.dir, 'bad.yaml');
    fs.writeFileSync(bad, 'devices:\n  main: { size: 64M }\n  spare: { size: 8M }\njobs:\n  - { rw: sideways, bs: 4k }\n');
    const r = runCli(['run', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/jobs\[0\]: rw: /);
    expect(r.stderr).not.toMatch(/\s+at /);
    expect(runCli(['run', '--policy', 'yolo']).stderr).toMatch(/--policy: unknown policy 'yolo' \(allowed: safe, dm-remap-v4\)/);
    expect(runCli(['run', '--duration', 'forever']).code).toBe(2);
    expect(runCli(['run', '--seed', '-3']).stderr).toMatch(/--seed: must be an integer/);
  });
});
