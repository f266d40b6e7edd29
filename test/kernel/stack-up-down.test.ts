/**
 * One scenario on the model and on the real kernel stack, operation by
 * operation (`remapsim compare`), and `remapsim stack up|down` for a
 * scenario. Runs in the VM: `npm run test:kernel`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareScenario } from '../../src/scenario/compare.js';
import { validateScenario } from '../../src/scenario/schema.js';
import { loadStackState } from '../../src/kernel/stack.js';
import { control, NOT_IN_VM, scratchDir } from './helpers.js';
import { runInProcess } from '../cli/in-process.js';

assert.ok(fs.existsSync('/dev/mapper/control'), NOT_IN_VM);
const dm = control();
const dir = scratchDir();

const scenario = validateScenario({
  name: 'cmp',
  seed: 5,
  devices: { main: { size: '32M' }, spare: { size: '8M' } },
  faults: { main: { badSectors: [4096, 4097, 20000], growth: [{ rate: 1, cluster: 8 }] } },
  jobs: [{ rw: 'randrw', bs: '4k', size: '8m' }],
});

test('the model and the kernel agree on every operation: statuses, read data, the bad-block lists', () => {
  const r = compareScenario(scenario, { ops: 3000, growthEvery: 200, dir, control: dm });
  assert.equal(r.layers[0], 'dust');
  assert.ok(r.counts.errorsKernel > 0, 'the bad sectors must cause errors, or the comparison proves nothing');
  assert.ok(r.grownBadSectors > 0);
  assert.equal(r.differenceCount, 0, JSON.stringify(r.differences.slice(0, 5)));
  assert.equal(r.counts.errorsModel, r.counts.errorsKernel);
  assert.deepEqual(dm.listDevices().filter((d) => d.name.startsWith('cmp-')), [], 'the stack is torn down');
});

test('remapsim stack up and down for a scenario', async () => {
  const file = path.join(dir, 'cmp.yaml');
  fs.writeFileSync(file, JSON.stringify({ name: 'stk', devices: { main: { size: '16M' }, spare: { size: '8M' } }, faults: { main: { badSectors: [64] } }, jobs: [{ rw: 'read' }] }));
  const stateFile = path.join(dir, 'stk.stack.json');
  const up = await runInProcess(['stack', 'up', file, '--dir', dir, '--state', stateFile]);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /^top: \/dev\/mapper\/stk-/m);
  const state = loadStackState(stateFile);
  assert.ok(dm.listDevices().some((d) => d.name === state.devices[0].name));
  const down = await runInProcess(['stack', 'down', stateFile]);
  assert.equal(down.code, 0, down.stderr);
  assert.deepEqual(dm.listDevices().filter((d) => d.name.startsWith('stk-')), []);
});
