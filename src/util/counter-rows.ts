/**
 * Counters that several threads bump without atomics: each thread owns one
 * row of a shared Float64Array and only ever writes its own; readers sum the
 * rows (a total may lag one increment behind a thread that is mid-update).
 * Rows are padded with a cache line of their own (the buffer itself may
 * start anywhere on a line), so two threads bumping their counters never
 * write the same 64-byte line.
 */
export class CounterRows<K extends string> {
  readonly shared: SharedArrayBuffer;
  /** This thread's row: increment `row[index.name]`. */
  readonly row: Float64Array;
  private readonly all: Float64Array;
  readonly index: Readonly<Record<K, number>>;
  /** Float64 words from one row to the next: the fields rounded up to whole lines, plus one line. */
  private readonly stride: number;

  constructor(names: readonly K[], opts: { rows?: number; shared?: SharedArrayBuffer; row?: number } = {}) {
    const fields = names.length;
    this.stride = Math.ceil(fields / 8) * 8 + 8;
    this.index = Object.fromEntries(names.map((n, i) => [n, i])) as Record<K, number>;
    this.shared = opts.shared ?? new SharedArrayBuffer((opts.rows ?? 1) * this.stride * 8);
    this.all = new Float64Array(this.shared);
    const r = opts.row ?? 0;
    if (!Number.isInteger(r) || r < 0 || r * this.stride + fields > this.all.length)
      throw new RangeError(`counter row ${r} does not exist (${this.rows} rows)`);
    this.row = this.all.subarray(r * this.stride, r * this.stride + fields);
  }

  get rows(): number {
    return this.all.length / this.stride;
  }

  sum(name: K): number {
    const i = this.index[name];
    let s = 0;
    for (let o = i; o < this.all.length; o += this.stride) s += this.all[o];
    return s;
  }

  max(name: K): number {
    const i = this.index[name];
    let m = 0;
    for (let o = i; o < this.all.length; o += this.stride) if (this.all[o] > m) m = this.all[o];
    return m;
  }

  /** Sets a field to zero in every row. */
  reset(names: readonly K[]): void {
    for (const n of names) for (let o = this.index[n]; o < this.all.length; o += this.stride) this.all[o] = 0;
  }
}
