import * as fs from 'node:fs';
import type { Command } from 'commander';
import { FileDevice } from '../../block/file-device.js';
import { openTargetSpec } from '../../scenario/target-spec.js';
import { POLICIES, type Policy } from '../../scenario/schema.js';
import { formatFioJson } from '../../stats/fio-json.js';
import { toFioResult } from '../../workload/fio-report.js';
import { resolveRegion } from '../../workload/generator.js';
import { jobsFromArgv, minBlockSize } from '../../workload/job.js';
import { Oracle } from '../../workload/oracle.js';
import { type RunResult, runJobs } from '../../workload/runner.js';
import { Engine, type EngineStats } from '../../engine/engine.js';
import { VerifyPattern } from '../../workload/verify-pattern.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from '../errors.js';
import { ProgressLine } from '../progress.js';
import { addEngineOptions, type EngineCliOptions, parseEngineOptions } from '../engine-options.js';
import { fioSummaryOnly } from '../run-report.js';

interface BenchOptions extends EngineCliOptions {
  target?: string;
  outputFormat: string;
  json?: string;
  policy?: string;
}

export function registerBench(program: Command): void {
  const cmd = program
    .command('bench')
    .description('run fio-style jobs (a job file and/or fio options) against a file, a block device or a model')
    .argument('[jobfile-and-fio-options...]', 'a fio job file and/or fio options: --rw randrw --bs 4k --size 256M --runtime 5 ...')
    .requiredOption('--target <spec>', 'file:PATH, dev:PATH, table:LINE, scenario:FILE, scenario:default, or a path')
    .option('--output-format <format>', 'normal or json (fio-shaped)', 'normal')
    .option('--json <file>', 'also write the fio-shaped results to this file')
    .option('--policy <policy>', `with scenario:, override its policy (${POLICIES.join(', ')})`)
    .allowUnknownOption()
    .allowExcessArguments();
  addEngineOptions(cmd, 'files and devices; models run on one thread')
    .addHelpText(
      'after',
      `
fio options are fio's (with fio's own size rules: 4k = 4096, 256M = 256 MiB);
options before the first --name are defaults for every job, job files included.
Supported: rw, rwmixread, bs, bsrange, bssplit, blockalign, iodepth, numjobs,
size, offset, io_size, runtime, time_based, ramp_time, rate, rate_iops,
random_distribution, randseed, randrepeat, norandommap, verify (crc32c, xxhash),
verify_backlog, continue_on_error, direct. Unknown options are errors.

Exit status: 0; 1 when a job ended with an error or verification found lost,
stale or corrupt data; 2 for bad input.

Examples:
  remapsim bench --rw randrw --bs 4k --size 256M --runtime 5 --time_based --target file:/var/tmp/t.img
  remapsim bench jobs.fio --output-format json --target dev:/dev/loop0
  remapsim bench --rw randwrite --bs 4k --verify crc32c --runtime 5 --time_based --target scenario:default`,
    )
    .action(async (args: string[], opts: BenchOptions) => {
      if (opts.outputFormat !== 'normal' && opts.outputFormat !== 'json') throw new UsageError(`--output-format: must be normal or json, got '${opts.outputFormat}'`);
      let policy: Policy | undefined;
      if (opts.policy !== undefined) {
        if (!(POLICIES as readonly string[]).includes(opts.policy)) throw new UsageError(`--policy: unknown policy '${opts.policy}' (allowed: ${POLICIES.join(', ')})`);
        policy = opts.policy as Policy;
      }
      const engineOptions = parseEngineOptions(opts);
      const jobs = jobsFromArgv(args);
      const direct = jobs.some((j) => j.direct);
      if (direct && jobs.some((j) => !j.direct)) throw new UsageError('direct: give all jobs the same direct= setting (the target is opened once)');
      // a missing file is created as big as the largest region a job asks for
      const wanted = Math.max(...jobs.map((j) => (j.size?.kind === 'bytes' ? j.size.bytes : 0) + (j.offset.kind === 'bytes' ? j.offset.bytes : 0)));
      const target = openTargetSpec(opts.target!, { direct, createBytes: wanted > 0 ? wanted : undefined, policy });
      try {
        const device = target.device;
        for (const j of jobs) resolveRegion(j, device.sectors * 512); // refuse jobs that do not fit, before any I/O
        const verifying = jobs.filter((j) => j.verify !== 'none');
        let oracle: Oracle | undefined;
        if (verifying.length > 0) {
          const unitSize = Math.max(device.logicalBlockSize, Math.min(...verifying.map((j) => minBlockSize(j))));
          const seed = (Date.now() ^ process.pid) >>> 0;
          oracle = new Oracle({
            pattern: new VerifyPattern({ unitSize, runId: seed, seed, algorithm: verifying[0].verify === 'xxhash' ? 'xxhash' : 'crc32c' }),
            units: Math.floor((device.sectors * 512) / unitSize),
            isKnownBad: target.built ? (s, n) => target.built!.isKnownBad(s, n) : undefined,
          });
        }
        const progress = new ProgressLine();
        const useEngine = engineOptions !== undefined && device instanceof FileDevice;
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
              run = await engine.runJobs(jobs, { oracle, onProgress: (p) => progress.update(p) });
              engineStats = engine.stats();
            } finally {
              await engine.close();
            }
          } else {
            run = runJobs({
              device,
              jobs,
              oracle,
              onTick: target.built ? (now) => target.built!.advanceFaults(now) : undefined,
              onProgress: (p) => progress.update(p),
            });
          }
        } finally {
          progress.done();
        }
        if (oracle) oracle.finalPass(device);
        const verify = oracle?.report();
        const fio = toFioResult(run, { oracle: verify, remap: target.remapSummary?.(), globalOptions: { target: target.description } });
        const dataPath = engineStats
          ? `engine, ${engineStats.queues.length} queue(s) on ${engineStats.topology}, io ${[...new Set(engineStats.queues.map((q) => q.io))].join('/')}`
          : 'one thread (sync)';
        fio.remapsim = { dataPath, ...(engineStats ? { engine: engineStats } : {}) };
        if (opts.json !== undefined) fs.writeFileSync(opts.json, formatFioJson(fio));
        if (opts.outputFormat === 'json') process.stdout.write(formatFioJson(fio));
        else {
          process.stdout.write(`target: ${target.description}\ndata path: ${dataPath}\n${fioSummaryOnly(fio)}`);
          if (verify) process.stdout.write(`verify: ${Object.entries(verify.reads).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
        }
        const failed = run.jobs.some((j) => j.error !== 0) || (verify?.findings ?? 0) > 0;
        process.exitCode = failed ? EXIT_FINDINGS : EXIT_OK;
      } finally {
        target.close();
      }
    });
}
