/**
 * A read planned as pieces on file descriptors, for a caller that moves the
 * bytes itself, all pieces at once (the engine's io_uring), instead of calling
 * read(): a remap target hands out where each run of the request lives.
 */
import { EIO, type IoStatus, OK } from './device.js';

/** Pieces a plan holds at most; a request with more runs is read() instead. */
export const READ_PLAN_PIECES = 8;

/** plannedReadDone(): the read has to be done again through read(). */
export const READ_AGAIN = -1;

/** A piece's status from its result (bytes moved, or -errno): a short transfer inside a file is EIO. */
export function pieceStatus(result: number, bytes: number): IoStatus {
  return result < 0 ? -result : result === bytes ? OK : EIO;
}

/** Piece i: `bytes[i]` bytes at `offset[i]` of the file `fd[i]`, into the request's buffer at `at[i]`. */
export class ReadPlan {
  pieces = 0;
  readonly fd = new Int32Array(READ_PLAN_PIECES);
  readonly offset = new Float64Array(READ_PLAN_PIECES);
  readonly at = new Int32Array(READ_PLAN_PIECES);
  readonly bytes = new Int32Array(READ_PLAN_PIECES);
  /** The planner's own: what it needs to finish the read. */
  seq = 0;
  spareRuns = 0;

  add(fd: number, offset: number, at: number, bytes: number): boolean {
    const i = this.pieces;
    if (i === READ_PLAN_PIECES) return false;
    this.fd[i] = fd;
    this.offset[i] = offset;
    this.at[i] = at;
    this.bytes[i] = bytes;
    this.pieces = i + 1;
    return true;
  }
}

export interface PlannedReads {
  /**
   * Plans a read of `count` sectors at `sector` into `plan`: pieces that do
   * not overlap (pieces in flight together complete in any order). False,
   * with nothing to do: read() it instead.
   */
  planRead(sector: number, count: number, plan: ReadPlan): boolean;
  /** Every piece came back; `status` is OK when each moved all its bytes. The read's status, or READ_AGAIN. */
  plannedReadDone(plan: ReadPlan, status: IoStatus): IoStatus | typeof READ_AGAIN;
}

/** `device`'s PlannedReads, when it can plan reads at all. */
export function plannedReadsOf(device: unknown): PlannedReads | undefined {
  const d = device as Partial<PlannedReads & { readonly canPlanReads: boolean }> | undefined;
  return typeof d?.planRead === 'function' && d.canPlanReads === true ? (d as PlannedReads) : undefined;
}
