import { CommanderError, type Command } from 'commander';
import { UsageError, EXIT_USAGE } from './errors.js';
import { BlockRequestError } from '../block/device.js';
import { DeviceOpenError } from '../block/file-device.js';
import { MessageError, TableError } from '../control/target.js';
import { DmError, DmUnavailableError } from '../kernel/dm-control.js';
import { EngineOptionError } from '../engine/numa.js';
import { MetadataFormatError, MetadataValueError } from '../metadata/errors.js';
import { SysError } from '../sys/libc.js';
import { EXIT_ENVIRONMENT } from './errors.js';

/** Errors that are the user's input, not our bug: one line, no stack trace. */
function userFacing(err: unknown): { message: string; code: number } | undefined {
  if (err instanceof UsageError) return { message: err.message, code: err.exitCode };
  if (err instanceof TableError || err instanceof MessageError) return { message: err.message, code: EXIT_USAGE };
  if (err instanceof DeviceOpenError || err instanceof BlockRequestError) return { message: err.message, code: EXIT_USAGE };
  if (err instanceof EngineOptionError) return { message: err.message, code: EXIT_USAGE };
  if (err instanceof DmUnavailableError) return { message: err.message, code: EXIT_ENVIRONMENT };
  if (err instanceof DmError || err instanceof SysError) return { message: err.message, code: EXIT_ENVIRONMENT };
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
