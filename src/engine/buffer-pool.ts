/**
 * Per-node pools of page-aligned I/O buffers shared by the engine's threads.
 *
 * Memory: one posix_memalign region per NUMA node, cut into `slotsPerNode`
 * slots of `slotSize` bytes (a multiple of 4096, so every slot is page-aligned
 * and O_DIRECT-ready). Native memory belongs to the process, so a worker makes
 * its own ArrayBuffer over the same address (koffi.view of the address, which
 * travels in the SharedArrayBuffer as a u64).
 *
 * Placement: Linux puts a page on the node of the CPU that first writes it.
 * With a sysfs topology, the creating thread pins itself to node N's CPUs
 * while it zeroes node N's region, then restores its affinity. With a
 * simulated topology placement is logical only (every region lives wherever
 * the kernel put it); with the fallback topology there is one node anyway.
 * glibc serves small requests from its heap, whose pages may already have
 * been touched elsewhere: `residency()` reports where the pages really are.
 *
 * Free lists: one bitmap per node in a SharedArrayBuffer; acquire claims the
 * lowest clear bit of a word with compareExchange, release clears it with
 * Atomics.and. No ABA problem (a bit, unlike a stack head, has no history),
 * lock-free, and a double release is caught. Each thread starts its search
 * at the word it last used, so a release followed by an acquire gets back
 * the same, cache-warm slot.
 *
 * The pool is fixed: it never grows. acquire() returns -1 when every slot of
 * every node is in use; the caller waits (for one of its own releases) or
 * fails the request.
 *
 * Lifetime rule: native memory is freed only by destroy() in the creating
 * thread, and a view made by another thread dangles after that. destroy()
 * refuses while any slot is in use or any attached handle has not closed,
 * unless forced; force it only when those threads have exited (their
 * 'exit' event fired: their views died with them).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { createRequire } from 'node:module';
import { markAligned, unmarkAligned, PAGE_SIZE } from '../block/aligned.js';
import { formatBytes } from '../util/format-size.js';
import { type Libc, libc } from '../sys/libc.js';
import { EngineOptionError, threadAffinity, type NumaTopology } from './numa.js';

const require = createRequire(import.meta.url);

export interface BufferPoolsOptions {
  topology: NumaTopology;
  /** Bytes per slot: a multiple of 4096 (default 128 KiB). */
  slotSize?: number;
  /** Slots per node (default 256). */
  slotsPerNode?: number;
  /** How many handles (threads) may attach over the pools' life, the creator included (default 1024). */
  maxHandles?: number;
  sys?: Libc;
}

/** What to hand to a worker (structured-cloneable): BufferPools.attach(shared) there. */
export interface BufferPoolsShared {
  readonly sab: SharedArrayBuffer;
}

/** How a node's region was placed. */
export type Placement = 'first-touch' | 'not-pinned' | 'logical' | 'single-node';

export interface NodePoolStats {
  node: number;
  slots: number;
  /** acquire() calls that preferred this node. */
  allocations: number;
  /** Of those, served from this node (local). */
  hits: number;
  /** Of those, not served locally: remote + failed. */
  misses: number;
  /** Of those, served from another node. */
  remote: number;
  /** Of those, that found every slot of every node in use (-1). */
  failed: number;
  /** This node's slots handed to callers that preferred another node. */
  lent: number;
  /** This node's slots given back. */
  releases: number;
  inUse: number;
  highWater: number;
  placement: Placement;
}

export interface BufferPoolStats {
  slotSize: number;
  slotsPerNode: number;
  nodes: NodePoolStats[];
  /** Sums over the nodes (no pool-wide high-water mark: that would need one counter every node writes). */
  total: { slots: number; allocations: number; hits: number; misses: number; remote: number; failed: number; releases: number; inUse: number };
}

export interface NodeResidency {
  node: number;
  /** Resident pages per NUMA node id, from /proc/self/numa_maps for the mapping(s) holding the region. */
  pages: Record<number, number>;
}

const MAGIC = 0x42504f4c; // "BPOL"
const VERSION = 1;
const MAX_SLOT_SIZE = 256 << 20;
const MAX_SLOTS_PER_NODE = 1 << 16;
const LINE = 64;

// Header, Int32 indexes.
const H_MAGIC = 0;
const H_VERSION = 1;
const H_NODES = 2;
const H_SLOTS = 3;
const H_SLOT_SIZE = 4;
const H_WORDS = 5;
const H_DESTROYED = 6;
const H_NEXT_HANDLE = 7;
const H_MAX_HANDLES = 8;
const H_MAX_NODE_ID = 9;

// Node block (one cache line per node), byte offsets within the block.
const N_IN_USE = 0;
const N_HIGH_WATER = 4;
const N_ID = 8;
const N_PLACEMENT = 12;
const N_HITS = 16;
const N_REMOTE = 24;
const N_FAILED = 32;
const N_LENT = 40;
const N_ADDRESS = 48;

const PLACEMENTS: Placement[] = ['first-touch', 'not-pinned', 'logical', 'single-node'];

const HANDLE_ATTACHED = 1;
const HANDLE_CLOSED = 2;

interface Layout {
  nodes: number;
  words: number;
  nodeBase: number; // bytes
  bitmapBase: number; // bytes
  bitmapStride: number; // bytes per node
  orderBase: number; // bytes: nodes x nodes Int32, remote search order
  ownerBase: number; // bytes: Int32 per slot
  handleBase: number; // bytes: Int32 per handle
  total: number;
}

function layout(nodes: number, slotsPerNode: number, maxHandles: number): Layout {
  const words = Math.ceil(slotsPerNode / 32);
  const nodeBase = LINE;
  const bitmapBase = nodeBase + nodes * LINE;
  const bitmapStride = Math.ceil((words * 4) / LINE) * LINE;
  const orderBase = bitmapBase + nodes * bitmapStride;
  const ownerBase = orderBase + Math.ceil((nodes * nodes * 4) / LINE) * LINE;
  const handleBase = ownerBase + Math.ceil((nodes * slotsPerNode * 4) / LINE) * LINE;
  const total = handleBase + Math.ceil((maxHandles * 4) / LINE) * LINE;
  return { nodes, words, nodeBase, bitmapBase, bitmapStride, orderBase, ownerBase, handleBase, total };
}

interface Koffi {
  address(value: unknown): bigint;
  view(ref: unknown, len: number): ArrayBuffer;
}
let koffiCached: Koffi | undefined;
function koffi(): Koffi {
  koffiCached ??= require('koffi') as Koffi;
  return koffiCached;
}

export class BufferPools {
  readonly shared: BufferPoolsShared;
  readonly slotSize: number;
  readonly slotsPerNode: number;
  /** Node ids with a pool, in pool order (nodes without CPUs get none). */
  readonly nodeIds: readonly number[];
  /** This thread's handle id (0 for the creator): reclaim(handleId) frees what it held after it died. */
  readonly handleId: number;

  private readonly i32: Int32Array;
  private readonly u64: BigUint64Array;
  private readonly lay: Layout;
  private readonly indexById: Int32Array;
  private readonly order: Int32Array[];
  private readonly cursor: Int32Array;
  private nodeViews: Uint8Array[];
  private slotViews: Array<Uint8Array | undefined>;
  private readonly creator: { sys: Libc; ptrs: unknown[] } | undefined;
  private closed = false;

  private constructor(sab: SharedArrayBuffer, handleId: number, nodeViews: Uint8Array[], creator: { sys: Libc; ptrs: unknown[] } | undefined) {
    this.shared = { sab };
    this.i32 = new Int32Array(sab);
    this.u64 = new BigUint64Array(sab);
    const nodes = this.i32[H_NODES];
    this.slotsPerNode = this.i32[H_SLOTS];
    this.slotSize = this.i32[H_SLOT_SIZE];
    this.lay = layout(nodes, this.slotsPerNode, this.i32[H_MAX_HANDLES]);
    this.handleId = handleId;
    const ids: number[] = [];
    this.indexById = new Int32Array(this.i32[H_MAX_NODE_ID] + 1).fill(-1);
    this.order = [];
    for (let q = 0; q < nodes; q++) {
      const id = this.i32[(this.lay.nodeBase + q * LINE + N_ID) >> 2];
      ids.push(id);
      this.indexById[id] = q;
      this.order.push(this.i32.slice((this.lay.orderBase >> 2) + q * nodes + 1, (this.lay.orderBase >> 2) + (q + 1) * nodes));
    }
    this.nodeIds = ids;
    // Threads start at different words so they do not all fight over word 0.
    this.cursor = new Int32Array(nodes).fill((handleId * 7) % this.lay.words);
    this.nodeViews = nodeViews;
    this.slotViews = new Array(nodes * this.slotsPerNode);
    this.creator = creator;
    for (const v of nodeViews) markAligned(v.buffer);
  }

  /** Allocates, places and zeroes the pools (main thread). */
  static create(opts: BufferPoolsOptions): BufferPools {
    const slotSize = opts.slotSize ?? 128 << 10;
    const slotsPerNode = opts.slotsPerNode ?? 256;
    const maxHandles = opts.maxHandles ?? 1024;
    if (!Number.isSafeInteger(slotSize) || slotSize < PAGE_SIZE || slotSize % PAGE_SIZE !== 0 || slotSize > MAX_SLOT_SIZE) {
      throw new EngineOptionError(
        'slotSize',
        `buffer pool slotSize: must be a multiple of ${PAGE_SIZE} from ${PAGE_SIZE} to ${formatBytes(MAX_SLOT_SIZE)}, got ${slotSize}`,
      );
    }
    if (!Number.isSafeInteger(slotsPerNode) || slotsPerNode < 1 || slotsPerNode > MAX_SLOTS_PER_NODE) {
      throw new EngineOptionError('slotsPerNode', `buffer pool slotsPerNode: must be 1 to ${MAX_SLOTS_PER_NODE}, got ${slotsPerNode}`);
    }
    if (!Number.isSafeInteger(maxHandles) || maxHandles < 1 || maxHandles > 1 << 16) {
      throw new EngineOptionError('maxHandles', `buffer pool maxHandles: must be 1 to ${1 << 16}, got ${maxHandles}`);
    }
    const topo = opts.topology;
    const nodes = topo.nodes.filter((n) => n.cpus.length > 0);
    if (nodes.length === 0) throw new EngineOptionError('topology', 'buffer pools: the topology has no node with CPUs');
    const perNode = slotSize * slotsPerNode;
    const machine = os.totalmem();
    if (perNode * nodes.length > machine / 2) {
      throw new EngineOptionError(
        'slotsPerNode',
        `buffer pools: ${nodes.length} node${nodes.length === 1 ? '' : 's'} x ${slotsPerNode} slots x ${formatBytes(slotSize)} = ${formatBytes(perNode * nodes.length)}, more than half of this machine's memory (${formatBytes(machine)})`,
      );
    }
    for (const n of nodes) {
      if (n.memTotalKiB !== undefined && perNode > (n.memTotalKiB * 1024) / 2) {
        throw new EngineOptionError(
          'slotsPerNode',
          `buffer pools: ${formatBytes(perNode)} per node is more than half of node ${n.id}'s memory (${formatBytes(n.memTotalKiB * 1024)})`,
        );
      }
    }

    const lay = layout(nodes.length, slotsPerNode, maxHandles);
    const sab = new SharedArrayBuffer(lay.total);
    const i32 = new Int32Array(sab);
    const u64 = new BigUint64Array(sab);
    i32[H_MAGIC] = MAGIC;
    i32[H_VERSION] = VERSION;
    i32[H_NODES] = nodes.length;
    i32[H_SLOTS] = slotsPerNode;
    i32[H_SLOT_SIZE] = slotSize;
    i32[H_WORDS] = lay.words;
    i32[H_NEXT_HANDLE] = 1;
    i32[H_MAX_HANDLES] = maxHandles;
    i32[H_MAX_NODE_ID] = Math.max(...nodes.map((n) => n.id));
    i32[lay.handleBase >> 2] = HANDLE_ATTACHED;
    i32.fill(-1, lay.ownerBase >> 2, (lay.ownerBase >> 2) + nodes.length * slotsPerNode);
    const tail = slotsPerNode % 32;
    for (let q = 0; q < nodes.length; q++) {
      const nb = lay.nodeBase + q * LINE;
      i32[(nb + N_ID) >> 2] = nodes[q].id;
      // Bits past the last slot are permanently taken, so they are never handed out.
      if (tail !== 0) i32[((lay.bitmapBase + q * lay.bitmapStride) >> 2) + lay.words - 1] = ~((1 << tail) - 1);
      const order = remoteOrder(topo, nodes, q);
      i32.set([q, ...order], (lay.orderBase >> 2) + q * nodes.length);
    }

    const sys = opts.sys ?? libc();
    const ptrs: unknown[] = [];
    const views: Uint8Array[] = [];
    try {
      for (let q = 0; q < nodes.length; q++) {
        const { ptr, buf } = sys.allocAligned(PAGE_SIZE, perNode);
        ptrs.push(ptr);
        views.push(buf);
        u64[(lay.nodeBase + q * LINE + N_ADDRESS) >> 3] = koffi().address(ptr);
        i32[(lay.nodeBase + q * LINE + N_PLACEMENT) >> 2] = PLACEMENTS.indexOf(firstTouch(buf, topo, nodes[q].cpus, sys));
      }
    } catch (err) {
      for (const p of ptrs) sys.freeAligned(p);
      throw err;
    }
    return new BufferPools(sab, 0, views, { sys, ptrs });
  }

  /** Joins pools made by create() in another thread of this process. */
  static attach(shared: BufferPoolsShared): BufferPools {
    const i32 = new Int32Array(shared.sab);
    if (i32[H_MAGIC] !== MAGIC || i32[H_VERSION] !== VERSION) throw new Error('BufferPools.attach: not a buffer pool SharedArrayBuffer');
    if (Atomics.load(i32, H_DESTROYED) !== 0) throw new Error('BufferPools.attach: the pools were destroyed');
    const max = i32[H_MAX_HANDLES];
    const id = Atomics.add(i32, H_NEXT_HANDLE, 1);
    if (id >= max) throw new Error(`BufferPools.attach: more than ${max} handles attached over the pools' life (raise maxHandles)`);
    const lay = layout(i32[H_NODES], i32[H_SLOTS], max);
    Atomics.store(i32, (lay.handleBase >> 2) + id, HANDLE_ATTACHED);
    const u64 = new BigUint64Array(shared.sab);
    const bytes = i32[H_SLOTS] * i32[H_SLOT_SIZE];
    const views: Uint8Array[] = [];
    for (let q = 0; q < lay.nodes; q++) {
      const address = u64[(lay.nodeBase + q * LINE + N_ADDRESS) >> 3];
      views.push(new Uint8Array(koffi().view(address, bytes)));
    }
    return new BufferPools(shared.sab, id, views, undefined);
  }

  get nodeCount(): number {
    return this.lay.nodes;
  }

  get slotCount(): number {
    return this.lay.nodes * this.slotsPerNode;
  }

  /**
   * A free slot, from `preferredNode`'s pool when it has one, else from the
   * nearest node that has (counted as remote); -1 when every slot is in use.
   */
  acquire(preferredNode: number): number {
    const p = this.indexById[preferredNode] ?? -1;
    if (p < 0) throw new RangeError(`buffer pools: no pool for node ${preferredNode} (nodes ${this.nodeIds.join(',')})`);
    if (Atomics.load(this.i32, H_DESTROYED) !== 0) throw new Error('buffer pools: acquire after destroy()');
    const u64 = this.u64;
    const pb = this.lay.nodeBase + p * LINE;
    let slot = this.take(p);
    if (slot >= 0) {
      Atomics.add(u64, (pb + N_HITS) >> 3, 1n);
      return slot;
    }
    const order = this.order[p];
    for (let k = 0; k < order.length; k++) {
      const q = order[k];
      slot = this.take(q);
      if (slot >= 0) {
        Atomics.add(u64, (pb + N_REMOTE) >> 3, 1n);
        Atomics.add(u64, (this.lay.nodeBase + q * LINE + N_LENT) >> 3, 1n);
        return slot;
      }
    }
    Atomics.add(u64, (pb + N_FAILED) >> 3, 1n);
    return -1;
  }

  /** Gives a slot back; any thread may release a slot another acquired. Throws when it was not in use. */
  release(slot: number): void {
    const S = this.slotsPerNode;
    if (!(slot >= 0 && slot < this.lay.nodes * S) || !Number.isInteger(slot)) {
      throw new RangeError(`buffer pools: slot ${slot} does not exist (0 to ${this.lay.nodes * S - 1})`);
    }
    const i32 = this.i32;
    const q = (slot / S) | 0;
    const i = slot - q * S;
    const word = i >>> 5;
    const mask = 1 << (i & 31);
    const inUse = (this.lay.nodeBase + q * LINE + N_IN_USE) >> 2;
    // Plain stores: the owner is read only by reclaim(), after the owning thread has exited.
    i32[(this.lay.ownerBase >> 2) + slot] = -1;
    // inUse drops before the bit clears (and rises after it is set), so it never counts more than is held.
    Atomics.sub(i32, inUse, 1);
    const old = Atomics.and(i32, ((this.lay.bitmapBase + q * this.lay.bitmapStride) >> 2) + word, ~mask);
    if ((old & mask) === 0) {
      Atomics.add(i32, inUse, 1);
      throw new Error(`buffer pools: slot ${slot} released but not in use (released twice?)`);
    }
    this.cursor[q] = word;
  }

  /** The slot's memory: slotSize bytes, page-aligned, registered as aligned for O_DIRECT. */
  view(slot: number): Uint8Array {
    const cached = this.slotViews[slot];
    if (cached) return cached;
    if (this.closed) throw new Error('buffer pools: view after close()/destroy()');
    const S = this.slotsPerNode;
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.lay.nodes * S) {
      throw new RangeError(`buffer pools: slot ${slot} does not exist (0 to ${this.lay.nodes * S - 1})`);
    }
    const q = (slot / S) | 0;
    const off = (slot - q * S) * this.slotSize;
    const v = this.nodeViews[q].subarray(off, off + this.slotSize);
    this.slotViews[slot] = v;
    return v;
  }

  /** The slot's native address (for native batch I/O through koffi). */
  address(slot: number): bigint {
    const S = this.slotsPerNode;
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.lay.nodes * S) {
      throw new RangeError(`buffer pools: slot ${slot} does not exist (0 to ${this.lay.nodes * S - 1})`);
    }
    const q = (slot / S) | 0;
    return this.u64[(this.lay.nodeBase + q * LINE + N_ADDRESS) >> 3] + BigInt((slot - q * S) * this.slotSize);
  }

  /** The node id whose pool holds `slot`. */
  nodeOf(slot: number): number {
    return this.nodeIds[(slot / this.slotsPerNode) | 0];
  }

  /**
   * Releases every slot acquired through handle `handleId` and not yet
   * released, and counts that handle as closed. Only for a thread that has
   * exited (a dead worker) and whose slots no other thread still uses.
   * Returns how many slots it released.
   */
  reclaim(handleId: number): number {
    const i32 = this.i32;
    const ob = this.lay.ownerBase >> 2;
    let n = 0;
    for (let s = 0; s < this.slotCount; s++) {
      if (Atomics.load(i32, ob + s) !== handleId) continue;
      const q = (s / this.slotsPerNode) | 0;
      const i = s - q * this.slotsPerNode;
      const w = Atomics.load(i32, ((this.lay.bitmapBase + q * this.lay.bitmapStride) >> 2) + (i >>> 5));
      if ((w & (1 << (i & 31))) === 0) continue;
      this.release(s);
      n++;
    }
    const h = (this.lay.handleBase >> 2) + handleId;
    if (handleId >= 0 && handleId < i32[H_MAX_HANDLES]) Atomics.compareExchange(i32, h, HANDLE_ATTACHED, HANDLE_CLOSED);
    return n;
  }

  stats(): BufferPoolStats {
    const i32 = this.i32;
    const u64 = this.u64;
    const S = this.slotsPerNode;
    const nodes: NodePoolStats[] = [];
    const total = { slots: 0, allocations: 0, hits: 0, misses: 0, remote: 0, failed: 0, releases: 0, inUse: 0 };
    for (let q = 0; q < this.lay.nodes; q++) {
      const b = this.lay.nodeBase + q * LINE;
      const inUse = Atomics.load(i32, (b + N_IN_USE) >> 2);
      const hits = Number(Atomics.load(u64, (b + N_HITS) >> 3));
      const remote = Number(Atomics.load(u64, (b + N_REMOTE) >> 3));
      const failed = Number(Atomics.load(u64, (b + N_FAILED) >> 3));
      const lent = Number(Atomics.load(u64, (b + N_LENT) >> 3));
      const s: NodePoolStats = {
        node: this.nodeIds[q],
        slots: S,
        allocations: hits + remote + failed,
        hits,
        misses: remote + failed,
        remote,
        failed,
        lent,
        // Derived; exact whenever no acquire or release is half done.
        releases: Math.max(0, hits + lent - inUse),
        inUse,
        highWater: Atomics.load(i32, (b + N_HIGH_WATER) >> 2),
        placement: PLACEMENTS[i32[(b + N_PLACEMENT) >> 2]],
      };
      nodes.push(s);
      total.slots += S;
      total.allocations += s.allocations;
      total.hits += hits;
      total.misses += s.misses;
      total.remote += remote;
      total.failed += failed;
      total.releases += s.releases;
      total.inUse += inUse;
    }
    return { slotSize: this.slotSize, slotsPerNode: S, nodes, total };
  }

  /**
   * Where each node's pages really are (resident pages per NUMA node, from
   * /proc/self/numa_maps), or undefined without that file. A mapping can hold
   * neighbouring allocations too, so counts may exceed the pool's pages.
   */
  residency(): NodeResidency[] | undefined {
    let maps: string;
    let numaMaps: string;
    try {
      maps = fs.readFileSync('/proc/self/maps', 'utf8');
      numaMaps = fs.readFileSync('/proc/self/numa_maps', 'utf8');
    } catch {
      return undefined;
    }
    const ranges = maps
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const [s, e] = l.slice(0, l.indexOf(' ')).split('-');
        return { start: BigInt(`0x${s}`), end: BigInt(`0x${e}`) };
      });
    const byStart = new Map<bigint, Record<number, number>>();
    for (const line of numaMaps.split('\n')) {
      if (line === '') continue;
      const pages: Record<number, number> = {};
      for (const m of line.matchAll(/ N(\d+)=(\d+)/g)) pages[Number(m[1])] = Number(m[2]);
      byStart.set(BigInt(`0x${line.slice(0, line.indexOf(' '))}`), pages);
    }
    const bytes = BigInt(this.slotSize * this.slotsPerNode);
    const out: NodeResidency[] = [];
    for (let q = 0; q < this.lay.nodes; q++) {
      const start = this.u64[(this.lay.nodeBase + q * LINE + N_ADDRESS) >> 3];
      const end = start + bytes;
      const pages: Record<number, number> = {};
      for (const r of ranges) {
        if (r.end <= start || r.start >= end) continue;
        for (const [n, c] of Object.entries(byStart.get(r.start) ?? {})) pages[Number(n)] = (pages[Number(n)] ?? 0) + c;
      }
      out.push({ node: this.nodeIds[q], pages });
    }
    return out;
  }

  /** A worker's handle: forget the views and count this handle as closed. The memory stays. */
  close(): void {
    if (this.creator) throw new Error('buffer pools: the creating thread frees the pools with destroy(), not close()');
    if (this.closed) return;
    this.dropViews();
    Atomics.compareExchange(this.i32, (this.lay.handleBase >> 2) + this.handleId, HANDLE_ATTACHED, HANDLE_CLOSED);
  }

  /**
   * Frees the native memory (creating thread only). Refuses while slots are
   * in use or other handles are attached, unless `force`: force only when the
   * threads behind those handles have exited.
   */
  destroy(opts: { force?: boolean } = {}): void {
    if (!this.creator) throw new Error('buffer pools: only the creating thread may destroy() them; a worker calls close()');
    if (this.closed) return;
    const i32 = this.i32;
    if (!opts.force) {
      const busy = this.stats().nodes.filter((n) => n.inUse > 0);
      if (busy.length > 0) {
        const list = busy.map((n) => `node ${n.node}: ${n.inUse}`).join(', ');
        throw new Error(`buffer pools: ${busy.reduce((a, n) => a + n.inUse, 0)} slots still in use (${list}); release them or destroy({ force: true })`);
      }
      const attached: number[] = [];
      const used = Math.min(Atomics.load(i32, H_NEXT_HANDLE), i32[H_MAX_HANDLES]);
      for (let h = 1; h < used; h++) if (Atomics.load(i32, (this.lay.handleBase >> 2) + h) === HANDLE_ATTACHED) attached.push(h);
      if (attached.length > 0) {
        throw new Error(
          `buffer pools: handle${attached.length === 1 ? '' : 's'} ${attached.join(',')} still attached; close() them in their threads, reclaim() them once their threads exited, or destroy({ force: true })`,
        );
      }
    }
    Atomics.store(i32, H_DESTROYED, 1);
    this.dropViews();
    for (const p of this.creator.ptrs) this.creator.sys.freeAligned(p);
    this.creator.ptrs.length = 0;
  }

  private dropViews(): void {
    for (const v of this.nodeViews) unmarkAligned(v.buffer);
    this.nodeViews = [];
    this.slotViews = [];
    this.closed = true;
  }

  private take(q: number): number {
    const i32 = this.i32;
    const W = this.lay.words;
    const base = (this.lay.bitmapBase + q * this.lay.bitmapStride) >> 2;
    let wi = this.cursor[q];
    for (let k = 0; k < W; k++) {
      const idx = base + wi;
      let w = Atomics.load(i32, idx);
      while (w !== -1) {
        const free = ~w & (w + 1); // lowest clear bit
        const prev = Atomics.compareExchange(i32, idx, w, w | free);
        if (prev === w) {
          this.cursor[q] = wi;
          const slot = q * this.slotsPerNode + wi * 32 + (31 - Math.clz32(free));
          i32[(this.lay.ownerBase >> 2) + slot] = this.handleId;
          const nb = (this.lay.nodeBase + q * LINE) >> 2;
          const now = Atomics.add(i32, nb + (N_IN_USE >> 2), 1) + 1;
          const hwi = nb + (N_HIGH_WATER >> 2);
          let hw = Atomics.load(i32, hwi);
          while (now > hw) {
            const seen = Atomics.compareExchange(i32, hwi, hw, now);
            if (seen === hw) break;
            hw = seen;
          }
          return slot;
        }
        w = prev;
      }
      wi = wi + 1 === W ? 0 : wi + 1;
    }
    return -1;
  }
}

/**
 * One line per node for status output, e.g.
 * "pool node 0: 3/256 x 128 KiB in use, high 40; 1000 acquires, 99.5% local, 5 remote, 0 failed, 2 lent (first-touch)".
 */
export function formatPoolStats(s: BufferPoolStats): string[] {
  return s.nodes.map((n) => {
    const local = n.allocations === 0 ? '-' : `${((100 * n.hits) / n.allocations).toFixed(1)}%`;
    return (
      `pool node ${n.node}: ${n.inUse}/${n.slots} x ${formatBytes(s.slotSize)} in use, high ${n.highWater}; ` +
      `${n.allocations} acquires, ${local} local, ${n.remote} remote, ${n.failed} failed, ${n.lent} lent (${n.placement})`
    );
  });
}

/** Other pool indexes of `nodes`, nearest first (SLIT distance, then id). */
function remoteOrder(topo: NumaTopology, nodes: NumaTopology['nodes'], q: number): number[] {
  const from = nodes[q];
  const dist = (to: number): number => {
    const j = topo.nodes.findIndex((n) => n.id === nodes[to].id);
    return from.distances?.[j] ?? 20;
  };
  return nodes
    .map((_, k) => k)
    .filter((k) => k !== q)
    .sort((a, b) => dist(a) - dist(b) || nodes[a].id - nodes[b].id);
}

/** Zeroes a fresh region from a CPU of its node when the topology is real. */
function firstTouch(buf: Uint8Array, topo: NumaTopology, cpus: number[], sys: Libc): Placement {
  if (topo.source !== 'sysfs') {
    buf.fill(0);
    return topo.source === 'simulated' ? 'logical' : 'single-node';
  }
  const original = threadAffinity();
  let pinned = false;
  try {
    pinned = original !== undefined && sys.setAffinity(cpus);
    buf.fill(0);
  } finally {
    if (pinned && original) sys.setAffinity(original);
  }
  return pinned ? 'first-touch' : 'not-pinned';
}
