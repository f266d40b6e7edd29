/**
 * Campaign and simulation summaries as text for a terminal. Pure.
 */
import { formatBytes, formatDecimalBytes } from '../util/format-size.js';
import type { SimConfig } from './config.js';
import { formatRate } from './rates.js';
import type { SimRunResult } from './result.js';
import type { Interval } from './stats.js';
import { type CampaignSummary, type GroupSummary, paramsLabel } from './summary.js';
import { formatSeconds, toSeconds } from './time.js';

export function pct(x: number): string {
  if (x === 0) return '0%';
  if (x === 1) return '100%';
  const v = x * 100;
  return `${v < 0.1 ? v.toPrecision(2) : v < 10 ? v.toFixed(1) : v.toFixed(1)}%`;
}

export function interval(i: Interval): string {
  return `${pct(i.point)} [${pct(i.lo)}, ${pct(i.hi)}]`;
}

function num(x: number): string {
  return Number(x.toPrecision(3)).toString();
}

/** One line describing what a configuration simulates. */
export function describeConfig(cfg: SimConfig): string {
  const w = cfg.workload;
  const f = cfg.faults.main;
  const parts = [
    cfg.policy,
    `${formatDecimalBytes(cfg.main.sectors * 512)} drive`,
    `spare ${formatBytes(cfg.spare.sectors * 512)}`,
    `${num(w.iops)} IOPS (${Math.round(w.readFraction * 100)}% reads, ${formatBytes(w.bs)}, ${w.pattern.kind === 'zipf' ? `zipf ${w.pattern.theta}` : 'uniform'}${w.idle.length > 0 ? ', idle periods' : ''})`,
  ];
  if (f.latentErrors.length > 0) parts.push(`latent errors ${f.latentErrors.map((l) => formatRate(l.rate)).join('+')}`);
  if (f.weakSectors.length > 0) parts.push(`weak sectors ${f.weakSectors.map((l) => formatRate(l.rate)).join('+')}`);
  if (f.growth.length > 0) parts.push(`growth ${f.growth.map((l) => formatRate(l.rate)).join('+')}`);
  if (f.transient)
    parts.push(`transient errors ${f.transient.ratePerSecond !== undefined ? formatRate(f.transient.ratePerSecond) : `${f.transient.probability}/read`}`);
  parts.push(cfg.scanner ? `scan ${cfg.scanner.every === undefined ? 'back to back' : `every ${formatSeconds(toSeconds(cfg.scanner.every))}`}` : 'no scan');
  if (cfg.target.restartEvery !== undefined) parts.push(`restart every ${formatSeconds(toSeconds(cfg.target.restartEvery))}`);
  if (cfg.target.statusEvery !== undefined) parts.push(`status every ${formatSeconds(toSeconds(cfg.target.statusEvery))}`);
  parts.push(`${formatSeconds(toSeconds(cfg.horizon))} horizon`);
  return parts.join(', ');
}

/** What one group of runs showed, a few lines. */
export function formatGroup(g: GroupSummary, indent = '  '): string {
  const h = formatSeconds(g.horizonSeconds);
  const lines = [
    `${indent}P(acknowledged data lost within ${h}): ${interval(g.lossByHorizon.any)}  (silent: ${interval(g.lossByHorizon.silent)}; unreadable: ${interval(g.lossByHorizon.unreadable)})`,
    `${indent}spare ran out: ${interval(g.exhaustion.share)}${g.exhaustion.quantiles ? `, after ${formatSeconds(g.exhaustion.quantiles.p10)} / ${formatSeconds(g.exhaustion.quantiles.p50)} / ${formatSeconds(g.exhaustion.quantiles.p90)} (10th / 50th / 90th percentile)` : ''}`,
    `${indent}user-visible errors: ${num(g.errorsPerTBYear.point)} per TB-year [${num(g.errorsPerTBYear.lo)}, ${num(g.errorsPerTBYear.hi)}] (${g.errors.read} read, ${g.errors.write} write${g.errors.enospc > 0 ? `, ${g.errors.enospc} for a full spare` : ''})`,
    `${indent}per run: ${num(g.means.badBlocks)} grown bad blocks, ${num(g.means.transientErrors)} transient errors, ${num(g.means.remaps)} remaps, ${num(g.means.pending)} pending, ${num(g.means.simulatedIos)} I/Os run through the policy`,
  ];
  const d = g.detection;
  if (d.appeared > 0) {
    lines.push(
      `${indent}grown bad blocks found first by the scanner: ${d.scannerFirst}, by a user read: ${d.userFirst}${d.userFirstShare ? ` (${interval(d.userFirstShare)} by a user read)` : ''}, by neither: ${d.undiscovered}`,
    );
  }
  if (g.restartsStopped.point > 0) lines.push(`${indent}restarts stopped (the remove would hang or oops the kernel): ${interval(g.restartsStopped)} of runs`);
  return lines.join('\n');
}

/** The runs of one `remapsim simulate`. */
export function formatSimulation(cfg: SimConfig, summary: CampaignSummary, runs: readonly SimRunResult[], cpuSeconds: number): string {
  const g = summary.groups[0]!;
  const years = (summary.runs * summary.horizonSeconds) / (365.25 * 86400);
  const out = [
    `simulate ${summary.name}: ${describeConfig(cfg)}`,
    `${summary.runs} run${summary.runs === 1 ? '' : 's'}, ${num(years)} drive-years in ${cpuSeconds.toFixed(1)} CPU-s (${num(years / Math.max(cpuSeconds, 1e-9))} drive-years per CPU-second)`,
    formatGroup(g),
  ];
  if (runs.length === 1) out.push(formatRun(runs[0]!));
  return out.join('\n');
}

export function formatRun(r: SimRunResult): string {
  const t = (x: number | null): string => (x === null ? 'never' : formatSeconds(x));
  const lines = [
    `  first loss: ${t(r.loss.at)}${r.loss.atReadBack ? ' (found by the read-back at the horizon)' : ''}; silent ${t(r.loss.silentAt)} (${r.loss.silentUnits} units), unreadable ${t(r.loss.unreadableAt)} (${r.loss.unreadableUnits} units)`,
    `  spare: ${r.spare.used}/${r.spare.total} used, ${r.spare.remaps} remaps, ${r.spare.pending} pending, ran out ${t(r.spare.exhaustedAt)}`,
    `  restarts: ${r.restarts.done}${r.restarts.stopped ? `, stopped at ${t(r.restarts.stoppedAt)}: ${r.restarts.stopped}` : ''}; status calls: ${r.statusCalls}`,
    `  oracle: ${
      Object.entries(r.oracle)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'no reads judged'
    }`,
  ];
  return lines.join('\n');
}

/** The policies side by side: P(loss within the horizon) per point of the other parameters. */
export function formatComparison(s: CampaignSummary): string {
  const policies = [...new Set(s.comparison.flatMap((r) => Object.keys(r.policies)))];
  const rows = s.comparison.map((r) => [r.label || '(all)', ...policies.map((p) => (r.policies[p] ? interval(r.policies[p]!.any) : '-'))]);
  const head = ['parameters', ...policies];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [`P(acknowledged data lost within ${formatSeconds(s.horizonSeconds)}), 95% interval:`, `  ${fmt(head)}`, ...rows.map((r) => `  ${fmt(r)}`)].join('\n');
}

export function formatCampaign(s: CampaignSummary): string {
  const fixed = paramsLabel(s.fixed);
  const lines = [
    `campaign ${s.name} (${s.campaign}): ${s.runs} of ${s.expected} runs${s.missing > 0 ? `, ${s.missing} missing` : ''}, ${formatSeconds(s.horizonSeconds)} horizon`,
    ...(fixed ? [`every sweep point: ${fixed}`] : []),
    formatComparison(s),
  ];
  return lines.join('\n');
}
