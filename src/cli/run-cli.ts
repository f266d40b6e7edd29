import { CommanderError, type Command } from 'commander';
import { EXIT_USAGE, RemapsimError } from '../util/errors.js';

export async function runCli(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message (help, version, or the usage error)
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    // an error a user can cause (any layer's RemapsimError) is one line; anything else is a bug and keeps its stack
    if (!(err instanceof RemapsimError)) throw err;
    process.stderr.write(`remapsim: ${err.message}\n`);
    process.exitCode = err.exitCode;
  }
}
