/**
 * The unit pattern of a verify kind: remapsim's own header (crc32c, xxhash;
 * verify-pattern.ts) or fio's (md5, sha256, meta, pattern; fio-verify.ts).
 * Every place that makes one (bench, run, verify, the engine's workers) goes
 * through here, so they all agree on the bytes.
 */
import { FioVerifyPattern } from './fio-verify.js';
import { type OwnAlgorithm, type UnitPattern, type VerifyAlgorithm, VerifyPattern } from './verify-pattern.js';

export interface UnitPatternOptions {
  unitSize: number;
  runId: number;
  seed: number;
  algorithm: VerifyAlgorithm;
  /** verify_pattern's bytes (fio's header only). */
  verifyPattern?: Uint8Array;
  /** Byte offset of unit 0 on the device (fio's header records absolute offsets). */
  baseOffsetBytes?: number;
}

export function isOwnAlgorithm(a: VerifyAlgorithm): a is OwnAlgorithm {
  return a === 'crc32c' || a === 'xxhash';
}

export function makeUnitPattern(o: UnitPatternOptions): UnitPattern {
  if (isOwnAlgorithm(o.algorithm)) return new VerifyPattern({ unitSize: o.unitSize, runId: o.runId, seed: o.seed, algorithm: o.algorithm });
  return new FioVerifyPattern({ ...o, algorithm: o.algorithm });
}
