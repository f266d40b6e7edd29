/**
 * The remap table: main-device unit -> spare-device unit, for any number of
 * remaps, shared by every thread that does I/O.
 *
 * Layout (no object per entry; everything in SharedArrayBuffers):
 *   - slots: one Float64Array of [key, value] pairs, open addressing with
 *     linear probing (EMPTY / TOMBSTONE keys). Key and value share a cache
 *     line, so a lookup costs one memory access at any size: at 1e6 entries
 *     the table is ~20 MB and a random access misses every cache, so the
 *     number of dependent misses per lookup is what sets the speed.
 *     Load factor stays in [0.68, 0.85] (growth x1.25): 18.8-23.5 bytes/entry.
 *   - two summary bitmaps over the key space: `fine`, one bit per chunk of
 *     2^fineShift keys (1 up to 2^26 keys, 8 at 2^29, 64 at 2^32), set
 *     exactly when the chunk holds a remap; `coarse`, one bit per 8 fine
 *     chunks or more, small enough (<= 1 MiB) to stay in cache. A point
 *     lookup asks the fine bit only when the key's home slot holds another
 *     key; a range query walks coarse then fine bits, so a request over clean
 *     space costs one or two bit tests whatever its length. Their size is
 *     fixed by the key space (<= 9 MiB in all), not by the number of entries.
 *     A table no other thread holds makes them only when it outgrows its
 *     first 64 slots or is shared (bitmaps over 64 KiB): until then a range
 *     query scans those slots. The simulator loads a table over a 4 TB drive
 *     at every reboot, mostly with a handful of entries; 9 MiB of zeroed
 *     bitmaps each time cost two thirds of a campaign's CPU time.
 *     Slots and the fine bitmap ask for transparent huge pages (random
 *     lookups miss the TLB less: ~46 -> ~34 ns a load).
 *
 * Concurrency: one writer at a time (a lock word taken with Atomics). Readers
 * take no lock and make no Atomics call (one costs ~11 ns on Node 20, more
 * than the lookup): every change a reader can observe is a single aligned
 * 8-byte store, ordered so that each intermediate state is a valid table:
 *   insert  = value, then key (a reader that sees the key sees the value);
 *   update  = value;    delete = key := TOMBSTONE.
 * Entries never move within a generation. Growth builds a new generation in a
 * new buffer, posts it on a BroadcastChannel, then bumps the shared generation
 * number; a reader that sees the new number takes the buffer synchronously
 * (receiveMessageOnPort), so a lookup that is causally after an insert (the
 * engine's queues synchronise through Atomics) always sees it. A thread that
 * attaches after some generations were posted asks for the current one
 * ('need'); any thread holding it answers from its event loop.
 */
import { BroadcastChannel, receiveMessageOnPort } from 'node:worker_threads';
import { adviseHugePages } from '../sys/huge-pages.js';

const EMPTY = -1;
/** firstFrom's answers besides a key: nothing in the range, or something (an exact chunk, key not looked up). */
const NONE = -1;
const SOME = -2;
const TOMBSTONE = -2;
const MAX_LOAD = 0.85;
const TARGET_LOAD = 0.68;
const MIN_CAPACITY = 64;
const MAX_FINE_BITS = 2 ** 26;
const MAX_COARSE_BITS = 2 ** 23;
/** Fine chunks up to this many keys are kept exact on delete (a delete rescans its chunk). */
const EXACT_FINE_KEYS = 4096;
/** Summaries at most this big are made with the table; bigger ones when it outgrows MIN_CAPACITY or is shared. */
const EAGER_SUMMARY_BYTES = 64 * 1024;

// hdr Int32 slots
const LOCK = 0;
const GEN = 1;
const LIVE = 2;
const USED = 3; // live + tombstones
const HDR_INTS = 4;

export interface RemapTableShared {
  hdr: SharedArrayBuffer;
  fine: SharedArrayBuffer;
  coarse: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  gen: number;
  keySpace: number;
  channel: string;
}

export interface RemapTableOptions {
  /** Keys are in [0, keySpace): the device size in remap units. */
  keySpace: number;
}

type ChannelMessage = { type: 'gen'; gen: number; slots: SharedArrayBuffer } | { type: 'need'; gen: number };

/** How long a thread that joins late waits for another thread to hand it the current generation. */
const JOIN_TIMEOUT_MS = 10_000;
const joinSleeper = new Int32Array(new SharedArrayBuffer(4));

let channelCounter = 0;

function hashSlot(key: number, capacity: number): number {
  const lo = key >>> 0;
  const hi = (key / 4294967296) >>> 0;
  const h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> 0;
  // fastrange: a uniform slot in [0, capacity) without a division
  return Math.floor((h * capacity) / 4294967296);
}

function newSlots(capacity: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(capacity * 16);
  adviseHugePages(sab); // before the fill touches the pages
  new Float64Array(sab).fill(EMPTY);
  return sab;
}

export class RemapTable {
  readonly keySpace: number;
  /** log2 of the keys one fine / coarse summary bit covers. */
  fineShift: number;
  coarseShift: number;
  private fineSize: number;
  private coarseSize: number;
  private readonly hdr: Int32Array;
  private fine: Int32Array;
  private coarse: Int32Array;
  private fineInv: number;
  private coarseInv: number;
  private readonly channelName: string;
  private channel: BroadcastChannel | undefined;
  private slotsSab: SharedArrayBuffer;
  private slots: Float64Array;
  private capacity: number;
  private gen: number;
  /**
   * Coarse summary words this instance set bits in, while it is the table's
   * only writer (never shared with another thread): clear() zeroes just those.
   * Once shared, undefined: clear() scans the coarse bitmap.
   */
  private ownWords: Set<number> | undefined = new Set();
  /** False while a private table over a big key space defers its summaries (see the top). */
  private summarized: boolean;
  private fineSab: SharedArrayBuffer;
  private coarseSab: SharedArrayBuffer;
  private readonly hdrSab: SharedArrayBuffer;

  constructor(opts: RemapTableOptions | RemapTableShared) {
    if ('hdr' in opts) {
      this.hdrSab = opts.hdr;
      this.fineSab = opts.fine;
      this.coarseSab = opts.coarse;
      this.keySpace = opts.keySpace;
      this.channelName = opts.channel;
      this.slotsSab = opts.slots;
      this.gen = opts.gen;
    } else {
      const keySpace = opts.keySpace;
      if (!Number.isSafeInteger(keySpace) || keySpace < 1) throw new RangeError(`keySpace must be a positive integer below 2^53, got ${keySpace}`);
      this.keySpace = keySpace;
      this.hdrSab = new SharedArrayBuffer(HDR_INTS * 4);
      this.channelName = `remapsim-table-${process.pid}-${Date.now()}-${channelCounter++}`;
      this.slotsSab = newSlots(MIN_CAPACITY);
      this.gen = 0;
      // deferred: one summary bit for every key, always set, so get() walks on as it would past a set bit
      this.fineSab = this.coarseSab = new SharedArrayBuffer(4);
      new Int32Array(this.fineSab)[0] = -1;
    }
    this.hdr = new Int32Array(this.hdrSab);
    this.fine = new Int32Array(this.fineSab);
    this.coarse = new Int32Array(this.coarseSab);
    this.fineShift = this.coarseShift = 0;
    this.fineSize = this.coarseSize = 1;
    this.fineInv = this.coarseInv = 0;
    this.summarized = false;
    if ('hdr' in opts || summaryBytesFor(this.keySpace) <= EAGER_SUMMARY_BYTES) this.summarize('hdr' in opts ? opts : undefined);
    this.slots = new Float64Array(this.slotsSab);
    this.capacity = this.slots.length >>> 1;
    if ('hdr' in opts) {
      this.openChannel();
      if (Atomics.load(this.hdr, GEN) !== this.gen) this.adopt();
    }
  }

  /** The shared memory, to hand to another thread: `new RemapTable(table.shared)` there. */
  get shared(): RemapTableShared {
    if (!this.summarized) this.summarize();
    this.openChannel();
    if (this.hdr[GEN] !== this.gen) this.adopt();
    return {
      hdr: this.hdrSab,
      fine: this.fineSab,
      coarse: this.coarseSab,
      slots: this.slotsSab,
      gen: this.gen,
      keySpace: this.keySpace,
      channel: this.channelName,
    };
  }

  /** Live entries. */
  get size(): number {
    return Atomics.load(this.hdr, LIVE);
  }

  /** Bytes the entries take (the slots). */
  get entryBytes(): number {
    if (this.hdr[GEN] !== this.gen) this.adopt();
    return this.slotsSab.byteLength;
  }

  /** Bytes of the range summaries: fixed by the key space (0 while deferred). */
  get summaryBytes(): number {
    return this.summarized ? this.fineSab.byteLength + this.coarseSab.byteLength : 0;
  }

  /** Makes the summary bitmaps (or takes another thread's), setting the bits of the keys already in. */
  private summarize(from?: RemapTableShared): void {
    const { fineShift, coarseShift } = summaryShifts(this.keySpace);
    if (from) {
      this.fineSab = from.fine;
      this.coarseSab = from.coarse;
    } else {
      this.fineSab = new SharedArrayBuffer(Math.ceil(this.keySpace / 2 ** fineShift / 32) * 4);
      adviseHugePages(this.fineSab);
      this.coarseSab = new SharedArrayBuffer(Math.ceil(this.keySpace / 2 ** coarseShift / 32) * 4);
    }
    this.fine = new Int32Array(this.fineSab);
    this.coarse = new Int32Array(this.coarseSab);
    this.fineShift = fineShift;
    this.coarseShift = coarseShift;
    this.fineSize = 2 ** fineShift;
    this.coarseSize = 2 ** coarseShift;
    this.fineInv = 2 ** -fineShift;
    this.coarseInv = 2 ** -coarseShift;
    this.summarized = true;
    if (from) return;
    const slots = this.slots;
    if (slots) for (let i = 0; i < slots.length; i += 2) if (slots[i] >= 0) this.markSummary(slots[i]);
  }

  /**
   * The spare unit `key` is remapped to, or -1. The key's home slot settles
   * most lookups (one memory access); only when another key sits there does
   * the fine summary bit get asked before walking on, because a miss walks
   * ~5 slots and the loop's exit branch mispredicts on data still in flight.
   * (Testing the bit first would cost every hit another access, +7-14 ns.)
   * The probe is written out rather than called: this is the model's
   * hottest call.
   */
  get(key: number): number {
    if (this.hdr[GEN] !== this.gen) this.adopt();
    const slots = this.slots;
    let i = hashSlot(key, this.capacity) << 1;
    let k = slots[i];
    if (k === key) return slots[i + 1];
    if (k === EMPTY) return -1;
    const f = Math.floor(key * this.fineInv);
    if ((this.fine[f >>> 5] & (1 << (f & 31))) === 0) return -1;
    const end = slots.length;
    for (;;) {
      i += 2;
      if (i === end) i = 0;
      k = slots[i];
      if (k === key) return slots[i + 1];
      if (k === EMPTY) return -1;
    }
  }

  /**
   * Bit i set when key from + i (count <= 32) lies in a chunk the fine
   * summary marks: the only keys of a short range that can be remapped. A
   * short range's chunks share a word or two of the summary, so one access
   * spares a slot lookup (a cache miss in a big table) for each clean key.
   * Every bit without summaries.
   */
  markedMask(from: number, count: number): number {
    if (this.hdr[GEN] !== this.gen) this.adopt();
    if (!this.summarized) return count >= 32 ? -1 : (1 << count) - 1;
    const fine = this.fine;
    let mask = 0;
    for (let i = 0; i < count; i++) {
      const f = Math.floor((from + i) * this.fineInv);
      if ((fine[f >>> 5] & (1 << (f & 31))) !== 0) mask |= 1 << i;
    }
    return mask;
  }

  has(key: number): boolean {
    return this.get(key) >= 0;
  }

  /** The slot lookup without the summary test. */
  private probe(key: number): number {
    const slots = this.slots;
    const end = slots.length;
    let i = hashSlot(key, this.capacity) << 1;
    for (;;) {
      const k = slots[i];
      if (k === key) return slots[i + 1];
      if (k === EMPTY) return -1;
      i += 2;
      if (i === end) i = 0;
    }
  }

  /** True when some key in [from, from + count) is remapped. */
  anyInRange(from: number, count: number): boolean {
    if (this.hdr[GEN] !== this.gen) this.adopt();
    if (count <= 0) return false;
    if (!this.summarized) return this.scanFrom(from, Math.min(from + count, this.keySpace)) !== NONE;
    // the common case on the data path: a short request over clean space, one coarse bit
    const last = from + count - 1;
    const c = Math.floor(from * this.coarseInv);
    if (c === Math.floor(last * this.coarseInv)) {
      if ((this.coarse[c >>> 5] & (1 << (c & 31))) === 0) return false;
      // fine bits within one word (a 4 KiB request of 512-byte units is 8 bits or fewer): one mask
      const f0 = Math.floor(from * this.fineInv);
      const f1 = Math.floor(last * this.fineInv);
      if (f0 >>> 5 === f1 >>> 5) {
        const lo = f0 & 31;
        const mask = ((f1 & 31) === 31 ? -1 : (1 << ((f1 & 31) + 1)) - 1) & ~((1 << lo) - 1);
        if ((this.fine[f0 >>> 5] & mask) === 0) return false;
        // the range covers its chunks whole and their bits are exact: a set bit is a remap in range
        const fineSize = this.fineSize;
        if (fineSize <= EXACT_FINE_KEYS && from === f0 * fineSize && last + 1 === (f1 + 1) * fineSize) return true;
      }
    }
    return this.firstFrom(from, Math.min(from + count, this.keySpace), true) !== NONE;
  }

  /** Calls fn(key, value) for each remapped key in [from, from + count), in key order; fn may return true to stop. */
  forEachInRange(from: number, count: number, fn: (key: number, value: number) => boolean | void): void {
    if (this.hdr[GEN] !== this.gen) this.adopt();
    const end = Math.min(from + count, this.keySpace);
    for (let k = this.firstFrom(from, end, false); k !== NONE; k = this.firstFrom(k + 1, end, false)) {
      const v = this.probe(k);
      if (v >= 0 && fn(k, v) === true) return;
    }
  }

  /** The first remapped key in [from, from + count), or -1. */
  firstInRange(from: number, count: number): number {
    if (this.hdr[GEN] !== this.gen) this.adopt();
    return this.firstFrom(from, Math.min(from + count, this.keySpace), false);
  }

  /**
   * Walks the summaries over [from, end): the first remapped key, or NONE.
   * With `existence`, a fine chunk that lies wholly inside the range and is
   * known exact answers SOME without any lookup.
   */
  private firstFrom(from: number, end: number, existence: boolean): number {
    if (from >= end) return NONE;
    if (!this.summarized) return this.scanFrom(from, end);
    const fineSize = this.fineSize;
    const coarseSize = this.coarseSize;
    const exact = existence && fineSize <= EXACT_FINE_KEYS;
    const coarse = this.coarse;
    const fine = this.fine;
    const lastC = Math.floor((end - 1) * this.coarseInv);
    for (let c = Math.floor(from * this.coarseInv); c <= lastC; c++) {
      if ((coarse[c >>> 5] & (1 << (c & 31))) === 0) {
        if (coarse[c >>> 5] === 0) c |= 31; // the whole word is clear
        continue;
      }
      const cLo = Math.max(from, c * coarseSize);
      const cHi = Math.min(end, (c + 1) * coarseSize);
      const lastF = Math.floor((cHi - 1) * this.fineInv);
      for (let f = Math.floor(cLo * this.fineInv); f <= lastF; f++) {
        if ((fine[f >>> 5] & (1 << (f & 31))) === 0) {
          if (fine[f >>> 5] === 0) f |= 31; // the whole word is clear
          continue;
        }
        const lo = Math.max(cLo, f * fineSize);
        const hi = Math.min(cHi, (f + 1) * fineSize);
        if (exact && lo === f * fineSize && hi === (f + 1) * fineSize) return SOME;
        for (let k = lo; k < hi; k++) if (this.probe(k) >= 0) return k;
      }
    }
    return NONE;
  }

  /** Without summaries: the smallest key in [from, end), from the (at most MIN_CAPACITY) slots. */
  private scanFrom(from: number, end: number): number {
    if (this.hdr[LIVE] === 0) return NONE; // a new device's table: no scan of its empty slots
    const slots = this.slots;
    let best = NONE;
    for (let i = 0; i < slots.length; i += 2) {
      const k = slots[i];
      if (k >= from && k < end && (best === NONE || k < best)) best = k;
    }
    return best;
  }

  /** Adds or replaces a remap. */
  set(key: number, value: number): void {
    this.checkKey(key);
    checkValue(value);
    this.locked(() => this.insert(key, value));
  }

  /** Adds many remaps under one lock (growing once). */
  setMany(keys: ArrayLike<number>, values: ArrayLike<number>): void {
    if (keys.length !== values.length) throw new RangeError('setMany: keys and values differ in length');
    for (let i = 0; i < keys.length; i++) {
      this.checkKey(keys[i]);
      checkValue(values[i]);
    }
    this.locked(() => {
      this.reserve(this.hdr[LIVE] + keys.length);
      for (let i = 0; i < keys.length; i++) this.insert(keys[i], values[i]);
    });
  }

  /**
   * Replaces the value of `key` with fn(old) (old is -1 when absent), under
   * the writer lock, so concurrent updates of one key do not lose each other;
   * fn returning -1 deletes the key. Returns the new value (-1 when absent).
   */
  update(key: number, fn: (old: number) => number): number {
    this.checkKey(key);
    let result = -1;
    this.locked(() => {
      const i = this.find(key);
      const old = i < 0 ? -1 : this.slots[i + 1];
      result = fn(old);
      if (result < 0) {
        if (i >= 0) {
          this.slots[i] = TOMBSTONE;
          Atomics.sub(this.hdr, LIVE, 1);
          this.clearSummaryIfEmpty(key);
        }
      } else {
        checkValue(result);
        if (i >= 0) this.slots[i + 1] = result;
        else this.insert(key, result);
      }
    });
    return result;
  }

  /** Removes a remap; returns the spare unit it had, or -1. */
  delete(key: number): number {
    let old = -1;
    this.locked(() => {
      const i = this.find(key);
      if (i < 0) return;
      old = this.slots[i + 1];
      this.slots[i] = TOMBSTONE;
      Atomics.sub(this.hdr, LIVE, 1);
      this.clearSummaryIfEmpty(key);
    });
    return old;
  }

  clear(): void {
    this.locked(() => {
      this.publish(newSlots(MIN_CAPACITY));
      Atomics.store(this.hdr, LIVE, 0);
      Atomics.store(this.hdr, USED, 0);
      this.clearSummaries();
    });
  }

  /**
   * Zeroes the summary bits. A fine bit is only ever set with its coarse bit,
   * so only the fine words under set coarse bits are written, and a table no
   * other thread writes knows which coarse words it set: a table over a big
   * device that holds a few remaps (a dm-remap-v4 presuspend) is cleared in
   * microseconds instead of writing, and faulting in, 9 MiB of bitmaps.
   */
  private clearSummaries(): void {
    if (!this.summarized) return;
    const coarse = this.coarse;
    const fine = this.fine;
    const perCoarse = 2 ** (this.coarseShift - this.fineShift);
    const clearWord = (w: number): void => {
      let bits = coarse[w];
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits);
        bits &= ~(1 << b);
        const c = w * 32 + b;
        fine.fill(0, Math.floor((c * perCoarse) / 32), Math.floor(((c + 1) * perCoarse - 1) / 32) + 1);
      }
      coarse[w] = 0;
    };
    if (this.ownWords) {
      for (const w of this.ownWords) clearWord(w);
      this.ownWords.clear();
      return;
    }
    for (let w = 0; w < coarse.length; w++) if (coarse[w] !== 0) clearWord(w);
  }

  /** Calls fn for every live entry, in key order. */
  forEach(fn: (key: number, value: number) => void): void {
    const { keys, values } = this.snapshot();
    for (let i = 0; i < keys.length; i++) fn(keys[i], values[i]);
  }

  /** All live entries sorted by key. Consistent when no writer runs at the same time. */
  snapshot(): { keys: Float64Array; values: Float64Array } {
    if (this.hdr[GEN] !== this.gen) this.adopt();
    const slots = this.slots;
    const pairs: Array<[number, number]> = [];
    for (let i = 0; i < slots.length; i += 2) if (slots[i] >= 0) pairs.push([slots[i], slots[i + 1]]);
    pairs.sort((a, b) => a[0] - b[0]);
    const keys = new Float64Array(pairs.length);
    const values = new Float64Array(pairs.length);
    pairs.forEach(([k, v], i) => {
      keys[i] = k;
      values[i] = v;
    });
    return { keys, values };
  }

  /** Stop listening for other threads' updates (lets the process exit). */
  close(): void {
    this.channel?.close();
    this.channel = undefined;
  }

  // ---- internals ----

  private checkKey(key: number): void {
    if (!Number.isSafeInteger(key) || key < 0 || key >= this.keySpace) {
      throw new RangeError(`remap key must be an integer in [0, ${this.keySpace}), got ${key}`);
    }
  }

  private openChannel(): void {
    this.ownWords = undefined;
    if (this.channel) return;
    const channel = new BroadcastChannel(this.channelName);
    channel.onmessage = (ev) => this.onChannelMessage((ev as { data: ChannelMessage }).data);
    (channel as unknown as { unref(): void }).unref();
    this.channel = channel;
  }

  private onChannelMessage(m: ChannelMessage): void {
    if (m.type === 'gen') {
      if (m.gen > this.gen) this.useSlots(m.slots, m.gen);
    } else if (m.gen <= this.gen && this.gen === Atomics.load(this.hdr, GEN)) {
      this.channel?.postMessage({ type: 'gen', gen: this.gen, slots: this.slotsSab } satisfies ChannelMessage);
    }
  }

  /** Takes the newest generation another thread published. */
  private adopt(): void {
    this.openChannel();
    let want = Atomics.load(this.hdr, GEN);
    let asked = false;
    const deadline = Date.now() + JOIN_TIMEOUT_MS;
    while (this.gen !== want) {
      const m = receiveMessageOnPort(this.channel as never) as { message: ChannelMessage } | undefined;
      if (m) {
        this.onChannelMessage(m.message);
      } else if (!asked) {
        // posted before this thread listened: ask whoever holds it
        this.channel!.postMessage({ type: 'need', gen: want } satisfies ChannelMessage);
        asked = true;
      } else {
        if (Date.now() > deadline)
          throw new Error(`remap table: generation ${want} was not handed over within ${JOIN_TIMEOUT_MS} ms (is the thread that owns the table blocked?)`);
        Atomics.wait(joinSleeper, 0, 0, 1);
      }
      want = Atomics.load(this.hdr, GEN);
    }
  }

  private useSlots(sab: SharedArrayBuffer, gen: number): void {
    this.slotsSab = sab;
    this.slots = new Float64Array(sab);
    this.capacity = this.slots.length >>> 1;
    this.gen = gen;
  }

  private locked(fn: () => void): void {
    const hdr = this.hdr;
    while (Atomics.compareExchange(hdr, LOCK, 0, 1) !== 0) Atomics.wait(hdr, LOCK, 1, 1);
    try {
      if (hdr[GEN] !== this.gen) this.adopt();
      fn();
    } finally {
      Atomics.store(hdr, LOCK, 0);
      Atomics.notify(hdr, LOCK, 1);
    }
  }

  /** Slot index (even) of a live key, or -1. */
  private find(key: number): number {
    const slots = this.slots;
    const end = slots.length;
    let i = hashSlot(key, this.capacity) << 1;
    for (;;) {
      const k = slots[i];
      if (k === key) return i;
      if (k === EMPTY) return -1;
      i += 2;
      if (i === end) i = 0;
    }
  }

  private insert(key: number, value: number): void {
    const slots = this.slots;
    const end = slots.length;
    let i = hashSlot(key, this.capacity) << 1;
    let reuse = -1;
    for (;;) {
      const k = slots[i];
      if (k === key) {
        slots[i + 1] = value;
        return;
      }
      if (k === EMPTY) break;
      if (k === TOMBSTONE && reuse < 0) reuse = i;
      i += 2;
      if (i === end) i = 0;
    }
    if (reuse < 0 && this.hdr[USED] + 1 > this.capacity * MAX_LOAD) {
      // no room without passing the load limit: rebuild (which also drops tombstones), then insert there
      this.rebuild(this.hdr[LIVE] + 1);
      this.insert(key, value);
      return;
    }
    const at = reuse >= 0 ? reuse : i;
    this.markSummary(key);
    slots[at + 1] = value;
    slots[at] = key;
    Atomics.add(this.hdr, LIVE, 1);
    if (reuse < 0) Atomics.add(this.hdr, USED, 1);
  }

  /** Rebuilds into a new generation when `live` entries would exceed the load limit. */
  private reserve(live: number): void {
    if (live <= this.capacity * MAX_LOAD && this.hdr[USED] <= this.capacity * MAX_LOAD) return;
    this.rebuild(live);
  }

  /** A new generation sized for `live` entries at the target load, without tombstones. */
  private rebuild(live: number): void {
    const capacity = Math.max(MIN_CAPACITY, Math.ceil(live / TARGET_LOAD));
    if (!this.summarized && capacity > MIN_CAPACITY) this.summarize();
    const sab = newSlots(capacity);
    const next = new Float64Array(sab);
    const old = this.slots;
    for (let j = 0; j < old.length; j += 2) {
      const k = old[j];
      if (k < 0) continue;
      let i = hashSlot(k, capacity) << 1;
      while (next[i] !== EMPTY) {
        i += 2;
        if (i === next.length) i = 0;
      }
      next[i] = k;
      next[i + 1] = old[j + 1];
    }
    this.publish(sab);
    Atomics.store(this.hdr, USED, this.hdr[LIVE]);
  }

  /** Summary bits are set before the slot is written, so a reader never skips a visible key. */
  private markSummary(key: number): void {
    if (!this.summarized) return;
    const f = Math.floor(key * this.fineInv);
    const c = Math.floor(key * this.coarseInv);
    Atomics.or(this.fine, f >>> 5, 1 << (f & 31));
    Atomics.or(this.coarse, c >>> 5, 1 << (c & 31));
    this.ownWords?.add(c >>> 5);
  }

  private clearSummaryIfEmpty(key: number): void {
    if (!this.summarized) return;
    const fineSize = this.fineSize;
    if (fineSize > EXACT_FINE_KEYS) return; // too big to rescan: the bit stays set (still correct, only slower)
    const f = Math.floor(key * this.fineInv);
    for (let k = f * fineSize, end = Math.min(this.keySpace, k + fineSize); k < end; k++) if (this.probe(k) >= 0) return;
    Atomics.and(this.fine, f >>> 5, ~(1 << (f & 31)));
    const c = Math.floor(key * this.coarseInv);
    const perCoarse = 2 ** (this.coarseShift - this.fineShift);
    const f0 = c * perCoarse;
    for (let g = f0; g < f0 + perCoarse; g++) if ((this.fine[g >>> 5] & (1 << (g & 31))) !== 0) return;
    Atomics.and(this.coarse, c >>> 5, ~(1 << (c & 31)));
  }

  private publish(sab: SharedArrayBuffer): void {
    const gen = this.gen + 1;
    if (this.channel) this.channel.postMessage({ type: 'gen', gen, slots: sab } satisfies ChannelMessage);
    this.useSlots(sab, gen);
    Atomics.store(this.hdr, GEN, gen);
  }
}

function summaryBytesFor(keySpace: number): number {
  const { fineShift, coarseShift } = summaryShifts(keySpace);
  return (Math.ceil(keySpace / 2 ** fineShift / 32) + Math.ceil(keySpace / 2 ** coarseShift / 32)) * 4;
}

function summaryShifts(keySpace: number): { fineShift: number; coarseShift: number } {
  // as fine as an 8 MiB bitmap allows: one bit per key up to 2^26 keys (a miss is then answered
  // by its bit, and splitting a request needs no lookups for the blocks that are not remapped),
  // 8 keys a bit at 2^29, 64 at 2^32
  const fineShift = Math.max(0, Math.ceil(Math.log2(keySpace / MAX_FINE_BITS)));
  const coarseShift = Math.max(fineShift + 3, Math.ceil(Math.log2(keySpace / MAX_COARSE_BITS)));
  return { fineShift, coarseShift };
}

function checkValue(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`remap value must be an integer in [0, 2^53), got ${value}`);
}
