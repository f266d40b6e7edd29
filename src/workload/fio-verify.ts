/**
 * fio's verify format (verify.h / verify.c of fio 3.33) as a unit pattern for
 * the oracle, so fio's own `--verify_only` pass accepts what remapsim wrote
 * and remapsim's `verify_only` accepts what fio wrote. Per verify interval
 * (the job's block size: one oracle unit), little-endian:
 *
 *    0  u16 magic 0xacca
 *    2  u16 verify_type (md5 2, sha256 9, meta 1, verify_pattern alone 17)
 *    4  u32 len (the interval)
 *    8  u64 rand_seed
 *   16  u64 offset (bytes, on the file or device)
 *   24  u32 time_sec, u32 time_nsec
 *   32  u16 thread, u16 numberio
 *   36  u32 crc32c of bytes [0, 36), fio's (no final inversion)
 *   40  md5: 16 bytes of MD5 over the data; sha256: the 64 bytes fio's
 *       sha256 stores (fio-sha256.ts); meta: nothing
 *   then the data: verify_pattern repeated, or pseudo-random bytes.
 *
 * verify=pattern has no header: the whole interval is the pattern.
 *
 * What fio checks (verify_header, then the payload): magic, len, offset,
 * the header's crc and the checksum or pattern. It does not check time or
 * thread; rand_seed only in jobs that both read and write, numberio not
 * under verify_only. So remapsim keeps its own facts there, where fio does
 * not look: rand_seed = run id (high 32 bits) and the unit's generation (low
 * 32 bits), numberio the generation's low 16 bits, thread 1. The oracle
 * tells ok, stale, another run's data and misplaced data from those; what
 * fio wrote reads as another run's (intact, not this run's) to the oracle
 * and as ok to verify_only.
 */
import { createHash } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { fillPattern, formatPattern, patternMismatch } from './fio-pattern.js';
import { fioSha256 } from './fio-sha256.js';
import { type FioAlgorithm, type IntactProblem, isZero, MAX_UNIT_BYTES, poolOffset, seededPool, type UnitPattern, type UnitVerdict } from './verify-pattern.js';

export const FIO_HDR_MAGIC = 0xacca;
export const FIO_HEADER_BYTES = 40;
const CRC_AT = 36;

/** fio's verify_type numbers and checksum sizes (the vhdr after the header). */
const TYPES: Record<FioAlgorithm, { type: number; sum: number }> = {
  meta: { type: 1, sum: 0 },
  md5: { type: 2, sum: 16 },
  sha256: { type: 9, sum: 64 },
  'pattern-header': { type: 17, sum: 0 },
  pattern: { type: 18, sum: 0 },
};

/** fio_crc32c: CRC-32C without the final inversion. */
export function fioCrc32c(bytes: Uint8Array): number {
  return ~crc32c(bytes) >>> 0;
}

export interface FioPatternOptions {
  unitSize: number;
  runId: number;
  seed: number;
  algorithm: FioAlgorithm;
  /** verify_pattern's bytes; required for 'pattern' and 'pattern-header'. */
  verifyPattern?: Uint8Array;
  /** Byte offset of unit 0 on the file or device (the header's offset field counts from the device start). */
  baseOffsetBytes?: number;
}

const hex = (n: number | bigint): string => n.toString(16);

export class FioVerifyPattern implements UnitPattern {
  readonly unitSize: number;
  readonly runId: number;
  readonly seed: number;
  readonly algorithm: FioAlgorithm;
  readonly verifyPattern: Uint8Array | undefined;
  /** Bytes of header and checksum before the data (0 for verify=pattern). */
  readonly headerBytes: number;
  private readonly baseOffset: number;
  private readonly pool: Uint8Array | undefined;

  constructor(o: FioPatternOptions) {
    this.algorithm = o.algorithm;
    this.headerBytes = o.algorithm === 'pattern' ? 0 : FIO_HEADER_BYTES + TYPES[o.algorithm].sum;
    if (!Number.isInteger(o.unitSize) || o.unitSize % 512 !== 0 || o.unitSize <= this.headerBytes || o.unitSize > MAX_UNIT_BYTES) {
      throw new RangeError(
        `verify unit size must be a multiple of 512 above the ${this.headerBytes}-byte header, at most ${MAX_UNIT_BYTES} bytes, got ${o.unitSize}`,
      );
    }
    if ((o.algorithm === 'pattern' || o.algorithm === 'pattern-header') && (o.verifyPattern === undefined || o.verifyPattern.length === 0)) {
      throw new RangeError(`verify ${o.algorithm} needs a verify_pattern`);
    }
    this.unitSize = o.unitSize;
    this.runId = o.runId >>> 0;
    this.seed = o.seed;
    this.verifyPattern = o.verifyPattern;
    this.baseOffset = o.baseOffsetBytes ?? 0;
    this.pool = o.verifyPattern ? undefined : seededPool(o.seed);
  }

  /** The byte offset fio puts in the header of `unit`. */
  offsetOf(unit: number): number {
    return this.baseOffset + unit * this.unitSize;
  }

  fill(out: Uint8Array, unit: number, gen: number): void {
    const size = this.unitSize;
    if (this.verifyPattern) fillPattern(this.verifyPattern, out.subarray(0, size));
    else {
      const off = poolOffset(unit, gen, size);
      out.set(this.pool!.subarray(off, off + size - this.headerBytes), this.headerBytes);
    }
    if (this.algorithm === 'pattern') return;
    const dv = new DataView(out.buffer, out.byteOffset, FIO_HEADER_BYTES);
    const now = Date.now();
    dv.setUint16(0, FIO_HDR_MAGIC, true);
    dv.setUint16(2, TYPES[this.algorithm].type, true);
    dv.setUint32(4, size, true);
    dv.setUint32(8, gen >>> 0, true);
    dv.setUint32(12, this.runId, true);
    dv.setBigUint64(16, BigInt(this.offsetOf(unit)), true);
    dv.setUint32(24, Math.floor(now / 1000), true);
    dv.setUint32(28, (now % 1000) * 1e6, true);
    dv.setUint16(32, 1, true);
    dv.setUint16(34, gen & 0xffff, true);
    dv.setUint32(CRC_AT, fioCrc32c(out.subarray(0, CRC_AT)), true);
    const sum = this.checksum(out.subarray(this.headerBytes, size));
    if (sum) out.set(sum, FIO_HEADER_BYTES);
  }

  private checksum(data: Uint8Array): Uint8Array | undefined {
    if (this.algorithm === 'md5') return createHash('md5').update(data).digest();
    if (this.algorithm === 'sha256') return fioSha256(data);
    return undefined;
  }

  intact(bytes: Uint8Array, unit: number): IntactProblem | undefined {
    const size = this.unitSize;
    if (this.algorithm === 'pattern') return this.patternProblem(bytes, 0);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, FIO_HEADER_BYTES);
    const magic = dv.getUint16(0, true);
    if (magic !== FIO_HDR_MAGIC)
      return isZero(bytes.subarray(0, size))
        ? { reason: 'zero' }
        : { reason: 'foreign', detail: `bad magic header ${hex(magic)}, wanted ${hex(FIO_HDR_MAGIC)}` };
    const len = dv.getUint32(4, true);
    if (len !== size) return { reason: 'misdirected', detail: `bad header length ${len}, wanted ${size}` };
    const offset = dv.getBigUint64(16, true);
    if (offset !== BigInt(this.offsetOf(unit))) return { reason: 'misdirected', detail: `bad header offset ${offset}, wanted ${this.offsetOf(unit)}` };
    const crc = fioCrc32c(bytes.subarray(0, CRC_AT));
    if (crc !== dv.getUint32(CRC_AT, true))
      return { reason: 'torn-header', detail: `bad header crc ${hex(dv.getUint32(CRC_AT, true))}, calculated ${hex(crc)}` };
    const want = this.checksum(bytes.subarray(this.headerBytes, size));
    if (want && Buffer.compare(Buffer.from(want), Buffer.from(bytes.subarray(FIO_HEADER_BYTES, FIO_HEADER_BYTES + want.length))) !== 0) {
      return { reason: 'bad-checksum', detail: `${this.algorithm}: verify failed (the data does not match the header's checksum)` };
    }
    return this.verifyPattern && !want ? this.patternProblem(bytes, this.headerBytes) : undefined;
  }

  /** fio's verify_io_u_pattern: the data after `from` is the pattern, continued from the unit's first byte. */
  private patternProblem(bytes: Uint8Array, from: number): IntactProblem | undefined {
    const p = this.verifyPattern!;
    const at = patternMismatch(p, bytes.subarray(from, this.unitSize), from);
    if (at < 0) return undefined;
    if (from === 0 && isZero(bytes.subarray(0, this.unitSize))) return { reason: 'zero' };
    const k = (from + at) % p.length;
    return {
      reason: 'bad-pattern',
      detail: `got pattern '${hex(bytes[from + at]!).padStart(2, '0')}', wanted '${hex(p[k]!).padStart(2, '0')}' at byte ${from + at} (pattern ${formatPattern(p)})`,
    };
  }

  judge(bytes: Uint8Array, unit: number, expectedGen: number): UnitVerdict {
    const problem = this.intact(bytes, unit);
    if (problem) return problem.reason === 'zero' ? { kind: 'zero' } : { kind: 'corrupt', reason: problem.reason, detail: problem.detail };
    if (this.algorithm === 'pattern') return { kind: 'current' }; // no header: every intact write of the pattern looks alike
    const dv = new DataView(bytes.buffer, bytes.byteOffset, FIO_HEADER_BYTES);
    if (dv.getUint32(12, true) !== this.runId) return { kind: 'corrupt', reason: 'other-run' };
    const gen = dv.getUint32(8, true);
    if (gen === expectedGen) return { kind: 'current' };
    if (gen < expectedGen) return { kind: 'older', gen };
    return { kind: 'corrupt', reason: 'newer-generation', detail: `generation ${gen} > ${expectedGen}` };
  }
}
