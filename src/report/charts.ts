/**
 * The report's charts as pure functions: a spec with the data in, an SVG
 * string out. Line charts (time series, percentiles, CDFs), grouped
 * horizontal bars (the oracle's classes) and the device-map heatmap.
 *
 * Every drawn datum is an element the browser test can count: line series
 * are `<g class="series" data-n="points">` holding a path and, when there
 * are few enough, a `circle.pt` per point; bars are `rect.bar`; map cells
 * are `rect.cell`.
 */
import type { DeviceMapJSON, MapLayer } from '../status/device-map.js';
import { MAP_LAYERS } from '../status/device-map.js';
import { fmtBytes, fmtCount } from './format.js';
import {
  AXIS,
  type Box,
  FONT_PX,
  GRID,
  MUTED,
  type Scale,
  type Tick,
  Y_TITLE_ROOM,
  axes,
  c,
  esc,
  leftFor,
  linearScale,
  logScale,
  logTicks,
  niceMax,
  niceMaxBinary,
  niceTicks,
  niceTicksBinary,
  svgOpen,
  textWidth,
} from './svg.js';

export type Point = readonly [number, number];

export interface Series {
  name: string;
  color: string;
  points: readonly Point[];
  /** Draw as steps (value holds until the next point). */
  step?: boolean;
  dashed?: boolean;
}

export interface AxisSpec {
  title: string;
  format: (v: number) => string;
  min?: number;
  max?: number;
  log?: boolean;
  /** Byte quantities: ticks at round numbers of KiB, MiB, ... */
  binary?: boolean;
  /** Fixed ticks (for axes such as the percentile "nines"). */
  ticks?: readonly Tick[];
}

export interface LineChartSpec {
  /** What the chart shows (data-chart attribute): bandwidth, iops, latency, cdf, remaps, health. */
  kind: string;
  title: string;
  x: AxisSpec;
  y: AxisSpec;
  series: readonly Series[];
  width?: number;
  height?: number;
  /** Most points drawn per series; longer series are reduced to min/max per slot (default 600). */
  maxDrawn?: number;
  /** Series with at most this many drawn points get a circle per point (default 240). */
  maxMarkers?: number;
}

export const CHART_WIDTH = 560;
export const CHART_HEIGHT = 260;

function box(width: number, height: number, legendRows: number, left: number): Box {
  return { width, height, left, right: 26, top: 8 + legendRows * 16 + Y_TITLE_ROOM, bottom: 36 };
}

function legend(series: ReadonlyArray<{ name: string; color: string; dashed?: boolean }>, width: number, left: number): { svg: string; rows: number } {
  const items: string[] = [];
  let x = left;
  let row = 0;
  for (const s of series) {
    const w = 22 + textWidth(s.name) + 14;
    if (x + w > width - 8 && x > left) {
      row++;
      x = left;
    }
    const y = 10 + row * 16;
    items.push(
      `<g class="legend-item" data-series="${esc(s.name)}"><line x1="${c(x)}" y1="${c(y)}" x2="${c(x + 16)}" y2="${c(y)}" stroke="${esc(s.color)}" stroke-width="3"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>` +
        `<text x="${c(x + 22)}" y="${c(y)}" dominant-baseline="middle">${esc(s.name)}</text></g>`,
    );
    x += w;
  }
  return { svg: `<g class="legend">${items.join('')}</g>`, rows: series.length === 0 ? 0 : row + 1 };
}

/** Keeps at most `max` points: per slot of consecutive points, the first, lowest, highest and last. */
export function reducePoints(points: readonly Point[], max: number): Point[] {
  if (points.length <= max) return [...points];
  const slots = Math.max(1, Math.floor(max / 4));
  const per = points.length / slots;
  const out: Point[] = [];
  for (let s = 0; s < slots; s++) {
    const from = Math.floor(s * per);
    const to = Math.min(points.length, Math.floor((s + 1) * per));
    if (to <= from) continue;
    let lo = from;
    let hi = from;
    for (let i = from; i < to; i++) {
      if (points[i][1] < points[lo][1]) lo = i;
      if (points[i][1] > points[hi][1]) hi = i;
    }
    for (const i of [...new Set([from, lo, hi, to - 1])].sort((a, b) => a - b)) out.push(points[i]);
  }
  return out;
}

function domain(axis: AxisSpec, values: number[]): [number, number] {
  if (axis.log) {
    const pos = values.filter((v) => v > 0);
    const lo = axis.min ?? (pos.length > 0 ? 10 ** Math.floor(Math.log10(Math.min(...pos))) : 1);
    const hi = axis.max ?? (pos.length > 0 ? 10 ** Math.ceil(Math.log10(Math.max(...pos))) : 10);
    return [lo, hi > lo ? hi : lo * 10];
  }
  const lo = axis.min ?? Math.min(0, ...values);
  const top = Math.max(...values, lo + 1e-9);
  const hi = axis.max ?? (axis.binary ? niceMaxBinary(top) : niceMax(top));
  return [lo, hi > lo ? hi : lo + 1];
}

function ticksFor(axis: AxisSpec, s: Scale): Tick[] {
  if (axis.ticks) return axis.ticks.filter((t) => t.value >= s.domain[0] && t.value <= s.domain[1]);
  const vals = s.log ? logTicks(s.domain[0], s.domain[1]) : axis.binary ? niceTicksBinary(s.domain[0], s.domain[1], 5) : niceTicks(s.domain[0], s.domain[1], 5);
  return vals.map((v) => ({ value: v, label: axis.format(v) }));
}

function pathOf(points: readonly Point[], x: Scale, y: Scale, step: boolean): string {
  let d = '';
  points.forEach(([px, py], i) => {
    const sx = c(x(px));
    const sy = c(y(py));
    if (i === 0) d += `M${sx} ${sy}`;
    else if (step) d += `H${sx}V${sy}`;
    else d += `L${sx} ${sy}`;
  });
  return d;
}

/** True when at least one series has a point. */
export function hasPoints(series: readonly Series[]): boolean {
  return series.some((s) => s.points.length > 0);
}

export function lineChart(spec: LineChartSpec): string {
  const width = spec.width ?? CHART_WIDTH;
  const height = spec.height ?? CHART_HEIGHT;
  const maxDrawn = spec.maxDrawn ?? 600;
  const maxMarkers = spec.maxMarkers ?? 240;
  const all = spec.series.flatMap((s) => s.points);
  const [xd0, xd1] = domain(
    spec.x,
    all.map((p) => p[0]),
  );
  const [yd0, yd1] = domain(
    spec.y,
    all.map((p) => p[1]),
  );
  const mk = (log: boolean | undefined) => (log ? logScale : linearScale);
  // the y tick labels set the left margin, which the legend starts at
  const yTicks = ticksFor(spec.y, mk(spec.y.log)(yd0, yd1, 0, 1));
  const left = leftFor(yTicks);
  const lg = legend(spec.series, width, left);
  const b = box(width, height, lg.rows, left);
  const x = mk(spec.x.log)(xd0, xd1, b.left, width - b.right);
  const y = mk(spec.y.log)(yd0, yd1, height - b.bottom, b.top);
  const parts = [svgOpen(spec.kind, spec.title, width, height), `<title>${esc(spec.title)}</title>`];
  parts.push(axes(b, x, y, ticksFor(spec.x, x), yTicks, spec.x.title, spec.y.title));
  if (all.length === 0) {
    parts.push(`<text class="nodata" x="${c(width / 2)}" y="${c(height / 2)}" text-anchor="middle">no data</text>`);
  }
  for (const s of spec.series) {
    const drawn = reducePoints(
      s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1])),
      maxDrawn,
    );
    const g = [`<g class="series" data-name="${esc(s.name)}" data-n="${s.points.length}">`];
    if (drawn.length > 0) {
      g.push(
        `<path class="line" d="${pathOf(drawn, x, y, s.step === true)}" fill="none" stroke-width="1.8" stroke="${esc(s.color)}"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
      );
    }
    if (drawn.length <= maxMarkers) {
      for (const [px, py] of drawn) {
        g.push(
          `<circle class="pt" cx="${c(x(px))}" cy="${c(y(py))}" r="2.5" fill="${esc(s.color)}"><title>${esc(`${s.name}: ${spec.x.format(px)}, ${spec.y.format(py)}`)}</title></circle>`,
        );
      }
    }
    g.push('</g>');
    parts.push(g.join(''));
  }
  parts.push(lg.svg, '</svg>');
  return parts.join('');
}

// ---- grouped horizontal bars

export interface BarGroup {
  name: string;
  color: string;
  values: readonly number[];
}

export interface BarChartSpec {
  kind: string;
  title: string;
  categories: readonly string[];
  groups: readonly BarGroup[];
  /** Log scale on the value axis (default true: counts from 1 to millions side by side). */
  log?: boolean;
  format?: (v: number) => string;
  valueTitle: string;
  width?: number;
}

export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? CHART_WIDTH;
  const format = spec.format ?? fmtCount;
  const log = spec.log ?? true;
  const labelW = Math.max(60, ...spec.categories.map((k) => textWidth(k) + 10));
  const lg = legend(spec.groups, width, labelW);
  const barH = 12;
  const gap = 8;
  const rowH = spec.groups.length * barH + gap;
  const top = 14 + lg.rows * 16;
  const plotH = spec.categories.length * rowH;
  const height = top + plotH + 36;
  const max = Math.max(1, ...spec.groups.flatMap((g) => g.values));
  const b: Box = { width, height, left: labelW, right: Math.max(60, textWidth(String(max)) + 10), top, bottom: 36 };
  const x = log ? logScale(0.5, 10 ** Math.ceil(Math.log10(max + 1)), b.left, width - b.right) : linearScale(0, niceMax(max), b.left, width - b.right);
  const ticks = (log ? logTicks(1, x.domain[1]) : niceTicks(0, x.domain[1], 5)).map((v) => ({ value: v, label: format(v) }));
  const parts = [svgOpen(spec.kind, spec.title, width, height), `<title>${esc(spec.title)}</title>`];
  // the category axis is drawn here, not by axes(): no y grid or ticks
  const y0 = height - b.bottom;
  parts.push('<g class="axes">');
  for (const t of ticks) {
    const px = c(x(t.value));
    parts.push(
      `<line class="grid" x1="${px}" y1="${c(y0)}" x2="${px}" y2="${c(top)}" stroke="${GRID}"/>`,
      `<text class="tick" fill="${MUTED}" x="${px}" y="${c(y0 + 15)}" text-anchor="middle">${esc(t.label)}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${c(b.left)}" y1="${c(y0)}" x2="${c(width - b.right)}" y2="${c(y0)}" stroke="${AXIS}"/>`,
    `<line class="axis" x1="${c(b.left)}" y1="${c(y0)}" x2="${c(b.left)}" y2="${c(top)}" stroke="${AXIS}"/>`,
  );
  parts.push(
    `<text class="axis-title" x="${c((b.left + width - b.right) / 2)}" y="${c(height - 4)}" text-anchor="middle">${esc(spec.valueTitle)}${log ? ' (log scale)' : ''}</text>`,
    '</g>',
  );
  spec.categories.forEach((cat, ci) => {
    const ry = top + ci * rowH + gap / 2;
    parts.push(
      `<text class="category" x="${c(b.left - 6)}" y="${c(ry + (spec.groups.length * barH) / 2)}" text-anchor="end" dominant-baseline="middle">${esc(cat)}</text>`,
    );
    spec.groups.forEach((g, gi) => {
      const v = g.values[ci] ?? 0;
      const by = ry + gi * barH;
      if (v > 0) {
        const w = Math.max(1, x(v) - b.left);
        parts.push(
          `<rect class="bar" x="${c(b.left)}" y="${c(by + 1)}" width="${c(w)}" height="${c(barH - 2)}" fill="${esc(g.color)}"><title>${esc(`${g.name}: ${cat} ${v}`)}</title></rect>`,
        );
      }
      parts.push(
        `<text class="value" x="${c(b.left + (v > 0 ? Math.max(1, x(v) - b.left) : 0) + 4)}" y="${c(by + barH / 2)}" dominant-baseline="middle">${esc(String(v))}</text>`,
      );
    });
  });
  parts.push(lg.svg, '</svg>');
  return parts.join('');
}

// ---- the device map

export const MAP_COLORS: Record<MapLayer, string> = { bad: '#d62728', pending: '#e6a700', remapped: '#1f77b4' };

export interface MapMarker {
  sector: number;
  label: string;
}

export interface HeatmapSpec {
  kind?: string;
  title: string;
  map: DeviceMapJSON;
  /** Buckets per row (default 64). */
  columns?: number;
  /** Sectors to mark (the oracle's findings). */
  markers?: readonly MapMarker[];
  width?: number;
}

/** True when the map holds any bad, pending or remapped sector. */
export function mapHasData(map: DeviceMapJSON): boolean {
  return MAP_LAYERS.some((l) => map.totals[l] > 0);
}

/**
 * One cell per bucket, rows of `columns` buckets, sector 0 top left. A
 * bucket's cell is split in three stripes (bad, pending, remapped); a
 * stripe's strength grows with the log of how many of the bucket's sectors
 * it covers.
 */
export function heatmap(spec: HeatmapSpec): string {
  const { map } = spec;
  const width = spec.width ?? CHART_WIDTH;
  const cols = Math.min(spec.columns ?? 64, map.buckets);
  const rows = Math.ceil(map.buckets / cols);
  const rowLabel = (r: number): Tick => ({ value: r, label: fmtBytes(r * cols * map.bucketSectors * 512) });
  const left = leftFor(
    Array.from({ length: rows }, (_, r) => rowLabel(r)),
    60,
  );
  const right = 10;
  const lgItems = [
    ...MAP_LAYERS.map((l) => ({ name: `${l} ${fmtCount(map.totals[l])} sectors`, color: MAP_COLORS[l] })),
    ...(spec.markers && spec.markers.length > 0 ? [{ name: 'oracle finding', color: '#000' }] : []),
  ];
  const lg = legend(lgItems, width, left);
  const top = 14 + lg.rows * 16;
  const cw = (width - left - right) / cols;
  const ch = Math.max(9, Math.min(18, cw * 1.2));
  const height = top + rows * ch + 28;
  // a label every few rows: at most 8, and never closer than a line of text
  const labelEvery = Math.max(1, Math.ceil(rows / 8), Math.ceil((FONT_PX + 4) / ch));
  const rowLabels: Tick[] = [];
  for (let r = 0; r < rows; r += labelEvery) rowLabels.push(rowLabel(r));
  const parts = [svgOpen(spec.kind ?? 'devicemap', spec.title, width, height), `<title>${esc(spec.title)}</title>`];
  parts.push(`<rect class="map-bg" fill="#eef0f4" x="${c(left)}" y="${c(top)}" width="${c(cols * cw)}" height="${c(rows * ch)}"/>`);
  for (const t of rowLabels) {
    parts.push(
      `<text class="tick" fill="${MUTED}" x="${c(left - 6)}" y="${c(top + t.value * ch + ch / 2)}" text-anchor="end" dominant-baseline="middle">${esc(t.label)}</text>`,
    );
  }
  const full = Math.log1p(map.bucketSectors);
  for (let k = 0; k < map.buckets; k++) {
    const present = MAP_LAYERS.filter((l) => map[l][k] > 0);
    if (present.length === 0) continue;
    const cx = left + (k % cols) * cw;
    const cy = top + Math.floor(k / cols) * ch;
    const from = k * map.bucketSectors;
    const to = Math.min(map.sectors, from + map.bucketSectors) - 1;
    const tip = `sectors ${from}-${to}: ${present.map((l) => `${l} ${map[l][k]}`).join(', ')}`;
    MAP_LAYERS.forEach((l, li) => {
      const n = map[l][k];
      if (n <= 0) return;
      const alpha = 0.5 + 0.5 * Math.min(1, Math.log1p(n) / full);
      parts.push(
        `<rect class="cell" data-layer="${l}" x="${c(cx)}" y="${c(cy + (li * ch) / 3)}" width="${c(cw)}" height="${c(ch / 3)}" fill="${MAP_COLORS[l]}" fill-opacity="${alpha.toFixed(2)}"><title>${esc(tip)}</title></rect>`,
      );
    });
  }
  for (const m of spec.markers ?? []) {
    if (!(m.sector >= 0 && m.sector < map.sectors)) continue;
    const k = Math.floor(m.sector / map.bucketSectors);
    const mx = left + (k % cols) * cw + cw / 2;
    const my = top + Math.floor(k / cols) * ch + ch / 2;
    parts.push(
      `<circle class="finding" fill="none" stroke="#000" stroke-width="1.4" cx="${c(mx)}" cy="${c(my)}" r="${c(Math.min(cw, ch) / 3)}"><title>${esc(m.label)}</title></circle>`,
    );
  }
  const bucketText = `${map.buckets} buckets of ${fmtBytes(map.bucketSectors * 512)}, ${cols} per row`;
  parts.push(`<text class="axis-title" x="${c(left)}" y="${c(height - 8)}">${esc(`${fmtBytes(map.sectors * 512)} device: ${bucketText}`)}</text>`);
  parts.push(lg.svg, '</svg>');
  return parts.join('');
}
