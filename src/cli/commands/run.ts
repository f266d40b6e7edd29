import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_SCENARIO } from '../../scenario/default.js';
import { loadScenario } from '../../scenario/load.js';
import { type ScenarioResult, runScenario } from '../../scenario/run.js';
import { POLICIES, type Policy, type Scenario, validateScenario } from '../../scenario/schema.js';
import { formatFioJson } from '../../stats/fio-json.js';
import { renderReport, reportPathFor } from '../../report/html.js';
import { distinctLabels, runsFromJson } from '../../report/load.js';
import { parseTime } from '../../workload/size.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from '../../util/errors.js';
import { ProgressLine } from '../progress.js';
import { formatComparison, formatRunReport } from '../run-report.js';
import { addEngineOptions, type EngineCliOptions, parseEngineOptions } from '../engine-options.js';
import { addKnownBadOptions, type KnownBadCliOptions, type ResolvedKnownBad, resolveKnownBad } from '../known-bad-options.js';
import { addVerifyStateOptions, parseVerifyStateOptions, type VerifyStateCliOptions } from '../verify-state-options.js';
import { FileDevice } from '../../block/file-device.js';
import { checkScenarioDevices } from '../../scenario/build.js';
import { checkOutputPath } from '../output-path.js';
import { withInterrupt } from '../interrupt.js';
import { jsonPlusNote, parseOutputFormat } from '../output-format.js';

interface RunOptions extends EngineCliOptions, KnownBadCliOptions, VerifyStateCliOptions {
  policy?: string;
  duration?: string;
  seed?: string;
  workdir?: string;
  fresh?: boolean;
  json?: string;
  outputFormat: string;
  comparePolicies?: boolean;
  report: boolean;
}

function parsePolicy(p: string): Policy {
  if (!(POLICIES as readonly string[]).includes(p)) throw new UsageError(`--policy: unknown policy '${p}' (allowed: ${POLICIES.join(', ')})`);
  return p as Policy;
}

function withOverrides(scenario: Scenario, opts: RunOptions): Scenario {
  const s = { ...scenario };
  if (opts.seed !== undefined) {
    const n = Number(opts.seed);
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new UsageError(`--seed: must be an integer in [0, 4294967295], got '${opts.seed}'`);
    s.seed = n;
  }
  if (opts.duration !== undefined) {
    let us: number;
    try {
      us = parseTime(opts.duration, '--duration', 's');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (us < 1000 || us > 86_400e6) throw new UsageError(`--duration: must be between 1 ms and 24 h, got '${opts.duration}'`);
    s.duration = us * 1e3;
  }
  return s;
}

/** --stack-state / --known-bad are about the scenario's main device: the model's sectors are main's. */
function scenarioKnownBad(scenario: Scenario, opts: RunOptions): ResolvedKnownBad | undefined {
  if (opts.stackState === undefined && opts.knownBad === undefined) return undefined;
  const main = scenario.devices.main;
  if (main.path === undefined) {
    if (opts.stackState !== undefined)
      throw new UsageError(`--stack-state: scenario '${scenario.name}' runs on a new file of its own; set devices.main.path to the stack's device`);
    return resolveKnownBad(opts, { sectors: Math.floor(main.size! / 512), description: `scenario '${scenario.name}' main device` });
  }
  const dev = FileDevice.open(main.path, { readOnly: true, logicalBlockSize: main.logicalBlockSize });
  const sectors = dev.sectors;
  dev.close();
  return resolveKnownBad(opts, { path: main.path, sectors, description: `scenario '${scenario.name}' main device ${main.path}` });
}

export function registerRun(program: Command): void {
  const cmd = program
    .command('run')
    .description('run a scenario (default: the built-in one) through the model and judge every read')
    .argument('[scenario]', 'a scenario file (.json, .yaml); without one, the built-in default scenario')
    .option('--policy <policy>', `remap policy: ${POLICIES.join(' or ')} (default: the scenario's)`)
    .option('--duration <time>', "run time of time-based jobs, e.g. 10s, 500ms, 2m (default: the scenario's)")
    .option('--seed <n>', "seed for jobs, fault growth and verify data (default: the scenario's)")
    .option(
      '--workdir <dir>',
      'where the backing files go, kept after the run (default: a temporary directory, removed afterwards); a later run reuses the images it recorded there',
    )
    .option('--fresh', 'with --workdir: remove the images (main.img, spare.img) and the record an earlier run left there first')
    .option('--json <file>', 'also write the results, fio-shaped with verify and remap blocks, to this file')
    .option('--output-format <format>', "normal (a summary), json (the results on stdout) or json+ (json with fio's latency bins, in --json too)", 'normal')
    .option('--compare-policies', 'run the scenario under both policies and show what each lost, side by side')
    .option('--no-report', 'with --json r.json: do not write the HTML report r.html beside it');
  addKnownBadOptions(cmd);
  addVerifyStateOptions(cmd);
  addEngineOptions(cmd, 'the safe policy; dm-remap-v4, flushing jobs and --verify-state run on one thread')
    .addHelpText(
      'after',
      `
The default scenario: a sparse 256 MiB main and 32 MiB spare in a temporary
directory; bad sectors appear on main during a 10 s 4 KiB random read/write
job that verifies every read, through the model of the remap target.

A scenario whose main device is an existing file or device (devices.main.path)
may hold an earlier run's data: units this run did not write are then not
judged (notWritten). When that device is a kernel stack built by 'remapsim
stack up', --stack-state names its state file: read errors over the stack's
bad sectors are expected, not findings (--known-bad: a list or ddrescue
mapfile of them instead).

--workdir D keeps main.img and spare.img in D with a record of what made
them (remapsim-workdir.json). A second run in D reuses them as devices with
earlier content: the spare's metadata is loaded as the target would load it,
and units this run did not write are not judged (notWritten). Images of
another size, block size or policy, images replaced since, or images
remapsim has no record of are refused; --fresh starts again with new ones.

Bad input is found before anything runs, in one line: output files that
cannot be written (--json and its report), a work directory that is not one,
sizes the filesystem cannot hold, main and spare that are the same file, a
spare too small for the policy.

SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the run the same way: the jobs end,
what ran so far is reported (and written to --json) without the read-back
of written units, the target is flushed and closed, and temporary files are
removed. A second signal ends the process at once.

Exit status: 0 when no acknowledged data was lost, stale or corrupt and no
read failed without cause; 1 when the oracle found such units (listed in the
report) or the final flush failed; 2 for bad input; 130, 143, 129 when
SIGINT, SIGTERM or SIGHUP stopped it (128 + the signal's number).

Examples:
  remapsim run                                # the default scenario, safe policy
  remapsim run --policy dm-remap-v4           # the same under the module's policy: data is lost
  remapsim run --compare-policies --duration 5s
  remapsim run my-scenario.yaml --json results.json   # also writes results.html (remapsim report)
  remapsim run --json r.json --no-report
  remapsim run --workdir /var/tmp/w && remapsim run --workdir /var/tmp/w   # the second reuses the images
  remapsim run --workdir /var/tmp/w --fresh
  remapsim run on-stack.yaml --stack-state x.json       # devices.main.path: /dev/mapper/x-bad
  remapsim run crash.yaml --verify-state /var/tmp/r.state`,
    )
    .action((file: string | undefined, opts: RunOptions) =>
      withInterrupt(async (interrupt) => {
        const outputFormat = parseOutputFormat(opts.outputFormat);
        const engine = parseEngineOptions(opts);
        const base = file === undefined ? validateScenario(DEFAULT_SCENARIO, 'default scenario') : loadScenario(file);
        const scenario = withOverrides(base, opts);
        const policies: Policy[] = opts.comparePolicies ? [...POLICIES] : [opts.policy !== undefined ? parsePolicy(opts.policy) : scenario.target.policy];
        const verifyState = parseVerifyStateOptions(opts);
        if (verifyState && policies.length > 1) throw new UsageError('--verify-state: one run at a time (drop --compare-policies)');
        const workdir = opts.workdir ?? scenario.workdir;
        if (opts.fresh && workdir === undefined) throw new UsageError('--fresh: only with --workdir (without one, every run gets a new temporary directory)');
        if (opts.json !== undefined) {
          checkOutputPath(opts.json, '--json');
          if (opts.report) checkOutputPath(reportPathFor(opts.json), '--json (its HTML report; --no-report skips it)');
        }
        // each policy keeps its own images: their spares hold different metadata
        const workdirOf = (policy: Policy): string | undefined => (workdir !== undefined && policies.length > 1 ? path.join(workdir, policy) : opts.workdir);
        for (const policy of policies) checkScenarioDevices(scenario, { policy, workdir: workdirOf(policy), fresh: opts.fresh });
        const knownBad = scenarioKnownBad(scenario, opts);
        const results: ScenarioResult[] = [];
        for (const policy of policies) {
          if (interrupt.stop.aborted) break;
          const progress = new ProgressLine();
          try {
            results.push(
              await runScenario(scenario, {
                policy,
                engine,
                workdir: workdirOf(policy),
                fresh: opts.fresh,
                knownBad,
                verifyState,
                stop: interrupt.stop,
                plus: outputFormat === 'json+',
                onProgress: (p) => progress.update(p, `${policy}: `),
              }),
            );
          } finally {
            progress.done();
          }
        }
        if (interrupt.received) for (const r of results) if (r.stopped) r.fio.remapsim = { ...r.fio.remapsim, stoppedBy: interrupt.received };
        if (opts.json !== undefined) {
          const body = results.length === 1 ? results[0].fio : { runs: results.map((r) => r.fio) };
          fs.writeFileSync(opts.json, results.length === 1 ? formatFioJson(results[0].fio) : `${JSON.stringify(body, null, 2)}\n`);
          if (opts.report) {
            // from the JSON, so the page shows what the file holds
            const runs = distinctLabels(runsFromJson(JSON.parse(JSON.stringify(body)), opts.json));
            fs.writeFileSync(reportPathFor(opts.json), renderReport(runs));
          }
        }
        if (outputFormat !== 'normal') {
          process.stdout.write(results.length === 1 ? formatFioJson(results[0].fio) : `${JSON.stringify({ runs: results.map((r) => r.fio) }, null, 2)}\n`);
          if (outputFormat === 'json+') process.stderr.write(jsonPlusNote(results.map((r) => r.fio)));
        } else {
          for (const r of results) process.stdout.write(`${formatRunReport(r)}\n`);
          if (results.length > 1) process.stdout.write(formatComparison(results));
        }
        process.exitCode = results.some((r) => r.findings > 0 || r.durability.finalFlush !== 'OK') ? EXIT_FINDINGS : EXIT_OK;
      }),
    );
}
