import { computeSafeLayout, SAFE_BLOCK_SECTORS } from './safe-format.js';
import { defaultLogBlocks } from './safe-store.js';

/**
 * dm-remap-v4's spare-size check, in integer math exactly as its constructor
 * does it. `mainSectors` in 512-byte sectors, `lbs` in bytes.
 */
export interface MinSpareParams {
  /** Module parameter spare_overhead_percent (default 2, clamped to 20). */
  spareOverheadPercent?: number;
  /** Module parameter strict_spare_sizing (default false): spare >= main + 5%. */
  strictSpareSizing?: boolean;
}

export function v4MinSpare(mainSectors: number, lbs: number, params: MinSpareParams = {}): number {
  const main = BigInt(mainSectors);
  if (params.strictSpareSizing) return Number(main + main / 20n);
  const pct = BigInt(Math.min(params.spareOverheadPercent ?? 2, 20));
  const l = BigInt(lbs);
  const meta = 4096n / l + 1n;
  const bad = (main * pct) / 100n;
  const mapOverhead = (bad * 64n) / l + 1n;
  const base = meta + bad + mapOverhead;
  return Number(base + (base * 20n) / 100n);
}

/**
 * The smallest spare, in 512-byte sectors, the safe policy's metadata fits
 * on with one data block to spare (two metadata areas at their default size
 * for that spare, see computeSafeLayout), for a main device of `lbs`-byte
 * logical blocks. Below it a spare is refused as too small.
 */
export function safeMinSpare(lbs: number): number {
  const remapBlockSectors = lbs / 512;
  for (let sectors = SAFE_BLOCK_SECTORS; sectors <= 1 << 24; sectors += SAFE_BLOCK_SECTORS) {
    try {
      computeSafeLayout({ spareSectors: sectors, remapBlockSectors, logBlocks: defaultLogBlocks(sectors) });
      return sectors;
    } catch {
      // too small: one block more
    }
  }
  throw new RangeError(`no safe-policy spare layout for ${lbs}-byte logical blocks`);
}
