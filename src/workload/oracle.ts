/**
 * The verification oracle: for every verify unit of a region it knows whether
 * it was never written, holds an acknowledged write (which generation), holds
 * the result of a failed write (content unknown), or was trimmed; each read
 * is classified against that.
 *
 * Read classes (counted in units):
 *   ok               the acknowledged content (or zeroes where nothing was written)
 *   stale            an older acknowledged version of the same unit, intact
 *   lost             zeroes where acknowledged data should be
 *   corrupt          anything else: another unit's data, foreign bytes, a bad checksum
 *   expectedError    a read error on a request that covers a known-bad sector
 *   unexpectedError  a read error on a request that covers none
 *   unjudged         a unit whose last write failed: any content is acceptable
 */
import { type BlockDevice, OK, SECTOR_SIZE } from '../block/device.js';
import type { VerifyPattern } from './verify-pattern.js';

const NEVER = 0;
const ACKED = 1;
const UNKNOWN = 2;
const TRIMMED = 3;

export const READ_CLASSES = ['ok', 'stale', 'lost', 'corrupt', 'expectedError', 'unexpectedError', 'unjudged'] as const;
export type ReadClass = (typeof READ_CLASSES)[number];
/** The classes that mean the device lost or damaged acknowledged data, or failed without cause. */
export const FINDING_CLASSES: readonly ReadClass[] = ['stale', 'lost', 'corrupt', 'unexpectedError'];

/** The oracle's per-unit state in shared memory, so worker threads judge against one truth. */
export interface OracleShared {
  state: SharedArrayBuffer;
  issuedGen: SharedArrayBuffer;
  ackedGen: SharedArrayBuffer;
  /** 1 while a request covering the unit is in flight. */
  busy: SharedArrayBuffer;
}

export interface OracleOptions {
  pattern: VerifyPattern;
  /** Attach to another thread's oracle state instead of starting empty. */
  shared?: OracleShared;
  /** Units in the region. */
  units: number;
  /** Device sector of unit 0. */
  baseSector?: number;
  /** True when [sector, sector + count) holds a sector the fault layers know to be bad. */
  isKnownBad?: (sector: number, count: number) => boolean;
  /** How many sectors of each class the report keeps (default 20). */
  keepFirst?: number;
}

export interface OracleReport {
  unitSize: number;
  units: number;
  writes: { acknowledged: number; failed: number };
  trims: number;
  reads: Record<ReadClass, number>;
  /** First distinct sectors (device sectors) of each class, in the order they were found. */
  first: Record<ReadClass, number[]>;
  /** Why units were judged corrupt (reason -> count). */
  corruptReasons: Record<string, number>;
  /** Units whose acknowledged data is unaccounted for after the final pass (lost, stale, corrupt or unreadable). */
  findings: number;
}

export class Oracle {
  readonly pattern: VerifyPattern;
  readonly units: number;
  readonly unitSize: number;
  readonly unitSectors: number;
  readonly baseSector: number;
  readonly shared: OracleShared;
  private readonly state: Uint8Array;
  private readonly issuedGen: Uint32Array;
  private readonly ackedGen: Uint32Array;
  private readonly busy: Uint8Array;
  private readonly isKnownBad: (sector: number, count: number) => boolean;
  private readonly keepFirst: number;
  private readonly counts = Object.fromEntries(READ_CLASSES.map((c) => [c, 0])) as Record<ReadClass, number>;
  private readonly first = Object.fromEntries(READ_CLASSES.map((c) => [c, [] as number[]])) as Record<ReadClass, number[]>;
  private readonly corruptReasons: Record<string, number> = {};
  private acknowledged = 0;
  private failed = 0;
  private trims = 0;

  constructor(opts: OracleOptions) {
    if (!Number.isSafeInteger(opts.units) || opts.units <= 0) throw new RangeError(`oracle: units must be a positive integer, got ${opts.units}`);
    this.pattern = opts.pattern;
    this.units = opts.units;
    this.unitSize = opts.pattern.unitSize;
    this.unitSectors = this.unitSize / SECTOR_SIZE;
    this.baseSector = opts.baseSector ?? 0;
    this.shared = opts.shared ?? {
      state: new SharedArrayBuffer(opts.units),
      issuedGen: new SharedArrayBuffer(opts.units * 4),
      ackedGen: new SharedArrayBuffer(opts.units * 4),
      busy: new SharedArrayBuffer(opts.units),
    };
    this.state = new Uint8Array(this.shared.state);
    this.issuedGen = new Uint32Array(this.shared.issuedGen);
    this.ackedGen = new Uint32Array(this.shared.ackedGen);
    this.busy = new Uint8Array(this.shared.busy);
    if (this.state.length !== opts.units) throw new RangeError(`oracle: shared state holds ${this.state.length} units, not ${opts.units}`);
    this.isKnownBad = opts.isKnownBad ?? (() => false);
    this.keepFirst = opts.keepFirst ?? 20;
  }

  sectorOf(unit: number): number {
    return this.baseSector + unit * this.unitSectors;
  }

  /** Fills `buf` (n units from unit0) with new generations of those units. */
  prepareWrite(unit0: number, buf: Uint8Array): void {
    const n = this.unitsIn(unit0, buf);
    for (let i = 0; i < n; i++) {
      const u = unit0 + i;
      const gen = Atomics.add(this.issuedGen, u, 1) + 1;
      this.pattern.fill(buf.subarray(i * this.unitSize, (i + 1) * this.unitSize), u, gen);
    }
  }

  completeWrite(unit0: number, n: number, status: number): void {
    for (let u = unit0; u < unit0 + n; u++) {
      if (status === OK) {
        this.state[u] = ACKED;
        this.ackedGen[u] = this.issuedGen[u];
      } else {
        this.state[u] = UNKNOWN;
      }
    }
    if (status === OK) this.acknowledged += n;
    else this.failed += n;
  }

  completeTrim(unit0: number, n: number, status: number): void {
    this.trims += n;
    for (let u = unit0; u < unit0 + n; u++) this.state[u] = status === OK ? TRIMMED : UNKNOWN;
  }

  /**
   * Judges a completed read of n units from unit0; counts go to the run's
   * totals and to `tally` (a job's own) when given. Returns the number of
   * units that are findings.
   */
  checkRead(unit0: number, buf: Uint8Array, status: number, tally?: Record<ReadClass, number>): number {
    const n = this.unitsIn(unit0, buf);
    let findings = 0;
    if (status !== OK) {
      const cls: ReadClass = this.isKnownBad(this.sectorOf(unit0), n * this.unitSectors) ? 'expectedError' : 'unexpectedError';
      for (let u = unit0; u < unit0 + n; u++) findings += this.note(this.state[u] === UNKNOWN ? 'unjudged' : cls, u, tally);
      return findings;
    }
    for (let i = 0; i < n; i++) findings += this.note(this.classify(unit0 + i, buf.subarray(i * this.unitSize, (i + 1) * this.unitSize)), unit0 + i, tally);
    return findings;
  }

  private classify(u: number, bytes: Uint8Array): ReadClass {
    const st = this.state[u];
    if (st === UNKNOWN) return 'unjudged';
    const verdict = this.pattern.judge(bytes, u, st === ACKED ? this.ackedGen[u] : 0);
    switch (verdict.kind) {
      case 'zero':
        return st === ACKED ? 'lost' : 'ok';
      case 'current':
        return 'ok';
      case 'older':
        return st === TRIMMED ? 'ok' : 'stale'; // a trim need not zero what it covers
      case 'corrupt':
        if (st === TRIMMED && verdict.reason === 'newer-generation') return 'ok';
        this.corruptReasons[verdict.reason] = (this.corruptReasons[verdict.reason] ?? 0) + 1;
        return 'corrupt';
    }
  }

  private note(cls: ReadClass, unit: number, tally?: Record<ReadClass, number>): number {
    this.counts[cls]++;
    if (tally) tally[cls]++;
    const list = this.first[cls];
    if (list.length < this.keepFirst) {
      const sector = this.sectorOf(unit);
      if (!list.includes(sector)) list.push(sector);
    }
    return FINDING_CLASSES.includes(cls) ? 1 : 0;
  }

  private unitsIn(unit0: number, buf: Uint8Array): number {
    const n = buf.length / this.unitSize;
    if (!Number.isInteger(n) || unit0 < 0 || unit0 + n > this.units) {
      throw new RangeError(`oracle: ${buf.length} bytes at unit ${unit0} do not fit whole units of ${this.unitSize} bytes in [0, ${this.units})`);
    }
    return n;
  }

  /**
   * Claims units [unit0, unit0+n) for one request, so that no two requests
   * in flight (in any thread) touch the same unit; false (claiming nothing)
   * when one is taken. The verdict of a read racing a write would mean nothing.
   */
  tryClaim(unit0: number, n: number): boolean {
    for (let u = unit0; u < unit0 + n; u++) {
      if (Atomics.compareExchange(this.busy, u, 0, 1) !== 0) {
        for (let v = unit0; v < u; v++) Atomics.store(this.busy, v, 0);
        return false;
      }
    }
    return true;
  }

  releaseClaim(unit0: number, n: number): void {
    for (let u = unit0; u < unit0 + n; u++) Atomics.store(this.busy, u, 0);
  }

  /** True when the unit holds acknowledged data. */
  isAcked(u: number): boolean {
    return this.state[u] === ACKED;
  }

  /**
   * Reads back every unit that was ever written, one unit per request, so
   * losses no random read happened to hit are found too. (One unit at a time
   * on purpose: a target that routes a request by its first sector, as
   * dm-remap-v4 does, must be judged on the requests the job makes, not on
   * larger ones the oracle would invent.)
   */
  finalPass(device: BlockDevice): void {
    const buf = new Uint8Array(this.unitSize);
    for (let u = 0; u < this.units; u++) {
      if (this.state[u] === NEVER) continue;
      this.checkRead(u, buf, device.read(this.sectorOf(u), buf));
    }
  }

  static emptyTally(): Record<ReadClass, number> {
    return Object.fromEntries(READ_CLASSES.map((c) => [c, 0])) as Record<ReadClass, number>;
  }

  /** Adds another thread's counts (its report) into this oracle's. */
  absorb(other: OracleReport): void {
    for (const c of READ_CLASSES) {
      this.counts[c] += other.reads[c];
      for (const s of other.first[c]) if (this.first[c].length < this.keepFirst && !this.first[c].includes(s)) this.first[c].push(s);
    }
    for (const [k, v] of Object.entries(other.corruptReasons)) this.corruptReasons[k] = (this.corruptReasons[k] ?? 0) + v;
    this.acknowledged += other.writes.acknowledged;
    this.failed += other.writes.failed;
    this.trims += other.trims;
  }

  report(): OracleReport {
    const findings = FINDING_CLASSES.reduce((a, c) => a + this.counts[c], 0);
    return {
      unitSize: this.unitSize,
      units: this.units,
      writes: { acknowledged: this.acknowledged, failed: this.failed },
      trims: this.trims,
      reads: { ...this.counts },
      first: Object.fromEntries(READ_CLASSES.map((c) => [c, [...this.first[c]]])) as Record<ReadClass, number[]>,
      corruptReasons: { ...this.corruptReasons },
      findings,
    };
  }
}
