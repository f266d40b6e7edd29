/**
 * fio's verify state files for bench: loaded before a verify_only pass with
 * verify_state_load, written when verifying write jobs end (verify_state_save),
 * in --aux-path (fio's option; default: the current directory) under fio's
 * names, so fio and remapsim read each other's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeFioState, encodeFioState, FioStateError, fioStateFileName, type FioThreadState } from '../workload/fio-verify-state.js';
import type { JobSpec } from '../workload/job.js';
import { isFioFormat } from '../workload/verify-options.js';
import { type RunResult, threadIndex } from '../workload/runner.js';
import { UsageError } from '../util/errors.js';
import { checkOutputPath } from './output-path.js';

/** The files the run will write, checked before it starts. */
export function fioStateFilesToSave(jobs: readonly JobSpec[], auxPath: string): string[] {
  const out: string[] = [];
  jobs.forEach((j, k) => {
    if (!j.verifyStateSave || !isFioFormat(j.verify) || !j.directions.includes('write') || j.verifyOnly) return;
    for (let c = 0; c < j.numjobs; c++) out.push(path.join(auxPath, fioStateFileName(j.name, threadIndex(jobs, k, c))));
  });
  for (const f of out) checkOutputPath(f, 'verify_state_save');
  return out;
}

/** Per job, per clone: the states verify_state_load asks for. */
export function loadFioStates(jobs: readonly JobSpec[], auxPath: string): Array<FioThreadState[] | undefined> {
  return jobs.map((j, k) => {
    if (!j.verifyStateLoad) return undefined;
    return Array.from({ length: j.numjobs }, (_, c) => {
      const file = path.join(auxPath, fioStateFileName(j.name, threadIndex(jobs, k, c)));
      let bytes: Uint8Array;
      try {
        bytes = fs.readFileSync(file);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new UsageError(
          `verify_state_load: cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file (verify_state_save writes it when the write job ends)' : (e.code ?? e.message)}`,
        );
      }
      try {
        return decodeFioState(bytes);
      } catch (err) {
        if (err instanceof FioStateError) throw new UsageError(`verify_state_load: ${file}: ${err.message}`);
        throw err;
      }
    });
  });
}

/** Writes the states the run's jobs recorded; returns the files. */
export function saveFioStates(run: RunResult, auxPath: string): string[] {
  const files: string[] = [];
  for (const j of run.jobs) {
    for (const s of j.fioStates ?? []) {
      const file = path.join(auxPath, fioStateFileName(s.name, s.index));
      fs.writeFileSync(file, encodeFioState(s));
      files.push(file);
    }
  }
  return files;
}
