/**
 * Merging results files (shards from other processes or machines, or one
 * file) into one campaign's records: every file must hold runs of the same
 * campaign; a run found twice must be the same run (its line identical);
 * runs missing are counted, not invented.
 */
import type { RunRecord } from '../summary.js';
import { SimInputError } from '../time.js';
import { readResults } from './results-file.js';

export interface Merged {
  records: RunRecord[];
  /** Run numbers no file holds. */
  missing: number[];
  /** Files whose cut-short last line was ignored. */
  droppedTails: string[];
}

export function mergeResults(files: readonly string[]): Merged {
  if (files.length === 0) throw new SimInputError('campaign merge: give one or more results files');
  const byRun = new Map<number, { record: RunRecord; line: string; file: string }>();
  let campaign: { id: string; file: string; of: number } | undefined;
  const droppedTails: string[] = [];
  for (const file of files) {
    const r = readResults(file);
    if (r.droppedTail) droppedTails.push(file);
    for (const rec of r.records) {
      if (!campaign) campaign = { id: rec.campaign, file, of: rec.of };
      else if (rec.campaign !== campaign.id) {
        throw new SimInputError(
          `${file}: holds runs of campaign ${rec.campaign} ('${rec.name}'); ${campaign.file} holds campaign ${campaign.id}: these are results of different campaigns (the spec or its scenario differs)`,
        );
      }
      const line = JSON.stringify(rec);
      const prev = byRun.get(rec.run);
      if (prev && prev.line !== line)
        throw new SimInputError(`${file}: run ${rec.run} differs from the same run in ${prev.file}: these are not results of one campaign`);
      if (!prev) byRun.set(rec.run, { record: rec, line, file });
    }
  }
  if (!campaign) throw new SimInputError(`campaign merge: no runs in ${files.join(', ')}`);
  const records = [...byRun.keys()].sort((a, b) => a - b).map((k) => byRun.get(k)!.record);
  const missing: number[] = [];
  for (let i = 0; i < campaign.of; i++) if (!byRun.has(i)) missing.push(i);
  return { records, missing, droppedTails };
}
