/**
 * Worker side of the NUMA and buffer-pool tests: one file, several jobs
 * chosen by workerData.mode. Each job posts one result message.
 */
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { BufferPools, type BufferPoolsShared } from '../../src/engine/buffer-pool.js';
import { pinThread, threadAffinity } from '../../src/engine/numa.js';
import { FileDevice } from '../../src/block/file-device.js';
import { isAligned } from '../../src/block/aligned.js';
import { libc, type Libc } from '../../src/sys/libc.js';

type Job =
  | { mode: 'pin'; cpu: number; available?: number[] }
  | { mode: 'cross'; shared: BufferPoolsShared; readSlot: number; writeSlot: number }
  | {
      mode: 'hammer';
      shared: BufferPoolsShared;
      id: number;
      node: number;
      cycles: number;
      maxHold: number;
      owners: SharedArrayBuffer;
      start: SharedArrayBuffer;
    }
  | { mode: 'hold'; shared: BufferPoolsShared; node: number; count: number }
  | { mode: 'direct'; shared: BufferPoolsShared; file: string; node: number; sector: number; bytes: number }
  | { mode: 'bench'; shared: BufferPoolsShared; node: number; cycles: number; start: SharedArrayBuffer };

const job = workerData as Job;

/** This thread's CPU time (utime + stime from /proc/thread-self/stat, clock ticks of 10 ms). */
function threadCpuNs(): number {
  const stat = fs.readFileSync('/proc/thread-self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 1e7;
}
const post = (m: unknown): void => parentPort!.postMessage(m);

switch (job.mode) {
  case 'pin': {
    const before = threadAffinity();
    const result = pinThread(job.cpu, undefined, job.available);
    post({ result, before, after: threadAffinity(), running: libc().getCpu() });
    break;
  }
  case 'cross': {
    const pools = BufferPools.attach(job.shared);
    const seen = Array.from(pools.view(job.readSlot).subarray(0, 8));
    const out = pools.view(job.writeSlot);
    for (let i = 0; i < out.length; i++) out[i] = (i * 7 + 3) & 0xff;
    pools.close();
    post({ seen, handleId: pools.handleId });
    break;
  }
  case 'hammer': {
    const pools = BufferPools.attach(job.shared);
    const owners = new Int32Array(job.owners);
    const gate = new Int32Array(job.start);
    Atomics.add(gate, 1, 1); // ready
    Atomics.wait(gate, 0, 0); // start together
    const me = job.id + 1;
    const held: number[] = [];
    let acquires = 0;
    let successes = 0;
    let failures = 0;
    let releases = 0;
    let violations = 0;
    let maxHeld = 0;
    const maxOnNode = new Map<number, number>();
    let seed = job.id * 2654435761 + 1;
    const rand = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 4294967296;
    };
    const check = (slot: number, token: number): void => {
      const v = pools.view(slot);
      const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
      if (dv.getUint32(0, true) !== token || dv.getUint32(v.length - 4, true) !== token) violations++;
    };
    const tokens = new Map<number, number>();
    for (let c = 0; c < job.cycles; c++) {
      if (held.length < job.maxHold && (held.length === 0 || rand() < 0.55)) {
        acquires++;
        const slot = pools.acquire(job.node);
        if (slot < 0) {
          failures++;
          continue;
        }
        successes++;
        // Exclusive ownership, independent of the pool's own bookkeeping.
        if (Atomics.compareExchange(owners, slot, 0, me) !== 0) violations++;
        const token = (me << 24) | (c & 0xffffff);
        const v = pools.view(slot);
        const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
        dv.setUint32(0, token, true);
        dv.setUint32(v.length - 4, token, true);
        tokens.set(slot, token);
        held.push(slot);
        if (held.length > maxHeld) maxHeld = held.length;
        const node = pools.nodeOf(slot);
        const onNode = held.filter((s) => pools.nodeOf(s) === node).length;
        if (onNode > (maxOnNode.get(node) ?? 0)) maxOnNode.set(node, onNode);
      } else {
        const k = Math.floor(rand() * held.length);
        const slot = held[k];
        held[k] = held[held.length - 1];
        held.pop();
        check(slot, tokens.get(slot)!);
        if (Atomics.compareExchange(owners, slot, me, 0) !== me) violations++;
        pools.release(slot);
        releases++;
      }
    }
    for (const slot of held) {
      check(slot, tokens.get(slot)!);
      if (Atomics.compareExchange(owners, slot, me, 0) !== me) violations++;
      pools.release(slot);
      releases++;
    }
    pools.close();
    post({ acquires, successes, failures, releases, violations, maxHeld, maxOnNode: Object.fromEntries(maxOnNode), handleId: pools.handleId });
    break;
  }
  case 'hold': {
    // Acquires slots and exits without releasing or closing: a worker that died.
    const pools = BufferPools.attach(job.shared);
    const slots = Array.from({ length: job.count }, () => pools.acquire(job.node));
    post({ slots, handleId: pools.handleId });
    break;
  }
  case 'direct': {
    const pools = BufferPools.attach(job.shared);
    let bounces = 0;
    const real = libc();
    const counting: Libc = {
      ...real,
      allocAligned: (a, s) => {
        bounces++;
        return real.allocAligned(a, s);
      },
    };
    const dev = FileDevice.open(job.file, { direct: true, logicalBlockSize: 4096, sys: counting });
    const slot = pools.acquire(job.node);
    const buf = pools.view(slot).subarray(0, job.bytes);
    const rc = dev.read(job.sector, buf);
    const sum = buf.reduce((a, b) => (a + b) & 0xffffffff, 0);
    for (let i = 0; i < buf.length; i++) buf[i] = 255 - buf[i];
    const wrc = dev.write(job.sector, buf);
    dev.close();
    const aligned = isAligned(buf);
    pools.release(slot);
    pools.close();
    post({ rc, wrc, sum, bounces, aligned });
    break;
  }
  case 'bench': {
    const pools = BufferPools.attach(job.shared);
    const gate = new Int32Array(job.start);
    Atomics.add(gate, 1, 1);
    Atomics.wait(gate, 0, 0);
    const cpu0 = threadCpuNs();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < job.cycles; i++) pools.release(pools.acquire(job.node));
    const ns = Number(process.hrtime.bigint() - t0) / job.cycles;
    const cpuNs = (threadCpuNs() - cpu0) / job.cycles; // on a loaded machine: the time this thread actually ran
    pools.close();
    post({ ns, cpuNs });
    break;
  }
}
