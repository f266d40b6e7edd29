/** The status view's formats: widths, names, rates, CSV and JSON. */
import { describe, expect, it } from 'vitest';
import { V4_STATUS_FIELDS } from '../../src/status/parse.js';
import {
  VIEW_WIDTH,
  compact,
  csvColumns,
  formatBlock,
  formatCsvHeader,
  formatCsvRow,
  formatJson,
  formatLine,
  rates,
  toViewSample,
} from '../../src/status/view.js';

const V4 = (reads: number, writes: number) =>
  `0 204800 dm-remap-v4 v4.0-phase1.4 /dev/mapper/lin /dev/loop18 ${reads} ${writes} 0 0 0 42 261566 6227 21166194365 512 40960 42 42 0 0 1 41 1 0 0 100 0 2 operational real`;
const at = (s: number) => new Date(Date.UTC(2026, 0, 2, 3, 4, 5) + s * 1000);
const LONG = `/dev/disk/by-id/${'x'.repeat(120)}`;

describe('human views', () => {
  it('the block names every dm-remap-v4 field and fits 80 columns, with rates from the previous sample', () => {
    const a = toViewSample('mydev', { time: at(0), status: V4(1000, 10) });
    const b = toViewSample('mydev', { time: at(2), status: V4(5000, 30) });
    const lines = formatBlock(b, a, { intervalMs: 2000 });
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(VIEW_WIDTH);
    const text = lines.join('\n');
    for (const def of V4_STATUS_FIELDS) expect(text).toContain(def.label);
    expect(text).toMatch(/^remapsim status mydev +every 2 s {2}\d\d:\d\d:\d\d$/m);
    expect(text).toMatch(/^reads +5000 +\+2k\/s +writes +30 +\+10\/s$/m);
    expect(text).toMatch(/spare sectors +40960/);
    expect(text).toMatch(/never incremented by the module/);
  });

  it('one line per sample for each type, cut to 80 columns', () => {
    const a = toViewSample('d', { time: at(0), status: V4(1000, 10) });
    const b = toViewSample('d', { time: at(1), status: V4(124000, 20) });
    expect(formatLine(a)[0]).toMatch(/^\d\d:\d\d:\d\d rd\/s - wr\/s - maps 0 rmp-io 0 health 100% hot 0 hit 2%$/);
    expect(formatLine(b, a)[0]).toMatch(/ rd\/s 123k wr\/s 10 maps 0 /);
    const safe = toViewSample('d', { time: at(0), status: '0 524288 remap v1 main spare 5 23 5/53584 5 5 0 ok 97' });
    expect(formatLine(safe)[0]).toMatch(/ remaps 5 pend 23 spare 5\/53.6k rd-err 5 wr-err 5 full 0 ok health 97%$/);
    const dust = toViewSample('d', { time: at(0), status: '0 8192 dust 7:0 bypass quiet', dustBadBlocks: 12 });
    expect(formatLine(dust)[0]).toMatch(/ dust 7:0 bypass quiet bad blocks 12$/);
    const flakey = toViewSample('d', { time: at(0), status: '0 8192 flakey', table: '0 8192 flakey 7:0 0 5 1 1 drop_writes' });
    expect(formatLine(flakey)[0]).toMatch(/ flakey 7:0 up 5s down 1s features drop_writes$/);
    const long = toViewSample('d', { time: at(0), status: `0 8 dust ${LONG} bypass verbose` });
    expect(formatLine(long)[0]).toHaveLength(VIEW_WIDTH);
    expect(formatLine(long)[0].endsWith('~')).toBe(true);
    for (const l of formatBlock(long)) expect(l.length).toBeLessThanOrEqual(VIEW_WIDTH);
    const two = toViewSample('d', { time: at(0), status: '0 8192 dust 7:0 bypass quiet\n8192 100 linear 7:1 0' });
    expect(formatLine(two).map((l) => l.slice(9, 13))).toEqual(['[0] ', '[1] ']);
  });

  it('rates only for counters, only against the same type, never negative', () => {
    const a = toViewSample('d', { time: at(0), status: V4(100, 10) });
    const b = toViewSample('d', { time: at(4), status: V4(500, 5) }); // writes went down: clear_stats
    const r = rates(b, a)[0];
    expect(r.get('reads')).toBe(100);
    expect(r.has('writes')).toBe(false);
    expect(r.has('healthScore')).toBe(false); // a gauge
    const other = toViewSample('d', { time: at(4), status: '0 8192 dust 7:0 bypass quiet' });
    expect(rates(other, a)[0].size).toBe(0);
  });

  it('compact numbers', () => {
    expect([0, 7, 999, 1000, 1234, 99_949, 123_456, 1e6, 45.6e9].map(compact)).toEqual(['0', '7', '999', '1k', '1.23k', '99.9k', '123k', '1M', '45.6G']);
  });
});

describe('machine formats', () => {
  it('JSON: one object per sample with named fields', () => {
    const s = toViewSample('mydev', { time: at(0), status: V4(42, 0) });
    const j = JSON.parse(formatJson(s));
    expect(j.time).toBe('2026-01-02T03:04:05.000Z');
    expect(j.target).toBe('mydev');
    expect(j.lines[0].fields.reads).toBe(42);
    expect(j.lines[0].tokens).toHaveLength(28);
    const unknown = JSON.parse(formatJson(toViewSample('x', { time: at(0), status: '0 8 linear 7:0 0' })));
    expect(unknown.lines[0]).toEqual({ start: 0, length: 8, type: 'linear', tokens: ['7:0', '0'] });
  });

  it('CSV: a header of field keys, rows in that order, quoting where needed', () => {
    const s = toViewSample('mydev', { time: at(0), status: V4(42, 0) });
    const cols = csvColumns(s);
    expect(cols.slice(0, 8)).toEqual(['time', 'type', 'start', 'length', 'version', 'mainPath', 'sparePath', 'reads']);
    expect(cols).toHaveLength(4 + 28);
    const row = formatCsvRow(s, cols).split(',');
    expect(row).toHaveLength(cols.length);
    expect(row.slice(0, 8)).toEqual(['2026-01-02T03:04:05.000Z', 'dm-remap-v4', '0', '204800', 'v4.0-phase1.4', '/dev/mapper/lin', '/dev/loop18', '42']);
    const odd = toViewSample('x', { time: at(0), status: '0 8 dust /dev/a,"b" bypass quiet' });
    expect(formatCsvRow(odd, csvColumns(odd))).toContain(',"/dev/a,""b""",false,true');
    expect(formatCsvHeader(['time', 'a,b'])).toBe('time,"a,b"');
    // a later sample of another shape keeps the first header's columns
    expect(formatCsvRow(odd, cols).split(',').length).toBeGreaterThanOrEqual(cols.length);
  });
});
