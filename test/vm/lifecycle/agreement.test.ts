/**
 * The lifecycle differential suite: a dense scenario through `remapsim
 * compare`'s full trace (npm run bench:fidelity runs the seeded family) — status
 * polled and left alone, every message, flush and FUA, suspend and resume,
 * a table reload, remove and re-create on the same spare — with bad sectors
 * from the start and growing. The model must agree with the module on every
 * I/O status, every read's data, the status fields, the module's work, the
 * metadata and the spare at each checkpoint, and on how the run ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareScenario } from '../../../src/compare/run.js';
import { formatComparison } from '../../../src/compare/report.js';
import { validateScenario } from '../../../src/scenario/schema.js';
import { needsModule } from './helpers.js';

const dense = validateScenario({
  name: 'dense',
  seed: 3,
  devices: { main: { size: '16M' }, spare: { size: '8M' } },
  faults: { main: { badSectors: [16, 17, 18, 19, 200, 512, 513], growth: [{ rate: 1, cluster: 4, region: { from: 0, to: 1024 } }] } },
  target: { policy: 'dm-remap-v4' },
  jobs: [{ rw: 'randrw', bsrange: '512-8k', size: '512k', io_size: '1g' }],
});

for (const [what, scenario, opts] of [
  [
    'a dense scenario (512-byte to 8 KiB requests over 512 KiB, bad sectors from the start and in clusters of 4)',
    dense,
    { ops: 160, growthEvery: 12, seed: 3 },
  ],
] as const) {
  test(`${what}: model and kernel agree at every step`, { skip: needsModule }, async () => {
    const r = await compareScenario(scenario, { ...opts, callTimeoutMs: 15000 });
    const summary = formatComparison(r);
    assert.ok(r.counts.errorsKernel > 0, `the bad sectors must cause errors, or the comparison proves little\n${summary}`);
    assert.ok(r.counts.checkpoints >= 3, summary);
    assert.equal(r.differenceCount, 0, summary);
    assert.ok(r.agree, summary);
    for (const f of r.findings) assert.ok(f.predicted, `a kernel misbehaviour the model did not predict: ${f.kind}: ${f.detail}\n${summary}`);
  });
}
