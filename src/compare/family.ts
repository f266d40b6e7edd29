/**
 * A seeded family of scenarios for measuring how well the dm-remap-v4 policy
 * predicts the module: 512- and 4096-byte blocks, bad sectors from the start
 * and growing, bursts of neighbouring bad sectors, mixed request sizes, and
 * the lifecycle trace (compare's 'full' trace) around them. Scenario i is the
 * same on every machine.
 */
import { Random } from '../util/random.js';
import type { ScenarioInput } from '../scenario/schema.js';

export interface FamilyMember {
  scenario: ScenarioInput;
  ops: number;
  lifecycle: 'full' | 'io';
  growthEvery: number;
}

const SIZES = ['4k', '512', '512-16k', '4k/60:8k/30:16k/10'];

export function familyMember(i: number): FamilyMember {
  const rnd = new Random(0xf1de ^ (i * 7919));
  const lbs = i % 4 === 3 ? 4096 : 512;
  const spb = lbs / 512;
  const region = (1 + rnd.int(4)) * 128 * 1024; // the job's region: small, so bad sectors get hit
  const regionSectors = region / 512;
  const burst = 1 + rnd.int(8);
  const bad: number[] = [];
  for (let b = 1 + rnd.int(4); b > 0; b--) {
    const at = rnd.int(regionSectors / spb - burst) * spb;
    for (let k = 0; k < burst; k++) bad.push(at + k * spb);
  }
  let bs = SIZES[rnd.int(SIZES.length)];
  if (lbs === 4096 && (bs === '512' || bs === '512-16k')) bs = bs === '512' ? '4k' : '4k-16k';
  // io_size well past the region: the trace, not the job, decides how many operations there are
  const job: Record<string, string> = { name: 'mixed', rw: 'randrw', size: `${region / 1024}k`, io_size: '1g' };
  if (bs.includes('/')) job.bssplit = bs;
  else if (bs.includes('-')) job.bsrange = bs;
  else job.bs = bs;
  return {
    scenario: {
      name: `fidelity-${i}`,
      seed: 1000 + i,
      devices: { main: { size: `${16 + 8 * rnd.int(3)}MiB`, logicalBlockSize: lbs }, spare: { size: '8MiB', logicalBlockSize: lbs } },
      faults: { main: { badSectors: [...new Set(bad)].sort((a, b) => a - b), growth: [{ rate: 1, cluster: burst, region: { from: 0, to: regionSectors } }] } },
      target: { policy: 'dm-remap-v4' },
      jobs: [job],
    },
    ops: 120 + rnd.int(120),
    lifecycle: i % 6 === 5 ? 'io' : 'full',
    growthEvery: 8 + rnd.int(16),
  };
}
