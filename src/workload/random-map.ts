/**
 * fio's random map (lib/axmap.c, re-implemented): one bit per block saying
 * whether this pass has done I/O to it, with summary levels above it (a bit
 * per full word of the level below) so finding the next free block costs
 * O(log32 n) instead of a scan. Bits past the end of each level are kept
 * set, so "word full" is simply "word === 0xffffffff".
 */
export class RandomMap {
  readonly size: number;
  private readonly levels: Uint32Array[];
  private readonly levelBits: number[];
  private free: number;

  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 1 || size > 2 ** 32) {
      throw new RangeError(`RandomMap size must be an integer from 1 to 2^32, got ${size}`);
    }
    this.size = size;
    this.levels = [];
    this.levelBits = [];
    let bits = size;
    for (;;) {
      const words = Math.ceil(bits / 32);
      this.levels.push(new Uint32Array(words));
      this.levelBits.push(bits);
      if (words === 1) break;
      bits = words;
    }
    this.free = size;
    this.padEnds();
  }

  /** Blocks not yet marked in this pass. */
  get freeCount(): number {
    return this.free;
  }

  /** Clears every block: a new pass. */
  reset(): void {
    for (const l of this.levels) l.fill(0);
    this.free = this.size;
    this.padEnds();
  }

  isSet(i: number): boolean {
    return (this.levels[0]![i >>> 5]! & (1 << (i & 31))) !== 0;
  }

  /**
   * Marks up to `count` blocks from `i` on, stopping at the first one already
   * marked (fio's axmap_set_nr); returns how many it marked.
   */
  setRun(i: number, count: number): number {
    const end = Math.min(this.size, i + count);
    let n = 0;
    for (let b = i; b < end; b++) {
      if (this.isSet(b)) break;
      this.setBit(0, b);
      n++;
    }
    this.free -= n;
    return n;
  }

  /** The first free block at or after `i`, or -1 (no wrap-around; the caller decides). */
  nextFree(i: number): number {
    if (i >= this.size) return -1;
    return this.findClear(0, i);
  }

  private setBit(level: number, bit: number): void {
    const words = this.levels[level]!;
    const w = bit >>> 5;
    const v = (words[w]! | (1 << (bit & 31))) >>> 0;
    words[w] = v;
    if (v === 0xffffffff && level + 1 < this.levels.length) this.setBit(level + 1, w);
  }

  private findClear(level: number, bit: number): number {
    const words = this.levels[level]!;
    if (bit >= this.levelBits[level]!) return -1;
    const w = bit >>> 5;
    const m = ~words[w]! & (0xffffffff << (bit & 31));
    if (m !== 0) return w * 32 + ctz(m);
    if (level + 1 >= this.levels.length) return -1;
    const nw = this.findClear(level + 1, w + 1);
    if (nw < 0) return -1;
    return nw * 32 + ctz(~words[nw]!);
  }

  private padEnds(): void {
    for (let l = 0; l < this.levels.length; l++) {
      const bits = this.levelBits[l]!;
      const words = this.levels[l]!;
      const used = bits & 31;
      if (used !== 0) {
        const last = words.length - 1;
        words[last] = (words[last]! | (0xffffffff << used)) >>> 0;
        if (words[last] === 0xffffffff && l + 1 < this.levels.length) this.setBit(l + 1, last);
      }
    }
  }
}

function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}
