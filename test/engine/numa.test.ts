import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EngineOptionError,
  assignQueues,
  cpuNode,
  formatCpuList,
  parseCpuList,
  parseMemTotalKiB,
  parseNumaShape,
  processCpus,
  readTopology,
  threadAffinity,
  type NumaTopology,
} from '../../src/engine/numa.js';
import { startWorker } from '../../src/util/worker.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-numa-');
afterAll(() => tmp.cleanup());

function fakeSys(name: string, nodes: Record<number, { cpulist: string; memKiB?: number; distance?: string }>): string {
  const root = path.join(tmp.dir, name);
  const base = path.join(root, 'devices/system/node');
  fs.mkdirSync(base, { recursive: true });
  fs.writeFileSync(path.join(base, 'online'), Object.keys(nodes).join(','));
  fs.mkdirSync(path.join(base, 'power'));
  for (const [id, n] of Object.entries(nodes)) {
    const d = path.join(base, `node${id}`);
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'cpulist'), `${n.cpulist}\n`);
    if (n.memKiB !== undefined) fs.writeFileSync(path.join(d, 'meminfo'), `Node ${id} MemTotal:       ${n.memKiB} kB\nNode ${id} MemFree:        1000 kB\n`);
    if (n.distance) fs.writeFileSync(path.join(d, 'distance'), `${n.distance}\n`);
  }
  return root;
}

describe('cpu lists', () => {
  it('parses the kernel forms', () => {
    expect(parseCpuList('0-3,8-11\n')).toEqual([0, 1, 2, 3, 8, 9, 10, 11]);
    expect(parseCpuList('5')).toEqual([5]);
    expect(parseCpuList('')).toEqual([]);
    expect(parseCpuList('3,1,2-2')).toEqual([1, 2, 3]);
    expect(() => parseCpuList('0-', 'node0/cpulist')).toThrow(/node0\/cpulist: cannot parse "0-"/);
    expect(() => parseCpuList('3-1')).toThrow(/runs backwards/);
    expect(() => parseCpuList('0-5000')).toThrow(/beyond the 4096 CPUs/);
  });

  it('formats and parses back to the same set', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 300 }), { maxLength: 60 }), (cpus) => {
        const sorted = [...cpus].sort((a, b) => a - b);
        expect(parseCpuList(formatCpuList(cpus))).toEqual(sorted);
      }),
    );
    expect(formatCpuList([0, 1, 2, 3, 8, 10, 11])).toBe('0-3,8,10-11');
  });

  it('reads MemTotal from a node meminfo', () => {
    expect(parseMemTotalKiB('Node 0 MemTotal:        7563040 kB\nNode 0 MemFree: 1 kB')).toBe(7563040);
    expect(parseMemTotalKiB('nothing')).toBeUndefined();
  });
});

describe('readTopology', () => {
  it('reads nodes, CPUs, memory and distances from sysfs, memory-only nodes included', () => {
    const root = fakeSys('two-nodes', {
      0: { cpulist: '0-3,8-11', memKiB: 1000, distance: '10 21 31' },
      2: { cpulist: '4-7,12-15', memKiB: 2000, distance: '21 10 31' },
      3: { cpulist: '', memKiB: 4000, distance: '31 31 10' },
    });
    const t = readTopology(root, { allowedCpus: null });
    expect(t.source).toBe('sysfs');
    expect(t.nodes).toEqual([
      { id: 0, cpus: [0, 1, 2, 3, 8, 9, 10, 11], memTotalKiB: 1000, distances: [10, 21, 31] },
      { id: 2, cpus: [4, 5, 6, 7, 12, 13, 14, 15], memTotalKiB: 2000, distances: [21, 10, 31] },
      { id: 3, cpus: [], memTotalKiB: 4000, distances: [31, 31, 10] },
    ]);
    expect(cpuNode(t, 12)).toBe(2);
    expect(cpuNode(t, 99)).toBeUndefined();
  });

  it('keeps only the CPUs the process may use', () => {
    const root = fakeSys('cpuset', { 0: { cpulist: '0-3' }, 1: { cpulist: '4-7' } });
    const t = readTopology(root, { allowedCpus: [2, 3, 4] });
    expect(t.nodes.map((n) => n.cpus)).toEqual([[2, 3], [4]]);
    expect(t.nodes[0].memTotalKiB).toBeUndefined();
  });

  it('falls back to one node of every allowed CPU when sysfs shows no node', () => {
    const empty = path.join(tmp.dir, 'no-nodes');
    fs.mkdirSync(path.join(empty, 'devices/system'), { recursive: true });
    expect(readTopology(empty, { allowedCpus: [4, 5] })).toEqual({ source: 'fallback', nodes: [{ id: 0, cpus: [4, 5] }] });
    const t = readTopology(path.join(tmp.dir, 'missing'), { allowedCpus: null });
    expect(t.source).toBe('fallback');
    expect(t.nodes[0].cpus).toHaveLength(os.availableParallelism());
  });

  it('reads this machine', () => {
    const t = readTopology();
    const all = t.nodes.flatMap((n) => n.cpus).sort((a, b) => a - b);
    expect(all).toEqual(processCpus());
    if (t.source === 'sysfs') {
      expect(t.nodes.some((n) => (n.memTotalKiB ?? 0) > 0)).toBe(true);
    }
  });
});

describe('parseNumaShape', () => {
  it('builds N nodes of C CPUs', () => {
    const t = parseNumaShape('2x8');
    expect(t.source).toBe('simulated');
    expect(t.nodes.map((n) => n.id)).toEqual([0, 1]);
    expect(t.nodes[0].cpus).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(t.nodes[1].cpus).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(t.nodes[1].distances).toEqual([20, 10]);
    expect(parseNumaShape(' 1X1 ').nodes).toEqual([{ id: 0, cpus: [0], distances: [10] }]);
    expect(parseNumaShape('64x64').nodes).toHaveLength(64);
  });

  it.each([
    ['0x4', /^--numa 0x4: the node count must be 1 to 64, got 0$/],
    ['2x0', /^--numa 2x0: CPUs per node must be at least 1, got 0$/],
    ['x', /^--numa "x": expected NODESxCPUS, for example 2x8 \(1-64 nodes, 1-4096 CPUs in all\)$/],
    ['2x8x1', /expected NODESxCPUS/],
    ['', /expected NODESxCPUS/],
    ['-1x4', /expected NODESxCPUS/],
    ['2.5x4', /expected NODESxCPUS/],
    ['65x1', /the node count must be 1 to 64, got 65/],
    ['64x65', /^--numa 64x65: 4160 CPUs in all; at most 4096$/],
  ])('refuses %j in one line', (shape, message) => {
    let err: unknown;
    try {
      parseNumaShape(shape);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EngineOptionError);
    expect((err as EngineOptionError).exitCode).toBe(2);
    expect((err as EngineOptionError).option).toBe('--numa');
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });
});

describe('assignQueues', () => {
  const twoByFour = parseNumaShape('2x4');

  it('gives one queue per CPU by default, alternating nodes', () => {
    const a = assignQueues(twoByFour);
    expect(a.map((q) => q.queue)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(a.map((q) => q.node)).toEqual([0, 1, 0, 1, 0, 1, 0, 1]);
    expect(a.map((q) => q.cpu)).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
    expect(new Set(a.map((q) => q.cpu)).size).toBe(8);
  });

  it('spreads fewer queues evenly over the nodes', () => {
    expect(assignQueues(twoByFour, 3)).toEqual([
      { queue: 0, cpu: 0, node: 0 },
      { queue: 1, cpu: 4, node: 1 },
      { queue: 2, cpu: 1, node: 0 },
    ]);
  });

  it('drops a node with fewer CPUs out of the rotation, and skips memory-only nodes', () => {
    const t: NumaTopology = {
      source: 'sysfs',
      nodes: [
        { id: 0, cpus: [0] },
        { id: 1, cpus: [] },
        { id: 4, cpus: [1, 2, 3] },
      ],
    };
    expect(assignQueues(t).map((q) => [q.cpu, q.node])).toEqual([
      [0, 0],
      [1, 4],
      [2, 4],
      [3, 4],
    ]);
  });

  it('wraps around the CPUs with force', () => {
    const t = parseNumaShape('2x1');
    expect(assignQueues(t, 5, { force: true }).map((q) => [q.cpu, q.node])).toEqual([
      [0, 0],
      [1, 1],
      [0, 0],
      [1, 1],
      [0, 0],
    ]);
  });

  it('refuses bad queue counts in one line', () => {
    const machine: NumaTopology = { source: 'sysfs', nodes: [{ id: 0, cpus: [0, 1] }] };
    expect(() => assignQueues(machine, 0)).toThrow(/^--queues: must be at least 1, got 0$/);
    expect(() => assignQueues(machine, -3)).toThrow(/^--queues: must be at least 1, got -3$/);
    expect(() => assignQueues(machine, 1.5)).toThrow(/^--queues: must be a whole number, got 1.5$/);
    expect(() => assignQueues(machine, 5)).toThrow(/^--queues 5: this machine has 2 CPUs; pass --force to run more queues than CPUs$/);
    expect(() => assignQueues(twoByFour, 9)).toThrow(/^--queues 9: the simulated 2x4 topology has 8 CPUs; pass --force/);
    expect(() => assignQueues(machine, 5000, { force: true })).toThrow(/^--queues 5000: at most 1024$/);
    expect(() => assignQueues({ source: 'sysfs', nodes: [{ id: 0, cpus: [] }] })).toThrow(/has no CPUs/);
    expect(() => assignQueues(machine, 0)).toThrow(EngineOptionError);
  });
});

interface PinReport {
  result: { pinned: boolean; cpu: number; reason?: string };
  before: number[] | undefined;
  after: number[] | undefined;
  running: number;
}

function pinInWorker(cpu: number, available?: number[]): Promise<PinReport> {
  const w = startWorker(import.meta.url, './buffer-pool.worker', { workerData: { mode: 'pin', cpu, available } });
  return new Promise((resolve, reject) => {
    w.once('message', (m) => {
      resolve(m as PinReport);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

describe('pinThread (in worker threads, so the test runner is not pinned)', () => {
  const cpus = processCpus();
  const last = cpus[cpus.length - 1];

  it('pins the calling thread to one CPU: the kernel reports it back', async () => {
    const mainBefore = threadAffinity();
    const r = await pinInWorker(last);
    expect(r.result).toEqual({ pinned: true, cpu: last });
    expect(r.before).toEqual(cpus);
    expect(r.after).toEqual([last]);
    expect(r.running).toBe(last);
    expect(threadAffinity()).toEqual(mainBefore); // only that thread moved
  });

  it('maps a CPU this machine does not have onto one it has, and says so', async () => {
    const simulated = cpus.length * 4 + 1; // e.g. cpu 9 of a simulated 2x8 on a 2-CPU machine
    const r = await pinInWorker(simulated);
    const expected = cpus[simulated % cpus.length];
    expect(r.result.pinned).toBe(true);
    expect(r.result.cpu).toBe(expected);
    expect(r.result.reason).toBe(`cpu ${simulated} is not available here (cpus ${formatCpuList(cpus)}); pinned to cpu ${expected} instead`);
    expect(r.after).toEqual([expected]);
  });

  it('reports a refusal by the kernel instead of throwing', async () => {
    // A CPU id we claim exists but the kernel has never heard of: sched_setaffinity fails with EINVAL.
    const r = await pinInWorker(1000, [...cpus, 1000]);
    expect(r.result).toEqual({ pinned: false, cpu: 1000, reason: 'the kernel refused sched_setaffinity to cpu 1000' });
    expect(r.after).toEqual(cpus);
  });
});
