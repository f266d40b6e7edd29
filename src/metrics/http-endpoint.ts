/**
 * The HTTP endpoint a scraper reads: GET /metrics (node:http), OpenMetrics
 * 1.0.0 by default and to anyone whose Accept header names it (Prometheus
 * does), the Prometheus text format 0.0.4 to a client that asks for
 * text/plain only. Loopback addresses unless the caller allows others.
 *
 * Bounds: at most 16 connections, headers within 5 s, a request within
 * 10 s, idle keep-alive connections closed after 5 s; nothing a client
 * sends is read past its headers. A malformed request gets 400 and the
 * connection is closed; it never reaches the collector.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { log } from '../util/log.js';
import {
  type MetricFamily,
  negotiateFormat,
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_TEXT_CONTENT_TYPE,
  renderOpenMetrics,
  renderPrometheusText,
} from './exposition.js';

export interface MetricsAddress {
  host: string;
  port: number;
}

export const DEFAULT_METRICS_HOST = '127.0.0.1';
const MAX_CONNECTIONS = 16;

/** `PORT`, `HOST:PORT` or `[IPv6]:PORT` (port 0: any free one); throws RangeError saying what is wrong. */
export function parseMetricsAddress(text: string): MetricsAddress {
  const t = text.trim();
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]*):)?(\d{1,5})$/.exec(t);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new RangeError(`expected PORT, HOST:PORT or [IPv6]:PORT with a port from 0 to 65535, got '${text}'`);
  const host = m[1] ?? m[2] ?? DEFAULT_METRICS_HOST;
  if (host === '') throw new RangeError(`the host before ':${m[3]}' is empty in '${text}'`);
  if (m[1] !== undefined && net.isIPv6(host) === false) throw new RangeError(`'${host}' in brackets is not an IPv6 address`);
  return { host, port };
}

/** Whether `host` can only be reached from this machine: localhost, 127.0.0.0/8, ::1 (also IPv4-mapped). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

export interface MetricsEndpoint {
  /** http://host:port/metrics, with the port actually bound. */
  url: string;
  close(): Promise<void>;
}

function answer(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Listens on `addr` and answers /metrics with what `collect` gives at that moment. Rejects with the listen error (EADDRINUSE...). */
export async function startMetricsEndpoint(addr: MetricsAddress, collect: () => MetricFamily[]): Promise<MetricsEndpoint> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return answer(res, 404, 'not found: the metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, 405, 'only GET and HEAD\n', { Allow: 'GET, HEAD' });
    let body: string;
    const format = negotiateFormat(req.headers.accept);
    try {
      const families = collect();
      body = format === 'openmetrics' ? renderOpenMetrics(families) : renderPrometheusText(families);
    } catch (err) {
      log.error({ err }, 'metrics: collecting failed');
      return answer(res, 500, `collecting the metrics failed: ${(err as Error).message}\n`);
    }
    answer(res, 200, body, { 'Content-Type': format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_TEXT_CONTENT_TYPE });
  });
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5000;
  server.maxHeadersCount = 64;
  server.maxConnections = MAX_CONNECTIONS;
  server.on('clientError', (_err, sock) => {
    if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else sock.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: addr.host, port: addr.port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'metrics endpoint error'));
  const a = server.address() as net.AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${a.port}/metrics`,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
