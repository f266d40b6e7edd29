/**
 * Where `bench` runs: --target, or, as in fio, the jobs' filename= (a job
 * file's, or --filename). Both given, they must name the same file or device;
 * remapsim runs every job of a run on one target.
 */
import * as path from 'node:path';
import type { JobSpec } from '../workload/job.js';
import { statIfAny, sameFile } from '../util/file-identity.js';
import { UsageError } from '../util/errors.js';

export interface BenchTarget {
  spec: string;
  /** Where the target came from when it was filename=: the job file and line, or the command line. */
  fromFilename?: string;
}

/** fio separates files in filename= with ':' ('\:' is a colon in a name). */
function fioFiles(filename: string): string[] {
  return filename.split(/(?<!\\):/).map((f) => f.replace(/\\:/g, ':'));
}

function whereSet(job: JobSpec): string {
  const s = job.sources.filename;
  return s === undefined ? 'the jobs' : s.line !== undefined ? `${s.file}:${s.line}` : s.file;
}

function samePath(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  const sa = statIfAny(a);
  const sb = statIfAny(b);
  return sa !== undefined && sb !== undefined && sameFile(sa, sb);
}

export function benchTarget(target: string | undefined, jobs: readonly JobSpec[]): BenchTarget {
  const named = jobs.filter((j) => j.filename !== undefined);
  const names = [...new Set(named.map((j) => j.filename!))];
  if (names.length > 1) throw new UsageError(`filename: the jobs name different files (${names.join(', ')}); remapsim runs all jobs of a run on one target`);
  const filename = names[0];
  if (filename !== undefined) {
    const files = fioFiles(filename);
    if (files.length > 1)
      throw new UsageError(`filename: '${filename}' (${whereSet(named[0]!)}) names ${files.length} files; remapsim runs a job on one target`);
  }
  if (target === undefined) {
    if (filename === undefined) throw new UsageError("bench needs a target: --target SPEC, or filename= in the job (fio's --filename)");
    const file = fioFiles(filename)[0]!;
    return { spec: file.includes(':') && !file.startsWith('/') ? `./${file}` : file, fromFilename: whereSet(named[0]!) };
  }
  if (filename === undefined) return { spec: target };
  const colon = target.indexOf(':');
  const kind = colon > 0 && !target.startsWith('/') ? target.slice(0, colon) : 'path';
  const rest = kind === 'path' ? target : target.slice(colon + 1);
  const file = fioFiles(filename)[0]!;
  if (!['file', 'dev', 'path'].includes(kind) || !samePath(rest, file)) {
    throw new UsageError(`filename=${filename} (${whereSet(named[0]!)}) and --target ${target} name different targets; drop one, or make them agree`);
  }
  return { spec: target };
}
