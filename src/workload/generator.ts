/**
 * The I/O stream of a job: operation, offset and length for each I/O, over
 * the job's region [offset, offset+size) of a device, as fio would issue it:
 *
 * - sequential: one cursor per direction, wrapping to the region start when
 *   the job has more to do (io_size > size, or time_based);
 *   `rw=write:4k` leaves a 4 KiB hole after each I/O;
 * - random: uniform over aligned blocks with fio's random map (each block
 *   at most once per pass, reads and writes sharing the map; a busy pick
 *   moves to the next free block; a long I/O is cut short at a block already
 *   done), or zipf / pareto / normal (no map, as in fio), or uniform with
 *   norandommap; `rw=randread:8` takes a new random offset every 8 I/Os;
 * - block size per direction from bs, bsrange (fio's formula: min + u·max,
 *   rounded down to a multiple of min, capped at max) or bssplit (weighted);
 *   a size that does not fit before the region end is redrawn;
 * - read or write for rw/randrw drawn per I/O with probability rwmixread.
 *
 * next(out) fills a caller-owned object and allocates nothing, so it can
 * feed millions of I/Os per second; fill() does the same into typed arrays.
 */
import { Random } from '../util/random.js';
import { createDistribution, type BlockDistribution } from './distribution.js';
import { WorkloadSpecError, type SpecIssue } from './errors.js';
import { minBlockSize, type JobSpec } from './job.js';
import { RandomMap } from './random-map.js';
import { DIRECTIONS } from './size.js';
import { formatSize } from '../util/format-size.js';

export type IoOp = 'read' | 'write' | 'trim';

export interface IoRequest {
  op: IoOp;
  /** `op` as OP_READ / OP_WRITE / OP_TRIM, for hot loops that switch on it. */
  code: number;
  offsetBytes: number;
  lengthBytes: number;
}

export function newIoRequest(): IoRequest {
  return { op: 'read', code: OP_READ, offsetBytes: 0, lengthBytes: 0 };
}

/** Operation codes used by fill(). */
export const OP_READ = 0;
export const OP_WRITE = 1;
export const OP_TRIM = 2;
const OPS: readonly IoOp[] = ['read', 'write', 'trim'];

export interface GeneratorOptions {
  /** Size of the device (or target) the job runs on. */
  deviceBytes: number;
  /** Which of the job's numjobs clones this is (0-based); clones get different streams. */
  clone?: number;
  /** Overrides the seed derived from randseed/randrepeat. */
  seed?: number;
  /** Every offset and length must be a multiple of this (the device's logical block size); default 512. */
  alignBytes?: number;
}

export interface Region {
  startBytes: number;
  sizeBytes: number;
  /** Bytes of I/O the job does before it ends; Infinity when time_based. */
  ioLimitBytes: number;
}

function regionIssue(spec: JobSpec, option: string, message: string): SpecIssue {
  return { source: spec.sources[option] ?? spec.source, option, message };
}

/**
 * Where on the device the job works and how much I/O it does. A percentage
 * offset is rounded up to the minimum block size, as fio does; a percentage
 * size is capped at the end of the device; an explicit one must fit.
 */
export function resolveRegion(spec: JobSpec, deviceBytes: number): Region {
  const issues: SpecIssue[] = [];
  const minBs = minBlockSize(spec);
  // every direction must fit at least one of its smallest blocks
  const needed = Math.max(...spec.directions.map((d) => spec.blockSizes[d].min));
  let start: number;
  if (spec.offset.kind === 'bytes') start = spec.offset.bytes;
  else {
    const raw = Math.floor((deviceBytes * spec.offset.percent) / 100);
    start = Math.ceil(raw / minBs) * minBs;
  }
  if (start >= deviceBytes) {
    issues.push(regionIssue(spec, 'offset', `${formatSize(start)} is at or beyond the end of the device (${formatSize(deviceBytes)})`));
    throw new WorkloadSpecError(issues);
  }
  const avail = deviceBytes - start;
  let size: number;
  if (spec.size === undefined) size = avail;
  else if (spec.size.kind === 'percent') size = Math.min(Math.floor((deviceBytes * spec.size.percent) / 100), avail);
  else {
    size = spec.size.bytes;
    if (size > avail) {
      issues.push(regionIssue(spec, 'size', `offset + size (${formatSize(start + size)}) exceeds the device (${formatSize(deviceBytes)})`));
    }
  }
  if (issues.length === 0 && size < needed) {
    issues.push(
      regionIssue(spec, spec.size ? 'size' : 'offset', `the job's region (${formatSize(size)}) is smaller than its block size (${formatSize(needed)})`),
    );
  }
  if (issues.length > 0) throw new WorkloadSpecError(issues);
  let ioLimit: number;
  if (spec.timeBased) ioLimit = Infinity;
  else if (spec.ioSize === undefined) ioLimit = size;
  else if (spec.ioSize.kind === 'bytes') ioLimit = spec.ioSize.bytes;
  else ioLimit = Math.max(1, Math.floor((size * spec.ioSize.percent) / 100));
  return { startBytes: start, sizeBytes: size, ioLimitBytes: ioLimit };
}

/** fio's default randseed, used while randrepeat=1 (the default). */
export const FIO_DEFAULT_SEED = 0x89;

/**
 * The seed of a job's clone: randseed if set, fio's fixed default while
 * randrepeat=1, otherwise fresh entropy (then read IoGenerator.seed to
 * reproduce the run).
 */
export function jobSeed(spec: JobSpec, clone = 0): number {
  let base: number;
  if (spec.randseed !== undefined) base = spec.randseed;
  else if (spec.randrepeat) base = FIO_DEFAULT_SEED;
  else base = crypto.getRandomValues(new Uint32Array(1))[0]!;
  const lo = base >>> 0;
  const hi = Math.floor(base / 4294967296);
  return (lo ^ Math.imul(hi, 0x85ebca6b) ^ Math.imul(clone, 0x9e3779b9)) >>> 0;
}

const MAX_SIZE_TRIES = 16;

export class IoGenerator {
  readonly seed: number;
  readonly region: Region;
  readonly spec: JobSpec;

  private readonly start: number;
  private readonly size: number;
  private readonly limit: number;
  private readonly random: boolean;
  private readonly skip: number;
  private readonly rwSequence: number;

  /** Single direction code, or -1 when reads and writes mix. */
  private readonly fixedOp: number;
  private readonly readThreshold: number;

  private readonly minBs = new Float64Array(3);
  private readonly maxBs = new Float64Array(3);
  private readonly align = new Float64Array(3);
  private readonly lenKind = new Uint8Array(3);
  private readonly splitBs: Float64Array[] = [];
  private readonly splitCum: Float64Array[] = [];
  private readonly nBlocks = new Float64Array(3);
  private readonly seqPos = new Float64Array(3);
  private readonly lastEnd = new Float64Array(3);

  private readonly rngOp: Random;
  private readonly rngOff: Random;
  private readonly rngLen: Random;
  private readonly dist: BlockDistribution | null;
  private readonly map: RandomMap | null;
  private readonly mapUnit: number;
  private readonly mapUnits: number;
  private readonly unitsPerBlock = new Float64Array(3);

  private seqLeft = 0;
  private issuedBytes = 0;
  private issuedIos = 0;
  private wraps = 0;
  private readonly scratch: IoRequest = newIoRequest();

  constructor(spec: JobSpec, options: GeneratorOptions) {
    const align = options.alignBytes ?? 512;
    if (!Number.isSafeInteger(options.deviceBytes) || options.deviceBytes <= 0) {
      throw new RangeError(`deviceBytes must be a positive integer, got ${options.deviceBytes}`);
    }
    this.spec = spec;
    this.region = resolveRegion(spec, options.deviceBytes);
    this.checkAlignment(align);
    this.start = this.region.startBytes;
    this.size = this.region.sizeBytes;
    this.limit = this.region.ioLimitBytes;
    this.random = spec.random;
    this.skip = spec.rwSkipBytes;
    this.rwSequence = spec.rwSequence;

    const codes = spec.directions.map((d) => DIRECTIONS.indexOf(d));
    this.fixedOp = codes.length === 1 ? codes[0]! : -1;
    this.readThreshold = (spec.rwmixread / 100) * 4294967296;

    for (let c = 0; c < 3; c++) {
      const b = spec.blockSizes[DIRECTIONS[c]!];
      this.minBs[c] = b.min;
      this.maxBs[c] = b.max;
      this.align[c] = spec.blockAlign[DIRECTIONS[c]!];
      this.lenKind[c] = b.split.length > 0 ? 2 : b.min === b.max ? 0 : 1;
      this.splitBs.push(Float64Array.from(b.split.map((s) => s.bs)));
      const cum = new Float64Array(b.split.length);
      let acc = 0;
      b.split.forEach((s, i) => {
        acc += s.perc;
        cum[i] = i === b.split.length - 1 ? 4294967296 : (acc / 100) * 4294967296;
      });
      this.splitCum.push(cum);
      this.nBlocks[c] = this.size >= b.min ? Math.floor((this.size - b.min) / this.align[c]!) + 1 : 0;
      this.lastEnd[c] = -1;
    }

    this.seed = options.seed !== undefined ? options.seed >>> 0 : jobSeed(spec, options.clone ?? 0);
    const root = new Random(this.seed);
    this.rngOp = root.fork();
    this.rngOff = root.fork();
    this.rngLen = root.fork();
    const rngDist = root.fork();

    let map: RandomMap | null = null;
    let unit = 0;
    let units = 0;
    if (spec.random && !spec.norandommap && spec.distribution.kind === 'random') {
      unit = Math.min(...codes.map((c) => this.minBs[c]!));
      if (codes.every((c) => this.minBs[c]! % unit === 0 && this.align[c] === this.minBs[c])) {
        units = Math.floor(this.size / unit);
        map = new RandomMap(units);
        for (const c of codes) this.unitsPerBlock[c] = this.minBs[c]! / unit;
      }
    }
    this.map = map;
    this.mapUnit = unit;
    this.mapUnits = units;

    this.dist =
      spec.random && spec.distribution.kind !== 'random'
        ? createDistribution(spec.distribution, Math.max(...codes.map((c) => this.nBlocks[c]!)), rngDist)
        : null;
  }

  private checkAlignment(align: number): void {
    const issues: SpecIssue[] = [];
    const spec = this.spec;
    for (const d of spec.directions) {
      const b = spec.blockSizes[d];
      const option = b.split.length > 0 ? 'bssplit' : b.min !== b.max ? 'bsrange' : 'bs';
      for (const s of new Set([b.min, b.max, ...b.split.map((x) => x.bs)])) {
        if (s % align !== 0) issues.push(regionIssue(spec, option, `${d} block size ${s} is not a multiple of the device's ${align}-byte logical block size`));
      }
      if (spec.sources.ba && spec.blockAlign[d] % align !== 0)
        issues.push(regionIssue(spec, 'ba', `${d} alignment ${spec.blockAlign[d]} is not a multiple of the device's ${align}-byte logical block size`));
    }
    if (this.region.startBytes % align !== 0)
      issues.push(regionIssue(spec, 'offset', `${this.region.startBytes} is not a multiple of the device's ${align}-byte logical block size`));
    if (spec.rwSkipBytes % align !== 0)
      issues.push(regionIssue(spec, 'rw', `the skip of ${spec.rwSkipBytes} bytes is not a multiple of the device's ${align}-byte logical block size`));
    if (issues.length > 0) throw new WorkloadSpecError(issues);
  }

  /** Bytes issued so far. */
  get bytesIssued(): number {
    return this.issuedBytes;
  }

  get iosIssued(): number {
    return this.issuedIos;
  }

  /** How many times the job started over on its region (a random-map pass, or a sequential wrap). */
  get passes(): number {
    return this.wraps;
  }

  /** True when the job has done its I/O amount (never for time_based jobs). */
  get done(): boolean {
    return this.issuedBytes >= this.limit;
  }

  /**
   * The next I/O, written into `out`. Returns false, leaving `out` alone,
   * once the job's I/O amount is done (io_size, or size; never when
   * time_based: the caller stops on time).
   */
  next(out: IoRequest): boolean {
    if (this.issuedBytes >= this.limit) return false;
    let c = this.fixedOp;
    if (c < 0) c = this.rngOp.nextU32() < this.readThreshold ? OP_READ : OP_WRITE;
    if (this.random) this.nextRandom(c, out);
    else this.nextSequential(c, out);
    out.op = OPS[c]!;
    out.code = c;
    this.issuedBytes += out.lengthBytes;
    this.issuedIos++;
    return true;
  }

  /**
   * Up to `count` I/Os into typed arrays (op codes OP_READ/OP_WRITE/OP_TRIM);
   * returns how many were written, fewer than asked when the job is done.
   */
  fill(ops: Uint8Array, offsets: Float64Array, lengths: Float64Array | Uint32Array, count = ops.length): number {
    const r = this.scratch;
    let n = 0;
    while (n < count && this.next(r)) {
      ops[n] = r.code;
      offsets[n] = r.offsetBytes;
      lengths[n] = r.lengthBytes;
      n++;
    }
    return n;
  }

  private nextSequential(c: number, out: IoRequest): void {
    let pos = this.seqPos[c]!;
    if (this.size - pos < this.minBs[c]!) {
      pos = 0;
      this.wraps++;
    }
    const len = this.chooseLength(c, this.size - pos);
    this.seqPos[c] = pos + len + this.skip;
    out.offsetBytes = this.start + pos;
    out.lengthBytes = len;
  }

  private nextRandom(c: number, out: IoRequest): void {
    if (this.rwSequence > 1) {
      const last = this.lastEnd[c]!;
      if (this.seqLeft > 0 && last >= 0 && this.size - last >= this.minBs[c]!) {
        this.seqLeft--;
        const len = this.chooseLength(c, this.size - last);
        this.lastEnd[c] = last + len;
        out.offsetBytes = this.start + last;
        out.lengthBytes = len;
        return;
      }
      this.seqLeft = this.rwSequence - 1;
    }

    let pos: number;
    let len: number;
    if (this.map !== null) {
      const unit = this.mapUnit;
      const u = this.pickMapped(c);
      pos = u * unit;
      len = this.chooseLength(c, this.size - pos);
      const got = this.map.setRun(u, Math.ceil(len / unit));
      if (got * unit < len) len = got * unit;
    } else {
      const n = this.nBlocks[c]!;
      let idx: number;
      if (this.dist !== null) {
        idx = this.dist.next();
        if (idx >= n) idx %= n;
      } else idx = this.rngOff.int(n);
      pos = idx * this.align[c]!;
      len = this.chooseLength(c, this.size - pos);
    }
    this.lastEnd[c] = pos + len;
    out.offsetBytes = this.start + pos;
    out.lengthBytes = len;
  }

  /** A random block not yet done in this pass (in map units); starts a new pass when none is left. */
  private pickMapped(c: number): number {
    const map = this.map!;
    const k = this.unitsPerBlock[c]!;
    const u = this.rngOff.int(this.nBlocks[c]!) * k;
    if (!map.isSet(u)) return u;
    const found = this.searchFree(u, k, this.mapUnits - k);
    if (found >= 0) return found;
    map.reset();
    this.wraps++;
    return u;
  }

  /** The next free unit at or after `from` (wrapping once) that starts a whole block and fits; -1 if none. */
  private searchFree(from: number, k: number, lastStart: number): number {
    const map = this.map!;
    let pos = from;
    let wrapped = false;
    for (;;) {
      const f = pos <= lastStart ? map.nextFree(pos) : -1;
      if (f < 0 || f > lastStart) {
        if (wrapped) return -1;
        wrapped = true;
        pos = 0;
        continue;
      }
      if (wrapped && f >= from) return -1;
      const a = k === 1 ? f : Math.ceil(f / k) * k;
      if (a > lastStart) {
        pos = lastStart + 1;
        continue;
      }
      if (!map.isSet(a)) return a;
      pos = a + 1;
    }
  }

  /** A block size for direction `c` that fits in `room` bytes (room is at least the minimum). */
  private chooseLength(c: number, room: number): number {
    const kind = this.lenKind[c]!;
    const min = this.minBs[c]!;
    if (kind === 0) return min;
    const max = this.maxBs[c]!;
    if (kind === 1) {
      for (let i = 0; i < MAX_SIZE_TRIES; i++) {
        let len = min + Math.floor(max * this.rngLen.next());
        len -= len % min;
        if (len > max) len = max;
        if (len <= room) return len;
      }
      const cap = Math.min(room, max);
      return cap - (cap % min);
    }
    const sizes = this.splitBs[c]!;
    const cum = this.splitCum[c]!;
    for (let t = 0; t < MAX_SIZE_TRIES; t++) {
      const r = this.rngLen.nextU32();
      let i = 0;
      while (r >= cum[i]!) i++;
      const len = sizes[i]!;
      if (len <= room) return len;
    }
    let best = min;
    for (let i = 0; i < sizes.length; i++) if (sizes[i]! <= room && sizes[i]! > best) best = sizes[i]!;
    return best;
  }
}

/** A generator for one clone of a job on a device of `deviceBytes`. */
export function createGenerator(spec: JobSpec, options: GeneratorOptions): IoGenerator {
  return new IoGenerator(spec, options);
}
