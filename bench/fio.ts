/** Running real fio from a bench: availability and one job's numbers. */
import { spawnSync } from 'node:child_process';

export function fioMissing(): string | undefined {
  const r = spawnSync('fio', ['--version'], { encoding: 'utf8' });
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
  const r = spawnSync('fio', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
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
