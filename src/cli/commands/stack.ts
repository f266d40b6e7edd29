import type { Command } from 'commander';
import { loadStackState, saveStackState, buildKernelStack, teardownKernelStack } from '../../kernel/stack.js';
import { compareScenario, stackSpecFromScenario } from '../../scenario/compare.js';
import { DEFAULT_SCENARIO } from '../../scenario/default.js';
import { loadScenario } from '../../scenario/load.js';
import { type Scenario, validateScenario } from '../../scenario/schema.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from '../errors.js';

function scenarioArg(file: string): Scenario {
  return file === 'default' ? validateScenario(DEFAULT_SCENARIO, 'default scenario') : loadScenario(file);
}

function positiveInt(what: string, text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${what}: must be a whole number of at least 1, got '${text}'`);
  return n;
}

export function registerStack(program: Command): void {
  const stack = program.command('stack').description('build and tear down the kernel test stack for a scenario: backing files, loop devices, dm-dust, dm-remap-v4 when the kernel has it');
  stack
    .command('up')
    .argument('<scenario>', "a scenario file, or 'default'")
    .option('--name <name>', "prefix of the dm device names and files (default: the scenario's name)")
    .option('--dir <dir>', 'where new backing files go (default: the system temp directory)')
    .option('--state <file>', 'where to save what was built, for `stack down` (default: <name>.stack.json)')
    .description("build the stack; the device to use is printed ('top')")
    .action((file: string, o: { name?: string; dir?: string; state?: string }) => {
      const spec = stackSpecFromScenario(scenarioArg(file), { name: o.name, dir: o.dir });
      const state = buildKernelStack(spec);
      const stateFile = o.state ?? `${spec.name}.stack.json`;
      saveStackState(stateFile, state);
      const lines = [`top: ${state.top} (${state.sectors} sectors)`, ...state.devices.map((d) => `  ${d.role.padEnd(5)} ${d.path}: ${d.table.join('; ')}`)];
      if (!state.remap.present) lines.push(`  no remap layer: ${state.remap.reason}`);
      lines.push(`  spare: ${state.spareDevice}`, `state saved to ${stateFile} (remapsim stack down ${stateFile})`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
  stack
    .command('down')
    .argument('<state>', 'the state file `stack up` wrote')
    .option('--keep-files', 'keep the backing files')
    .description('remove the devices and loop devices a `stack up` built (and its files)')
    .action((stateFile: string, o: { keepFiles?: boolean }) => {
      const report = teardownKernelStack(loadStackState(stateFile), { keepFiles: o.keepFiles });
      process.stdout.write(`${JSON.stringify(report)}\n`);
    });

  program
    .command('compare')
    .argument('<scenario>', "a scenario file, or 'default'")
    .description('run one scenario on the model and on the kernel stack, operation by operation, and report every difference')
    .option('--ops <n>', 'operations to run (from the first job, seeded)', '5000')
    .option('--growth-every <n>', 'one cluster of the scenario\'s bad-sector growth every this many operations', '250')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
The kernel side: loop devices, dm-dust with the scenario's bad sectors, and
dm-remap-v4 on top when the kernel has that target (the model then runs its
dm-remap-v4 policy; otherwise both sides stop at the bad-sector layer, and the
report says so). Needs device-mapper (exit 3 without it). Exit 0: no
difference; 1: differences (listed).`,
    )
    .action((file: string, o: { ops?: string; growthEvery?: string; json?: boolean }) => {
      const report = compareScenario(scenarioArg(file), { ops: positiveInt('--ops', o.ops, 5000), growthEvery: positiveInt('--growth-every', o.growthEvery, 250) });
      if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
      else {
        const lines = [
          `compared ${report.ops} operations of scenario '${report.scenario}' on layers ${report.layers.join(' + ')}${report.remap.present ? '' : ` (no remap layer: ${report.remap.reason})`}`,
          `  reads ${report.counts.reads}, writes ${report.counts.writes}; errors: model ${report.counts.errorsModel}, kernel ${report.counts.errorsKernel}; ${report.grownBadSectors} bad sectors grown on both`,
          report.differenceCount === 0 ? '  no differences' : `  ${report.differenceCount} differences:`,
          ...report.differences.map((d) => `    op ${d.op} ${d.kind}${d.sector !== undefined ? ` sector ${d.sector}` : ''}: model ${d.model}, kernel ${d.kernel}`),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      process.exitCode = report.differenceCount === 0 ? EXIT_OK : EXIT_FINDINGS;
    });
}
