import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allocAligned } from '../../src/block/aligned.js';
import { OK } from '../../src/block/device.js';
import { FileDevice } from '../../src/block/file-device.js';
import { nativeIoStatus } from '../../src/sys/native-io.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { IoGenerator, newIoRequest } from '../../src/workload/generator.js';
import { jobFromRecord } from '../../src/workload/job.js';
import { READ_BATCH, ReadBatch } from '../../src/workload/read-batch.js';
import { runJobs } from '../../src/workload/runner.js';
import { realClock } from '../../src/util/clock.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-read-batch-');
const targets: SafeRemapTarget[] = [];
afterAll(() => {
  for (const t of targets) t.close();
  tmp.cleanup();
});

const REMAPPED = [130, 131, 140, 150, 152, 154, 156, 158, 160, 162, 164, 1000];

/** A safe target over page-cached files, 128 KiB written from sector 128 on, REMAPPED sent to the spare and main's stale copies of them scribbled over. */
function model(name: string): { target: SafeRemapTarget; data: Uint8Array } {
  const mainPath = path.join(tmp.dir, `${name}-main`);
  const sparePath = path.join(tmp.dir, `${name}-spare`);
  FileDevice.createSparse(mainPath, 1 << 20);
  FileDevice.createSparse(sparePath, 1 << 20);
  const target = new SafeRemapTarget({ main: FileDevice.open(mainPath), spare: FileDevice.open(sparePath), reservedSectors: 64 });
  targets.push(target);
  const data = new Uint8Array(1024 * 512).map((_, i) => (i * 13 + (i >> 9)) & 0xff);
  expect(target.write(128, data)).toBe(OK);
  for (const b of REMAPPED) target.message(['remap', String(b)]);
  const raw = FileDevice.open(mainPath);
  for (const b of REMAPPED) raw.write(b, new Uint8Array(512).fill(0xee));
  raw.close();
  return { target, data };
}

const native = nativeIoStatus().available;

describe.skipIf(!native)('ReadBatch', () => {
  it("reads each request's pieces, main's runs and the spare's, into the buffer", () => {
    const { target, data } = model('pieces');
    const a = allocAligned(64 << 10);
    try {
      const batch = ReadBatch.of(target, a.buf)!;
      expect(batch).toBeDefined();
      // one request per generator: whole, inside a run, across runs, and one with more runs than a plan holds (read() then)
      for (const [sector, n] of [
        [128, 128],
        [130, 2],
        [129, 16],
        [139, 3],
        [150, 16],
        [992, 16],
      ]) {
        const job = jobFromRecord({ name: 'p', rw: 'read', bs: n * 512, size: n * 512, offset: sector * 512 });
        const gen = new IoGenerator(job, { deviceBytes: target.sectors * 512, clone: 0, alignBytes: 512 });
        a.buf.fill(0);
        const req = newIoRequest();
        const unplanned = n === 128 || sector === 150; // more runs than a plan holds: it ends its batch, and the generator is asked again next time
        expect(batch.run(gen, req, Infinity)).toBe(unplanned);
        expect(batch.count).toBe(1);
        expect(batch.native).toBe(unplanned ? 0 : 1);
        expect(batch.status[0]).toBe(OK);
        expect(batch.offsetBytes[0]).toBe(sector * 512);
        expect(batch.lengthBytes[0]).toBe(n * 512);
        expect(a.buf.subarray(0, n * 512)).toEqual(data.subarray((sector - 128) * 512, (sector - 128 + n) * 512));
        if (unplanned) {
          expect(batch.run(gen, req, Infinity)).toBe(false);
          expect(batch.count).toBe(0);
        }
      }
    } finally {
      a.free();
    }
  });

  it('reads up to READ_BATCH requests per call, each with its own start and end, and counts none that start after the limit', () => {
    const { target } = model('times');
    const a = allocAligned(4096);
    try {
      const batch = ReadBatch.of(target, a.buf)!;
      const job = jobFromRecord({ name: 't', rw: 'randread', bs: '4k', size: '1m', io_size: '4m' });
      const gen = new IoGenerator(job, { deviceBytes: target.sectors * 512, clone: 0, alignBytes: 512 });
      const req = newIoRequest();
      const before = realClock.nowNs();
      expect(batch.run(gen, req, Infinity)).toBe(true);
      expect(batch.count).toBe(READ_BATCH);
      expect(batch.native).toBe(READ_BATCH);
      let prev = before;
      for (let i = 0; i < batch.count; i++) {
        expect(batch.status[i]).toBe(OK);
        expect(batch.startNs[i]).toBeGreaterThanOrEqual(prev);
        expect(batch.endNs[i]).toBeGreaterThan(batch.startNs[i]);
        prev = batch.endNs[i];
      }
      expect(batch.lastNs).toBe(prev);
      expect(batch.lastNs).toBeLessThanOrEqual(realClock.nowNs());
      // a limit already past: nothing counted, and the caller learns the time
      expect(batch.run(gen, req, before)).toBe(true);
      expect(batch.count).toBe(0);
      expect(batch.lastNs).toBeGreaterThan(before);
    } finally {
      a.free();
    }
  });
});

describe('runJobs reads in native batches', () => {
  it('makes the same reads as device calls, with the same model counters', () => {
    const results = (['auto', 'js'] as const).map((io) => {
      const { target } = model(`run-${io}`);
      const before = target.stats();
      const r = runJobs({
        device: target,
        jobs: [jobFromRecord({ name: 'r', rw: 'randread', bs: '4k', size: '1m', io_size: '8m', numjobs: 2, randseed: 5 })],
        io,
      });
      const after = target.stats();
      return { r, reads: after.reads - before.reads, remappedReads: after.remappedReads - before.remappedReads };
    });
    const [auto, js] = results;
    expect(auto.r.jobs[0].read.totalIos).toBe(2 * 2048);
    expect(js.r.jobs[0].read.totalIos).toBe(2 * 2048);
    expect(auto.r.jobs[0].read.ioBytes).toBe(js.r.jobs[0].read.ioBytes);
    expect(auto.r.jobs[0].read.errors + js.r.jobs[0].read.errors).toBe(0);
    expect(auto.reads).toBe(js.reads);
    expect(auto.remappedReads).toBe(js.remappedReads);
    expect(auto.remappedReads).toBeGreaterThan(0);
    expect(js.r.batchedReads).toBe(0);
    expect(auto.r.batchedReads).toBe(native ? 2 * 2048 : 0);
    expect(auto.r.jobs[0].read.clat.count).toBe(2 * 2048);
  });

  it('keeps a job that writes, verifies or is rate limited on device calls', () => {
    const { target } = model('writes');
    for (const rec of [
      { rw: 'randrw', size: '256k' },
      { rw: 'read', size: '256k', rate_iops: 100000 },
    ]) {
      const r = runJobs({ device: target, jobs: [jobFromRecord({ name: 'w', bs: '4k', ...rec })] });
      expect(r.batchedReads).toBe(0);
      expect(r.jobs[0].read.totalIos + r.jobs[0].write.totalIos).toBe(64);
    }
  });
});
