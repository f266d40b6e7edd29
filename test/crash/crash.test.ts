/**
 * The short SIGKILL crash test (the long one: npm run test:crash). The seed is
 * fixed so CI is reproducible; REMAPSIM_CRASH_SEED=<n> runs another one.
 */
import { describe, expect, it } from 'vitest';
import { formatCrashReport, runCrashSuite } from '../../scripts/crash/harness.js';

const SEED = process.env.REMAPSIM_CRASH_SEED === undefined ? 20240611 : Number(process.env.REMAPSIM_CRASH_SEED);

describe(`crash test (SIGKILL, seed ${SEED})`, () => {
  it('safe policy: zero lost acknowledged writes and zero lost remaps after every kill', async () => {
    const r = await runCrashSuite({ policy: 'safe', seed: SEED, kills: 6, crashPointRate: 0.5 });
    console.log(formatCrashReport(r));
    expect(r.kills.total).toBe(6);
    expect(r.writes.acknowledged).toBeGreaterThan(0);
    expect(r.checks.unitsChecked).toBeGreaterThan(0);
    expect(r.checks.examples, `seed ${SEED}: rerun with REMAPSIM_CRASH_SEED=${SEED}`).toEqual([]);
    expect(r.findings).toBe(0);
  }, 60_000);

  it('dm-remap-v4: the same harness reports what the module loses', async () => {
    const r = await runCrashSuite({ policy: 'dm-remap-v4', seed: SEED, kills: 3 });
    console.log(formatCrashReport(r));
    expect(r.kills.total).toBe(3);
    expect(r.writes.failed).toBeGreaterThan(0); // the module fails writes to sectors that go bad
    expect(r.remapsReported).toBeGreaterThan(0);
  }, 60_000);
});
