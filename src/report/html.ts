/**
 * The report: one self-contained HTML page (styles, script and SVG charts
 * inline; nothing fetched) for one or more runs, side by side. The chart
 * data comes from the results' fio blocks (latency percentiles), the
 * `remapsim` block (timeline, device map) and the oracle's `verify` block.
 */
import { type BarGroup, type MapMarker, type Series, barChart, hasPoints, heatmap, lineChart, mapHasData } from './charts.js';
import { fmtBytes, fmtBytesPerSec, fmtCount, fmtNs, fmtPercentile, fmtSeconds, sig3 } from './format.js';
import { BINS_PER_DECADE, hasBins, histogramSeries, type LatencyKey } from './histogram.js';
import { DIRECTIONS, type Dir, type ReportRun } from './load.js';
import { esc, niceMax, niceMaxBinary } from './svg.js';
import { FINDING_CLASSES as ORACLE_FINDING_CLASSES, READ_CLASSES, type ReadClass } from '../workload/oracle.js';

const FINDING_CLASSES: readonly ReadClass[] = ORACLE_FINDING_CLASSES;
const CLASS_TEXT: Record<ReadClass, string> = {
  ok: 'ok',
  stale: 'stale',
  lost: 'lost',
  corrupt: 'corrupt',
  expectedError: 'expected error',
  unexpectedError: 'unexpected error',
  unjudged: 'unjudged',
  notWritten: 'not written by this run',
};
export const DIR_COLORS: Record<Dir, string> = { read: '#1f77b4', write: '#ff7f0e', trim: '#2ca02c' };
const RUN_COLORS = ['#4c78a8', '#f58518', '#54a24b', '#b279a2', '#e45756', '#72b7b2', '#9d755d', '#bab0ac'];
const JOB_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#d62728'];

// ---- chart data from a run (pure, exported for tests)

/** Bandwidth (bytes/s) or IOPS per direction over time (x in seconds); directions without I/O are left out. */
export function ioSeries(run: ReportRun, what: 'bw' | 'iops'): Series[] {
  const t = run.timeline;
  if (!t) return [];
  return DIRECTIONS.filter((d) => t.io[d][what].some((v) => v > 0)).map((d) => ({
    name: d,
    color: DIR_COLORS[d],
    points: t.io.t.map((ms, i) => [(ms + t.intervalMs / 2) / 1000, t.io[d][what][i]] as const),
  }));
}

/** The x position of a percentile on a "nines" axis: 90 -> 1, 99 -> 2, 99.9 -> 3. */
export function nines(p: number): number {
  return -Math.log10(1 - p / 100);
}

const NINES_TICKS = [0, 50, 90, 99, 99.9, 99.99, 99.999].map((p) => ({ value: nines(p), label: p === 0 ? '0' : fmtPercentile(p) }));

function latencyKeys(run: ReportRun): LatencyKey[] {
  const out: LatencyKey[] = [];
  const many = run.jobs.length > 1;
  run.jobs.forEach((j, ji) => {
    for (const d of DIRECTIONS) {
      if (!j.dirs[d].clat?.percentile) continue;
      out.push({ name: many ? `${j.name} ${d}` : d, color: many ? JOB_COLORS[out.length % JOB_COLORS.length] : DIR_COLORS[d], job: ji, dir: d });
    }
  });
  return out;
}

/** Completion-latency percentiles (x: nines of the percentile, y: ns) per job and direction. */
export function percentileSeries(run: ReportRun): Series[] {
  return latencyKeys(run).map((k) => {
    const pct = run.jobs[k.job].dirs[k.dir].clat!.percentile!;
    const points = Object.entries(pct)
      .map(([p, ns]) => [Number(p), ns] as const)
      .filter(([p]) => p > 0 && p < 100)
      .sort((a, b) => a[0] - b[0])
      .map(([p, ns]) => [nines(p), ns] as const);
    return { name: k.name, color: k.color, points };
  });
}

/** The CDF of completion latency from fio's percentile points, with (min, 0) and (max, 1) at the ends. */
export function cdfSeries(run: ReportRun): Series[] {
  return latencyKeys(run).map((k) => {
    const clat = run.jobs[k.job].dirs[k.dir].clat!;
    const pts = Object.entries(clat.percentile!)
      .map(([p, ns]) => [ns, Number(p) / 100] as const)
      .filter(([, f]) => f > 0 && f <= 1)
      .sort((a, b) => a[1] - b[1]);
    const points = [[Math.max(1, clat.min), 0] as const, ...pts, [Math.max(1, clat.max), 1] as const];
    return { name: k.name, color: k.color, points, step: true };
  });
}

/** Remaps, spare used, pending and bad blocks over time (x in seconds). */
export function remapSeries(run: ReportRun): Series[] {
  const d = run.timeline?.device;
  if (!d || d.t.length === 0) return [];
  const at = (i: number): number => d.t[i] / 1000;
  const out: Series[] = [
    { name: 'remaps', color: '#1f77b4', points: d.remaps.map((v, i) => [at(i), v] as const), step: true },
    { name: 'spare used', color: '#9467bd', points: d.spareUsed.map((v, i) => [at(i), v] as const), step: true, dashed: true },
  ];
  const opt = (key: 'pending' | 'badBlocks', name: string, color: string): void => {
    const a = d[key];
    if (!a?.some((v) => v !== null && v > 0)) return;
    out.push({ name, color, step: true, points: a.flatMap((v, i) => (v === null ? [] : [[at(i), v] as const])) });
  };
  opt('pending', 'pending', '#e6a700');
  opt('badBlocks', 'bad blocks', '#d62728');
  return out;
}

export function healthSeries(run: ReportRun): Series[] {
  const d = run.timeline?.device;
  if (!d?.health) return [];
  return [{ name: 'health', color: '#2ca02c', step: true, points: d.health.flatMap((v, i) => (v === null ? [] : [[d.t[i] / 1000, v] as const])) }];
}

/** The oracle's first sectors of the classes that are findings, as map markers. */
export function findingMarkers(run: ReportRun): MapMarker[] {
  const first = run.oracle?.first ?? {};
  return FINDING_CLASSES.flatMap((cls) => (first[cls] ?? []).map((s) => ({ sector: s, label: `${CLASS_TEXT[cls]} at sector ${s}` })));
}

/** Read classes over all runs (units), the oracle's run report when there is one, else the jobs' own counts. */
export function classCounts(run: ReportRun): Record<string, number> | undefined {
  if (run.oracle) return run.oracle.reads;
  const withReads = run.jobs.filter((j) => j.verifyReads);
  if (withReads.length === 0) return undefined;
  const out: Record<string, number> = {};
  for (const j of withReads) for (const [k, v] of Object.entries(j.verifyReads!)) out[k] = (out[k] ?? 0) + v;
  return out;
}

// ---- page assembly

export interface ReportOptions {
  title?: string;
  /** When the page was made (default now); fixed in tests. */
  generatedAt?: Date;
}

function maxOf(series: Series[][]): number {
  let m = 0;
  for (const ss of series) for (const s of ss) for (const p of s.points) if (p[1] > m) m = p[1];
  return m;
}

function figure(run: ReportRun, body: string): string {
  return `<figure class="run"><figcaption>${esc(run.label)}</figcaption>${body}</figure>`;
}

function noData(why: string): string {
  return `<p class="nodata">${esc(why)}</p>`;
}

function section(id: string, title: string, intro: string, figures: string[]): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>${intro ? `<p class="intro">${esc(intro)}</p>` : ''}<div class="runs">${figures.join('')}</div></section>`;
}

const NO_TIMELINE = 'no timeline in this results file (plain fio output, or written before remapsim recorded timelines)';

function pct(run: ReportRun, d: Dir, p: string): number | undefined {
  for (const j of run.jobs) {
    const v = j.dirs[d].clat?.percentile?.[p];
    if (v !== undefined) return v;
  }
  return undefined;
}

function summaryTable(runs: readonly ReportRun[]): string {
  const sum = (r: ReportRun, d: Dir, k: 'bwBytes' | 'iops'): number => r.jobs.reduce((a, j) => a + j.dirs[d][k], 0);
  const num = (v: unknown): string => (typeof v === 'number' ? fmtCount(v) : '-');
  const rows: Array<[string, (r: ReportRun) => string]> = [
    ['results', (r) => r.source],
    ['scenario', (r) => r.scenario ?? '-'],
    ['policy', (r) => r.policy ?? '-'],
    [
      'run time',
      (r) =>
        r.timeline
          ? fmtSeconds(r.timeline.durationMs / 1000)
          : `${fmtSeconds(Math.max(0, ...r.jobs.map((j) => Math.max(...DIRECTIONS.map((d) => j.dirs[d].runtimeMs)))) / 1000)}`,
    ],
    ['read', (r) => `${fmtBytesPerSec(sum(r, 'read', 'bwBytes'))}, ${fmtCount(sum(r, 'read', 'iops'))} IOPS`],
    ['write', (r) => `${fmtBytesPerSec(sum(r, 'write', 'bwBytes'))}, ${fmtCount(sum(r, 'write', 'iops'))} IOPS`],
    [
      'read clat p50 / p99 / p99.9',
      (r) =>
        ['50.000000', '99.000000', '99.900000']
          .map((p) => {
            const v = pct(r, 'read', p);
            return v === undefined ? '-' : fmtNs(v);
          })
          .join(' / '),
    ],
    [
      'write clat p50 / p99 / p99.9',
      (r) =>
        ['50.000000', '99.000000', '99.900000']
          .map((p) => {
            const v = pct(r, 'write', p);
            return v === undefined ? '-' : fmtNs(v);
          })
          .join(' / '),
    ],
    ['remaps', (r) => num(r.remap?.remaps)],
    ['spare used', (r) => (r.remap ? `${num(r.remap.spareUsed)} of ${num(r.remap.spareCapacity)}` : '-')],
    ['pending', (r) => num(r.remap?.pending)],
    ['bad blocks grown', (r) => num(r.remap?.grownBadBlocks)],
    ['oracle findings', (r) => (r.oracle?.findings !== undefined ? String(r.oracle.findings) : '-')],
  ];
  const head = `<tr><th></th>${runs.map((r) => `<th>${esc(r.label)}</th>`).join('')}</tr>`;
  const body = rows.map(([k, f]) => `<tr><th>${esc(k)}</th>${runs.map((r) => `<td>${esc(f(r))}</td>`).join('')}</tr>`).join('');
  const verdict = `<tr class="verdict"><th>verdict</th>${runs
    .map((r) => {
      if (r.oracle?.findings === undefined) return '<td>not verified</td>';
      return r.oracle.findings === 0
        ? '<td class="good">nothing lost</td>'
        : `<td class="bad">${r.oracle.findings} units lost, stale, corrupt or failed without cause</td>`;
    })
    .join('')}</tr>`;
  return `<section id="summary"><h2>Summary</h2><div class="table-wrap"><table class="summary">${head}${body}${verdict}</table></div></section>`;
}

function oracleSection(runs: readonly ReportRun[]): string {
  const counted = runs.map((r) => ({ run: r, counts: classCounts(r) })).filter((x) => x.counts !== undefined);
  if (counted.length === 0) return section('oracle', "The oracle's findings", '', [noData('no job verified its data (set verify=crc32c to judge every read)')]);
  const groups: BarGroup[] = counted.map((x, i) => ({
    name: x.run.label,
    color: RUN_COLORS[i % RUN_COLORS.length],
    values: READ_CLASSES.map((k) => x.counts![k] ?? 0),
  }));
  const chart = barChart({
    kind: 'oracle',
    title: 'Reads by class (verify units)',
    categories: READ_CLASSES.map((k) => CLASS_TEXT[k]),
    groups,
    valueTitle: 'units',
  });
  const head = `<tr><th>class</th>${counted.map((x) => `<th>${esc(x.run.label)}</th>`).join('')}</tr>`;
  const rows = READ_CLASSES.map((k) => {
    const cells = counted.map((x) => {
      const n = x.counts![k] ?? 0;
      const first = x.run.oracle?.first?.[k] ?? [];
      const sectors =
        k !== 'ok' && first.length > 0 ? `<div class="sectors">first sectors: ${first.slice(0, 12).join(' ')}${first.length > 12 ? ' ...' : ''}</div>` : '';
      const cls = FINDING_CLASSES.includes(k) && n > 0 ? ' class="bad"' : '';
      return `<td${cls}>${n}${sectors}</td>`;
    });
    return `<tr><th>${esc(CLASS_TEXT[k])}</th>${cells.join('')}</tr>`;
  });
  const reasons = counted
    .filter((x) => x.run.oracle?.corruptReasons && Object.keys(x.run.oracle.corruptReasons).length > 0)
    .map(
      (x) =>
        `<p>${esc(x.run.label)}: corrupt because ${esc(
          Object.entries(x.run.oracle!.corruptReasons!)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
        )}</p>`,
    )
    .join('');
  const intro =
    'Every read judged against what was acknowledged: stale, lost, corrupt and unexpected errors are data the device lost or damaged; expected errors hit known-bad sectors; unjudged units follow a failed write; units not written by this run (on a target whose earlier content is unknown) are not judged.';
  return `<section id="oracle"><h2>The oracle's findings</h2><p class="intro">${esc(intro)}</p><div class="runs one">${chart}</div><div class="table-wrap"><table class="oracle">${head}${rows.join('')}</table></div>${reasons}</section>`;
}

const STYLE = `
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--bg:#fff;--panel:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,-apple-system,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.meta,.intro,.nodata{color:var(--muted)}.nodata{font-style:italic;padding:24px 0}
.runs{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,584px),1fr));gap:16px 24px}
.runs.one{grid-template-columns:minmax(0,760px)}
figure.run{margin:0;background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 10px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{max-width:100%;height:auto;display:block;font:12px system-ui,"DejaVu Sans",sans-serif}
svg .grid{stroke:#e6e8ee;stroke-width:1}svg .axis{stroke:#8a93a5;stroke-width:1}
svg .tick{fill:#5b6475}svg .axis-title{fill:#3a4150}svg .category{fill:#1d2330}svg .value{fill:#3a4150;font-size:11px}
svg .line{fill:none;stroke-width:1.8;stroke-linejoin:round}
svg .legend-item{cursor:pointer}svg .legend-item.off{opacity:.35}svg .series.off{display:none}
svg .map-bg{fill:#eef0f4}svg .finding{fill:none;stroke:#000;stroke-width:1.4}
svg .nodata{fill:#8a93a5;font-style:italic}
table{border-collapse:collapse;margin:8px 0;max-width:100%}th,td{border:1px solid var(--line);padding:4px 10px;text-align:right;vertical-align:top;overflow-wrap:anywhere}
.table-wrap{max-width:100%;overflow-x:auto}
th:first-child{text-align:left}table.summary td,table.oracle td{min-width:140px}
td.bad{background:#fde8e8;color:#8b1111}td.good{background:#e7f6ea;color:#1c5b2a}
.sectors{font:11px ui-monospace,"DejaVu Sans Mono",monospace;color:var(--muted);max-width:360px;white-space:normal;text-align:left}
footer{margin-top:32px;color:var(--muted);font-size:12px}
`;

// Clicking a legend entry hides or shows that series in its chart.
const SCRIPT = `
document.addEventListener('click', function (ev) {
  var item = ev.target instanceof Element ? ev.target.closest('.legend-item') : null;
  if (!item) return;
  var svg = item.closest('svg');
  var name = item.getAttribute('data-series');
  var off = item.classList.toggle('off');
  svg.querySelectorAll('.series').forEach(function (g) {
    if (g.getAttribute('data-name') === name) g.classList.toggle('off', off);
  });
});
`;

/** The whole page for `runs` (at least one). */
export function renderReport(runs: readonly ReportRun[], opts: ReportOptions = {}): string {
  if (runs.length === 0) throw new RangeError('report: no runs to show');
  const when = opts.generatedAt ?? new Date();
  const scenarios = [...new Set(runs.map((r) => r.scenario).filter((s): s is string => s !== undefined))];
  const title =
    opts.title ??
    `remapsim report${scenarios.length > 0 ? `: ${scenarios.join(', ')}` : ''}${runs.length > 1 ? ` (${runs.map((r) => r.label).join(' vs ')})` : ''}`;
  const xMax = Math.max(1, ...runs.map((r) => (r.timeline ? r.timeline.durationMs / 1000 : 0)));
  const timeAxis = { title: 'time (s)', format: fmtSeconds, min: 0, max: xMax };

  const bw = runs.map((r) => ioSeries(r, 'bw'));
  const iops = runs.map((r) => ioSeries(r, 'iops'));
  const bwMax = niceMaxBinary(maxOf(bw));
  const iopsMax = niceMax(maxOf(iops));
  const timeFigures = (
    series: Series[][],
    kind: string,
    what: string,
    yAxis: { title: string; format: (v: number) => string; max: number; binary?: boolean },
  ): string[] =>
    runs.map((r, i) =>
      figure(
        r,
        !r.timeline
          ? noData(NO_TIMELINE)
          : hasPoints(series[i])
            ? lineChart({ kind, title: `${what}: ${r.label}`, x: timeAxis, y: { ...yAxis, min: 0 }, series: series[i] })
            : noData('no I/O was recorded'),
      ),
    );

  const pcts = runs.map(percentileSeries);
  const cdfs = runs.map(cdfSeries);
  const hists = runs.map((r) => histogramSeries(r, latencyKeys(r)));
  const latencies = [...pcts, ...cdfs, ...hists].flat().flatMap((s) => s.points.map((p) => (s.step ? p[0] : p[1])));
  const latMin = Math.min(...latencies.filter((v) => v > 0), Infinity);
  const latMax = Math.max(...latencies, 0);
  const latLo = Number.isFinite(latMin) ? 10 ** Math.floor(Math.log10(latMin)) : 1;
  const latHi = latMax > 0 ? 10 ** Math.ceil(Math.log10(latMax)) : 10;
  const ninesMax = Math.max(2, ...pcts.flat().flatMap((s) => s.points.map((p) => Math.ceil(p[0]))));
  const noLat = 'no completion-latency percentiles in this results file';

  const remaps = runs.map(remapSeries);
  const remapMax = niceMax(maxOf(remaps));
  const health = runs.map(healthSeries);

  const sections = [
    summaryTable(runs),
    section(
      'bandwidth',
      'Bandwidth over time',
      'Bytes per second in each interval, per direction.',
      timeFigures(bw, 'bandwidth', 'Bandwidth', { title: 'bandwidth', format: fmtBytesPerSec, max: bwMax, binary: true }),
    ),
    section(
      'iops',
      'IOPS over time',
      'I/Os completed per second in each interval, per direction.',
      timeFigures(iops, 'iops', 'IOPS', { title: 'IOPS', format: fmtCount, max: iopsMax }),
    ),
    section(
      'latency',
      'Completion latency percentiles',
      "fio's clat percentiles per direction; the x axis spreads the tail (each step right is one more nine).",
      runs.map((r, i) =>
        figure(
          r,
          hasPoints(pcts[i])
            ? lineChart({
                kind: 'latency',
                title: `Latency percentiles: ${r.label}`,
                x: { title: 'percentile', format: (v) => `p${fmtPercentile(100 * (1 - 10 ** -v))}`, min: 0, max: ninesMax, ticks: NINES_TICKS },
                y: { title: 'completion latency', format: fmtNs, log: true, min: latLo, max: latHi },
                series: pcts[i],
              })
            : noData(noLat),
        ),
      ),
    ),
    section(
      'cdf',
      'Completion latency CDF',
      'Fraction of I/Os completed within a latency, from the percentile points (with the minimum and maximum at the ends).',
      runs.map((r, i) =>
        figure(
          r,
          hasPoints(cdfs[i])
            ? lineChart({
                kind: 'cdf',
                title: `Latency CDF: ${r.label}`,
                x: { title: 'completion latency', format: fmtNs, log: true, min: latLo, max: latHi },
                y: { title: 'fraction of I/Os', format: (v) => v.toFixed(2), min: 0, max: 1 },
                series: cdfs[i],
              })
            : noData(noLat),
        ),
      ),
    ),
    ...(hasBins(runs)
      ? [
          section(
            'histogram',
            'Completion latency histogram',
            `fio's json+ latency bins, gathered ${BINS_PER_DECADE} to a decade: the share of each direction's I/Os in each.`,
            runs.map((r, i) =>
              figure(
                r,
                hasPoints(hists[i])
                  ? lineChart({
                      kind: 'histogram',
                      title: `Latency histogram: ${r.label}`,
                      x: { title: 'completion latency', format: fmtNs, log: true, min: latLo, max: latHi },
                      y: { title: '% of I/Os', format: (v) => `${sig3(v)}%`, min: 0 },
                      series: hists[i],
                    })
                  : noData('no json+ latency bins in this results file'),
              ),
            ),
          ),
        ]
      : []),
    section(
      'remaps',
      'Remaps and spare use over time',
      'Remaps in force and spare units handed out (blocks for the safe policy, remap slots for dm-remap-v4), with pending blocks and the bad blocks the fault layers hold when known.',
      runs.map((r, i) => {
        if (!r.timeline) return figure(r, noData(NO_TIMELINE));
        const cap = r.timeline.device.spareCapacity.at(-1);
        const caption = cap !== undefined ? `<p class="meta">spare capacity ${fmtCount(cap)}</p>` : '';
        return figure(
          r,
          hasPoints(remaps[i])
            ? lineChart({
                kind: 'remaps',
                title: `Remaps and spare use: ${r.label}`,
                x: timeAxis,
                y: { title: 'count', format: fmtCount, min: 0, max: remapMax },
                series: remaps[i],
              }) + caption
            : noData('no state samples were recorded'),
        );
      }),
    ),
    section(
      'health',
      'Health score over time',
      'The health scanner’s score (0 to 100) when one ran, else the score the target reports itself.',
      runs.map((r, i) =>
        figure(
          r,
          hasPoints(health[i])
            ? lineChart({
                kind: 'health',
                title: `Health: ${r.label}`,
                x: timeAxis,
                y: { title: `health${r.timeline?.healthSource ? ` (${r.timeline.healthSource})` : ''}`, format: (v) => String(v), min: 0, max: 100 },
                series: health[i],
              })
            : noData(r.timeline ? 'no health score: no health scanner ran and the target reports none of its own' : NO_TIMELINE),
        ),
      ),
    ),
    section(
      'devicemap',
      'Map of the device',
      'The LBA space from sector 0 (top left), one cell per bucket: bad sectors (red), pending (amber) and remapped (blue); circles mark the first sectors where the oracle found lost, stale or corrupt data or unexpected errors.',
      runs.map((r) => {
        const m = r.deviceMap;
        if (!m) return figure(r, noData('no device map in this results file'));
        if (!mapHasData(m) && findingMarkers(r).length === 0) return figure(r, noData(`no bad, pending or remapped sectors in ${fmtBytes(m.sectors * 512)}`));
        return figure(r, heatmap({ title: `Device map: ${r.label}`, map: m, markers: findingMarkers(r) }));
      }),
    ),
    oracleSection(runs),
  ];
  const files = [...new Set(runs.map((r) => r.source.replace(/#\d+$/, '')))];
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head><body>',
    `<header><h1>${esc(title)}</h1><p class="meta">${runs.length} run${runs.length > 1 ? 's' : ''} from ${esc(files.join(', '))}; made ${esc(when.toISOString())} by remapsim</p></header>`,
    ...sections,
    `<footer>Self-contained: no scripts, styles or data are fetched. Click a legend entry to hide or show its series.</footer>`,
    `<script>${SCRIPT}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}

/** Where `remapsim run --json r.json` puts its report: r.html beside it. */
export function reportPathFor(jsonPath: string): string {
  return /\.json$/i.test(jsonPath) ? jsonPath.replace(/\.json$/i, '.html') : `${jsonPath}.html`;
}
