/**
 * Every crash point, in process: the crash workload runs on RAM devices and
 * "crashes" at the n-th write to the spare (whole or torn), for every n the
 * run reaches; the model is then reopened from what reached the devices and
 * checked. Then it crashes again a little later, to cover recovery after
 * recovery (a torn tail appended over, repaired copies, checkpoints).
 */
import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { Expectations, checkModel, totalFindings } from '../../scripts/crash/check.js';
import { CrashPointDevice, CrashStop } from '../../scripts/crash/crash-device.js';
import { type CrashGeometry, type CrashPolicy, CrashWorkload, crashDust, crashPattern, modelDevice, openCrashModel } from '../../scripts/crash/workload.js';

const GEOMETRY: CrashGeometry = { mainSectors: 2048, spareSectors: 2048, unitSize: 512, logBlocks: 4 };
const STEPS = 400;
const PATTERN = crashPattern(7, GEOMETRY.unitSize);

interface World {
  main: MemoryDevice;
  spare: MemoryDevice;
  exp: Expectations;
  bad: Map<number, number>;
}

/** Runs the workload from a reopened model until `steps` or the crash at `crashAt` (whole or torn). Returns the spare writes made. */
function runUntilCrash(
  policy: CrashPolicy,
  w: World,
  seed: number,
  genBase: number,
  crashAt: number | undefined,
  torn: boolean,
): { crashed: boolean; writes: number } {
  const spare = new CrashPointDevice(w.spare, {
    crashAtWrite: crashAt,
    torn,
    onCrash: () => {
      throw new CrashStop();
    },
  });
  const dust = crashDust(w.main, [...w.bad.entries()]);
  try {
    const model = openCrashModel(policy, dust, spare, GEOMETRY);
    const work = new CrashWorkload(
      model,
      dust,
      {
        ack: (u, g) => w.exp.ack(u, g),
        fail: (u) => w.exp.fail(u),
        remap: (k, s) => w.exp.remap(k, s),
        bad: (s, f) => w.bad.set(s, f),
      },
      { seed, genBase, geometry: GEOMETRY, pattern: PATTERN, badRate: 0.15 },
    );
    for (let i = 0; i < STEPS; i++) work.step();
  } catch (e) {
    if (e instanceof CrashStop) return { crashed: true, writes: spare.writes };
    throw e;
  }
  return { crashed: false, writes: spare.writes };
}

function freshWorld(policy: CrashPolicy): World {
  const w: World = {
    main: new MemoryDevice({ sectors: GEOMETRY.mainSectors }),
    spare: new MemoryDevice({ sectors: GEOMETRY.spareSectors }),
    exp: new Expectations(),
    bad: new Map(),
  };
  if (policy === 'safe') openCrashModel('safe', w.main, w.spare, GEOMETRY, 'auto');
  return w;
}

function check(policy: CrashPolicy, w: World, label: string) {
  const model = openCrashModel(policy, w.main, w.spare, GEOMETRY);
  return checkModel(modelDevice(model), PATTERN, w.exp, { label });
}

describe('crash points (in process)', () => {
  it('safe policy: no acknowledged write and no remap is lost at any spare write, whole or torn, nor after a second crash', () => {
    const seed = 11;
    const full = runUntilCrash('safe', freshWorld('safe'), seed, 1, undefined, false);
    console.log(`crash points: ${full.writes} spare writes in a full run`);
    expect(full.writes).toBeGreaterThan(40); // enough commits and checkpoints to be worth crashing in
    let crashes = 0;
    let remapsChecked = 0;
    const problems: string[] = [];
    for (let n = 1; n <= full.writes; n++) {
      for (const torn of [false, true]) {
        const w = freshWorld('safe');
        const first = runUntilCrash('safe', w, seed, 1, n, torn);
        expect(first.crashed).toBe(true);
        crashes++;
        const r1 = check('safe', w, `crash at spare write ${n}${torn ? ' (torn)' : ''}`);
        // second run: a different job from the recovered state, crashed part way
        const second = runUntilCrash('safe', w, seed + n, 1 << 22, 1 + ((n * 7) % 23), !torn);
        if (second.crashed) crashes++;
        const r2 = check('safe', w, `then at ${1 + ((n * 7) % 23)}`);
        remapsChecked += r1.remapsChecked + r2.remapsChecked;
        if (totalFindings(r1) + totalFindings(r2) > 0) problems.push(...r1.examples, ...r2.examples);
      }
    }
    expect(problems).toEqual([]);
    expect(crashes).toBeGreaterThan(2 * full.writes);
    expect(remapsChecked).toBeGreaterThan(0);
  });

  it('dm-remap-v4: the same crashes lose acknowledged data (the checker sees what the module loses)', () => {
    const seed = 11;
    const w = freshWorld('dm-remap-v4');
    runUntilCrash('dm-remap-v4', w, seed, 1, undefined, false);
    runUntilCrash('dm-remap-v4', w, seed + 1, 1 << 22, 30, true);
    const r = check('dm-remap-v4', w, 'dm-remap-v4');
    expect(totalFindings(r)).toBeGreaterThan(0);
  });
});
