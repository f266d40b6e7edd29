import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildFioResult } from '../../src/stats/fio-json.js';
import type { FioResult } from '../../src/stats/fio-json.js';
import { LatencyHistogram, LatencyStats } from '../../src/stats/latency.js';
import { formatSummary } from '../../src/stats/summary.js';

const fixtureJson = JSON.parse(readFileSync(new URL('./fixtures/fio-3.33-randrw.json', import.meta.url), 'utf8')) as FioResult;
/** fio's normal output, printed by the same run as the JSON fixture (--output-format=json,normal). */
const fixtureText = readFileSync(new URL('./fixtures/fio-3.33-randrw.txt', import.meta.url), 'utf8');

/** Join continuation lines (deeply indented, not a percentile row) back onto the line they continue. */
function unwrap(text: string): string[] {
  const out: string[] = [];
  for (const line of text.replace(/\n$/, '').split('\n')) {
    if (/^ {9,}[^ |]/.test(line) && out.length > 0) out[out.length - 1] += ` ${line.trim()}`;
    else out.push(line);
  }
  return out;
}

describe('summary of real fio JSON', () => {
  const ours = formatSummary(fixtureJson);

  it('prints the lines fio printed for the same run', () => {
    const fio = fixtureText.split('\n');
    const from = fio.findIndex((l) => l.startsWith('t: (groupid=0'));
    const to = fio.findIndex((l) => l.startsWith('  cpu '));
    const expected = fio.slice(from, to + 1).map((l) => l.replace(/ pid=\d+:/, '').replace(/; 0 zone resets$/, ''));
    expect(expected.length).toBe(27);
    expect(unwrap(ours)).toEqual(expected);
  });

  it('fits 80 columns', () => {
    for (const line of ours.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    expect(ours.split('\n').some((l) => l.length > 70)).toBe(true);
    expect(
      formatSummary(fixtureJson, { width: 60 })
        .split('\n')
        .every((l) => l.length <= 60),
    ).toBe(true);
    expect(() => formatSummary(fixtureJson, { width: 20 })).toThrow('summary width must be an integer >= 40 (got 20)');
  });
});

describe('summary of our own result', () => {
  it('matches the golden text for fixed data', () => {
    const clat = new LatencyHistogram();
    for (let v = 1; v <= 1000; v++) clat.record(v * 1000);
    const lat = new LatencyStats();
    for (let v = 1; v <= 1000; v++) lat.record(v * 1000 + 150);
    const slat = new LatencyStats();
    for (let v = 1; v <= 1000; v++) slat.record(150);
    const trim = new LatencyHistogram();
    for (let k = 0; k < 40; k++) trim.record(3_000_000 + k * 6_000_000);
    const flush = new LatencyHistogram();
    for (const v of [800, 1200, 950_000]) flush.record(v);
    const result = buildFioResult({
      timestamp: new Date(2026, 10, 3, 9, 5, 7),
      jobs: [
        {
          name: 'mixed',
          elapsedMs: 4100,
          runtimeMs: 4000,
          iodepth: 8,
          read: {
            ioBytes: 1000 * 131072,
            totalIos: 1000,
            clat,
            lat,
            slat,
            bwSamples: [30000, 33000, 36000, 29000],
            iopsSamples: [234, 257, 281, 226],
          },
          trim: {
            ioBytes: 40 * 1048576,
            totalIos: 40,
            clat: trim,
            bwSamples: [10240, 10240, 9216, 11264],
            iopsSamples: [10, 10, 9, 11],
          },
          sync: flush,
          cpu: { userMs: 123, systemMs: 456 },
          ctx: 789,
          majf: 0,
          minf: 42,
          verify: { blocks: 1000, mismatches: 2, lost: { acknowledged: 0 } },
          remap: { policy: 'safe', remaps: 3, spareUsed: 0.0123456789 },
        },
      ],
    });
    expect(formatSummary(result)).toBe(GOLDEN);
  });

  it('prints a header and cpu line for a job without I/O, and nothing for no jobs', () => {
    const r = buildFioResult({ timestamp: new Date(2026, 0, 2, 3, 4, 5), jobs: [{ name: 'idle', error: 5, elapsedMs: 0, runtimeMs: 0 }] });
    expect(formatSummary(r)).toBe(
      'idle: (groupid=0, jobs=1): err= 5: Fri Jan  2 03:04:05 2026\n' + '  cpu          : usr=0.00%, sys=0.00%, ctx=0, majf=0, minf=0\n',
    );
    expect(formatSummary({ ...r, jobs: [] })).toBe('');
  });
});

const GOLDEN = `mixed: (groupid=0, jobs=1): err= 0: Tue Nov  3 09:05:07 2026
  read: IOPS=250, BW=31.2MiB/s (32.8MB/s)(125MiB/4000msec)
    slat (nsec): min=150, max=150, avg=150.00, stdev= 0.00
    clat (nsec): min=1000, max=1000.0k, avg=500500.00, stdev=288819.44
     lat (nsec): min=1150, max=1000.1k, avg=500650.00, stdev=288819.44
    clat percentiles (usec):
     |  1.00th=[   11],  5.00th=[   51], 10.00th=[  101], 20.00th=[  201],
     | 30.00th=[  301], 40.00th=[  401], 50.00th=[  501], 60.00th=[  601],
     | 70.00th=[  701], 80.00th=[  801], 90.00th=[  901], 95.00th=[  951],
     | 99.00th=[  991], 99.50th=[  996], 99.90th=[ 1000], 99.95th=[ 1000],
     | 99.99th=[ 1000]
   bw (  KiB/s): min=29000, max=36000, per=100.00%, avg=32000.00, stdev=3162.28,
                 samples=4
   iops        : min=  226, max=  281, avg=249.50, stdev=24.77, samples=4
  trim: IOPS=10, BW=10.0MiB/s (10.5MB/s)(40.0MiB/4000msec)
    clat (msec): min=3, max=237, avg=120.00, stdev=70.14
     lat (msec): min=3, max=237, avg=120.00, stdev=70.14
    clat percentiles (msec):
     |  1.00th=[    4],  5.00th=[   10], 10.00th=[   22], 20.00th=[   46],
     | 30.00th=[   70], 40.00th=[   94], 50.00th=[  118], 60.00th=[  142],
     | 70.00th=[  166], 80.00th=[  190], 90.00th=[  214], 95.00th=[  226],
     | 99.00th=[  237], 99.50th=[  237], 99.90th=[  237], 99.95th=[  237],
     | 99.99th=[  237]
   bw (  KiB/s): min= 9216, max=11264, per=100.00%, avg=10240.00, stdev=836.09,
                 samples=4
   iops        : min=    9, max=   11, avg=10.00, stdev= 0.82, samples=4
  lat (usec)   : 2=0.10%, 4=0.19%, 10=0.58%, 20=0.96%, 50=2.88%
  lat (usec)   : 100=4.81%, 250=14.42%, 500=24.04%, 750=24.04%, 1000=24.04%
  lat (msec)   : 2=0.10%, 4=0.10%, 10=0.10%, 20=0.10%, 50=0.48%
  lat (msec)   : 100=0.87%, 250=2.21%
  fsync/fdatasync/sync_file_range/syncfs:
    sync (nsec): min=800, max=950000, avg=317333.33, stdev=547905.44
    sync percentiles (nsec):
     |  1.00th=[   800],  5.00th=[   800], 10.00th=[   800], 20.00th=[   800],
     | 30.00th=[   800], 40.00th=[  1200], 50.00th=[  1200], 60.00th=[  1200],
     | 70.00th=[950000], 80.00th=[950000], 90.00th=[950000], 95.00th=[950000],
     | 99.00th=[950000], 99.50th=[950000], 99.90th=[950000], 99.95th=[950000],
     | 99.99th=[950000]
  cpu          : usr=3.08%, sys=11.40%, ctx=789, majf=0, minf=42
  verify       : blocks=1000, mismatches=2, lost.acknowledged=0
  remap        : policy=safe, remaps=3, spareUsed=0.0123457
`;
