import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { BufferPools, formatPoolStats } from '../../src/engine/buffer-pool.js';
import { EngineOptionError, parseNumaShape, readTopology, threadAffinity, type NumaTopology } from '../../src/engine/numa.js';
import { isAligned } from '../../src/block/aligned.js';
import { FileDevice } from '../../src/block/file-device.js';
import { OK } from '../../src/block/device.js';
import { libc, type Libc } from '../../src/sys/libc.js';
import { startWorker } from '../../src/util/worker.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-pool-');
afterAll(() => tmp.cleanup());

function run<T>(data: Record<string, unknown>): { worker: Worker; result: Promise<T>; exited: Promise<number> } {
  const worker = startWorker(import.meta.url, './buffer-pool.worker', { workerData: data });
  const exited = new Promise<number>((res) => worker.once('exit', res));
  const result = new Promise<T>((res, rej) => {
    worker.once('message', (m) => res(m as T));
    worker.once('error', rej);
  });
  return { worker, result, exited };
}

describe('BufferPools in one thread', () => {
  it('hands out page-aligned, O_DIRECT-registered slots from the local node and tracks the high-water mark', () => {
    const pools = BufferPools.create({ topology: readTopology(), slotSize: 8192, slotsPerNode: 40 });
    try {
      const node = pools.nodeIds[0];
      const held = Array.from({ length: 33 }, () => pools.acquire(node)); // crosses a 32-bit bitmap word
      expect(new Set(held).size).toBe(33);
      for (const s of held) {
        expect(pools.nodeOf(s)).toBe(node);
        const v = pools.view(s);
        expect(v.length).toBe(8192);
        expect(pools.address(s) % 4096n).toBe(0n);
        expect(isAligned(v)).toBe(true);
        expect(isAligned(v.subarray(0, 4096))).toBe(true);
      }
      for (const s of held.slice(0, 20)) pools.release(s);
      const again = Array.from({ length: 5 }, () => pools.acquire(node));
      let st = pools.stats().nodes[0];
      expect(st).toMatchObject({ node, slots: 40, allocations: 38, hits: 38, misses: 0, remote: 0, failed: 0, releases: 20, inUse: 18, highWater: 33 });
      for (const s of [...held.slice(20), ...again]) pools.release(s);
      st = pools.stats().nodes[0];
      expect(st).toMatchObject({ allocations: 38, releases: 38, inUse: 0, highWater: 33 });
      expect(pools.stats().total).toEqual({ slots: 40 * pools.nodeCount, allocations: 38, hits: 38, misses: 0, remote: 0, failed: 0, releases: 38, inUse: 0 });
      expect(JSON.parse(JSON.stringify(pools.stats()))).toEqual(pools.stats());
    } finally {
      pools.destroy();
    }
  });

  it('gives a just-released slot back first (cache-warm) and catches a double release', () => {
    const pools = BufferPools.create({ topology: parseNumaShape('1x1'), slotSize: 4096, slotsPerNode: 64 });
    const a = pools.acquire(0);
    const b = pools.acquire(0);
    pools.release(a);
    expect(pools.acquire(0)).toBe(a);
    pools.release(a);
    expect(() => pools.release(a)).toThrow(`buffer pools: slot ${a} released but not in use (released twice?)`);
    expect(() => pools.release(64)).toThrow('buffer pools: slot 64 does not exist (0 to 63)');
    expect(() => pools.acquire(1)).toThrow('buffer pools: no pool for node 1 (nodes 0)');
    expect(pools.stats().nodes[0].inUse).toBe(1);
    pools.release(b);
    pools.destroy();
  });

  it('zeroes each region from its own node on a real topology; the pages are resident', () => {
    const topo = readTopology();
    const before = threadAffinity();
    const pools = BufferPools.create({ topology: topo, slotSize: 64 << 10, slotsPerNode: 64 }); // 4 MiB per node: mmap'd, fresh pages
    try {
      expect(threadAffinity()).toEqual(before); // pinned only while zeroing
      const expected = topo.source === 'sysfs' ? 'first-touch' : 'single-node';
      for (const n of pools.stats().nodes) expect(n.placement).toBe(expected);
      for (let s = 0; s < pools.slotCount; s += 7) expect(pools.view(s).every((b) => b === 0)).toBe(true);
      const res = pools.residency();
      if (res && topo.source === 'sysfs') {
        const pages = ((64 << 10) * 64) / 4096;
        for (const r of res) expect(r.pages[r.node] ?? 0).toBeGreaterThanOrEqual(pages);
      }
    } finally {
      pools.destroy();
    }
  });

  it('with a simulated 2x4 topology: local node first, then remote (counted on both sides), then -1', () => {
    const pools = BufferPools.create({ topology: parseNumaShape('2x4'), slotSize: 4096, slotsPerNode: 3 });
    try {
      expect(pools.nodeIds).toEqual([0, 1]);
      const local0 = [pools.acquire(0), pools.acquire(0), pools.acquire(0)];
      expect(local0.map((s) => pools.nodeOf(s))).toEqual([0, 0, 0]);
      const local1 = pools.acquire(1);
      expect(pools.nodeOf(local1)).toBe(1);
      const remote = [pools.acquire(0), pools.acquire(0)]; // node 0 exhausted: node 1 lends its last two
      expect(remote.map((s) => pools.nodeOf(s))).toEqual([1, 1]);
      expect(pools.acquire(0)).toBe(-1);
      expect(pools.acquire(1)).toBe(-1);
      let st = pools.stats();
      expect(st.nodes[0]).toMatchObject({ allocations: 6, hits: 3, misses: 3, remote: 2, failed: 1, lent: 0, inUse: 3, highWater: 3, placement: 'logical' });
      expect(st.nodes[1]).toMatchObject({ allocations: 2, hits: 1, misses: 1, remote: 0, failed: 1, lent: 2, inUse: 3, highWater: 3, placement: 'logical' });
      pools.release(local0[1]);
      expect(pools.nodeOf(pools.acquire(1))).toBe(0); // node 1 full: it borrows from node 0
      for (const s of [local0[0], local0[2], local1, ...remote]) pools.release(s);
      const last = pools.stats();
      expect(last.nodes[0]).toMatchObject({ lent: 1, inUse: 1 });
      expect(last.nodes[1]).toMatchObject({ remote: 1, inUse: 0, releases: 3 });
      st = last;
      expect(formatPoolStats(st)).toEqual([
        'pool node 0: 1/3 x 4.0 KiB in use, high 3; 6 acquires, 50.0% local, 2 remote, 1 failed, 1 lent (logical)',
        'pool node 1: 0/3 x 4.0 KiB in use, high 3; 3 acquires, 33.3% local, 1 remote, 1 failed, 2 lent (logical)',
      ]);
      expect(st.total.allocations).toBe(st.total.hits + st.total.misses);
      expect(st.total.misses).toBe(st.total.remote + st.total.failed);
    } finally {
      pools.destroy({ force: true });
    }
  });

  it('tries the nearest node first when the topology has distances', () => {
    const topo: NumaTopology = {
      source: 'simulated',
      nodes: [
        { id: 0, cpus: [0], distances: [10, 30, 20] },
        { id: 1, cpus: [1], distances: [30, 10, 20] },
        { id: 2, cpus: [2], distances: [20, 20, 10] },
      ],
    };
    const pools = BufferPools.create({ topology: topo, slotSize: 4096, slotsPerNode: 1 });
    pools.acquire(0);
    expect(pools.nodeOf(pools.acquire(0))).toBe(2); // node 2 is nearer than node 1
    expect(pools.nodeOf(pools.acquire(0))).toBe(1);
    pools.destroy({ force: true });
  });

  it('refuses impossible sizes in one line', () => {
    const topology = parseNumaShape('1x1');
    const cases: Array<[Record<string, number>, RegExp]> = [
      [{ slotSize: 1000 }, /^buffer pool slotSize: must be a multiple of 4096 from 4096 to 256 MiB, got 1000$/],
      [{ slotSize: 0 }, /slotSize: must be a multiple of 4096/],
      [{ slotSize: 6144 }, /got 6144$/],
      [{ slotsPerNode: 0 }, /^buffer pool slotsPerNode: must be 1 to 65536, got 0$/],
      [{ slotSize: 256 << 20, slotsPerNode: 65536 }, /^buffer pools: 1 node x 65536 slots x 256 MiB = 16.0 TiB, more than half of this machine's memory/],
    ];
    for (const [opts, message] of cases) {
      expect(() => BufferPools.create({ topology, ...opts })).toThrow(message);
      expect(() => BufferPools.create({ topology, ...opts })).toThrow(EngineOptionError);
    }
    const small: NumaTopology = { source: 'sysfs', nodes: [{ id: 0, cpus: [0], memTotalKiB: 1024 }] };
    expect(() => BufferPools.create({ topology: small, slotSize: 4096, slotsPerNode: 200 })).toThrow(
      /800 KiB per node is more than half of node 0's memory \(1.0 MiB\)/,
    );
    expect(() => BufferPools.create({ topology: { source: 'sysfs', nodes: [{ id: 0, cpus: [] }] } })).toThrow(/no node with CPUs/);
  });

  it('destroy refuses while slots are in use, and frees the memory otherwise', () => {
    const pools = BufferPools.create({ topology: parseNumaShape('2x1'), slotSize: 4096, slotsPerNode: 2 });
    const a = pools.acquire(0);
    const b = pools.acquire(1);
    pools.acquire(1);
    expect(() => pools.destroy()).toThrow(/^buffer pools: 3 slots still in use \(node 0: 1, node 1: 2\); release them or destroy\(\{ force: true \}\)$/);
    pools.release(a);
    pools.release(b);
    pools.destroy({ force: true });
    expect(() => pools.acquire(0)).toThrow('buffer pools: acquire after destroy()');
    expect(() => pools.view(a)).toThrow(/view after close\(\)\/destroy\(\)/);
    expect(() => BufferPools.attach(pools.shared)).toThrow('BufferPools.attach: the pools were destroyed');
  });
});

describe('BufferPools across worker threads', () => {
  it('shares the same native memory: a write in one thread is read in the other', async () => {
    const pools = BufferPools.create({ topology: parseNumaShape('2x1'), slotSize: 4096, slotsPerNode: 4 });
    const mine = pools.acquire(0);
    const theirs = pools.acquire(1);
    pools.view(mine).set([1, 2, 3, 4, 5, 6, 7, 8]);
    const w = run<{ seen: number[]; handleId: number }>({ mode: 'cross', shared: pools.shared, readSlot: mine, writeSlot: theirs });
    const r = await w.result;
    await w.exited;
    expect(r.seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.handleId).toBe(1);
    const v = pools.view(theirs);
    expect(v.every((b, i) => b === ((i * 7 + 3) & 0xff))).toBe(true);
    pools.release(mine);
    pools.release(theirs);
    pools.destroy(); // the worker closed its handle: no force needed
  });

  it('4 workers x 100,000 cycles: no slot is ever held twice, and the accounting balances to zero', async () => {
    const topology = parseNumaShape('2x4');
    const pools = BufferPools.create({ topology, slotSize: 4096, slotsPerNode: 10 });
    const owners = new SharedArrayBuffer(4 * pools.slotCount);
    const start = new SharedArrayBuffer(8);
    const CYCLES = 100_000;
    const MAX_HOLD = 7; // 4 x 7 > 20 slots: nodes run dry, so remote use and failures happen
    type Report = {
      acquires: number;
      successes: number;
      failures: number;
      releases: number;
      violations: number;
      maxHeld: number;
      maxOnNode: Record<string, number>;
      handleId: number;
    };
    const workers = [0, 1, 2, 3].map((id) =>
      run<Report>({ mode: 'hammer', shared: pools.shared, id, node: id % 2, cycles: CYCLES, maxHold: MAX_HOLD, owners, start }),
    );
    const gate = new Int32Array(start);
    while (Atomics.load(gate, 1) < workers.length) await new Promise((r) => setTimeout(r, 5));
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    const reports = await Promise.all(workers.map((w) => w.result));
    await Promise.all(workers.map((w) => w.exited));

    const sum = (f: (r: Report) => number): number => reports.reduce((a, r) => a + f(r), 0);
    expect(sum((r) => r.violations)).toBe(0);
    expect(new Set(reports.map((r) => r.handleId)).size).toBe(4);
    const st = pools.stats();
    expect(st.total.inUse).toBe(0);
    expect(st.total.allocations).toBe(sum((r) => r.acquires));
    expect(st.total.hits + st.total.remote).toBe(sum((r) => r.successes));
    expect(st.total.failed).toBe(sum((r) => r.failures));
    expect(st.total.releases).toBe(sum((r) => r.releases));
    expect(sum((r) => r.successes)).toBe(sum((r) => r.releases));
    expect(st.total.remote).toBeGreaterThan(0);
    expect(st.nodes.reduce((a, n) => a + n.lent, 0)).toBe(st.total.remote);
    for (const n of st.nodes) {
      expect(n.allocations).toBe(reports.filter((_, id) => id % 2 === n.node).reduce((a, r) => a + r.acquires, 0));
      expect(n.highWater).toBeLessThanOrEqual(10);
      expect(n.highWater).toBeGreaterThanOrEqual(Math.max(...reports.map((r) => r.maxOnNode[n.node] ?? 0)));
      expect(n.inUse).toBe(0);
    }
    expect(Array.from(new Int32Array(owners)).every((o) => o === 0)).toBe(true);
    pools.destroy();
  });

  it('reclaims the slots of a worker that died holding them', async () => {
    const pools = BufferPools.create({ topology: parseNumaShape('1x2'), slotSize: 4096, slotsPerNode: 8 });
    const w = run<{ slots: number[]; handleId: number }>({ mode: 'hold', shared: pools.shared, node: 0, count: 3 });
    const r = await w.result;
    await w.exited;
    expect(pools.stats().total.inUse).toBe(3);
    expect(() => pools.destroy()).toThrow(/3 slots still in use/);
    expect(pools.reclaim(r.handleId)).toBe(3);
    expect(pools.stats().total).toMatchObject({ inUse: 0, allocations: 3, releases: 3 });
    expect(pools.reclaim(r.handleId)).toBe(0);
    pools.destroy(); // reclaim also counted the dead handle as closed
  });

  it('destroy refuses while a worker handle is attached', async () => {
    const pools = BufferPools.create({ topology: parseNumaShape('1x1'), slotSize: 4096, slotsPerNode: 2 });
    const w = run<{ slots: number[]; handleId: number }>({ mode: 'hold', shared: pools.shared, node: 0, count: 0 });
    const r = await w.result;
    await w.exited;
    expect(() => pools.destroy()).toThrow(
      `buffer pools: handle ${r.handleId} still attached; close() them in their threads, reclaim() them once their threads exited, or destroy({ force: true })`,
    );
    pools.destroy({ force: true });
  });
});

describe('BufferPools with O_DIRECT', () => {
  const file = path.join(tmp.dir, 'direct.img');

  it('reads and writes pool buffers through FileDevice({ direct: true }) with no bounce buffer, in the main thread and in a worker', async () => {
    FileDevice.createSparse(file, 4 << 20);
    let bounces = 0;
    const real = libc();
    const counting: Libc = {
      ...real,
      allocAligned: (a, s) => {
        bounces++;
        return real.allocAligned(a, s);
      },
    };
    const pools = BufferPools.create({ topology: parseNumaShape('2x1'), slotSize: 64 << 10, slotsPerNode: 2 });
    const dev = FileDevice.open(file, { direct: true, logicalBlockSize: 4096, sys: counting });
    const w0 = pools.acquire(0);
    const w1 = pools.acquire(1);
    try {
      const out = pools.view(w0);
      for (let i = 0; i < out.length; i++) out[i] = (i * 13 + 1) & 0xff;
      expect(dev.write(64, out)).toBe(OK);
      expect(dev.write(256, out.subarray(0, 8192))).toBe(OK);
      const back = pools.view(w1);
      expect(dev.read(64, back)).toBe(OK);
      expect(Buffer.compare(back, out)).toBe(0);
      expect(dev.read(256, back.subarray(0, 8192))).toBe(OK);
      expect(Buffer.compare(back.subarray(0, 8192), out.subarray(0, 8192))).toBe(0);
      expect(bounces).toBe(0); // the pool's memory went straight to the kernel

      // The same file read through the page cache agrees, so the O_DIRECT writes really landed.
      const fd = fs.openSync(file, 'r');
      const check = Buffer.alloc(out.length);
      fs.readSync(fd, check, 0, check.length, 64 * 512);
      fs.closeSync(fd);
      expect(Buffer.compare(check, out)).toBe(0);

      // A worker's own view of the same memory is aligned in its registry too.
      const w = run<{ rc: number; wrc: number; sum: number; bounces: number; aligned: boolean }>({
        mode: 'direct',
        shared: pools.shared,
        file,
        node: 1,
        sector: 64,
        bytes: out.length,
      });
      const r = await w.result;
      await w.exited;
      expect(r).toEqual({ rc: OK, wrc: OK, sum: out.reduce((a, b) => (a + b) & 0xffffffff, 0), bounces: 0, aligned: true });
      expect(dev.read(64, back)).toBe(OK);
      expect(back.every((b, i) => b === 255 - out[i])).toBe(true);

      // The counter does see a bounce: an ordinary buffer needs one.
      expect(dev.read(64, new Uint8Array(4096))).toBe(OK);
      expect(bounces).toBe(1);
    } finally {
      dev.close();
      pools.release(w0);
      pools.release(w1);
      pools.destroy();
    }
  });
});
