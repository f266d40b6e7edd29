/**
 * A scenario run with the timeline and device map recorded exactly as
 * src/scenario/run.ts is to record them (the calls are the ones proposed for
 * runScenario), on a clock that only the latency layers move: the results
 * are the same on every machine.
 */
import type { FioResult } from '../../src/stats/fio-json.js';
import { buildScenario } from '../../src/scenario/build.js';
import { scenarioJobs, remapSummary } from '../../src/scenario/run.js';
import type { Policy, Scenario, ScenarioInput } from '../../src/scenario/schema.js';
import { validateScenario } from '../../src/scenario/schema.js';
import { ManualClock } from '../../src/util/clock.js';
import { toFioResult } from '../../src/workload/fio-report.js';
import { minBlockSize } from '../../src/workload/job.js';
import { Oracle } from '../../src/workload/oracle.js';
import { runJobs } from '../../src/workload/runner.js';
import { VerifyPattern } from '../../src/workload/verify-pattern.js';
import { deviceMapOf } from '../../src/status/device-map.js';
import { type RemapsimResultsBlock, TimelineRecorder, targetSample } from '../../src/status/timeline.js';

const LATENCY = { read: 'lognormal:300us,0.7', write: 'lognormal:500us,0.9' };

/** 16 MiB main, bad sectors growing under a verified random read/write job, latency on both devices; status polled, the target restarted. */
export const REPORT_SCENARIO: ScenarioInput = {
  name: 'report-fixture',
  description: 'bad sectors grow under a verified 4 KiB random read/write job on slow devices',
  seed: 7,
  duration: '4s',
  devices: { main: { size: '16MiB' }, spare: { size: '4MiB' } },
  faults: {
    main: {
      latency: LATENCY,
      badSectors: [64, 72, 80, 20000],
      writeFailCount: 1,
      growth: [{ start: '500ms', rate: 4, cluster: 8, writeFailCount: 1, region: { from: 0, to: 8192 } }],
    },
    spare: { latency: LATENCY },
  },
  target: { policy: 'safe', statusEvery: '100ms', restartEvery: '700ms' },
  jobs: [{ name: 'mixed', rw: 'randrw', bs: '4k', size: '4m', verify: 'crc32c', continue_on_error: 'all', time_based: 1 }],
};

export type FioWithBlock = FioResult & { remapsim: RemapsimResultsBlock & Record<string, unknown> };

/** `plus`: fio's json+ (latency bins), as `--output-format json+` writes it. */
export function runWithTimeline(input: ScenarioInput, policy: Policy, opts: { plus?: boolean } = {}): FioWithBlock {
  const scenario: Scenario = validateScenario(input, 'test scenario');
  const clock = new ManualClock(1e9);
  const jobs = scenarioJobs(scenario);
  const built = buildScenario(scenario, { policy, clock });
  try {
    const target = built.target;
    const verifying = jobs.filter((j) => j.verify !== 'none');
    const unitSize = Math.max(target.logicalBlockSize, Math.min(...verifying.map((j) => minBlockSize(j))));
    const pattern = new VerifyPattern({ unitSize, runId: (scenario.seed * 2654435761) >>> 0, seed: scenario.seed, algorithm: 'crc32c' });
    const oracle = new Oracle({ pattern, units: Math.floor((target.sectors * 512) / unitSize), isKnownBad: (s, n) => built.isKnownBad(s, n) });
    const initialBad = built.mainDust?.listBadBlocks().length ?? 0;

    // ---- the calls proposed for runScenario
    const timeline = new TimelineRecorder({ startNs: clock.nowNs() });
    const sampleState = () => ({ ...targetSample(built.model()), badBlocks: built.mainDust?.badBlockCount });
    timeline.sample(clock.nowNs(), sampleState(), true);
    const run = runJobs({
      device: target,
      jobs,
      clock,
      defaultRuntimeNs: scenario.duration,
      oracle,
      seed: scenario.seed,
      onTick: (now) => {
        built.advanceFaults(now);
        if (timeline.due(now)) timeline.sample(now, sampleState());
      },
    });
    const endNs = clock.nowNs();
    timeline.sample(endNs, sampleState(), true);
    for (const job of run.jobs) timeline.addSeries(job.series.toJSON());
    timeline.finish(endNs);
    oracle.finalPass(target);
    const deviceMap = deviceMapOf(built.model(), built.mainDust);
    // ----

    const verify = oracle.report();
    const remap = remapSummary(built, initialBad);
    const fio = toFioResult(run, { oracle: verify, remap, globalOptions: { scenario: scenario.name, policy: built.policy }, plus: opts.plus });
    fio.remapsim = { ...fio.remapsim, timeline: timeline.toJSON(), deviceMap };
    return fio as FioWithBlock;
  } finally {
    built.close();
  }
}
