/**
 * SVG building blocks for the report's charts: escaping, scales, ticks and
 * axes. Pure: numbers in, strings out. Coordinates are rounded to 0.1 px so
 * the output is stable (the golden tests compare it byte for byte).
 */

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A coordinate, rounded to 0.1. */
export function c(v: number): string {
  const r = Math.round(v * 10) / 10;
  return String(Object.is(r, -0) ? 0 : r);
}

/** Colours written as attributes, so a chart saved on its own looks as it does in the page. */
export const GRID = '#e6e8ee';
export const AXIS = '#8a93a5';
export const MUTED = '#5b6475';

export interface Scale {
  (v: number): number;
  domain: [number, number];
  range: [number, number];
  log: boolean;
}

export function linearScale(d0: number, d1: number, r0: number, r1: number): Scale {
  const span = d1 - d0 || 1;
  const f = ((v: number) => r0 + ((v - d0) / span) * (r1 - r0)) as Scale;
  f.domain = [d0, d1];
  f.range = [r0, r1];
  f.log = false;
  return f;
}

/** Log10 scale; values at or below 0 map to the low end. */
export function logScale(d0: number, d1: number, r0: number, r1: number): Scale {
  const l0 = Math.log10(d0);
  const span = Math.log10(d1) - l0 || 1;
  const f = ((v: number) => r0 + ((Math.log10(Math.max(v, d0)) - l0) / span) * (r1 - r0)) as Scale;
  f.domain = [d0, d1];
  f.range = [r0, r1];
  f.log = true;
  return f;
}

/** About `count` round tick values covering [min, max] (steps of 1, 2 or 5 times a power of ten). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  let step = 10 ** Math.floor(Math.log10(raw));
  const err = raw / step;
  if (err >= 7.5) step *= 10;
  else if (err >= 3.5) step *= 5;
  else if (err >= 1.5) step *= 2;
  const out: number[] = [];
  const first = Math.ceil(min / step - 1e-9);
  for (let k = first; k * step <= max + step * 1e-9; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

/** The end of a nice axis at or above `max`. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const ticks = niceTicks(0, max, 5);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : max;
  const top = ticks[ticks.length - 1];
  return top >= max ? top : top + step;
}

/** The power of 1024 that `max` is counted in (bytes: B, KiB, MiB, ...). */
function binaryUnit(max: number): number {
  return max >= 1024 ? 1024 ** Math.floor(Math.log(max) / Math.log(1024)) : 1;
}

/** niceTicks for byte quantities: round numbers of B, KiB, MiB, ... (so labels read 2 MiB, not 1.91 MiB). */
export function niceTicksBinary(min: number, max: number, count = 5): number[] {
  const u = binaryUnit(Math.max(Math.abs(min), Math.abs(max)));
  return niceTicks(min / u, max / u, count).map((v) => v * u);
}

export function niceMaxBinary(max: number): number {
  const u = binaryUnit(max);
  return niceMax(max / u) * u;
}

/** Powers of ten in [min, max] (and 2x, 5x when the range is short). */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const mults = hi - lo <= 2 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = lo; e <= hi; e++)
    for (const m of mults) {
      const v = m * 10 ** e;
      if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(Number(v.toPrecision(12)));
    }
  return out;
}

export interface Box {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export interface Tick {
  value: number;
  label: string;
}

/** Chart text size (px at the chart's own scale, which the page shows 1:1: near the page's 14 px). */
export const FONT_PX = 12;
/** Tick label baseline below the x axis, and the gap between tick labels and the plot. */
const X_TICK_DY = FONT_PX + 3;
const TICK_GAP = 6;
/** Room above the plot for the y axis title, which is written across, above the tick labels. */
export const Y_TITLE_ROOM = FONT_PX + 12;

/**
 * The left margin a plot needs for its y tick labels (right-aligned
 * TICK_GAP from the axis) and some air to the chart's edge.
 */
export function leftFor(yTicks: readonly Tick[], min = 40): number {
  return Math.max(min, Math.ceil(Math.max(0, ...yTicks.map((t) => textWidth(t.label))) + TICK_GAP + 6));
}

/**
 * Grid lines, tick labels and axis titles of a plot area. The x title sits
 * below the x tick labels; the y title is written across, at the top left
 * above the y tick labels (box.top leaves Y_TITLE_ROOM for it), so neither
 * can run over a tick label or off the chart's left edge, however long.
 */
export function axes(box: Box, x: Scale, y: Scale, xTicks: readonly Tick[], yTicks: readonly Tick[], xTitle: string, yTitle: string): string {
  const x0 = box.left;
  const x1 = box.width - box.right;
  const y0 = box.height - box.bottom;
  const y1 = box.top;
  const parts: string[] = [`<g class="axes">`];
  for (const t of yTicks) {
    const py = c(y(t.value));
    parts.push(`<line class="grid" x1="${c(x0)}" y1="${py}" x2="${c(x1)}" y2="${py}" stroke="${GRID}"/>`);
    parts.push(`<text class="tick" fill="${MUTED}" x="${c(x0 - TICK_GAP)}" y="${py}" text-anchor="end" dominant-baseline="middle">${esc(t.label)}</text>`);
  }
  for (const t of xTicks) {
    const px = c(x(t.value));
    parts.push(`<line class="grid" x1="${px}" y1="${c(y0)}" x2="${px}" y2="${c(y1)}" stroke="${GRID}"/>`);
    parts.push(`<text class="tick" fill="${MUTED}" x="${px}" y="${c(y0 + X_TICK_DY)}" text-anchor="middle">${esc(t.label)}</text>`);
  }
  parts.push(`<line class="axis" x1="${c(x0)}" y1="${c(y0)}" x2="${c(x1)}" y2="${c(y0)}" stroke="${AXIS}"/>`);
  parts.push(`<line class="axis" x1="${c(x0)}" y1="${c(y0)}" x2="${c(x0)}" y2="${c(y1)}" stroke="${AXIS}"/>`);
  parts.push(`<text class="axis-title" x="${c((x0 + x1) / 2)}" y="${c(box.height - 4)}" text-anchor="middle">${esc(xTitle)}</text>`);
  parts.push(`<text class="axis-title" x="4" y="${c(y1 - 14)}">${esc(yTitle)}</text>`);
  parts.push('</g>');
  return parts.join('');
}

/**
 * Text width at FONT_PX, from DejaVu Sans' advance widths (the widest of the
 * fonts the page names, and what Debian's chromium falls back to), rounded
 * up per class of character: layout from it never underestimates.
 */
export function textWidth(s: string): number {
  let em = 0;
  for (const ch of s) {
    if ("ilj.,:;|!'".includes(ch)) em += 0.32;
    else if (ch === ' ' || ch === '/' || ch === '(' || ch === ')' || ch === '-' || ch === 'f' || ch === 't' || ch === 'r') em += 0.42;
    else if (ch === 'm' || ch === 'w' || ch === 'M' || ch === 'W' || ch === '%') em += 0.98;
    else if (/[A-Z]/.test(ch)) em += 0.78;
    else if (/[0-9]/.test(ch)) em += 0.64;
    else em += 0.64;
  }
  return Math.ceil(em * FONT_PX);
}

export function svgOpen(kind: string, title: string, width: number, height: number): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="${esc(kind)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="system-ui, 'DejaVu Sans', sans-serif" font-size="${FONT_PX}" role="img" aria-label="${esc(title)}">`;
}
