/**
 * Transient read errors in virtual time. The real-time layer
 * (src/faults/transient.ts) draws a failure for every read; over drive-years
 * the reads are counted in bulk, so the simulator draws the errors as a
 * process of their own (per read, or per period) and arms this layer for the
 * one read that meets an error: it fails once, the retry reads, as there.
 */
import { EIO, type IoStatus, checkIo } from '../block/device.js';
import { ReadFaultLayer } from '../faults/read-fault-layer.js';

export class ArmedTransientLayer extends ReadFaultLayer {
  private armed: { from: number; to: number } | undefined;
  /** The range of the last injected error (what the oracle asks about). */
  private last: { from: number; to: number } | undefined;
  injected = 0;

  constructor(inner: ReadFaultLayer['inner']) {
    super(inner, 'transient');
  }

  /** The next read that touches [sector, sector + count) fails once. */
  arm(sector: number, count: number): void {
    this.armed = { from: sector, to: sector + count };
  }

  disarm(): void {
    this.armed = undefined;
  }

  /** True when the last injected error touched [sector, sector + count). */
  failedRecently(sector: number, count: number): boolean {
    return this.last !== undefined && this.last.from < sector + count && sector < this.last.to;
  }

  /** Forgets the last error (the request it belonged to has been judged). */
  clearRecent(): void {
    this.last = undefined;
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    const n = checkIo(this, sector, buf);
    const a = this.armed;
    if (a !== undefined && a.from < sector + n && sector < a.to) {
      this.armed = undefined;
      this.last = a;
      this.injected++;
      return EIO;
    }
    return this.inner.read(sector, buf);
  }
}
