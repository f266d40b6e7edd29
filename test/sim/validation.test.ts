/**
 * The simulator against closed forms and against the real-time mode:
 *   (a) latent errors at random, a sequential scan of period T, uniform reads
 *       at rate r per block: a user read finds a share 1 − (1 − e^(−rT))/(rT)
 *       of the errors first;
 *   (b) blocks that need the spare arriving as a Poisson process exhaust a
 *       spare of k blocks at Erlang(k) times;
 *   (c) a short horizon in virtual time matches `remapsim run` in real time
 *       on the same scenario.
 */
import { describe, expect, it } from 'vitest';
import { resolveSimConfig, simSourceFromText } from '../../src/sim/config.js';
import { simulateRun } from '../../src/sim/run.js';
import { erlangCdf, erlangQuantile, ksCritical05, ksStatistic, quantile, userFirstShare, wilson } from '../../src/sim/stats.js';
import { runScenario } from '../../src/scenario/run.js';
import { validateScenario } from '../../src/scenario/schema.js';
import { setHugePageAdvice } from '../../src/sys/huge-pages.js';

setHugePageAdvice(false);

const GIB = 2 ** 30;

describe('validation against closed forms', () => {
  it('(a) scrub vs random reads: the share a user read finds first is 1 - (1 - e^-rT)/(rT)', () => {
    const T = 1000; // seconds per scan pass
    const blocks = GIB / 4096;
    const rows: string[] = [];
    for (const rT of [0.2, 1, 5]) {
      const r = rT / T;
      const text = `
name: scrub-vs-reads
devices: { main: { size: 1GiB, logicalBlockSize: 4096 }, spare: { size: 64MiB, logicalBlockSize: 4096 } }
scanner: { rate: ${GIB / T / 1e6}, busyFactor: 1 }
jobs: [{ name: reads, rw: randread, bs: 4k }]
simulate:
  horizon: 6000s
  workload: { iops: ${r * blocks} }
  faults: { latentErrors: [{ rate: 0.2, burstMean: 1, followProbability: 0, maxEpisodes: 800 }] }
`;
      const cfg = resolveSimConfig(simSourceFromText(text, 'scrub.yaml'));
      const res = simulateRun(cfg, 11);
      const d = res.detection;
      const found = d.scannerFirst + d.userFirst;
      const ci = wilson(d.userFirst, found);
      const expected = userFirstShare(rT);
      rows.push(
        `rT=${rT}: user first ${d.userFirst}/${found} = ${ci.point.toFixed(3)} [${ci.lo.toFixed(3)}, ${ci.hi.toFixed(3)}], closed form ${expected.toFixed(3)}`,
      );
      expect(d.appeared).toBe(800);
      expect(d.undiscovered).toBe(0);
      expect(expected).toBeGreaterThanOrEqual(ci.lo);
      expect(expected).toBeLessThanOrEqual(ci.hi);
    }
    console.log(rows.join('\n'));
  });

  it('(b) Poisson arrivals exhaust a spare of k blocks at Erlang(k) times', () => {
    const perDay = 1;
    const text = `
name: erlang
devices: { main: { size: 256MiB, logicalBlockSize: 4096 }, spare: { size: 96KiB, logicalBlockSize: 4096 } }
scanner: { rate: ${(256 * 2 ** 20) / 60 / 1e6}, busyFactor: 1 }
jobs: [{ name: idle, rw: randread, bs: 4k }]
simulate:
  horizon: 40d
  samples: 4
  workload: { iops: 0.000001 }
  faults: { weakSectors: [{ rate: ${perDay}/d, failFraction: 0, readLatency: 100ms }] }
`;
    const cfg = resolveSimConfig(simSourceFromText(text, 'erlang.yaml'));
    const times: number[] = [];
    let k = 0;
    let events = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const r = simulateRun(cfg, seed);
      k = r.spare.total;
      events = Math.max(events, r.events);
      if (r.spare.exhaustedAt !== null) times.push(r.spare.exhaustedAt);
    }
    expect(k).toBe(10);
    // the scanner costs an event where it reaches a weak block, not a pass over the device: 57,600 passes of 60 s,
    // and the weak blocks that found the spare full are not read again pass after pass (nothing can change for them)
    expect(events).toBeLessThan(500);
    const rate = perDay / 86400;
    // Erlang(10, 1/day) is past 40 days with probability ~1e-8: every run ran out
    expect(times.length).toBe(300);
    const d = ksStatistic(times, (t) => erlangCdf(k, rate, t));
    const sorted = [...times].sort((a, b) => a - b);
    const q = [0.1, 0.5, 0.9].map((p) => ({ p, sim: quantile(sorted, p) / 86400, erlang: erlangQuantile(k, rate, p) / 86400 }));
    console.log(
      `(b) k=${k}: KS D=${d.toFixed(4)} (5% critical ${ksCritical05(times.length).toFixed(4)}); ${q.map((x) => `p${x.p * 100} ${x.sim.toFixed(2)} d vs ${x.erlang.toFixed(2)} d`).join(', ')}`,
    );
    expect(d).toBeLessThan(ksCritical05(times.length));
    for (const x of q) expect(Math.abs(x.sim / x.erlang - 1)).toBeLessThan(0.1);
  });
});

describe('validation against the real-time mode', () => {
  it('(c) a short horizon in virtual time matches remapsim run on the same scenario', async () => {
    const scenario = {
      name: 'short',
      seed: 5,
      duration: '2s',
      devices: { main: { size: '32MiB' }, spare: { size: '16MiB' } },
      faults: { main: { latentErrors: [{ rate: 4, burstMean: 2, followProbability: 0.3, followMean: '500ms', followDistance: 64 }] } },
      scanner: { rate: 16 },
      jobs: [{ name: 'mixed', rw: 'randrw', rwmixread: 50, bs: '4k', rate_iops: 500, verify: 'crc32c', continue_on_error: 'all', time_based: 1 }],
    };
    // virtual time: many runs of the same scenario (its own per-second rates, its job's rate_iops)
    const cfg = resolveSimConfig(simSourceFromText(JSON.stringify({ ...scenario, simulate: { horizon: '2s', samples: 2 } }), 'short.json'));
    expect(cfg.workload.iops).toBe(1000);
    // user-visible read errors (not the oracle's tally: the simulator's read-back at the horizon reads every unit a
    // fault touched, which it takes to hold data written long ago; `remapsim run` reads back only what its job wrote)
    const metrics = (r: { bad: number; remaps: number; errors: number; scanner: number }) => r;
    const sims = Array.from({ length: 300 }, (_, i) => {
      const r = simulateRun(cfg, 1000 + i);
      return metrics({ bad: r.faults.badBlocks, remaps: r.spare.remaps, errors: r.errors.read, scanner: r.detection.scannerFirst });
    });
    // real time, two runs
    const reals = [];
    for (const seed of [5, 6]) {
      const res = await runScenario(validateScenario({ ...scenario, seed }));
      reals.push(
        metrics({
          bad: res.health!.detection!.appeared,
          remaps: res.remap.remaps,
          errors: res.run.jobs.reduce((a, j) => a + j.read.errors, 0),
          scanner: res.health!.detection!.scannerFirst,
        }),
      );
    }
    const lines: string[] = [];
    for (const key of ['bad', 'remaps', 'errors', 'scanner'] as const) {
      const xs = sims.map((s) => s[key]);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
      const real = reals.reduce((a, r) => a + r[key], 0) / reals.length;
      lines.push(`${key}: real ${reals.map((r) => r[key]).join(', ')} (mean ${real}); virtual mean ${mean.toFixed(2)}, sd ${sd.toFixed(2)}`);
      // the mean of two real runs lies within 3 standard errors of the simulated mean
      expect(Math.abs(real - mean)).toBeLessThanOrEqual((3 * sd) / Math.sqrt(reals.length) + 1);
    }
    console.log(`(c) ${lines.join('; ')}`);
    // the same faults arrive: neither mode is degenerate
    expect(sims.reduce((a, s) => a + s.bad, 0) / sims.length).toBeGreaterThan(10);
  }, 60_000);
});
