import * as fs from 'node:fs';
import type { Command } from 'commander';
import { FileDevice } from '../../block/file-device.js';
import { openTargetSpec } from '../target-spec.js';
import { POLICIES, type Policy } from '../../scenario/schema.js';
import { formatFioJson } from '../../stats/fio-json.js';
import { toFioResult } from '../../workload/fio-report.js';
import { resolveRegion } from '../../workload/generator.js';
import { checkInFlight, flushInterval, jobsFromArgv, minBlockSize } from '../../workload/job.js';
import { Oracle } from '../../workload/oracle.js';
import { READ_BATCH } from '../../workload/read-batch.js';
import { flushAfterRun, flushBeforeRun, type RunResult, runDurability, runJobsYielding } from '../../workload/runner.js';
import { Engine, type EngineStats } from '../../engine/engine.js';
import { newRunId, type VerifyAlgorithm } from '../../workload/verify-pattern.js';
import { makeUnitPattern } from '../../workload/unit-pattern.js';
import { supportedOptionsText } from '../../workload/options.js';
import { benchTarget } from '../bench-target.js';
import { fioStateFilesToSave, loadFioStates, saveFioStates } from '../fio-state-files.js';
import { jsonPlusNote, parseOutputFormat } from '../output-format.js';
import { VerifyStateSaver } from '../../workload/verify-state-file.js';
import { OK } from '../../block/device.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from '../../util/errors.js';
import { ProgressLine } from '../progress.js';
import { addEngineOptions, type EngineCliOptions, parseEngineOptions } from '../engine-options.js';
import { durabilityLines, fioSummaryOnly, verifyNotes } from '../run-report.js';
import { addKnownBadOptions, type KnownBadCliOptions, resolveKnownBad } from '../known-bad-options.js';
import { addVerifyStateOptions, parseVerifyStateOptions, type VerifyStateCliOptions } from '../verify-state-options.js';
import { checkOutputPath } from '../output-path.js';
import { withInterrupt } from '../interrupt.js';

interface BenchOptions extends EngineCliOptions, KnownBadCliOptions, VerifyStateCliOptions {
  target?: string;
  outputFormat: string;
  json?: string;
  policy?: string;
  auxPath: string;
}

export function registerBench(program: Command): void {
  const cmd = program
    .command('bench')
    .description('run fio-style jobs (a job file and/or fio options) against a file, a block device or a model')
    .argument('[jobfile-and-fio-options...]', 'a fio job file and/or fio options: --rw randrw --bs 4k --size 256M --runtime 5 ...')
    .option('--target <spec>', "file:PATH, dev:PATH, table:LINE, scenario:FILE, scenario:default, or a path (default: the jobs' filename=, as in fio)")
    .option('--output-format <format>', "normal, json (fio-shaped) or json+ (json with fio's latency bins)", 'normal')
    .option('--aux-path <dir>', "fio's: where verify_state_save writes and verify_state_load reads fio's verify state files", '.')
    .option('--json <file>', 'also write the fio-shaped results to this file')
    .option('--policy <policy>', `with scenario:, override its policy (${POLICIES.join(', ')})`)
    .allowUnknownOption()
    .allowExcessArguments();
  addKnownBadOptions(cmd);
  addVerifyStateOptions(cmd);
  addEngineOptions(cmd, 'files and devices; models, flushing jobs and --verify-state run on one thread')
    .addHelpText(
      'after',
      `
fio options are fio's (with fio's own size rules: 4k = 4096, 256M = 256 MiB);
options before the first --name are defaults for every job, job files included.
Supported:
${supportedOptionsText()}
Unknown options are errors.

As in fio: filename= (or --filename) is the target when --target is absent
(both given, they must name the same file). verify=md5, sha256, meta and
pattern write fio's verify header: 'fio --verify_only' accepts what remapsim
wrote, and verify_only here accepts what fio wrote (the same job file);
verify_state_save=1 (the default) leaves fio's local-<job>-<n>-verify.state
in --aux-path when such a write job ends, which verify_state_load=1 with
verify_only (remapsim's or fio's) reads. crc32c and xxhash keep remapsim's
own unit header (run id, generation), which fio does not read.

Verifying on a file or device (file:, dev:):
  - units this run did not write are not judged when the target existed
    before the run (an earlier run's data may be there): they are counted as
    notWritten. A file bench creates is known to hold zeroes, and is judged.
  - read errors over sectors known to be bad are expected, not findings:
    --stack-state FILE takes them from 'remapsim stack up' (the target must be
    that stack's top device), --known-bad FILE from a list or ddrescue mapfile.
  - the target is flushed before the run (a writeback error left by someone
    else is taken there, not counted), at fsync=N, and at the end: a failed
    flush means the kernel did not write buffered writes back, and the units
    written since the last good flush are counted lost.

SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the jobs the same way: fio's
summary of what ran so far is printed (and written to --json), without the
read-back of written units; the target is flushed and closed, and a model's
temporary files are removed. A second signal ends the process at once.

Limits: iodepth at most 65536 and numjobs at most 4096 per job, and at most
1048576 requests in flight over all jobs (iodepth x numjobs), so memory stays
bounded.

Exit status: 0; 1 when a job ended with an error, verification found lost,
stale or corrupt data, or the final flush failed; 2 for bad input; 130, 143,
129 when SIGINT, SIGTERM or SIGHUP stopped it (128 + the signal's number).

Examples:
  remapsim bench --rw randrw --bs 4k --size 256M --runtime 5 --time_based --target file:/var/tmp/t.img
  remapsim bench jobs.fio --output-format json --target dev:/dev/loop0
  remapsim bench --filename /var/tmp/t.img --rw write --bs 4k --size 64M --verify md5
  fio --name=check --filename /var/tmp/t.img --rw write --bs 4k --size 64M --verify md5 --verify_only
  remapsim bench --rw randwrite --bs 4k --verify crc32c --runtime 5 --time_based --target scenario:default
  remapsim bench --rw randrw --bs 4k --verify crc32c --continue_on_error all --runtime 10 --time_based \\
      --target dev:/dev/mapper/x-remap --stack-state x.json
  remapsim bench --rw randwrite --bs 4k --size 64M --verify crc32c --fsync 64 --runtime 30 --time_based \\
      --target dev:/dev/loop3 --verify-state /var/tmp/v.state    # then, after a crash:
  remapsim verify --state /var/tmp/v.state --target dev:/dev/loop3`,
    )
    .action((args: string[], opts: BenchOptions) => withInterrupt((interrupt) => bench(args, opts, interrupt.stop)));
}

async function bench(args: string[], opts: BenchOptions, stop: AbortSignal): Promise<void> {
  const outputFormat = parseOutputFormat(opts.outputFormat);
  let policy: Policy | undefined;
  if (opts.policy !== undefined) {
    if (!(POLICIES as readonly string[]).includes(opts.policy))
      throw new UsageError(`--policy: unknown policy '${opts.policy}' (allowed: ${POLICIES.join(', ')})`);
    policy = opts.policy as Policy;
  }
  const engineOptions = parseEngineOptions(opts);
  const stateRequest = parseVerifyStateOptions(opts);
  const jobs = jobsFromArgv(args);
  checkInFlight(jobs);
  const where = benchTarget(opts.target, jobs);
  const fioStatesToSave = fioStateFilesToSave(jobs, opts.auxPath);
  const loadedStates = loadFioStates(jobs, opts.auxPath);
  if (opts.json !== undefined) checkOutputPath(opts.json, '--json');
  const direct = jobs.some((j) => j.direct);
  if (direct && jobs.some((j) => !j.direct)) throw new UsageError('direct: give all jobs the same direct= setting (the target is opened once)');
  const verifying = jobs.filter((j) => j.verify !== 'none');
  if (stateRequest && verifying.length === 0) throw new UsageError('--verify-state: no job verifies its data (add --verify crc32c)');
  if (stateRequest && verifying.some((j) => j.verifyPattern !== undefined))
    throw new UsageError("--verify-state: verify_pattern is not kept in remapsim's verify state; use fio's verify_state_save instead");
  if (new Set(verifying.map((j) => j.verify)).size > 1)
    throw new UsageError(
      `verify: give all jobs the same verify= (the oracle judges one kind of block), got ${[...new Set(verifying.map((j) => j.verify))].join(', ')}`,
    );
  // a missing file is created as big as the largest region a job asks for
  const wanted = Math.max(...jobs.map((j) => (j.size?.kind === 'bytes' ? j.size.bytes : 0) + (j.offset.kind === 'bytes' ? j.offset.bytes : 0)));
  const target = openTargetSpec(where.spec, { direct, createBytes: wanted > 0 ? wanted : undefined, policy });
  try {
    const device = target.device;
    for (const j of jobs) resolveRegion(j, device.sectors * 512); // refuse jobs that do not fit, before any I/O
    const knownBad = resolveKnownBad(opts, {
      path: device instanceof FileDevice ? device.name : undefined,
      sectors: device.sectors,
      description: target.description,
    });
    let oracle: Oracle | undefined;
    if (verifying.length > 0) {
      const unitSize = Math.max(device.logicalBlockSize, Math.min(...verifying.map((j) => minBlockSize(j))));
      const seed = (Date.now() ^ process.pid) >>> 0;
      oracle = new Oracle({
        pattern: makeUnitPattern({
          unitSize,
          runId: newRunId(),
          seed,
          algorithm: verifying[0]!.verify as VerifyAlgorithm,
          verifyPattern: verifying[0]!.verifyPattern,
        }),
        units: Math.floor((device.sectors * 512) / unitSize),
        isKnownBad: target.built ? (s, n) => target.built!.isKnownBad(s, n) : undefined,
        knownBad: knownBad.set,
        priorContent: target.priorContent,
      });
    }
    const flushing = jobs.some((j) => flushInterval(j) > 0);
    const fioStates = fioStatesToSave.length > 0 || jobs.some((j) => j.verifyOnly);
    const useEngine = engineOptions !== undefined && device instanceof FileDevice && !flushing && stateRequest === undefined && !fioStates;
    const syncWhy =
      engineOptions === undefined
        ? '--engine sync'
        : !(device instanceof FileDevice)
          ? 'models run on one thread'
          : flushing
            ? 'jobs flush (fsync=, fdatasync=)'
            : fioStates
              ? "fio's verify state or verify_only"
              : '--verify-state';
    const saver = stateRequest
      ? new VerifyStateSaver(stateRequest.file, oracle!, {
          target: { description: target.description, sectors: device.sectors, logicalBlockSize: device.logicalBlockSize },
          minIntervalMs: stateRequest.minIntervalMs,
        })
      : undefined;
    const priorFlush = flushBeforeRun(device);
    saver?.start();
    const progress = new ProgressLine();
    let run: RunResult;
    let engineStats: EngineStats | undefined;
    try {
      if (useEngine) {
        const fileDevice = device as FileDevice;
        const engine = await Engine.start({
          device: { kind: 'file', path: fileDevice.name, direct: fileDevice.direct },
          ...engineOptions,
          maxRequestBytes: Math.max(4096, ...jobs.flatMap((j) => j.directions.map((d) => j.blockSizes[d].max))),
        });
        try {
          run = await engine.runJobs(jobs, { oracle, onProgress: (p) => progress.update(p), stop });
          engineStats = engine.stats();
        } finally {
          await engine.close();
        }
      } else {
        run = await runJobsYielding({
          device,
          jobs,
          oracle,
          onTick: target.built ? (now) => target.built!.advanceFaults(now) : undefined,
          onProgress: (p) => progress.update(p),
          onFlush: saver?.onFlush,
          stop,
          loadedStates,
        });
      }
    } finally {
      progress.done();
    }
    const finalFlush = flushAfterRun(device, oracle);
    saver?.finish();
    const fioStateFiles = saveFioStates(run, opts.auxPath);
    const stopped = stop.aborted;
    if (oracle && !stopped) oracle.finalPass(device);
    const verify = oracle?.report();
    const durability = runDurability(run, priorFlush, finalFlush);
    const fio = toFioResult(run, { oracle: verify, remap: target.remapSummary?.(), plus: outputFormat === 'json+' });
    const dataPath = engineStats
      ? `engine, ${engineStats.queues.length} queue(s) on ${engineStats.topology}, io ${[...new Set(engineStats.queues.map((q) => q.io))].join('/')}`
      : `one thread (sync${engineOptions !== undefined || syncWhy !== '--engine sync' ? `: ${syncWhy}` : ''})${run.batchedReads > 0 ? `, ${run.batchedReads} reads in native batches of up to ${READ_BATCH}` : ''}`;
    fio.remapsim = {
      target: target.description,
      dataPath,
      ...(engineStats ? { engine: engineStats } : {}),
      durability,
      ...(knownBad.set ? { knownBad: { sectors: knownBad.set.sectors, sources: knownBad.sources } } : {}),
      ...(saver ? { verifyState: { file: saver.file, saves: saver.saves } } : {}),
      ...(stopped ? { stoppedBy: stop.reason as string } : {}),
    };
    if (opts.json !== undefined) fs.writeFileSync(opts.json, formatFioJson(fio));
    if (outputFormat !== 'normal') {
      process.stdout.write(formatFioJson(fio));
      if (outputFormat === 'json+') process.stderr.write(jsonPlusNote([fio]));
    } else {
      const lines = [`target: ${target.description}${where.fromFilename ? ` (filename= of ${where.fromFilename})` : ''}`, `data path: ${dataPath}`];
      for (const src of knownBad.sources) lines.push(`known bad: ${src}`);
      process.stdout.write(`${lines.join('\n')}\n${fioSummaryOnly(fio)}`);
      const notes = [...durabilityLines(durability, verify)];
      if (verify)
        notes.push(
          `verify${stopped ? ' (the reads made before the run was stopped; no read-back at the end)' : ''}: ${Object.entries(verify.reads)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`,
          ...(verifying.every((j) => j.verifyOnly) ? [] : verifyNotes(verify)),
        );
      if (saver)
        notes.push(
          `verify state: ${saver.file} (${saver.saves} saves); check the target against it with: remapsim verify --state ${saver.file} --target ${where.spec}`,
        );
      if (verify?.details) notes.push(...verify.details.map((d) => `verify_only: ${d}`));
      if (fioStateFiles.length > 0)
        notes.push(`fio's verify state: ${fioStateFiles.join(', ')} (read by verify_only with verify_state_load=1, remapsim's or fio's)`);
      process.stdout.write(`${notes.join('\n')}\n`);
    }
    const failed = run.jobs.some((j) => j.error !== 0) || (verify?.findings ?? 0) > 0 || finalFlush !== OK;
    process.exitCode = failed ? EXIT_FINDINGS : EXIT_OK;
  } finally {
    target.close();
  }
}
