/**
 * Time for the data path. Fault layers and the scanner take a Clock so tests
 * can drive time by hand; the real one sleeps by blocking the calling thread
 * (Atomics.wait), which is what a slow device does to the thread that waits
 * for it.
 */
export interface Clock {
  /** Monotonic time in nanoseconds (a double: exact to 2^53 ns, about 104 days). */
  nowNs(): number;
  /** Block the calling thread for `ns` nanoseconds. */
  sleepNs(ns: number): void;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
let origin = process.hrtime.bigint();
// the origin split as process.hrtime() gives it: reading [s, ns] costs less than a BigInt
// reading and its conversion (48 against 55-75 ns), and the data path reads twice per I/O
let originS = Number(origin / 1_000_000_000n);
let originNs = Number(origin % 1_000_000_000n);
// held here: the global `process` is a getter, and an I/O loop should not call it twice per I/O
const hrtime = process.hrtime;

/** The monotonic reading realClock counts from; hand it to worker threads so all threads share one time base. */
export function clockOrigin(): bigint {
  return origin;
}

/** The origin's seconds and nanoseconds, as realClock subtracts them from a process.hrtime() reading (for native code computing the same clock). */
export function clockOriginSeconds(): number {
  return originS;
}

export function clockOriginNanos(): number {
  return originNs;
}

/** In a worker thread: count from the main thread's origin (CLOCK_MONOTONIC is the same in every thread). */
export function adoptClockOrigin(o: bigint): void {
  origin = o;
  originS = Number(o / 1_000_000_000n);
  originNs = Number(o % 1_000_000_000n);
}

export const realClock: Clock = {
  nowNs: () => {
    const t = hrtime();
    return (t[0] - originS) * 1e9 + (t[1] - originNs);
  },
  sleepNs(ns) {
    if (ns <= 0) return;
    if (ns < 50_000) {
      // Atomics.wait cannot sleep less than about 50 µs; spin for short delays.
      const until = realClock.nowNs() + ns;
      while (realClock.nowNs() < until);
      return;
    }
    Atomics.wait(sleeper, 0, 0, ns / 1e6);
  },
};

/** A clock that only moves when told to: sleeping advances it. */
export class ManualClock implements Clock {
  constructor(private t = 0) {}
  nowNs(): number {
    return this.t;
  }
  sleepNs(ns: number): void {
    if (ns > 0) this.t += ns;
  }
  advance(ns: number): void {
    this.t += ns;
  }
  set(ns: number): void {
    this.t = ns;
  }
}
