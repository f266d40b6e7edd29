/**
 * A campaign worker process (forked by pool.ts): takes the campaign once,
 * then batches of runs, and sends back their results lines.
 */
import { BatchRunner, type CampaignJob, type RunTicket } from './runner.js';

type Request = { type: 'init'; job: CampaignJob } | { type: 'run'; runs: RunTicket[] };

let runner: BatchRunner | undefined;

process.on('message', (m: Request) => {
  try {
    if (m.type === 'init') {
      runner = new BatchRunner(m.job);
      process.send!({ type: 'ready' });
      return;
    }
    const c0 = process.cpuUsage();
    const lines = m.runs.map((t) => runner!.line(t));
    const c = process.cpuUsage(c0);
    process.send!({ type: 'done', lines, cpuMs: (c.user + c.system) / 1000 });
  } catch (err) {
    process.send!({ type: 'error', message: (err as Error).message, stack: (err as Error).stack });
  }
});
process.on('disconnect', () => process.exit(0));
