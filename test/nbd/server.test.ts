/**
 * The NBD server against the test client (client.ts): handshake variants,
 * every command, the errors the protocol prescribes, device errors, an
 * asynchronous executor completing out of order, many clients, clients that
 * vanish mid-request, backpressure and shutdown.
 */
import * as net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { OK } from '../../src/block/device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { DeviceExecutor, type IoExecutor } from '../../src/nbd/executor.js';
import {
  ClientFlag,
  Cmd,
  CmdFlag,
  encodeClientFlags,
  encodeOption,
  encodeRequestHeader,
  Info,
  NbdError,
  Opt,
  Rep,
  TransmissionFlag,
} from '../../src/nbd/protocol.js';
import { tmpDir } from '../helpers/tmp.js';
import { TestNbdClient } from './client.js';
import { closed, KiB, MiB, pattern, rawConnect, serve, shuffledExecutor, until } from './serve-helpers.js';

const tmp = tmpDir('remapsim-nbdsrv-');
afterAll(() => tmp.cleanup());

const SECTORS = 8 * 2048; // 8 MiB

async function goClient(p: string, structured = true): Promise<TestNbdClient> {
  const c = await TestNbdClient.connect(p);
  if (structured) await c.structuredReplies();
  const r = await c.go('');
  expect(r[r.length - 1].kind).toBe('rep-ack');
  return c;
}

/** Transmission through NBD_OPT_EXPORT_NAME on a raw socket (NO_ZEROES), for tests that cut the stream. */
async function rawTransmission(p: string): Promise<net.Socket> {
  const s = await rawConnect(p);
  s.on('error', () => {});
  s.write(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES));
  s.write(encodeOption({ kind: 'export-name', name: '' }));
  let got = 0;
  await new Promise<void>((resolve) => {
    const on = (b: Buffer): void => {
      got += b.length;
      if (got >= 18 + 10) {
        s.off('data', on);
        resolve();
      }
    };
    s.on('data', on);
  });
  return s;
}

describe('NBD server: handshake', () => {
  it('GO with structured replies advertises size, flags and block sizes; INFO, LIST and refusals follow the spec', async () => {
    const dev = new MemoryDevice({ sectors: SECTORS });
    const srv = await serve(tmp.dir, dev, { exportName: 'disk', description: 'a test disk' });
    const c = await TestNbdClient.connect(srv.path);
    expect(c.handshakeFlags & 3).toBe(3);

    const list = await c.option({ kind: 'list' });
    expect(list).toEqual([
      { kind: 'rep-server', option: Opt.LIST, name: 'disk', description: 'a test disk' },
      { kind: 'rep-ack', option: Opt.LIST },
    ]);
    const unknown = await c.option({ kind: 'unknown-option', option: 200, data: new Uint8Array(3) });
    expect(unknown[0]).toMatchObject({ kind: 'rep-error', reply: Rep.ERR_UNSUP });
    expect((await c.option({ kind: 'starttls' }))[0]).toMatchObject({ kind: 'rep-error', reply: Rep.ERR_UNSUP });
    expect((await c.option({ kind: 'list-meta-context', name: 'disk', queries: [] }))[0]).toMatchObject({ kind: 'rep-error', reply: Rep.ERR_INVALID });
    expect((await c.option({ kind: 'info', name: 'nope', infoRequests: [] }))[0]).toMatchObject({ kind: 'rep-error', reply: Rep.ERR_UNKNOWN });
    expect((await c.go('nope'))[0]).toMatchObject({ kind: 'rep-error', reply: Rep.ERR_UNKNOWN });
    await c.structuredReplies();
    expect(await c.option({ kind: 'set-meta-context', name: 'disk', queries: ['base:allocation'] })).toEqual([
      { kind: 'rep-ack', option: Opt.SET_META_CONTEXT },
    ]);

    const info = await c.option({ kind: 'info', name: 'disk', infoRequests: [Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE] });
    const items = info.filter((r) => r.kind === 'rep-info').map((r) => (r as { info: unknown }).info);
    expect(items).toEqual([
      { kind: 'export', size: SECTORS * 512, transmissionFlags: srv.server.transmissionFlags },
      { kind: 'name', name: 'disk' },
      { kind: 'description', description: 'a test disk' },
      { kind: 'block-size', minimum: 512, preferred: 4096, maximum: 32 * MiB },
    ]);
    const f = srv.server.transmissionFlags;
    for (const flag of [
      TransmissionFlag.HAS_FLAGS,
      TransmissionFlag.SEND_FLUSH,
      TransmissionFlag.SEND_FUA,
      TransmissionFlag.SEND_TRIM,
      TransmissionFlag.SEND_WRITE_ZEROES,
      TransmissionFlag.SEND_CACHE,
      TransmissionFlag.CAN_MULTI_CONN,
    ]) {
      expect(f & flag, `flag ${flag}`).toBe(flag);
    }
    expect(f & (TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_DF | TransmissionFlag.ROTATIONAL)).toBe(0);

    const go = await c.go('disk');
    expect(go[go.length - 1].kind).toBe('rep-ack');
    expect(c.export).toMatchObject({ size: SECTORS * 512, transmissionFlags: f });
    expect((await c.read(0, 4096)).error).toBe(0);
    await c.disconnect();
    await srv.close();
  });

  it('EXPORT_NAME with and without the 124 zero bytes; an unknown name hangs up; ABORT is acknowledged', async () => {
    const srv = await serve(tmp.dir, new MemoryDevice({ sectors: SECTORS }));
    for (const noZeroes of [true, false]) {
      const c = await TestNbdClient.connect(srv.path, { noZeroes });
      expect(await c.exportName('')).toMatchObject({ size: SECTORS * 512, transmissionFlags: srv.server.transmissionFlags });
      const w = pattern(4096, 7);
      expect((await c.write(8192, w)).error).toBe(0);
      const r = await c.read(8192, 4096);
      expect(Buffer.from(r.data!).equals(w)).toBe(true);
      await c.disconnect();
    }
    const bad = await TestNbdClient.connect(srv.path);
    bad.parser.expectExportNameReply(true);
    const s = (bad as unknown as { sock: net.Socket }).sock;
    s.write(encodeOption({ kind: 'export-name', name: 'other' }));
    await bad.closed;

    const ab = await TestNbdClient.connect(srv.path);
    expect(await ab.abort()).toEqual([{ kind: 'rep-ack', option: Opt.ABORT }]);
    await srv.close();
  });

  it('serves over TCP on the loopback', async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    mem.write(16, pattern(4096, 77));
    const { NbdServer } = await import('../../src/nbd/server.js');
    const server = new NbdServer(new DeviceExecutor(mem));
    const a = await server.listenTcp(0);
    expect(a.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(a.uri).toBe(`nbd://${a.address}/`);
    const s = net.createConnection({ host: '127.0.0.1', port: Number(a.address.split(':')[1]) });
    await new Promise((resolve) => s.once('connect', resolve));
    let got = Buffer.alloc(0);
    s.on('data', (b: Buffer) => (got = Buffer.concat([got, b])));
    s.write(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES));
    s.write(encodeOption({ kind: 'export-name', name: '' }));
    s.write(encodeRequestHeader({ type: Cmd.READ, flags: 0, cookie: 0xfeedn, offset: 8192, length: 4096 }));
    await until(() => got.length >= 18 + 10 + 16 + 4096, 5000, 'the TCP reply');
    expect(got.readBigUInt64BE(18)).toBe(BigInt(SECTORS * 512)); // export size in the export-name reply
    expect(got.readUInt32BE(28)).toBe(0x67446698);
    expect(got.readUInt32BE(32)).toBe(0);
    expect(got.readBigUInt64BE(36)).toBe(0xfeedn);
    expect(got.subarray(44).equals(pattern(4096, 77))).toBe(true);
    s.destroy();
    await server.close();
  });

  it('drops a client that sets client flags the server did not offer, and keeps serving others', async () => {
    const srv = await serve(tmp.dir, new MemoryDevice({ sectors: SECTORS }));
    const s = await rawConnect(srv.path);
    s.on('error', () => {});
    s.write(encodeClientFlags(0x80));
    await closed(s);
    expect(srv.server.stats.protocolErrors).toBe(1);
    const c = await goClient(srv.path);
    expect((await c.read(0, 512)).error).toBe(0);
    await c.disconnect();
    await srv.close();
  });
});

describe('NBD server: commands', () => {
  it('READ, WRITE (+FUA), FLUSH, TRIM, WRITE_ZEROES and CACHE reach the device, structured and simple', async () => {
    const dev = new MemoryDevice({ sectors: SECTORS });
    const srv = await serve(tmp.dir, dev);
    for (const structured of [true, false]) {
      const c = await goClient(srv.path, structured);
      const a = pattern(64 * KiB, structured ? 1 : 2);
      expect((await c.write(1 * MiB, a, CmdFlag.FUA)).error).toBe(0);
      const disk = Buffer.alloc(64 * KiB);
      dev.read(2048, disk);
      expect(disk.equals(a)).toBe(true);
      const r = await c.read(1 * MiB + 512, 4096);
      expect(Buffer.from(r.data!).equals(a.subarray(512, 4608))).toBe(true);
      if (structured) expect(r.chunks.map((x) => x.kind)).toEqual(['chunk-data']);
      expect((await c.flush()).error).toBe(0);
      expect((await c.writeZeroes(1 * MiB, 4096, CmdFlag.NO_HOLE)).error).toBe(0);
      expect((await c.trim(1 * MiB + 8192, 8192, CmdFlag.FUA)).error).toBe(0);
      expect((await c.cache(0, 1 * MiB)).error).toBe(0);
      const after = Buffer.from((await c.read(1 * MiB, 64 * KiB)).data!);
      const expected = Buffer.from(a);
      expected.fill(0, 0, 4096);
      expected.fill(0, 8192, 16384);
      expect(after.equals(expected)).toBe(true);
      await c.disconnect();
    }
    expect(srv.server.stats.errors).toBe(0);
    await srv.close();
  });

  it('large reads and writes (several MiB, the pooled-buffer path) round-trip', async () => {
    const dev = new MemoryDevice({ sectors: SECTORS });
    const srv = await serve(tmp.dir, dev);
    const c = await goClient(srv.path);
    const big = pattern(5 * MiB, 3);
    expect((await c.write(512 * KiB, big)).error).toBe(0);
    const reads = await Promise.all([c.read(512 * KiB, 5 * MiB), c.read(1 * MiB, 2 * MiB), c.read(0, 256 * KiB)]);
    expect(Buffer.from(reads[0].data!).equals(big)).toBe(true);
    expect(Buffer.from(reads[1].data!).equals(big.subarray(512 * KiB, 512 * KiB + 2 * MiB))).toBe(true);
    expect(Buffer.from(reads[2].data!).equals(Buffer.alloc(256 * KiB))).toBe(true);
    await c.disconnect();
    await srv.close();
  });

  it('large reads of a model on files go out from the mapped page cache, and over a remapped block from read()', async () => {
    const { FileDevice } = await import('../../src/block/file-device.js');
    const { SafeRemapTarget } = await import('../../src/remap/safe-target.js');
    const path = await import('node:path');
    FileDevice.createSparse(path.join(tmp.dir, 'lend-main'), 8 * MiB);
    FileDevice.createSparse(path.join(tmp.dir, 'lend-spare'), 1 * MiB);
    const t = new SafeRemapTarget({
      main: FileDevice.open(path.join(tmp.dir, 'lend-main')),
      spare: FileDevice.open(path.join(tmp.dir, 'lend-spare')),
      reservedSectors: 64,
    });
    const srv = await serve(tmp.dir, t);
    const lent = (): number => srv.server.stats.lentReads;
    for (const structured of [true, false]) {
      const c = await goClient(srv.path, structured);
      const big = pattern(3 * MiB, structured ? 5 : 6);
      expect((await c.write(1 * MiB, big)).error).toBe(0);
      const r0 = lent();
      const reads = await Promise.all([c.read(1 * MiB, 1 * MiB), c.read(2 * MiB, 2 * MiB), c.read(1 * MiB + 4 * KiB, 512 * KiB)]);
      expect(lent() - r0).toBe(structured ? 3 : 2); // the second round's 2 MiB read covers the block the first remapped
      expect(Buffer.from(reads[0].data!).equals(big.subarray(0, MiB))).toBe(true);
      expect(Buffer.from(reads[1].data!).equals(big.subarray(MiB, 3 * MiB))).toBe(true);
      expect(Buffer.from(reads[2].data!).equals(big.subarray(4 * KiB, 4 * KiB + 512 * KiB))).toBe(true);
      // a block moved to the spare, then overwritten there: the read must show the spare's bytes
      const block = (2 * MiB) / 512 + (structured ? 10 : 20);
      if (t.lookup(block) < 0) t.message(['remap', String(block)]);
      const patch = pattern(512, 9);
      expect((await c.write(block * 512, patch)).error).toBe(0);
      const r1 = lent();
      const r = await c.read(2 * MiB, 1 * MiB);
      expect(lent()).toBe(r1); // not from the map: the range holds a remapped block
      const want = Buffer.from(big.subarray(MiB, 2 * MiB));
      patch.copy(want, block * 512 - 2 * MiB);
      expect(Buffer.from(r.data!).equals(want)).toBe(true);
      await c.disconnect();
    }
    await srv.close();
    t.close();
  });

  it("through the engine: a read in the page cache goes out from the map, one over a remapped block from a worker's slot", async () => {
    const { FileDevice } = await import('../../src/block/file-device.js');
    const { SafeRemapTarget } = await import('../../src/remap/safe-target.js');
    const { Engine } = await import('../../src/engine/engine.js');
    const { EngineExecutor } = await import('../../src/nbd/engine-executor.js');
    const path = await import('node:path');
    const mainPath = path.join(tmp.dir, 'eng-main');
    const sparePath = path.join(tmp.dir, 'eng-spare');
    FileDevice.createSparse(mainPath, 8 * MiB);
    FileDevice.createSparse(sparePath, 1 * MiB);
    const t = new SafeRemapTarget({ main: FileDevice.open(mainPath), spare: FileDevice.open(sparePath), reservedSectors: 64 });
    const e = await Engine.start({
      device: {
        kind: 'model',
        policy: 'safe',
        main: { file: { path: mainPath } },
        spare: { file: { path: sparePath } },
        target: t.shared,
        mainPath,
        sparePath,
      },
      primary: t,
      queues: 2,
      force: true,
      pin: false,
    });
    try {
      const ex = new EngineExecutor(e, { name: t.name, sectors: t.sectors, logicalBlockSize: t.logicalBlockSize, trim: true, mapped: t });
      const srv = await serve(tmp.dir, ex);
      const c = await goClient(srv.path);
      const big = pattern(2 * MiB, 7);
      expect((await c.write(2 * MiB, big)).error).toBe(0); // written through the workers: in the page cache now
      const executed = (): number => e.stats().queues.reduce((a, q) => a + q.executed, 0);
      const x0 = executed();
      const r = await c.read(2 * MiB, 1 * MiB);
      expect(Buffer.from(r.data!).equals(big.subarray(0, MiB))).toBe(true);
      expect(executed()).toBe(x0); // no worker was asked: the pages were resident
      expect(srv.server.stats.lentReads).toBe(1);
      const small = await Promise.all([c.read(2 * MiB + 4 * KiB, 4 * KiB), c.read(2 * MiB + 64 * KiB, 512)]); // small ones too
      expect(Buffer.from(small[0].data!).equals(big.subarray(4 * KiB, 8 * KiB))).toBe(true);
      expect(Buffer.from(small[1].data!).equals(big.subarray(64 * KiB, 64 * KiB + 512))).toBe(true);
      expect(executed()).toBe(x0);
      expect(srv.server.stats.lentReads).toBe(3);
      t.message(['remap', String((3 * MiB) / 512 + 5)]);
      const r2 = await c.read(3 * MiB, 1 * MiB);
      expect(Buffer.from(r2.data!).equals(big.subarray(MiB, 2 * MiB))).toBe(true);
      expect(executed()).toBe(x0 + 1); // a remapped block in the range: a worker read it, and its slot was sent
      expect(srv.server.stats.lentReads).toBe(4);
      await c.disconnect();
      await srv.close();
    } finally {
      await e.close();
      t.close();
    }
  });

  it('a model file that shrinks under a mapped read costs that client its connection, not the server its life', async () => {
    const { FileDevice } = await import('../../src/block/file-device.js');
    const { SafeRemapTarget } = await import('../../src/remap/safe-target.js');
    const fs = await import('node:fs');
    const path = await import('node:path');
    const main = path.join(tmp.dir, 'shrink-main');
    FileDevice.createSparse(main, 8 * MiB);
    FileDevice.createSparse(path.join(tmp.dir, 'shrink-spare'), 1 * MiB);
    const t = new SafeRemapTarget({ main: FileDevice.open(main), spare: FileDevice.open(path.join(tmp.dir, 'shrink-spare')), reservedSectors: 64 });
    const srv = await serve(tmp.dir, t);
    const c = await goClient(srv.path);
    expect((await c.read(4 * MiB, 1 * MiB)).error).toBe(0);
    fs.truncateSync(main, 1 * MiB); // the mapped pages past the new end are gone: the kernel's copy fails (EFAULT), no SIGBUS
    await expect(c.read(4 * MiB, 1 * MiB)).rejects.toThrow(/closed/);
    const d = await goClient(srv.path); // the server still serves
    expect((await d.read(0, 4 * KiB)).error).toBe(0);
    await d.disconnect();
    await srv.close();
    t.close();
  });

  it('answers invalid requests with the protocol error and keeps the connection', async () => {
    const dev = new MemoryDevice({ sectors: SECTORS, logicalBlockSize: 4096 });
    const srv = await serve(tmp.dir, dev);
    const c = await goClient(srv.path);
    const size = SECTORS * 512;
    const cases: Array<[string, Promise<{ error: number }>, number]> = [
      ['read past the end', c.read(size - 4096, 8192), NbdError.EINVAL],
      ['read at a huge offset', c.read(2 ** 52, 4096), NbdError.EINVAL],
      ['write past the end', c.write(size, Buffer.alloc(4096)), NbdError.ENOSPC],
      ['write zeroes past the end', c.writeZeroes(size - 4096, 8192), NbdError.ENOSPC],
      ['trim past the end', c.trim(size, 4096), NbdError.EINVAL],
      ['misaligned read offset', c.read(512, 4096), NbdError.EINVAL],
      ['misaligned write length', c.write(0, Buffer.alloc(1024)), NbdError.EINVAL],
      ['zero-length read', c.read(0, 0), NbdError.EINVAL],
      ['read over the maximum block size', c.read(0, 33 * MiB), NbdError.EINVAL],
      ['flush with an offset', c.request(Cmd.FLUSH, 4096, 0), NbdError.EINVAL],
      ['FUA on a read', c.read(0, 4096, CmdFlag.FUA), NbdError.EINVAL],
      ['DF not offered', c.read(0, 4096, CmdFlag.DF), NbdError.EINVAL],
      ['FAST_ZERO not offered', c.writeZeroes(0, 4096, CmdFlag.FAST_ZERO), NbdError.EINVAL],
      ['block status without a meta context', c.blockStatus(0, 4096), NbdError.EINVAL],
      ['unknown command', c.request(42, 0, 4096), NbdError.EINVAL],
    ];
    for (const [what, p, err] of cases) expect((await p).error, what).toBe(err);
    const ok = await c.read(0, 4096);
    expect(ok.error).toBe(0);
    expect(ok.chunks.length).toBe(1);
    await c.disconnect();
    expect(srv.server.stats.errors).toBe(cases.length);
    await srv.close();
  });

  it('a read-only export refuses writes with EPERM and advertises READ_ONLY', async () => {
    const srv = await serve(tmp.dir, new MemoryDevice({ sectors: SECTORS }), { readOnly: true });
    const c = await goClient(srv.path);
    expect(c.export!.transmissionFlags & TransmissionFlag.READ_ONLY).toBe(TransmissionFlag.READ_ONLY);
    expect(c.export!.transmissionFlags & (TransmissionFlag.SEND_TRIM | TransmissionFlag.SEND_WRITE_ZEROES)).toBe(0);
    expect((await c.write(0, Buffer.alloc(512))).error).toBe(NbdError.EPERM);
    expect((await c.read(0, 512)).error).toBe(0);
    await c.disconnect();
    await srv.close();
  });

  it('device errors come back as EIO: a structured error chunk with a message, or a simple reply', async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    const dust = new DustDevice(mem, { blockSize: 4096 });
    dust.addBadBlock(2, 1);
    dust.enable();
    const srv = await serve(tmp.dir, dust);
    const c = await goClient(srv.path);
    const r = await c.read(0, 16 * KiB);
    expect(r.error).toBe(NbdError.EIO);
    expect(r.chunks[0]).toMatchObject({ kind: 'chunk-error', error: NbdError.EIO });
    expect((r.chunks[0] as { message: string }).message).toMatch(/read of 16384 bytes at offset 0 failed: EIO/);
    expect((await c.write(8192, Buffer.alloc(4096, 1))).error).toBe(NbdError.EIO); // wr_fail_cnt 1
    expect((await c.write(8192, Buffer.alloc(4096, 1))).error).toBe(0); // clears the block
    expect((await c.read(0, 16 * KiB)).error).toBe(0);
    const simple = await goClient(srv.path, false);
    dust.addBadBlock(3, 0);
    expect((await simple.read(12 * KiB, 4096)).error).toBe(NbdError.EIO);
    await simple.disconnect();
    await c.disconnect();
    await srv.close();
  });

  it('an executor that throws fails the request, not the server', async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    const inner = new DeviceExecutor(mem);
    const throwing: IoExecutor = {
      name: 'throwing',
      sectors: mem.sectors,
      logicalBlockSize: 512,
      features: inner.features,
      read: (s, b) =>
        s === 8
          ? ((): never => {
              throw new Error('layer bug');
            })()
          : inner.read(s, b),
      write: (s, b, f) => (s === 8 ? Promise.reject(new Error('async layer bug')) : inner.write(s, b, f)),
      writeZeroes: (s, n, f) => inner.writeZeroes(s, n, f),
      flush: () => inner.flush(),
      discard: (s, n) => inner.discard(s, n),
    };
    const srv = await serve(tmp.dir, throwing);
    const c = await goClient(srv.path);
    expect((await c.read(4096, 512)).error).toBe(NbdError.EIO);
    expect((await c.write(4096, Buffer.alloc(512))).error).toBe(NbdError.EIO);
    expect((await c.read(0, 512)).error).toBe(0);
    await c.disconnect();
    await srv.close();
  });
});

describe('NBD server: concurrency', () => {
  it('an asynchronous executor completing out of order: every reply carries its own data', async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    const image = pattern(SECTORS * 512, 11);
    mem.write(0, image);
    let n = 0;
    const ex = shuffledExecutor(new DeviceExecutor(mem), () => (n++ * 7919) % 13);
    const srv = await serve(tmp.dir, ex);
    const c = await goClient(srv.path);
    const reqs: Array<[number, number]> = [];
    for (let i = 0; i < 300; i++) {
      const len = [512, 4096, 65536, 256 * 1024][i % 4];
      const off = ((i * 104729) % (SECTORS - 1024)) * 512;
      reqs.push([off, len]);
    }
    const replies = await Promise.all(reqs.map(([off, len]) => c.read(off, len)));
    replies.forEach((r, i) => {
      const [off, len] = reqs[i];
      expect(r.error).toBe(0);
      expect(Buffer.from(r.data!).equals(image.subarray(off, off + len)), `read ${i}`).toBe(true);
    });
    expect(ex.maxInflight).toBeGreaterThan(10);
    // writes complete out of order too; each lands where it was sent
    const w = await Promise.all(Array.from({ length: 50 }, (_, i) => c.write(i * 8192, pattern(4096, 1000 + i), i % 2 ? CmdFlag.FUA : 0)));
    expect(w.every((r) => r.error === 0)).toBe(true);
    expect((await c.flush()).error).toBe(0);
    for (let i = 0; i < 50; i++) {
      const b = Buffer.alloc(4096);
      mem.read(i * 16, b);
      expect(b.equals(pattern(4096, 1000 + i))).toBe(true);
    }
    await c.disconnect();
    await srv.close();
  });

  it("many clients at once see each other's writes (multi-conn)", async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    const srv = await serve(tmp.dir, mem);
    const clients = await Promise.all(Array.from({ length: 12 }, () => goClient(srv.path)));
    await Promise.all(clients.map((c, i) => c.write(i * 64 * KiB, pattern(64 * KiB, 50 + i))));
    const reads = await Promise.all(clients.map((c, i) => c.read(((i + 1) % clients.length) * 64 * KiB, 64 * KiB)));
    reads.forEach((r, i) => expect(Buffer.from(r.data!).equals(pattern(64 * KiB, 50 + ((i + 1) % clients.length)))).toBe(true));
    expect(srv.server.connectionCount).toBe(12);
    await Promise.all(clients.map((c) => c.disconnect()));
    await until(() => srv.server.connectionCount === 0, 2000, 'connections to close');
    await srv.close();
  });
});

describe('NBD server: clients that misbehave', () => {
  it('a WRITE whose payload is cut short is not applied at all', async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    const old = pattern(256 * KiB, 21);
    mem.write(0, old);
    const srv = await serve(tmp.dir, mem);
    for (const cut of [0, 1, 4096, 128 * KiB, 256 * KiB - 1]) {
      const s = await rawTransmission(srv.path);
      s.write(encodeRequestHeader({ type: Cmd.WRITE, flags: 0, cookie: 1n, offset: 0, length: 256 * KiB }));
      s.write(pattern(256 * KiB, 99).subarray(0, cut));
      await new Promise((r) => setTimeout(r, 20));
      s.destroy();
    }
    const c = await goClient(srv.path);
    expect(Buffer.from((await c.read(0, 256 * KiB)).data!).equals(old)).toBe(true);
    await c.disconnect();
    await until(() => srv.server.connectionCount === 0, 2000, 'connections to close');
    await srv.close();
  });

  it('requests received before a client vanishes are executed; their replies are dropped', async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    const srv = await serve(tmp.dir, mem);
    const s = await rawTransmission(srv.path);
    const data = pattern(8192, 31);
    s.write(
      Buffer.concat([
        encodeRequestHeader({ type: Cmd.WRITE, flags: 0, cookie: 5n, offset: 4096, length: 8192 }),
        data,
        encodeRequestHeader({ type: Cmd.READ, flags: 0, cookie: 6n, offset: 0, length: 4096 }).subarray(0, 10),
      ]),
    );
    s.end();
    await closed(s);
    const c = await goClient(srv.path);
    expect(Buffer.from((await c.read(4096, 8192)).data!).equals(data)).toBe(true);
    await c.disconnect();
    await srv.close();
  });

  it('a payload over the maximum block size or a bad magic drops that client only', async () => {
    const srv = await serve(tmp.dir, new MemoryDevice({ sectors: SECTORS }), { maxBlockSize: 1 * MiB });
    const good = await goClient(srv.path);
    const s1 = await rawTransmission(srv.path);
    s1.write(encodeRequestHeader({ type: Cmd.WRITE, flags: 0, cookie: 1n, offset: 0, length: 2 * MiB }));
    await closed(s1);
    const s2 = await rawTransmission(srv.path);
    s2.write(Buffer.alloc(28, 0xab));
    await closed(s2);
    expect(srv.server.stats.protocolErrors).toBe(2);
    expect((await good.read(0, 4096)).error).toBe(0);
    await good.disconnect();
    await srv.close();
  });

  it('backpressure: a client that does not read its replies is paused, then served in full when it reads', async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    const srv = await serve(tmp.dir, mem, { maxOutputBacklog: 2 * MiB });
    const s = await rawTransmission(srv.path);
    s.pause();
    const N = 400;
    const reqs = Buffer.concat(
      Array.from({ length: N }, (_, i) => encodeRequestHeader({ type: Cmd.READ, flags: 0, cookie: BigInt(i), offset: 0, length: 1 * MiB })),
    );
    s.write(reqs);
    await new Promise((r) => setTimeout(r, 300));
    const taken = srv.server.stats.requests;
    // 2 MiB backlog + what the kernel's socket buffers hold: far from 400 MiB
    expect(taken).toBeLessThan(40);
    let received = 0;
    s.on('data', (b: Buffer) => (received += b.length));
    s.resume();
    await until(() => received >= N * (16 + MiB), 20000, 'all replies');
    expect(received).toBe(N * (16 + MiB));
    expect(srv.server.stats.requests).toBe(N);
    s.destroy();
    await srv.close();
  });

  it('close() finishes what it received, then closes and removes the socket', async () => {
    const mem = new MemoryDevice({ sectors: SECTORS });
    const ex = shuffledExecutor(new DeviceExecutor(mem), () => 30);
    const srv = await serve(tmp.dir, ex);
    const c = await goClient(srv.path);
    const w = c.write(0, pattern(4096, 5));
    await until(() => ex.maxInflight > 0, 2000, 'the write to start');
    const closing = srv.close();
    expect((await w).error).toBe(0);
    await closing;
    await c.closed;
    const b = Buffer.alloc(4096);
    expect(mem.read(0, b)).toBe(OK);
    expect(b.equals(pattern(4096, 5))).toBe(true);
    expect((await import('node:fs')).existsSync(srv.path)).toBe(false);
  });

  it('refuses to replace a socket another server listens on', async () => {
    const srv = await serve(tmp.dir, new MemoryDevice({ sectors: SECTORS }));
    const { NbdServer } = await import('../../src/nbd/server.js');
    const other = new NbdServer(new DeviceExecutor(new MemoryDevice({ sectors: SECTORS })));
    await expect(other.listenUnix(srv.path)).rejects.toThrow(/another server is already listening/);
    await srv.close();
  });
});
