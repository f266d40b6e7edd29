/**
 * The verification oracle: for every verify unit of a region it knows whether
 * it was never written, holds an acknowledged write (which generation), holds
 * the result of a failed write (content unknown), or was trimmed; each read
 * is classified against that.
 *
 * Read classes (counted in units):
 *   ok               the acknowledged content (or zeroes where nothing was written)
 *   stale            an older acknowledged version of the same unit, intact
 *   lost             zeroes where acknowledged data should be; also every unit
 *                    written since the last good flush when a flush fails (the
 *                    kernel failed to write buffered data back)
 *   corrupt          anything else: another unit's data, foreign bytes, a bad checksum
 *   expectedError    a read error on a request that covers a known-bad sector
 *   unexpectedError  a read error on a request that covers none
 *   unjudged         a unit whose last write failed: any content is acceptable
 *   notWritten       a unit this run never wrote, on a device whose earlier
 *                    content is unknown (priorContent 'unknown'): whatever an
 *                    earlier run left there is not judged; this run's own data
 *                    found there still is (corrupt: misdirected)
 *
 * Durability: the oracle also knows, per unit, the newest generation known
 * durable (acknowledged before a flush that completed). A failed flush turns
 * the units written since the last good one into losses. An oracle restored
 * from a saved state (Oracle.restore) judges by the rules after a crash: any
 * generation from the newest durable on is acceptable.
 */
import { type BlockDevice, OK, SECTOR_SIZE } from '../block/device.js';
import { type KnownBadRanges, KnownBadSectors } from '../faults/known-bad.js';
import type { UnitPattern, UnitVerdict } from './verify-pattern.js';

/** A unit's state (one byte each, shared between threads and saved in verify-state files). */
export const UNIT_NEVER = 0;
export const UNIT_ACKED = 1;
/** Its last write failed: content unknown. */
export const UNIT_UNKNOWN = 2;
export const UNIT_TRIMMED = 3;
/** A flush after its last acknowledged write failed: the kernel did not write it back. */
export const UNIT_WRITEBACK_FAILED = 4;
const NEVER = UNIT_NEVER;
const ACKED = UNIT_ACKED;
const UNKNOWN = UNIT_UNKNOWN;
const TRIMMED = UNIT_TRIMMED;
const WB_FAILED = UNIT_WRITEBACK_FAILED;
/** Units the dirty list holds (4 MiB) before a flush falls back to looking at every unit. */
const DIRTY_LIST_MAX = 1 << 20;

export const READ_CLASSES = ['ok', 'stale', 'lost', 'corrupt', 'expectedError', 'unexpectedError', 'unjudged', 'notWritten'] as const;
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
  pattern: UnitPattern;
  /** Attach to another thread's oracle state instead of starting empty. */
  shared?: OracleShared;
  /** Units in the region. */
  units: number;
  /** Device sector of unit 0. */
  baseSector?: number;
  /** True when [sector, sector + count) holds a sector the fault layers know to be bad. */
  isKnownBad?: (sector: number, count: number) => boolean;
  /** Sectors known bad on a device the model does not own (a kernel stack's list, a mapfile); OR-ed with isKnownBad. */
  knownBad?: KnownBadSectors | KnownBadRanges;
  /**
   * What units this run never wrote hold: 'zeroes' (a device the run created;
   * the default) or 'unknown' (a file or device an earlier run may have
   * written): then they read as notWritten, never a finding.
   */
  priorContent?: PriorContent;
  /**
   * Track which units are durable, for flushDone (default: when not attached
   * to another thread's state; the thread that flushes keeps the books).
   */
  durability?: boolean;
  /** How many sectors of each class the report keeps (default 20). */
  keepFirst?: number;
}

export type PriorContent = 'zeroes' | 'unknown';

/** The per-unit state a verify-state file keeps: units that were ever written, ascending. */
export interface SavedUnits {
  unit: Float64Array;
  state: Uint8Array;
  /** Newest acknowledged generation. */
  acked: Uint32Array;
  /** Newest generation acknowledged before a flush that completed (0: none). */
  durable: Uint32Array;
}

export interface DurabilityReport {
  /** Flushes the run completed (the workload's and the final one). */
  flushes: number;
  failedFlushes: number;
  /** Units written since the last good flush when a flush failed: counted as lost. */
  writebackLost: number;
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
  /** verify_only: the first blocks that were not intact, and why (fio's words). */
  details?: string[];
  /** Units whose acknowledged data is unaccounted for after the final pass (lost, stale, corrupt or unreadable). */
  findings: number;
  /** What units the run never wrote were taken to hold (see OracleOptions.priorContent). */
  priorContent: PriorContent;
  durability: DurabilityReport;
}

export class Oracle {
  readonly pattern: UnitPattern;
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
  /** For worker threads: the sets OR-ed into isKnownBad. */
  readonly knownBad: KnownBadRanges | undefined;
  readonly priorContent: PriorContent;
  /** Newest durable generation per unit; undefined when this instance does not keep the books. */
  private readonly durableGen: Uint32Array | undefined;
  /** Units acknowledged since the last flush (dirty[0, nDirty)), each once (dirtyMark); at most DIRTY_LIST_MAX. */
  private readonly dirty: Uint32Array | undefined;
  private readonly dirtyMark: Uint8Array | undefined;
  private nDirty = 0;
  /** False once writes were made through other instances (absorb): flushDone then scans every unit. */
  private dirtyExact = true;
  /** Restored from a saved state: judge by the rules after a crash. */
  private afterCrash = false;
  private flushes = 0;
  private failedFlushes = 0;
  private writebackLost = 0;
  private readonly keepFirst: number;
  private readonly counts = Object.fromEntries(READ_CLASSES.map((c) => [c, 0])) as Record<ReadClass, number>;
  private readonly first = Object.fromEntries(READ_CLASSES.map((c) => [c, [] as number[]])) as Record<ReadClass, number[]>;
  private readonly corruptReasons: Record<string, number> = {};
  /** checkIntact's first problems, as fio words them. */
  private readonly details: string[] = [];
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
    const known =
      opts.knownBad === undefined ? undefined : opts.knownBad instanceof KnownBadSectors ? opts.knownBad : KnownBadSectors.fromShared(opts.knownBad);
    this.knownBad = known?.ranges;
    const layers = opts.isKnownBad;
    this.isKnownBad = known && layers ? (s, n) => layers(s, n) || known.covers(s, n) : known ? (s, n) => known.covers(s, n) : (layers ?? (() => false));
    this.priorContent = opts.priorContent ?? 'zeroes';
    if (opts.durability ?? opts.shared === undefined) {
      if (opts.units > 0xffffffff) throw new RangeError(`oracle: at most ${0xffffffff} units when tracking durability, got ${opts.units}`);
      this.durableGen = new Uint32Array(opts.units);
      this.dirty = new Uint32Array(Math.min(opts.units, DIRTY_LIST_MAX));
      this.dirtyMark = new Uint8Array(opts.units);
    }
    this.keepFirst = opts.keepFirst ?? 20;
  }

  /**
   * An oracle that knows what a saved state says (Oracle.savedUnits of an
   * earlier run, possibly of a process that was killed since) and judges
   * reads by the rules after a crash: a unit may hold any generation from its
   * newest durable one on (a newer one was written after the state was saved).
   */
  static restore(opts: Omit<OracleOptions, 'shared' | 'durability'> & { saved: SavedUnits }): Oracle {
    const o = new Oracle({ ...opts, durability: true });
    const { unit, state, acked, durable } = opts.saved;
    for (let i = 0; i < unit.length; i++) {
      const u = unit[i];
      if (u < 0 || u >= o.units) throw new RangeError(`oracle: saved unit ${u} is outside [0, ${o.units})`);
      o.state[u] = state[i];
      o.ackedGen[u] = acked[i];
      o.issuedGen[u] = acked[i];
      o.durableGen![u] = durable[i];
    }
    o.afterCrash = true;
    return o;
  }

  /** Whether this instance keeps the durability books (flushDone, savedUnits' durable generations). */
  get tracksDurability(): boolean {
    return this.durableGen !== undefined;
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
    const mark = this.dirtyMark;
    for (let u = unit0; u < unit0 + n; u++) {
      if (status === OK) {
        this.state[u] = ACKED;
        this.ackedGen[u] = this.issuedGen[u];
        if (mark !== undefined && mark[u] === 0) {
          mark[u] = 1;
          if (this.nDirty < this.dirty!.length) this.dirty![this.nDirty++] = u;
          else this.dirtyExact = false; // more than the list holds: the next flush looks at every unit
        }
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
   * A flush of the device completed with `status`. OK: every unit
   * acknowledged before it is durable. An error (the kernel's writeback
   * error, reported once by fsync): the units acknowledged since the last
   * good flush are counted lost (the kernel does not say which pages failed)
   * and later reads of them are unjudged. Returns the units counted lost.
   */
  flushDone(status: number): number {
    const durable = this.durableGen;
    if (durable === undefined) throw new Error('oracle: flushDone on an instance that does not track durability');
    this.flushes++;
    if (status !== OK) this.failedFlushes++;
    let lost = 0;
    const visit = (u: number): void => {
      if (this.state[u] !== ACKED || this.ackedGen[u] === durable[u]) return;
      if (status === OK) durable[u] = this.ackedGen[u];
      else {
        this.state[u] = WB_FAILED;
        this.note('lost', u);
        lost++;
      }
    };
    const mark = this.dirtyMark!;
    if (this.dirtyExact) {
      const dirty = this.dirty!;
      for (let i = 0; i < this.nDirty; i++) {
        mark[dirty[i]] = 0;
        visit(dirty[i]);
      }
    } else {
      for (let u = 0; u < this.units; u++) visit(u);
      mark.fill(0);
      this.dirtyExact = true;
    }
    this.nDirty = 0;
    this.writebackLost += lost;
    return lost;
  }

  /** Units ever written (the state a verify-state file keeps), ascending. */
  savedUnits(): SavedUnits {
    const st = this.state;
    let n = 0;
    for (let u = 0; u < this.units; u++) if (st[u] !== NEVER) n++;
    const out: SavedUnits = { unit: new Float64Array(n), state: new Uint8Array(n), acked: new Uint32Array(n), durable: new Uint32Array(n) };
    const durable = this.durableGen;
    let i = 0;
    for (let u = 0; u < this.units; u++) {
      if (st[u] === NEVER) continue;
      out.unit[i] = u;
      out.state[i] = st[u];
      out.acked[i] = this.ackedGen[u];
      out.durable[i] = durable === undefined ? 0 : durable[u];
      i++;
    }
    return out;
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
      for (let u = unit0; u < unit0 + n; u++) {
        const st = this.state[u];
        findings += this.note(st === UNKNOWN || (st === WB_FAILED && !this.afterCrash) ? 'unjudged' : cls, u, tally);
      }
      return findings;
    }
    for (let i = 0; i < n; i++) {
      const bytes = buf.subarray(i * this.unitSize, (i + 1) * this.unitSize);
      findings += this.note(this.afterCrash ? this.classifyAfterCrash(unit0 + i, bytes) : this.classify(unit0 + i, bytes), unit0 + i, tally);
    }
    return findings;
  }

  /**
   * fio's verify_only: each unit of a completed read must hold an intact
   * block for its place (pattern.intact), whichever run wrote it; zeroes are
   * lost, anything else corrupt (the first few with fio-like details in
   * the report). Returns the number of units that are findings.
   */
  checkIntact(unit0: number, buf: Uint8Array, status: number, tally?: Record<ReadClass, number>): number {
    const n = this.unitsIn(unit0, buf);
    if (status !== OK) {
      const cls: ReadClass = this.isKnownBad(this.sectorOf(unit0), n * this.unitSectors) ? 'expectedError' : 'unexpectedError';
      let findings = 0;
      for (let u = unit0; u < unit0 + n; u++) findings += this.note(cls, u, tally);
      return findings;
    }
    let findings = 0;
    for (let i = 0; i < n; i++) {
      const u = unit0 + i;
      const problem = this.pattern.intact(buf.subarray(i * this.unitSize, (i + 1) * this.unitSize), u);
      if (problem && problem.reason !== 'zero' && this.details.length < this.keepFirst) this.details.push(`sector ${this.sectorOf(u)}: ${problem.detail}`);
      findings += this.note(!problem ? 'ok' : problem.reason === 'zero' ? 'lost' : this.corrupt(problem.reason), u, tally);
    }
    return findings;
  }

  private classify(u: number, bytes: Uint8Array): ReadClass {
    const st = this.state[u];
    if (st === UNKNOWN || st === WB_FAILED) return 'unjudged'; // a failed writeback was counted lost when the flush failed
    const verdict = this.pattern.judge(bytes, u, st === ACKED ? this.ackedGen[u] : 0);
    if (st === NEVER && this.priorContent === 'unknown' && notThisRun(verdict)) return 'notWritten';
    switch (verdict.kind) {
      case 'zero':
        return st === ACKED ? 'lost' : 'ok';
      case 'current':
        return 'ok';
      case 'older':
        return st === TRIMMED ? 'ok' : 'stale'; // a trim need not zero what it covers
      case 'corrupt':
        if (st === TRIMMED && verdict.reason === 'newer-generation') return 'ok';
        return this.corrupt(verdict.reason);
    }
  }

  private corrupt(reason: string): ReadClass {
    this.corruptReasons[reason] = (this.corruptReasons[reason] ?? 0) + 1;
    return 'corrupt';
  }

  /**
   * After a crash a unit may hold any generation from its newest durable one
   * on: acknowledged but not yet flushed data may or may not have reached the
   * device, and a generation newer than the state was written after it was
   * saved. Where nothing was durable yet, what the unit held before this run
   * is acceptable too.
   */
  private classifyAfterCrash(u: number, bytes: Uint8Array): ReadClass {
    const st = this.state[u];
    if (st === UNKNOWN) return 'unjudged';
    if (st === TRIMMED) return this.classify(u, bytes);
    const verdict = this.pattern.judge(bytes, u, this.ackedGen[u]);
    if (st === WB_FAILED) {
      // the run counted it lost; it is ok only if the data made it after all
      const made = verdict.kind === 'current' || (verdict.kind === 'corrupt' && verdict.reason === 'newer-generation');
      return made ? 'ok' : 'lost';
    }
    const durable = this.durableGen![u];
    switch (verdict.kind) {
      case 'current':
        return 'ok';
      case 'older':
        return verdict.gen >= durable ? 'ok' : 'stale';
      case 'zero':
        return durable > 0 ? 'lost' : 'ok';
      case 'corrupt':
        if (verdict.reason === 'newer-generation') return 'ok';
        if (durable === 0 && this.priorContent === 'unknown' && notThisRun(verdict)) return 'ok';
        return this.corrupt(verdict.reason);
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

  /** Adds another thread's counts (its report) into this oracle's; its writes make the next flushDone look at every unit. */
  absorb(other: OracleReport): void {
    this.dirtyExact = false;
    for (const c of READ_CLASSES) {
      this.counts[c] += other.reads[c];
      for (const s of other.first[c]) if (this.first[c].length < this.keepFirst && !this.first[c].includes(s)) this.first[c].push(s);
    }
    for (const [k, v] of Object.entries(other.corruptReasons)) this.corruptReasons[k] = (this.corruptReasons[k] ?? 0) + v;
    this.acknowledged += other.writes.acknowledged;
    this.failed += other.writes.failed;
    this.trims += other.trims;
  }

  durability(): DurabilityReport {
    return { flushes: this.flushes, failedFlushes: this.failedFlushes, writebackLost: this.writebackLost };
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
      ...(this.details.length > 0 ? { details: [...this.details] } : {}),
      findings,
      priorContent: this.priorContent,
      durability: this.durability(),
    };
  }
}

/** Bytes no write of this run made: zeroes, foreign bytes, another run's data, a header torn before this run. */
function notThisRun(v: UnitVerdict): boolean {
  return v.kind === 'zero' || (v.kind === 'corrupt' && (v.reason === 'foreign' || v.reason === 'other-run' || v.reason === 'torn-header'));
}
