import { MetadataFormatError, MetadataValueError } from './errors.js';

/** Little-endian field access shared by the codecs. */

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const U64_LIMIT = 1n << 64n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Reads a u64 that the API exposes as a JS number; larger values are a format error. */
export function getSafeU64(dv: DataView, offset: number, field: string): number {
  const v = dv.getBigUint64(offset, true);
  if (v > MAX_SAFE) {
    throw new MetadataFormatError('bad-field', `${field} is ${v}, beyond the largest supported value 2^53-1`);
  }
  return Number(v);
}

export function checkUint(field: string, value: unknown, bits: 8 | 16 | 32): number {
  const max = bits === 32 ? 0xffffffff : bits === 16 ? 0xffff : 0xff;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new MetadataValueError(field, `${field} must be an integer in [0, ${max}], got ${String(value)}`);
  }
  return value;
}

/** A u64 given as bigint or as a safe-integer number. */
export function checkU64(field: string, value: unknown): bigint {
  if (typeof value === 'bigint') {
    if (value >= 0n && value < U64_LIMIT) return value;
  } else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
    return BigInt(value);
  }
  throw new MetadataValueError(field, `${field} must be an integer in [0, 2^64-1], got ${String(value)}`);
}

/** A u64 the API keeps as a JS number: a safe integer in [min, 2^53-1]. */
export function checkSafe(field: string, value: unknown, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new MetadataValueError(field, `${field} must be an integer in [${min}, 2^53-1], got ${String(value)}`);
  }
  return value;
}

export function checkBytes(field: string, value: unknown, length: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    const got = value instanceof Uint8Array ? `${value.length} bytes` : typeof value;
    throw new MetadataValueError(field, `${field} must be a Uint8Array of exactly ${length} bytes, got ${got}`);
  }
  return value;
}

export function requireBytes(bytes: unknown, length: number, what: string): Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new MetadataFormatError('truncated', `${what}: expected a Uint8Array, got ${typeof bytes}`);
  }
  if (bytes.length < length) {
    throw new MetadataFormatError('truncated', `${what}: ${bytes.length} bytes, need ${length}`);
  }
  return bytes;
}
