/**
 * The control socket and the served stack: layers found in a model, the JSON
 * line protocol (good and bad requests), and faults injected through it while
 * an NBD client is connected.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { collectLayers, ControlServer, controlRequest, handleControlRequest, MAX_CONTROL_LINE } from '../../src/nbd/control-socket.js';
import { openModelStack, serveModel } from '../../src/serve/served-model.js';
import { NbdError } from '../../src/nbd/protocol.js';
import { tmpDir } from '../helpers/tmp.js';
import { TestNbdClient } from './client.js';
import { pattern } from './serve-helpers.js';

const tmp = tmpDir('remapsim-nbdctl-');
afterAll(() => tmp.cleanup());

function safeStack(): { target: SafeRemapTarget; dustMain: DustDevice; dustSpare: DustDevice } {
  const dustMain = new DustDevice(new MemoryDevice({ sectors: 8192, name: 'main' }));
  const dustSpare = new DustDevice(new MemoryDevice({ sectors: 4096, name: 'spare' }));
  const target = new SafeRemapTarget({ main: dustMain, spare: dustSpare, mainPath: 'main', sparePath: 'spare', reservedSectors: 8 });
  return { target, dustMain, dustSpare };
}

describe('control layers', () => {
  it('names the top, then the layers under main and spare by role and type', () => {
    const { target, dustMain, dustSpare } = safeStack();
    const layers = collectLayers(target);
    expect(layers.map((l) => [l.name, l.target.targetType])).toEqual([
      ['target', 'remap'],
      ['main.dust', 'dust'],
      ['spare.dust', 'dust'],
    ]);
    expect(layers[1].target).toBe(dustMain);
    expect(layers[2].target).toBe(dustSpare);
    const nested = new DustDevice(new DustDevice(new MemoryDevice({ sectors: 64 })));
    expect(collectLayers(nested).map((l) => l.name)).toEqual(['target', 'inner.dust']);
  });

  it('answers status, table, message and layers; refuses bad requests in one line', () => {
    const { target, dustMain } = safeStack();
    const layers = collectLayers(target);
    expect(handleControlRequest(layers, { op: 'status' })).toEqual({ ok: true, layer: 'target', targetType: 'remap', result: target.status() });
    expect(handleControlRequest(layers, { op: 'table', layer: 'main.dust' })).toMatchObject({ ok: true, result: '0 8192 dust main 0 512' });
    expect(handleControlRequest(layers, { op: 'message', layer: 'main.dust', args: ['addbadblock', '77', '3'] })).toMatchObject({ ok: true, result: '' });
    expect(dustMain.writeFailCount(77)).toBe(3);
    expect(handleControlRequest(layers, { op: 'layers' })).toEqual({
      ok: true,
      layers: [
        { name: 'target', targetType: 'remap' },
        { name: 'main.dust', targetType: 'dust' },
        { name: 'spare.dust', targetType: 'dust' },
      ],
    });
    expect(handleControlRequest(layers, { op: 'message', layer: 'main.dust', args: ['addbadblock', '77'] })).toMatchObject({
      ok: false,
      kind: 'MessageError',
      errno: 22,
      error: expect.stringMatching(/already in badblocklist/),
    });
    expect(handleControlRequest(layers, { op: 'message', args: [] })).toMatchObject({ ok: false, error: 'message: no message words given' });
    expect(handleControlRequest(layers, { op: 'status', layer: 'spare.flakey' })).toMatchObject({
      ok: false,
      error: "no layer 'spare.flakey' (layers: target, main.dust, spare.dust)",
    });
    expect(handleControlRequest(layers, { op: 'reboot' })).toMatchObject({ ok: false, error: expect.stringMatching(/^bad control request: op: /) });
    expect(handleControlRequest(layers, { op: 'message', args: [1, 2] })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^bad control request: args\.0: /),
    });
    expect(handleControlRequest(layers, 'status')).toMatchObject({ ok: false, kind: 'RequestError' });
  });

  it('speaks JSON lines over a Unix socket; bad JSON and over-long lines are answered, not fatal', async () => {
    const { target } = safeStack();
    const srv = new ControlServer(collectLayers(target));
    const p = path.join(tmp.dir, 'x.ctl');
    await srv.listen(p);
    expect(await controlRequest(p, { op: 'status', layer: 'main.dust' })).toEqual({
      ok: true,
      layer: 'main.dust',
      targetType: 'dust',
      result: '0 8192 dust main bypass verbose',
    });
    const raw = await new Promise<string>((resolve) => {
      const s = net.createConnection(p);
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (got += d));
      s.on('close', () => resolve(got));
      s.write('not json\n{"op":"table"}\n');
      s.write(`${'x'.repeat(MAX_CONTROL_LINE + 10)}`);
    });
    const lines = raw
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ ok: false, error: 'bad control request: not a JSON object on one line' });
    expect(lines[1]).toMatchObject({ ok: true, result: target.table() });
    expect(lines[2]).toMatchObject({ ok: false, error: expect.stringMatching(/line longer than/) });
    expect(await controlRequest(p, { op: 'layers' })).toMatchObject({ ok: true });
    await srv.close();
    await expect(controlRequest(p, { op: 'status' })).rejects.toThrow(/cannot reach the control socket .*: no such socket/);
  });
});

describe('a served model with faults injected through the control socket', () => {
  it('a bad block added while a client is connected fails its read; the next write is remapped and reads back', async () => {
    const main = path.join(tmp.dir, 'main.img');
    const spare = path.join(tmp.dir, 'spare.img');
    FileDevice.createSparse(main, 8 << 20);
    FileDevice.createSparse(spare, 4 << 20);
    const stack = openModelStack({ table: `0 16384 remap ${main} ${spare}`, dustMain: true });
    expect(stack.layers.map((l) => l.name)).toEqual(['target', 'main.dust']);
    const sock = path.join(tmp.dir, 'model.sock');
    const serving = await serveModel(stack, { socket: sock });
    expect(serving.controlPath).toBe(`${sock}.ctl`);
    const c = await TestNbdClient.connect(sock);
    await c.structuredReplies();
    await c.go('');
    const data = pattern(64 * 1024, 9);
    expect((await c.write(1 << 20, data)).error).toBe(0);

    // sector 2050 lies in the 4 KiB block at 1 MiB + 1 KiB; it fails 2 writes before a write clears it
    expect(await controlRequest(serving.controlPath!, { op: 'message', layer: 'main.dust', args: ['addbadblock', '2050', '2'] })).toMatchObject({ ok: true });
    const bad = await c.read(1 << 20, 4096);
    expect(bad.error).toBe(NbdError.EIO);
    expect((await c.read((1 << 20) + 4096, 4096)).error).toBe(0);

    const fresh = pattern(4096, 10);
    expect((await c.write(1 << 20, fresh)).error).toBe(0); // fails on main, lands on the spare
    const back = await c.read(1 << 20, 64 * 1024);
    expect(back.error).toBe(0);
    expect(Buffer.from(back.data!).subarray(0, 4096).equals(fresh)).toBe(true);
    expect(Buffer.from(back.data!).subarray(4096).equals(data.subarray(4096))).toBe(true);

    const st = await controlRequest(serving.controlPath!, { op: 'status' });
    expect(st).toMatchObject({ ok: true, targetType: 'remap' });
    const tokens = (st as { result: string }).result.split(' ');
    expect(Number(tokens[6])).toBe(1); // one remap
    await c.disconnect();
    expect(await serving.stop()).toBe(0);
  });

  it('--bad-sectors style loading lists blocks and enables the dust layer; refuses a spare dust without a spare', () => {
    const main = path.join(tmp.dir, 'm2.img');
    FileDevice.createSparse(main, 1 << 20);
    const stack = openModelStack({ table: `0 2048 dust ${main} 0 512`, badSectors: [5, 6, 100], wrFailCnt: 1 });
    expect(stack.layers.map((l) => l.name)).toEqual(['target', 'inner.dust']);
    expect(stack.dustMain!.listBadBlocks()).toEqual([5, 6, 100]);
    expect(stack.dustMain!.enabled).toBe(true);
    stack.target.close();
    expect(() => openModelStack({ table: `0 2048 dust ${main} 0 512`, dustSpare: true })).toThrow(/--dust-spare needs a remap or dm-remap-v4 table/);
  });
});
