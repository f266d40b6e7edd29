/**
 * `remapsim` with the dm, stack and status/table/message commands, as a
 * child process for the kernel-lane tests that need one (signals). Not a
 * test file: stack-cli.test.ts spawns it from the compiled tree.
 */
import { Command } from 'commander';
import { registerDm } from '../../src/cli/commands/dm.js';
import { registerStack } from '../../src/cli/commands/stack.js';
import { registerTargetControl } from '../../src/cli/commands/target-control.js';
import { runCli } from '../../src/cli/run-cli.js';

const program = new Command('remapsim');
for (const r of [registerDm, registerStack, registerTargetControl]) r(program);
await runCli(program, process.argv);
