import { describe, expect, it } from 'vitest';
import { fuzzMetadata } from '../../scripts/fuzz/fuzz-properties.js';

// A few thousand cases per run; scripts/fuzz-metadata.ts runs 100,000+.
// Set FUZZ_SEED to replay a failure (fast-check prints the seed and path).
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;

describe('metadata decoders under fuzzing', () => {
  it('only MetadataFormatError or a valid result, for random and mutated bytes and damaged volumes', () => {
    const report = fuzzMetadata({ numRuns: 1200, seed });
    const c = report.counts;
    // the generators must keep reaching every outcome, or the property proves little
    for (const key of [
      'v4 valid',
      'v4 invalid bad-crc',
      'v4 invalid bad-magic',
      'superblock valid',
      'checkpoint valid',
      'log valid',
      'log error bad-crc',
      'replay exact',
      'replay torn tail',
    ]) {
      expect(c[key] ?? 0, `${key} (seed ${report.seed})`).toBeGreaterThan(0);
    }
  });
});
