/** The timeline recorder, the device map, and both wired into a scenario run as run.ts is to do it. */
import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { buildDeviceMap, deviceMapOf } from '../../src/status/device-map.js';
import { TimelineRecorder, statusSample, targetSample } from '../../src/status/timeline.js';
import { formatFioJson } from '../../src/stats/fio-json.js';
import { IoSeries } from '../../src/stats/series.js';
import { REPORT_SCENARIO, runWithTimeline } from './scenario-run.js';

const S = 1e9;
const state = (remaps: number, extra: object = {}) => ({ remaps, spareUsed: remaps, spareCapacity: 100, ...extra });

describe('TimelineRecorder', () => {
  it('samples once per interval when asked every tick, plus forced first and last samples', () => {
    const t = new TimelineRecorder({ startNs: 5 * S });
    expect(t.sample(5 * S, state(0), true)).toBe(true);
    let taken = 0;
    for (let now = 5 * S; now <= 8.5 * S; now += 0.01 * S) if (t.due(now) && t.sample(now, state(Math.floor(now / S)))) taken++;
    expect(taken).toBe(3); // at 6, 7 and 8 s
    expect(t.sample(8.6 * S, state(99))).toBe(false);
    t.sample(8.6 * S, state(42, { pending: 1 }), true);
    const j = t.toJSON();
    expect(j.device.t).toEqual([0, 1000, 2000, 3000, 3600]);
    expect(j.device.remaps).toEqual([0, 6, 7, 8, 42]);
    expect(j.device.pending).toEqual([null, null, null, null, 1]); // present once any sample had it
    expect(j.device.health).toBeUndefined();
  });

  it('a forced sample at the same millisecond replaces the last one', () => {
    const t = new TimelineRecorder({ startNs: 0 });
    t.sample(0, state(1), true);
    t.sample(0.0001 * S, state(2, { health: 90, healthSource: 'scanner' }), true);
    const j = t.toJSON();
    expect(j.device.t).toEqual([0]);
    expect(j.device.remaps).toEqual([2]);
    expect(j.device.health).toEqual([90]);
    expect(j.healthSource).toBe('scanner');
  });

  it('bounds the samples it keeps: every other one goes and the interval doubles', () => {
    const t = new TimelineRecorder({ startNs: 0, maxSamples: 8 });
    for (let s = 0; s <= 100; s++) if (t.due(s * S)) t.sample(s * S, state(s));
    const j = t.toJSON();
    expect(j.device.t.length).toBeLessThanOrEqual(8);
    expect(j.device.t[0]).toBe(0);
    expect(j.device.t.at(-1)).toBeGreaterThanOrEqual(90_000);
    const gaps = j.device.t.slice(1).map((v, i) => v - j.device.t[i]);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(8000);
  });

  it('places jobs by start time (a ramped job lines up), rates per second, a sliver at the end joins the interval before', () => {
    const t = new TimelineRecorder({ startNs: 10 * S });
    const a = new IoSeries(10 * S);
    const b = new IoSeries(12 * S); // 2 s of ramp
    for (let i = 0; i < 4; i++) a.add(0, 4096 * (i + 1), (10.5 + i) * S);
    b.add(1, 512, 12.2 * S);
    b.add(1, 512, 13.9 * S);
    a.add(0, 4100, 14.05 * S); // in the last 100 ms: a sliver
    t.addSeries(a.toJSON());
    t.addSeries(b.toJSON());
    t.finish(14.1 * S);
    const j = t.toJSON();
    expect(j.durationMs).toBe(4100);
    expect(j.io.t).toEqual([0, 1000, 2000, 3000]);
    expect(j.io.read.bw).toEqual([4096, 8192, 12288, Math.round(((16384 + 4100) * 1000) / 1100)]);
    expect(j.io.read.iops).toEqual([1, 1, 1, Math.round(2000 / 1100)]);
    expect(j.io.write.bw).toEqual([0, 0, 512, Math.round(512000 / 1100)]);
    const half = new TimelineRecorder({ startNs: 0 });
    const h = new IoSeries(0);
    h.add(0, 3000, 0.5 * S);
    h.add(0, 3000, 1.2 * S);
    half.addSeries(h.toJSON());
    half.finish(1.5 * S); // the second interval ran 500 ms: its rate is per second
    expect(half.toJSON().io.read.bw).toEqual([3000, 6000]);
  });

  it('refuses nonsense with the field named', () => {
    expect(() => new TimelineRecorder({ startNs: 0, intervalMs: 0 })).toThrow('timeline: intervalMs must be an integer from 1 to 3600000, got 0');
    const t = new TimelineRecorder({ startNs: 0 });
    expect(() => t.sample(0, state(-1), true)).toThrow('timeline: remaps must be a non-negative number, got -1');
    expect(() => t.sample(0, state(1, { health: 101 }), true)).toThrow('timeline: health must be 0..100, got 101');
    expect(() => t.finish(-5)).toThrow(/endNs must be a clock reading after startNs/);
  });
});

describe('device map', () => {
  it('counts sectors per bucket, splitting entries that straddle buckets', () => {
    const m = buildDeviceMap({ sectors: 1000, buckets: 10, bad: { starts: [0, 95, 999], sectorsEach: 10 }, remapped: { starts: [500], sectorsEach: 1 } });
    expect(m.bucketSectors).toBe(100);
    expect(m.buckets).toBe(10);
    expect(m.bad).toEqual([15, 5, 0, 0, 0, 0, 0, 0, 0, 1]); // 999 runs past the end: one sector counted
    expect(m.remapped[5]).toBe(1);
    expect(m.pending).toEqual(new Array(10).fill(0));
    expect(m.totals).toEqual({ bad: 21, pending: 0, remapped: 1 });
  });

  it('a 2 TiB device still fits in 1024 buckets', () => {
    const sectors = 2 ** 32;
    const m = buildDeviceMap({ sectors, bad: { starts: [0, sectors - 8, 2 ** 31], sectorsEach: 8 } });
    expect(m.buckets).toBe(1024);
    expect(m.bucketSectors).toBe(2 ** 22);
    expect([m.bad[0], m.bad[512], m.bad[1023]]).toEqual([8, 8, 8]);
    expect(JSON.stringify(m).length).toBeLessThan(8000);
  });

  it('refuses sectors outside the device', () => {
    expect(() => buildDeviceMap({ sectors: 100, pending: { starts: [100], sectorsEach: 1 } })).toThrow(
      'device map: pending.starts[0] = 100 is outside the device (0..99)',
    );
    expect(() => buildDeviceMap({ sectors: 0 })).toThrow(/sectors must be a positive integer/);
  });

  it('maps the models: remaps and pending blocks, and the dust bad blocks below', () => {
    const dust = new DustDevice(new MemoryDevice({ sectors: 8192, logicalBlockSize: 4096, name: 'main' }), { blockSize: 4096 });
    dust.enable();
    dust.addBadBlock(3, 1);
    dust.addBadBlock(700);
    const safe = new SafeRemapTarget({ main: dust, spare: new MemoryDevice({ sectors: 4096, logicalBlockSize: 4096, name: 'spare' }), reservedSectors: 64 });
    expect(safe.write(24, new Uint8Array(4096))).toBe(0); // block 3: the write fails once and goes to the spare
    expect(safe.read(5600, new Uint8Array(4096))).not.toBe(0); // block 700: unreadable, now pending
    const m = deviceMapOf(safe, dust, 64);
    expect(m.totals).toEqual({ bad: 16, pending: 8, remapped: 8 });
    expect(m.remapped[Math.floor(24 / m.bucketSectors)]).toBe(8);
    expect(m.pending[Math.floor(5600 / m.bucketSectors)]).toBe(8);
    const v4 = new DmRemapV4Target({ main: new MemoryDevice({ sectors: 8192, name: 'm' }), spare: new MemoryDevice({ sectors: 4096, name: 's' }) });
    v4.message(['test_remap', '4000', '7']);
    v4.message(['test_remap', '99999', '8']); // beyond the device: the module takes it, the map leaves it out
    expect(deviceMapOf(v4).totals).toEqual({ bad: 0, pending: 0, remapped: 1 });
  });
});

describe('samples of a target', () => {
  it('from the models and from status lines', () => {
    const v4 = new DmRemapV4Target({ main: new MemoryDevice({ sectors: 8192, name: 'm' }), spare: new MemoryDevice({ sectors: 4096, name: 's' }) });
    v4.message(['test_remap', '10', '0']);
    // test_remap names its own spare sector: the allocation cursor does not move
    expect(targetSample(v4)).toEqual({ remaps: 1, spareUsed: 0, spareCapacity: 2048, health: 100, healthSource: 'dm-remap-v4 health score' });
    expect(statusSample('0 524288 remap v1 main spare 5 23 5/53584 5 5 0 ok 97')).toEqual({
      remaps: 5,
      spareUsed: 5,
      spareCapacity: 53584,
      pending: 23,
      health: 97,
      healthSource: 'remap status',
    });
    const doc =
      '0 204800 dm-remap-v4 v4.0-phase1.4 /dev/mapper/lin /dev/loop18 42 0 0 0 3 42 261566 6227 21166194365 512 40960 42 42 0 0 1 41 1 0 0 87 0 2 operational real';
    expect(statusSample(doc)).toEqual({ remaps: 3, spareUsed: 3, spareCapacity: 20480, health: 87, healthSource: 'dm-remap-v4 status' });
    expect(() => statusSample('0 8 dust 7:0 bypass quiet')).toThrow("timeline: no remap counters in a 'dust' status line");
  });
});

describe('recorded during a scenario run', () => {
  it('agrees with the fio results and the target, and survives fio-format printing exactly', () => {
    const fio = runWithTimeline(REPORT_SCENARIO, 'safe');
    const { timeline, deviceMap } = fio.remapsim;
    expect(timeline).toBeDefined();
    const tl = timeline!;
    // the last I/O may finish a little after the 4 s; its sliver joins the last interval
    expect(tl.durationMs).toBeGreaterThanOrEqual(4000);
    expect(tl.durationMs).toBeLessThan(4100);
    expect(tl.io.t).toEqual([0, 1000, 2000, 3000]);
    const width = (k: number) => (k === 3 ? tl.durationMs - 3000 : 1000);
    for (const d of ['read', 'write'] as const) {
      const bytes = tl.io[d].bw.reduce((a, v, k) => a + (v * width(k)) / 1000, 0);
      expect(Math.abs(bytes - fio.jobs[0][d].io_bytes)).toBeLessThanOrEqual(4);
      const ios = tl.io[d].iops.reduce((a, v, k) => a + (v * width(k)) / 1000, 0);
      expect(Math.abs(ios - fio.jobs[0][d].total_ios)).toBeLessThanOrEqual(2);
    }
    const remap = fio.jobs[0].remap as { remaps: number; spareCapacity: number; mainBadBlocksAtEnd: number; initialBadBlocks: number };
    expect(tl.device.t[0]).toBe(0);
    expect(tl.device.t.at(-1)).toBe(tl.durationMs);
    expect(tl.device.remaps.at(-1)).toBe(remap.remaps);
    expect(tl.device.remaps.at(-1)).toBeGreaterThan(0);
    expect(tl.device.spareCapacity.every((v) => v === remap.spareCapacity)).toBe(true);
    expect(tl.device.badBlocks![0]).toBe(remap.initialBadBlocks);
    expect(deviceMap!.totals.remapped).toBe(remap.remaps); // 512-byte blocks: one sector each
    expect(deviceMap!.totals.bad).toBe(remap.mainBadBlocksAtEnd);
    const printed = JSON.parse(formatFioJson(fio));
    expect(printed.remapsim).toEqual(JSON.parse(JSON.stringify(fio.remapsim)));
  });
});
