/**
 * Runs a set of a campaign's runs over worker processes (one per CPU by
 * default), handing out small batches so the CPUs stay busy to the end, and
 * passing each batch's lines on as it finishes (to a results file, in
 * whatever order they finish). `jobs: 0` runs them in this process.
 *
 * Workers are processes, not threads: each run allocates and frees large
 * sparse tables, and separate heaps keep one CPU's garbage collection from
 * stopping the other's runs. Each worker gets MALLOC_MMAP_THRESHOLD_ fixed at
 * 1 MiB: glibc otherwise raises its threshold after the first large free,
 * then serves the next 8 MiB table from the heap and zeroes it (about 1 ms a
 * table, a quarter of a run's time).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { BatchRunner, type CampaignJob, type RunTicket } from './runner.js';

export interface PoolProgress {
  done: number;
  total: number;
  elapsedMs: number;
  /** Runs per second so far. */
  rate: number;
  /** Seconds left at that rate (undefined before the first batch). */
  etaS: number | undefined;
  /** CPU time the runs took, ms (all workers). */
  cpuMs: number;
}

export interface PoolOptions {
  /** Worker processes; 0: run in this process. Default: one per CPU. */
  jobs?: number;
  onLines?: (lines: string[]) => void;
  onProgress?: (p: PoolProgress) => void;
}

type Reply = { type: 'ready' } | { type: 'done'; lines: string[]; cpuMs: number } | { type: 'error'; message: string; stack?: string };

/**
 * V8 flags for workers when they take every CPU. V8 otherwise optimizes hot
 * functions on a background thread, which one worker gets for free on an idle
 * CPU; with a worker on every CPU that thread takes time from the runs, and
 * compiling on the worker's own thread costs less in all (about 1.5 CPU-s of
 * background compiling against 0.5 s on the main thread, per 1,000 runs).
 */
const BUSY_MACHINE_FLAGS = ['--no-concurrent-recompilation'];

export function defaultJobs(): number {
  return availableParallelism();
}

function workerModule(): { path: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`./worker.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  // from the sources (tests, tsx): the worker loads tsx too, found from here rather than from the working directory
  return { path: fileURLToPath(url), execArgv: fromSource ? ['--import', import.meta.resolve('tsx')] : [] };
}

/** Runs the tickets; resolves with the CPU time they took (ms). */
export async function runPool(job: CampaignJob, tickets: readonly RunTicket[], opts: PoolOptions = {}): Promise<{ cpuMs: number }> {
  const jobs = Math.max(0, Math.min(opts.jobs ?? defaultJobs(), tickets.length));
  const start = Date.now();
  let done = 0;
  let cpuMs = 0;
  const progress = (): void => {
    if (!opts.onProgress) return;
    const elapsedMs = Date.now() - start;
    const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
    opts.onProgress({ done, total: tickets.length, elapsedMs, rate, etaS: done > 0 && rate > 0 ? (tickets.length - done) / rate : undefined, cpuMs });
  };
  if (jobs === 0) {
    const runner = new BatchRunner(job);
    let last = 0;
    for (const t of tickets) {
      const c0 = process.cpuUsage();
      const line = runner.line(t);
      const c = process.cpuUsage(c0);
      cpuMs += (c.user + c.system) / 1000;
      opts.onLines?.([line]);
      done++;
      if (Date.now() - last > 200) {
        last = Date.now();
        progress();
      }
    }
    progress();
    return { cpuMs };
  }
  let next = 0;
  const batchSize = (): number => Math.max(1, Math.min(32, Math.ceil((tickets.length - next) / (jobs * 8))));
  const { path, execArgv } = workerModule();
  const workerArgv = jobs >= availableParallelism() ? [...execArgv, ...BUSY_MACHINE_FLAGS] : execArgv;
  const children: ChildProcess[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      let failed = false;
      const fail = (err: Error): void => {
        if (failed) return;
        failed = true;
        reject(err);
      };
      const feed = (child: ChildProcess): void => {
        if (next >= tickets.length) {
          child.disconnect();
          return;
        }
        const n = batchSize();
        const runs = tickets.slice(next, next + n);
        next += n;
        child.send({ type: 'run', runs });
      };
      for (let i = 0; i < jobs; i++) {
        const child = fork(path, [], {
          execArgv: workerArgv,
          env: { MALLOC_MMAP_THRESHOLD_: '1048576', ...process.env },
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
          serialization: 'advanced',
        });
        children.push(child);
        running++;
        child.on('message', (m: Reply) => {
          if (m.type === 'ready') feed(child);
          else if (m.type === 'error') fail(new Error(`campaign worker: ${m.stack ?? m.message}`));
          else {
            done += m.lines.length;
            cpuMs += m.cpuMs;
            opts.onLines?.(m.lines);
            progress();
            feed(child);
          }
        });
        child.on('exit', (code, signal) => {
          running--;
          if (code !== 0 || signal !== null) fail(new Error(`a campaign worker exited (${signal ?? `code ${code}`}) with runs left`));
          else if (running === 0) {
            if (done === tickets.length) resolve();
            else fail(new Error(`the campaign workers exited with ${tickets.length - done} runs not done`));
          }
        });
        child.send({ type: 'init', job });
      }
    });
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill();
  }
  return { cpuMs };
}
