/**
 * NUMA topology, queue placement and thread pinning for the engine.
 *
 * The topology comes from /sys/devices/system/node (one directory per node:
 * cpulist, meminfo, distance), from a simulated shape (`--numa 2x8`) on
 * machines with one node, or, where sysfs shows no node at all (some
 * containers), from one node holding every CPU the process may use.
 *
 * The parsers (`parseCpuList`, `parseMemTotalKiB`, `parseDistances`,
 * `parseNumaShape`) are pure; the readers around them do the file I/O.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Libc, libc } from '../sys/libc.js';
import { RemapsimError } from '../util/errors.js';

export interface NumaNode {
  /** The kernel's node id (sysfs nodeN), or 0..n-1 for simulated and fallback topologies. */
  id: number;
  /** CPU ids, ascending. Empty for a memory-only node. */
  cpus: number[];
  /** The node's memory (sysfs meminfo MemTotal), when known. */
  memTotalKiB?: number;
  /** SLIT distances to every node of the topology, in the order of `nodes` (10 = local). */
  distances?: number[];
}

export type TopologySource = 'sysfs' | 'simulated' | 'fallback';

export interface NumaTopology {
  /** Nodes in ascending id order. */
  nodes: NumaNode[];
  /** Where it came from: only 'sysfs' describes where memory really lives. */
  source: TopologySource;
}

/** Limits of a simulated topology (and of a CPU list we are willing to parse). */
export const MAX_SIMULATED_NODES = 64;
export const MAX_CPUS = 4096;
/** More worker threads than this is a mistake even with --force. */
export const MAX_QUEUES = 1024;

/**
 * A user-supplied engine option that cannot work (`--numa`, `--queues`, a pool
 * size). The message is one line naming the option and what is allowed.
 */
export class EngineOptionError extends RemapsimError {
  override readonly name = 'EngineOptionError';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------
// Pure parsers

/**
 * Parses a kernel CPU list ("0-3,8-11", "5", "" for none) into ascending ids.
 * Throws RangeError on anything else, naming `what` (a file or option).
 */
export function parseCpuList(text: string, what = 'cpu list'): number[] {
  const t = text.trim();
  if (t === '') return [];
  const out = new Set<number>();
  for (const part of t.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new RangeError(`${what}: cannot parse "${t}" (expected ranges like 0-3,8-11)`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new RangeError(`${what}: range ${part.trim()} runs backwards`);
    if (hi >= MAX_CPUS) throw new RangeError(`${what}: cpu ${hi} is beyond the ${MAX_CPUS} CPUs supported`);
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

/** Formats ascending CPU ids back into the kernel's range form ("0-3,8"). */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...cpus].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** MemTotal in KiB from a node's meminfo ("Node 0 MemTotal:   7563040 kB"), or undefined. */
export function parseMemTotalKiB(meminfo: string): number | undefined {
  const m = /^Node\s+\d+\s+MemTotal:\s+(\d+)\s+kB/m.exec(meminfo);
  return m ? Number(m[1]) : undefined;
}

/** A node's distance line ("10 21 21") as numbers, or undefined when it is not one. */
export function parseDistances(text: string): number[] | undefined {
  const t = text.trim();
  if (!/^\d+(\s+\d+)*$/.test(t)) return undefined;
  return t.split(/\s+/).map(Number);
}

const SHAPE_FORM = `expected NODESxCPUS, for example 2x8 (1-${MAX_SIMULATED_NODES} nodes, 1-${MAX_CPUS} CPUs in all)`;

/**
 * A simulated topology from a shape "NxC": N nodes of C CPUs each, CPU ids
 * 0..N*C-1, node i holding [i*C, i*C+C-1]. Memory placement under a simulated
 * topology is logical only: every page still lives wherever the kernel put it.
 */
export function parseNumaShape(shape: string): NumaTopology {
  const t = shape.trim();
  const m = /^(\d+)[xX](\d+)$/.exec(t);
  if (!m) throw new EngineOptionError('--numa', `--numa ${JSON.stringify(shape)}: ${SHAPE_FORM}`);
  const nodes = Number(m[1]);
  const per = Number(m[2]);
  if (nodes < 1 || nodes > MAX_SIMULATED_NODES) {
    throw new EngineOptionError('--numa', `--numa ${t}: the node count must be 1 to ${MAX_SIMULATED_NODES}, got ${m[1]}`);
  }
  if (per < 1) throw new EngineOptionError('--numa', `--numa ${t}: CPUs per node must be at least 1, got ${m[2]}`);
  if (nodes * per > MAX_CPUS) {
    throw new EngineOptionError('--numa', `--numa ${t}: ${nodes * per} CPUs in all; at most ${MAX_CPUS}`);
  }
  return {
    source: 'simulated',
    nodes: Array.from({ length: nodes }, (_, i) => ({
      id: i,
      cpus: Array.from({ length: per }, (_, k) => i * per + k),
      distances: Array.from({ length: nodes }, (_, j) => (i === j ? 10 : 20)),
    })),
  };
}

/** "2x8" for a simulated topology, "sysfs: 2 nodes, 16 CPUs" otherwise: for messages and status. */
export function describeTopology(t: NumaTopology): string {
  const cpus = t.nodes.reduce((n, node) => n + node.cpus.length, 0);
  if (t.source === 'simulated' && t.nodes.every((n) => n.cpus.length === t.nodes[0].cpus.length)) {
    return `simulated ${t.nodes.length}x${t.nodes[0].cpus.length}`;
  }
  return `${t.source}: ${t.nodes.length} node${t.nodes.length === 1 ? '' : 's'}, ${cpus} CPU${cpus === 1 ? '' : 's'}`;
}

// ---------------------------------------------------------------------------
// Readers

export interface ReadTopologyOptions {
  /**
   * Keep only these CPUs (default: the CPUs this process may run on, from
   * /proc/self/status). `null` keeps every CPU sysfs lists.
   */
  allowedCpus?: readonly number[] | null;
}

/**
 * The machine's topology from `${sysRoot}/devices/system/node/node*`. CPUs the
 * process may not run on (cpusets, taskset) are left out, so "one queue per
 * CPU" means one per CPU we can use. Without any node directory: one node
 * holding every allowed CPU, source 'fallback'.
 */
export function readTopology(sysRoot = '/sys', opts: ReadTopologyOptions = {}): NumaTopology {
  const allowed = opts.allowedCpus === undefined ? processCpus() : opts.allowedCpus;
  const keep = allowed ? new Set(allowed) : undefined;
  const dir = path.join(sysRoot, 'devices/system/node');
  let ids: number[] = [];
  try {
    ids = fs
      .readdirSync(dir)
      .map((e) => /^node(\d+)$/.exec(e))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  } catch {
    ids = [];
  }
  if (ids.length === 0) {
    return { source: 'fallback', nodes: [{ id: 0, cpus: allowed ? [...allowed] : sequence(os.availableParallelism()) }] };
  }
  const nodes = ids.map((id): NumaNode => {
    const nodeDir = path.join(dir, `node${id}`);
    const cpulistFile = path.join(nodeDir, 'cpulist');
    const cpus = parseCpuList(fs.readFileSync(cpulistFile, 'utf8'), cpulistFile).filter((c) => !keep || keep.has(c));
    const node: NumaNode = { id, cpus };
    const mem = parseMemTotalKiB(readOptional(path.join(nodeDir, 'meminfo')) ?? '');
    if (mem !== undefined) node.memTotalKiB = mem;
    const dist = parseDistances(readOptional(path.join(nodeDir, 'distance')) ?? '');
    if (dist && dist.length === ids.length) node.distances = dist;
    return node;
  });
  return { source: 'sysfs', nodes };
}

/** The node id holding `cpu`, or undefined when no node does. */
export function cpuNode(topology: NumaTopology, cpu: number): number | undefined {
  for (const n of topology.nodes) if (n.cpus.includes(cpu)) return n.id;
  return undefined;
}

export interface QueueAssignment {
  queue: number;
  cpu: number;
  node: number;
}

/**
 * Places `queues` queues (default: one per CPU) on CPUs. CPUs are taken
 * round-robin over the nodes that have CPUs: queue 0 on the first CPU of the
 * first node, queue 1 on the first CPU of the second node, and so on, so any
 * number of queues is spread evenly over the nodes (and their memory
 * bandwidth); a node with fewer CPUs drops out of the rotation when it runs
 * out. With `force`, queues beyond the CPU count wrap around that same order,
 * so CPUs are shared as evenly as possible.
 */
export function assignQueues(topology: NumaTopology, queues?: number, opts: { force?: boolean } = {}): QueueAssignment[] {
  const order = interleavedCpus(topology);
  if (order.length === 0) throw new EngineOptionError('--queues', `${describeTopology(topology)} has no CPUs to run queues on`);
  const n = queues ?? order.length;
  if (!Number.isSafeInteger(n)) throw new EngineOptionError('--queues', `--queues: must be a whole number, got ${n}`);
  if (n < 1) throw new EngineOptionError('--queues', `--queues: must be at least 1, got ${n}`);
  if (n > MAX_QUEUES) throw new EngineOptionError('--queues', `--queues ${n}: at most ${MAX_QUEUES}`);
  if (n > order.length && !opts.force) {
    const where = topology.source === 'simulated' ? `the ${describeTopology(topology)} topology has` : 'this machine has';
    throw new EngineOptionError(
      '--queues',
      `--queues ${n}: ${where} ${order.length} CPU${order.length === 1 ? '' : 's'}; pass --force to run more queues than CPUs`,
    );
  }
  return Array.from({ length: n }, (_, q) => ({ queue: q, ...order[q % order.length] }));
}

function interleavedCpus(topology: NumaTopology): Array<{ cpu: number; node: number }> {
  const out: Array<{ cpu: number; node: number }> = [];
  const longest = Math.max(0, ...topology.nodes.map((n) => n.cpus.length));
  for (let k = 0; k < longest; k++) {
    for (const node of topology.nodes) if (k < node.cpus.length) out.push({ cpu: node.cpus[k], node: node.id });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Affinity

/** The CPUs the process may run on (/proc/self/status, else the online CPUs, else 0..n-1). */
export function processCpus(): number[] {
  const fromStatus = readAllowedList('/proc/self/status');
  if (fromStatus && fromStatus.length > 0) return fromStatus;
  try {
    const online = parseCpuList(fs.readFileSync('/sys/devices/system/cpu/online', 'utf8'));
    if (online.length > 0) return online;
  } catch {
    // fall through
  }
  return sequence(os.availableParallelism());
}

/** The calling thread's affinity (/proc/thread-self/status Cpus_allowed_list), or undefined without /proc. */
export function threadAffinity(): number[] | undefined {
  return readAllowedList('/proc/thread-self/status');
}

export interface PinResult {
  pinned: boolean;
  /** The CPU actually asked for (differs from the request when it was mapped onto a real CPU). */
  cpu: number;
  reason?: string;
}

/**
 * Pins the calling thread to one CPU with sched_setaffinity. A CPU this
 * process may not use (a simulated topology's CPU 9 on a 2-CPU machine) is
 * mapped onto `available[cpu % available.length]`, and the result says so.
 * Never throws for a refusal: `pinned: false` with the reason.
 */
export function pinThread(cpu: number, sys?: Libc, available: readonly number[] = processCpus()): PinResult {
  if (!Number.isSafeInteger(cpu) || cpu < 0) throw new RangeError(`pinThread: cpu must be a non-negative integer, got ${cpu}`);
  let target = cpu;
  let reason: string | undefined;
  if (!available.includes(cpu)) {
    if (available.length === 0) return { pinned: false, cpu, reason: 'no CPU is available to this process' };
    target = available[cpu % available.length];
    reason = `cpu ${cpu} is not available here (cpus ${formatCpuList(available)}); pinned to cpu ${target} instead`;
  }
  let ok: boolean;
  try {
    ok = (sys ?? libc()).setAffinity([target]);
  } catch (err) {
    return { pinned: false, cpu: target, reason: `sched_setaffinity unavailable: ${(err as Error).message}` };
  }
  if (!ok) return { pinned: false, cpu: target, reason: `the kernel refused sched_setaffinity to cpu ${target}` };
  return reason ? { pinned: true, cpu: target, reason } : { pinned: true, cpu: target };
}

function readAllowedList(file: string): number[] | undefined {
  const status = readOptional(file);
  const m = status && /^Cpus_allowed_list:\s*(\S*)\s*$/m.exec(status);
  if (!m) return undefined;
  try {
    return parseCpuList(m[1], file);
  } catch {
    return undefined;
  }
}

function readOptional(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function sequence(n: number): number[] {
  return Array.from({ length: Math.max(1, n) }, (_, i) => i);
}
