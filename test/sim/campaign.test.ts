/**
 * Campaigns (issue 19): a sweep expands into numbered runs with seeds from
 * the campaign seed; a rerun resumes (a last line cut short by a kill is
 * dropped and its run done again); shards, from --shard i/N or from the
 * index a job engine gives, merge into exactly what one process gives;
 * merging another campaign's shards, an out-of-range shard, a sweep past
 * 1e6 runs without --force and absurd horizons or rates are one line and
 * exit 2; latency distributions travel as HdrHistograms and merge without
 * loss.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeFromCompressedBase64 } from 'hdr-histogram-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCampaignReport } from '../../src/report/campaign.js';
import { loadCampaign, pointConfigs, runOf, campaignId } from '../../src/sim/campaign/spec.js';
import { parseShard } from '../../src/sim/campaign/shard.js';
import { readResults } from '../../src/sim/campaign/results-file.js';
import { hdrEncode, LatencyRecorder, mergeEncoded } from '../../src/sim/latency.js';
import { simulateRun } from '../../src/sim/run.js';
import { type CampaignSummary, type RunRecord, summarize } from '../../src/sim/summary.js';
import { SimInputError } from '../../src/sim/time.js';
import { setHugePageAdvice } from '../../src/sys/huge-pages.js';
import { runInProcess } from '../cli/in-process.js';
import { spawnCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { TINY_SCENARIO, tinySpec, writeTinyCampaign } from './fixture.js';

setHugePageAdvice(false);
const tmp = tmpDir('remapsim-campaign-');
afterAll(() => tmp.cleanup());
const at = (f: string): string => path.join(tmp.dir, f);

/** One line on stderr naming the problem, no stack trace, exit 2. */
function oneLine(r: { code: number; stderr: string }, message: RegExp): void {
  expect(r.stderr).toMatch(/^remapsim: [^\n]+\n$/);
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(2);
}

function lines(file: string): string[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

function readSummary(file: string): CampaignSummary {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CampaignSummary;
}

const spec = writeTinyCampaign(tmp.dir);
const all = at('all.jsonl');
let reference: CampaignSummary;

beforeAll(async () => {
  // the whole campaign in one process: what every split of it must give
  const r = await runInProcess(['campaign', 'run', spec, '--out', all, '--jobs', '0', '--quiet', '--summary', at('all.json')]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  reference = readSummary(at('all.json'));
}, 60_000);

describe('a sweep expands into numbered runs', () => {
  it('is the cartesian product, the last parameter fastest, with every point on the same drives', () => {
    const c = loadCampaign(spec);
    expect(c.points.map((p) => [p.params.policy, p.params.spare])).toEqual([
      ['safe', '1MiB'],
      ['safe', '4MiB'],
      ['dm-remap-v4', '1MiB'],
      ['dm-remap-v4', '4MiB'],
    ]);
    expect(c.points[3]!.params).toEqual({ policy: 'dm-remap-v4', spare: '4MiB', spareOverheadPercent: 0, statusEvery: '1h' });
    expect(c.totalRuns).toBe(48);
    expect(runOf(c, 13)).toMatchObject({ point: { index: 1 }, replicate: 1 });
    // common random numbers: replicate r has one seed at every point; replicates differ
    const seeds = Array.from({ length: 48 }, (_, i) => runOf(c, i).seed);
    for (let i = 0; i < 48; i++) expect(seeds[i]).toBe(seeds[i % 12]);
    expect(new Set(seeds.slice(0, 12)).size).toBe(12);
    // the configurations differ where the sweep says
    const cfgs = pointConfigs(c);
    expect(cfgs.map((x) => [x.policy, x.spare.sectors * 512])).toEqual([
      ['safe', 1 << 20],
      ['safe', 4 << 20],
      ['dm-remap-v4', 1 << 20],
      ['dm-remap-v4', 4 << 20],
    ]);
  });

  it('lists its points with --dry-run, and the campaign id follows the spec and the scenario, not how the spec is written', async () => {
    const r = await runInProcess(['campaign', 'run', spec, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/4 sweep points x 12 runs = 48 runs/);
    expect(r.stdout).toMatch(/point 2: policy=dm-remap-v4 spare=1MiB .*\(runs 24\.\.35\)/);
    const c = loadCampaign(spec);
    const reordered = { ...c.spec, sweep: { spare: c.spec.sweep.spare, policy: c.spec.sweep.policy } };
    expect(campaignId({ ...c.spec, set: { statusEvery: '1h', spareOverheadPercent: 0 } }, TINY_SCENARIO)).toBe(c.id);
    expect(campaignId(reordered, TINY_SCENARIO)).not.toBe(c.id); // the sweep order is the point numbering
    expect(campaignId({ ...c.spec, seed: 8 }, TINY_SCENARIO)).not.toBe(c.id);
    expect(campaignId(c.spec, TINY_SCENARIO.replace('iops: 4', 'iops: 5'))).not.toBe(c.id);
  });

  it('writes one line per run whose result is the simulator run of its point with its seed', () => {
    const c = loadCampaign(spec);
    const cfgs = pointConfigs(c);
    const recs = lines(all).map((l) => JSON.parse(l) as RunRecord);
    expect(recs.map((r) => r.run).sort((a, b) => a - b)).toEqual(Array.from({ length: 48 }, (_, i) => i));
    for (const run of [0, 17, 40]) {
      const rec = recs.find((r) => r.run === run)!;
      const { point, seed } = runOf(c, run);
      expect(rec.campaign).toBe(c.id);
      expect(rec.seed).toBe(seed);
      expect(rec.result).toEqual(simulateRun(cfgs[point.index]!, seed));
    }
    // the campaign is not degenerate: some runs lose data, some do not, and latency is recorded
    const lost = recs.filter((r) => r.result.loss.at !== null).length;
    expect(lost).toBeGreaterThan(0);
    expect(lost).toBeLessThan(48);
    expect(reference.groups).toHaveLength(4);
    expect(reference.missing).toBe(0);
  });
});

describe('the summary and its report', () => {
  it('labels sweep points by what differs between them, and charts P(loss) per point with its interval, policies side by side', () => {
    expect(reference.fixed).toEqual({ spareOverheadPercent: 0, statusEvery: '1h' });
    expect(reference.groups.map((g) => g.label)).toEqual([
      'policy=safe spare=1MiB',
      'policy=safe spare=4MiB',
      'policy=dm-remap-v4 spare=1MiB',
      'policy=dm-remap-v4 spare=4MiB',
    ]);
    expect(reference.comparison.map((r) => [r.label, Object.keys(r.policies)])).toEqual([
      ['spare=1MiB', ['safe', 'dm-remap-v4']],
      ['spare=4MiB', ['safe', 'dm-remap-v4']],
    ]);
    for (const r of reference.comparison)
      for (const cell of Object.values(r.policies)) expect(cell.any).toEqual(reference.groups[cell.point]!.lossByHorizon.any);
    const html = renderCampaignReport(reference, { generatedAt: new Date(0) });
    expect(html).toContain('every sweep point: statusEvery=1h spareOverheadPercent=0');
    for (const kind of ['loss-any', 'loss-silent', 'errors']) {
      const chart = new RegExp(`<svg[^>]*data-chart="${kind}"[\\s\\S]*?</svg>`).exec(html)![0];
      expect(chart.match(/<g class="estimate">/g)).toHaveLength(4);
      expect(chart).toContain('data-series="safe" data-n="2"');
      expect(chart).toContain('data-series="dm-remap-v4" data-n="2"');
      expect(chart.match(/class="tick category"[^>]*>spare=1MiB</g)).toHaveLength(1);
    }
    expect(html.match(/data-chart="loss-curve"/g)).toHaveLength(2);
    expect(html.match(/<tr data-point=/g)).toHaveLength(4);
  });
});

describe('resume', () => {
  it('skips the runs a results file holds', async () => {
    const f = at('resume.jsonl');
    fs.copyFileSync(all, f);
    const before = fs.readFileSync(f, 'utf8');
    const r = await runInProcess(['campaign', 'run', spec, '--out', f, '--jobs', '0', '--summary', at('resume.json')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/: 0 runs done now, 48 in .*resume\.jsonl \(48 found in .* already\)/);
    expect(fs.readFileSync(f, 'utf8')).toBe(before);
    expect(readSummary(at('resume.json'))).toEqual(reference);
  });

  it('drops a last line cut short by a kill and does that run again', async () => {
    const f = at('cut.jsonl');
    const ls = lines(all);
    // 40 whole lines, then half of the 41st without its newline: a process killed while writing it
    const cut = ls[40]!.slice(0, Math.floor(ls[40]!.length / 2));
    fs.writeFileSync(f, `${ls.slice(0, 40).join('\n')}\n${cut}`);
    const r = await runInProcess(['campaign', 'run', spec, '--out', f, '--jobs', '0', '--summary', at('cut.json')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/8 runs done now, 48 in .* \(40 found in .* already; a last line cut short was dropped and its run done again\)/);
    const after = lines(f);
    expect(after).toHaveLength(48);
    expect(after.slice(0, 40)).toEqual(ls.slice(0, 40));
    expect(new Set(after)).toEqual(new Set(ls)); // the cut run done again gives its line again
    expect(readSummary(at('cut.json'))).toEqual(reference);
  });

  it('continues a campaign whose process was killed with SIGKILL', async () => {
    const f = at('killed.jsonl');
    // runs in the process, a line each as it ends: killed once the first is written
    const child = spawnCli(['campaign', 'run', spec, '--out', f, '--jobs', '0', '--quiet']);
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    let seen = 0;
    for (let i = 0; i < 30_000 && seen === 0; i++) {
      await new Promise((r) => setTimeout(r, 2));
      seen = fs.existsSync(f) ? lines(f).length : 0;
    }
    child.kill('SIGKILL');
    await exited;
    const kept = readResults(f).records.length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(48);
    const r = await runInProcess(['campaign', 'run', spec, '--out', f, '--jobs', '0', '--summary', at('killed.json')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`: ${48 - kept} runs done now, 48 in `));
    expect(readSummary(at('killed.json'))).toEqual(reference);
  }, 60_000);

  it('refuses a damaged line before the last, and a file of another campaign', async () => {
    const f = at('damaged.jsonl');
    const ls = lines(all);
    fs.writeFileSync(f, `${ls[0]}\n{"campaign": trunc\n${ls[1]}\n`);
    oneLine(
      await runInProcess(['campaign', 'run', spec, '--out', f, '--jobs', '0']),
      /damaged\.jsonl:2: not a run record \(a damaged line in the middle of the file; remove it to redo that run\)$/m,
    );
    const other = writeTinyCampaign(tmp.dir, 'other.yaml', { seed: 8 });
    oneLine(
      await runInProcess(['campaign', 'run', other, '--out', all, '--jobs', '0']),
      /all\.jsonl:1: holds runs of campaign [0-9a-f]{16} \('tiny'\), not [0-9a-f]{16}: the spec or its scenario changed; write to another file$/m,
    );
    expect(lines(all)).toHaveLength(48);
  });
});

describe('shards', () => {
  it('takes the index from --shard i/N or from the job engine', () => {
    expect(parseShard('1/3', {})).toEqual({ index: 1, count: 3, from: '--shard' });
    expect(parseShard('3', { JOB_COMPLETION_INDEX: '2' })).toEqual({ index: 2, count: 3, from: 'JOB_COMPLETION_INDEX' });
    expect(parseShard('3', { SLURM_ARRAY_TASK_ID: '0' })).toEqual({ index: 0, count: 3, from: 'SLURM_ARRAY_TASK_ID' });
    expect(parseShard('3', { SLURM_ARRAY_TASK_ID: '6', SLURM_ARRAY_TASK_MIN: '5' })).toEqual({ index: 1, count: 3, from: 'SLURM_ARRAY_TASK_ID' });
    expect(parseShard('3', { PARALLEL_SEQ: '1' })).toEqual({ index: 0, count: 3, from: 'PARALLEL_SEQ' });
    expect(parseShard('3', { PARALLEL_SEQ: '3' })).toEqual({ index: 2, count: 3, from: 'PARALLEL_SEQ' });
    // an explicit index wins over the environment
    expect(parseShard('0/3', { JOB_COMPLETION_INDEX: '2' }).index).toBe(0);
    expect(() => parseShard('3', { JOB_COMPLETION_INDEX: '3' })).toThrow(/^JOB_COMPLETION_INDEX=3 gives shard index 3, out of range 0\.\.2 for --shard 3$/);
    expect(() => parseShard('3', { PARALLEL_SEQ: '0' })).toThrow(/^PARALLEL_SEQ=0 gives shard index -1, out of range 0\.\.2/);
    expect(() => parseShard('3', {})).toThrow(SimInputError);
  });

  it('refuses a shard index out of range in one line, exit 2', async () => {
    oneLine(await runInProcess(['campaign', 'run', spec, '--shard', '3/3', '--dry-run']), /--shard: shard index 3 is out of range 0\.\.2$/m);
    oneLine(await runInProcess(['campaign', 'run', spec, '--shard', '0/0', '--dry-run']), /--shard: the number of shards must be from 1 to 1000000, got 0$/m);
    const saved = process.env.PARALLEL_SEQ;
    process.env.PARALLEL_SEQ = '5';
    try {
      oneLine(
        await runInProcess(['campaign', 'run', spec, '--shard', '4', '--dry-run']),
        /PARALLEL_SEQ=5 gives shard index 4, out of range 0\.\.3 for --shard 4$/m,
      );
    } finally {
      if (saved === undefined) delete process.env.PARALLEL_SEQ;
      else process.env.PARALLEL_SEQ = saved;
    }
  });

  it('merges shards into exactly the one-process summary, and counts what a missing shard leaves out', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await runInProcess(['campaign', 'run', spec, '--shard', `${i}/3`, '--out', at('shard-{index}.jsonl'), '--jobs', '0', '--quiet']);
      expect(r.code).toBe(0);
      const runs = readResults(at(`shard-${i}.jsonl`)).records.map((x) => x.run);
      expect(runs).toHaveLength(16);
      expect(runs.every((n) => n % 3 === i)).toBe(true);
    }
    const shards = [0, 1, 2].map((i) => at(`shard-${i}.jsonl`));
    const m = await runInProcess(['campaign', 'merge', ...shards, '-o', at('merged.json')]);
    expect(m.code).toBe(0);
    expect(readSummary(at('merged.json'))).toEqual(reference);
    // shards in another order, and a shard given twice, change nothing
    const again = await runInProcess(['campaign', 'merge', shards[2]!, shards[0]!, shards[1]!, shards[0]!, '--json']);
    expect(JSON.parse(again.stdout)).toEqual(reference);
    const partial = await runInProcess(['campaign', 'merge', shards[0]!, shards[2]!, '-o', at('partial.json')]);
    expect(partial.code).toBe(1);
    expect(partial.stderr).toMatch(/16 of 48 runs missing \(first: 1, 4, 7, 10, 13\)/);
    expect(readSummary(at('partial.json')).missing).toBe(16);
  });

  it('refuses to merge shards of different campaigns, or two different lines for one run', async () => {
    const other = writeTinyCampaign(tmp.dir, 'other-seed.yaml', { seed: 8, runs: 1 });
    expect((await runInProcess(['campaign', 'run', other, '--out', at('other.jsonl'), '--jobs', '0', '--quiet'])).code).toBe(0);
    oneLine(
      await runInProcess(['campaign', 'merge', at('shard-0.jsonl'), at('other.jsonl')]),
      /other\.jsonl: holds runs of campaign [0-9a-f]{16} \('tiny'\); .*shard-0\.jsonl holds campaign [0-9a-f]{16}: these are results of different campaigns/,
    );
    const tampered = at('tampered.jsonl');
    const rec = JSON.parse(lines(at('shard-0.jsonl'))[0]!) as RunRecord;
    rec.result.errors.read += 1;
    fs.writeFileSync(tampered, `${JSON.stringify(rec)}\n`);
    oneLine(
      await runInProcess(['campaign', 'merge', at('shard-0.jsonl'), tampered]),
      new RegExp(`tampered\\.jsonl: run ${rec.run} differs from the same run in .*shard-0\\.jsonl`),
    );
  });
});

describe('bad input is one line naming the field and its range, exit 2', () => {
  const scenario = at('tiny.yaml');

  it('a sweep past 1e6 runs asks for --force', async () => {
    const big = writeTinyCampaign(tmp.dir, 'big.yaml', { runs: 600_000 });
    oneLine(
      await runInProcess(['campaign', 'run', big, '--dry-run']),
      /the sweep expands to 4 points x 600000 runs = 2400000 runs, more than 1000000; give --force to run them$/m,
    );
    const forced = await runInProcess(['campaign', 'run', big, '--dry-run', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/= 2400000 runs/);
    oneLine(await runInProcess(['simulate', scenario, '--runs', '1000001']), /1000001 runs, more than 1000000; give --force to run them$/m);
  });

  it('horizons: zero, negative, over 1000 years', async () => {
    for (const h of ['0', '-3d', '0s', '1001y', '2000y']) {
      oneLine(await runInProcess(['simulate', scenario, '--horizon', h]), new RegExp(`^remapsim: horizon: must be from 1ms to 1000y, got '${h}'$`, 'm'));
    }
    oneLine(
      await runInProcess(['simulate', scenario, '--horizon', 'soon']),
      /^remapsim: horizon: 'soon' is not a duration \(a number with a unit: ns, us, ms, s, m, h, d, w, mo, y; e\.g\. 5y, 30d, 1w\)$/m,
    );
    // in a campaign, the sweep point is named too
    const spec2 = at('long.yaml');
    fs.writeFileSync(spec2, tinySpec({ name: 'long' }).replace('set: {', 'set: { horizon: 1200y,'));
    oneLine(
      await runInProcess(['campaign', 'run', spec2, '--dry-run']),
      /long\.yaml: sweep point 0 \(policy=safe spare=1MiB horizon=1200y .*\): horizon: must be from 1ms to 1000y, got '1200y'$/m,
    );
  });

  it('rates: zero, negative, too high, and rates that make every block bad within a second', async () => {
    const range = 'must be above 0 and at most 1000000 per second';
    for (const [opt, v, field] of [
      ['--latent-rate', '0', 'latentRate'],
      ['--latent-rate', '-1/y', 'latentRate'],
      ['--latent-rate', '2e6/s', 'latentRate'],
      ['--transient-rate', '-2/y', 'transientRate'],
      ['--transient-rate', '0/d', 'transientRate'],
    ] as const) {
      oneLine(await runInProcess(['simulate', scenario, opt, v]), new RegExp(`^remapsim: ${field}: ${range} .*, got ${v.replace(/[+]/g, '\\+')}$`, 'm'));
    }
    oneLine(await runInProcess(['simulate', scenario, '--iops', '-5']), /^remapsim: iops: must be a number above 0 and at most 10000000, got -5$/m);
    // a 4 MiB drive (1024 blocks) with 1000 bursts of 2 a second: every block bad within a second
    const hot = at('hot.yaml');
    fs.writeFileSync(hot, TINY_SCENARIO.replace('size: 16GiB', 'size: 4MiB').replace('rate: 0.5/y', 'rate: 1000/s'));
    oneLine(
      await runInProcess(['simulate', hot]),
      /^remapsim: faults\.main: the fault rates make 2\.86e\+3 blocks bad per second, every one of the device's 1024 blocks within a second; lower the rates$/m,
    );
    // on the 16 GiB drive the same rate is a billion bad blocks over the horizon: past what the simulator follows
    oneLine(
      await runInProcess(['simulate', scenario, '--latent-rate', '1000/s']),
      /^remapsim: faults\.main: the fault rates make about 1\.80e\+11 blocks bad over the horizon; .* \(at most 1000000\): lower the rates or the horizon$/m,
    );
  });
});

describe('latency distributions travel as HdrHistograms', () => {
  it('merge without loss: shards encoded and added equal one histogram of every value', () => {
    const whole = new LatencyRecorder();
    const parts = [new LatencyRecorder(), new LatencyRecorder(), new LatencyRecorder()];
    let x = 12345;
    const values: number[] = [];
    for (let i = 0; i < 5000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const ns = Math.round(50_000 * Math.exp((x / 2 ** 32) * 8)); // 50 us .. 150 ms, log-spread
      const count = 1 + (i % 7) * 1_000_000_000; // bulk counts past 2^32
      values.push(ns);
      whole.record(ns, count);
      parts[i % 3]!.record(ns, count);
    }
    const merged = mergeEncoded(parts.map(hdrEncode))!;
    const direct = whole.histogram()!;
    expect(merged.totalCount).toBe(direct.totalCount);
    expect(merged.totalCount).toBe(whole.count);
    // the count of every bucket a value went to (JsHistogram's, which build() makes; the Histogram type does not list it)
    const countAt = (h: object, v: number): number => (h as { getCountAtValue(v: number): number }).getCountAtValue(v);
    for (const v of values) expect(countAt(merged, v)).toBe(countAt(direct, v));
    // the extremes too (percentiles 0 and 100), to the histogram's resolution (3 significant digits) as one histogram keeps them
    for (const p of [0, 1, 25, 50, 90, 99, 99.9, 99.99, 100]) expect(merged.getValueAtPercentile(p)).toBe(direct.getValueAtPercentile(p));
    expect(merged.mean).toBe(direct.mean);
  });

  it('every I/O of a sweep point is in its merged histogram, and shards merge to the same one', () => {
    const recs = lines(all).map((l) => JSON.parse(l) as RunRecord);
    for (const g of reference.groups) {
      const runs = recs.filter((r) => r.point === g.point);
      expect(runs.every((r) => typeof r.result.latency === 'string')).toBe(true);
      const ios = runs.reduce((a, r) => a + r.result.ios.reads + r.result.ios.writes, 0);
      expect(g.latency!.count).toBe(ios);
      expect(decodeFromCompressedBase64(g.latency!.hdr, 64).totalCount).toBe(ios);
      // the read latency model (lognormal, median 4 ms) shows through
      expect(g.latency!.p50).toBeGreaterThan(1_000_000);
      expect(g.latency!.p50).toBeLessThan(5_000_000);
    }
    const bySharding = summarize(
      [...recs]
        .reverse()
        .filter((r) => r.run % 2 === 1)
        .concat(recs.filter((r) => r.run % 2 === 0)),
    );
    expect(bySharding.groups.map((g) => g.latency)).toEqual(reference.groups.map((g) => g.latency));
  });
});
