import type { JobSpec } from './job.js';

/** fio's continue_on_error: whether a job goes on after an error of this kind. */
export function continuesAfter(spec: JobSpec, kind: 'read' | 'write' | 'trim' | 'verify'): boolean {
  switch (spec.continueOnError) {
    case 'all':
      return true;
    case 'io':
      return kind !== 'verify';
    case 'none':
      return false;
    case 'verify':
      return kind === 'verify';
    default:
      return spec.continueOnError === kind;
  }
}

/** fio's error for a verify failure. */
export const EILSEQ = 84;
