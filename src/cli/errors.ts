/**
 * Errors a user can cause (bad input, missing files, a kernel without
 * device-mapper). The CLI prints their message on one line and exits with
 * their code; anything else is a bug and keeps its stack trace.
 */
export class UsageError extends Error {
  override readonly name: string = 'UsageError';
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

/**
 * Exit codes: 0 ok, 1 the run found problems (oracle findings, failed checks), 2 bad input, 3 environment (missing kernel feature, tool).
 * Device-mapper errors are sorted once for every command (dmExitCode in run-cli.ts): a device that does not exist, a refused
 * table or message, a name in use or a held device is bad input (2); no device-mapper, not root, a device still open is 3.
 */
export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_USAGE = 2;
export const EXIT_ENVIRONMENT = 3;
