/**
 * A bounded multi-producer multi-consumer queue of fixed-size records in a
 * SharedArrayBuffer (Dmitry Vyukov's design: each cell carries a sequence
 * number; producers and consumers claim a position with one compare-and-swap
 * and publish the cell by storing its sequence). Any thread may push or pop;
 * no locks, no allocation, and a record is never seen half-written: its
 * fields are written before the sequence store that publishes it and read
 * after the sequence load that claims it.
 *
 * Records are `fields` Float64 words (exact integers up to 2^53), enough for
 * a request (tag, op, sector, length, buffer, flags, times) or a completion.
 */

const ENQ = 0;
const DEQ = 16; // on another cache line than ENQ, so producers and consumers do not share one
const HEADER_INTS = 32;

export interface RingShared {
  header: SharedArrayBuffer;
  seqs: SharedArrayBuffer;
  data: SharedArrayBuffer;
  capacity: number;
  fields: number;
}

export class Ring {
  readonly capacity: number;
  readonly fields: number;
  private readonly mask: number;
  private readonly header: Int32Array;
  private readonly seqs: Int32Array;
  private readonly data: Float64Array;

  constructor(opts: { capacity: number; fields: number } | RingShared) {
    let shared: RingShared;
    if ('header' in opts) shared = opts;
    else {
      const { capacity, fields } = opts;
      if (!Number.isInteger(capacity) || capacity < 2 || (capacity & (capacity - 1)) !== 0 || capacity > 1 << 24) {
        throw new RangeError(`ring capacity must be a power of two in [2, 2^24], got ${capacity}`);
      }
      if (!Number.isInteger(fields) || fields < 1 || fields > 64) throw new RangeError(`ring record fields must be in [1, 64], got ${fields}`);
      shared = {
        header: new SharedArrayBuffer(HEADER_INTS * 4),
        seqs: new SharedArrayBuffer(capacity * 4),
        data: new SharedArrayBuffer(capacity * fields * 8),
        capacity,
        fields,
      };
      const seqs = new Int32Array(shared.seqs);
      for (let i = 0; i < capacity; i++) seqs[i] = i;
    }
    this.shared = shared;
    this.capacity = shared.capacity;
    this.fields = shared.fields;
    this.mask = shared.capacity - 1;
    this.header = new Int32Array(shared.header);
    this.seqs = new Int32Array(shared.seqs);
    this.data = new Float64Array(shared.data);
  }

  /** The shared memory, for `new Ring(ring.shared)` in another thread. */
  readonly shared: RingShared;

  /**
   * Appends a record (its first `fields` values from `rec`, starting at
   * `offset`). Returns false when the ring is full.
   */
  push(rec: ArrayLike<number>, offset = 0): boolean {
    const header = this.header;
    const seqs = this.seqs;
    let pos = Atomics.load(header, ENQ);
    for (;;) {
      const cell = pos & this.mask;
      const dif = (Atomics.load(seqs, cell) - pos) | 0;
      if (dif === 0) {
        const won = Atomics.compareExchange(header, ENQ, pos, (pos + 1) | 0);
        if (won === pos) {
          const base = cell * this.fields;
          for (let i = 0; i < this.fields; i++) this.data[base + i] = rec[offset + i];
          Atomics.store(seqs, cell, (pos + 1) | 0);
          return true;
        }
        pos = won;
      } else if (dif < 0) {
        return false;
      } else {
        pos = Atomics.load(header, ENQ);
      }
    }
  }

  /**
   * Takes the oldest record into `out` (at `offset`). Returns false when the
   * ring is empty.
   */
  pop(out: Float64Array | number[], offset = 0): boolean {
    const header = this.header;
    const seqs = this.seqs;
    let pos = Atomics.load(header, DEQ);
    for (;;) {
      const cell = pos & this.mask;
      const dif = (Atomics.load(seqs, cell) - ((pos + 1) | 0)) | 0;
      if (dif === 0) {
        const won = Atomics.compareExchange(header, DEQ, pos, (pos + 1) | 0);
        if (won === pos) {
          const base = cell * this.fields;
          for (let i = 0; i < this.fields; i++) out[offset + i] = this.data[base + i];
          Atomics.store(seqs, cell, (pos + this.mask + 1) | 0);
          return true;
        }
        pos = won;
      } else if (dif < 0) {
        return false;
      } else {
        pos = Atomics.load(header, DEQ);
      }
    }
  }

  /** Records waiting (a snapshot: it may change as soon as it is read). */
  get length(): number {
    const n = (Atomics.load(this.header, ENQ) - Atomics.load(this.header, DEQ)) | 0;
    return n < 0 ? 0 : n > this.capacity ? this.capacity : n;
  }
}
