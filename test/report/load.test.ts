/** Reading results files into report runs, and the page built from them (structure; the browser test renders it). */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport, reportPathFor } from '../../src/report/html.js';
import { ReportInputError, readResults, runsFromJson } from '../../src/report/load.js';
import { formatFioJson } from '../../src/stats/fio-json.js';
import { runInProcess } from '../cli/in-process.js';
import { tmpDir } from '../helpers/tmp.js';
import { type FioWithBlock, REPORT_SCENARIO, runWithTimeline } from './scenario-run.js';

const tmp = tmpDir('remapsim-report-');
afterAll(() => tmp.cleanup());
let safe: FioWithBlock;
let safeFile: string;
beforeAll(() => {
  safe = runWithTimeline({ ...REPORT_SCENARIO, duration: '2s' }, 'safe');
  safeFile = path.join(tmp.dir, 'safe.json');
  fs.writeFileSync(safeFile, formatFioJson(safe));
});

function fioAvailable(): boolean {
  return spawnSync('fio', ['--version'], { stdio: 'ignore' }).status === 0;
}

function write(name: string, text: string): string {
  const f = path.join(tmp.dir, name);
  fs.writeFileSync(f, text);
  return f;
}

describe('results files', () => {
  it("reads remapsim's results: jobs, oracle, remap counters, timeline and device map", () => {
    const [run] = readResults([safeFile]);
    expect(run.label).toBe('safe');
    expect(run.scenario).toBe('report-fixture');
    expect(run.jobs[0].dirs.read.clat?.percentile?.['99.000000']).toBeGreaterThan(0);
    expect(run.oracle?.findings).toBe(0);
    expect(run.remap?.remaps).toBe(safe.remapsim.timeline!.device.remaps.at(-1));
    expect(run.timeline?.io.t).toEqual([0, 1000]);
    expect(run.deviceMap?.buckets).toBe(1024);
  });

  it('a {runs: [...]} file gives one run per entry, labelled by policy; the same policy twice gets file names', () => {
    const runs = runsFromJson(JSON.parse(JSON.stringify({ runs: [safe, { ...safe, 'global options': { policy: 'dm-remap-v4' } }] })), 'both.json');
    expect(runs.map((r) => [r.label, r.source])).toEqual([
      ['safe', 'both.json#0'],
      ['dm-remap-v4', 'both.json#1'],
    ]);
    const copy = path.join(tmp.dir, 'again.json');
    fs.copyFileSync(safeFile, copy);
    expect(readResults([safeFile, copy]).map((r) => r.label)).toEqual(['safe (safe.json)', 'safe (again.json)']);
  });

  it("plain fio's JSON (a real fio run) loads: latency, no timeline", () => {
    if (!fioAvailable()) {
      console.log('skipping the real-fio case: fio is not installed (apt-get install fio)');
      return;
    }
    const data = path.join(tmp.dir, 'fio.dat');
    const r = spawnSync(
      'fio',
      ['--name=t', `--filename=${data}`, '--size=4m', '--rw=randrw', '--bs=4k', '--ioengine=psync', '--runtime=300ms', '--time_based', '--output-format=json'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status).toBe(0);
    const file = path.join(tmp.dir, 'fio.json');
    fs.writeFileSync(file, `note: a line fio prints before its JSON\n${r.stdout}`);
    const [run] = readResults([file]);
    expect(run.fioVersion).toMatch(/^fio-3/);
    expect(run.label).toBe('fio.json');
    expect(run.timeline).toBeUndefined();
    expect(run.jobs[0].dirs.write.clat?.percentile?.['50.000000']).toBeGreaterThan(0);
    const html = renderReport([run]);
    expect(html).toContain('no timeline in this results file');
    expect(html).toMatch(/data-chart="latency"/);
  });

  it('refuses bad files in one line naming the file and the field', () => {
    expect(() => readResults([path.join(tmp.dir, 'missing.json')])).toThrow(/missing\.json: cannot read \(ENOENT\)/);
    expect(() => readResults([write('text.json', 'hello')])).toThrow(/text\.json: not JSON/);
    expect(() => readResults([write('obj.json', '{"a":1}')])).toThrow(
      /obj\.json: not a results file \(expected fio's JSON output with a 'jobs' array, or \{"runs": \[\.\.\.\]\}\)/,
    );
    expect(() => readResults([write('empty-runs.json', '{"runs":[]}')])).toThrow('empty-runs.json: runs must be a non-empty array of fio results');
    const broken = JSON.parse(JSON.stringify(safe));
    broken.jobs[0].read.clat_ns.percentile['99.000000'] = 'slow';
    expect(() => readResults([write('b1.json', JSON.stringify(broken))])).toThrow(/b1\.json: jobs\[0\]\.read\.clat_ns\.percentile\.99\.000000: /);
    const short = JSON.parse(JSON.stringify(safe));
    short.remapsim.timeline.io.read.bw.pop();
    expect(() => readResults([write('b2.json', JSON.stringify(short))])).toThrow(
      'b2.json: remapsim.timeline.io.read must have 2 values (one per io.t), has 1/2',
    );
    const map = JSON.parse(JSON.stringify(safe));
    map.remapsim.deviceMap.bad = [1];
    expect(() => readResults([write('b3.json', JSON.stringify(map))])).toThrow(ReportInputError);
  });
});

describe('the page', () => {
  it('is self-contained: nothing to fetch, the script and styles inline', () => {
    const html = renderReport(readResults([safeFile]), { generatedAt: new Date(0) });
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/\b(src|href)\s*=/i);
    expect(html).not.toMatch(/<link\b|@import|url\(/i);
    expect(html.match(/https?:\/\/[^"]*/g)).toEqual(expect.arrayContaining(['http://www.w3.org/2000/svg'])); // SVG namespace only
    expect(new Set(html.match(/https?:\/\/[^"]*/g))).toEqual(new Set(['http://www.w3.org/2000/svg']));
    expect(html).toContain('made 1970-01-01T00:00:00.000Z');
    for (const kind of ['bandwidth', 'iops', 'latency', 'cdf', 'remaps', 'devicemap', 'health', 'oracle']) expect(html).toContain(`data-chart="${kind}"`);
    expect(html).not.toContain('no health score');
    // a result recorded without health samples (e.g. a status line without a score) says so instead of drawing an empty chart
    const noHealth = JSON.parse(fs.readFileSync(safeFile, 'utf8'));
    delete noHealth.remapsim.timeline.device.health;
    delete noHealth.remapsim.timeline.healthSource;
    const bare = renderReport(readResults([write('no-health.json', JSON.stringify(noHealth))]), { generatedAt: new Date(0) });
    expect(bare).toContain('no health score: no health scanner ran');
    expect(bare).not.toContain('data-chart="health"');
    expect(html).toContain('<td class="good">nothing lost</td>');
  });

  it('remapsim report: bad input is exit 2 in one line (the browser test runs the good case)', async () => {
    const bad = await runInProcess(['report', path.join(tmp.dir, 'nope.json'), '-o', path.join(tmp.dir, 'x.html')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^remapsim: .*nope\.json: cannot read \(ENOENT\)\n$/);
    expect(fs.existsSync(path.join(tmp.dir, 'x.html'))).toBe(false);
    expect(reportPathFor('a/r.json')).toBe('a/r.html');
    expect(reportPathFor('r.out')).toBe('r.out.html');
  });
});
