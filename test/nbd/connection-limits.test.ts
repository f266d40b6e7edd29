/**
 * Connection admission (issue 17, finding 5): clients that connect and never
 * finish the handshake used to lock every other client out, indefinitely.
 * Now at most maxConnections are open, a connection past it is closed at
 * once, one that has not finished its handshake in time is closed, and
 * connections in transmission are never touched: a full server recovers
 * within the handshake timeout.
 */
import * as net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { ConnectionLimiter, DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from '../../src/nbd/connection-limiter.js';
import { DeviceExecutor } from '../../src/nbd/executor.js';
import { NbdServer } from '../../src/nbd/server.js';
import { ClientFlag, encodeClientFlags, encodeOption } from '../../src/nbd/protocol.js';
import { tmpDir } from '../helpers/tmp.js';
import { TestNbdClient } from './client.js';
import { pattern, serve, until } from './serve-helpers.js';

const tmp = tmpDir('remapsim-nbdlimit-');
afterAll(() => tmp.cleanup());

const SECTORS = 8192; // 4 MiB

async function goClient(p: string): Promise<TestNbdClient> {
  const c = await TestNbdClient.connect(p);
  await c.structuredReplies();
  const r = await c.go('');
  if (r[r.length - 1].kind !== 'rep-ack') throw new Error('GO refused');
  return c;
}

/** A connection that says nothing (or what `send` says) and records when it got its greeting and when it closed. */
interface HalfOpen {
  sock: net.Socket;
  greeted: boolean;
  closedAt: number | undefined;
}

function halfOpen(p: string): HalfOpen {
  const h: HalfOpen = { sock: net.createConnection(p), greeted: false, closedAt: undefined };
  h.sock.on('error', () => {});
  h.sock.on('data', () => (h.greeted = true));
  h.sock.on('close', () => (h.closedAt = Date.now()));
  return h;
}

/** Tries a full handshake and a 4 KiB read; true when both worked. */
async function honestTry(p: string, expect: Buffer): Promise<boolean> {
  let c: TestNbdClient | undefined;
  try {
    c = await TestNbdClient.connect(p);
    await c.go('');
    const r = await c.read(0, 4096);
    return r.error === 0 && Buffer.from(r.data!).equals(expect);
  } catch {
    return false;
  } finally {
    c?.destroy();
  }
}

describe('NBD connection limits', () => {
  it('defaults: 64 connections, a 10 s handshake; out-of-range limits are refused', () => {
    const srv = new NbdServer(new DeviceExecutor(new MemoryDevice({ sectors: 64 })));
    expect([srv.limiter.maxConnections, srv.limiter.handshakeTimeoutMs]).toEqual([64, 10_000]);
    expect([DEFAULT_MAX_CONNECTIONS, DEFAULT_HANDSHAKE_TIMEOUT_MS]).toEqual([64, 10_000]);
    expect(() => new ConnectionLimiter({ maxConnections: 0 })).toThrow('maxConnections must be an integer in [1, 65536], got 0');
    expect(() => new ConnectionLimiter({ handshakeTimeoutMs: 1.5 })).toThrow(/handshakeTimeoutMs must be an integer in \[1, 3600000\]/);
  });

  it('256 half-open connections: the rest are refused at once, a client in transmission keeps being served, and an honest client gets in within the handshake timeout', async () => {
    const TIMEOUT = 600;
    const MAX = 16;
    const srv = await serve(tmp.dir, new MemoryDevice({ sectors: SECTORS }), { maxConnections: MAX, handshakeTimeoutMs: TIMEOUT });
    try {
      const data = pattern(4096, 3);
      const keeper = await goClient(srv.path);
      expect((await keeper.write(0, data)).error).toBe(0);

      const t0 = Date.now();
      const stalled = Array.from({ length: 256 }, () => halfOpen(srv.path));
      await until(() => stalled.every((h) => h.greeted || h.closedAt !== undefined), 5000, 'every half-open connection to be greeted or refused');
      const admitted = stalled.filter((h) => h.greeted);
      expect(admitted).toHaveLength(MAX - 1); // the keeper holds one place
      expect(srv.server.stats.refused).toBe(256 - (MAX - 1));

      // full: a new client is turned away at once, the one in transmission is served
      expect(await honestTry(srv.path, data)).toBe(false);
      const before = Date.now();
      const r = await keeper.read(0, 4096);
      expect(r.error).toBe(0);
      expect(Buffer.from(r.data!).equals(data)).toBe(true);
      expect(Date.now() - before).toBeLessThan(200);

      // the half-open ones are closed at the deadline, and an honest client gets in
      let recovered = 0;
      while (Date.now() - t0 < TIMEOUT + 3000) {
        if (await honestTry(srv.path, data)) {
          recovered = Date.now() - t0;
          break;
        }
        await new Promise((res) => setTimeout(res, 25));
      }
      console.log(
        `connection limit ${MAX}, handshake timeout ${TIMEOUT} ms: 256 half-open, ${srv.server.stats.refused} refused; an honest client was served again ${recovered} ms after they came`,
      );
      expect(recovered, 'an honest client was served again').toBeGreaterThan(0);
      expect(recovered).toBeLessThan(TIMEOUT + 1000);
      await until(() => admitted.every((h) => h.closedAt !== undefined), 2000, 'the half-open connections to be closed');
      for (const h of admitted) expect(h.closedAt! - t0).toBeGreaterThanOrEqual(TIMEOUT - 50);
      expect(srv.server.stats.handshakeTimeouts).toBe(MAX - 1);
      expect((await keeper.read(0, 4096)).error).toBe(0);
      await keeper.disconnect();
      for (const h of stalled) h.sock.destroy();
    } finally {
      await srv.close();
    }
  });

  it('a client dribbling its handshake a byte at a time, or haggling options forever, is closed at the deadline', async () => {
    const TIMEOUT = 500;
    const srv = await serve(tmp.dir, new MemoryDevice({ sectors: SECTORS }), { handshakeTimeoutMs: TIMEOUT });
    try {
      const t0 = Date.now();
      const dribble = halfOpen(srv.path);
      const bytes = Buffer.concat([encodeClientFlags(ClientFlag.FIXED_NEWSTYLE), encodeOption({ kind: 'go', name: '', infoRequests: [] })]);
      let i = 0;
      const dribbler = setInterval(() => {
        if (i < bytes.length && !dribble.sock.destroyed) dribble.sock.write(bytes.subarray(i, ++i));
      }, 40);
      const haggler = halfOpen(srv.path);
      haggler.sock.write(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE));
      const haggling = setInterval(() => {
        if (!haggler.sock.destroyed) haggler.sock.write(encodeOption({ kind: 'list' }));
      }, 20);
      try {
        await until(() => dribble.closedAt !== undefined && haggler.closedAt !== undefined, TIMEOUT + 2000, 'both to be closed');
      } finally {
        clearInterval(dribbler);
        clearInterval(haggling);
      }
      for (const h of [dribble, haggler]) {
        expect(h.closedAt! - t0).toBeGreaterThanOrEqual(TIMEOUT - 50);
        expect(h.closedAt! - t0).toBeLessThan(TIMEOUT + 1000);
      }
      expect(srv.server.stats.handshakeTimeouts).toBe(2);
    } finally {
      await srv.close();
    }
  });

  it('the deadline stops applying once a client is in transmission (through GO and through EXPORT_NAME)', async () => {
    const TIMEOUT = 300;
    const srv = await serve(tmp.dir, new MemoryDevice({ sectors: SECTORS }), { handshakeTimeoutMs: TIMEOUT });
    try {
      const viaGo = await goClient(srv.path);
      const viaName = await TestNbdClient.connect(srv.path);
      await viaName.exportName('');
      await new Promise((res) => setTimeout(res, TIMEOUT * 3));
      for (const c of [viaGo, viaName]) {
        expect((await c.write(4096, pattern(4096, 9))).error).toBe(0);
        expect((await c.read(4096, 4096)).error).toBe(0);
        await c.disconnect();
      }
      expect(srv.server.stats.handshakeTimeouts).toBe(0);
    } finally {
      await srv.close();
    }
  });
});
