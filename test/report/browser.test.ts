/**
 * The report in a real browser: Debian's chromium, headless, driven by
 * playwright-core (never a downloaded browser). The page loads from disk
 * with no console errors and no requests but itself, every chart has data
 * points, the legend script works, and a screenshot is kept in
 * artifacts/report.png. Without /usr/bin/chromium the test is skipped with a
 * reason, except under CI, where .ci/run installs it and its absence fails.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport } from '../../src/report/html.js';
import { readResults } from '../../src/report/load.js';
import { formatFioJson } from '../../src/stats/fio-json.js';
import { runInProcess } from '../cli/in-process.js';
import { tmpDir } from '../helpers/tmp.js';
import { REPORT_SCENARIO, runWithTimeline } from './scenario-run.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACTS = path.join(root, 'artifacts');
const missing = !fs.existsSync(CHROMIUM);
if (missing) console.log(`${process.env.CI ? 'FAILING' : 'skipping'} the browser test: ${CHROMIUM} is missing (apt-get install -y chromium)`);

interface ChartInfo {
  kind: string;
  run: string | null;
  series: number[];
  points: number;
  drawnPaths: number;
  bars: number;
  cells: number;
  width: number;
}

describe.skipIf(missing && !process.env.CI)('the report in headless Chromium', () => {
  const tmp = tmpDir('remapsim-browser-');
  let ctx: BrowserContext;
  let compareHtml: string;
  let pairHtml: string;

  beforeAll(async () => {
    if (missing) throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium for this test`);
    const scenario = { ...REPORT_SCENARIO, duration: '2500ms' };
    const safe = runWithTimeline(scenario, 'safe', { plus: true }); // json+: the latency histogram
    const v4 = runWithTimeline(scenario, 'dm-remap-v4');
    const safeJson = path.join(tmp.dir, 'safe.json');
    fs.writeFileSync(safeJson, formatFioJson(safe));
    fs.writeFileSync(path.join(tmp.dir, 'v4.json'), formatFioJson(v4));
    const both = path.join(tmp.dir, 'both.json');
    fs.writeFileSync(both, `${JSON.stringify({ runs: [safe, v4] }, null, 2)}\n`);
    // the command (in this process: the same program and error handling as the binary), writing beside the first results file
    const r = await runInProcess(['report', safeJson, path.join(tmp.dir, 'v4.json')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    pairHtml = path.join(tmp.dir, 'safe.html');
    expect(r.stdout).toBe(`wrote ${pairHtml} (2 runs, ${Math.ceil(fs.statSync(pairHtml).size / 1024)} KiB)\n`);
    compareHtml = path.join(tmp.dir, 'both.html');
    fs.writeFileSync(compareHtml, renderReport(readResults([both])));
    ctx = await chromium.launchPersistentContext(path.join(tmp.dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 900 },
    });
  }, 60_000);

  afterAll(async () => {
    await ctx?.close();
    tmp.cleanup();
  });

  async function open(file: string) {
    const page = await ctx.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (req) => requests.push(req.url()));
    page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    const charts = await page.$$eval('svg.chart', (svgs) =>
      svgs.map((svg) => ({
        kind: svg.getAttribute('data-chart') ?? '',
        run: svg.closest('figure')?.querySelector('figcaption')?.textContent ?? null,
        series: [...svg.querySelectorAll('.series')].map((g) => Number(g.getAttribute('data-n'))),
        points: svg.querySelectorAll('circle.pt').length,
        drawnPaths: [...svg.querySelectorAll('path.line')].filter((p) => (p as unknown as { getTotalLength(): number }).getTotalLength() > 0).length,
        bars: svg.querySelectorAll('rect.bar').length,
        cells: svg.querySelectorAll('rect.cell').length,
        width: svg.getBoundingClientRect().width,
      })),
    );
    return { page, problems, requests, charts: charts as ChartInfo[] };
  }

  it('loads from disk with no console errors and no requests, every chart with data points; screenshot kept', async () => {
    const { page, problems, requests, charts } = await open(pairHtml);
    expect(problems).toEqual([]);
    expect(requests).toEqual([pathToFileURL(pairHtml).href]);
    // per run: bandwidth, iops, latency, cdf, remaps, device map, health (both targets report a score); one oracle chart for both;
    // the latency histogram for the run whose results are json+
    const kinds = charts.map((c) => `${c.run ?? '-'}:${c.kind}`).sort();
    expect(kinds).toEqual(
      [
        ...['bandwidth', 'iops', 'latency', 'cdf', 'remaps', 'devicemap', 'health'].flatMap((k) => [`safe:${k}`, `dm-remap-v4:${k}`]),
        'safe:histogram',
        '-:oracle',
      ].sort(),
    );
    expect(await page.locator('#histogram figure.run:has(figcaption:text-is("dm-remap-v4")) p.nodata').textContent()).toBe(
      'no json+ latency bins in this results file',
    );
    for (const c of charts) {
      const what = `${c.run}:${c.kind}`;
      expect(c.width, what).toBeGreaterThan(300);
      expect(c.points + c.bars + c.cells, what).toBeGreaterThan(0);
      if (c.series.length > 0) {
        expect(Math.min(...c.series), what).toBeGreaterThan(0);
        expect(c.drawnPaths, what).toBe(c.series.length);
      }
    }
    const bw = charts.find((c) => c.kind === 'bandwidth')!;
    expect(bw.points).toBe(bw.series.reduce((a, n) => a + n, 0)); // a circle per interval
    const v4map = charts.find((c) => c.kind === 'devicemap' && c.run === 'dm-remap-v4')!;
    expect(v4map.cells).toBeGreaterThan(0);
    expect(await page.locator('figure:has(figcaption:text-is("dm-remap-v4")) svg[data-chart="devicemap"] circle.finding').count()).toBeGreaterThan(0);
    expect(await page.locator('table.summary tr.verdict td').allTextContents()).toEqual([
      'nothing lost',
      expect.stringMatching(/^\d+ units lost, stale, corrupt or failed without cause$/),
    ]);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'report.png'), fullPage: true });
    expect(fs.statSync(path.join(ARTIFACTS, 'report.png')).size).toBeGreaterThan(50_000);
    await page.close();
  });

  it("the legend's script hides and shows a series", async () => {
    const { page, problems } = await open(pairHtml);
    const chart = page.locator('svg[data-chart="bandwidth"]').first();
    const read = chart.locator('.series[data-name="read"]');
    await expect.poll(() => read.isVisible()).toBe(true);
    await chart.locator('.legend-item[data-series="read"]').click();
    expect(await read.isVisible()).toBe(false);
    expect(await chart.locator('.series[data-name="write"]').isVisible()).toBe(true);
    await chart.locator('.legend-item[data-series="read"]').click();
    expect(await read.isVisible()).toBe(true);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('one file holding {runs: [...]} shows the same runs side by side', async () => {
    const { page, problems, charts } = await open(compareHtml);
    expect(problems).toEqual([]);
    expect(charts).toHaveLength(16);
    const cols = await page.locator('#bandwidth figure.run').evaluateAll((figs) => figs.map((f) => Math.round(f.getBoundingClientRect().top)));
    expect(cols).toHaveLength(2);
    expect(cols[0]).toBe(cols[1]); // side by side, not stacked
    await page.close();
  });

  it('at 1024 and 1280 px: no axis title over a tick label or off the chart, chart text at the page scale, no sideways scroll', async () => {
    for (const file of [pairHtml, compareHtml]) {
      for (const width of [1024, 1280]) {
        const { page, problems } = await open(file);
        await page.setViewportSize({ width, height: 900 });
        const where = `${path.basename(file)} at ${width} px`;
        const m = await page.evaluate(() => {
          // the page's DOM, typed loosely: the test's own TypeScript has no DOM library
          type R = { left: number; right: number; top: number; bottom: number };
          type El = {
            getBoundingClientRect(): R;
            textContent: string | null;
            getAttribute(n: string): string | null;
            querySelector(s: string): El | null;
            querySelectorAll(s: string): Iterable<El>;
            viewBox: { baseVal: { width: number } };
          };
          const g = globalThis as unknown as {
            document: { body: El; documentElement: { scrollWidth: number }; querySelectorAll(s: string): Iterable<El> };
            getComputedStyle(e: El): { fontSize: string };
            innerWidth: number;
          };
          const { document, getComputedStyle } = g;
          const rect = (e: El): R => {
            const r = e.getBoundingClientRect();
            return { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
          };
          const meets = (a: R, b: R): boolean => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
          const bodyPx = parseFloat(getComputedStyle(document.body).fontSize);
          const charts = [...document.querySelectorAll('svg.chart')].map((svg) => {
            const s = svg;
            const box = rect(s);
            const titles = [...s.querySelectorAll('.axis-title')];
            const labels = [...s.querySelectorAll('.tick, .category')];
            const overlaps: string[] = [];
            const outside: string[] = [];
            for (const t of titles) {
              const tr = rect(t);
              if (tr.left < box.left - 0.5 || tr.right > box.right + 0.5 || tr.top < box.top - 0.5 || tr.bottom > box.bottom + 0.5)
                outside.push(t.textContent ?? '');
              for (const l of labels) if (meets(tr, rect(l))) overlaps.push(`"${t.textContent}" over "${l.textContent}"`);
            }
            const tick = s.querySelector('.tick');
            const scale = box.right - box.left > 0 ? (box.right - box.left) / s.viewBox.baseVal.width : 0;
            const textPx = tick ? parseFloat(getComputedStyle(tick).fontSize) * scale : 0;
            return { kind: s.getAttribute('data-chart'), titles: titles.length, labels: labels.length, overlaps, outside, textPx };
          });
          return { bodyPx, charts, scrollWidth: document.documentElement.scrollWidth, innerWidth: g.innerWidth };
        });
        expect(m.scrollWidth, `${where}: page wider than the window`).toBeLessThanOrEqual(m.innerWidth);
        expect(m.charts.length, where).toBeGreaterThan(10);
        for (const c of m.charts) {
          const what = `${where}: ${c.kind}`;
          expect(c.titles, what).toBeGreaterThan(0);
          expect(c.labels, what).toBeGreaterThan(2);
          expect(c.overlaps, what).toEqual([]);
          expect(c.outside, what).toEqual([]);
          // the chart's text as the reader sees it: near the page's, neither blown up nor shrunk
          expect(c.textPx, what).toBeGreaterThanOrEqual(0.8 * m.bodyPx);
          expect(c.textPx, what).toBeLessThanOrEqual(m.bodyPx);
        }
        if (file === pairHtml) {
          // two runs side by side at 1280 (both fit at full size), one under the other at 1024
          const tops = await page.locator('#bandwidth figure.run').evaluateAll((figs) => figs.map((f) => Math.round(f.getBoundingClientRect().top)));
          expect(tops[0] === tops[1], where).toBe(width === 1280);
          await page.screenshot({ path: path.join(ARTIFACTS, `report-${width}.png`), fullPage: true });
        }
        expect(problems).toEqual([]);
        await page.close();
      }
    }
  }, 60_000);

  it('the golden SVGs render on their own', async () => {
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    const dir = path.join(root, 'test/report/golden');
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.svg'))) {
      await page.goto(pathToFileURL(path.join(dir, f)).href);
      const drawn = await page.$$eval(
        'circle.pt, rect.bar, rect.cell, path.line',
        (els) =>
          els.filter((e) => {
            const b = (e as unknown as { getBBox(): { width: number; height: number } }).getBBox();
            return b.width > 0 || b.height > 0;
          }).length,
      );
      expect(drawn, f).toBeGreaterThan(0);
    }
    expect(errors).toEqual([]);
    await page.close();
  });
});
