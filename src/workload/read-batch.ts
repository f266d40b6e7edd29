/**
 * The one-thread runner's reads in batches: for a clone that only reads, from
 * a device that plans its reads (a remap target over page-cached files), up
 * to READ_BATCH requests are generated and planned, and the native library
 * then reads their pieces one after another in one call (rs_batch_timed),
 * reading the clock after each. One read is in flight at a time, as on the
 * plain path, and each keeps its own start and end: what comes once per batch
 * instead of once per read is the FFI call and the runner's loop around it.
 */
import { type BlockDevice, OK, SECTOR_SIZE } from '../block/device.js';
import { type PlannedReads, pieceStatus, READ_AGAIN, READ_PLAN_PIECES, ReadPlan, plannedReadsOf } from '../block/read-plan.js';
import { encodeOp, IO_READ, type NativeIo, nativeIoStatus, OP_WORDS } from '../sys/native-io.js';
import { libc } from '../sys/libc.js';
import { realClock } from '../util/clock.js';
import type { IoGenerator, IoRequest } from './generator.js';

/** Reads planned and made per native call. */
export const READ_BATCH = 32;

export class ReadBatch {
  /** The batch's completed reads, in order: `count` of them. */
  count = 0;
  readonly offsetBytes = new Float64Array(READ_BATCH);
  readonly lengthBytes = new Int32Array(READ_BATCH);
  readonly status = new Int32Array(READ_BATCH);
  readonly startNs = new Float64Array(READ_BATCH);
  readonly endNs = new Float64Array(READ_BATCH);
  /** The clock after the batch's last read. */
  lastNs = 0;
  /** Of `count`, the reads the native call made (the others were read() calls). */
  native = 0;

  private readonly plans = Array.from({ length: READ_BATCH }, () => new ReadPlan());
  /** The first op of each planned read; firstOp[n] is the op count. */
  private readonly firstOp = new Int32Array(READ_BATCH + 1);
  private readonly table = new Uint32Array(READ_BATCH * READ_PLAN_PIECES * OP_WORDS);
  private readonly results = new Int32Array(READ_BATCH * READ_PLAN_PIECES);
  private readonly times = new Float64Array(READ_BATCH * READ_PLAN_PIECES + 1);

  private constructor(
    private readonly device: BlockDevice,
    private readonly planner: PlannedReads,
    private readonly io: NativeIo,
    private readonly buf: Uint8Array,
    private readonly bufAddress: number,
  ) {}

  /**
   * Batched reads of `device` into `buf` (native memory), or undefined when
   * the device cannot plan its reads, the native library is not there, or
   * `buf` is not native memory.
   */
  static of(device: BlockDevice, buf: Uint8Array): ReadBatch | undefined {
    const planner = plannedReadsOf(device);
    if (planner === undefined) return undefined;
    const native = nativeIoStatus();
    if (!native.available) return undefined;
    const at = libc().addressIfKnown(buf);
    return at < 0 ? undefined : new ReadBatch(device, planner, native.io, buf, at);
  }

  /**
   * Takes up to READ_BATCH reads from `gen` (through `req`) and reads them in
   * turn; a read that starts at `untilNs` or later is not counted, and ends
   * the batch (lastNs says when). False when the generator has no more.
   */
  run(gen: IoGenerator, req: IoRequest, untilNs: number): boolean {
    this.count = 0;
    this.native = 0;
    let more = true;
    let n = 0;
    let ops = 0;
    let unplanned = false;
    for (; n < READ_BATCH; n++) {
      if (!gen.next(req)) {
        more = false;
        break;
      }
      this.offsetBytes[n] = req.offsetBytes;
      this.lengthBytes[n] = req.lengthBytes;
      const plan = this.plans[n];
      const planned = this.planner.planRead(req.offsetBytes / SECTOR_SIZE, req.lengthBytes / SECTOR_SIZE, plan);
      req.lengthBytes = 0;
      if (!planned) {
        unplanned = true; // read() it after the batch, in its turn
        break;
      }
      this.firstOp[n] = ops;
      for (let i = 0; i < plan.pieces; i++) {
        encodeOp(this.table, ops++, IO_READ, plan.fd[i], plan.offset[i], plan.bytes[i], this.bufAddress + plan.at[i], 0);
      }
    }
    this.firstOp[n] = ops;
    const times = this.times;
    if (ops > 0) this.io.batchTimed(this.table, ops, this.results, times);
    let redo = -1;
    for (let r = 0; r < n; r++) {
      const op0 = this.firstOp[r];
      const op1 = this.firstOp[r + 1];
      if (times[op0] >= untilNs) {
        this.lastNs = times[op0];
        return more;
      }
      let status = OK;
      for (let o = op0; o < op1; o++) {
        const rc = pieceStatus(this.results[o], this.plans[r].bytes[o - op0]);
        if (rc !== OK && status === OK) status = rc;
      }
      const done = this.planner.plannedReadDone(this.plans[r], status);
      if (done === READ_AGAIN) {
        redo = r; // this read and the ones after it go through read(), in order
        break;
      }
      this.status[r] = done;
      this.startNs[r] = times[op0];
      this.endNs[r] = times[op1];
      this.count = this.native = r + 1;
      this.lastNs = times[op1];
    }
    const last = unplanned ? n + 1 : n;
    for (let r = redo < 0 ? n : redo; r < last; r++) {
      const start = realClock.nowNs();
      if (start >= untilNs) {
        this.lastNs = start;
        return more;
      }
      const len = this.lengthBytes[r];
      this.status[r] = this.device.read(this.offsetBytes[r] / SECTOR_SIZE, len === this.buf.length ? this.buf : this.buf.subarray(0, len));
      this.startNs[r] = start;
      this.endNs[r] = this.lastNs = realClock.nowNs();
      this.count = r + 1;
    }
    return more;
  }
}
