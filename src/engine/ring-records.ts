/**
 * What crosses between threads in the engine: the layout of a request and a
 * completion record in the rings, and of the control block every thread
 * shares. Fields are Float64 words (see ring.ts).
 */

// request record
export const RQ_TAG = 0; // the submitter's own number for the request
export const RQ_OWNER = 1; // queue whose completion ring gets the result (MAIN_OWNER: the main thread's)
export const RQ_OP = 2;
export const RQ_FLAGS = 3;
export const RQ_SECTOR = 4;
export const RQ_BYTES = 5;
export const RQ_SLOT = 6; // buffer pool slot holding the data
export const RQ_SUBMIT_NS = 7;
export const RQ_FIELDS = 8;

// completion record
export const CQ_TAG = 0;
export const CQ_STATUS = 1;
export const CQ_DONE_NS = 2;
export const CQ_EXECUTOR = 3; // queue that ran it (differs from the owner when stolen)
export const CQ_FIELDS = 4;

export const OP_READ = 0;
export const OP_WRITE = 1;
export const OP_TRIM = 2;
export const OP_FLUSH = 3;
export const FLAG_FUA = 1;

export const MAIN_OWNER = -1;

// control block (Int32 words)
export const CT_STATE = 0; // STATE_* (0 before the first run)
export const CT_STOP_RUN = 2; // a run id: its jobs end now, as if their time were up (a signal stopped the run)
/** Futex words, one per queue plus one for main: bumped when that queue's rings get work. */
export const CT_WAKE0 = 8;
export const STATE_RUNNING = 1;
export const STATE_CLOSING = 3;

// per-queue progress counters (Float64, QS_FIELDS per queue)
export const QS_BYTES = 0;
export const QS_IOS = 1;
export const QS_ERRORS = 2;
export const QS_EXECUTED = 3; // requests this queue ran (its own and stolen ones)
export const QS_STOLEN = 4; // requests it took from another queue
export const QS_FIELDS = 8;

export function wakeIndex(queue: number): number {
  return CT_WAKE0 + (queue === MAIN_OWNER ? 0 : queue + 1);
}

/**
 * A queue's sleep flag, after the futex words: 1 while its thread may be in
 * Atomics.wait. A waker bumps the futex word always and calls notify only
 * when the flag is up (notify takes a lock every thread shares).
 */
export function sleepIndex(queue: number, queues: number): number {
  return CT_WAKE0 + queues + 1 + queue;
}

/** Tells `queue` (or the main thread) its rings have work: the futex word always, notify only while it sleeps (the main thread's waitAsync has no flag). */
export function wake(control: Int32Array, queue: number, queues: number): void {
  const i = wakeIndex(queue);
  Atomics.add(control, i, 1);
  if (queue === MAIN_OWNER || Atomics.load(control, sleepIndex(queue, queues)) !== 0) Atomics.notify(control, i, 1);
}

export function controlInts(queues: number): number {
  return CT_WAKE0 + 2 * queues + 1;
}
