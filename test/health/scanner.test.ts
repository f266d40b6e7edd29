/**
 * The scanner on a real file behind real fault layers: it finds the planted
 * bad, slow and transient sectors and classifies them; its rate limit holds;
 * it backs off while the foreground is busy; the staggered order covers the
 * device once per pass; wired to the safe policy it moves weak blocks to the
 * spare and marks bad ones pending; under dm-remap-v4 it reads nothing.
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EIO, type IoStatus, OK } from '../../src/block/device.js';
import { PassThroughLayer } from '../../src/block/pass-through.js';
import { FileDevice } from '../../src/block/file-device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { TransientErrorDevice } from '../../src/faults/transient.js';
import { WeakSectorDevice } from '../../src/faults/weak.js';
import { SliceClassifier } from '../../src/health/classify.js';
import { attachHealthMonitor, DetectionTracker, SafeHealthMonitor } from '../../src/health/monitor.js';
import { HealthScanner, ScannerOptionError } from '../../src/health/scanner.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { ManualClock, realClock } from '../../src/util/clock.js';
import { Random } from '../../src/util/random.js';
import { tmpDir } from '../helpers/tmp.js';

const MS = 1e6;
const S = 1e9;
const tmp = tmpDir('remapsim-scan-test-');
afterAll(() => tmp.cleanup());
let files = 0;

/** A 4 KiB-block file of `mib` MiB filled with a pattern. */
function file(mib: number): FileDevice {
  const p = path.join(tmp.dir, `dev${files++}.img`);
  FileDevice.createSparse(p, mib << 20);
  const dev = FileDevice.open(p, { logicalBlockSize: 4096 });
  const buf = new Uint8Array(1 << 20);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 31 + 7) & 0xff;
  for (let s = 0; s < dev.sectors; s += 2048) expect(dev.write(s, buf)).toBe(OK);
  return dev;
}

/** Passes everything through and remembers which sectors were read. */
class ReadRecorder extends PassThroughLayer {
  readonly reads: Array<[number, number]> = [];
  override read(sector: number, buf: Uint8Array): IoStatus {
    this.reads.push([sector, buf.length / 512]);
    return this.inner.read(sector, buf);
  }
}

interface Stack {
  clock: ManualClock;
  file: FileDevice;
  weak: WeakSectorDevice;
  transient: TransientErrorDevice;
  dust: DustDevice;
}

function stack(mib: number, transientProbability = 0): Stack {
  const clock = new ManualClock();
  const f = file(mib);
  const weak = new WeakSectorDevice(f, { clock });
  const transient = new TransientErrorDevice(weak, { probability: transientProbability, random: new Random(9) });
  const dust = new DustDevice(transient, { blockSize: 4096, log: () => {} });
  dust.enable();
  return { clock, file: f, weak, transient, dust };
}

function onePass(sc: HealthScanner, clock: ManualClock): void {
  for (let i = 0; i < 1e6 && !sc.passComplete; i++) {
    clock.advance(MS);
    sc.tick(clock.nowNs());
  }
  expect(sc.passComplete).toBe(true);
}

describe('HealthScanner finds planted faults', () => {
  it('bad, slow and transient sectors on a file behind fault layers, each classified', () => {
    const st = stack(16, 0.002);
    const bad = [5, 300, 301, 4095];
    const slow = [17, 2000, 2001];
    for (const b of bad) st.dust.addBadBlock(b, 0);
    for (const b of slow) st.weak.addWeak(b, { kind: 'fixed', ns: 80 * MS });
    const sc = new HealthScanner({ device: st.dust, clock: st.clock, rate: 0, slowNs: 50 * MS, retries: 3 });
    onePass(sc, st.clock);
    const of = (k: string): number[] =>
      sc.findings
        .filter((f) => f.kind === k && f.blocks === 1)
        .map((f) => f.block)
        .sort((a, b) => a - b);
    expect(of('bad')).toEqual(bad);
    expect(of('weak')).toEqual(slow);
    for (const f of sc.findings.filter((x) => x.kind === 'bad')) {
      expect(f.attempts).toBe(4);
      expect(f.errno).toBe(EIO);
      expect(f.sector).toBe(f.block * 8);
    }
    for (const f of sc.findings.filter((x) => x.kind === 'weak')) expect(f.latencyNs).toBe(80 * MS);
    // the transient layer failed some slice reads; none of them became a bad or weak finding
    expect(st.transient.injected).toBeGreaterThan(0);
    const transient = sc.findings.filter((f) => f.kind === 'transient');
    expect(transient.length).toBeGreaterThan(0);
    expect(sc.stats().found.bad).toBe(bad.length);
    expect(sc.stats().bytesScanned).toBe(16 << 20);
    // the latency map puts the slow reads where the weak blocks are
    const map = sc.map.entries();
    const slowBuckets = map.filter((b) => b.maxNs >= 80 * MS).map((b) => b.sector);
    const bucketOf = (block: number): number => Math.floor((block * 8) / sc.map.bucketSectors) * sc.map.bucketSectors;
    expect(slowBuckets).toEqual([...new Set(slow.map(bucketOf))]);
    expect(map.reduce((a, b) => a + b.errors, 0)).toBeGreaterThanOrEqual(3); // slices holding bad blocks
  });

  it('classifies a failing read by its retries: transient, weak (slow once it reads) or bad', () => {
    const clock = new ManualClock();
    const mem = new MemoryDevice({ sectors: 64 * 8, logicalBlockSize: 4096 });
    const weak = new WeakSectorDevice(mem, { clock });
    // every read starting in blocks 10..11 fails once, then reads
    const transient = new TransientErrorDevice(weak, { probability: 1, region: { from: 80, to: 96 } });
    const dust = new DustDevice(transient, { blockSize: 4096, log: () => {} });
    dust.enable();
    weak.addWeak(11, { kind: 'fixed', ns: 60 * MS });
    dust.addBadBlock(12, 0);
    const c = new SliceClassifier(dust, { clock, blockSectors: 8, slowNs: 50 * MS, retries: 2 }, 8 * 4096);
    const r = c.scan(8, 8);
    expect(r.status).toBe(EIO);
    const byBlock = Object.fromEntries(r.findings.map((f) => [f.block, f]));
    expect(byBlock[10]).toMatchObject({ kind: 'transient', attempts: 2 });
    expect(byBlock[11]).toMatchObject({ kind: 'weak', attempts: 2, latencyNs: 60 * MS });
    expect(byBlock[12]).toMatchObject({ kind: 'bad', attempts: 3 });
    expect(Object.keys(byBlock).sort()).toEqual(['10', '11', '12']);
    // a slice that fails but whose blocks all read at once: one transient finding for the slice
    const t2 = new TransientErrorDevice(new MemoryDevice({ sectors: 64 * 8, logicalBlockSize: 4096 }), { probability: 1, region: { from: 256, to: 264 } });
    const c2 = new SliceClassifier(t2, { clock, blockSectors: 8, slowNs: 50 * MS, retries: 2 }, 8 * 4096);
    const r2 = c2.scan(32, 8);
    expect(r2.findings).toEqual([expect.objectContaining({ kind: 'transient', block: 32, blocks: 8 })]);
  });
});

describe('rate limit and back-off', () => {
  it('holds the configured rate within 10% on the real clock', () => {
    const dev = file(64);
    const rate = 40e6;
    const sc = new HealthScanner({ device: dev, clock: realClock, rate, sliceBytes: 64 << 10 });
    const t0 = realClock.nowNs();
    sc.tick(t0);
    let now = t0;
    while (now - t0 < 1 * S) {
      now = realClock.nowNs();
      sc.tick(now);
      realClock.sleepNs(200_000); // a busy loop would also work; this leaves the CPU to others
    }
    const achieved = sc.stats().bytesScanned / ((now - t0) / S);
    expect(achieved / rate).toBeGreaterThan(0.9);
    expect(achieved / rate).toBeLessThan(1.1);
    dev.close();
  });

  it('on a simulated clock, scans rate x time to within one slice, however the ticks fall', () => {
    const dev = new MemoryDevice({ sectors: 1 << 21 });
    const clock = new ManualClock();
    const sc = new HealthScanner({ device: dev, clock, rate: 8e6 });
    const rng = new Random(1);
    sc.tick(0);
    while (clock.nowNs() < 10 * S) {
      clock.advance(rng.int(20 * MS));
      sc.tick(clock.nowNs());
    }
    const expected = 8e6 * (clock.nowNs() / S);
    expect(Math.abs(sc.stats().bytesScanned - expected)).toBeLessThanOrEqual(sc.sliceBytes);
  });

  it('counts the re-reads that classify a failing slice against the rate', () => {
    const mem = new MemoryDevice({ sectors: 1 << 16, logicalBlockSize: 4096 });
    const dust = new DustDevice(mem, { blockSize: 4096, log: () => {} });
    dust.enable();
    for (let b = 5; b < 8192; b += 32) dust.addBadBlock(b, 0); // one bad block in every 128 KiB slice
    const clock = new ManualClock();
    const sc = new HealthScanner({ device: dust, clock, rate: 4e6 });
    sc.tick(0);
    for (let t = 1; t <= 5000; t++) {
      clock.set(t * MS);
      sc.tick(clock.nowNs());
    }
    const st = sc.stats();
    expect(st.probes).toBeGreaterThan(0);
    expect(Math.abs(st.bytesRead - 4e6 * 5)).toBeLessThanOrEqual(2 * sc.sliceBytes);
    // each slice costs itself, 32 block reads and 3 retries: about half the budget goes to classifying
    expect(st.bytesScanned / st.bytesRead).toBeGreaterThan(0.45);
    expect(st.bytesScanned / st.bytesRead).toBeLessThan(0.55);
    expect(st.found.bad).toBe(Math.floor(st.bytesScanned / sc.sliceBytes));
  });

  it('runs at rate x busyFactor while foreground I/O is seen, and at the full rate once it stops', () => {
    const dev = new MemoryDevice({ sectors: 1 << 22 });
    const clock = new ManualClock();
    let fg = 0;
    const sc = new HealthScanner({ device: dev, clock, rate: 16e6, busyFactor: 0.25, idleNs: 100 * MS, foreground: () => fg });
    sc.tick(0);
    for (let t = 1; t <= 5000; t++) {
      clock.set(t * MS);
      fg++; // one foreground I/O per millisecond
      sc.tick(clock.nowNs());
    }
    const busyBytes = sc.stats().bytesScanned;
    expect(sc.busy).toBe(true);
    expect(Math.abs(busyBytes - 4e6 * 5)).toBeLessThanOrEqual(2 * sc.sliceBytes);
    for (let t = 5001; t <= 10000; t++) {
      clock.set(t * MS);
      sc.tick(clock.nowNs());
    }
    expect(sc.busy).toBe(false);
    // idle after 100 ms without foreground I/O: 4.9 s at 16 MB/s and 0.1 s at 4 MB/s
    expect(Math.abs(sc.stats().bytesScanned - busyBytes - (16e6 * 4.9 + 4e6 * 0.1))).toBeLessThanOrEqual(2 * sc.sliceBytes);
    expect(sc.stats().busyNs).toBeGreaterThan(5 * S);
    // noteForeground() is the other way to say it
    sc.noteForeground(3);
    clock.advance(MS);
    sc.tick(clock.nowNs());
    expect(sc.busy).toBe(true);
  });

  it('refuses options out of range, naming them', () => {
    const dev = new MemoryDevice({ sectors: 4096 });
    expect(() => new HealthScanner({ device: dev, rate: -1 })).toThrow(ScannerOptionError);
    expect(() => new HealthScanner({ device: dev, busyFactor: 2 })).toThrow(/scanner\.busyFactor must be in 0\.\.1, got 2/);
    expect(() => new HealthScanner({ device: dev, sliceBytes: 1000 })).toThrow(/scanner\.slice must be a whole number of 512-byte blocks/);
  });
});

describe('scan order', () => {
  it('staggered: every slice exactly once per pass, regions interleaved', () => {
    const rec = new ReadRecorder(new MemoryDevice({ sectors: 1000 * 8, logicalBlockSize: 4096 }));
    const clock = new ManualClock();
    const sc = new HealthScanner({ device: rec, clock, rate: 0, order: 'staggered', staggerRegions: 7, sliceBytes: 4 * 4096 });
    onePass(sc, clock);
    const starts = rec.reads.map(([s]) => s);
    expect(starts.length).toBe(250);
    expect([...starts].sort((a, b) => a - b)).toEqual(Array.from({ length: 250 }, (_, i) => i * 32));
    // the first reads hop from region to region (36 slices each), not slice to slice
    expect(starts.slice(0, 3)).toEqual([0, 36 * 32, 72 * 32]);
    const seq = new ReadRecorder(new MemoryDevice({ sectors: 1000 * 8, logicalBlockSize: 4096 }));
    const sc2 = new HealthScanner({ device: seq, clock, rate: 0, sliceBytes: 4 * 4096 });
    onePass(sc2, clock);
    expect(seq.reads.map(([s]) => s)).toEqual(Array.from({ length: 250 }, (_, i) => i * 32));
  });
});

describe('health monitor on the policies', () => {
  it('safe: moves weak blocks to the spare with their data, marks bad ones pending, skips remapped blocks', () => {
    const st = stack(8);
    const rec = new ReadRecorder(st.dust);
    const spare = new MemoryDevice({ sectors: 4 << 11, logicalBlockSize: 4096 });
    const target = new SafeRemapTarget({ main: rec, spare, reservedSectors: 64 });
    // distinct data in the blocks of interest
    const data = (b: number): Uint8Array => new Uint8Array(4096).fill(b & 0xff);
    for (const b of [40, 41, 700, 900]) expect(target.write(b * 8, data(b))).toBe(OK);
    expect(target.message(['remap', '900'])).toMatch(/block 900 remapped/);
    st.weak.addWeak(40, { kind: 'fixed', ns: 90 * MS });
    st.dust.addBadBlock(700, 1);
    const tracker = new DetectionTracker(8);
    tracker.appeared(700 * 8, 8, 0);
    const mon = attachHealthMonitor(target, { clock: st.clock, rate: 0, sampleEveryNs: 100 * MS, tracker });
    expect(mon).toBeInstanceOf(SafeHealthMonitor);
    rec.reads.length = 0;
    for (let i = 0; i < 1000 && !mon.scanner!.passComplete; i++) {
      st.clock.advance(MS);
      mon.tick(st.clock.nowNs());
    }
    expect(mon.scanner!.passComplete).toBe(true);
    // block 900 was remapped before: never read from main
    expect(rec.reads.some(([s, n]) => s <= 900 * 8 && 900 * 8 < s + n)).toBe(false);
    expect(target.lookup(40)).toBeGreaterThanOrEqual(0);
    expect(target.isPending(700)).toBe(true);
    expect(target.stats()).toMatchObject({ proactiveRemaps: 1, scannerPending: 1 });
    // the moved block reads back its data, at full speed now
    const t0 = st.clock.nowNs();
    const buf = new Uint8Array(4096);
    expect(target.read(40 * 8, buf)).toBe(OK);
    expect(buf).toEqual(data(40));
    expect(st.clock.nowNs()).toBe(t0);
    // the next write heals the pending block
    expect(target.write(700 * 8, data(7))).toBe(OK);
    expect(target.isPending(700)).toBe(false);
    const line = target.message(['health']);
    expect(line).toMatch(/^health_score=\d+ trend=\w+ /);
    expect(line).toContain('found_bad=1 found_weak=1');
    expect(line).toContain('weak_moved=1');
    const r = mon.report();
    expect(r.policy).toBe('safe');
    expect(r.spare.used).toBe(3); // 900 by message, 40 by the scanner, 700 by the write
    expect(r.actions).toMatchObject({ weakMoved: 1, badPending: 1 });
    expect(r.findings.map((f) => f.kind).sort()).toEqual(['bad', 'weak']);
    expect(r.detection).toMatchObject({ appeared: 1, scannerFirst: 1, foundBeforeForeground: 1 });
    expect(r.score).toBeGreaterThan(0);
    expect(r.score).toBeLessThanOrEqual(100);
    expect(JSON.parse(JSON.stringify(r)).prediction.arrivals).toBe(r.prediction.arrivals);
    mon.close();
    expect(target.message(['health'])).toMatch(/scanner=off$/);
  });

  it('safe: a weak block the spare has no room for waits (and counts against the score); the target refuses nonsense', () => {
    const st = stack(4);
    // one data block of spare between the two reserved areas
    const target = new SafeRemapTarget({ main: st.dust, spare: new MemoryDevice({ sectors: 3 * 8, logicalBlockSize: 4096 }), reservedSectors: 8 });
    expect(target.spareBlocksTotal).toBe(1);
    expect(target.message(['health'])).toBe('health_score=100 spare_used=0 spare_total=1 pending=0 scanner=off');
    st.weak.addWeak(10, { kind: 'fixed', ns: 60 * MS });
    st.weak.addWeak(20, { kind: 'fixed', ns: 60 * MS });
    const mon = attachHealthMonitor(target, { clock: st.clock, rate: 0 });
    for (let i = 0; i < 100 && !mon.scanner!.passComplete; i++) {
      st.clock.advance(MS);
      mon.tick(st.clock.nowNs());
    }
    const r = mon.report();
    expect(r.actions).toMatchObject({ weakMoved: 1, weakWaiting: 1 });
    expect(r.spare).toMatchObject({ total: 1, used: 1, weakWaiting: 1, remaining: 0 });
    expect(r.score).toBe(0);
    expect(target.markBlockPending(10)).toBe(false); // remapped already
    expect(target.migrateWeakBlock(10)).toBe('already-remapped');
    expect(() => target.migrateWeakBlock(1 << 20)).toThrow(/block 1048576 is out of range 0\.\.1023/);
    expect(() => target.message(['health', 'now'])).toThrow(/'health' takes no arguments/);
    mon.close();
  });

  it('dm-remap-v4: the monitor reads nothing, and reports the module score beside its own', () => {
    const clock = new ManualClock();
    const rec = new ReadRecorder(new MemoryDevice({ sectors: 1 << 16 }));
    const target = new DmRemapV4Target({ main: rec, spare: new MemoryDevice({ sectors: 1 << 13 }), clock });
    const mon = attachHealthMonitor(target, { clock });
    for (let t = 0; t <= 1000; t++) {
      clock.set(t * S);
      mon.tick(clock.nowNs());
    }
    expect(rec.reads).toEqual([]);
    expect(mon.scanner).toBeUndefined();
    const r = mon.report();
    expect(r.policy).toBe('dm-remap-v4');
    expect(r.scanner.enabled).toBe(false);
    expect(r.module?.healthScore).toBe(100);
    expect(r.score).toBe(100);
    expect(target.message(['health'])).toBe(''); // the module formats a reply and never delivers it
    expect(target.messageText(['health'])).toMatch(/^health_score=100%/);
  });

  it('the foreground tap counts I/Os, makes the scanner back off, and reports failed reads to the tracker', () => {
    const st = stack(4);
    const target = new SafeRemapTarget({ main: st.dust, spare: new MemoryDevice({ sectors: 1 << 12, logicalBlockSize: 4096 }), reservedSectors: 64 });
    const tracker = new DetectionTracker(8);
    const mon = attachHealthMonitor(target, { clock: st.clock, rate: 1e6, busyFactor: 0.5, tracker });
    const fg = mon.wrap(target);
    st.dust.addBadBlock(100, 0);
    tracker.appeared(800, 8, st.clock.nowNs());
    const buf = new Uint8Array(4096);
    mon.tick(st.clock.nowNs());
    for (let i = 0; i < 1000; i++) {
      st.clock.advance(MS);
      fg.read((i % 50) * 8, buf);
      mon.tick(st.clock.nowNs());
    }
    expect(fg.ios).toBe(1000);
    expect(mon.scanner!.busy).toBe(true);
    expect(Math.abs(mon.scanner!.stats().bytesScanned - 0.5e6)).toBeLessThanOrEqual(mon.scanner!.sliceBytes);
    expect(fg.read(800, buf)).toBe(EIO);
    expect(tracker.summary()).toMatchObject({ appeared: 1, foregroundFirst: 1, scannerFirst: 0, foundBeforeForeground: 0 });
    // a read the tap does not see (an engine worker's): the block it left pending tells the monitor at its next tick
    st.dust.addBadBlock(120, 0);
    tracker.appeared(960, 8, st.clock.nowNs());
    expect(target.read(960, buf)).toBe(EIO);
    st.clock.advance(20 * MS);
    mon.tick(st.clock.nowNs());
    expect(tracker.summary()).toMatchObject({ appeared: 2, foregroundFirst: 2 });
  });
});
