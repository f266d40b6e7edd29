/**
 * The module's inverted mutex_trylock in its status handler: a table load
 * (dm's IMA measurement calls the status handler) leaves the health mutex
 * locked; an I/O error then queues error analysis, which waits for the
 * mutex, and with it every later work item; remove waits for ever in
 * drain_workqueue(). compare reports that hang, as the model predicted, with
 * the blocked tasks' stacks, writes its report before teardown, and exits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareScenario, type ComparisonReport } from '../../../src/compare/run.js';
import { needsModule, smallScenario } from './helpers.js';

test('an I/O error after a table load, no status call, then remove: the remove hangs, predicted and reported', { skip: needsModule }, async () => {
  let early: ComparisonReport | undefined;
  const t0 = Date.now();
  const r = await compareScenario(smallScenario('hang'), {
    trace: [
      { kind: 'read', sector: 64, sectors: 8 },
      { kind: 'write', sector: 0, sectors: 8 },
      { kind: 'remove', suspendFirst: false },
    ],
    callTimeoutMs: 8000,
    beforeTeardown: (x) => {
      early = structuredClone(x);
    },
  });
  assert.ok(Date.now() - t0 < 120_000, 'compare gave up on the stuck call and went on');
  assert.equal(r.counts.errorsKernel, 1);
  assert.equal(r.counts.errorsModel, 1);
  assert.equal(r.differenceCount, 0, JSON.stringify(r.differences));
  assert.equal(r.wedged?.kind, 'hang');
  assert.equal(r.wedged?.step, 2);
  const f = r.findings.find((x) => x.kind === 'hang');
  assert.ok(f, JSON.stringify(r.findings));
  assert.equal(f.predicted, true);
  assert.match(f.detail, /dm remove .* did not return within 8\.0 s/);
  assert.deepEqual(f.reproduction.steps, ['0: read 8 sectors at 64', '1: write 8 sectors at 0', '2: remove']);
  // sysrq 'w' put the blocked tasks in the log: the remove in drain_workqueue, the analysis waiting for the mutex
  assert.ok(
    f.log.some((l) => /drain_workqueue/.test(l)),
    f.log.join('\n'),
  );
  assert.ok(
    f.log.some((l) => /dm_remap_error_analysis_work/.test(l)),
    f.log.join('\n'),
  );
  assert.ok(early, 'the report was handed over before teardown');
  assert.equal(early.findings.length, r.findings.length);
  assert.ok(
    r.teardown!.leftBehind.some((x) => /hang-\d+-remap .*wedged/.test(x)),
    r.teardown!.leftBehind.join('\n'),
  );
});
