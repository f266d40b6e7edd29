/**
 * The verify-state file as a pure codec (bytes in, object out, and back):
 * what the oracle knows about a run, so another process can check the
 * device after the run's process was killed or the machine rebooted
 * (`remapsim verify`). Little-endian throughout:
 *
 *    0  8  magic "RSIMVST\0"
 *    8  u32 version (1)
 *   12  u32 run id
 *   16  u32 unit size (bytes)
 *   20  u32 pattern seed
 *   24  u64 base sector (device sector of unit 0)
 *   32  u64 units in the region
 *   40  u8  algorithm (0 crc32c, 1 xxhash: remapsim's header; 2 md5, 3 sha256,
 *           4 meta: fio's header; verify_pattern's bytes are not kept, so
 *           the pattern kinds have no code)
 *   41  u8  flags: bit 0 the run ended (final state), bit 1 the earlier content was unknown
 *   42  u16 target description length D (bytes of UTF-8)
 *   44  u32 target logical block size
 *   48  u64 target size (sectors)
 *   56  u32 flushes completed
 *   60  u32 flushes failed
 *   64  u64 saved at (ms since the epoch)
 *   72  u64 entry count N
 *   80  D bytes target description
 *   then N entries of 17 bytes, units ascending:
 *       u64 unit, u8 state (oracle UNIT_*), u32 newest acknowledged generation,
 *       u32 newest durable generation (acknowledged before a completed flush; 0 none)
 *   then u32 CRC32C of every byte before it.
 */
import { crc32c } from '@node-rs/crc32';
import { type SavedUnits, UNIT_WRITEBACK_FAILED } from './oracle.js';
import type { VerifyAlgorithm } from './verify-pattern.js';

export const VERIFY_STATE_MAGIC = 'RSIMVST\0';
export const VERIFY_STATE_VERSION = 1;
const HEADER = 80;
const ENTRY = 17;
const TRAILER = 4;
const MAX_DESCRIPTION = 0xffff;

export interface VerifyState {
  runId: number;
  unitSize: number;
  seed: number;
  algorithm: VerifyAlgorithm;
  baseSector: number;
  units: number;
  /** The run had ended when this was saved (after its final flush). */
  complete: boolean;
  priorContent: 'zeroes' | 'unknown';
  target: { description: string; sectors: number; logicalBlockSize: number };
  flushes: number;
  failedFlushes: number;
  savedAtMs: number;
  saved: SavedUnits;
}

/** A file that is not a verify state, or one that is damaged or truncated: the message is one line. */
export class VerifyStateError extends Error {
  override readonly name = 'VerifyStateError';
}

const ALGORITHMS: readonly VerifyAlgorithm[] = ['crc32c', 'xxhash', 'md5', 'sha256', 'meta'];

function setU64(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, v % 4294967296, true);
  dv.setUint32(at + 4, Math.floor(v / 4294967296), true);
}

function getU64(dv: DataView, at: number): number {
  const hi = dv.getUint32(at + 4, true);
  if (hi >= 1 << 21) return Number.NaN; // beyond 2^53: never written by this codec
  return hi * 4294967296 + dv.getUint32(at, true);
}

export function encodeVerifyState(s: VerifyState): Uint8Array {
  const desc = new TextEncoder().encode(s.target.description);
  if (desc.length > MAX_DESCRIPTION) throw new RangeError(`verify state: target description of ${desc.length} bytes is longer than ${MAX_DESCRIPTION}`);
  const n = s.saved.unit.length;
  const bytes = new Uint8Array(HEADER + desc.length + n * ENTRY + TRAILER);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < 8; i++) bytes[i] = VERIFY_STATE_MAGIC.charCodeAt(i);
  dv.setUint32(8, VERIFY_STATE_VERSION, true);
  dv.setUint32(12, s.runId >>> 0, true);
  dv.setUint32(16, s.unitSize, true);
  dv.setUint32(20, s.seed >>> 0, true);
  setU64(dv, 24, s.baseSector);
  setU64(dv, 32, s.units);
  const code = ALGORITHMS.indexOf(s.algorithm);
  if (code < 0) throw new RangeError(`verify state: verify '${s.algorithm}' cannot be saved (its verify_pattern is not kept)`);
  dv.setUint8(40, code);
  dv.setUint8(41, (s.complete ? 1 : 0) | (s.priorContent === 'unknown' ? 2 : 0));
  dv.setUint16(42, desc.length, true);
  dv.setUint32(44, s.target.logicalBlockSize, true);
  setU64(dv, 48, s.target.sectors);
  dv.setUint32(56, Math.min(s.flushes, 0xffffffff), true);
  dv.setUint32(60, Math.min(s.failedFlushes, 0xffffffff), true);
  setU64(dv, 64, s.savedAtMs);
  setU64(dv, 72, n);
  bytes.set(desc, HEADER);
  let at = HEADER + desc.length;
  const { unit, state, acked, durable } = s.saved;
  for (let i = 0; i < n; i++, at += ENTRY) {
    setU64(dv, at, unit[i]);
    dv.setUint8(at + 8, state[i]);
    dv.setUint32(at + 9, acked[i], true);
    dv.setUint32(at + 13, durable[i], true);
  }
  dv.setUint32(at, crc32c(bytes.subarray(0, at)) >>> 0, true);
  return bytes;
}

/** Decodes a verify-state file; `source` names it in messages. Refuses anything damaged, truncated or foreign. */
export function decodeVerifyState(bytes: Uint8Array, source = 'verify state'): VerifyState {
  const fail = (why: string): never => {
    throw new VerifyStateError(`${source}: ${why}`);
  };
  if (bytes.length === 0) fail('empty file');
  const magic = String.fromCharCode(...bytes.subarray(0, Math.min(8, bytes.length)));
  if (magic !== VERIFY_STATE_MAGIC) {
    if (bytes.length < 8 && VERIFY_STATE_MAGIC.startsWith(magic) && bytes.length > 0) fail(`truncated: ${bytes.length} bytes, not even a header`);
    fail('not a remapsim verify-state file (no RSIMVST magic)');
  }
  if (bytes.length < 12) fail(`truncated: ${bytes.length} bytes, not even a header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== VERIFY_STATE_VERSION) fail(`version ${version}; this remapsim reads version ${VERIFY_STATE_VERSION}`);
  if (bytes.length < HEADER + TRAILER) fail(`truncated: ${bytes.length} bytes, the header alone is ${HEADER + TRAILER}`);
  const descLen = dv.getUint16(42, true);
  const n = getU64(dv, 72);
  const want = HEADER + descLen + n * ENTRY + TRAILER;
  if (!Number.isSafeInteger(want)) fail(`the header claims ${n} entries`);
  if (bytes.length < want) fail(`truncated: ${bytes.length} of ${want} bytes`);
  if (bytes.length > want) fail(`${bytes.length - want} bytes after the end of the state (${want} bytes)`);
  const end = want - TRAILER;
  if (dv.getUint32(end, true) !== crc32c(bytes.subarray(0, end)) >>> 0) fail('checksum mismatch: the file is damaged');

  const unitSize = dv.getUint32(16, true);
  if (unitSize < 512 || unitSize % 512 !== 0) fail(`unit size ${unitSize} is not a multiple of 512`);
  const algorithm = ALGORITHMS[dv.getUint8(40)];
  if (algorithm === undefined) fail(`unknown checksum algorithm ${dv.getUint8(40)}`);
  const flags = dv.getUint8(41);
  const baseSector = getU64(dv, 24);
  const units = getU64(dv, 32);
  const sectors = getU64(dv, 48);
  const savedAtMs = getU64(dv, 64);
  for (const [name, v] of [
    ['base sector', baseSector],
    ['units', units],
    ['target size', sectors],
    ['saved-at time', savedAtMs],
  ] as const) {
    if (!Number.isSafeInteger(v)) fail(`${name} is out of range`);
  }
  const lbs = dv.getUint32(44, true);
  if (lbs !== 512 && lbs !== 4096) fail(`target logical block size ${lbs} is not 512 or 4096`);
  if (units < 1 || baseSector + (units * unitSize) / 512 > sectors)
    fail(`a region of ${units} units at sector ${baseSector} does not fit the target's ${sectors} sectors`);
  const saved: SavedUnits = { unit: new Float64Array(n), state: new Uint8Array(n), acked: new Uint32Array(n), durable: new Uint32Array(n) };
  let at = HEADER + descLen;
  for (let i = 0; i < n; i++, at += ENTRY) {
    const u = getU64(dv, at);
    if (!(u >= 0 && u < units) || (i > 0 && u <= saved.unit[i - 1])) fail(`entry ${i}: unit ${u} is out of order or outside [0, ${units})`);
    const st = dv.getUint8(at + 8);
    if (st < 1 || st > UNIT_WRITEBACK_FAILED) fail(`entry ${i}: unknown unit state ${st}`);
    const acked = dv.getUint32(at + 9, true);
    const durable = dv.getUint32(at + 13, true);
    if (durable > acked) fail(`entry ${i}: durable generation ${durable} is newer than the acknowledged ${acked}`);
    saved.unit[i] = u;
    saved.state[i] = st;
    saved.acked[i] = acked;
    saved.durable[i] = durable;
  }
  return {
    runId: dv.getUint32(12, true),
    unitSize,
    seed: dv.getUint32(20, true),
    algorithm,
    baseSector,
    units,
    complete: (flags & 1) !== 0,
    priorContent: (flags & 2) !== 0 ? 'unknown' : 'zeroes',
    target: { description: new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(HEADER, HEADER + descLen)), sectors, logicalBlockSize: lbs },
    flushes: dv.getUint32(56, true),
    failedFlushes: dv.getUint32(60, true),
    savedAtMs,
    saved,
  };
}
