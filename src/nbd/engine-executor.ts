/**
 * Runs the NBD server's requests on the per-CPU engine: each request goes to
 * a worker thread's queue (round robin), the workers execute them in
 * parallel, and completions come back in whatever order they finish; the
 * server's event loop only moves bytes between the socket and the engine's
 * buffer slots. Requests larger than a slot are split, their pieces run in
 * parallel, and the request fails with the first piece's error. Reads of
 * data already in the page cache skip the queues (lendRead).
 */
import { EROFS, type LentRead, type LogicalBlockSize, type MappedReads, OK, SECTOR_SHIFT, lendMapped } from '../block/device.js';
import type { Engine } from '../engine/engine.js';
import type { ExecutorFeatures, IoCompletion, IoExecutor } from './executor.js';

export interface EngineExecutorOptions {
  name: string;
  sectors: number;
  logicalBlockSize: LogicalBlockSize;
  readOnly?: boolean;
  /** The device does something useful with a discard (the server then advertises TRIM). */
  trim: boolean;
  /** The engine's device on this thread (the primary target), when it can show reads in its page cache. */
  mapped?: MappedReads;
}

let zeroes: Uint8Array | undefined;
const RESIDENT = Object.freeze({ resident: true });

export class EngineExecutor implements IoExecutor {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  readonly features: ExecutorFeatures;
  /** A read of up to one buffer slot is sent from the slot the worker read it into (one copy fewer). */
  readonly maxLentBytes: number;
  /** Every read is lent: from the page cache when resident (no worker round trip), else from a worker's slot. */
  readonly minLentBytes = 0;
  private readonly chunkSectors: number;
  private readonly mapped: MappedReads | undefined;

  constructor(
    private readonly engine: Engine,
    opts: EngineExecutorOptions,
  ) {
    this.name = opts.name;
    this.sectors = opts.sectors;
    this.logicalBlockSize = opts.logicalBlockSize;
    const readOnly = opts.readOnly === true;
    // every connection's requests go through the same engine and device: flushes cover them all
    this.features = { readOnly, trim: !readOnly && opts.trim, multiConn: true };
    this.chunkSectors = engine.maxRequestBytes >>> SECTOR_SHIFT;
    this.maxLentBytes = engine.maxRequestBytes;
    this.mapped = opts.mapped;
  }

  /**
   * A read whose pages are all in the page cache goes out from there at
   * once (no I/O to queue, and the event loop cannot wait for a disk; the
   * check is one mincore call); any other is read by a worker into its slot
   * and sent from the slot.
   */
  lendRead(sector: number, bytes: number): LentRead | Promise<LentRead> {
    return lendMapped(this.mapped, sector, bytes, RESIDENT) ?? this.engine.lendRead(sector, bytes);
  }

  read(sector: number, buf: Uint8Array): IoCompletion {
    return this.split(sector, buf.length >>> SECTOR_SHIFT, (s, from, n) => this.engine.submit('read', s, buf.subarray(from, from + (n << SECTOR_SHIFT))));
  }

  write(sector: number, buf: Uint8Array, fua: boolean): IoCompletion {
    if (this.features.readOnly) return EROFS;
    return this.split(sector, buf.length >>> SECTOR_SHIFT, (s, from, n) =>
      this.engine.submit('write', s, buf.subarray(from, from + (n << SECTOR_SHIFT)), { fua }),
    );
  }

  writeZeroes(sector: number, count: number, fua: boolean): IoCompletion {
    if (this.features.readOnly) return EROFS;
    zeroes ??= new Uint8Array(this.chunkSectors << SECTOR_SHIFT);
    const z = zeroes;
    return this.split(sector, count, (s, _from, n) => this.engine.submit('write', s, z.subarray(0, n << SECTOR_SHIFT), { fua }));
  }

  flush(): IoCompletion {
    return this.engine.submit('flush', 0, undefined);
  }

  discard(sector: number, count: number): IoCompletion {
    if (this.features.readOnly) return EROFS;
    return this.split(sector, count, (s, _from, n) => this.engine.submit('trim', s, undefined, { count: n }));
  }

  /** Submits [sector, sector + count) in slot-sized pieces; `from` is the piece's byte offset in the request. */
  private split(sector: number, count: number, submit: (sector: number, from: number, count: number) => Promise<number>): Promise<number> {
    if (count <= this.chunkSectors) return submit(sector, 0, count);
    const pieces: Array<Promise<number>> = [];
    for (let done = 0; done < count; done += this.chunkSectors) {
      pieces.push(submit(sector + done, done << SECTOR_SHIFT, Math.min(this.chunkSectors, count - done)));
    }
    return Promise.all(pieces).then((rcs) => rcs.find((rc) => rc !== OK) ?? OK);
  }
}
