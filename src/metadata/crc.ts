import { crc32, crc32c } from '@node-rs/crc32';

/**
 * The two checksums of the metadata formats, on top of @node-rs/crc32.
 *
 * @node-rs/crc32 `crc32(buf, s)` is the zlib CRC-32 (reflected 0xEDB88320)
 * resumed from the FINISHED value `s`: internally it runs the raw register
 * update R from ~s and returns ~R. Linux `crc32_le(seed, buf)` is the raw
 * update R from `seed` with no inversions. Hence the identity used here:
 *
 *   crc32_le(seed, buf) = ~crc32(buf, ~seed)          (all mod 2^32)
 *
 * and it chains like the kernel's: crc32Le(crc32Le(0, a), b) = crc32Le(0, a‖b).
 * Check value: crc32Le(0, "123456789") = 0x2DFD2D88.
 *
 * `crc32c(buf)` is the standard CRC-32C (Castagnoli, init ~0, final xor ~0):
 * crc32c("123456789") = 0xE3069283.
 */
export function crc32Le(seed: number, bytes: Uint8Array): number {
  return ~crc32(bytes, ~seed >>> 0) >>> 0;
}

export function crc32cOf(bytes: Uint8Array): number {
  return crc32c(bytes) >>> 0;
}

export const CRC32_LE_CHECK = 0x2dfd2d88;
export const CRC32C_CHECK = 0xe3069283;
