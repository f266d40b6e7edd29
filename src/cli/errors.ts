/** The CLI's errors and exit codes live at the bottom of the layers (src/util/errors.ts). */
export { EXIT_ENVIRONMENT, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, RemapsimError, UsageError } from '../util/errors.js';
