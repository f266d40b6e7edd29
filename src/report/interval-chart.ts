/**
 * A chart of estimates with their intervals: categories along x, one marker
 * per series in each category (side by side), a whisker from the interval's
 * low to its high end. For a campaign's P(loss) per sweep point, policies
 * side by side. Pure: a spec in, an SVG string out; each estimate is a
 * `g.estimate` holding a `line.whisker` and a `circle.pt`.
 */
import { AXIS, type Box, GRID, MUTED, c, esc, linearScale, niceMax, niceTicks, svgOpen, textWidth } from './svg.js';

export interface IntervalSeries {
  name: string;
  color: string;
  /** One per category: the estimate and its interval (undefined: none in that category). */
  values: ReadonlyArray<{ point: number; lo: number; hi: number } | undefined>;
}

export interface IntervalChartSpec {
  kind: string;
  title: string;
  categories: readonly string[];
  series: readonly IntervalSeries[];
  valueTitle: string;
  format: (v: number) => string;
  /** Fixed top of the value axis (a probability: 1). */
  max?: number;
  width?: number;
  height?: number;
}

export function intervalChart(spec: IntervalChartSpec): string {
  // each category's band holds its markers side by side and its label's widest word (labels wrap at spaces)
  const widestWord = Math.max(0, ...spec.categories.flatMap((k) => k.split(' ').map(textWidth)));
  const width = spec.width ?? Math.max(560, 70 + spec.categories.length * Math.max(48, 16 * spec.series.length + 18, widestWord + 10));
  const height = spec.height ?? 300;
  const labelRows = Math.max(1, ...spec.categories.map((k) => k.split(' ').length));
  const legendW = spec.series.reduce((a, s) => a + 36 + textWidth(s.name), 0);
  const legendRows = Math.max(1, Math.ceil(legendW / (width - 80)));
  const box: Box = { width, height, left: 62, right: 16, top: 14 + legendRows * 16, bottom: 26 + labelRows * 13 };
  const all = spec.series.flatMap((s) => s.values.filter((v): v is NonNullable<typeof v> => v !== undefined).map((v) => v.hi));
  const top = spec.max ?? niceMax(Math.max(...all, 1e-9));
  const y = linearScale(0, top, height - box.bottom, box.top);
  const x0 = box.left;
  const x1 = width - box.right;
  const band = (x1 - x0) / Math.max(1, spec.categories.length);
  const parts: string[] = [svgOpen(spec.kind, spec.title, width, height), `<title>${esc(spec.title)}</title>`];
  // legend
  let lx = box.left;
  let row = 0;
  for (const s of spec.series) {
    const w = 36 + textWidth(s.name);
    if (lx + w > width - 8 && lx > box.left) {
      row++;
      lx = box.left;
    }
    const ly = 10 + row * 16;
    parts.push(
      `<g class="legend-item" data-series="${esc(s.name)}"><circle cx="${c(lx + 6)}" cy="${c(ly)}" r="4" fill="${esc(s.color)}"/><text x="${c(lx + 16)}" y="${c(ly)}" dominant-baseline="middle">${esc(s.name)}</text></g>`,
    );
    lx += w;
  }
  // value axis
  parts.push('<g class="axes">');
  for (const v of niceTicks(0, top, 5)) {
    const py = c(y(v));
    parts.push(`<line class="grid" x1="${c(x0)}" y1="${py}" x2="${c(x1)}" y2="${py}" stroke="${GRID}"/>`);
    parts.push(`<text class="tick" fill="${MUTED}" x="${c(x0 - 6)}" y="${py}" text-anchor="end" dominant-baseline="middle">${esc(spec.format(v))}</text>`);
  }
  parts.push(`<line class="axis" x1="${c(x0)}" y1="${c(y(0))}" x2="${c(x1)}" y2="${c(y(0))}" stroke="${AXIS}"/>`);
  parts.push(`<line class="axis" x1="${c(x0)}" y1="${c(y(0))}" x2="${c(x0)}" y2="${c(box.top)}" stroke="${AXIS}"/>`);
  parts.push(`<text class="axis-title" transform="translate(12 ${c((y(0) + box.top) / 2)}) rotate(-90)" text-anchor="middle">${esc(spec.valueTitle)}</text>`);
  spec.categories.forEach((k, i) => {
    const cx = x0 + band * (i + 0.5);
    k.split(' ').forEach((word, j) => {
      parts.push(
        `<text class="tick category" fill="${MUTED}" x="${c(cx)}" y="${c(height - box.bottom + 14 + j * 13)}" text-anchor="middle">${esc(word)}</text>`,
      );
    });
    if (i > 0)
      parts.push(
        `<line class="grid" x1="${c(x0 + band * i)}" y1="${c(y(0))}" x2="${c(x0 + band * i)}" y2="${c(box.top)}" stroke="${GRID}" stroke-dasharray="2 3"/>`,
      );
  });
  parts.push('</g>');
  // estimates
  const n = spec.series.length;
  const step = Math.min(16, (band - 8) / Math.max(1, n));
  spec.series.forEach((s, si) => {
    const g: string[] = [];
    s.values.forEach((v, i) => {
      if (!v) return;
      const px = x0 + band * (i + 0.5) + (si - (n - 1) / 2) * step;
      const title = `${s.name}, ${spec.categories[i]}: ${spec.format(v.point)} [${spec.format(v.lo)}, ${spec.format(v.hi)}]`;
      g.push(
        `<g class="estimate"><title>${esc(title)}</title><line class="whisker" x1="${c(px)}" y1="${c(y(v.lo))}" x2="${c(px)}" y2="${c(y(v.hi))}" stroke="${esc(s.color)}" stroke-width="2"/>` +
          `<line x1="${c(px - 3)}" y1="${c(y(v.lo))}" x2="${c(px + 3)}" y2="${c(y(v.lo))}" stroke="${esc(s.color)}"/><line x1="${c(px - 3)}" y1="${c(y(v.hi))}" x2="${c(px + 3)}" y2="${c(y(v.hi))}" stroke="${esc(s.color)}"/>` +
          `<circle class="pt" cx="${c(px)}" cy="${c(y(v.point))}" r="3.5" fill="${esc(s.color)}"/></g>`,
      );
    });
    parts.push(`<g class="series" data-series="${esc(s.name)}" data-n="${g.length}">${g.join('')}</g>`);
  });
  parts.push('</svg>');
  return parts.join('');
}
