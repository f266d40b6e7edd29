/**
 * The bytes a verifying job writes, and how a read is judged: a pure codec.
 *
 * Every verify unit (the job's smallest block, at least 512 bytes) starts
 * with a 32-byte header and carries a payload:
 *
 *   0  u32 magic 0x52535646 ("FVSR" little-endian)
 *   4  u32 run id (a per-run random number: data of an earlier run is foreign)
 *   8  u64 unit index (lo, hi)
 *  16  u32 generation (1 for the unit's first write, +1 for each later one)
 *  20  u32 unit size in bytes
 *  24  u32 checksum of the payload (crc32c or xxh32)
 *  28  u32 checksum of bytes [0, 28) (crc32c), so a torn header is told apart
 *  32  payload: a slice of a seeded 4 MiB pool chosen by (unit, generation),
 *      so writing costs a copy, not a random-number generator.
 *
 * A unit read back is: the current generation (ok), an older generation of the
 * same unit, intact (stale), all zeroes (never written), or anything else
 * (corrupt, with a reason: a torn header, another unit's data, a bad
 * checksum, foreign bytes).
 */
import { crc32c } from '@node-rs/crc32';
import { xxh32 } from '@node-rs/xxhash';
import { randomInt } from 'node:crypto';
import { Random } from '../util/random.js';

export const VERIFY_MAGIC = 0x52535646;
export const HEADER_BYTES = 32;
const POOL_BYTES = 4 << 20;

/** remapsim's own unit header (this file): crc32c or xxh32 over the payload. */
export type OwnAlgorithm = 'crc32c' | 'xxhash';
/** fio's verify header (fio-verify.ts): md5, fio's sha256, header only (meta), and the two pattern modes. */
export type FioAlgorithm = 'md5' | 'sha256' | 'meta' | 'pattern' | 'pattern-header';
export type VerifyAlgorithm = OwnAlgorithm | FioAlgorithm;

/** A run id no earlier run is likely to have used (never 0): what an earlier run left on a device then reads as another run's. */
export function newRunId(): number {
  return randomInt(1, 0x100000000);
}

export type CorruptReason = 'foreign' | 'torn-header' | 'misdirected' | 'bad-checksum' | 'bad-pattern' | 'newer-generation' | 'other-run';

export type UnitVerdict = { kind: 'current' } | { kind: 'older'; gen: number } | { kind: 'zero' } | { kind: 'corrupt'; reason: CorruptReason; detail?: string };

/** Why a unit is not an intact block for its place (fio's verify_only rules): zeroes, or a corrupt reason with fio-like detail. */
export type IntactProblem = { reason: 'zero' } | { reason: Exclude<CorruptReason, 'newer-generation' | 'other-run'>; detail: string };

/** The bytes a verifying job writes per unit, and how a unit read back is judged: remapsim's header or fio's. */
export interface UnitPattern {
  readonly unitSize: number;
  readonly runId: number;
  readonly seed: number;
  readonly algorithm: VerifyAlgorithm;
  /** verify_pattern's bytes, when the data is a pattern (fio's header only). */
  readonly verifyPattern?: Uint8Array;
  /** Fills `out` (one unit) with generation `gen` of `unit`. */
  fill(out: Uint8Array, unit: number, gen: number): void;
  /** Judges one unit read back, given the generation the oracle expects. */
  judge(bytes: Uint8Array, unit: number, expectedGen: number): UnitVerdict;
  /** fio's verify_only: undefined when the unit holds an intact block for its place, whoever wrote it; else why not. */
  intact(bytes: Uint8Array, unit: number): IntactProblem | undefined;
}

/** A seeded pool of pseudo-random bytes that payloads are sliced from, so writing costs a copy, not a generator. */
export function seededPool(seed: number): Uint8Array {
  const pool = new Uint8Array(POOL_BYTES);
  const words = new Uint32Array(pool.buffer);
  const rnd = new Random(seed);
  for (let i = 0; i < words.length; i++) words[i] = rnd.nextU32();
  return pool;
}

/** Where in the pool the payload of (unit, gen) starts, for payloads of `bytes`. */
export function poolOffset(unit: number, gen: number, bytes: number): number {
  const h = Math.imul((unit >>> 0) ^ Math.imul(gen, 0x9e3779b1) ^ Math.imul(Math.floor(unit / 4294967296), 0x85ebca6b), 0xc2b2ae35) >>> 0;
  const slots = Math.floor((POOL_BYTES - bytes) / 8);
  return (h % slots) * 8;
}

/** Largest unit a pool-backed pattern takes. */
export const MAX_UNIT_BYTES = POOL_BYTES / 2;

export class VerifyPattern implements UnitPattern {
  readonly unitSize: number;
  readonly runId: number;
  readonly seed: number;
  readonly algorithm: OwnAlgorithm;
  private readonly pool: Uint8Array;

  constructor(opts: { unitSize: number; runId: number; seed: number; algorithm?: OwnAlgorithm }) {
    if (!Number.isInteger(opts.unitSize) || opts.unitSize < 512 || opts.unitSize % 512 !== 0 || opts.unitSize > MAX_UNIT_BYTES) {
      throw new RangeError(`verify unit size must be a multiple of 512 between 512 and ${MAX_UNIT_BYTES} bytes, got ${opts.unitSize}`);
    }
    this.unitSize = opts.unitSize;
    this.runId = opts.runId >>> 0;
    this.seed = opts.seed;
    this.algorithm = opts.algorithm ?? 'crc32c';
    this.pool = seededPool(opts.seed);
  }

  private payloadOffset(unit: number, gen: number): number {
    return poolOffset(unit, gen, this.unitSize);
  }

  private checksum(bytes: Uint8Array): number {
    return (this.algorithm === 'crc32c' ? crc32c(bytes) : xxh32(bytes)) >>> 0;
  }

  /** Fills `out` (one unit) with generation `gen` of `unit`. */
  fill(out: Uint8Array, unit: number, gen: number): void {
    const size = this.unitSize;
    const off = this.payloadOffset(unit, gen);
    out.set(this.pool.subarray(off, off + size - HEADER_BYTES), HEADER_BYTES);
    const dv = new DataView(out.buffer, out.byteOffset, HEADER_BYTES);
    dv.setUint32(0, VERIFY_MAGIC, true);
    dv.setUint32(4, this.runId, true);
    dv.setUint32(8, unit >>> 0, true);
    dv.setUint32(12, Math.floor(unit / 4294967296), true);
    dv.setUint32(16, gen, true);
    dv.setUint32(20, size, true);
    dv.setUint32(24, this.checksum(out.subarray(HEADER_BYTES, size)), true);
    dv.setUint32(28, crc32c(out.subarray(0, 28)) >>> 0, true);
  }

  /** Judges one unit read back, given the generation the oracle expects. */
  judge(bytes: Uint8Array, unit: number, expectedGen: number): UnitVerdict {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
    if (dv.getUint32(0, true) !== VERIFY_MAGIC) return isZero(bytes) ? { kind: 'zero' } : { kind: 'corrupt', reason: 'foreign' };
    if (dv.getUint32(28, true) !== crc32c(bytes.subarray(0, 28)) >>> 0) return { kind: 'corrupt', reason: 'torn-header' };
    if (dv.getUint32(4, true) !== this.runId) return { kind: 'corrupt', reason: 'other-run' };
    const got = dv.getUint32(8, true) + dv.getUint32(12, true) * 4294967296;
    if (got !== unit || dv.getUint32(20, true) !== this.unitSize) return { kind: 'corrupt', reason: 'misdirected', detail: `holds unit ${got}` };
    if (dv.getUint32(24, true) !== this.checksum(bytes.subarray(HEADER_BYTES, this.unitSize))) return { kind: 'corrupt', reason: 'bad-checksum' };
    const gen = dv.getUint32(16, true);
    if (gen === expectedGen) return { kind: 'current' };
    if (gen < expectedGen) return { kind: 'older', gen };
    return { kind: 'corrupt', reason: 'newer-generation', detail: `generation ${gen} > ${expectedGen}` };
  }

  intact(bytes: Uint8Array, unit: number): IntactProblem | undefined {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
    if (dv.getUint32(0, true) !== VERIFY_MAGIC)
      return isZero(bytes)
        ? { reason: 'zero' }
        : { reason: 'foreign', detail: `bad magic ${dv.getUint32(0, true).toString(16)}, wanted ${VERIFY_MAGIC.toString(16)}` };
    if (dv.getUint32(28, true) !== crc32c(bytes.subarray(0, 28)) >>> 0) return { reason: 'torn-header', detail: 'bad header checksum' };
    const got = dv.getUint32(8, true) + dv.getUint32(12, true) * 4294967296;
    if (got !== unit || dv.getUint32(20, true) !== this.unitSize)
      return { reason: 'misdirected', detail: `holds unit ${got} of ${dv.getUint32(20, true)} bytes` };
    if (dv.getUint32(24, true) !== this.checksum(bytes.subarray(HEADER_BYTES, this.unitSize)))
      return { reason: 'bad-checksum', detail: `${this.algorithm} of the payload does not match` };
    return undefined;
  }
}

export function isZero(b: Uint8Array): boolean {
  if (b.byteOffset % 4 === 0 && b.length % 4 === 0) {
    const w = new Int32Array(b.buffer, b.byteOffset, b.length / 4);
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
