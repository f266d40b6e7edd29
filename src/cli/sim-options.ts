/** Option parsing shared by `remapsim simulate` and `remapsim campaign`. */
import { SimInputError } from '../sim/time.js';
import { UsageError } from '../util/errors.js';

/** A whole number from an option, or a UsageError naming it and its range. */
export function intOption(text: string | undefined, name: string, lo: number, hi: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < lo || n > hi)
    throw new UsageError(`${name}: must be a whole number from ${lo} to ${hi}, got '${text}'`);
  return n;
}

/** Runs `fn`, turning the simulator's input errors into usage errors (one line, exit 2). */
export async function simInput<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SimInputError) throw new UsageError(err.message);
    throw err;
  }
}
