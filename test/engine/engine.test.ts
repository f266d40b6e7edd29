import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { NullDevice } from '../../src/block/null-device.js';
import { SharedMemoryDevice } from '../../src/block/shared-memory-device.js';
import { Engine } from '../../src/engine/engine.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { jobFromRecord } from '../../src/workload/job.js';
import { Oracle } from '../../src/workload/oracle.js';
import { VerifyPattern } from '../../src/workload/verify-pattern.js';
import { tmpDir } from '../helpers/tmp.js';

const engines: Engine[] = [];
const targets: SafeRemapTarget[] = [];
const tmp = tmpDir('remapsim-engine-');
afterAll(async () => {
  for (const e of engines) await e.close();
  for (const t of targets) t.close();
  tmp.cleanup();
});

let models = 0;
/** A safe-policy primary on a 1 MiB main file and a spare file, and an engine of two queues whose workers run its replicas. */
async function modelEngine(spareBytes: number, opts: { discardPassdown?: boolean } = {}): Promise<{ primary: SafeRemapTarget; e: Engine; mainPath: string }> {
  const mainPath = path.join(tmp.dir, `main-${++models}`);
  const sparePath = path.join(tmp.dir, `spare-${models}`);
  FileDevice.createSparse(mainPath, 1 << 20);
  FileDevice.createSparse(sparePath, spareBytes);
  const primary = new SafeRemapTarget({ main: FileDevice.open(mainPath), spare: FileDevice.open(sparePath), reservedSectors: 64, ...opts });
  targets.push(primary);
  const e = await Engine.start({
    device: {
      kind: 'model',
      policy: 'safe',
      main: { file: { path: mainPath } },
      spare: { file: { path: sparePath } },
      target: primary.shared,
      mainPath,
      sparePath,
    },
    primary,
    queues: 2,
    force: true,
    pin: false,
  });
  engines.push(e);
  return { primary, e, mainPath };
}

async function engine(queues: number, sectors = 1 << 15): Promise<{ e: Engine; dev: SharedMemoryDevice }> {
  const dev = new SharedMemoryDevice({ sectors });
  const e = await Engine.start({ device: { kind: 'shared-memory', shared: dev.shared }, queues, force: true, pin: false });
  engines.push(e);
  return { e, dev };
}

describe('the engine', () => {
  it('runs a size-based job to completion: every block once, across queues', async () => {
    // big enough that the idle queue wakes while queue 0 still has a backlog, however busy the machine (queue 0 runs
    // 16 requests a round: a small job can end before queue 1 is scheduled)
    const { e } = await engine(2, 1 << 18);
    const r = await e.runJobs([jobFromRecord({ name: 'w', rw: 'randwrite', bs: '4k', iodepth: 32, size: '128m' })]);
    expect(r.jobs[0].write.totalIos).toBe(32768);
    expect(r.jobs[0].write.ioBytes).toBe(128 << 20);
    expect(r.jobs[0].error).toBe(0);
    const st = e.stats();
    expect(st.queues.reduce((a, q) => a + q.executed, 0)).toBe(32768);
    expect(st.queues[1].stolen).toBeGreaterThan(0); // queue 1 had no clone of its own: it only stole
  });

  it("runs a job on a null device (fio's ioengine=null): no data moves, and every buffer slot is back in the pool after the run", async () => {
    const e = await Engine.start({ device: { kind: 'null', sectors: 1 << 15 }, queues: 2, force: true, pin: false });
    engines.push(e);
    const r = await e.runJobs([jobFromRecord({ name: 'n', rw: 'randread', bs: '4k', iodepth: 16, numjobs: 2, io_size: 20_000 * 4096 })]);
    expect(r.jobs[0].error).toBe(0);
    expect(r.jobs[0].read.totalIos).toBe(40_000);
    const pools = e.stats().pools;
    // a queue keeps the slots it used between its requests during a run, and gives them back at its end
    expect(pools.nodes.reduce((a, n) => a + n.inUse, 0)).toBe(0);
    // and asks the shared pool for a slot only when it holds none: at most once per request it keeps in flight
    expect(pools.nodes.reduce((a, n) => a + n.allocations, 0)).toBeLessThanOrEqual(2 * 16);
    expect(() => new NullDevice(0)).toThrow(RangeError);
    const dev = new NullDevice(8);
    const buf = new Uint8Array(4096).fill(7);
    expect([dev.read(0, buf), dev.write(0, buf), dev.flush(), dev.discard(0, 8)]).toEqual([0, 0, 0, 0]);
    expect(buf.every((b) => b === 7)).toBe(true);
    expect(() => dev.read(1, buf)).toThrow(/beyond the device end/);
  });

  it('completes each of 1e6 requests exactly once across two queues (none lost, none twice)', async () => {
    const { e } = await engine(2, 1 << 13);
    // two clones, one per queue, each issuing 500,000 reads of 512 bytes at iodepth 32 (a 4 MiB device read 61 times over)
    const r = await e.runJobs([jobFromRecord({ name: 'n', rw: 'randread', bs: '512', iodepth: 32, numjobs: 2, io_size: 500_000 * 512 })]);
    const j = r.jobs[0];
    expect(j.error).toBe(0);
    expect(j.read.errors).toBe(0);
    // a lost completion leaves the job unfinished (the test times out); a duplicate counts twice or finds its tag free
    expect(j.read.totalIos).toBe(1_000_000);
    expect(j.read.ioBytes).toBe(1_000_000 * 512);
    const st = e.stats();
    expect(st.queues.reduce((a, q) => a + q.executed, 0)).toBe(1_000_000);
    expect(st.queues.every((q) => q.executed > 0)).toBe(true);
  }, 120_000);

  it('verifies data written and read through several queues', async () => {
    const { e } = await engine(2);
    const pattern = new VerifyPattern({ unitSize: 4096, runId: 5, seed: 5 });
    const oracle = new Oracle({ pattern, units: (e.local.sectors * 512) / 4096 });
    const r = await e.runJobs(
      [jobFromRecord({ name: 'v', rw: 'randrw', bs: '4k', iodepth: 16, numjobs: 2, runtime: '500ms', time_based: 1, verify: 'crc32c' })],
      { oracle },
    );
    oracle.finalPass(e.local);
    const rep = oracle.report();
    expect(rep.findings).toBe(0);
    expect(rep.reads.ok).toBeGreaterThan(100);
    expect(r.jobs[0].verify!.ok).toBeGreaterThan(0);
  });

  it('serves requests from the main thread without blocking it', async () => {
    const { e, dev } = await engine(2);
    const data = new Uint8Array(8192).fill(0x5c);
    expect(await e.submit('write', 64, data)).toBe(0);
    const out = new Uint8Array(8192);
    expect(await e.submit('read', 64, out)).toBe(0);
    expect(out).toEqual(data);
    const raw = new Uint8Array(8192);
    dev.read(64, raw);
    expect(raw).toEqual(data);
    // many at once: all complete, in any order
    const reads = await Promise.all(Array.from({ length: 200 }, (_, i) => e.submit('read', i * 8, new Uint8Array(4096))));
    expect(reads.every((s) => s === 0)).toBe(true);
    expect(await e.submit('read', dev.sectors, new Uint8Array(512))).toBe(22); // out of range: EINVAL, not a crash
  });

  it('lends a read in its buffer slot until released, and fails a bad one without holding a slot', async () => {
    const { e, dev } = await engine(2);
    const data = new Uint8Array(65536).map((_, i) => (i * 7) & 0xff);
    expect(dev.write(128, data)).toBe(0);
    const inUse = (): number => e.stats().pools.total.inUse;
    const r = await e.lendRead(128, data.length);
    expect(r.status).toBe(0);
    expect(r.data).toEqual(data);
    expect(inUse()).toBe(1); // the data is still in the slot
    r.release();
    r.release(); // a second release does nothing
    expect(inUse()).toBe(0);
    const bad = await e.lendRead(dev.sectors, 512);
    expect(bad.status).toBe(22);
    expect(bad.data.length).toBe(0);
    expect(inUse()).toBe(0);
    // more lent reads than slots: the rest wait for releases instead of failing
    const slots = e.stats().pools.total.slots;
    const first = await Promise.all(Array.from({ length: slots }, (_, i) => e.lendRead(i * 8, 4096)));
    const late = e.lendRead(0, 4096);
    let settled = false;
    void late.then(() => (settled = true));
    await new Promise((res) => setTimeout(res, 50));
    expect(settled).toBe(false);
    for (const x of first) x.release();
    const l = await late;
    expect(l.status).toBe(0);
    l.release();
    expect(inUse()).toBe(0);
    await expect(e.lendRead(0, e.maxRequestBytes + 512)).rejects.toThrow(/larger than the engine's largest/);
  });

  it('refuses impossible settings in one line', async () => {
    const dev = new SharedMemoryDevice({ sectors: 64 });
    const spec = { kind: 'shared-memory' as const, shared: dev.shared };
    await expect(Engine.start({ device: spec, queues: 0 })).rejects.toThrow('--queues: must be at least 1, got 0');
    await expect(Engine.start({ device: spec, queues: 64 })).rejects.toThrow(/pass --force/);
    await expect(Engine.start({ device: spec, numa: '2x0' })).rejects.toThrow(/--numa/);
  });
});

describe('the engine on a file', () => {
  it("replicas take the primary's layout and features: no_discard_passdown holds for trims the workers run", async () => {
    const { primary, e } = await modelEngine(4 << 20, { discardPassdown: false });
    const data = new Uint8Array(65536).fill(0x6b);
    expect(await e.submit('write', 128, data)).toBe(0);
    for (let i = 0; i < 4; i++) expect(await e.submit('trim', 128, undefined, { count: 128 })).toBe(0); // both queues take some
    const out = new Uint8Array(65536);
    expect(primary.read(128, out)).toBe(0);
    expect(out).toEqual(data); // not passed down: the data is still there
  });

  it('writes from the workers survive blocks moving to the spare and back on the primary meanwhile (none lost, none stale)', async () => {
    const { primary, e } = await modelEngine(64 << 20);
    const pattern = new VerifyPattern({ unitSize: 4096, runId: 4, seed: 4 });
    const oracle = new Oracle({ pattern, units: 64 });
    // the primary moves blocks of the 256 KiB the job writes to the spare and back, as fast as it can, while the workers write them
    let moves = 0;
    let running = true;
    let k = 0;
    const mover = (): void => {
      if (!running) return;
      for (let i = 0; i < 20; i++) {
        const b = (k++ * 37) % 512;
        primary.message(primary.lookup(b) >= 0 ? ['unremap', String(b)] : ['remap', String(b)]);
        moves++;
      }
      setImmediate(mover);
    };
    setImmediate(mover);
    const r = await e.runJobs(
      [jobFromRecord({ name: 'm', rw: 'randrw', bs: '4k', iodepth: 8, numjobs: 2, size: '256k', runtime: 2, time_based: 1, verify: 'crc32c' })],
      { oracle },
    );
    running = false;
    const v = r.jobs[0].verify!;
    expect({ stale: v.stale, lost: v.lost, corrupt: v.corrupt, unexpectedError: v.unexpectedError }).toEqual({
      stale: 0,
      lost: 0,
      corrupt: 0,
      unexpectedError: 0,
    });
    // enough of both to have met (alone here: ~9,000 moves, ~2,000 writes; without the move sequence the first torn read came within 100 ms)
    expect(moves).toBeGreaterThan(500);
    expect(r.jobs[0].write.totalIos).toBeGreaterThan(200);
    expect(v.ok).toBeGreaterThan(200);
  }, 30_000);

  it("reads a model through io_uring as non-overlapping pieces, main's runs and the spare's, as read() does", async () => {
    const { primary, e, mainPath } = await modelEngine(4 << 20);
    const data = new Uint8Array(65536).map((_, i) => (i * 13 + (i >> 9)) & 0xff);
    expect(await e.submit('write', 128, data)).toBe(0);
    for (const b of [130, 131, 140, 150, 152, 154, 156, 158, 160, 162, 164]) primary.message(['remap', String(b)]);
    // main's stale copies of the remapped blocks scribbled over: a read that took them from main would show it
    const raw = FileDevice.open(mainPath);
    for (const b of [130, 131, 140, 150, 152, 154, 156, 158, 160, 162, 164]) raw.write(b, new Uint8Array(512).fill(0xee));
    raw.close();
    // whole, inside one run, across runs, and one with more runs than a plan holds (read() then)
    for (const [s, n] of [
      [128, 128],
      [130, 2],
      [129, 16],
      [139, 3],
      [150, 16],
    ]) {
      const out = new Uint8Array(n * 512);
      expect(await e.submit('read', s, out)).toBe(0);
      expect(out).toEqual(data.subarray((s - 128) * 512, (s - 128 + n) * 512));
    }
    const { nativeIoStatus } = await import('../../src/sys/native-io.js');
    const mech = e.stats().queues.map((q) => q.io);
    if (nativeIoStatus().available) expect(mech.every((m) => m.startsWith('native:'))).toBe(true);
    else expect(mech).toEqual(['sync', 'sync']);
  });

  it('reads and writes through io_uring (or the JS path) with the same results', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { FileDevice } = await import('../../src/block/file-device.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapsim-engine-'));
    try {
      const file = path.join(dir, 'f.img');
      FileDevice.createSparse(file, 16 << 20);
      for (const io of ['js', 'auto'] as const) {
        const e = await Engine.start({ device: { kind: 'file', path: file, direct: true }, queues: 2, force: true, pin: false, io });
        engines.push(e);
        const pattern = new VerifyPattern({ unitSize: 4096, runId: 9, seed: 9 });
        const oracle = new Oracle({ pattern, units: 4096 });
        const r = await e.runJobs([jobFromRecord({ name: 'd', rw: 'randrw', bs: '4k', iodepth: 32, size: '16m', direct: 1, verify: 'crc32c' })], { oracle });
        oracle.finalPass(e.local);
        expect(oracle.report().findings).toBe(0);
        expect(r.jobs[0].read.totalIos + r.jobs[0].write.totalIos).toBe(4096);
        const mech = e.stats().queues.map((q) => q.io);
        if (io === 'js') expect(mech).toEqual(['sync', 'sync']);
        else console.log(`engine io with 'auto': ${mech.join(', ')}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
