/**
 * A small campaign for the campaign tests: a 16 GiB drive with latent and
 * transient errors at rates that make some runs of a few milliseconds lose
 * data and others not, with a latency model (every run carries an
 * HdrHistogram), under both policies and two spare sizes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const TINY_SCENARIO = `name: tiny
seed: 3
devices: { main: { size: 16GiB, logicalBlockSize: 4096 }, spare: { size: 4MiB, logicalBlockSize: 4096 } }
scanner: { rate: 50 }
faults: { main: { latency: { read: "lognormal:4ms,0.5", write: "uniform:1ms..3ms" } } }
jobs: [{ name: oltp, rw: randrw, rwmixread: 70, bs: 4k, verify: crc32c, continue_on_error: all }]
simulate:
  horizon: 2y
  samples: 8
  workload: { iops: 4 }
  faults:
    latentErrors: [{ rate: 0.5/y, burstMean: 2, followProbability: 0.3, followMean: 10d, followDistance: 64 }]
    transientErrors: { rate: 1/y }
  scanner: { every: 1w }
`;

export function tinySpec(opts: { name?: string; seed?: number; runs?: number; scenario?: string } = {}): string {
  return `name: ${opts.name ?? 'tiny'}
seed: ${opts.seed ?? 7}
scenario: ${opts.scenario ?? 'tiny.yaml'}
runs: ${opts.runs ?? 12}
set: { spareOverheadPercent: 0, statusEvery: 1h }
sweep:
  policy: [safe, dm-remap-v4]
  spare: [1MiB, 4MiB]
`;
}

/** Writes tiny.yaml and the spec into `dir`; returns the spec's path. */
export function writeTinyCampaign(dir: string, file = 'tiny-campaign.yaml', opts: Parameters<typeof tinySpec>[0] = {}): string {
  fs.writeFileSync(path.join(dir, 'tiny.yaml'), TINY_SCENARIO);
  const spec = path.join(dir, file);
  fs.writeFileSync(spec, tinySpec(opts));
  return spec;
}
