/**
 * The scenario wiring of the stochastic faults and the scanner, as the
 * scenario builder and runner use it (the same calls, in the same order, as
 * the integration code for src/scenario/build.ts and run.ts): a file, the
 * stochastic layers, a dust list, the safe target, the monitor, the runner
 * ticking both, and the oracle judging every read. Simulated time, so the
 * run is exact and quick. Also the scenario schema's new fields.
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { StochasticFaults } from '../../src/faults/stochastic-stack.js';
import { openLayers } from '../../src/stack/layers.js';
import { DetectionTracker } from '../../src/health/monitor.js';
import { scenarioHealthMonitor } from '../../src/health/scenario.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { validateScenario, type Scenario } from '../../src/scenario/schema.js';
import { ManualClock } from '../../src/util/clock.js';
import { Random } from '../../src/util/random.js';
import { jobFromRecord } from '../../src/workload/job.js';
import { Oracle } from '../../src/workload/oracle.js';
import { runJobs } from '../../src/workload/runner.js';
import { VerifyPattern } from '../../src/workload/verify-pattern.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-scenario-health-');
afterAll(() => tmp.cleanup());
let n = 0;

const S = 1e9;

function scenario(scanner: boolean, lbs: 512 | 4096 = 4096): Scenario {
  return validateScenario({
    seed: 7,
    duration: '30s',
    devices: { main: { size: '16MiB', logicalBlockSize: lbs }, spare: { size: '8MiB', logicalBlockSize: lbs } },
    faults: {
      main: {
        latentErrors: [{ rate: 0.5, burstMean: 2, followProbability: 0.3, followMean: '3s' }],
        weakSectors: [{ rate: 0.3, readLatency: '80ms', failAfter: '20s' }],
        transientErrors: { probability: 0.001 },
      },
    },
    ...(scanner ? { scanner: { rate: 32 } } : {}),
    jobs: [{ name: 'verified', rw: 'randrw', bs: '4k', rate_iops: 200, verify: 'crc32c', continue_on_error: 'all', time_based: 1, runtime: '30s' }],
  });
}

/** What buildScenario + runScenario do with these fields, for the main device and the safe or v4 policy. */
function run(sc: Scenario, policy: 'safe' | 'dm-remap-v4') {
  const clock = new ManualClock();
  const random = new Random(sc.seed ^ 0x6a09e667);
  const spec = sc.devices.main;
  const file = path.join(tmp.dir, `main${n++}.img`);
  FileDevice.createSparse(file, spec.size!);
  const faults = sc.faults.main!;
  const dev = FileDevice.open(file, { logicalBlockSize: spec.logicalBlockSize });
  const blockBytes = faults.dustBlockSize ?? dev.logicalBlockSize;
  // build.ts, in stack(): the weak and transient layers (one seed each, in that order), then the dust layer
  const t = faults.transientErrors;
  const sl = openLayers(
    {
      file: { path: file },
      weak: faults.weakSectors.length > 0 ? { blockSectors: blockBytes / 512, seed: random.nextU32() } : undefined,
      transient: t && { probability: t.probability, region: t.region, blockSectors: blockBytes / 512, seed: random.nextU32() },
      dust: { blockSize: blockBytes },
    },
    { clock, field: 'faults.main', file: dev },
  );
  const dust = sl.dust!;
  // ... and over the dust layer:
  const stochastic = new StochasticFaults('faults.main', faults, dust, sl, random.fork(), clock.nowNs());
  const spareFile = path.join(tmp.dir, `spare${n++}.img`);
  FileDevice.createSparse(spareFile, sc.devices.spare.size!);
  const spare = FileDevice.open(spareFile, { logicalBlockSize: sc.devices.spare.logicalBlockSize });
  const target = policy === 'safe' ? new SafeRemapTarget({ main: dust, spare, reservedSectors: 64 }) : new DmRemapV4Target({ main: dust, spare, clock });
  const tracker = new DetectionTracker(dust.sectorsPerBlock);
  stochastic.onBad((s, c, t) => tracker.appeared(s, c, t));
  const monitor = scenarioHealthMonitor(target, sc.scanner, { clock, tracker });
  const isKnownBad = (s: number, c: number): boolean => dust.hasBadIn(s, c) || stochastic.isTransient(s, c);
  // run.ts:
  const pattern = new VerifyPattern({ unitSize: 4096, runId: 1, seed: sc.seed });
  const oracle = new Oracle({ pattern, units: target.sectors / 8, isKnownBad });
  const r = runJobs({
    device: target,
    jobs: sc.jobs.map((j) => jobFromRecord(j)),
    clock,
    defaultRuntimeNs: sc.duration,
    oracle,
    seed: sc.seed,
    onTick: (now) => {
      stochastic.advance(now);
      monitor?.tick(now);
    },
  });
  oracle.finalPass(target);
  const health = monitor?.report();
  // the module formats its reply and never delivers it: read the text it formats
  const healthMessage = target instanceof DmRemapV4Target ? target.messageText(['health']) : target.message(['health']);
  const out = {
    r,
    verify: oracle.report(),
    health,
    healthMessage,
    stochastic: stochastic.summary(),
    grown: stochastic.grownBadBlocks(),
    detection: tracker.summary(),
    target,
  };
  monitor?.close();
  target.close();
  return out;
}

describe('stochastic faults and the scanner in a scenario run', () => {
  let withScanner: ReturnType<typeof run> | undefined;
  const safeWithScanner = (): ReturnType<typeof run> => (withScanner ??= run(scenario(true), 'safe'));

  it('safe policy with the scanner: finds bad and weak blocks, moves weak data in time, loses nothing', () => {
    const a = safeWithScanner();
    expect(a.r.elapsedNs).toBeGreaterThanOrEqual(30 * S);
    expect(a.grown).toBeGreaterThan(20);
    expect(a.stochastic.transientErrors!.injected).toBeGreaterThan(0);
    expect(a.verify.findings).toBe(0);
    expect(a.verify.reads.expectedError).toBeGreaterThan(0);
    const h = a.health!;
    expect(h.policy).toBe('safe');
    expect(h.scanner.enabled && h.scanner.passes).toBeGreaterThan(5);
    expect(h.scanner.enabled && h.scanner.found.bad).toBeGreaterThan(0);
    expect(h.actions.weakMoved).toBeGreaterThan(0);
    expect(h.prediction.arrivals).toBeGreaterThan(0);
    expect(h.prediction.exhaustionSeconds.lo).not.toBeNull();
    expect(h.score).toBeLessThan(100);
    expect(h.detection!.appeared).toBe(a.grown);
    expect(h.detection!.foundBeforeForeground).toBeGreaterThan(0.5);
    expect(a.healthMessage).toMatch(/^health_score=\d+ .*scanner=on .*found_bad=[1-9]/);
  });

  it('the same run without the scanner moves nothing and finds later', () => {
    const a = safeWithScanner();
    const b = run(scenario(false), 'safe');
    expect(b.health).toBeUndefined();
    // the same seed: the same faults (the scanner does not consume fault randomness)
    expect(b.stochastic.latentErrors).toEqual(a.stochastic.latentErrors);
    expect(b.verify.findings).toBe(0);
    expect(b.detection.scannerFirst).toBe(0);
    expect((b.target as SafeRemapTarget).stats().proactiveRemaps).toBe(0);
    // weak blocks that failed before anyone moved them: their reads fail, where the scanner's run read them
    expect(b.verify.reads.expectedError).toBeGreaterThan(a.verify.reads.expectedError);
  });

  it('dm-remap-v4 with the scanner section: nothing is read; within one table load its remaps stay unused, so the errors stay', () => {
    const v = run(scenario(true, 512), 'dm-remap-v4');
    expect(v.health!.policy).toBe('dm-remap-v4');
    expect(v.health!.scanner.enabled).toBe(false);
    expect(v.detection.scannerFirst).toBe(0);
    expect(v.verify.findings).toBe(0);
    expect(v.verify.reads.expectedError).toBeGreaterThan(0);
    expect((v.target as DmRemapV4Target).snapshot().pending).toBeGreaterThan(0);
    expect(v.healthMessage).toMatch(/^health_score=\d+% scan_count=/); // the module's own reply
  });
});

describe('scenario schema: stochastic faults and the scanner', () => {
  const minimal = { devices: { main: { size: '64M' }, spare: { size: '8M' } }, jobs: [{ rw: 'randread', bs: '4k' }] };

  it('fills the documented defaults', () => {
    const s = validateScenario({
      ...minimal,
      scanner: {},
      faults: { main: { latentErrors: [{ rate: 1 }], weakSectors: [{ rate: 0.1 }], transientErrors: {} } },
    });
    expect(s.scanner).toEqual({
      enabled: true,
      rate: 32,
      busyFactor: 0.25,
      idle: 100e6,
      slice: 131072,
      slow: 50e6,
      retries: 3,
      order: 'sequential',
      staggerRegions: 64,
      sampleEvery: 1e9,
      horizon: 30 * 86400e9,
      confidence: 0.9,
    });
    expect(s.faults.main!.latentErrors[0]).toEqual({
      start: 0,
      rate: 1,
      burstMean: 2,
      burstMax: 64,
      spread: 2,
      followProbability: 0.3,
      followMean: 2e9,
      followDistance: 256,
      writeFailCount: 3,
    });
    expect(s.faults.main!.weakSectors[0]).toEqual({
      start: 0,
      rate: 0.1,
      cluster: 1,
      readLatency: '100ms',
      failAfter: 30e9,
      failFraction: 1,
      writeFailCount: 3,
    });
    expect(s.faults.main!.transientErrors).toEqual({ probability: 1e-4 });
    expect(validateScenario(minimal).scanner).toBeUndefined();
  });

  it('names every wrong field with its path', () => {
    let msg = '';
    try {
      validateScenario(
        {
          ...minimal,
          scanner: { rate: -1, slice: 1000, order: 'random', colour: 1 },
          faults: {
            main: {
              latentErrors: [{ rate: 1, followProbability: 1, region: { from: 10, to: 5 } }],
              weakSectors: [{ failAfter: 'soon' }],
              transientErrors: { probability: 2 },
            },
          },
        },
        's.yaml',
      );
    } catch (err) {
      msg = (err as Error).message;
    }
    for (const re of [
      /s\.yaml: scanner\.rate: /,
      /s\.yaml: scanner\.slice: slice must be a whole number of 512-byte sectors/,
      /s\.yaml: scanner\.order: /,
      /s\.yaml: scanner: .*colour/,
      /s\.yaml: faults\.main\.latentErrors\[0\]\.followProbability: /,
      /s\.yaml: faults\.main\.latentErrors\[0\]\.region: region\.to must be greater than region\.from/,
      /s\.yaml: faults\.main\.weakSectors\[0\]\.rate: /,
      /s\.yaml: faults\.main\.weakSectors\[0\]\.failAfter: /,
      /s\.yaml: faults\.main\.transientErrors\.probability: /,
    ]) {
      expect(msg).toMatch(re);
    }
  });
});
