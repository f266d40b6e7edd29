/**
 * fio job files (INI), parsed by hand the way fio 3.33's __parse_jobs_ini
 * reads them:
 *
 * - `[name]` starts a job; a section whose name begins with "global" (fio
 *   compares only the first six characters) sets defaults for the jobs
 *   below it, and later global sections add to earlier ones.
 * - `;` or `#` anywhere starts a comment (fio cuts the line there, so values
 *   cannot contain them); blank lines are skipped.
 * - `key=value`, with blanks around `=` allowed, or a bare `key` (a flag).
 *   A key set twice keeps the last value; job options override globals.
 * - `include <file>` pulls in lines from another file (no sections there),
 *   looked up as written and then next to the including file, like fio.
 * - `${VAR}` in an option line is replaced by the environment variable
 *   (empty when unset), and `$ncpus`, `$pagesize`, `$mb_memory` by the
 *   machine's values.
 *
 * Option names are checked here (an unknown one is reported with its line);
 * values are checked by job.ts, which keeps every option's file and line.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkloadSpecError, type OptionSource, type SpecIssue } from './errors.js';
import { lookupOption, suggestOption } from './options.js';

export interface OptionEntry {
  /** fio's main name for the option (aliases resolved: blocksize -> bs). */
  name: string;
  /** The key as written. */
  key: string;
  /** The value after substitution; null for a bare flag. */
  value: string | null;
  source: OptionSource;
  /** Set in a [global] section or before the first --name: fio prints it under "global options". */
  global?: boolean;
}

/**
 * Options by fio name. Iteration order is the order in which the values
 * took effect (setting a key again moves it to the end), which matters for
 * pairs such as rwmixread/rwmixwrite where the later one wins.
 */
export type OptionMap = Map<string, OptionEntry>;

export interface JobSection {
  /** The section name ([name]); a `name=` option may rename the job. */
  name: string;
  source: OptionSource;
  /** Global options in effect at the section, then the section's own. */
  options: OptionMap;
}

/** Values for fio's reserved keywords. */
export interface Keywords {
  ncpus: number;
  pagesize: number;
  mb_memory: number;
}

export function systemKeywords(): Keywords {
  return {
    ncpus: os.availableParallelism(),
    pagesize: 4096,
    mb_memory: Math.floor(os.totalmem() / (1024 * 1024)),
  };
}

export interface JobFileOptions {
  /** The name used in messages and as the base for relative includes. */
  file?: string;
  /** Reads an included file (default: from disk). */
  readFile?: (file: string) => string;
  /** Whether a file exists (default: from disk). */
  exists?: (file: string) => boolean;
  /** Environment for ${VAR} (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  keywords?: Keywords;
  /** Like fio --section: only these job sections (global sections always apply). */
  sections?: readonly string[];
  /** Options in effect before the file's first [global] (fio's command-line globals). */
  defaults?: OptionMap;
}

/** Sets an option, moving it to the end of the map's order. */
export function setOption(map: OptionMap, entry: OptionEntry): void {
  map.delete(entry.name);
  map.set(entry.name, entry);
}

/** The options of `base` overridden by those of `over`. */
export function mergeOptions(base: OptionMap, over: OptionMap): OptionMap {
  const out: OptionMap = new Map(base);
  for (const e of over.values()) setOption(out, e);
  return out;
}

export function substituteEnv(text: string, env: Readonly<Record<string, string | undefined>>): string {
  return text.replace(/\$\{([^}]*)\}/g, (_, name: string) => env[name] ?? '');
}

export function substituteKeywords(text: string, keywords: Keywords): string {
  return text.replace(/\$(ncpus|pagesize|mb_memory)\b/g, (_, k: keyof Keywords) => String(keywords[k]));
}

/**
 * Turns `key=value` (or a bare `key`) into an entry, or an issue when fio
 * does not know the key. Options fio knows but remapsim does not implement
 * pass through: job.ts reports them.
 */
export function makeEntry(key: string, value: string | null, source: OptionSource): OptionEntry | SpecIssue {
  const found = lookupOption(key);
  if (found.status === 'unknown') {
    const hint = suggestOption(key);
    return { source, message: `unknown option '${key}'${hint ? ` (did you mean '${hint}'?)` : ''}` };
  }
  const name = found.status === 'supported' ? found.def.name : found.name;
  return { name, key, value, source };
}

function isIssue(x: OptionEntry | SpecIssue): x is SpecIssue {
  return !('key' in x);
}

/** Cuts a line at the first ';' or '#' and trims it, as fio's strip_blank_end does. */
function stripLine(raw: string): string {
  let s = raw;
  const semi = s.indexOf(';');
  if (semi >= 0) s = s.slice(0, semi);
  const hash = s.indexOf('#');
  if (hash >= 0) s = s.slice(0, hash);
  return s.trim();
}

type Target = { kind: 'none' } | { kind: 'global' } | { kind: 'skip' } | { kind: 'job'; job: JobSection };

/** Parses job-file text; throws a WorkloadSpecError listing every problem with its file and line. */
export function parseJobFile(text: string, options: JobFileOptions = {}): JobSection[] {
  const file = options.file ?? 'job file';
  const readFile = options.readFile ?? ((f: string) => fs.readFileSync(f, 'utf8'));
  const exists = options.exists ?? ((f: string) => fs.existsSync(f));
  const env = options.env ?? process.env;
  const keywords = options.keywords ?? systemKeywords();
  const only = options.sections;

  const issues: SpecIssue[] = [];
  const jobs: JobSection[] = [];
  const globals: OptionMap = new Map(options.defaults ?? []);
  let target: Target = { kind: 'none' };

  const addOption = (line: string, source: OptionSource): void => {
    if (target.kind === 'skip') return;
    if (target.kind === 'none') {
      issues.push({ source, message: `option '${line}' is outside of a [job] section` });
      return;
    }
    const expanded = substituteKeywords(substituteEnv(line, env), keywords);
    const eq = expanded.indexOf('=');
    const key = (eq >= 0 ? expanded.slice(0, eq) : expanded).trim();
    const value = eq >= 0 ? expanded.slice(eq + 1).trim() : null;
    if (key === '') {
      issues.push({ source, message: `missing option name in '${line}'` });
      return;
    }
    const entry = makeEntry(key, value, source);
    if (isIssue(entry)) issues.push(entry);
    else {
      if (target.kind === 'global') entry.global = true;
      setOption(target.kind === 'global' ? globals : target.job.options, entry);
    }
  };

  const processText = (content: string, name: string, stack: readonly string[]): void => {
    const nested = stack.length > 1;
    const lines = content.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const source: OptionSource = { file: name, line: i + 1 };
      const line = stripLine(lines[i]!);
      if (line === '') continue;

      if (line.startsWith('[')) {
        if (nested) {
          issues.push({ source, message: `sections are not allowed in an included file: '${line}'` });
          continue;
        }
        if (!line.endsWith(']') || line.length < 3 || line.slice(1, -1).trim() === '') {
          issues.push({ source, message: `invalid section header '${line}' (expected [name])` });
          target = { kind: 'skip' };
          continue;
        }
        const sectionName = line.slice(1, -1);
        if (sectionName.startsWith('global')) target = { kind: 'global' };
        else if (only && !only.includes(sectionName)) target = { kind: 'skip' };
        else {
          const job: JobSection = { name: sectionName, source, options: new Map(globals) };
          jobs.push(job);
          target = { kind: 'job', job };
        }
        continue;
      }

      const inc = /^include(?:\s+(.*))?$/.exec(line);
      if (inc) {
        if (target.kind === 'none') {
          issues.push({ source, message: `'${line}' is outside of a [job] section` });
          continue;
        }
        const wanted = (inc[1] ?? '').trim();
        if (wanted === '') {
          issues.push({ source, message: 'include needs a file name' });
          continue;
        }
        const beside = path.join(path.dirname(name), wanted);
        const resolved = exists(wanted) ? wanted : path.isAbsolute(wanted) ? undefined : exists(beside) ? beside : undefined;
        if (resolved === undefined) {
          issues.push({ source, message: `include file '${wanted}' not found` });
          continue;
        }
        const key = path.resolve(resolved);
        if (stack.includes(key)) {
          issues.push({ source, message: `include cycle: '${wanted}' includes itself` });
          continue;
        }
        let body: string;
        try {
          body = readFile(resolved);
        } catch (err) {
          issues.push({ source, message: `cannot read include file '${wanted}': ${(err as Error).message}` });
          continue;
        }
        processText(body, resolved, [...stack, key]);
        continue;
      }

      addOption(line, source);
    }
  };

  processText(text, file, [path.resolve(file)]);
  if (issues.length > 0) throw new WorkloadSpecError(issues);
  return jobs;
}

/** Reads and parses a job file from disk. */
export function loadJobFile(file: string, options: Omit<JobFileOptions, 'file'> = {}): JobSection[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new WorkloadSpecError({ message: `cannot read job file '${file}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
  }
  return parseJobFile(text, { ...options, file });
}
