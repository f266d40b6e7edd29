import { UsageError } from '../util/errors.js';

/** Where an option came from: a job file line, the command line, a scenario. */
export interface OptionSource {
  /** A path, or a description such as 'command line'. */
  file: string;
  /** 1-based line number when the option came from a file. */
  line?: number;
}

export function formatSource(source: OptionSource | undefined): string {
  if (!source) return '';
  return source.line !== undefined ? `${source.file}:${source.line}: ` : `${source.file}: `;
}

/** One problem with a job description, located where it can be. */
export interface SpecIssue {
  source?: OptionSource;
  /** The option the problem is about, as fio names it. */
  option?: string;
  message: string;
}

export function formatIssue(issue: SpecIssue): string {
  return `${formatSource(issue.source)}${issue.option ? `${issue.option}: ` : ''}${issue.message}`;
}

/**
 * A job file, job option or command-line flag the user got wrong. Carries
 * every problem found; the message has one line per problem, each of the form
 * `jobs.fio:9: bs: invalid size 'x4k'`.
 */
export class WorkloadSpecError extends UsageError {
  readonly issues: readonly SpecIssue[];
  constructor(issues: SpecIssue | readonly SpecIssue[]) {
    const list = Array.isArray(issues) ? (issues as readonly SpecIssue[]) : [issues as SpecIssue];
    super(list.map(formatIssue).join('\n'));
    this.issues = list;
  }
}

/**
 * A value that does not parse, thrown by the small parsers in size.ts. The
 * caller adds the location and turns it into a WorkloadSpecError.
 */
export class OptionValueError extends Error {
  override readonly name = 'OptionValueError';
  constructor(
    readonly option: string,
    readonly detail: string,
  ) {
    super(`${option}: ${detail}`);
  }
}
