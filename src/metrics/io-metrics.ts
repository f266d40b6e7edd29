/**
 * I/O counts, bytes, errors and latency per operation, taken where the NBD
 * server hands requests to the device (an IoExecutor wrapped by
 * instrumentExecutor): what the export's clients asked of the target, and
 * how long the target took (socket time not included). Two clock reads per
 * request.
 */
import { performance } from 'node:perf_hooks';
import { EIO, type IoStatus, type LentRead, OK, SECTOR_SIZE } from '../block/device.js';
import type { IoCompletion, IoExecutor } from '../nbd/executor.js';
import type { MetricFamily } from './exposition.js';
import { LatencyHistogram } from './histogram.js';

export const IO_OPS = ['read', 'write', 'write_zeroes', 'trim', 'flush'] as const;
export type IoOp = (typeof IO_OPS)[number];
const READ = 0;
const WRITE = 1;
const WRITE_ZEROES = 2;
const TRIM = 3;
const FLUSH = 4;

interface OpStats {
  requests: number;
  bytes: number;
  errors: number;
  latency: LatencyHistogram;
}

export class IoMetrics {
  /** Indexed as IO_OPS. */
  private readonly ops: OpStats[] = IO_OPS.map(() => ({ requests: 0, bytes: 0, errors: 0, latency: new LatencyHistogram() }));

  /** One request of IO_OPS[op] done: `bytes` moved if it succeeded, `ms` since it was handed over. */
  record(op: number, bytes: number, status: IoStatus, ms: number): void {
    const s = this.ops[op];
    s.requests++;
    if (status === OK) s.bytes += bytes;
    else s.errors++;
    s.latency.observe(ms / 1000);
  }

  requests(op: IoOp): number {
    return this.ops[IO_OPS.indexOf(op)].requests;
  }

  /** The families, every operation labelled with `layer` and `op`. */
  families(layer: string): MetricFamily[] {
    const each = <T>(fn: (op: IoOp, s: OpStats) => T): T[] => IO_OPS.map((op, i) => fn(op, this.ops[i]));
    return [
      {
        name: 'remapsim_io_requests',
        type: 'counter',
        help: 'Requests the layer completed, by operation.',
        points: each((op, s) => ({ labels: { layer, op }, value: s.requests })),
      },
      {
        name: 'remapsim_io_errors',
        type: 'counter',
        help: 'Requests the layer failed, by operation.',
        points: each((op, s) => ({ labels: { layer, op }, value: s.errors })),
      },
      {
        name: 'remapsim_io_bytes',
        type: 'counter',
        unit: 'bytes',
        help: 'Bytes the layer read, wrote, zeroed or trimmed in requests that succeeded.',
        points: each((op, s) => ({ labels: { layer, op }, value: s.bytes })),
      },
      {
        name: 'remapsim_io_latency_seconds',
        type: 'histogram',
        unit: 'seconds',
        help: 'Time from handing a request to the layer to its completion.',
        points: each((op, s) => s.latency.point({ layer, op })),
      },
    ];
  }
}

/**
 * `ex` with every request counted and timed in `m` (a request that throws
 * counts as an EIO and is thrown on). A lent read counts as a read once its
 * data is there; one the executor cannot lend is read, and counted, by read().
 */
export function instrumentExecutor(ex: IoExecutor, m: IoMetrics): IoExecutor {
  const settle = <T>(op: number, bytes: number, t0: number, r: T | Promise<T>, status: (r: T) => IoStatus): T | Promise<T> => {
    if (!(r instanceof Promise)) {
      m.record(op, bytes, status(r), performance.now() - t0);
      return r;
    }
    return r.then(
      (v) => {
        m.record(op, bytes, status(v), performance.now() - t0);
        return v;
      },
      (err: unknown) => {
        m.record(op, bytes, EIO, performance.now() - t0);
        throw err;
      },
    );
  };
  const timed = (op: number, bytes: number, fn: () => IoCompletion): IoCompletion => {
    const t0 = performance.now();
    let c: IoCompletion;
    try {
      c = fn();
    } catch (err) {
      m.record(op, bytes, EIO, performance.now() - t0);
      throw err;
    }
    return settle(op, bytes, t0, c, (s) => s);
  };
  const lend = ex.lendRead?.bind(ex);
  return {
    name: ex.name,
    sectors: ex.sectors,
    logicalBlockSize: ex.logicalBlockSize,
    features: ex.features,
    maxLentBytes: ex.maxLentBytes,
    minLentBytes: ex.minLentBytes,
    read: (sector, buf) => timed(READ, buf.length, () => ex.read(sector, buf)),
    write: (sector, buf, fua) => timed(WRITE, buf.length, () => ex.write(sector, buf, fua)),
    writeZeroes: (sector, count, fua) => timed(WRITE_ZEROES, count * SECTOR_SIZE, () => ex.writeZeroes(sector, count, fua)),
    flush: () => timed(FLUSH, 0, () => ex.flush()),
    discard: (sector, count) => timed(TRIM, count * SECTOR_SIZE, () => ex.discard(sector, count)),
    ...(lend && {
      lendRead(sector: number, bytes: number): LentRead | Promise<LentRead> | undefined {
        const t0 = performance.now();
        const r = lend(sector, bytes);
        return r === undefined ? undefined : settle(READ, bytes, t0, r, (l) => l.status);
      },
    }),
  };
}
