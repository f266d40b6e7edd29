import { describe, expect, it } from 'vitest';
import { runScenario } from '../../src/scenario/run.js';
import { validateScenario } from '../../src/scenario/schema.js';

const scenario = (engine: boolean) =>
  validateScenario({
    seed: 3,
    duration: '3s',
    devices: { main: { size: '16MiB' }, spare: { size: '8MiB' } },
    faults: {
      main: {
        latentErrors: [{ rate: 20, followProbability: 0.3 }],
        weakSectors: [{ rate: 5, readLatency: '60ms', failAfter: '1s' }],
        transientErrors: { probability: 0.001 },
        growth: [{ rate: 2, cluster: 2 }],
      },
    },
    scanner: { rate: 64 },
    jobs: [{ name: 'mix', rw: 'randrw', bs: '4k', size: '16m', verify: 'crc32c', continue_on_error: 'all', time_based: 1, rate_iops: engine ? 2000 : 2000 }],
  });

describe('runScenario with stochastic faults and the scanner', () => {
  it('sync path', async () => {
    const r = await runScenario(scenario(false));
    console.log(
      JSON.stringify(
        {
          findings: r.findings,
          verify: r.verify?.reads,
          health: {
            score: r.health?.score,
            scanner: r.health?.scanner,
            actions: r.health?.actions,
            detection: r.health?.detection,
            prediction: r.health?.prediction,
          },
          faults: (r.fio.remapsim as any).faults,
          grown: r.remap.grownBadBlocks,
        },
        null,
        1,
      ).slice(0, 3000),
    );
    expect(r.findings).toBe(0);
    expect(r.health?.scanner.enabled).toBe(true);
  }, 60_000);
  it('engine path', async () => {
    const r = await runScenario(scenario(true), { engine: { queues: 2, force: true } });
    console.log(
      JSON.stringify(
        {
          dataPath: r.dataPath.kind,
          findings: r.findings,
          verify: r.verify?.reads,
          health: { score: r.health?.score, scanner: r.health?.scanner, actions: r.health?.actions, detection: r.health?.detection },
          grown: r.remap.grownBadBlocks,
        },
        null,
        1,
      ).slice(0, 3000),
    );
    expect(r.dataPath.kind).toBe('engine');
    expect(r.findings).toBe(0);
  }, 60_000);
});
