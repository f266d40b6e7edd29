/** Shared pieces for the server tests: a served device, byte patterns, tool checks. */
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import type { BlockDevice, IoStatus } from '../../src/block/device.js';
import { DeviceExecutor, type DeviceExecutorOptions, type IoExecutor } from '../../src/nbd/executor.js';
import { NbdServer, type NbdServerOptions } from '../../src/nbd/server.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** xorshift bytes: a different stream per seed. */
export function pattern(len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export interface Served {
  server: NbdServer;
  path: string;
  uri: string;
  close(): Promise<void>;
}

let seq = 0;

export async function serve(dir: string, dev: BlockDevice | IoExecutor, opts: NbdServerOptions & DeviceExecutorOptions = {}): Promise<Served> {
  const ex = 'features' in dev ? dev : new DeviceExecutor(dev, opts);
  const server = new NbdServer(ex, opts);
  const p = path.join(dir, `s${seq++}.sock`);
  const a = await server.listenUnix(p);
  return { server, path: p, uri: a.uri, close: () => server.close(1000) };
}

/** A raw socket, connected. */
export function rawConnect(p: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(p);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves once the socket has closed (either side). */
export function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) resolve();
    else {
      s.once('close', () => resolve());
      s.resume(); // EOF is only seen once buffered bytes are consumed
    }
  });
}

export function toolVersion(cmd: string, args = ['--version']): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .split('\n')[0]
      .trim();
  } catch {
    return undefined;
  }
}

export function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

/**
 * Runs the real remapsim program in this process (spawning tsx costs over a
 * second of CPU per call), capturing what it prints and its exit status.
 * Not for `serve`, which waits for a signal.
 */
export async function cliInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { buildProgram } = await import('../../src/cli/program.js');
  const { runCli } = await import('../../src/cli/run-cli.js');
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const saved = process.exitCode;
  process.exitCode = undefined;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    await runCli(buildProgram(), ['node', 'remapsim', ...args]);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = saved;
  return { code, stdout, stderr };
}

/**
 * An asynchronous executor over a synchronous one: every request completes
 * after `delays()` ms, so replies leave in another order than requests came.
 * `maxInflight` records how many were pending at once.
 */
export function shuffledExecutor(inner: DeviceExecutor, delays: () => number): IoExecutor & { maxInflight: number } {
  let inflight = 0;
  const later = (fn: () => IoStatus): Promise<IoStatus> => {
    inflight++;
    ex.maxInflight = Math.max(ex.maxInflight, inflight);
    return new Promise((resolve) =>
      setTimeout(() => {
        inflight--;
        resolve(fn());
      }, delays()),
    );
  };
  const ex = {
    name: 'shuffled',
    sectors: inner.sectors,
    logicalBlockSize: inner.logicalBlockSize,
    features: inner.features,
    maxInflight: 0,
    // the buffers are the executor's until it completes, so using them later is allowed
    read: (s: number, b: Uint8Array) => later(() => inner.read(s, b)),
    write: (s: number, b: Uint8Array, f: boolean) => later(() => inner.write(s, b, f)),
    writeZeroes: (s: number, n: number, f: boolean) => later(() => inner.writeZeroes(s, n, f)),
    flush: () => later(() => inner.flush()),
    discard: (s: number, n: number) => later(() => inner.discard(s, n)),
  };
  return ex;
}
