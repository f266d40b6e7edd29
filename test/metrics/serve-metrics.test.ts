/**
 * `remapsim serve --metrics` (a child process): the endpoint's exposition
 * follows the model as NBD clients do I/O and faults are injected, the
 * Prometheus text rendering passes promtool, Prometheus itself scrapes the
 * OpenMetrics one (its strict parser; skipped when the binary is missing),
 * `remapsim status --watch --format openmetrics` prints the same exposition,
 * and bad --metrics arguments are refused in one line with exit 2.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE } from '../../src/metrics/exposition.js';
import { controlRequest } from '../../src/nbd/control-socket.js';
import { NbdError } from '../../src/nbd/protocol.js';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { TestNbdClient } from '../nbd/client.js';
import { cliInProcess as cli, toolVersion, until } from '../nbd/serve-helpers.js';
import { promtoolCheck, promtoolVersion } from './promtool.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = [process.execPath, '--import', 'tsx', path.join(root, 'src/cli/main.ts')];

const noPromtool = skipReason(
  promtoolVersion() ? undefined : 'promtool (Debian package prometheus) is not installed',
  'promtool check metrics on the served exposition',
);
const prometheus = toolVersion('prometheus');
const noPrometheus = skipReason(
  prometheus ? undefined : 'prometheus (Debian package prometheus) is not installed',
  'a Prometheus scrape of remapsim serve --metrics',
);

/** The value of one sample line (`name{labels} value`) in an exposition. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('remapsim serve --metrics', () => {
  const tmp = tmpDir('remapsim-metrics-');
  const sock = path.join(tmp.dir, 'm.sock');
  let child: ChildProcess;
  let url = '';
  let port = 0;

  beforeAll(async () => {
    const main = path.join(tmp.dir, 'main.img');
    FileDevice.createSparse(main, 16 << 20);
    FileDevice.createSparse(path.join(tmp.dir, 'spare.img'), 4 << 20);
    const table = `0 ${(16 << 20) / 512} remap ${main} ${path.join(tmp.dir, 'spare.img')}`;
    child = spawn('timeout', ['-s', 'KILL', '300', ...CLI, 'serve', '--socket', sock, '--dust', '--metrics', '127.0.0.1:0', '--table', table], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    await until(() => out.includes('Stop with') || child.exitCode !== null, 50_000, 'remapsim serve to listen');
    if (child.exitCode !== null) throw new Error(`remapsim serve exited: ${out}`);
    url = /metrics {3}: (http:\S+)/.exec(out)![1];
    port = Number(new URL(url).port);
  }, 60_000);

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGTERM');
    tmp.cleanup();
  });

  it('serves OpenMetrics that follows the I/O and the faults', async () => {
    const before = await fetch(url);
    expect(before.status).toBe(200);
    expect(before.headers.get('content-type')).toBe(OPENMETRICS_CONTENT_TYPE);
    const t0 = await before.text();
    expect(t0.endsWith('# EOF\n')).toBe(true);
    expect(value(t0, 'remapsim_io_requests_total{layer="target",op="read"}')).toBe(0);

    const c = await TestNbdClient.connect(sock);
    await c.structuredReplies();
    await c.go('');
    for (let i = 0; i < 3; i++) expect((await c.read(i * 4096, 4096)).error).toBe(0);
    expect((await c.write(0, Buffer.alloc(8192, 7))).error).toBe(0);
    expect(await controlRequest(`${sock}.ctl`, { op: 'message', layer: 'main.dust', args: ['addbadblock', '100'] })).toMatchObject({ ok: true });
    expect((await c.read(100 * 512, 512)).error).toBe(NbdError.EIO);
    const t1 = await (await fetch(url)).text();
    await c.disconnect();

    expect(value(t1, 'remapsim_io_requests_total{layer="target",op="read"}')).toBe(4);
    expect(value(t1, 'remapsim_io_errors_total{layer="target",op="read"}')).toBe(1);
    expect(value(t1, 'remapsim_io_bytes_total{layer="target",op="read"}')).toBe(3 * 4096);
    expect(value(t1, 'remapsim_io_bytes_total{layer="target",op="write"}')).toBe(8192);
    expect(value(t1, 'remapsim_io_latency_seconds_count{layer="target",op="read"}')).toBe(4);
    expect(value(t1, 'remapsim_io_latency_seconds_bucket{layer="target",op="read",le="+Inf"}')).toBe(4);
    expect(value(t1, 'remapsim_read_errors_total{layer="target"}')).toBe(1);
    expect(value(t1, 'remapsim_pending{layer="target"}')).toBe(1);
    expect(value(t1, 'remapsim_dust_bad_blocks{layer="main.dust"}')).toBe(1);
    expect(value(t1, 'remapsim_spare_total_blocks{layer="target"}')).toBeGreaterThan(0);
    expect(value(t1, 'remapsim_nbd_connections_accepted_total')).toBeGreaterThanOrEqual(1);
  });

  it.skipIf(noPromtool)('a client asking for text/plain gets the Prometheus text format, which promtool accepts', async () => {
    const r = await fetch(url, { headers: { Accept: 'text/plain; version=0.0.4' } });
    expect(r.headers.get('content-type')).toBe(PROMETHEUS_TEXT_CONTENT_TYPE);
    const check = promtoolCheck(await r.text());
    expect(check, check.output).toEqual({ code: 0, output: '' });
  });

  it('answers only GET and HEAD on /metrics, and survives a malformed request', async () => {
    expect((await fetch(url.replace('/metrics', '/'))).status).toBe(404);
    expect((await fetch(url, { method: 'POST', body: 'x' })).status).toBe(405);
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const garbage = await new Promise<string>((resolve) => {
      const s = net.createConnection(port, '127.0.0.1', () => s.write('NOT HTTP AT ALL\r\n\r\n'));
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    expect((await fetch(url)).status).toBe(200);
  });

  it('remapsim status --watch --format openmetrics prints the same exposition, once per sample', async () => {
    const r = await cli(['status', sock, '--watch', '0.2', '--count', '2', '--format', 'openmetrics']);
    expect(r.code, r.stderr).toBe(0);
    const parts = r.stdout.split('# EOF\n');
    expect(parts.length).toBe(3);
    const scraped = await (await fetch(url)).text();
    const families = (t: string) => t.split('\n').filter((l) => l.startsWith('# TYPE'));
    expect(families(parts[0])).toEqual(families(scraped));
    expect(value(parts[1], 'remapsim_io_requests_total{layer="target",op="read"}')).toBe(4);
  }, 60_000);

  it('refuses bad --metrics arguments in one line, exit 2, before opening anything', async () => {
    const other = path.join(tmp.dir, 'other.sock');
    const base = ['serve', '--socket', other, '--table', `0 8 remap ${path.join(tmp.dir, 'nosuch')} x`];
    const inUse = await cli([...base, '--metrics', `127.0.0.1:${port}`]);
    const remote = await cli([...base, '--metrics', '0.0.0.0:0']);
    const badPort = await cli([...base, '--metrics', '127.0.0.1:99999']);
    for (const [r, why] of [
      [inUse, /--metrics 127\.0\.0\.1:\d+: cannot listen: the port is in use/],
      [remote, /0\.0\.0\.0 is not a loopback address.*--metrics-allow-remote/],
      [badPort, /--metrics: expected PORT, HOST:PORT or \[IPv6\]:PORT/],
    ] as const) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(why);
    }
    expect(fs.existsSync(other)).toBe(false);
  }, 60_000);

  it.skipIf(noPrometheus)(
    'Prometheus scrapes the OpenMetrics exposition: the target is up and the series are there',
    async () => {
      const webPort = await freePort();
      const cfg = path.join(tmp.dir, 'prometheus.yml');
      fs.writeFileSync(
        cfg,
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: remapsim\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`,
      );
      const prom = spawn(
        'timeout',
        [
          '-s',
          'KILL',
          '120',
          'prometheus',
          `--config.file=${cfg}`,
          `--storage.tsdb.path=${path.join(tmp.dir, 'tsdb')}`,
          `--web.listen-address=127.0.0.1:${webPort}`,
        ],
        { stdio: 'ignore' },
      );
      const api = async (q: string): Promise<any> => (await fetch(`http://127.0.0.1:${webPort}/api/v1/${q}`)).json();
      try {
        let target: { health?: string; lastError?: string } = {};
        const poll = async (): Promise<void> => {
          try {
            target = (await api('targets')).data.activeTargets[0] ?? {};
          } catch {
            // not listening yet
          }
        };
        for (const deadline = Date.now() + 60_000; target.health !== 'up' && Date.now() < deadline && prom.exitCode === null; ) {
          await poll();
          await new Promise((r) => setTimeout(r, 300));
        }
        expect(target, JSON.stringify(target)).toMatchObject({ health: 'up', lastError: '' });
        const q = await api(`query?query=${encodeURIComponent('remapsim_io_requests_total{op="read"}')}`);
        expect(Number(q.data.result[0].value[1])).toBeGreaterThanOrEqual(4);
        const meta = await api('metadata?metric=remapsim_io_latency_seconds');
        expect(meta.data.remapsim_io_latency_seconds[0]).toMatchObject({ type: 'histogram', unit: 'seconds' });
      } finally {
        prom.kill('SIGTERM');
      }
    },
    90_000,
  );
});
