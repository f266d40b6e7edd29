/**
 * Added latency per operation: every read, write, flush and discard sleeps
 * (on the injected Clock) for a time drawn from that operation's
 * distribution, then goes to the inner device. Sleeping blocks the calling
 * thread, which is what a slow device does to the thread waiting for it.
 */
import { type BlockDevice, type IoStatus, type WriteFlags, checkIo, checkRequest } from '../block/device.js';
import { PassThroughLayer } from '../block/pass-through.js';
import { type Clock, realClock } from '../util/clock.js';
import { Random } from '../util/random.js';

export type LatencyDist =
  | { kind: 'none' }
  | { kind: 'fixed'; ns: number }
  | { kind: 'uniform'; minNs: number; maxNs: number }
  /** exp(N(ln median, sigma^2)): median `medianNs`, mean medianNs * exp(sigma^2 / 2). */
  | { kind: 'lognormal'; medianNs: number; sigma: number };

export type LatencyOp = 'read' | 'write' | 'flush' | 'discard';
export const LATENCY_OPS: readonly LatencyOp[] = ['read', 'write', 'flush', 'discard'];

export interface LatencyOptions {
  read?: LatencyDist;
  write?: LatencyDist;
  flush?: LatencyDist;
  discard?: LatencyDist;
  clock?: Clock;
  /** Randomness for uniform and lognormal (default: seeded with 1). */
  random?: Random;
}

export interface LatencyStats {
  count: number;
  totalNs: number;
  maxNs: number;
}

export class LatencyError extends Error {
  override readonly name = 'LatencyError';
}

/** Throws LatencyError when a distribution's parameters are out of range. */
export function checkLatencyDist(d: LatencyDist, field = 'latency'): void {
  const nonNeg = (v: number, what: string): void => {
    if (!Number.isFinite(v) || v < 0) throw new LatencyError(`${field}: ${what} must be a finite number of nanoseconds >= 0, got ${v}`);
  };
  switch (d.kind) {
    case 'none':
      return;
    case 'fixed':
      nonNeg(d.ns, 'ns');
      return;
    case 'uniform':
      nonNeg(d.minNs, 'minNs');
      nonNeg(d.maxNs, 'maxNs');
      if (d.maxNs < d.minNs) throw new LatencyError(`${field}: uniform maxNs (${d.maxNs}) must be >= minNs (${d.minNs})`);
      return;
    case 'lognormal':
      if (!Number.isFinite(d.medianNs) || d.medianNs <= 0) throw new LatencyError(`${field}: lognormal medianNs must be > 0, got ${d.medianNs}`);
      if (!Number.isFinite(d.sigma) || d.sigma < 0 || d.sigma > 10) throw new LatencyError(`${field}: lognormal sigma must be 0..10, got ${d.sigma}`);
      return;
    default:
      throw new LatencyError(`${field}: unknown distribution kind '${(d as { kind: string }).kind}' (allowed: none, fixed, uniform, lognormal)`);
  }
}

/** One draw, in nanoseconds. */
export function sampleLatency(d: LatencyDist, rng: Random): number {
  switch (d.kind) {
    case 'none':
      return 0;
    case 'fixed':
      return d.ns;
    case 'uniform':
      return d.minNs + rng.next() * (d.maxNs - d.minNs);
    case 'lognormal':
      return d.medianNs * Math.exp(d.sigma * rng.normal());
  }
}

const UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9 };

function parseDuration(text: string, field: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ns|us|µs|ms|s)?\s*$/.exec(text);
  if (!m) throw new LatencyError(`${field}: '${text}' is not a duration (a number with unit ns, us, ms or s; bare numbers are nanoseconds)`);
  return Number(m[1]) * UNITS[m[2] ?? 'ns']!;
}

/**
 * Parses a latency spec as a user types it:
 * `none` | `<dur>` | `fixed:<dur>` | `uniform:<min>..<max>` |
 * `lognormal:<median>,<sigma>`, with durations like `250us`, `2ms`, `1.5s`.
 */
export function parseLatencySpec(text: string, field = 'latency'): LatencyDist {
  const t = text.trim();
  let d: LatencyDist;
  if (t === 'none' || t === '0') d = { kind: 'none' };
  else if (t.startsWith('fixed:')) d = { kind: 'fixed', ns: parseDuration(t.slice(6), field) };
  else if (t.startsWith('uniform:')) {
    const parts = t.slice(8).split('..');
    if (parts.length !== 2) throw new LatencyError(`${field}: uniform needs 'uniform:<min>..<max>', got '${text}'`);
    d = { kind: 'uniform', minNs: parseDuration(parts[0]!, field), maxNs: parseDuration(parts[1]!, field) };
  } else if (t.startsWith('lognormal:')) {
    const parts = t.slice(10).split(',');
    const sigma = Number(parts[1]);
    if (parts.length !== 2 || parts[1]!.trim() === '' || !Number.isFinite(sigma)) {
      throw new LatencyError(`${field}: lognormal needs 'lognormal:<median>,<sigma>', got '${text}'`);
    }
    d = { kind: 'lognormal', medianNs: parseDuration(parts[0]!, field), sigma };
  } else if (/^[0-9]/.test(t)) d = { kind: 'fixed', ns: parseDuration(t, field) };
  else {
    throw new LatencyError(`${field}: '${text}' is not a latency (allowed: none, <dur>, fixed:<dur>, uniform:<min>..<max>, lognormal:<median>,<sigma>)`);
  }
  checkLatencyDist(d, field);
  return d;
}

export class LatencyDevice extends PassThroughLayer {
  private readonly dists: Record<LatencyOp, LatencyDist>;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly stats: Record<LatencyOp, LatencyStats>;

  constructor(inner: BlockDevice, opts: LatencyOptions = {}) {
    super(inner, 'latency');
    this.dists = {
      read: opts.read ?? { kind: 'none' },
      write: opts.write ?? { kind: 'none' },
      flush: opts.flush ?? { kind: 'none' },
      discard: opts.discard ?? { kind: 'none' },
    };
    for (const op of LATENCY_OPS) checkLatencyDist(this.dists[op], op);
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? new Random(1);
    this.stats = {
      read: { count: 0, totalNs: 0, maxNs: 0 },
      write: { count: 0, totalNs: 0, maxNs: 0 },
      flush: { count: 0, totalNs: 0, maxNs: 0 },
      discard: { count: 0, totalNs: 0, maxNs: 0 },
    };
  }

  /** How much latency this layer has added, per operation. */
  added(op: LatencyOp): Readonly<LatencyStats> {
    return this.stats[op];
  }

  distribution(op: LatencyOp): Readonly<LatencyDist> {
    return this.dists[op];
  }

  override read(sector: number, buf: Uint8Array): IoStatus {
    checkIo(this, sector, buf);
    this.delay('read');
    return this.inner.read(sector, buf);
  }

  override write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    checkIo(this, sector, buf);
    this.delay('write');
    return this.inner.write(sector, buf, flags);
  }

  override flush(): IoStatus {
    this.delay('flush');
    return this.inner.flush();
  }

  override discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    this.delay('discard');
    return this.inner.discard(sector, count);
  }

  private delay(op: LatencyOp): void {
    const d = this.dists[op];
    if (d.kind === 'none') return;
    const ns = Math.round(sampleLatency(d, this.random));
    const s = this.stats[op];
    s.count++;
    s.totalNs += ns;
    if (ns > s.maxNs) s.maxNs = ns;
    this.clock.sleepNs(ns);
  }
}
