import { describe, expect, it } from 'vitest';
import { isAligned } from '../../src/block/aligned.js';
import { BlockRequestError } from '../../src/block/device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { jobFromRecord } from '../../src/workload/job.js';
import { runJobs, runJobsYielding } from '../../src/workload/runner.js';

const dev = () => new MemoryDevice({ sectors: 2 ** 15 }); // 16 MiB

describe('runJobs', () => {
  it('frees its job buffers when a device throws midway', () => {
    const dev = new MemoryDevice({ sectors: 2048 });
    let seen: Uint8Array | undefined;
    let calls = 0;
    const read = dev.read.bind(dev);
    dev.read = (sector, buf) => {
      seen = buf;
      if (++calls === 50) throw new BlockRequestError('out-of-range', 'a layer refused the request');
      return read(sector, buf);
    };
    expect(() => runJobs({ device: dev, jobs: [jobFromRecord({ name: 'r', rw: 'randread', bs: '4k', size: '1m', io_size: '4m' })] })).toThrow(
      /a layer refused/,
    );
    expect(seen).toBeDefined();
    expect(isAligned(seen!)).toBe(false); // its memory went back (a live job buffer is page-aligned native memory)
  });

  it('ends a size-based job after its size, sequentially covering the region once', () => {
    const r = runJobs({ device: dev(), jobs: [jobFromRecord({ name: 's', rw: 'write', bs: '64k', size: '4m' })] });
    expect(r.jobs[0].write.ioBytes).toBe(4 << 20);
    expect(r.jobs[0].write.totalIos).toBe(64);
    expect(r.jobs[0].error).toBe(0);
  });

  it('runs numjobs clones and several jobs in one run', () => {
    const r = runJobs({
      device: dev(),
      jobs: [jobFromRecord({ name: 'a', rw: 'randread', bs: '4k', size: '1m', numjobs: 3 }), jobFromRecord({ name: 'b', rw: 'read', bs: '128k', size: '2m' })],
    });
    expect(r.jobs[0].read.totalIos).toBe(3 * 256);
    expect(r.jobs[1].read.ioBytes).toBe(2 << 20);
  });

  it('holds rate_iops within 10%', () => {
    const r = runJobs({ device: dev(), jobs: [jobFromRecord({ name: 'r', rw: 'randread', bs: '4k', rate_iops: 2000, runtime: '1s', time_based: 1 })] });
    const iops = r.jobs[0].read.totalIos / (r.jobs[0].runtimeNs / 1e9);
    expect(iops).toBeGreaterThan(1800);
    expect(iops).toBeLessThan(2200);
  });

  it('stops a job at its first error unless continue_on_error says otherwise', () => {
    const mk = () => {
      const d = new DustDevice(dev());
      d.enable();
      d.addBadBlock(100, 0);
      return d;
    };
    const stop = runJobs({ device: mk(), jobs: [jobFromRecord({ name: 'x', rw: 'read', bs: '4k', size: '1m' })] });
    expect(stop.jobs[0].error).toBe(5);
    expect(stop.jobs[0].read.errors).toBe(1);
    expect(stop.jobs[0].read.totalIos).toBeLessThan(20);
    const go = runJobs({ device: mk(), jobs: [jobFromRecord({ name: 'x', rw: 'read', bs: '4k', size: '1m', continue_on_error: 'read' })] });
    expect(go.jobs[0].error).toBe(0);
    expect(go.jobs[0].read.errors).toBe(1);
    expect(go.jobs[0].read.totalIos).toBe(256);
  });

  it('does not count the ramp time', () => {
    const r = runJobs({ device: dev(), jobs: [jobFromRecord({ name: 'r', rw: 'randread', bs: '4k', ramp_time: '300ms', runtime: '300ms', time_based: 1 })] });
    expect(r.jobs[0].runtimeNs).toBeGreaterThan(290e6);
    expect(r.jobs[0].runtimeNs).toBeLessThan(400e6);
    expect(r.elapsedNs).toBeGreaterThan(590e6);
  });
});

describe('runJobsYielding', () => {
  it('lets timers run meanwhile; aborting its stop signal ends every job at once with what ran (a signal stopping the run)', async () => {
    const device = new MemoryDevice({ sectors: 16384 });
    const job = jobFromRecord({ rw: 'randrw', bs: '4k', runtime: '30s', time_based: 1 });
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort('SIGINT'), 300);
    const r = await runJobsYielding({ device, jobs: [job, { ...job, name: 'second' }], stop: ac.signal });
    expect(Date.now() - t0).toBeLessThan(5000);
    for (const j of r.jobs) {
      expect(j.error).toBe(0);
      expect(j.read.totalIos + j.write.totalIos).toBeGreaterThan(0);
      expect(j.runtimeNs).toBeGreaterThan(200e6);
      expect(j.runtimeNs).toBeLessThan(5e9);
    }
    // already aborted: nothing runs
    const none = await runJobsYielding({ device, jobs: [job], stop: ac.signal });
    expect(none.jobs[0].read.totalIos + none.jobs[0].write.totalIos).toBe(0);
  });
});
