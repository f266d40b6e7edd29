/**
 * The rare paths of the model (a remap and its durable record, marking a
 * block pending, dm-remap-v4's end_io work) run in one place: the primary
 * target on the main thread. A worker asks for one and waits: it writes the
 * arguments (and any data) into its own slot of shared memory, bumps its
 * request number and blocks; the main thread notices without blocking its
 * event loop (Atomics.waitAsync), runs the operation, writes the result and
 * bumps the done number. Fast paths never come here.
 */

export const SLOW_ARGS = 8;
const STRIDE = 16; // Int32 words per worker: request and done numbers on their own cache line

export interface SlowPathShared {
  seqs: SharedArrayBuffer;
  args: SharedArrayBuffer;
  data: SharedArrayBuffer;
  workers: number;
  dataBytes: number;
}

export function createSlowPath(workers: number, dataBytes: number): SlowPathShared {
  return {
    seqs: new SharedArrayBuffer(workers * STRIDE * 4),
    args: new SharedArrayBuffer(workers * (SLOW_ARGS + 1) * 8),
    data: new SharedArrayBuffer(workers * dataBytes),
    workers,
    dataBytes,
  };
}

/** Runs one slow operation: args[0..] in, data (the request's bytes) in and out; returns a status. */
export type SlowHandler = (op: number, args: Float64Array, data: Uint8Array) => number;

/** The worker's end: a synchronous call. */
export class SlowPathClient {
  private readonly seqs: Int32Array;
  private readonly args: Float64Array;
  readonly data: Uint8Array;
  private readonly req: number;

  constructor(shared: SlowPathShared, worker: number) {
    this.seqs = new Int32Array(shared.seqs);
    this.args = new Float64Array(shared.args, worker * (SLOW_ARGS + 1) * 8, SLOW_ARGS + 1);
    this.data = new Uint8Array(shared.data, worker * shared.dataBytes, shared.dataBytes);
    this.req = worker * STRIDE;
  }

  /** Calls the main thread; `data` (if any) is copied in and, with `readBack` (a read), back out. */
  call(op: number, args: ArrayLike<number>, data?: Uint8Array, readBack = false): number {
    if (data && data.length > this.data.length) throw new RangeError(`slow path: ${data.length} bytes is more than the ${this.data.length} it can carry`);
    this.args[0] = op;
    for (let i = 0; i < args.length; i++) this.args[i + 1] = args[i];
    if (data) this.data.set(data);
    const seq = (Atomics.load(this.seqs, this.req) + 1) | 0;
    Atomics.store(this.seqs, this.req, seq);
    Atomics.notify(this.seqs, this.req, 1);
    while (Atomics.load(this.seqs, this.req + 1) !== seq) Atomics.wait(this.seqs, this.req + 1, (seq - 1) | 0, 1000);
    if (data && readBack) data.set(this.data.subarray(0, data.length));
    return this.args[0];
  }
}

/** The main thread's end: serves every worker until stopped. */
export class SlowPathServer {
  private readonly seqs: Int32Array;
  private readonly shared: SlowPathShared;
  private stopped = false;

  constructor(
    shared: SlowPathShared,
    private readonly handler: SlowHandler,
  ) {
    this.shared = shared;
    this.seqs = new Int32Array(shared.seqs);
    for (let w = 0; w < shared.workers; w++) this.serve(w);
  }

  private serve(w: number): void {
    const req = w * STRIDE;
    const args = new Float64Array(this.shared.args, w * (SLOW_ARGS + 1) * 8, SLOW_ARGS + 1);
    const data = new Uint8Array(this.shared.data, w * this.shared.dataBytes, this.shared.dataBytes);
    const step = (): void => {
      if (this.stopped) return;
      const seq = Atomics.load(this.seqs, req);
      if (seq !== Atomics.load(this.seqs, req + 1)) {
        let status: number;
        try {
          status = this.handler(args[0], args.subarray(1), data);
        } catch {
          status = 5; // EIO: the request fails, the worker goes on
        }
        args[0] = status;
        Atomics.store(this.seqs, req + 1, seq);
        Atomics.notify(this.seqs, req + 1, 1);
      }
      // wait for a request after the one just answered; one already posted returns at once ('not-equal')
      const w2 = Atomics.waitAsync(this.seqs, req, seq);
      if (w2.async) void w2.value.then(step);
      else setImmediate(step);
    };
    step();
  }

  stop(): void {
    this.stopped = true;
    for (let w = 0; w < this.shared.workers; w++) Atomics.notify(this.seqs, w * STRIDE, 1);
  }
}
