/**
 * `remapsim stack up|down` for a scenario: dm-dust with its bad sectors and
 * the real dm-remap-v4 module on top, built and torn down from the command
 * line. (`remapsim compare` runs in test/vm/lifecycle/, a VM each.)
 * Runs in the VM: `npm run test:kernel`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadStackState } from '../../src/kernel/stack.js';
import { control, NOT_IN_VM, scratchDir } from './helpers.js';
import { runInProcess } from '../cli/in-process.js';

assert.ok(fs.existsSync('/dev/mapper/control'), NOT_IN_VM);
const dm = control();
const dir = scratchDir();

test('remapsim stack up and down for a scenario', async () => {
  const file = path.join(dir, 'cmp.yaml');
  fs.writeFileSync(
    file,
    JSON.stringify({ name: 'stk', devices: { main: { size: '16M' }, spare: { size: '8M' } }, faults: { main: { badSectors: [64] } }, jobs: [{ rw: 'read' }] }),
  );
  const stateFile = path.join(dir, 'stk.stack.json');
  const up = await runInProcess(['stack', 'up', file, '--dir', dir, '--state', stateFile]);
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /^top: \/dev\/mapper\/stk-/m);
  const state = loadStackState(stateFile);
  assert.ok(dm.listDevices().some((d) => d.name === state.devices[0].name));
  const down = await runInProcess(['stack', 'down', stateFile]);
  assert.equal(down.code, 0, down.stderr);
  assert.deepEqual(
    dm.listDevices().filter((d) => d.name.startsWith('stk-')),
    [],
  );
});
