import { Command } from 'commander';
import { VERSION } from '../version.js';
import { setLogLevel } from '../util/log.js';
import { registerCheckTable } from './commands/check-table.js';
import { registerServe } from './commands/serve.js';
import { registerDm } from './commands/dm.js';
import { registerLoop } from './commands/loop.js';
import { registerRun } from './commands/run.js';
import { registerBench } from './commands/bench.js';
import { registerVerify } from './commands/verify.js';
import { registerMetadata } from './commands/metadata.js';
import { registerScan } from './commands/scan.js';
import { registerReport } from './commands/report.js';
import { registerStack } from './commands/stack.js';
import { registerCompare } from './commands/compare.js';
import { registerSimulate } from './commands/simulate.js';

/** Each command module adds itself to the program; one line each. */
const COMMANDS: Array<(program: Command) => void> = [
  registerCheckTable,
  registerServe,
  registerRun,
  registerBench,
  registerVerify,
  registerDm,
  registerLoop,
  registerMetadata,
  registerScan,
  registerReport,
  registerStack,
  registerCompare,
  registerSimulate,
];

export function buildProgram(): Command {
  const program = new Command('remapsim');
  program
    .description('A userspace model of a device-mapper bad-sector remapping target, and the tools to test and measure it')
    .version(VERSION, '-V, --version')
    .option('--log-level <level>', 'log verbosity: fatal, error, warn, info, debug, trace, silent', 'silent')
    .hook('preAction', (cmd) => setLogLevel(cmd.opts().logLevel as string))
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride(); // before the subcommands: they copy it when created
  for (const register of COMMANDS) register(program);
  return program;
}
