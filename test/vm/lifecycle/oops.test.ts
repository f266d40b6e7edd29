/**
 * presuspend stops the module's metadata thread and nothing restarts it; the
 * next presuspend (here: remove after suspend and resume) calls
 * kthread_stop() on the stopped thread and the kernel oopses. compare sees
 * the oops in the kernel log, as the model predicted, and goes on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareScenario } from '../../../src/compare/run.js';
import { needsModule, smallScenario } from './helpers.js';

test('suspend, resume, remove: the kernel oopses in kthread_stop, predicted and reported', { skip: needsModule }, async () => {
  const r = await compareScenario(smallScenario('oops'), {
    trace: [
      { kind: 'status' },
      { kind: 'write', sector: 8, sectors: 8 },
      { kind: 'suspend' },
      { kind: 'resume' },
      { kind: 'read', sector: 8, sectors: 8 },
      { kind: 'remove', suspendFirst: false },
    ],
    callTimeoutMs: 8000,
  });
  assert.equal(r.differenceCount, 0, JSON.stringify(r.differences));
  assert.equal(r.wedged?.kind, 'oops');
  const f = r.findings.find((x) => x.kind === 'oops');
  assert.ok(f, JSON.stringify(r.findings));
  assert.equal(f.predicted, true);
  assert.ok(
    f.log.some((l) => /kthread_stop/.test(l)),
    f.log.join('\n'),
  );
});
