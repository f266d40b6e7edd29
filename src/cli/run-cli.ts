import { CommanderError, type Command } from 'commander';
import { UsageError, EXIT_USAGE } from './errors.js';
import { BlockRequestError } from '../block/device.js';
import { DeviceOpenError } from '../block/file-device.js';
import { MessageError, TableError } from '../control/target.js';
import { DmError, DmRequestError, DmUnavailableError } from '../kernel/dm-control.js';
import { StackError } from '../kernel/stack.js';
import { LoopError } from '../kernel/loop.js';
import { asCliError as asLoopCliError } from './commands/loop.js';
import { EngineOptionError } from '../engine/numa.js';
import { MetadataFormatError, MetadataValueError } from '../metadata/errors.js';
import { SysError } from '../sys/libc.js';
import { EXIT_ENVIRONMENT } from './errors.js';

const ENXIO = 6;
const EBUSY = 16;
const EINVAL = 22;

/**
 * A device-mapper request the user got wrong exits 2: refused before the
 * kernel saw it, no such device (or no table), a table or message the target
 * refused, a name in use, a table naming a device something holds. The rest
 * (not root, a device that is open and cannot be removed) is the environment: 3.
 */
export function dmExitCode(err: DmError): number {
  if (err instanceof DmUnavailableError) return EXIT_ENVIRONMENT;
  if (err instanceof DmRequestError) return EXIT_USAGE;
  if (err.command === undefined) return EXIT_ENVIRONMENT;
  if (err.errno === ENXIO || err.errno === EINVAL) return EXIT_USAGE;
  if (err.errno === EBUSY && ['DM_DEV_CREATE', 'DM_DEV_RENAME', 'DM_TABLE_LOAD'].includes(err.command)) return EXIT_USAGE;
  return EXIT_ENVIRONMENT;
}

/** Errors that are the user's input, not our bug: one line, no stack trace. */
function userFacing(err: unknown): { message: string; code: number } | undefined {
  if (err instanceof UsageError) return { message: err.message, code: err.exitCode };
  if (err instanceof TableError || err instanceof MessageError) return { message: err.message, code: EXIT_USAGE };
  if (err instanceof DeviceOpenError || err instanceof BlockRequestError) return { message: err.message, code: EXIT_USAGE };
  if (err instanceof EngineOptionError) return { message: err.message, code: EXIT_USAGE };
  if (err instanceof DmError) return { message: err.message, code: dmExitCode(err) };
  if (err instanceof SysError) return { message: err.message, code: EXIT_ENVIRONMENT };
  if (err instanceof StackError) return { message: err.message, code: EXIT_USAGE };
  if (err instanceof LoopError) return userFacing(asLoopCliError(err));
  if (err instanceof MetadataFormatError || err instanceof MetadataValueError) return { message: err.message, code: EXIT_USAGE };
  return undefined;
}

export async function runCli(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message (help, version, or the usage error)
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    const u = userFacing(err);
    if (u) {
      process.stderr.write(`remapsim: ${u.message}\n`);
      process.exitCode = u.code;
      return;
    }
    throw err;
  }
}
