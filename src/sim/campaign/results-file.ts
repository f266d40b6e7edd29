/**
 * A campaign's results file: one JSON line per finished run (a RunRecord),
 * appended as runs finish, in any order. A rerun reads it and skips the
 * runs it holds. A process killed mid-write leaves a last line cut short:
 * it is dropped (the file is cut back to the last whole line) and that run
 * is done again. A line of another campaign, or a damaged line before the
 * last, is refused in one line.
 */
import * as fs from 'node:fs';
import type { RunRecord } from '../summary.js';
import { SimInputError } from '../time.js';

export interface ReadResults {
  records: RunRecord[];
  /** A cut-short last line was dropped (and, with `repair`, cut from the file). */
  droppedTail: boolean;
}

function isRecord(v: unknown): v is RunRecord {
  const r = v as Partial<RunRecord> | null;
  return (
    r !== null &&
    typeof r === 'object' &&
    typeof r.campaign === 'string' &&
    Number.isInteger(r.run) &&
    Number.isInteger(r.point) &&
    typeof r.result === 'object' &&
    r.result !== null
  );
}

/** Parses a results file's text; `campaign`, when given, must be every line's. */
export function parseResults(text: string, file: string, campaign?: string): ReadResults & { goodBytes: number } {
  const records: RunRecord[] = [];
  let pos = 0;
  let line = 0;
  let droppedTail = false;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl;
    const body = text.slice(pos, end);
    line++;
    const last = nl < 0 || text.slice(nl + 1).trim() === '';
    let parsed: unknown;
    let ok = false;
    if (body.trim() !== '') {
      try {
        parsed = JSON.parse(body);
        ok = isRecord(parsed);
      } catch {
        ok = false;
      }
    } else ok = true;
    if (!ok || nl < 0) {
      // a line without its newline was being written when the process died, even if it parses
      if (last) {
        droppedTail = body.trim() !== '';
        break;
      }
      throw new SimInputError(`${file}:${line}: not a run record (a damaged line in the middle of the file; remove it to redo that run)`);
    }
    if (body.trim() !== '') {
      const r = parsed as RunRecord;
      if (campaign !== undefined && r.campaign !== campaign) {
        throw new SimInputError(
          `${file}:${line}: holds runs of campaign ${r.campaign} ('${r.name}'), not ${campaign}: the spec or its scenario changed; write to another file`,
        );
      }
      records.push(r);
    }
    pos = end + 1;
  }
  return { records, droppedTail, goodBytes: droppedTail ? Buffer.byteLength(text.slice(0, pos)) : Buffer.byteLength(text) };
}

/** Reads a results file (missing: empty); with `repair`, a cut-short last line is cut from the file. */
export function readResults(file: string, opts: { campaign?: string; repair?: boolean } = {}): ReadResults {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], droppedTail: false };
    throw new SimInputError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const r = parseResults(text, file, opts.campaign);
  if (r.droppedTail && opts.repair) fs.truncateSync(file, r.goodBytes);
  return { records: r.records, droppedTail: r.droppedTail };
}

/** Appends lines to a results file; each append is one write of whole lines. */
export class ResultsWriter {
  private readonly fd: number;

  constructor(readonly file: string) {
    try {
      this.fd = fs.openSync(file, 'a');
    } catch (err) {
      throw new SimInputError(`${file}: cannot write (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }

  append(lines: readonly string[]): void {
    if (lines.length === 0) return;
    fs.writeSync(this.fd, lines.map((l) => `${l}\n`).join(''));
  }

  close(): void {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
  }
}
