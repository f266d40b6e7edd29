/**
 * The verification oracle (src/workload/oracle.ts) over the units a run
 * follows. A drive of a billion units has only a few whose state matters, so
 * each gets a slot when it first does, and the oracle judges slots. Oracles
 * are made in chunks of 4,096 slots as they fill; each chunk writes with its
 * own verify pattern (its own run id), so data of one chunk read where
 * another's was expected is judged corrupt, as misdirected data is within one.
 */
import { SECTOR_SIZE } from '../block/device.js';
import { Oracle, type ReadClass } from '../workload/oracle.js';
import { VerifyPattern } from '../workload/verify-pattern.js';

const CHUNK = 4096;

/** Patterns cost a 4 MiB pool each: made once per process and unit size, shared by every run. */
const patterns = new Map<string, VerifyPattern>();

function patternFor(unitSize: number, chunk: number): VerifyPattern {
  const key = `${unitSize}:${chunk}`;
  let p = patterns.get(key);
  if (!p) {
    p = new VerifyPattern({ unitSize, runId: 0x51300000 + chunk, seed: 0x5eed + chunk });
    patterns.set(key, p);
  }
  return p;
}

export class SlotOracle {
  readonly unitSectors: number;
  private readonly chunks: Oracle[] = [];
  private slots = 0;
  private readonly scratch: Uint8Array;
  private readonly tally = Oracle.emptyTally();

  constructor(
    readonly unitSize: number,
    /** Whether the device sectors of `slot`'s unit hold a sector the fault layers know to be bad. */
    private readonly knownBad: (slot: number) => boolean,
  ) {
    this.unitSectors = unitSize / SECTOR_SIZE;
    this.scratch = new Uint8Array(unitSize);
  }

  get size(): number {
    return this.slots;
  }

  private at(slot: number): { o: Oracle; local: number } {
    return { o: this.chunks[Math.floor(slot / CHUNK)]!, local: slot % CHUNK };
  }

  /** A new slot. */
  allocate(): number {
    const slot = this.slots++;
    const c = Math.floor(slot / CHUNK);
    if (c === this.chunks.length) {
      const base = c * CHUNK;
      this.chunks.push(
        new Oracle({
          pattern: patternFor(this.unitSize, c),
          units: CHUNK,
          isKnownBad: (sector) => this.knownBad(base + Math.floor(sector / this.unitSectors)),
          keepFirst: 0,
        }),
      );
    }
    return slot;
  }

  /** Issues the next generation of a slot's unit (for a write about to be made). */
  prepareWrite(slot: number): number {
    const { o, local } = this.at(slot);
    o.prepareWrite(local, this.scratch);
    return new DataView(this.scratch.buffer, 16, 4).getUint32(0, true);
  }

  completeWrite(slot: number, status: number): void {
    const { o, local } = this.at(slot);
    o.completeWrite(local, 1, status);
  }

  /** The bytes of generation `gen` of a slot's unit (valid until the next call). */
  unitBytes(slot: number, gen: number): Uint8Array {
    const c = Math.floor(slot / CHUNK);
    patternFor(this.unitSize, c).fill(this.scratch, slot % CHUNK, gen);
    return this.scratch;
  }

  isAcked(slot: number): boolean {
    const { o, local } = this.at(slot);
    return o.isAcked(local);
  }

  /** Judges one unit read back (its bytes, expanded from stamps) and returns its class. */
  judge(slot: number, bytes: Uint8Array, status: number): ReadClass {
    const { o, local } = this.at(slot);
    for (const k in this.tally) this.tally[k as ReadClass] = 0;
    o.checkRead(local, bytes, status, this.tally);
    for (const k in this.tally) if (this.tally[k as ReadClass] > 0) return k as ReadClass;
    return 'ok';
  }

  /** Counts per class over every chunk. */
  counts(): Record<ReadClass, number> {
    const out = Oracle.emptyTally();
    for (const o of this.chunks) {
      const r = o.report();
      for (const k in out) out[k as ReadClass] += r.reads[k as ReadClass];
    }
    return out;
  }

  /** Reasons of corrupt verdicts over every chunk. */
  corruptReasons(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const o of this.chunks) for (const [k, v] of Object.entries(o.report().corruptReasons)) out[k] = (out[k] ?? 0) + v;
    return out;
  }
}
