/**
 * A human summary in the spirit of fio's normal output, made from a result
 * in fio's JSON shape (ours or real fio's): per direction the IOPS/BW line,
 * slat/clat/lat min/max/avg/stdev, the clat percentile table and the bw/iops
 * sample lines, then the latency distribution, flushes, CPU, and our `verify`
 * and `remap` blocks. Numbers are formatted with fio's rules, so a line we
 * print matches the line fio prints for the same data. Differences from fio:
 * no pid in the header, no IO-depth/issued/group-status lines, and lines
 * wider than 80 columns (fio's bw line) continue on an indented next line.
 */
import { cFixed, cFixedWidth, num2str } from './fio-format.js';
import type { FioDirBlock, FioJob, FioLatBlock, FioResult } from './fio-json.js';

export interface SummaryOptions {
  /** Maximum line width (default 80). */
  width?: number;
}

const DIRS = ['read', 'write', 'trim'] as const;
const PRECISION = 2;

export function formatSummary(result: FioResult, options: SummaryOptions = {}): string {
  const width = options.width ?? 80;
  if (!Number.isInteger(width) || width < 40) {
    throw new RangeError(`summary width must be an integer >= 40 (got ${String(width)})`);
  }
  if (typeof result !== 'object' || result === null || !Array.isArray(result.jobs)) {
    throw new TypeError('summary: expected a result with a jobs array');
  }
  const lines: string[] = [];
  for (const job of result.jobs) lines.push(...jobLines(job, result.time));
  return lines.flatMap((l) => wrap(l, width)).join('\n') + (lines.length ? '\n' : '');
}

function jobLines(job: FioJob, time: string): string[] {
  const out: string[] = [];
  out.push(`${job.jobname}: (groupid=${job.groupid}, jobs=1): err=${String(job.error).padStart(2)}: ${time}`);
  for (const d of DIRS) {
    const b = job[d];
    if (b && b.io_bytes > 0 && b.runtime > 0) out.push(...dirLines(d, b));
  }
  out.push(...latDistLines(job));
  const sync = job.sync?.lat_ns;
  if (sync && sync.N > 0) {
    out.push('  fsync/fdatasync/sync_file_range/syncfs:');
    out.push(latLine('sync', sync));
    if (sync.percentile) out.push(...percentileLines('sync', sync.percentile));
  }
  out.push(`${label('cpu')}usr=${cFixed(job.usr_cpu, 2)}%, sys=${cFixed(job.sys_cpu, 2)}%, ` + `ctx=${job.ctx}, majf=${job.majf}, minf=${job.minf}`);
  for (const k of ['verify', 'remap'] as const) {
    if (job[k] !== undefined) out.push(`${label(k)}${flatten(job[k]).join(', ')}`);
  }
  return out;
}

function label(name: string): string {
  return `  ${name.padEnd(13)}: `;
}

function dirLines(name: string, b: FioDirBlock): string[] {
  const out: string[] = [];
  const runt = b.runtime;
  const bw = Math.floor((1000 * b.io_bytes) / runt);
  const iops = Math.floor((1000 * b.total_ios) / runt);
  out.push(
    `  ${name}: IOPS=${num2str(iops, 4, 1, false, '')}, BW=${num2str(bw, 4, 1, true, 'B/s')} ` +
      `(${num2str(bw, 4, 1, false, 'B/s')})(${num2str(b.io_bytes, 4, 1, true, 'B')}/${runt}msec)`,
  );
  if (b.slat_ns.N > 0) out.push(latLine('slat', b.slat_ns));
  if (b.clat_ns.N > 0) out.push(latLine('clat', b.clat_ns));
  if (b.lat_ns.N > 0) out.push(latLine(' lat', b.lat_ns));
  if (b.clat_ns.N > 0 && b.clat_ns.percentile) out.push(...percentileLines('clat', b.clat_ns.percentile));
  if (b.bw_samples > 0) {
    let [min, max, mean, dev] = [b.bw_min, b.bw_max, b.bw_mean, b.bw_dev];
    let unit = 'KiB';
    if (mean > 1024 * 1024) {
      min = Math.floor(min / 1024);
      max = Math.floor(max / 1024);
      mean /= 1024;
      dev /= 1024;
      unit = 'MiB';
    }
    out.push(
      `   bw (${unit.padStart(5)}/s): min=${String(min).padStart(5)}, max=${String(max).padStart(5)}, ` +
        `per=${cFixed(b.bw_agg, 2)}%, avg=${cFixedWidth(mean, 5, 2)}, stdev=${cFixedWidth(dev, 5, 2)}, ` +
        `samples=${b.bw_samples}`,
    );
  }
  if (b.iops_samples > 0) {
    out.push(
      `   iops        : min=${String(b.iops_min).padStart(5)}, max=${String(b.iops_max).padStart(5)}, ` +
        `avg=${cFixedWidth(b.iops_mean, 5, 2)}, stdev=${cFixedWidth(b.iops_stddev, 5, 2)}, ` +
        `samples=${b.iops_samples}`,
    );
  }
  return out;
}

/** fio's display_lat(): picks nsec, usec or msec from the spread of the data. */
function latLine(name: string, l: FioLatBlock): string {
  let { min, max, mean, stddev: dev } = l;
  let base = '(nsec)';
  if (min > 2000000 && max > 99999999 && dev > 1000000) {
    [min, max, mean, dev] = [Math.floor(min / 1e6), Math.floor(max / 1e6), mean / 1e6, dev / 1e6];
    base = '(msec)';
  } else if (min > 2000 && max > 99999 && dev > 1000) {
    [min, max, mean, dev] = [Math.floor(min / 1e3), Math.floor(max / 1e3), mean / 1e3, dev / 1e3];
    base = '(usec)';
  }
  return (
    `    ${name} ${base}: min=${num2str(min, 6, 1, false, '')}, max=${num2str(max, 6, 1, false, '')}, ` +
    `avg=${cFixedWidth(mean, 5, 2)}, stdev=${cFixedWidth(dev, 5, 2)}`
  );
}

/** fio's show_clat_percentiles(): the "|  1.00th=[   30]," table. */
function percentileLines(name: string, pmap: Record<string, number>): string[] {
  const entries = Object.entries(pmap)
    .map(([k, v]) => [Number(k), v] as const)
    .filter(([p]) => Number.isFinite(p));
  if (entries.length === 0) return [];
  const values = entries.map(([, v]) => v);
  const minv = Math.min(...values);
  const maxv = Math.max(...values);
  let scale = 0;
  let divisor = 1;
  let unit = 'nsec';
  if (minv > 2000000 && maxv > 99999999) [scale, divisor, unit] = [2, 1e6, 'msec'];
  else if (minv > 2000 && maxv > 99999) [scale, divisor, unit] = [1, 1e3, 'usec'];
  const top = Math.floor(maxv / divisor);
  const timeWidth = Math.max(5, top >= 1 ? Math.trunc(Math.log10(top) + 1) : 0);
  const perLine = Math.max(1, Math.floor((80 - 7) / (PRECISION + 10 + timeWidth)));
  const out = [`    ${name} percentiles (${unit}):`];
  let line = '     |';
  entries.forEach(([p, v], j) => {
    if (j !== 0 && j % perLine === 0) line = '     |';
    let scaled = v;
    for (let i = 0; i < scale; i++) scaled = Math.floor((scaled + 999) / 1000);
    const last = j === entries.length - 1;
    line += ` ${cFixedWidth(p, PRECISION + 3, PRECISION)}th=[${String(scaled).padStart(timeWidth)}]${last ? '' : ','}`;
    if (last || j % perLine === perLine - 1) out.push(line);
  });
  return out;
}

/** fio's show_latencies(): nonzero buckets, five to a line. */
function latDistLines(job: FioJob): string[] {
  const out: string[] = [];
  const groups: [string, Record<string, number> | undefined][] = [
    ['nsec', job.latency_ns],
    ['usec', job.latency_us],
    ['msec', job.latency_ms],
  ];
  for (const [unit, dist] of groups) {
    if (!dist) continue;
    let items: string[] = [];
    for (const [k, v] of Object.entries(dist)) {
      if (!(v > 0)) continue;
      items.push(`${k}=${cFixed(v, 2)}%`);
      if (items.length === 5) {
        out.push(`  lat (${unit})   : ${items.join(', ')}`);
        items = [];
      }
    }
    if (items.length) out.push(`  lat (${unit})   : ${items.join(', ')}`);
  }
  return out;
}

/** key=value pairs of an opaque block; nested objects as dotted keys. */
function flatten(v: unknown, prefix = ''): string[] {
  if (v === null || typeof v !== 'object') return [prefix ? `${prefix}=${scalar(v)}` : scalar(v)];
  if (Array.isArray(v)) return [`${prefix || 'value'}=${JSON.stringify(v)}`];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v)) out.push(...flatten(x, prefix ? `${prefix}.${k}` : k));
  return out;
}

function scalar(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  return String(v);
}

/**
 * Break a line wider than `width` after a ", " and continue under the text
 * that follows its first ": " (or four spaces in), so unwrapping means
 * joining each continuation to the line before with a space.
 */
function wrap(line: string, width: number): string[] {
  if (line.length <= width) return [line];
  const colon = line.indexOf(': ');
  const indent = colon >= 0 && colon + 2 <= width / 2 ? colon + 2 : 4;
  const parts = line.split(', ');
  const out: string[] = [];
  let cur = parts[0];
  for (let i = 1; i < parts.length; i++) {
    const next = parts[i];
    if (cur.length + 2 + next.length + 1 <= width) {
      cur += `, ${next}`;
    } else {
      out.push(`${cur},`);
      cur = ' '.repeat(indent) + next;
    }
  }
  out.push(cur);
  return out;
}
