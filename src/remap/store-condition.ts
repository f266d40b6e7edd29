/**
 * What the stores under a remap target are going through, as opposed to its
 * media: a request that failed with an errno of the file system or the
 * backing file (a full or read-only file system, a quota, a file that
 * shrank or was deleted) is no bad sector, so it spends no spare block. The
 * target fails it with a matching errno and names the condition here, for
 * its status line and log:
 *
 *   - a store error (ENOSPC, EDQUOT, EFBIG, EROFS, ...): the request fails;
 *     the condition clears by itself with the next write that succeeds;
 *   - a backing file lost (deleted or replaced: ENOENT/ESTALE; shrunk:
 *     ENXIO, from a read past its end or the check at each flush): the
 *     target has failed: writes and flushes fail until it is reopened
 *     (reads of blocks that still read go on);
 *   - the metadata store fail-stopped (a commit failed): no remap can be
 *     recorded until it is reopened; writes that need none go on.
 *
 * The words live in shared memory, so a primary and its replicas in other
 * threads see one condition. Only error paths write them; a write that
 * succeeds reads one word.
 */
import { EDQUOT, EFBIG, ENOENT, ENOSPC, ENXIO, ESTALE, type IoStatus, OK, errnoName } from '../block/device.js';
import { log } from '../util/log.js';

export type StoreRole = 'main' | 'spare';

/** Failures, stored negated in word 0. */
const FAILURES = ['', 'failed_main_deleted', 'failed_main_shrunk', 'failed_spare_deleted', 'failed_spare_shrunk'] as const;

/**
 * [0]: 0, a store error's errno (> 0) or -failure; [1]: the errno a failure
 * fails requests with; [2]: the errno the metadata store failed with; [3]:
 * the last store error's errno and [4] its role (0 main, 1 spare), kept
 * after it cleared, for a run's summary.
 */
const WORDS = 5;

/** How a lost backing file shows: deleted or replaced, or shrunk; undefined when `status` says neither. */
function lostAs(status: IoStatus): 'deleted' | 'shrunk' | undefined {
  if (status === ENOENT || status === ESTALE) return 'deleted';
  if (status === ENXIO) return 'shrunk';
  return undefined;
}

export class StoreCondition {
  /** Read on the write path (one load): non-zero when there is something to settle after a write that succeeded. */
  readonly words: Int32Array;

  constructor(shared?: SharedArrayBuffer) {
    this.words = new Int32Array(shared ?? new SharedArrayBuffer(WORDS * 4));
  }

  get shared(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /**
   * A request to `role` (named `path`) failed with `status`, not a media
   * error (see isMediaError). Records the condition, logs a change of it
   * once, and returns the errno to fail the request with.
   */
  storeError(role: StoreRole, path: string, status: IoStatus, doing: string): IoStatus {
    const w = this.words;
    Atomics.store(w, 4, role === 'main' ? 0 : 1);
    Atomics.store(w, 3, status);
    const lost = lostAs(status);
    if (lost !== undefined) return this.fail(role, path, lost, status, doing);
    const before = Atomics.load(w, 0);
    if (before < 0) return Atomics.load(w, 1);
    if (before !== status) {
      Atomics.store(w, 0, status);
      log.error(
        `${path} (${role}): ${errnoName(status)} ${doing}: the store under the ${role} device failed, not its medium; the request fails with ${errnoName(requestErrno(status))}, nothing is remapped, and the condition clears with the next write that succeeds`,
      );
    }
    return requestErrno(status);
  }

  /** The metadata store refused a commit with `status` (it fail-stopped); a lost spare shows as such. */
  metadataFailed(sparePath: string, status: IoStatus): void {
    const lost = lostAs(status);
    if (lost !== undefined) this.fail('spare', sparePath, lost, status, 'committing a remap');
    if (Atomics.compareExchange(this.words, 2, 0, status) === 0) {
      log.error(`${sparePath} (spare): the metadata store failed (${errnoName(status)}): no remap can be recorded until the target is reopened`);
    }
  }

  private fail(role: StoreRole, path: string, lost: 'deleted' | 'shrunk', status: IoStatus, doing: string): IoStatus {
    const w = this.words;
    if (Atomics.load(w, 0) >= 0) {
      const code = (role === 'main' ? 1 : 3) + (lost === 'shrunk' ? 1 : 0);
      Atomics.store(w, 1, status);
      Atomics.store(w, 0, -code);
      const what = lost === 'deleted' ? 'was deleted or replaced' : 'shrank below the device size';
      log.error(
        `${path} (${role}): the backing file ${what} (${errnoName(status)} ${doing}): the target has failed; writes and flushes fail until it is reopened`,
      );
    }
    return Atomics.load(w, 1);
  }

  /** After a write that succeeded while words[0] was non-zero: clears a store error (OK), or a failure's errno. */
  afterWrite(): IoStatus {
    const w = this.words;
    const v = Atomics.load(w, 0);
    if (v < 0) return Atomics.load(w, 1);
    if (v > 0 && Atomics.compareExchange(w, 0, v, 0) === v) log.warn(`the store error ${errnoName(v)} cleared: a write succeeded`);
    return OK;
  }

  /** The errno requests fail with while the target has failed, or OK. */
  get failure(): IoStatus {
    return Atomics.load(this.words, 0) < 0 ? Atomics.load(this.words, 1) : OK;
  }

  /** The last store error seen, cleared or not ('ENOSPC on main'), or undefined. */
  get last(): string | undefined {
    const e = Atomics.load(this.words, 3);
    return e === 0 ? undefined : `${errnoName(e)} on ${Atomics.load(this.words, 4) === 0 ? 'main' : 'spare'}`;
  }

  /** The status line's state token when there is a condition (failed_*, metadata_failed, store_<errno>), else undefined. */
  token(): string | undefined {
    const v = Atomics.load(this.words, 0);
    if (v < 0) return FAILURES[-v];
    if (Atomics.load(this.words, 2) !== 0) return 'metadata_failed';
    if (v > 0) return `store_${errnoName(v).replace(/\s+/g, '').toLowerCase()}`;
    return undefined;
  }
}

/** What a request fails with for a store error: a block device has no quota or file size, so those are ENOSPC (as nbdkit maps them). */
function requestErrno(status: IoStatus): IoStatus {
  return status === EDQUOT || status === EFBIG ? ENOSPC : status;
}
