/**
 * Status lines as metrics, the formatter `status --format openmetrics` uses
 * for a kernel device (which needs device-mapper: the VM lane) tested here on
 * the parsed lines of dm-remap-v4 (as the module prints them), dust and the
 * safe policy's remap target; then the same path end to end on an
 * in-process target (a model layer behind the ControlTarget verbs a kernel
 * DmDeviceTarget also has), and promtool on the result.
 */
import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { renderOpenMetrics, renderPrometheusText } from '../../src/metrics/exposition.js';
import { snapshotLayers, statusFamilies } from '../../src/metrics/status-metrics.js';
import { parseStatusLine } from '../../src/status/parse.js';
import { sampleExposition, watchExpositions } from '../../src/metrics/status-watch.js';
import { controlTargetSource } from '../../src/status/sources.js';
import { collectLayers, handleControlRequest } from '../../src/nbd/control-socket.js';
import { ServedMetrics } from '../../src/metrics/served-metrics.js';
import { skipReason } from '../helpers/tmp.js';
import { promtoolCheck, promtoolVersion } from './promtool.js';

const noPromtool = skipReason(
  promtoolVersion() ? undefined : 'promtool (Debian package prometheus) is not installed',
  'promtool check metrics on status metrics',
);

/** As the loaded dm-remap-v4 module printed it in the kernel lane. */
const V4_LINE =
  '0 131072 dm-remap-v4 v4.0-phase1.4 /dev/mapper/bad /dev/loop1 4 1 0 0 2 5 337431 67486 233483440 512 32768 5 5 0 0 0 5 0 0 0 100 0 0 operational real';
const DUST_LINE = '0 8192 dust 7:0 fail_read_on_bad_block verbose';
const SAFE_LINE = '0 524288 remap v1 main spare 5 23 5/53584 7 2 0 store_enospc 97';

function linesOf(text: string, prefix: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(prefix));
}

describe('statusFamilies: parsed status lines as metrics', () => {
  it('dm-remap-v4: counters end in _total, time in seconds, the hit rate as a ratio, modes in the layer info', () => {
    const om = renderOpenMetrics(statusFamilies([{ layer: 'bad0', status: parseStatusLine(V4_LINE) }]));
    expect(linesOf(om, 'remapsim_layer_info')).toEqual([
      'remapsim_layer_info{layer="bad0",type="dm-remap-v4",version="v4.0-phase1.4",mode="operational",device_mode="real"} 1',
    ]);
    expect(om).toContain('remapsim_v4_reads_total{layer="bad0"} 4\n');
    expect(om).toContain('remapsim_v4_writes_total{layer="bad0"} 1\n');
    expect(om).toContain('remapsim_v4_active_mappings_total{layer="bad0"} 2\n');
    expect(om).toContain('# TYPE remapsim_v4_total_map_time_seconds counter\n# UNIT remapsim_v4_total_map_time_seconds seconds\n');
    expect(om).toContain('remapsim_v4_total_map_time_seconds_total{layer="bad0"} 0.000337431\n');
    expect(om).toContain('remapsim_v4_sector_size_bytes{layer="bad0"} 512\n');
    expect(om).toContain('remapsim_v4_spare_sectors{layer="bad0"} 32768\n');
    expect(om).toContain('remapsim_health_score{layer="bad0"} 100\n');
    expect(om).toContain('remapsim_v4_cache_hit_ratio{layer="bad0"} 0\n');
    expect(om).not.toMatch(/loop1|\/dev\/mapper/); // device paths stay out
    expect(om.endsWith('# EOF\n')).toBe(true);
  });

  it('remap (the safe policy): remaps, pending, spare used and total, errors, health, and the state as a state set', () => {
    const om = renderOpenMetrics(statusFamilies([{ layer: 'target', status: parseStatusLine(SAFE_LINE) }]));
    for (const l of [
      'remapsim_remaps{layer="target"} 5',
      'remapsim_pending{layer="target"} 23',
      'remapsim_spare_used_blocks{layer="target"} 5',
      'remapsim_spare_total_blocks{layer="target"} 53584',
      'remapsim_read_errors_total{layer="target"} 7',
      'remapsim_write_errors_total{layer="target"} 2',
      'remapsim_spare_full_errors_total{layer="target"} 0',
      'remapsim_health_score{layer="target"} 97',
      'remapsim_state{layer="target",remapsim_state="ok"} 0',
      'remapsim_state{layer="target",remapsim_state="store_error"} 1',
    ])
      expect(om).toContain(`${l}\n`);
  });

  it('dust: its flags as 0/1 gauges, the bad-block count and block size when known', () => {
    const layers = snapshotLayers('flaky0', { time: new Date(), status: DUST_LINE, table: '0 8192 dust 7:0 0 4096', dustBadBlocks: 3 });
    const om = renderOpenMetrics(statusFamilies(layers));
    expect(om).toContain('remapsim_dust_fail_reads{layer="flaky0"} 1\n');
    expect(om).toContain('remapsim_dust_quiet{layer="flaky0"} 0\n');
    expect(om).toContain('remapsim_dust_bad_blocks{layer="flaky0"} 3\n');
    expect(om).toContain('remapsim_dust_block_size_bytes{layer="flaky0"} 4096\n');
  });

  it('a device of several targets names each by its start; unknown or mismatched lines only get their info and parsed=0', () => {
    const layers = snapshotLayers('stack-bad', { time: new Date(), status: '0 100 linear 7:0 0\n100 8 error\n108 100 linear 7:0 108' });
    expect(layers.map((l) => l.layer)).toEqual(['stack-bad@0', 'stack-bad@100', 'stack-bad@108']);
    const om = renderOpenMetrics(statusFamilies([...layers, { layer: 'odd', status: parseStatusLine('0 8 dust 7:0 sometimes verbose') }]));
    expect(linesOf(om, 'remapsim_status_parsed')).toEqual([
      'remapsim_status_parsed{layer="stack-bad@0"} 0',
      'remapsim_status_parsed{layer="stack-bad@100"} 0',
      'remapsim_status_parsed{layer="stack-bad@108"} 0',
      'remapsim_status_parsed{layer="odd"} 0',
    ]);
    expect(om).not.toContain('remapsim_dust_');
  });

  it.skipIf(noPromtool)('promtool check metrics accepts every kind of layer together', () => {
    const layers = [
      { layer: 'v4', status: parseStatusLine(V4_LINE) },
      { layer: 'safe', status: parseStatusLine(SAFE_LINE) },
      ...snapshotLayers('dust0', { time: new Date(), status: DUST_LINE, dustBadBlocks: 0 }),
      { layer: 'flakey0', status: parseStatusLine('0 8 flakey', '0 8 flakey 7:0 0 5 1 1 drop_writes') },
    ];
    const r = promtoolCheck(renderPrometheusText(statusFamilies(layers)));
    expect(r, r.output).toEqual({ code: 0, output: '' });
  });
});

describe('status --format openmetrics on a target behind the ControlTarget verbs', () => {
  it('prints one exposition per sample, each ending # EOF, that follows the target', async () => {
    const dust = new DustDevice(new MemoryDevice({ sectors: 1024, name: '/dev/loop7' }), { blockSize: 512 });
    dust.enable();
    const source = controlTargetSource(dust, 'dusty');
    expect(await sampleExposition(source)).toContain('remapsim_dust_bad_blocks{layer="dusty"} 0\n');
    let out = '';
    let n = 0;
    const printed = await watchExpositions({
      source: {
        ...source,
        read: async () => {
          if (n++ === 1) dust.addBadBlock(5);
          return source.read();
        },
      },
      out: { write: (t: string) => (out += t) },
      intervalMs: 100,
      count: 3,
    });
    expect(printed).toBe(3);
    const expositions = out.split('# EOF\n');
    expect(expositions.length).toBe(4);
    expect(expositions[3]).toBe('');
    expect(expositions.map((e) => /remapsim_dust_bad_blocks\{layer="dusty"\} (\d+)/.exec(e)?.[1]).slice(0, 3)).toEqual(['0', '1', '1']);
  });
});

describe('a served stack\'s metrics on the control socket (op "metrics")', () => {
  it("gives every layer's families in one exposition; a server without metrics says so", () => {
    const dust = new DustDevice(new MemoryDevice({ sectors: 1024 }), { blockSize: 512 });
    dust.addBadBlock(9);
    const layers = collectLayers(dust);
    const served = new ServedMetrics({ layers });
    const r = handleControlRequest(layers, { op: 'metrics' }, () => served.openMetrics());
    expect(r).toMatchObject({ ok: true, layer: 'target', targetType: 'dust' });
    const text = (r as { result: string }).result;
    expect(text).toContain('remapsim_dust_bad_blocks{layer="target"} 1\n');
    expect(text).toContain('remapsim_dust_fail_reads{layer="target"} 0\n'); // a fresh dust table is in bypass
    expect(text.endsWith('# EOF\n')).toBe(true);
    expect(handleControlRequest(layers, { op: 'metrics' })).toMatchObject({ ok: false, errno: 95, error: 'this server keeps no metrics' });
    expect(
      handleControlRequest(layers, { op: 'metrics' }, () => {
        throw new Error('boom');
      }),
    ).toMatchObject({ ok: false, kind: 'InternalError', error: 'metrics failed: boom' });
  });
});
