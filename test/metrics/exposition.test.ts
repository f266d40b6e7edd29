/**
 * The exposition formats: OpenMetrics 1.0.0 line by line (type, unit and
 * help lines, counter and info suffixes, state sets, cumulative histogram
 * buckets with canonical `le`, escaping, `# EOF`), the Prometheus text
 * rendering of the same families checked by promtool, names refused before
 * anything is written, and content negotiation.
 */
import { describe, expect, it } from 'vitest';
import { canonicalNumber, type MetricFamily, MetricSet, negotiateFormat, renderOpenMetrics, renderPrometheusText } from '../../src/metrics/exposition.js';
import { LatencyHistogram } from '../../src/metrics/histogram.js';
import { skipReason } from '../helpers/tmp.js';
import { promtoolCheck, promtoolVersion } from './promtool.js';

const promtool = promtoolVersion();
const noPromtool = skipReason(promtool ? undefined : 'promtool (Debian package prometheus) is not installed', 'promtool check metrics on the exposition');

function sample(): MetricFamily[] {
  const h = new LatencyHistogram([0.001, 0.01, 1]);
  for (const s of [0.0005, 0.002, 0.002, 5]) h.observe(s);
  return [
    { name: 'demo_layer', type: 'info', help: 'A layer.', points: [{ labels: { layer: 'main.dust', type: 'dust' } }] },
    { name: 'demo_read_errors', type: 'counter', help: 'Reads that failed.', points: [{ labels: { layer: 'target' }, value: 3 }] },
    { name: 'demo_health_score', type: 'gauge', help: 'Score "0..100"\nwith a \\ backslash.', points: [{ labels: { layer: 'a"b\\c\nd' }, value: 97.5 }] },
    { name: 'demo_state', type: 'stateset', help: 'State.', points: [{ labels: { layer: 'target' }, states: { ok: true, spare_full: false } }] },
    { name: 'demo_latency_seconds', type: 'histogram', unit: 'seconds', help: 'Latency.', points: [h.point({ op: 'read' })] },
    { name: 'demo_io_bytes', type: 'counter', unit: 'bytes', help: 'Bytes.', points: [{ labels: {}, value: 2 ** 40 }] },
  ];
}

describe('OpenMetrics rendering', () => {
  it('writes each family as the spec shows, and ends with # EOF', () => {
    expect(renderOpenMetrics(sample())).toBe(
      [
        '# TYPE demo_layer info',
        '# HELP demo_layer A layer.',
        'demo_layer_info{layer="main.dust",type="dust"} 1',
        '# TYPE demo_read_errors counter',
        '# HELP demo_read_errors Reads that failed.',
        'demo_read_errors_total{layer="target"} 3',
        '# TYPE demo_health_score gauge',
        '# HELP demo_health_score Score \\"0..100\\"\\nwith a \\\\ backslash.',
        'demo_health_score{layer="a\\"b\\\\c\\nd"} 97.5',
        '# TYPE demo_state stateset',
        '# HELP demo_state State.',
        'demo_state{layer="target",demo_state="ok"} 1',
        'demo_state{layer="target",demo_state="spare_full"} 0',
        '# TYPE demo_latency_seconds histogram',
        '# UNIT demo_latency_seconds seconds',
        '# HELP demo_latency_seconds Latency.',
        'demo_latency_seconds_bucket{op="read",le="0.001"} 1',
        'demo_latency_seconds_bucket{op="read",le="0.01"} 3',
        'demo_latency_seconds_bucket{op="read",le="1.0"} 3',
        'demo_latency_seconds_bucket{op="read",le="+Inf"} 4',
        'demo_latency_seconds_count{op="read"} 4',
        'demo_latency_seconds_sum{op="read"} 5.0045',
        '# TYPE demo_io_bytes counter',
        '# UNIT demo_io_bytes bytes',
        '# HELP demo_io_bytes Bytes.',
        'demo_io_bytes_total 1099511627776',
        '# EOF',
        '',
      ].join('\n'),
    );
  });

  it('renders le values canonically (Go %g with .0), as the spec lists them', () => {
    const want: Array<[number, string]> = [
      [0, '0.0'],
      [0.001, '0.001'],
      [0.95, '0.95'],
      [1, '1.0'],
      [1.7, '1.7'],
      [10, '10.0'],
      [1e-10, '1e-10'],
      [1e-9, '1e-09'],
      [1e-5, '1e-05'],
      [0.0001, '0.0001'],
      [5e-5, '5e-05'],
      [0.00025, '0.00025'],
      [100000, '100000.0'],
      [1e6, '1e+06'],
      [1e10, '1e+10'],
      [Infinity, '+Inf'],
    ];
    for (const [v, s] of want) expect(canonicalNumber(v), String(v)).toBe(s);
  });

  it('refuses names that are invalid, clash with sample suffixes, lack their unit, or repeat', () => {
    const g = (name: string, extra: object = {}): MetricFamily => ({ name, type: 'gauge', help: 'x', points: [{ labels: {}, value: 1 }], ...extra });
    expect(() => renderOpenMetrics([g('9lives')])).toThrow(/not valid/);
    expect(() => renderOpenMetrics([g('foo_total')])).toThrow(/reserve/);
    expect(() => renderOpenMetrics([g('foo_info')])).toThrow(/reserve/);
    expect(() => renderOpenMetrics([g('foo', { unit: 'seconds' })])).toThrow(/unit/);
    expect(() => renderOpenMetrics([g('foo'), g('foo')])).toThrow(/twice/);
    expect(() => renderOpenMetrics([{ name: 'foo', type: 'gauge', help: 'x', points: [{ labels: { le: '1' }, value: 1 }] }])).toThrow(/reserved/);
    expect(() => renderOpenMetrics([{ name: 'foo', type: 'gauge', help: 'x', points: [{ labels: { 'a-b': '1' }, value: 1 }] }])).toThrow(/not valid/);
  });

  it('MetricSet gathers points of one family from several sources and drops empty families', () => {
    const set = new MetricSet();
    set.add({ name: 'x', type: 'gauge', help: 'h', points: [{ labels: { layer: 'a' }, value: 1 }] });
    set.add({ name: 'y', type: 'gauge', help: 'h', points: [] });
    set.add({ name: 'x', type: 'gauge', help: 'h', points: [{ labels: { layer: 'b' }, value: 2 }] });
    expect(set.list()).toEqual([
      {
        name: 'x',
        type: 'gauge',
        help: 'h',
        points: [
          { labels: { layer: 'a' }, value: 1 },
          { labels: { layer: 'b' }, value: 2 },
        ],
      },
    ]);
    expect(() => set.add({ name: 'x', type: 'counter', help: 'h', points: [] })).toThrow(/gauge and as counter/);
  });

  it('negotiates: OpenMetrics for Prometheus and for */*, text 0.0.4 for a client asking text/plain only', () => {
    expect(
      negotiateFormat('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'),
    ).toBe('openmetrics');
    expect(negotiateFormat(undefined)).toBe('openmetrics');
    expect(negotiateFormat('*/*')).toBe('openmetrics');
    expect(negotiateFormat('text/plain; version=0.0.4')).toBe('prometheus-text');
  });
});

describe('Prometheus text rendering', () => {
  it('names counters and info families by their samples, state sets as gauges; no UNIT, no EOF', () => {
    const text = renderPrometheusText(sample());
    expect(text).toContain(
      '# HELP demo_read_errors_total Reads that failed.\n# TYPE demo_read_errors_total counter\ndemo_read_errors_total{layer="target"} 3\n',
    );
    expect(text).toContain('# TYPE demo_layer_info gauge\ndemo_layer_info{layer="main.dust",type="dust"} 1\n');
    expect(text).toContain('# TYPE demo_state gauge\n');
    expect(text).toContain('# HELP demo_health_score Score "0..100"\\nwith a \\\\ backslash.\n');
    expect(text).not.toMatch(/# UNIT|# EOF/);
  });

  it.skipIf(noPromtool)('promtool check metrics finds nothing wrong', () => {
    const r = promtoolCheck(renderPrometheusText(sample()));
    expect(r, r.output).toEqual({ code: 0, output: '' });
  });

  it.skipIf(noPromtool)('promtool does complain about a broken exposition (the check can fail)', () => {
    const r = promtoolCheck('# TYPE demo_x counter\ndemo_x 1\n');
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/_total/);
  });
});
