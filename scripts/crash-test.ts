/**
 * The long crash test (npm run test:crash): SIGKILLs a child running a
 * write-heavy job with faults through the model, reopens, and checks that
 * nothing acknowledged was lost. The safe policy must lose nothing (exit 1
 * otherwise); dm-remap-v4 reports what it loses.
 *
 *   tsx scripts/crash-test.ts [--seed N] [--kills N] [--policy safe|dm-remap-v4|both] [--json] [--verbose]
 */
import { parseArgs } from 'node:util';
import { type CrashSuiteReport, formatCrashReport, runCrashSuite } from './crash/harness.js';
import { CRASH_POLICIES, type CrashPolicy } from './crash/workload.js';

function fail(message: string): never {
  process.stderr.write(`crash-test: ${message}\n`);
  process.exit(2);
}

function parseCrashArgs() {
  try {
    return parseArgs({
      options: {
        seed: { type: 'string' },
        kills: { type: 'string', default: '60' },
        policy: { type: 'string', default: 'both' },
        json: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    return fail((e as Error).message);
  }
}

async function main(): Promise<void> {
  const values = parseCrashArgs();
  const seed = values.seed === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail(`--seed must be an integer in [0, 4294967295], got '${values.seed}'`);
  const kills = Number(values.kills);
  if (!Number.isInteger(kills) || kills < 1 || kills > 1000) fail(`--kills must be an integer in [1, 1000], got '${values.kills}'`);
  const policies: CrashPolicy[] =
    values.policy === 'both'
      ? [...CRASH_POLICIES]
      : CRASH_POLICIES.includes(values.policy as CrashPolicy)
        ? [values.policy as CrashPolicy]
        : fail(`--policy must be safe, dm-remap-v4 or both, got '${values.policy}'`);
  process.stderr.write(`crash-test: seed ${seed} (rerun with --seed ${seed}), ${kills} kills per policy\n`);
  const reports: CrashSuiteReport[] = [];
  for (const policy of policies) {
    const r = await runCrashSuite({ policy, seed, kills, log: values.verbose ? (l) => process.stderr.write(`${l}\n`) : undefined });
    reports.push(r);
    if (!values.json) process.stdout.write(`${formatCrashReport(r)}\n`);
  }
  if (values.json)
    process.stdout.write(
      `${JSON.stringify(
        reports.map(({ runs, ...rest }) => ({ ...rest, runs: runs.length })),
        null,
        2,
      )}\n`,
    );
  const safe = reports.find((r) => r.policy === 'safe');
  if (safe && safe.findings > 0) {
    process.stderr.write(`crash-test: the safe policy lost acknowledged data or remaps (seed ${seed})\n`);
    process.exitCode = 1;
  }
}

await main();
