/**
 * --output-format of bench and run: fio's normal, json and json+ (json with
 * fio's latency bins). Our own blocks ride along in the JSON; with json+,
 * where a reader expects fio's output, a note on stderr names them.
 */
import type { FioResult } from '../stats/fio-json.js';
import { UsageError } from '../util/errors.js';

export type OutputFormat = 'normal' | 'json' | 'json+';
const FORMATS: readonly OutputFormat[] = ['normal', 'json', 'json+'];

export function parseOutputFormat(text: string): OutputFormat {
  if (!(FORMATS as readonly string[]).includes(text)) throw new UsageError(`--output-format: must be normal, json or json+, got '${text}'`);
  return text as OutputFormat;
}

/** The parts of fio-shaped results that are remapsim's, not fio's, present in `results`. */
export function remapsimParts(results: readonly FioResult[]): string[] {
  const parts: string[] = [];
  if (results.some((r) => r.remapsim !== undefined)) parts.push('"remapsim" (top level)');
  for (const key of ['verify', 'remap'] as const) if (results.some((r) => r.jobs.some((j) => j[key] !== undefined))) parts.push(`jobs[].${key}`);
  return parts;
}

/** The stderr note for json+: which parts of the output are remapsim's own (empty when none are). */
export function jsonPlusNote(results: readonly FioResult[]): string {
  const parts = remapsimParts(results);
  if (parts.length === 0) return '';
  return `remapsim: note: json+ as fio prints it (latency bins in clat_ns and sync); ${parts.join(', ')} ${parts.length === 1 ? 'is' : 'are'} remapsim's own, not fio's\n`;
}
