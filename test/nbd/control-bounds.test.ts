/**
 * The control socket's bounds, in process (the served process's memory under
 * a flood is measured in hostile-clients.test.ts): a line up to the limit is
 * answered, one byte more closes the connection after one error line, lines
 * split anywhere (inside a UTF-8 character too) are put back together, and
 * the connection count and idle time are limited.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { collectLayers, ControlServer, controlRequest } from '../../src/nbd/control-socket.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from './serve-helpers.js';

const tmp = tmpDir('remapsim-ctlbounds-');
afterAll(() => tmp.cleanup());

let n = 0;
async function control(opts: ConstructorParameters<typeof ControlServer>[1] = {}): Promise<{ srv: ControlServer; p: string }> {
  const srv = new ControlServer(collectLayers(new DustDevice(new MemoryDevice({ sectors: 64 }))), opts);
  const p = path.join(tmp.dir, `c${n++}.ctl`);
  await srv.listen(p);
  return { srv, p };
}

/** Sends `parts` one write at a time and collects what comes back until the server closes (or `untilLines` lines came). */
function exchange(p: string, parts: Array<string | Buffer>, untilLines = Infinity): Promise<{ lines: unknown[]; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = net.createConnection(p);
    let got = '';
    let closedByServer = false;
    const done = (): void =>
      resolve({
        lines: got
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l)),
        closedByServer,
      });
    s.setEncoding('utf8');
    s.on('error', () => {});
    s.on('data', (d: string) => {
      got += d;
      if (got.split('\n').length - 1 >= untilLines) {
        s.destroy();
        done();
      }
    });
    s.on('end', () => (closedByServer = true));
    s.on('close', done);
    s.once('connect', async () => {
      for (const part of parts) {
        s.write(part);
        await new Promise((r) => setImmediate(r));
      }
    });
  });
}

describe('control socket bounds', () => {
  it('a line of exactly the limit is answered; one byte more gets one error line and the connection closed', async () => {
    const { srv, p } = await control({ maxLine: 1024 });
    try {
      const req = '{"op":"layers"}';
      const atLimit = req + ' '.repeat(1024 - req.length);
      const ok = await exchange(p, [atLimit.slice(0, 300), atLimit.slice(300), '\n'], 1);
      expect(ok.lines).toEqual([{ ok: true, layers: [{ name: 'target', targetType: 'dust' }] }]);
      const over = await exchange(p, [`${atLimit} `, 'x'.repeat(100_000), '\n{"op":"layers"}\n']);
      expect(over.lines).toEqual([{ ok: false, kind: 'RequestError', error: 'bad control request: line longer than 1024 bytes; closing the connection' }]);
      expect(over.closedByServer).toBe(true);
      // the server goes on answering others
      expect(await controlRequest(p, { op: 'layers' })).toMatchObject({ ok: true });
    } finally {
      await srv.close();
    }
  });

  it('lines split across reads, a UTF-8 character split in two, and several lines in one read', async () => {
    const { srv, p } = await control();
    try {
      const withUtf8 = Buffer.from('{"op":"status","layer":"målare"}\n');
      const cut = withUtf8.indexOf(0xc3) + 1; // inside the two bytes of 'å'
      const r = await exchange(p, [withUtf8.subarray(0, cut), withUtf8.subarray(cut), '{"op":"table"}\n{"op":', '"layers"}\n'], 3);
      expect(r.lines).toEqual([
        { ok: false, kind: 'RequestError', errno: 19, error: "no layer 'målare' (layers: target)" },
        { ok: true, layer: 'target', targetType: 'dust', result: '0 64 dust memory(64) 0 512' },
        { ok: true, layers: [{ name: 'target', targetType: 'dust' }] },
      ]);
    } finally {
      await srv.close();
    }
  });

  it('connections past the limit are closed at once; idle ones are closed after the idle time', async () => {
    const { srv, p } = await control({ maxConnections: 2, idleTimeoutMs: 300 });
    try {
      const idle = [net.createConnection(p), net.createConnection(p)];
      const closedAt: number[] = [];
      const t0 = Date.now();
      for (const s of idle) {
        s.on('error', () => {});
        s.on('close', () => closedAt.push(Date.now() - t0));
      }
      await Promise.all(idle.map((s) => new Promise((r) => s.once('connect', r))));
      await new Promise((r) => setTimeout(r, 50));
      await expect(controlRequest(p, { op: 'layers' }, 2000)).rejects.toThrow(/closed without answering|cannot reach/);
      await until(() => closedAt.length === 2, 3000, 'the idle connections to be closed');
      for (const t of closedAt) expect(t).toBeGreaterThanOrEqual(250);
      expect(await controlRequest(p, { op: 'layers' })).toMatchObject({ ok: true });
    } finally {
      await srv.close();
    }
  });
});
