/**
 * Runs a scenario end to end: builds the devices and the target, runs the
 * jobs while bad sectors appear, reads every written block back through the
 * target once the jobs end, and reports fio-shaped results with the oracle's
 * verdict and the target's remap counters.
 */
import type { FioResult } from '../stats/fio-json.js';
import { type DeviceMapJSON, deviceMapOf } from '../status/device-map.js';
import { type TimelineJSON, TimelineRecorder, targetSample } from '../status/timeline.js';
import { SafeRemapTarget } from '../remap/safe-target.js';
import type { DmRemapV4Target } from '../remap/v4-target.js';
import type { Clock } from '../util/clock.js';
import { toFioResult } from '../workload/fio-report.js';
import { checkInFlight, flushInterval, jobFromRecord, minBlockSize, type JobSpec } from '../workload/job.js';
import { Oracle, type OracleReport } from '../workload/oracle.js';
import {
  flushAfterRun,
  flushBeforeRun,
  type RunDurability,
  type RunProgress,
  type RunResult,
  runDurability,
  runJobs,
  runJobsYielding,
} from '../workload/runner.js';
import { VerifyStateSaver } from '../workload/verify-state-file.js';
import type { KnownBadSectors } from '../faults/known-bad.js';
import { Engine, type EngineStats } from '../engine/engine.js';
import { realClock } from '../util/clock.js';
import { newRunId, type VerifyAlgorithm } from '../workload/verify-pattern.js';
import { makeUnitPattern } from '../workload/unit-pattern.js';
import type { HealthReport } from '../health/monitor.js';
import { type BuiltScenario, buildScenario } from './build.js';
import { type Policy, type Scenario, ScenarioError } from './schema.js';

/** Running on the per-CPU engine (worker threads) instead of this thread. */
export interface ScenarioEngineOptions {
  queues?: number;
  numa?: string;
  force?: boolean;
  io?: 'auto' | 'native' | 'js';
}

export interface ScenarioRunOptions {
  policy?: Policy;
  /** The per-CPU engine's settings; absent: one thread. The dm-remap-v4 policy always runs on one thread. */
  engine?: ScenarioEngineOptions;
  /** Overrides the scenario's duration (ns). */
  durationNs?: number;
  workdir?: string;
  clock?: Clock;
  onProgress?: (p: RunProgress) => void;
  /** Skip the read-back of every written block after the jobs. */
  noFinalPass?: boolean;
  /** Sectors known bad on the scenario's main device beyond its own fault layers (a kernel stack under it), with where they came from. */
  knownBad?: { set?: KnownBadSectors; sources: readonly string[] };
  /** Save the oracle's state here (see VerifyStateSaver); the run then goes on one thread. */
  verifyState?: { file: string; minIntervalMs?: number };
  /** With a work directory: remove the images an earlier run left there first. */
  fresh?: boolean;
  /** Aborted (a signal): the jobs end now, the target is flushed and closed, and the read-back of written units is skipped. */
  stop?: AbortSignal;
  /** fio's json+: latency bins in the results. */
  plus?: boolean;
}

export interface RemapSummary {
  policy: Policy;
  status: string;
  remaps: number;
  spareUsed: number;
  spareCapacity: number;
  pending?: number;
  enospc?: number;
  /** Requests the store under a device failed (a full file system, a backing file gone), not its medium; and the last one's errno and device. */
  storeErrors?: number;
  lastStoreError?: string;
  grownBadBlocks: number;
  initialBadBlocks: number;
  mainBadBlocksAtEnd: number;
  /** target.restartEvery: table loads after the first, and why they stopped if they did. */
  restarts?: number;
  restartsStopped?: string;
}

export interface ScenarioResult {
  scenario: Scenario;
  policy: Policy;
  run: RunResult;
  fio: FioResult;
  verify?: OracleReport;
  remap: RemapSummary;
  /** Units of acknowledged data lost, stale or corrupt, plus unexpected errors. */
  findings: number;
  /** Per-second I/O and the target's state over the run (also fio.remapsim.timeline). */
  timeline: TimelineJSON;
  /** Bad, pending and remapped sectors at the end (also fio.remapsim.deviceMap). */
  deviceMap: DeviceMapJSON;
  /** The health monitor's report (scenario `scanner` section), with who found each grown bad block first. */
  health?: HealthReport;
  /** Where the I/O ran: 'engine' with its statistics, or 'sync' (one thread) and why. */
  dataPath: { kind: 'engine'; stats: EngineStats } | { kind: 'sync'; why: string };
  /** The flushes: before the run, by its jobs, at its end (a failed one: the kernel lost buffered writes). */
  durability: RunDurability;
  /** Where known-bad sectors beyond the scenario's own came from (ScenarioRunOptions.knownBad). */
  knownBad: readonly string[];
  verifyState?: { file: string; saves: number };
  /** The run was stopped (ScenarioRunOptions.stop) before its jobs ended: the results hold what ran, without the read-back. */
  stopped: boolean;
}

/** The scenario's jobs; a time-based job without a runtime runs for the scenario's duration. */
export function scenarioJobs(scenario: Scenario, durationNs = scenario.duration): JobSpec[] {
  const jobs = scenario.jobs.map((record, i) => {
    const timeBased = record.time_based !== undefined && record.time_based !== 0 && record.time_based !== false && record.time_based !== '0';
    const withRuntime = timeBased && record.runtime === undefined ? { ...record, runtime: `${Math.max(1, Math.round(durationNs / 1e6))}ms` } : record;
    return jobFromRecord(withRuntime, { source: { file: `jobs[${i}]` } });
  });
  checkInFlight(jobs);
  return jobs;
}

export function remapSummary(built: BuiltScenario, initialBad: number): RemapSummary {
  const t = built.model();
  const restarts = built.restarts();
  const base = {
    policy: built.policy,
    status: t.status(),
    ...(built.scenario.target.restartEvery !== undefined
      ? { restarts: restarts.done, ...(restarts.stopped ? { restartsStopped: restarts.stopped } : {}) }
      : {}),
    grownBadBlocks: built.grownBadBlocks(),
    initialBadBlocks: initialBad,
    mainBadBlocksAtEnd: built.mainDust?.listBadBlocks().length ?? 0,
  };
  if (t instanceof SafeRemapTarget) {
    const s = t.stats();
    const store = s.storeErrors > 0 ? { storeErrors: s.storeErrors, lastStoreError: t.lastStoreError } : {};
    return { ...base, remaps: s.remaps, spareUsed: s.spareUsed, spareCapacity: s.spareTotal, pending: s.pending, enospc: s.enospc, ...store };
  }
  const v = (t as DmRemapV4Target).snapshot();
  return { ...base, remaps: v.remaps, spareUsed: v.nextSpareSector, spareCapacity: v.spareCapacity };
}

export async function runScenario(scenario: Scenario, opts: ScenarioRunOptions = {}): Promise<ScenarioResult> {
  const jobs = scenarioJobs(scenario, opts.durationNs ?? scenario.duration);
  const built = buildScenario(scenario, { policy: opts.policy, workdir: opts.workdir, fresh: opts.fresh, clock: opts.clock });
  try {
    const target = built.target;
    const verifying = jobs.filter((j) => j.verify !== 'none');
    let oracle: Oracle | undefined;
    if (verifying.length > 0) {
      const unitSize = Math.max(target.logicalBlockSize, Math.min(...verifying.map((j) => minBlockSize(j))));
      const pattern = makeUnitPattern({
        unitSize,
        runId: newRunId(),
        seed: scenario.seed,
        algorithm: verifying[0]!.verify as VerifyAlgorithm,
        verifyPattern: verifying[0]!.verifyPattern,
      });
      oracle = new Oracle({
        pattern,
        units: Math.floor((target.sectors * 512) / unitSize),
        isKnownBad: (s, n) => built.isKnownBad(s, n),
        knownBad: opts.knownBad?.set,
        priorContent: built.priorContent,
      });
    }
    if (opts.verifyState && !oracle) throw new ScenarioError(`--verify-state: no job of scenario '${scenario.name}' verifies its data (set verify: crc32c)`);
    const saver =
      opts.verifyState && oracle
        ? new VerifyStateSaver(opts.verifyState.file, oracle, {
            target: {
              description: `model of scenario '${scenario.name}', policy ${built.policy}`,
              sectors: target.sectors,
              logicalBlockSize: target.logicalBlockSize,
            },
            minIntervalMs: opts.verifyState.minIntervalMs,
          })
        : undefined;
    const flushing = jobs.some((j) => flushInterval(j) > 0);
    const initialBad = built.mainDust?.listBadBlocks().length ?? 0;
    const defaultRuntimeNs = opts.durationNs ?? scenario.duration;
    // verify_only replays writes as reads on this thread's runner; the engine's workers would write
    const engineDevice = opts.engine && !flushing && !saver && !jobs.some((j) => j.verifyOnly) ? built.engineDevice() : undefined;
    const priorFlush = flushBeforeRun(target);
    saver?.start();
    let run: RunResult;
    let dataPath: ScenarioResult['dataPath'];
    const clock = opts.clock ?? realClock;
    // the target's state once a second (add health: monitor.report().score, healthSource: 'scanner' when a health monitor runs)
    const health = built.health;
    const sampleState = () => ({
      ...targetSample(built.model()),
      badBlocks: built.mainDust?.badBlockCount,
      ...(health?.policy === 'safe' ? { health: health.score(), healthSource: 'remapsim health monitor' } : {}),
    });
    let timeline = new TimelineRecorder({ startNs: clock.nowNs() });
    if (opts.engine && engineDevice && target instanceof SafeRemapTarget) {
      const engine = await Engine.start({
        device: engineDevice,
        primary: target,
        ...opts.engine,
        maxRequestBytes: Math.max(4096, ...jobs.flatMap((j) => j.directions.map((d) => j.blockSizes[d].max))),
      });
      timeline = new TimelineRecorder({ startNs: realClock.nowNs() }); // the workers have started: t = 0 is now
      timeline.sample(realClock.nowNs(), sampleState(), true);
      // bad sectors keep appearing while the workers run
      const ticker = setInterval(() => {
        const now = realClock.nowNs();
        built.advanceFaults(now);
        // the scanner reads on this thread; the target's shared counters tell it when the workers keep the foreground busy
        health?.tick(now);
        if (timeline.due(now)) timeline.sample(now, sampleState());
      }, 5);
      try {
        run = await engine.runJobs(jobs, { oracle, defaultRuntimeNs, seed: scenario.seed, onProgress: opts.onProgress, stop: opts.stop });
        dataPath = { kind: 'engine', stats: engine.stats() };
      } finally {
        clearInterval(ticker);
        await engine.close();
      }
    } else {
      timeline.sample(clock.nowNs(), sampleState(), true);
      const onTick = (now: number): void => {
        built.advanceFaults(now);
        health?.tick(now);
        if (timeline.due(now)) timeline.sample(now, sampleState());
      };
      const runOpts = {
        device: target,
        jobs,
        clock: opts.clock,
        defaultRuntimeNs,
        oracle,
        seed: scenario.seed,
        onTick,
        onProgress: opts.onProgress,
        onFlush: saver?.onFlush,
        stop: opts.stop,
      };
      // with a stop signal, the event loop gets turns to see it (a signal handler sets it)
      run = opts.stop ? await runJobsYielding(runOpts) : runJobs(runOpts);
      const why = !opts.engine
        ? 'no engine asked for'
        : flushing
          ? 'jobs flush (fsync=, fdatasync=)'
          : saver
            ? '--verify-state'
            : jobs.some((j) => j.verifyOnly)
              ? 'verify_only'
              : 'the dm-remap-v4 policy runs on one thread';
      dataPath = { kind: 'sync', why };
    }
    const endNs = (dataPath.kind === 'engine' ? realClock : clock).nowNs();
    timeline.sample(endNs, sampleState(), true);
    for (const job of run.jobs) timeline.addSeries(job.series.toJSON());
    timeline.finish(endNs);
    const finalFlush = flushAfterRun(target, oracle);
    saver?.finish();
    const stopped = opts.stop?.aborted ?? false;
    if (oracle && !opts.noFinalPass && !stopped) oracle.finalPass(target);
    const deviceMap = deviceMapOf(built.model(), built.mainDust);
    const verify = oracle?.report();
    const remap = remapSummary(built, initialBad);
    const fio = toFioResult(run, { oracle: verify, remap, globalOptions: { scenario: scenario.name, policy: built.policy }, plus: opts.plus });
    const timelineJson = timeline.toJSON();
    const healthReport = health?.report();
    fio.remapsim = {
      dataPath: dataPath.kind === 'engine' ? { kind: 'engine', ...dataPath.stats } : dataPath,
      timeline: timelineJson,
      deviceMap,
      health: healthReport,
      faults: built.stochasticSummary(),
    };
    const durability = runDurability(run, priorFlush, finalFlush);
    fio.remapsim.durability = durability;
    if (opts.knownBad?.set) fio.remapsim.knownBad = { sectors: opts.knownBad.set.sectors, sources: opts.knownBad.sources };
    const verifyState = saver ? { file: saver.file, saves: saver.saves } : undefined;
    if (verifyState) fio.remapsim.verifyState = verifyState;
    return {
      scenario,
      policy: built.policy,
      run,
      fio,
      verify,
      remap,
      findings: verify?.findings ?? 0,
      dataPath,
      timeline: timelineJson,
      deviceMap,
      health: healthReport,
      durability,
      knownBad: opts.knownBad?.sources ?? [],
      verifyState,
      stopped,
    };
  } finally {
    built.close();
  }
}
