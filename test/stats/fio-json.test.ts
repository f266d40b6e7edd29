import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { OK } from '../../src/block/device.js';
import { buildFioResult, formatFioJson } from '../../src/stats/fio-json.js';
import type { FioResult, JobInput } from '../../src/stats/fio-json.js';
import { ctime } from '../../src/stats/fio-format.js';
import { LatencyHistogram, LatencyStats } from '../../src/stats/latency.js';
import { DIR_READ, DIR_WRITE, IoSeries } from '../../src/stats/series.js';
import type { DirIndex } from '../../src/stats/series.js';
import { realClock } from '../../src/util/clock.js';
import { Random } from '../../src/util/random.js';
import { VERSION } from '../../src/version.js';
import { keys, member, skeleton } from './json-skeleton.js';
import type { Skel } from './json-skeleton.js';

const fixtureText = readFileSync(new URL('./fixtures/fio-3.33-randrw.json', import.meta.url), 'utf8');
const fixture = skeleton(fixtureText);

/** A short real randrw run (4 KiB, 50/50) against a RAM disk, measured like the engine will. */
function realRun(ms: number): JobInput {
  const dev = new MemoryDevice({ sectors: 32768 }); // 16 MiB
  const buf = new Uint8Array(4096).fill(0x5a);
  const rnd = new Random(7);
  const clat = { read: new LatencyHistogram(), write: new LatencyHistogram() };
  const lat = { read: new LatencyStats(), write: new LatencyStats() };
  const bytes = { read: 0, write: 0 };
  const ios = { read: 0, write: 0 };
  const start = realClock.nowNs();
  const series = new IoSeries(start, 100e6);
  let now = start;
  while (now - start < ms * 1e6) {
    const dir = rnd.next() < 0.5 ? 'read' : 'write';
    const sector = rnd.int(4096) * 8;
    const queued = realClock.nowNs();
    const issued = realClock.nowNs();
    const status = dir === 'read' ? dev.read(sector, buf) : dev.write(sector, buf);
    now = realClock.nowNs();
    if (status !== OK) throw new Error(`I/O failed: ${status}`);
    clat[dir].record(now - issued);
    lat[dir].record(now - queued);
    bytes[dir] += 4096;
    ios[dir] += 1;
    series.add(dir === 'read' ? DIR_READ : DIR_WRITE, 4096, now);
  }
  const runtimeMs = Math.round((now - start) / 1e6);
  const dirInput = (d: 'read' | 'write', i: DirIndex) => ({
    ioBytes: bytes[d],
    totalIos: ios[d],
    clat: clat[d],
    lat: lat[d],
    bwSamples: series.bwSamples(i, now),
    iopsSamples: series.iopsSamples(i, now),
  });
  return {
    name: 't',
    elapsedMs: runtimeMs + 3,
    runtimeMs,
    options: { name: 't', filename: '/tmp/fiotest/x', rw: 'randrw', bs: '4k' },
    read: dirInput('read', DIR_READ),
    write: dirInput('write', DIR_WRITE),
    cpu: { userMs: 1, systemMs: 0 },
    ctx: 3,
    minf: 12,
  };
}

function withoutKey(s: Skel, key: string): Skel {
  if (typeof s !== 'object' || !('object' in s)) throw new Error('not an object');
  return { object: s.object.filter(([k]) => k !== key) };
}

describe('fio JSON shape (against real fio 3.33 output)', () => {
  const job = realRun(250);
  const ours = buildFioResult({
    jobs: [job],
    globalOptions: { ioengine: 'psync', size: '16M', runtime: '2' },
  });
  const text = formatFioJson(ours);
  const skel = skeleton(text);

  it('has the same keys, key order and int/float types everywhere (disk_util omitted)', () => {
    expect(keys(fixture)).toContain('disk_util');
    expect(skel).toEqual(withoutKey(fixture, 'disk_util'));
  });

  it('matches section by section (so a failure names the section)', () => {
    const fJob = (member(fixture, 'jobs') as { array: Skel[] }).array[0];
    const oJob = (member(skel, 'jobs') as { array: Skel[] }).array[0];
    expect(keys(oJob)).toEqual(keys(fJob));
    for (const k of keys(fJob)) expect([k, member(oJob, k)]).toEqual([k, member(fJob, k)]);
    for (const d of ['read', 'write', 'trim']) {
      for (const k of keys(member(fJob, d))) {
        expect([d, k, member(member(oJob, d), k)]).toEqual([d, k, member(member(fJob, d), k)]);
      }
    }
  });

  it('prints what the object holds (floats rounded to 6 decimals, as fio does)', () => {
    const parsed = JSON.parse(text) as FioResult;
    const r = parsed.jobs[0].read;
    const o = ours.jobs[0].read;
    expect(parsed['fio version']).toBe(`remapsim-${VERSION}`);
    expect(r.total_ios).toBe(job.read!.totalIos);
    expect(r.clat_ns.N).toBe(job.read!.totalIos);
    expect(r.clat_ns.min).toBe(job.read!.clat!.min);
    expect(r.clat_ns.mean).toBeCloseTo(o.clat_ns.mean, 6);
    expect(r.iops).toBeCloseTo(o.iops, 6);
    expect(r.clat_ns.percentile).toEqual(o.clat_ns.percentile);
    expect(text).toMatch(/"mean" : \d+\.\d{6},\n/);
    expect(r.bw_samples).toBeGreaterThan(0);
    expect(parsed.jobs[0].read.bw_samples + parsed.jobs[0].write.bw_samples).toBeLessThanOrEqual(6);
  });

  it('reprints real fio output byte for byte (the printer follows fio json.c)', () => {
    expect(formatFioJson(JSON.parse(fixtureText) as FioResult)).toBe(fixtureText);
  });
});

describe('fio JSON values', () => {
  const clat = new LatencyHistogram();
  for (let v = 1; v <= 1000; v++) clat.record(v * 1000); // 1..1000 us
  const flush = new LatencyHistogram();
  flush.record(2_500_000);
  const when = new Date(2026, 10, 3, 9, 5, 7, 250);
  const result = buildFioResult({
    timestamp: when,
    jobs: [
      {
        name: 'seq',
        groupid: 2,
        elapsedMs: 2001,
        runtimeMs: 2000,
        iodepth: 4,
        read: { ioBytes: 4096 * 1000, totalIos: 1000, clat, bwSamples: [2000, 1800, 2200], iopsSamples: [500, 450, 550] },
        sync: flush,
        cpu: { userMs: 100, systemMs: 50 },
        verify: { checked: 1000, mismatches: 0, ratio: 0.5, detail: { lost: [] } },
        remap: { policy: 'safe', remapped: 3 },
      },
    ],
  });
  const job = result.jobs[0];

  it('computes the top level and the job header like fio', () => {
    expect(result.timestamp).toBe(Math.floor(when.getTime() / 1000));
    expect(result.timestamp_ms).toBe(when.getTime());
    expect(result.time).toBe('Tue Nov  3 09:05:07 2026');
    expect(result['global options']).toBeUndefined();
    expect(job['job options']).toBeUndefined();
    expect([job.jobname, job.groupid, job.error, job.eta, job.elapsed, job.job_runtime]).toEqual(['seq', 2, 0, 0, 3, 2000]);
    expect([job.usr_cpu, job.sys_cpu]).toEqual([5, 2.5]);
    expect([job.latency_depth, job.latency_target, job.latency_percentile, job.latency_window]).toEqual([4, 0, 100, 0]);
  });

  it('computes a direction block with fio units and rounding', () => {
    const r = job.read;
    expect([r.io_bytes, r.io_kbytes, r.bw_bytes, r.bw, r.iops, r.runtime, r.total_ios]).toEqual([4096000, 4000, 2048000, 2000, 500, 2000, 1000]);
    expect(r.clat_ns).toMatchObject({ min: 1000, max: 1000000, N: 1000 });
    expect(r.clat_ns.mean).toBeCloseTo(500500, 9);
    expect(r.clat_ns.percentile!['50.000000']).toBe(500223); // 500000 lies in the HDR bucket 499712..500223
    expect(r.clat_ns.percentile!['99.990000']).toBe(1000000);
    expect(r.lat_ns).toEqual({ min: 1000, max: 1000000, mean: r.clat_ns.mean, stddev: r.clat_ns.stddev, N: 1000 });
    expect(r.slat_ns).toEqual({ min: 0, max: 0, mean: 0, stddev: 0, N: 0 });
    expect([r.bw_min, r.bw_max, r.bw_mean, r.bw_dev, r.bw_samples, r.bw_agg]).toEqual([1800, 2200, 2000, 200, 3, 100]);
    expect([r.iops_min, r.iops_max, r.iops_mean, r.iops_stddev, r.iops_samples]).toEqual([450, 550, 500, 50, 3]);
    expect(job.write).toMatchObject({ io_bytes: 0, runtime: 0, iops: 0, bw_samples: 0, bw_agg: 0 });
    expect(job.write.clat_ns.percentile).toBeUndefined();
  });

  it('fills sync, depth and latency distributions the way fio does', () => {
    expect(job.sync.total_ios).toBe(1);
    expect(job.sync.lat_ns.percentile!['1.000000']).toBe(2500000);
    expect(job.iodepth_level).toEqual({ '1': 0, '2': 0, '4': 100, '8': 0, '16': 0, '32': 0, '>=64': 0 });
    expect(job.iodepth_submit['4']).toBe(100);
    expect(Object.keys(job.iodepth_complete)).toEqual(['0', '4', '8', '16', '32', '64', '>=64']);
    // 1000 I/Os at 1..1000 us: 1 us -> "2", 2-3 -> "4", 4-9 -> "10", ... 750-999 -> "1000", 1000 us -> 2 ms bucket
    // (exact at the boundaries, e.g. 50 us lands in "100", though its HDR bucket starts at 49984 ns)
    expect(job.latency_us).toEqual({
      '2': 0.1,
      '4': 0.2,
      '10': 0.6,
      '20': 1,
      '50': 3,
      '100': 5,
      '250': 15,
      '500': 25,
      '750': 25,
      '1000': 25,
    });
    expect(job.latency_ms['2']).toBe(0.1);
    expect(Object.values(job.latency_ns).every((v) => v === 0)).toBe(true);
    expect(Object.keys(job.latency_ms)).toEqual(['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000', '2000', '>=2000']);
  });

  it('appends verify and remap as given, printed as plain JSON numbers', () => {
    expect(Object.keys(job).slice(-3)).toEqual(['latency_window', 'verify', 'remap']);
    const text = formatFioJson(result);
    expect(text).toContain('"ratio" : 0.5,');
    expect(text).toContain('"checked" : 1000,');
    expect(text).toContain('"lost" : [\n\n');
    expect(text).toContain('"usr_cpu" : 5.000000,');
    expect(text).toContain('"iops" : 500.000000,');
    expect((JSON.parse(text) as FioResult).jobs[0].remap).toEqual({ policy: 'safe', remapped: 3 });
  });

  it('gives fio percentages a floor: 0.01 for latency buckets, 0.1 for depths', () => {
    const h = new LatencyHistogram();
    for (let k = 0; k < 99_999; k++) h.record(50);
    h.record(5_000_000_000); // one 5 s outlier
    const r = buildFioResult({
      timestamp: when,
      jobs: [
        {
          name: 'x',
          elapsedMs: 1,
          runtimeMs: 1,
          read: { ioBytes: 100_000 * 512, totalIos: 100_000, clat: h },
          depth: { level: [99_999, 1, 0, 0, 0, 0, 0] },
        },
      ],
    }).jobs[0];
    expect(r.latency_ns['100']).toBeCloseTo(99.999, 9);
    expect(r.latency_ms['>=2000']).toBe(0.01);
    expect(r.iodepth_level['2']).toBe(0.1);
  });

  it('names the field and the allowed range when input is wrong', () => {
    const base = { name: 'j', elapsedMs: 1, runtimeMs: 1 };
    expect(() => buildFioResult({ jobs: [{ ...base, read: { ioBytes: -1, totalIos: 0 } }] })).toThrow(
      'fio-json: jobs[0].read.ioBytes must be a non-negative integer (got -1)',
    );
    expect(() => buildFioResult({ jobs: [{ ...base, name: '' }] })).toThrow('fio-json: jobs[0].name must be a non-empty string (got )');
    expect(() => buildFioResult({ jobs: [{ ...base, read: { ioBytes: 0, totalIos: 0, bwSamples: [1.5] } }] })).toThrow(
      'fio-json: jobs[0].read.bwSamples[0] must be a non-negative integer (got 1.5)',
    );
    expect(() => buildFioResult({ jobs: [{ ...base, depth: { level: [1, 2] } }] })).toThrow(
      'fio-json: jobs[0].depth.level must be an array of 7 counts (got 1,2)',
    );
    expect(() => buildFioResult({ jobs: [{ ...base, remap: { n: 1n } }] })).toThrow(/jobs\[0\].remap must be JSON-serializable/);
    expect(() => buildFioResult({ jobs: [{ ...base, read: { ioBytes: 0, totalIos: 0, clat: new LatencyStats() as never } }] })).toThrow(
      'fio-json: jobs[0].read.clat must be a LatencyHistogram',
    );
    expect(() => buildFioResult({ jobs: [base], globalOptions: { bs: 4096 as never } })).toThrow(
      'fio-json: input.globalOptions.bs must be a string (got 4096)',
    );
    expect(() => buildFioResult({ jobs: [base], timestamp: new Date(Number.NaN) })).toThrow(/input.timestamp must be a valid Date/);
  });

  it('formats time like ctime()', () => {
    expect(ctime(new Date(2026, 0, 31, 23, 59, 59))).toBe('Sat Jan 31 23:59:59 2026');
  });
});
