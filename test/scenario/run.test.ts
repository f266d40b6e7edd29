import { describe, expect, it } from 'vitest';
import { DEFAULT_SCENARIO } from '../../src/scenario/default.js';
import { loadScenario } from '../../src/scenario/load.js';
import { runScenario } from '../../src/scenario/run.js';
import { type ScenarioInput, validateScenario } from '../../src/scenario/schema.js';

const short = (over: Partial<ScenarioInput> = {}) => validateScenario({ ...DEFAULT_SCENARIO, duration: '1500ms', ...over });

describe('running a scenario', async () => {
  it('the default scenario under the safe policy loses nothing', async () => {
    const r = await runScenario(short());
    expect(r.findings).toBe(0);
    expect(r.verify!.reads.ok).toBeGreaterThan(1000);
    expect(r.remap.remaps).toBeGreaterThan(0); // the initial bad sectors fail writes and get remapped
    expect(r.remap.grownBadBlocks).toBeGreaterThan(0);
    const job = r.fio.jobs[0] as unknown as Record<string, any>;
    expect(job.read.io_bytes).toBeGreaterThan(0);
    expect(job.read.clat_ns.percentile['99.000000']).toBeGreaterThan(0);
    expect(job.verify.reads.ok).toBeGreaterThan(0);
    expect(job.remap.policy).toBe('safe');
  });

  it('under dm-remap-v4 a scenario loses data and the report says where; the safe policy loses none of it', async () => {
    const file = new URL('../fixtures/v4-loses.yaml', import.meta.url).pathname;
    const safe = await runScenario(loadScenario(file));
    expect(safe.findings).toBe(0);
    expect(safe.remap.remaps).toBeGreaterThan(0);
    const r = await runScenario(loadScenario(file), { policy: 'dm-remap-v4' });
    expect(r.findings).toBeGreaterThan(0);
    const v = r.verify!;
    expect(v.reads.corrupt + v.reads.lost).toBeGreaterThan(0);
    expect(v.first.corrupt.length + v.first.lost.length).toBeGreaterThan(0);
  });

  it('is reproducible from its seed', async () => {
    const a = await runScenario(short({ jobs: [{ rw: 'randrw', bs: '4k', size: '8m', verify: 'crc32c', continue_on_error: 'all' }] }));
    const b = await runScenario(short({ jobs: [{ rw: 'randrw', bs: '4k', size: '8m', verify: 'crc32c', continue_on_error: 'all' }] }));
    expect(a.run.jobs[0].read.totalIos).toBe(b.run.jobs[0].read.totalIos);
    expect(a.remap.remaps).toBe(b.remap.remaps);
    expect(a.verify!.reads).toEqual(b.verify!.reads);
  });

  it('runs on the per-CPU engine: the model in every worker, the same verdicts', async () => {
    const file = new URL('../fixtures/v4-loses.yaml', import.meta.url).pathname;
    const scenario = loadScenario(file);
    const steady = { ...scenario, target: { policy: scenario.target.policy } }; // no restarts: the engine serves one target
    const r = await runScenario(steady, { engine: { queues: 2, force: true } });
    expect(r.dataPath.kind).toBe('engine');
    expect(r.findings).toBe(0);
    expect(r.verify!.reads.ok).toBeGreaterThan(100);
    expect(r.verify!.reads.expectedError + r.remap.remaps).toBeGreaterThan(0);
    const st = (r.dataPath as { kind: 'engine'; stats: { queues: Array<{ executed: number }> } }).stats;
    expect(st.queues.reduce((a, q) => a + q.executed, 0)).toBeGreaterThan(100);
    const v4 = await runScenario(steady, { policy: 'dm-remap-v4', engine: { queues: 2, force: true } });
    expect(v4.dataPath).toEqual({ kind: 'sync', why: 'the dm-remap-v4 policy runs on one thread' });
  });

  it('catches a flakey layer that drops writes', async () => {
    const r = await runScenario(
      validateScenario({
        name: 'drop',
        duration: '2500ms',
        devices: { main: { size: '16M' }, spare: { size: '4M' } },
        faults: { main: { flakey: { up: 1, down: 1, features: ['drop_writes'] } } },
        jobs: [{ rw: 'randrw', bs: '4k', verify: 'crc32c', continue_on_error: 'all', time_based: 1 }],
      }),
    );
    expect(r.verify!.reads.stale + r.verify!.reads.lost).toBeGreaterThan(0);
    expect(r.findings).toBeGreaterThan(0);
  });
});
