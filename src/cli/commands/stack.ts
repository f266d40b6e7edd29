import type { Command } from 'commander';
import {
  addBadSectors,
  type BadSectorListing,
  buildKernelStack,
  cleanStack,
  listBadSectors,
  loadStackState,
  removeBadSectors,
  type SectorRange,
  saveStackState,
  type StackState,
  teardownKernelStack,
} from '../../kernel/stack.js';
import { stackSpecFromScenario } from '../../scenario/stack-spec.js';
import { DEFAULT_SCENARIO } from '../../scenario/default.js';
import { loadScenario } from '../../scenario/load.js';
import { type Scenario, validateScenario } from '../../scenario/schema.js';
import { UsageError } from '../../util/errors.js';

export function scenarioArg(file: string): Scenario {
  return file === 'default' ? validateScenario(DEFAULT_SCENARIO, 'default scenario') : loadScenario(file);
}

/** SECTOR arguments as numbers, each a whole sector of the bad-sector layer (0..sectors-1). */
export function parseSectors(words: readonly string[], state: StackState): number[] {
  const dev = state.devices.find((d) => d.role === 'bad');
  const max = (dev?.sectors ?? state.sectors) - 1;
  return words.map((w) => {
    const n = Number(w);
    if (!/^\d+$/.test(w) || !Number.isSafeInteger(n) || n > max) {
      throw new UsageError(`SECTOR must be a whole 512-byte sector number in 0..${max} (the size of stack '${state.name}'), got '${w}'`);
    }
    return n;
  });
}

function rangeText(r: SectorRange): string {
  return r.first === r.last ? String(r.first) : `${r.first}-${r.last}`;
}

function listWords(items: string[]): string {
  return items.length === 0 ? '(none)' : items.join(' ');
}

/** The human listing: the kernel's list, the state's, and each difference with its likely reason. */
export function formatBadListing(l: BadSectorListing): string[] {
  const unit = l.blockSectors === 1 ? 'sectors' : `sectors, in blocks of ${l.blockSectors}`;
  const lines = [`stack '${l.name}': ${l.layer === 'dust' ? 'dm-dust' : 'dm-linear with dm-error segments'} on ${l.device} (512-byte ${unit})`];
  lines.push(
    `  kernel: ${l.kernel === null ? "unknown: this kernel's dm-dust did not return its list (it logs it: see dmesg)" : listWords(l.kernel.map(rangeText))}`,
  );
  lines.push(`  state:  ${listWords(l.state.map(String))}`);
  if (l.kernel === null) return lines;
  if (l.onlyInState.length === 0 && l.onlyInKernel.length === 0) {
    lines.push('  they agree');
    return lines;
  }
  if (l.onlyInState.length > 0) {
    const why = l.layer === 'dust' ? ": a write to a dust block takes it off the kernel's list" : '';
    lines.push(`  in the state, not failed by the kernel: ${l.onlyInState.join(' ')}${why}`);
  }
  if (l.onlyInKernel.length > 0)
    lines.push(`  failed by the kernel, not in the state: ${l.onlyInKernel.map(rangeText).join(' ')} (added outside remapsim stack, e.g. with dm message)`);
  return lines;
}

export function registerStack(program: Command): void {
  const stack = program
    .command('stack')
    .description('build and tear down the kernel test stack for a scenario: backing files, loop devices, dm-dust, dm-remap-v4 when the kernel has it')
    .addHelpText(
      'after',
      `
Examples:
  remapsim stack up default --name t1 --state t1.json
  remapsim stack bad t1.json add 4096 4097
  remapsim stack bad t1.json list
  remapsim stack down t1.json
  remapsim stack clean t1                (when the state file is lost)

Exit status: 0 done, 2 a bad argument or state file, a stack that is up
already, or one that could not be fully torn down (the line says what), 3
no device-mapper or not root.`,
    );
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
    .addHelpText(
      'after',
      `
Only what that \`stack up\` made is touched: the state records each dm
device's UUID, each loop device's major:minor and its backing file's inode,
and each created file's inode. Whatever no longer matches (a dm device of
that name with another UUID, a loop device now backed by another file, a
file replaced since) is left alone and named: exit 2. What is gone already
is fine.

A state file written before identities were recorded (version 1) is still
read (stack bad, --stack-state), but down leaves everything it names that
still exists alone and names it: remove those by hand after checking them
(remapsim dm remove NAME, remapsim loop detach DEV).`,
    )
    .action((stateFile: string, o: { keepFiles?: boolean }) => {
      const report = teardownKernelStack(loadStackState(stateFile), { keepFiles: o.keepFiles });
      process.stdout.write(`${JSON.stringify(report)}\n`);
    });
  stack
    .command('bad')
    .argument('<state>', 'the state file `stack up` wrote')
    .argument('<action>', 'add, remove or list')
    .argument('[sectors...]', 'for add and remove: 512-byte sector numbers of main')
    .option('--json', 'print the listing as JSON')
    .description('change or list the bad sectors of a live stack; add and remove save the state file again')
    .addHelpText(
      'after',
      `
add:    dm-dust gets addbadblock for each block not yet listed; the dm-linear +
        dm-error layer gets a new table (suspend, load, resume: I/O waits, none fails).
remove: dm-dust gets removebadblock for each block no other bad sector shares;
        the linear+error layer a new table. A sector that is not bad is refused.
list:   what the kernel fails now (dm-dust's listbadblocks, as sectors, or the
        error segments of the table) beside what the state says, and where
        they differ: a write to a dust block takes it off the kernel's list.
add and remove print the listing afterwards.

Examples:
  remapsim stack bad t1.json add 4096 4097
  remapsim stack bad t1.json remove 4097
  remapsim stack bad t1.json list --json`,
    )
    .action((stateFile: string, action: string, words: string[], o: { json?: boolean }) => {
      if (!['add', 'remove', 'list'].includes(action)) throw new UsageError(`ACTION must be add, remove or list, got '${action}'`);
      if (action === 'list' && words.length > 0) throw new UsageError(`list takes no SECTOR arguments, got ${words.join(' ')}`);
      if (action !== 'list' && words.length === 0) throw new UsageError(`${action} needs at least one SECTOR`);
      let state = loadStackState(stateFile);
      const sectors = parseSectors(words, state);
      if (action !== 'list') {
        state = action === 'add' ? addBadSectors(state, sectors) : removeBadSectors(state, sectors);
        saveStackState(stateFile, state);
      }
      const listing = listBadSectors(state);
      if (o.json) process.stdout.write(`${JSON.stringify(listing)}\n`);
      else process.stdout.write(`${formatBadListing(listing).join('\n')}\n`);
    });
  stack
    .command('clean')
    .argument('<name>', 'the stack name (`stack up --name`, or the scenario name)')
    .option('--dir <dir>', 'where `stack up` put the backing files (default: the system temp directory)')
    .option('--json', 'print what was removed as JSON')
    .description(
      'remove what a stack of this name left behind, without its state file: dm devices NAME-remap and NAME-bad, loop devices on DIR/NAME-main.img and DIR/NAME-spare.img, and those files',
    )
    .addHelpText(
      'after',
      `
Only those: nothing else is touched, and a stack whose main or spare was an
existing file (not one \`stack up\` made) keeps it. A dm device of that name
is removed only when it carries the UUID \`stack up\` gives the stack
(remapsim-NAME-...), a loop device only when its backing file is the stack's
file itself (the same inode); anything else is left alone and named (exit 2).

Examples:
  remapsim stack clean t1
  remapsim stack clean t1 --dir /var/tmp/stacks --json`,
    )
    .action((name: string, o: { dir?: string; json?: boolean }) => {
      const r = cleanStack(name, { dir: o.dir });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      const all = [
        ...r.removedDevices.map((d) => `dm device ${d}`),
        ...r.detachedLoops.map((d) => `loop device ${d}`),
        ...r.removedFiles.map((f) => `file ${f}`),
      ];
      const lines = all.length === 0 ? [`stack '${name}': nothing left behind`] : [`stack '${name}': removed ${all.join(', ')}`];
      if (r.noDeviceMapper) lines.push(`  (no dm devices looked for: ${r.noDeviceMapper})`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
