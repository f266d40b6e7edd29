import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadScenario } from '../../src/scenario/load.js';
import { parseScenarioSize, validateScenario } from '../../src/scenario/schema.js';
import { DEFAULT_SCENARIO } from '../../src/scenario/default.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir();
afterAll(() => tmp.cleanup());

const minimal = { devices: { main: { size: '64M' }, spare: { size: '8M' } }, jobs: [{ rw: 'randread', bs: '4k' }] };

describe('scenario validation', () => {
  it('fills defaults and reads sizes and times', () => {
    const s = validateScenario(minimal);
    expect(s.devices.main.size).toBe(64 << 20);
    expect(s.duration).toBe(10e9);
    expect(s.target.policy).toBe('safe');
    expect(validateScenario({ ...minimal, duration: '1500ms' }).duration).toBe(1.5e9);
    expect(validateScenario({ ...minimal, duration: 2 }).duration).toBe(2e9);
    expect(validateScenario(DEFAULT_SCENARIO).devices.main.size).toBe(256 * 2 ** 20);
  });

  it('names every wrong field with its path', () => {
    const bad = {
      devices: { main: { size: '12 parsecs' }, spare: {} },
      faults: { main: { growth: [{ rate: -1 }], writeFailCount: 300 } },
      target: { policy: 'yolo' },
      jobs: [],
      colour: 'blue',
    };
    let msg = '';
    try {
      validateScenario(bad, 's.yaml');
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toMatch(/^s\.yaml: devices\.main\.size: size: '12 parsecs' is not a size/m);
    expect(msg).toMatch(/s\.yaml: devices\.spare: give either size .* or path/);
    expect(msg).toMatch(/s\.yaml: faults\.main\.growth\[0\]\.rate: /);
    expect(msg).toMatch(/s\.yaml: faults\.main\.writeFailCount: /);
    expect(msg).toMatch(/s\.yaml: target\.policy: /);
    expect(msg).toMatch(/s\.yaml: jobs: /);
    expect(msg).toMatch(/s\.yaml: \(top level\): .*colour/);
  });

  it('sizes: binary K/M/G and KiB/MiB, decimal KB/MB', () => {
    expect(parseScenarioSize('256MiB', 'x')).toBe(268435456);
    expect(parseScenarioSize('1G', 'x')).toBe(2 ** 30);
    expect(parseScenarioSize('500MB', 'x')).toBe(5e8);
    expect(() => parseScenarioSize('1.5', 'devices.main.size')).toThrow(/devices\.main\.size: '1\.5' is not a whole positive number of bytes/);
  });

  it('loads YAML and JSON files and points at syntax errors', () => {
    const y = path.join(tmp.dir, 'a.yaml');
    fs.writeFileSync(y, 'devices:\n  main: { size: 64M }\n  spare: { size: 8M }\njobs:\n  - { rw: read, bs: 1m }\n');
    expect(loadScenario(y).jobs[0]).toEqual({ rw: 'read', bs: '1m' });
    const broken = path.join(tmp.dir, 'b.yaml');
    fs.writeFileSync(broken, 'devices:\n  main: { size: 64M\n jobs: [\n');
    expect(() => loadScenario(broken)).toThrow(/b\.yaml:\d+: not valid YAML/);
    const j = path.join(tmp.dir, 'c.json');
    fs.writeFileSync(j, '{"devices": ');
    expect(() => loadScenario(j)).toThrow(/c\.json: not valid JSON/);
    expect(() => loadScenario(path.join(tmp.dir, 'none.yaml'))).toThrow(/none\.yaml: cannot read the scenario \(no such file\)/);
  });
});
