import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CRC32C_CHECK, CRC32_LE_CHECK, crc32Le, crc32cOf } from '../../src/metadata/crc.js';

const ascii = (s: string) => new TextEncoder().encode(s);

/** The definition, bit by bit: Linux crc32_le (reflected 0xEDB88320, no inversions). */
function crc32LeBitwise(seed: number, bytes: Uint8Array): number {
  let crc = seed >>> 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return crc >>> 0;
}

/** CRC-32C by definition: reflected 0x82F63B78, init and final xor ~0. */
function crc32cBitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

describe('checksums', () => {
  it('match the check values of both algorithms', () => {
    expect(crc32Le(0, ascii('123456789'))).toBe(0x2dfd2d88);
    expect(CRC32_LE_CHECK).toBe(0x2dfd2d88);
    expect(crc32cOf(ascii('123456789'))).toBe(0xe3069283);
    expect(CRC32C_CHECK).toBe(0xe3069283);
    expect(crc32Le(0, new Uint8Array(0))).toBe(0);
  });

  it('crc32Le equals the bitwise definition for any seed and bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ maxLength: 300 }), (seed, bytes) => {
        expect(crc32Le(seed, bytes)).toBe(crc32LeBitwise(seed, bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('crc32Le chains over split ranges like the kernel', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (bytes, cut) => {
        const at = bytes.length === 0 ? 0 : cut % bytes.length;
        expect(crc32Le(crc32Le(0, bytes.subarray(0, at)), bytes.subarray(at))).toBe(crc32Le(0, bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('crc32cOf equals the bitwise definition', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(crc32cOf(bytes)).toBe(crc32cBitwise(bytes));
      }),
      { numRuns: 300 },
    );
  });
});
