/**
 * Running a batch of a campaign's runs in this process: what each worker
 * process does, and what `--jobs 0` does without any.
 */
import type { SimOverrides, SimSource } from '../config.js';
import { resolveSimConfig, type SimConfig } from '../config.js';
import { simulateRun } from '../run.js';
import { ReadBuffers } from '../../metadata/spare-io.js';
import type { RunRecord } from '../summary.js';
import { setHugePageAdvice } from '../../sys/huge-pages.js';
import { SECTOR_SIZE } from '../../block/device.js';

/** What a worker needs to run any run of the campaign. */
export interface CampaignJob {
  campaign: string;
  name: string;
  of: number;
  source: SimSource;
  points: Array<{ params: Record<string, string | number>; overrides: SimOverrides }>;
}

export interface RunTicket {
  run: number;
  point: number;
  replicate: number;
  seed: number;
}

export class BatchRunner {
  private readonly configs: SimConfig[];
  /** The metadata reads' memory, from one run to the next. */
  private readonly readBuffers = new ReadBuffers();

  constructor(private readonly job: CampaignJob) {
    // the simulator makes many short-lived, sparse tables: huge pages would cost a zeroed 2 MiB page per table
    setHugePageAdvice(false);
    this.configs = job.points.map((p) => resolveSimConfig(job.source, p.overrides));
  }

  /** One run's record, as a results-file line. */
  line(t: RunTicket): string {
    const cfg = this.configs[t.point]!;
    const result = simulateRun(cfg, t.seed, this.readBuffers);
    const record: RunRecord = {
      campaign: this.job.campaign,
      name: this.job.name,
      run: t.run,
      of: this.job.of,
      point: t.point,
      replicate: t.replicate,
      seed: t.seed,
      params: this.job.points[t.point]!.params,
      driveBytes: cfg.main.sectors * SECTOR_SIZE,
      result,
    };
    return JSON.stringify(record);
  }
}
