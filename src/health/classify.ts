/**
 * Reading one slice of a device and classifying what went wrong, block by
 * block. Shared by the background scanner and `remapsim scan`.
 *
 *   1. The slice is read as one request and timed.
 *   2. OK and no slower than `slowNs`: clean.
 *   3. OK but slow: each block is read again on its own; a block whose read
 *      is slow again is `weak` (two slow reads, so one scheduling hiccup is
 *      not a finding).
 *   4. Failed: each block is read on its own, up to 1 + `retries` times. A
 *      block that never reads is `bad`; one that reads on a retry is `weak`
 *      when that read was slow and `transient` when it was not. When every
 *      block reads at the first try, the slice's failure did not repeat: one
 *      `transient` finding for the whole slice.
 */
import { type BlockDevice, OK, SECTOR_SIZE } from '../block/device.js';
import type { Clock } from '../util/clock.js';

export type FindingKind = 'transient' | 'weak' | 'bad';

export interface BlockFinding {
  kind: FindingKind;
  /** First block (in classification blocks) and how many the finding covers (1 except for a slice-wide transient). */
  block: number;
  blocks: number;
  /** First device sector and sector count. */
  sector: number;
  sectors: number;
  /** Slowest successful read of the block, ns (0 when it never read). */
  latencyNs: number;
  /** Reads of the block (or slice) it took to decide. */
  attempts: number;
  /** errno of the last failed read (0 when none failed). */
  errno: number;
  /** Clock reading when it was classified. */
  atNs: number;
}

/** Blocks the caller wants left alone (already remapped, already pending). */
export interface BlockSkip {
  /** Whether any block of [first, first + n) is skipped: lets a clean range cost one test. */
  anyIn(first: number, n: number): boolean;
  has(block: number): boolean;
}

export interface SliceResult {
  status: number;
  latencyNs: number;
  bytes: number;
  findings: BlockFinding[];
  /** Extra reads made to classify, and their bytes. */
  probes: number;
  probeBytes: number;
}

export interface ClassifyOptions {
  clock: Clock;
  /** Sectors per classification block. */
  blockSectors: number;
  slowNs: number;
  retries: number;
}

export class SliceClassifier {
  private buf: Uint8Array;
  /** When set, each slice (or run) read is recorded here by position. */
  map: LatencyMap | undefined;

  constructor(
    private readonly dev: BlockDevice,
    private readonly opts: ClassifyOptions,
    maxSliceBytes: number,
  ) {
    this.buf = new Uint8Array(maxSliceBytes);
  }

  /** Reads blocks [first, first + n) (the last may be short at the device end), skipping `skip`. */
  scan(first: number, n: number, skip?: BlockSkip): SliceResult {
    const out: SliceResult = { status: OK, latencyNs: 0, bytes: 0, findings: [], probes: 0, probeBytes: 0 };
    if (skip?.anyIn(first, n)) {
      // read the runs between skipped blocks
      let runStart = -1;
      for (let b = first; b <= first + n; b++) {
        const skipped = b === first + n || skip.has(b);
        if (!skipped && runStart < 0) runStart = b;
        if (skipped && runStart >= 0) {
          this.scanRun(runStart, b - runStart, out);
          runStart = -1;
        }
      }
      return out;
    }
    this.scanRun(first, n, out);
    return out;
  }

  private span(first: number, n: number): { sector: number; sectors: number } {
    const sector = first * this.opts.blockSectors;
    const sectors = Math.min(n * this.opts.blockSectors, this.dev.sectors - sector);
    return { sector, sectors };
  }

  private timedRead(sector: number, sectors: number): { status: number; ns: number } {
    const buf = this.buf.subarray(0, sectors * SECTOR_SIZE);
    const clock = this.opts.clock;
    const t0 = clock.nowNs();
    const status = this.dev.read(sector, buf);
    return { status, ns: clock.nowNs() - t0 };
  }

  private scanRun(first: number, n: number, out: SliceResult): void {
    const { sector, sectors } = this.span(first, n);
    if (sectors <= 0) return;
    const r = this.timedRead(sector, sectors);
    out.bytes += sectors * SECTOR_SIZE;
    out.latencyNs += r.ns;
    this.map?.record(sector, sectors * SECTOR_SIZE, r.ns, r.status !== OK);
    if (r.status !== OK && out.status === OK) out.status = r.status;
    if (r.status === OK && r.ns <= this.opts.slowNs) return;
    const slow = r.status === OK;
    let anyFinding = false;
    let allFirstOk = true;
    for (let b = first; b < first + n; b++) {
      const f = slow ? this.probeSlow(b, out) : this.probeFailed(b, out);
      if (f.firstFailed) allFirstOk = false;
      if (f.finding) {
        out.findings.push(f.finding);
        anyFinding = true;
      }
    }
    if (!slow && !anyFinding && allFirstOk) {
      out.findings.push({
        kind: 'transient',
        block: first,
        blocks: n,
        sector,
        sectors,
        latencyNs: r.ns,
        attempts: 1,
        errno: r.status,
        atNs: this.opts.clock.nowNs(),
      });
    }
  }

  private probeSlow(b: number, out: SliceResult): { finding?: BlockFinding; firstFailed: boolean } {
    const { sector, sectors } = this.span(b, 1);
    if (sectors <= 0) return { firstFailed: false };
    const r = this.timedRead(sector, sectors);
    out.probes++;
    out.probeBytes += sectors * SECTOR_SIZE;
    if (r.status !== OK) return this.probeFailed(b, out, 1, r.status);
    if (r.ns <= this.opts.slowNs) return { firstFailed: false };
    return {
      finding: { kind: 'weak', block: b, blocks: 1, sector, sectors, latencyNs: r.ns, attempts: 1, errno: 0, atNs: this.opts.clock.nowNs() },
      firstFailed: false,
    };
  }

  /** Reads one block up to 1 + retries times (`done` reads already made, the last failing with `lastErrno`). */
  private probeFailed(b: number, out: SliceResult, done = 0, lastErrno = 0): { finding?: BlockFinding; firstFailed: boolean } {
    const { sector, sectors } = this.span(b, 1);
    if (sectors <= 0) return { firstFailed: false };
    let attempts = done;
    let errno = lastErrno;
    while (attempts < 1 + this.opts.retries) {
      const r = this.timedRead(sector, sectors);
      out.probes++;
      out.probeBytes += sectors * SECTOR_SIZE;
      attempts++;
      if (r.status === OK) {
        if (attempts === 1) {
          // it read at once: slow means weak, else this block is not what failed
          if (r.ns > this.opts.slowNs)
            return {
              finding: { kind: 'weak', block: b, blocks: 1, sector, sectors, latencyNs: r.ns, attempts, errno: 0, atNs: this.opts.clock.nowNs() },
              firstFailed: false,
            };
          return { firstFailed: false };
        }
        const kind: FindingKind = r.ns > this.opts.slowNs ? 'weak' : 'transient';
        return { finding: { kind, block: b, blocks: 1, sector, sectors, latencyNs: r.ns, attempts, errno, atNs: this.opts.clock.nowNs() }, firstFailed: true };
      }
      errno = r.status;
    }
    return { finding: { kind: 'bad', block: b, blocks: 1, sector, sectors, latencyNs: 0, attempts, errno, atNs: this.opts.clock.nowNs() }, firstFailed: true };
  }
}

/** Read latency by position: one bucket per equal share of the device. */
export interface LatencyBucket {
  /** First sector and sector count of the bucket. */
  sector: number;
  sectors: number;
  reads: number;
  bytes: number;
  meanNs: number;
  maxNs: number;
  errors: number;
}

export class LatencyMap {
  private readonly reads: Float64Array;
  private readonly bytes: Float64Array;
  private readonly total: Float64Array;
  private readonly max: Float64Array;
  private readonly errors: Float64Array;
  readonly bucketSectors: number;

  constructor(
    readonly deviceSectors: number,
    readonly buckets: number,
  ) {
    if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`latency map buckets must be an integer >= 1, got ${buckets}`);
    this.bucketSectors = Math.max(1, Math.ceil(deviceSectors / buckets));
    const n = Math.ceil(deviceSectors / this.bucketSectors);
    this.reads = new Float64Array(n);
    this.bytes = new Float64Array(n);
    this.total = new Float64Array(n);
    this.max = new Float64Array(n);
    this.errors = new Float64Array(n);
  }

  record(sector: number, bytes: number, ns: number, failed: boolean): void {
    const i = Math.min(this.reads.length - 1, Math.floor(sector / this.bucketSectors));
    this.reads[i]!++;
    this.bytes[i]! += bytes;
    this.total[i]! += ns;
    if (ns > this.max[i]!) this.max[i] = ns;
    if (failed) this.errors[i]!++;
  }

  entries(): LatencyBucket[] {
    const out: LatencyBucket[] = [];
    for (let i = 0; i < this.reads.length; i++) {
      const sector = i * this.bucketSectors;
      out.push({
        sector,
        sectors: Math.min(this.bucketSectors, this.deviceSectors - sector),
        reads: this.reads[i]!,
        bytes: this.bytes[i]!,
        meanNs: this.reads[i]! > 0 ? this.total[i]! / this.reads[i]! : 0,
        maxNs: this.max[i]!,
        errors: this.errors[i]!,
      });
    }
    return out;
  }
}
