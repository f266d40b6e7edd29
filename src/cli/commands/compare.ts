import * as fs from 'node:fs';
import type { Command } from 'commander';
import { formatComparison } from '../../compare/report.js';
import { type ComparisonReport, compareLeftovers, compareScenario } from '../../compare/run.js';
import { DmControl } from '../../kernel/dm-control.js';
import { EXIT_ENVIRONMENT, EXIT_FINDINGS, EXIT_OK, UsageError } from '../../util/errors.js';
import { scenarioArg } from './stack.js';
import { checkOutputPath } from '../output-path.js';

function wholeNumber(what: string, text: string | undefined, dflt: number, min: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > 1e7) throw new UsageError(`${what}: must be a whole number in ${min}..10000000, got '${text}'`);
  return n;
}

interface CompareCliOptions {
  ops?: string;
  seed?: string;
  growthEvery?: string;
  ioOnly?: boolean;
  json?: boolean;
  out?: string;
  callTimeout?: string;
  dir?: string;
}

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .argument('<scenario>', "a scenario file, or 'default'")
    .description(
      'run one scenario on the model (dm-remap-v4 policy) and on the real dm-remap-v4 module, step by step, and report every difference and every kernel misbehaviour',
    )
    .option('--ops <n>', 'I/O operations in the trace (from the first job, seeded)', '400')
    .option('--seed <n>', "the trace's seed (default: the scenario's)")
    .option('--growth-every <n>', "one cluster of the scenario's bad-sector growth every this many operations", '50')
    .option('--io-only', 'I/O, growth and checkpoints only: no messages, suspend, reload or re-create')
    .option('--json', 'print the report as JSON')
    .option('--out <file>', 'write the JSON report here before the stack is torn down')
    .option('--call-timeout <s>', 'time limit of each kernel call, in seconds', '20')
    .option('--dir <dir>', 'where the backing files and the model files go (default: a new directory in /var/tmp, removed afterwards)')
    .addHelpText(
      'after',
      `
The kernel side: loop devices, dm-dust with the scenario's bad sectors, and
the dm-remap-v4 module on top (it must be loaded: modprobe dm-bufio, then
insmod dm-remap.ko). The model side: the same stack in userspace with the
dm-remap-v4 policy. The trace runs I/O from the scenario's first job with
bad sectors growing, and around it the device's life: stretches that poll
status and stretches that leave it alone, every message the module
documents, flush and FUA, suspend and resume, a table reload, remove and
re-create on the same spare. At each checkpoint both sides are settled (the
kernel finishes the work it queued) and compared: status fields, the
metadata copies on the spare (read past the page cache), the spare's bytes
where remaps point, the bad-block lists.

Every kernel call has a time limit (--call-timeout): a call that does not
return, or an oops, is reported as a finding with the kernel log and ends
the run; this process never hangs with it. The report is written (--out)
before teardown. Needs device-mapper (exit 3 without it, or without the
module). Exit 0: no difference; 1: differences or findings.

Examples:
  remapsim compare default --ops 200
  remapsim compare s.yaml --seed 7 --json --out /var/tmp/cmp.json`,
    )
    .action(async (file: string, o: CompareCliOptions) => {
      const scenario = scenarioArg(file);
      const ops = wholeNumber('--ops', o.ops, 400, 1);
      const seed = o.seed === undefined ? undefined : wholeNumber('--seed', o.seed, 0, 0);
      const growthEvery = wholeNumber('--growth-every', o.growthEvery, 50, 0);
      const callTimeoutMs = wholeNumber('--call-timeout', o.callTimeout, 20, 1) * 1000;
      if (o.out !== undefined) checkOutputPath(o.out, '--out');
      const dm = DmControl.open();
      const v = dm.targetVersion('dm-remap-v4');
      const leftovers = compareLeftovers(dm.listDevices(), pidAlive);
      dm.close();
      for (const l of leftovers)
        process.stderr.write(`remapsim: compare: stack '${l.name}' of an earlier compare is still up (its process is gone); remove it with: ${l.clean}\n`);
      if (!v) {
        process.stderr.write(
          'remapsim: compare: this kernel has no dm-remap-v4 target (load the module: modprobe dm-bufio && insmod dm-remap.ko); nothing to compare against\n',
        );
        process.exitCode = EXIT_ENVIRONMENT;
        return;
      }
      const early = (r: ComparisonReport): void => {
        if (o.out !== undefined) fs.writeFileSync(o.out, `${JSON.stringify(r, bigintJson, 2)}\n`);
        if (!o.json) process.stdout.write(formatComparison(r));
      };
      const report = await compareScenario(scenario, {
        ops,
        seed,
        growthEvery,
        lifecycle: o.ioOnly ? 'io' : 'full',
        callTimeoutMs,
        dir: o.dir,
        beforeTeardown: early,
        onStep: (done, total) => {
          if (process.stderr.isTTY) process.stderr.write(`\r\x1b[Kstep ${done}/${total}`);
        },
      });
      if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
      if (o.out !== undefined) fs.writeFileSync(o.out, `${JSON.stringify(report, bigintJson, 2)}\n`);
      if (o.json) process.stdout.write(`${JSON.stringify(report, bigintJson)}\n`);
      else if (report.teardown) {
        const t = report.teardown;
        process.stdout.write(t.leftBehind.length === 0 ? '  torn down\n' : `  left behind:\n${t.leftBehind.map((x) => `    ${x}\n`).join('')}`);
      }
      process.exitCode = report.agree && report.findings.length === 0 ? EXIT_OK : EXIT_FINDINGS;
    });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
