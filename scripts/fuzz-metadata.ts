/**
 * Long fuzz run of the metadata decoders (the properties of
 * scripts/fuzz/fuzz-properties.ts). Usage:
 *   npx tsx scripts/fuzz-metadata.ts --runs 100000 [--seed N]
 * Runs each of the three properties (dm-remap-v4 copies, safe-format blocks,
 * replay of damaged volumes) `runs` times and prints the seed and the counts.
 */
import { fuzzMetadata } from './fuzz/fuzz-properties.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function intArg(name: string, fallback: number | undefined): number | undefined {
  const raw = arg(name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || (name === 'runs' && v < 1)) {
    console.error(`--${name} must be an integer${name === 'runs' ? ' >= 1' : ''}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return v;
}

const numRuns = intArg('runs', 100_000)!;
const seed = intArg('seed', (Date.now() ^ (Math.random() * 0x7fffffff)) | 0)!;
console.log(`fuzz-metadata: seed ${seed}, ${numRuns} runs per property`);
const t0 = performance.now();
try {
  const r = fuzzMetadata({ numRuns, seed });
  const width = Math.max(...Object.keys(r.counts).map((k) => k.length));
  for (const key of Object.keys(r.counts).sort()) console.log(`  ${key.padEnd(width)}  ${r.counts[key]}`);
  console.log(
    `cases: ${3 * numRuns} (v4 ${(r.ms.v4 / 1000).toFixed(1)} s, blocks ${(r.ms.blocks / 1000).toFixed(1)} s, replay ${(r.ms.replay / 1000).toFixed(1)} s)`,
  );
  console.log(`ok: no decoder threw anything but MetadataFormatError (seed ${seed}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
} catch (e) {
  console.error(`FAILED with seed ${seed}:`);
  console.error(e);
  process.exit(1);
}
