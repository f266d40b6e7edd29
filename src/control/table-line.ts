import { TableError } from './target.js';

/** One target line of a device-mapper table: `<start> <length> <type> <args...>`. */
export interface TableLine {
  start: number;
  length: number;
  type: string;
  args: string[];
}

/** Splits a table line the way dmsetup does (whitespace separated, no quoting). */
export function parseTableLine(line: string): TableLine {
  const tokens = line
    .trim()
    .split(/\s+/)
    .filter((t) => t.length > 0);
  if (tokens.length < 3) throw new TableError(`table line needs '<start> <length> <target type> [args...]', got '${line.trim()}'`);
  const [startText, lengthText, type, ...args] = tokens;
  const start = parseSectorCount('start', startText);
  const length = parseSectorCount('length', lengthText);
  if (length === 0) throw new TableError('table line: length must be a positive number of sectors, got 0');
  return { start, length, type, args };
}

function parseSectorCount(field: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new TableError(`table line: ${field} must be a whole number of sectors, got '${text}'`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new TableError(`table line: ${field} ${text} is beyond 2^53 sectors`);
  return n;
}
