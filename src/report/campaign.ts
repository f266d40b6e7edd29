/**
 * The report of a campaign (or of `remapsim simulate`'s runs): one
 * self-contained HTML page from its summary. P(loss within the horizon) per
 * sweep point with the policies side by side and their 95% intervals,
 * P(loss by t) over the horizon, the time to spare exhaustion, user-visible
 * errors per TB-year, health over time, and a table of every number. Pure.
 */
import { type CampaignSummary, type GroupSummary, paramsLabel } from '../sim/summary.js';
import { type Series, lineChart } from './charts.js';
import { intervalChart, type IntervalSeries } from './interval-chart.js';
import { esc, textWidth } from './svg.js';

const POLICY_COLORS: Record<string, string> = { safe: '#2f7d4a', 'dm-remap-v4': '#c0392b' };
const OTHER_COLORS = ['#4c78a8', '#f58518', '#54a24b', '#b279a2', '#e45756', '#72b7b2', '#9d755d', '#bab0ac', '#17becf', '#bcbd22'];
const YEAR = 365.25 * 86400;

/** Three significant digits, without trailing zeros. */
const sig3 = (v: number): string => String(Number(v.toPrecision(3)));

function colorOf(name: string, i: number): string {
  return POLICY_COLORS[name] ?? OTHER_COLORS[i % OTHER_COLORS.length]!;
}

function pct(v: number): string {
  if (v === 0) return '0%';
  const x = v * 100;
  return `${x < 1 ? Number(x.toPrecision(2)) : Number(x.toFixed(1))}%`;
}

function years(s: number): string {
  return s >= YEAR / 2 ? `${Number((s / YEAR).toPrecision(3))} y` : s >= 86400 ? `${Number((s / 86400).toPrecision(3))} d` : `${Number(s.toPrecision(3))} s`;
}

/** The sweep's policies (series) and the other parameters' points (categories), from the comparison rows. */
function layout(s: CampaignSummary): { policies: string[]; rows: string[] } {
  return { policies: [...new Set(s.comparison.flatMap((r) => Object.keys(r.policies)))], rows: s.comparison.map((r) => r.label || 'all') };
}

function lossByPoint(s: CampaignSummary, kind: 'any' | 'silent' | 'unreadable', title: string): string {
  const { policies, rows } = layout(s);
  const series: IntervalSeries[] = policies.map((p, i) => ({ name: p, color: colorOf(p, i), values: s.comparison.map((r) => r.policies[p]?.[kind]) }));
  return `<figure class="chart"><figcaption>${esc(title)}</figcaption>${intervalChart({ kind: `loss-${kind}`, title, categories: rows, series, valueTitle: 'probability', format: pct, max: niceProbability(series) })}</figure>`;
}

function niceProbability(series: readonly IntervalSeries[]): number {
  const hi = Math.max(0, ...series.flatMap((s) => s.values.map((v) => v?.hi ?? 0)));
  for (const m of [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]) if (hi <= m) return m;
  return 1;
}

function groupName(g: GroupSummary): string {
  return g.label || 'all';
}

/** A colour per point of the other parameters (the same under both policies; safe dashed), for charts with a line per sweep point. */
function lineStyle(s: CampaignSummary, g: GroupSummary): { color: string; dashed: boolean } {
  const row = s.comparison.findIndex((r) => Object.values(r.policies).some((p) => p.point === g.point));
  const policies = layout(s).policies;
  return {
    color: policies.length > 1 ? OTHER_COLORS[Math.max(0, row) % OTHER_COLORS.length]! : colorOf(String(g.params.policy ?? ''), g.point),
    dashed: g.params.policy === 'safe' && policies.length > 1,
  };
}

/** A chart height that leaves `plot` pixels to the plot below a legend of these names (the legend wraps as lineChart's does). */
function heightFor(names: readonly string[], width: number, plot: number): number {
  let rows = 1;
  let x = 60;
  for (const n of names) {
    const w = 36 + textWidth(n);
    if (x + w > width - 8 && x > 60) {
      rows++;
      x = 60;
    }
    x += w;
  }
  return plot + rows * 16;
}

function lossCurves(s: CampaignSummary): string {
  const { policies } = layout(s);
  const charts: string[] = [];
  for (const row of s.comparison) {
    const series: Series[] = [];
    policies.forEach((p, i) => {
      const cell = row.policies[p];
      if (!cell) return;
      const g = s.groups.find((x) => x.point === cell.point)!;
      series.push({ name: `${p}: any loss`, color: colorOf(p, i), step: true, points: g.loss.t.map((t, k) => [t / YEAR, g.loss.any[k]!.point] as const) });
      series.push({
        name: `${p}: silent`,
        color: colorOf(p, i),
        step: true,
        dashed: true,
        points: g.loss.t.map((t, k) => [t / YEAR, g.loss.silent[k]!.point] as const),
      });
    });
    charts.push(
      `<figure class="run"><figcaption>${esc(row.label || 'all runs')}</figcaption>${lineChart({
        kind: 'loss-curve',
        title: `P(loss by t): ${row.label}`,
        x: { title: 'years', format: sig3, min: 0 },
        y: { title: 'P(loss seen by t)', format: pct, min: 0, max: 1 },
        series,
        width: 420,
        height: 240,
      })}</figure>`,
    );
  }
  return `<div class="runs">${charts.join('')}</div>`;
}

function exhaustionChart(s: CampaignSummary): string {
  const withTimes = s.groups.filter((g) => g.exhaustion.times.length > 0);
  if (withTimes.length === 0) return `<p class="nodata">No spare ran out within the horizon in any run.</p>`;
  const series: Series[] = withTimes.map((g) => ({
    name: groupName(g),
    ...lineStyle(s, g),
    step: true,
    points: [[0, 0] as const, ...g.exhaustion.times.map((t, k) => [t / YEAR, (k + 1) / g.runs] as const)],
  }));
  const height = heightFor(
    series.map((x) => x.name),
    760,
    280,
  );
  return lineChart({
    kind: 'exhaustion',
    title: 'Time to spare exhaustion',
    x: { title: 'years', format: sig3, min: 0, max: s.horizonSeconds / YEAR },
    y: { title: 'share of runs out of spare', format: pct, min: 0, max: 1 },
    series,
    width: 760,
    height,
  });
}

function errorsChart(s: CampaignSummary): string {
  const { policies, rows } = layout(s);
  const series: IntervalSeries[] = policies.map((p, i) => ({
    name: p,
    color: colorOf(p, i),
    values: s.comparison.map((r) => {
      const cell = r.policies[p];
      return cell ? s.groups.find((g) => g.point === cell.point)!.errorsPerTBYear : undefined;
    }),
  }));
  return intervalChart({
    kind: 'errors',
    title: 'User-visible errors per TB-year',
    categories: rows,
    series,
    valueTitle: 'errors per TB-year',
    format: sig3,
  });
}

function healthChart(s: CampaignSummary): string {
  const series: Series[] = s.groups.map((g) => ({
    name: groupName(g),
    ...lineStyle(s, g),
    points: g.health.t.map((t, k) => [t / YEAR, g.health.score[k]!] as const),
  }));
  const height = heightFor(
    series.map((x) => x.name),
    760,
    280,
  );
  return lineChart({
    kind: 'health',
    title: 'Mean health score over time',
    x: { title: 'years', format: sig3, min: 0 },
    y: { title: 'health score (mean of runs)', format: (v) => String(v), min: 0, max: 100 },
    series,
    width: 760,
    height,
  });
}

function table(s: CampaignSummary): string {
  const head = [
    'sweep point',
    'runs',
    'P(loss)',
    'P(silent loss)',
    'P(unreadable)',
    'spare ran out',
    'median exhaustion',
    'errors / TB-year',
    'remaps / run',
    'found by user read first',
    'restarts stopped',
  ];
  const iv = (x: { point: number; lo: number; hi: number }): string => `${pct(x.point)} <span class="ci">[${pct(x.lo)}, ${pct(x.hi)}]</span>`;
  const rows = s.groups.map((g) => {
    const cells = [
      esc(groupName(g)),
      String(g.runs),
      iv(g.lossByHorizon.any),
      iv(g.lossByHorizon.silent),
      iv(g.lossByHorizon.unreadable),
      iv(g.exhaustion.share),
      g.exhaustion.quantiles ? years(g.exhaustion.quantiles.p50) : '-',
      `${sig3(g.errorsPerTBYear.point)} <span class="ci">[${sig3(g.errorsPerTBYear.lo)}, ${sig3(g.errorsPerTBYear.hi)}]</span>`,
      String(g.means.remaps),
      g.detection.userFirstShare ? iv(g.detection.userFirstShare) : '-',
      iv(g.restartsStopped),
    ];
    const bad = g.lossByHorizon.silent.point > 0;
    return `<tr data-point="${g.point}"${bad ? ' class="bad"' : ''}>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  return `<table class="summary"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

const STYLE = `
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--panel:#f6f7f9}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,"DejaVu Sans",sans-serif;color:var(--fg)}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.meta,.intro,.nodata{color:var(--muted)}
.runs{display:grid;grid-template-columns:repeat(auto-fit,minmax(400px,1fr));gap:12px 20px}
figure.chart{margin:0 0 12px}
figure.run{margin:0;background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 10px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{max-width:100%;height:auto;display:block}
svg .line{fill:none}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid var(--line);padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}tr.bad td:first-child{color:#8b1111;font-weight:600}
.ci{color:var(--muted);font-size:12px}
footer{margin-top:32px;color:var(--muted);font-size:12px}
`;

export interface CampaignReportOptions {
  title?: string;
  generatedAt?: Date;
  /** A line on what was simulated (the configuration). */
  describe?: string;
}

export function renderCampaignReport(s: CampaignSummary, opts: CampaignReportOptions = {}): string {
  const title = opts.title ?? `remapsim campaign: ${s.name}`;
  const when = opts.generatedAt ?? new Date();
  const h = years(s.horizonSeconds);
  const fixed = paramsLabel(s.fixed);
  const section = (id: string, heading: string, intro: string, body: string): string =>
    `<section id="${id}"><h2>${esc(heading)}</h2><p class="intro">${esc(intro)}</p>${body}</section>`;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title><style>${STYLE}</style></head><body>`,
    `<header><h1>${esc(title)}</h1><p class="meta">campaign ${esc(s.campaign)}: ${s.runs} of ${s.expected} runs${s.missing > 0 ? ` (${s.missing} missing)` : ''}, ${esc(h)} each; made ${esc(when.toISOString())} by remapsim</p>${fixed ? `<p class="meta">every sweep point: ${esc(fixed)}</p>` : ''}${opts.describe ? `<p class="meta">${esc(opts.describe)}</p>` : ''}</header>`,
    section(
      'loss',
      `P(acknowledged data lost within ${h})`,
      'Per sweep point, each policy with its 95% interval (Wilson). Loss: a read returned acknowledged data lost, stale or corrupt (silent), or failed over it because the medium lost it (unreadable); the read-back of every followed unit at the horizon counts.',
      lossByPoint(s, 'any', `P(loss within ${h})`) + lossByPoint(s, 'silent', `P(silent loss within ${h})`),
    ),
    section(
      'curves',
      'P(loss by t)',
      'The share of runs in which a user read had found lost data by time t (solid: any loss; dashed: silent loss). The last point adds what the read-back at the horizon found.',
      lossCurves(s),
    ),
    section(
      'exhaustion',
      'Time to spare exhaustion',
      'Share of runs whose spare had no block left by time t (dm-remap-v4 solid, safe dashed).',
      exhaustionChart(s),
    ),
    section(
      'errors',
      'User-visible errors',
      'Failed reads and writes the workload saw, per TB of drive and year, with an exact 95% Poisson interval.',
      errorsChart(s),
    ),
    section(
      'health',
      'Health over time',
      'The health score (remapsim health score from the spare: used, pending and the predicted exhaustion) averaged over the runs of each sweep point.',
      healthChart(s),
    ),
    section('table', 'All sweep points', 'Every number of the summary JSON for each sweep point.', table(s)),
    '<footer>Self-contained: nothing is fetched.</footer>',
    '</body></html>',
    '',
  ].join('\n');
}
