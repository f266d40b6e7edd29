import { pino, type Logger } from 'pino';
import { UsageError } from './errors.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Quiet by default; JSON lines on stderr when asked for. */
export const log: Logger = pino({ level: 'silent', base: undefined }, pino.destination(2));

export function setLogLevel(level: string): void {
  if (!LEVELS.includes(level)) throw new UsageError(`--log-level: unknown level '${level}' (allowed: ${LEVELS.join(', ')})`);
  log.level = level;
}
