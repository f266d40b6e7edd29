/**
 * Running a campaign (or this process's shard of it) into a results file,
 * resuming where an earlier run of the same campaign stopped.
 */
import type { Campaign } from './spec.js';
import { runOf } from './spec.js';
import { type PoolProgress, runPool } from './pool.js';
import { readResults, ResultsWriter } from './results-file.js';
import type { CampaignJob, RunTicket } from './runner.js';
import { inShard, type Shard } from './shard.js';

export function campaignJob(c: Campaign): CampaignJob {
  return { campaign: c.id, name: c.spec.name, of: c.totalRuns, source: c.source, points: c.points.map((p) => ({ params: p.params, overrides: p.overrides })) };
}

/** The runs of `shard` (all of them without one), in run order. */
export function ticketsOf(c: Campaign, shard: Shard | undefined, skip: ReadonlySet<number> = new Set()): RunTicket[] {
  const out: RunTicket[] = [];
  for (let run = 0; run < c.totalRuns; run++) {
    if (!inShard(shard, run) || skip.has(run)) continue;
    const { point, replicate, seed } = runOf(c, run);
    out.push({ run, point: point.index, replicate, seed });
  }
  return out;
}

export interface CampaignRunReport {
  file: string;
  /** Runs this shard holds in all. */
  shardRuns: number;
  /** Found in the file already (skipped). */
  resumed: number;
  /** Run now. */
  ran: number;
  /** A cut-short last line was dropped and its run done again. */
  droppedTail: boolean;
  /** CPU time of the runs done now, ms. */
  cpuMs: number;
}

export async function runCampaign(
  c: Campaign,
  opts: { out: string; jobs?: number; shard?: Shard; onProgress?: (p: PoolProgress) => void },
): Promise<CampaignRunReport> {
  const existing = readResults(opts.out, { campaign: c.id, repair: true });
  const done = new Set(existing.records.filter((r) => inShard(opts.shard, r.run)).map((r) => r.run));
  const shardRuns = ticketsOf(c, opts.shard).length;
  const tickets = ticketsOf(c, opts.shard, done);
  const writer = new ResultsWriter(opts.out);
  let cpuMs = 0;
  try {
    if (tickets.length > 0)
      ({ cpuMs } = await runPool(campaignJob(c), tickets, { jobs: opts.jobs, onLines: (l) => writer.append(l), onProgress: opts.onProgress }));
  } finally {
    writer.close();
  }
  return { file: opts.out, shardRuns, resumed: done.size, ran: tickets.length, droppedTail: existing.droppedTail, cpuMs };
}
