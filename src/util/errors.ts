/**
 * The errors a user can cause, at the bottom of the layers: bad input, a
 * missing file, a kernel without device-mapper. Each layer subclasses
 * RemapsimError; the CLI prints the message on one line and exits with
 * `exitCode`. Anything else is a bug and keeps its stack trace.
 *
 * Exit codes: 0 ok, 1 the run found problems (oracle findings, failed
 * checks), 2 bad input, 3 the environment (a missing kernel feature or tool,
 * not root).
 */
export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_USAGE = 2;
export const EXIT_ENVIRONMENT = 3;

export class RemapsimError extends Error {
  readonly #exitCode: number;

  constructor(message: string, exitCode: number = EXIT_USAGE) {
    super(message);
    this.#exitCode = exitCode;
  }

  /** What the CLI exits with; a subclass may decide it from what failed. */
  get exitCode(): number {
    return this.#exitCode;
  }
}

/** Bad input found by a check of our own (an option, a field, a file). */
export class UsageError extends RemapsimError {
  override readonly name: string = 'UsageError';
}
