/** Running real fio from a bench: availability and one job's numbers. */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';

/**
 * fio, bounded: killed after `timeoutS` seconds (fio's nbd engine spins at
 * full CPU for ever when its server dies), its output capped. Throws when it
 * was killed or its output overflowed; the caller checks the exit status.
 */
export function spawnFio(args: string[], timeoutS: number): SpawnSyncReturns<string> {
  const r = spawnSync('fio', args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: timeoutS * 1000, killSignal: 'SIGKILL' });
  if (r.signal !== null || r.error !== undefined) {
    const why = r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT' ? r.error.message : `killed after ${timeoutS} s`;
    throw new Error(`fio ${args.filter((a) => a.startsWith('--name=') || a.startsWith('--ioengine=')).join(' ')}: ${why}`);
  }
  return r;
}

/** Why fio cannot run here, or undefined. */
export function fioMissing(): string | undefined {
  const r = spawnSync('fio', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? undefined : 'fio is not installed (apt-get install fio)';
}

export interface FioNumbers {
  /** Bytes per second. */
  bw: number;
  iops: number;
  /** Median completion latency, ns. */
  clatP50: number;
}

/** Runs one fio job (fio option names without the leading dashes) and returns the read or write side. */
export function runFio(options: Record<string, string | number>, dir: 'read' | 'write' = 'read'): FioNumbers {
  const args = ['--output-format=json', ...Object.entries(options).map(([k, v]) => `--${k}=${v}`)];
  // a time-based job runs for its runtime; a minute more is a fio that hangs
  const r = spawnFio(args, (Number(options.runtime) || 60) + 60);
  if (r.status !== 0) throw new Error(`fio failed (${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  const jobs = json.jobs as Array<Record<string, { bw_bytes: number; iops: number; clat_ns: { percentile?: Record<string, number> } }>>;
  let bw = 0;
  let iops = 0;
  let p50 = 0;
  for (const j of jobs) {
    bw += j[dir].bw_bytes;
    iops += j[dir].iops;
    p50 = Math.max(p50, j[dir].clat_ns.percentile?.['50.000000'] ?? 0);
  }
  return { bw, iops, clatP50: p50 };
}
