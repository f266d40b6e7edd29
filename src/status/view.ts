/**
 * The status view's formats, as pure functions of samples: the human block
 * (every field named, redrawn in place on a terminal), the human line (one
 * per sample when piped), JSON Lines and CSV. Everything human fits 80
 * columns.
 */
import { type FieldDef, type StatusField, type TargetStatus, fieldNumber, parseStatusText } from './parse.js';
import type { StatusSnapshot } from './sources.js';

export const VIEW_WIDTH = 80;
export const STATUS_FORMATS = ['human', 'json', 'csv', 'openmetrics'] as const;
export type StatusFormat = (typeof STATUS_FORMATS)[number];

export interface ViewSample {
  time: Date;
  label: string;
  targets: TargetStatus[];
}

const BAD_BLOCKS: FieldDef = { key: 'badBlocks', label: 'bad blocks', kind: 'gauge', note: 'from countbadblocks' };

/** Parses a snapshot; dust's bad-block count becomes a field of the first dust target. */
export function toViewSample(label: string, snap: StatusSnapshot): ViewSample {
  const targets = parseStatusText(snap.status, snap.table);
  if (snap.dustBadBlocks !== undefined) {
    const dust = targets.find((t) => t.type === 'dust' && t.known);
    dust?.fields.push({ ...BAD_BLOCKS, value: snap.dustBadBlocks, raw: String(snap.dustBadBlocks) });
  }
  return { time: snap.time, label, targets };
}

// ---- numbers

const SI = ['', 'k', 'M', 'G', 'T', 'P', 'E'];

/** 3 significant digits with an SI suffix: 999, 1.23k, 45.6M. */
export function compact(v: number): string {
  const a = Math.abs(v);
  if (a < 1000) return Number.isInteger(v) ? String(v) : v.toFixed(a < 10 ? 2 : 1).replace(/\.?0+$/, '');
  let i = 0;
  let x = a;
  while (x >= 999.5 && i < SI.length - 1) {
    x /= 1000;
    i++;
  }
  const s = x >= 99.95 ? x.toFixed(0) : x >= 9.995 ? x.toFixed(1) : x.toFixed(2);
  return `${v < 0 ? '-' : ''}${s.includes('.') ? s.replace(/\.?0+$/, '') : s}${SI[i]}`;
}

/** A value for a fixed-width cell: exact when it fits, compact when not. */
function cellValue(f: StatusField, width: number): string {
  const unit = f.unit === '%' ? '%' : '';
  if (typeof f.value === 'boolean') return f.value ? 'yes' : 'no';
  const exact = `${f.value}${unit}`;
  if (exact.length <= width || typeof f.value !== 'number') return exact.length <= width ? exact : `${exact.slice(0, width - 1)}~`;
  return `${compact(f.value)}${unit}`;
}

function fit(s: string, width: number): string {
  return s.length <= width ? s : `${s.slice(0, width - 1)}~`;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');
/** Local wall-clock time, HH:MM:SS. */
export function clockTime(d: Date): string {
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Per-second change of each count field since `prev` (same target position and type). */
export function rates(cur: ViewSample, prev: ViewSample | undefined): Array<Map<string, number>> {
  return cur.targets.map((t, i) => {
    const out = new Map<string, number>();
    const p = prev?.targets[i];
    const dt = prev ? (cur.time.getTime() - prev.time.getTime()) / 1000 : 0;
    if (!p || p.type !== t.type || !(dt > 0)) return out;
    for (const f of t.fields) {
      if (f.kind !== 'count' || typeof f.value !== 'number') continue;
      const before = fieldNumber(p, f.key);
      if (before !== undefined && f.value >= before) out.set(f.key, (f.value - before) / dt);
    }
    return out;
  });
}

/** A counter's rate; blank when unknown or still (a column of +0/s hides the ones that move). */
const rateText = (r: number | undefined): string => (r === undefined || r === 0 ? '' : `+${compact(r)}/s`);

// ---- human: one line per sample

function num(t: TargetStatus, key: string): string {
  const f = t.fields.find((x) => x.key === key);
  if (!f) return '?';
  return typeof f.value === 'number' ? compact(f.value) : String(f.value);
}

function lineSegment(t: TargetStatus, r: Map<string, number>): string {
  if (!t.known) return `${t.type}${t.tokens.length > 0 ? ` ${t.tokens.join(' ')}` : ''}${t.mismatch ? ` (unparsed: ${t.mismatch})` : ''}`;
  switch (t.type) {
    case 'dm-remap-v4': {
      // rates only: the totals are in the block, JSON and CSV views (and "-" on the first sample)
      const per = (k: string): string => (r.has(k) ? compact(r.get(k)!) : '-');
      return (
        `rd/s ${per('reads')} wr/s ${per('writes')} maps ${num(t, 'activeMappings')} rmp-io ${num(t, 'remappedIos')} ` +
        `health ${num(t, 'healthScore')}% hot ${num(t, 'hotspots')} hit ${num(t, 'cacheHitRatePct')}%`
      );
    }
    case 'remap':
      return (
        `remaps ${num(t, 'remaps')} pend ${num(t, 'pending')} spare ${num(t, 'spareUsed')}/${num(t, 'spareTotal')} ` +
        `rd-err ${num(t, 'readErrors')} wr-err ${num(t, 'writeErrors')} full ${num(t, 'enospc')} ${num(t, 'state')} health ${num(t, 'health')}%`
      );
    case 'dust': {
      const failing = t.fields.find((f) => f.key === 'failReads')?.value === true;
      const quiet = t.fields.find((f) => f.key === 'quiet')?.value === true;
      const bad = t.fields.some((f) => f.key === 'badBlocks') ? ` bad blocks ${num(t, 'badBlocks')}` : '';
      return `dust ${num(t, 'device')} ${failing ? 'failing reads' : 'bypass'} ${quiet ? 'quiet' : 'verbose'}${bad}`;
    }
    case 'flakey':
      if (t.fields.length === 0) return 'flakey (no table: up/down unknown)';
      return `flakey ${num(t, 'device')} up ${num(t, 'upSeconds')}s down ${num(t, 'downSeconds')}s features ${num(t, 'features')}`;
    default:
      return `${t.type} ${t.tokens.join(' ')}`;
  }
}

/** One line per target (one in all for a single-target device), each at most 80 columns. */
export function formatLine(cur: ViewSample, prev?: ViewSample): string[] {
  const r = rates(cur, prev);
  const many = cur.targets.length > 1;
  return cur.targets.map((t, i) => fit(`${clockTime(cur.time)} ${many ? `[${i}] ` : ''}${lineSegment(t, r[i])}`, VIEW_WIDTH));
}

// ---- human: the full block

const LABEL_W = 15;
const VALUE_W = 12;
const RATE_W = 10;
const CELL_W = LABEL_W + VALUE_W + RATE_W; // 37: two cells and their gaps fit 80 columns

function sizeText(sectors: number): string {
  const b = sectors * 512;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let x = b;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x >= 100 || i === 0 ? x.toFixed(0) : x.toFixed(1)} ${units[i]}`;
}

function wrapPairs(pairs: string[], width: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const p of pairs) {
    const piece = fit(p, width);
    if (cur !== '' && cur.length + 3 + piece.length > width) {
      out.push(cur);
      cur = '';
    }
    cur = cur === '' ? piece : `${cur}   ${piece}`;
  }
  if (cur !== '') out.push(cur);
  return out;
}

const FOOTNOTES: Record<string, string[]> = {
  'dm-remap-v4': [
    'errors and slow path are never incremented by the module; on the real module',
    'a status call that takes its health mutex shows health 100 and hotspots 0',
  ],
  flakey: ['flakey prints no status of its own: the fields come from its table line'],
};

function targetBlock(t: TargetStatus, r: Map<string, number>, index: number | undefined): string[] {
  const head = `${index !== undefined ? `[${index}] ` : ''}${t.type}, sectors ${t.start}+${t.length} (${sizeText(t.length)})`;
  const out = [fit(head, VIEW_WIDTH)];
  if (!t.known) {
    if (t.mismatch) out.push(fit(`unparsed: ${t.mismatch}`, VIEW_WIDTH));
    out.push(...wrapPairs(t.tokens.length > 0 ? t.tokens : ['(no status tokens)'], VIEW_WIDTH));
    return out;
  }
  const texts = t.fields.filter((f) => f.kind === 'text');
  out.push(
    ...wrapPairs(
      texts.map((f) => `${f.label} ${String(f.value)}`),
      VIEW_WIDTH,
    ),
  );
  const cells = t.fields
    .filter((f) => f.kind !== 'text')
    .map(
      (f) =>
        `${fit(f.label, LABEL_W - 1).padEnd(LABEL_W)}${cellValue(f, VALUE_W - 1).padStart(VALUE_W - 1)} ${rateText(r.get(f.key))
          .padStart(RATE_W - 1)
          .padEnd(RATE_W - 1)}`,
    );
  for (let i = 0; i < cells.length; i += 2) out.push(`${cells[i].padEnd(CELL_W)}${cells[i + 1] !== undefined ? `  ${cells[i + 1]}` : ''}`.trimEnd());
  for (const n of FOOTNOTES[t.type] ?? []) out.push(fit(n, VIEW_WIDTH));
  return out;
}

/** The full view of a sample: a title line, then every target's fields by name. */
export function formatBlock(cur: ViewSample, prev?: ViewSample, info: { intervalMs?: number; sample?: number } = {}): string[] {
  const r = rates(cur, prev);
  const when = clockTime(cur.time);
  const every = info.intervalMs !== undefined ? `every ${info.intervalMs % 1000 === 0 ? info.intervalMs / 1000 : (info.intervalMs / 1000).toFixed(1)} s` : '';
  const right = [every, when].filter((x) => x !== '').join('  ');
  const title = fit(`remapsim status ${cur.label}`, VIEW_WIDTH - right.length - 2);
  const out = [`${title.padEnd(VIEW_WIDTH - right.length)}${right}`];
  const many = cur.targets.length > 1;
  cur.targets.forEach((t, i) => out.push(...targetBlock(t, r[i], many ? i : undefined)));
  return out;
}

// ---- JSON Lines

export function formatJson(cur: ViewSample): string {
  return JSON.stringify({
    time: cur.time.toISOString(),
    target: cur.label,
    lines: cur.targets.map((t) => ({
      start: t.start,
      length: t.length,
      type: t.type,
      ...(t.known ? { fields: Object.fromEntries(t.fields.map((f) => [f.key, f.value])) } : {}),
      ...(t.mismatch ? { mismatch: t.mismatch } : {}),
      tokens: t.tokens,
    })),
  });
}

// ---- CSV

function csvCell(v: string | number | boolean | undefined): string {
  if (v === undefined) return '';
  const s = String(v);
  return /[",\n\r]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The CSV columns a sample has: time, then per target its type, start, length and fields (or tokens). */
export function csvColumns(s: ViewSample): string[] {
  const cols = ['time'];
  const many = s.targets.length > 1;
  s.targets.forEach((t, i) => {
    const p = many ? `${i}.` : '';
    cols.push(`${p}type`, `${p}start`, `${p}length`);
    if (t.known) cols.push(...t.fields.map((f) => `${p}${f.key}`));
    else cols.push(`${p}tokens`);
  });
  return cols;
}

export function formatCsvHeader(columns: readonly string[]): string {
  return columns.map(csvCell).join(',');
}

/** A sample as a CSV row with the given columns (a column the sample lacks stays empty). */
export function formatCsvRow(s: ViewSample, columns: readonly string[]): string {
  const many = s.targets.length > 1;
  const values = new Map<string, string | number | boolean>([['time', s.time.toISOString()]]);
  s.targets.forEach((t, i) => {
    const p = many ? `${i}.` : '';
    values.set(`${p}type`, t.type);
    values.set(`${p}start`, t.start);
    values.set(`${p}length`, t.length);
    if (t.known) for (const f of t.fields) values.set(`${p}${f.key}`, f.value);
    else values.set(`${p}tokens`, t.tokens.join(' '));
  });
  return columns.map((c) => csvCell(values.get(c))).join(',');
}
