/**
 * The codec against a real peer: the test client (client.ts) speaks to nbdkit
 * over Unix sockets. Skipped, with the reason printed, when nbdkit is missing.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { BlockState, CmdFlag, Info, NbdError, Opt, Rep, TransmissionFlag } from '../../src/nbd/protocol.js';
import { type CommandResult, TestNbdClient } from './client.js';
import { KiB, MiB, pattern } from './serve-helpers.js';

function nbdkitVersion(): string | undefined {
  try {
    return execFileSync('nbdkit', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

const version = nbdkitVersion();
const skip = skipReason(version === undefined ? 'nbdkit is not installed' : undefined, 'NBD codec interop tests against nbdkit');
if (version) console.log(`NBD interop tests run against ${version}`);

const ok = (r: CommandResult) => expect(r.error).toBe(NbdError.OK);
const finalReply = (replies: { kind: string }[]) => replies[replies.length - 1];

describe.skipIf(skip)('NBD codec against nbdkit', () => {
  const tmp = tmpDir('remapsim-nbd-');
  const children: ChildProcess[] = [];
  let rwSock = '';
  let faultySock = '';

  async function startNbdkit(name: string, args: string[]): Promise<string> {
    const sock = path.join(tmp.dir, `${name}.sock`);
    // nbdkit writes the pid file once it accepts connections.
    const pidFile = path.join(tmp.dir, `${name}.pid`);
    const child = spawn('nbdkit', ['-f', '--exit-with-parent', '--unix', sock, '-P', pidFile, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    children.push(child);
    const deadline = Date.now() + 5000;
    while (!(fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`nbdkit ${args.join(' ')} did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return sock;
  }

  beforeAll(async () => {
    [rwSock, faultySock] = await Promise.all([
      startNbdkit('rw', ['--filter=blocksize-policy', 'memory', '1M', 'blocksize-minimum=512', 'blocksize-preferred=4096', 'blocksize-maximum=1M']),
      startNbdkit('faulty', ['-r', '--filter=error', 'memory', '1M', 'error-pread=EIO', 'error-pread-rate=100%']),
    ]);
  });

  afterAll(() => {
    for (const c of children) c.kill();
    tmp.cleanup();
  });

  it('GO with structured replies: write (FUA), pipelined reads, flush, trim, write zeroes, cache, block status, disconnect', async () => {
    const c = await TestNbdClient.connect(rwSock);
    expect(c.handshakeFlags & 3).toBe(3);
    expect(c.noZeroes).toBe(true);

    expect(finalReply(await c.structuredReplies())).toEqual({ kind: 'rep-ack', option: Opt.STRUCTURED_REPLY });
    const meta = await c.option({ kind: 'set-meta-context', name: '', queries: ['base:allocation'] });
    expect(meta).toEqual([
      { kind: 'rep-meta-context', option: Opt.SET_META_CONTEXT, contextId: expect.any(Number), name: 'base:allocation' },
      { kind: 'rep-ack', option: Opt.SET_META_CONTEXT },
    ]);
    const contextId = (meta[0] as { contextId: number }).contextId;

    const go = await c.go('', [Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE]);
    expect(finalReply(go)).toEqual({ kind: 'rep-ack', option: Opt.GO });
    expect(go).toContainEqual({ kind: 'rep-info', option: Opt.GO, info: { kind: 'block-size', minimum: 512, preferred: 4096, maximum: MiB } });
    expect(c.parser.phase).toBe('transmission');
    expect(c.export!.size).toBe(MiB);
    const tf = c.export!.transmissionFlags;
    for (const f of ['HAS_FLAGS', 'SEND_FLUSH', 'SEND_FUA', 'SEND_TRIM', 'SEND_WRITE_ZEROES', 'SEND_DF', 'SEND_CACHE'] as const) {
      expect(tf & TransmissionFlag[f], f).toBeTruthy();
    }
    expect(tf & TransmissionFlag.READ_ONLY).toBe(0);

    const data = pattern(128 * KiB, 1);
    ok(await c.write(192 * KiB, data, CmdFlag.FUA));
    // 16 reads in flight at once; replies are routed by cookie.
    const reads = await Promise.all(Array.from({ length: 16 }, (_, i) => c.read(192 * KiB + i * 8 * KiB, 8 * KiB)));
    reads.forEach((r, i) => {
      ok(r);
      expect(r.chunks.at(-1)!.flags & 1).toBe(1);
      expect(Buffer.from(r.data!).equals(data.subarray(i * 8 * KiB, (i + 1) * 8 * KiB))).toBe(true);
    });
    ok(await c.flush());

    ok(await c.trim(192 * KiB, 64 * KiB));
    ok(await c.writeZeroes(256 * KiB, 4 * KiB, CmdFlag.NO_HOLE));
    ok(await c.cache(0, 64 * KiB));
    const after = await c.read(192 * KiB, 128 * KiB);
    ok(after);
    const expected = Buffer.from(data);
    expected.fill(0, 0, 64 * KiB); // trimmed (nbdkit's memory plugin reads trimmed space as zeroes)
    expected.fill(0, 64 * KiB, 68 * KiB); // zeroed
    expect(Buffer.from(after.data!).equals(expected)).toBe(true);

    const bs = await c.blockStatus(0, MiB);
    ok(bs);
    expect(bs.chunks).toHaveLength(1);
    const chunk = bs.chunks[0];
    if (chunk.kind !== 'chunk-block-status') throw new Error(`expected a block status chunk, got ${chunk.kind}`);
    expect(chunk.contextId).toBe(contextId);
    const statusAt = (off: number) => {
      let pos = 0;
      for (const e of chunk.extents) {
        if (off < pos + e.length) return e.flags;
        pos += e.length;
      }
      throw new Error(`no extent covers ${off}`);
    };
    expect(statusAt(0)).toBe(BlockState.HOLE | BlockState.ZERO); // never written
    expect(statusAt(300 * KiB) & BlockState.HOLE).toBe(0); // written data

    // Beyond the end: an error chunk, and the stream stays in sync.
    const beyond = await c.read(MiB, 512);
    expect(beyond.error).toBe(NbdError.EINVAL);
    expect(beyond.chunks.map((x) => x.kind)).toEqual(['chunk-error']);
    ok(await c.read(0, 512));

    await c.disconnect();
    expect(c.failed?.message).toBe('server closed the connection');
  });

  it('GO without structured replies: simple replies, read data framed by the registered length', async () => {
    const c = await TestNbdClient.connect(rwSock);
    expect(finalReply(await c.go('', []))).toEqual({ kind: 'rep-ack', option: Opt.GO });
    expect(c.export!.transmissionFlags & TransmissionFlag.SEND_DF).toBe(0); // DF needs structured replies

    const big = pattern(MiB, 7); // one request, many socket reads on both sides
    ok(await c.write(0, big));
    const r = await c.read(0, MiB);
    ok(r);
    expect(r.chunks).toEqual([]);
    expect(Buffer.from(r.data!).equals(big)).toBe(true);

    // An error reply to a read carries no data, so the next reply must still parse.
    const bad = await c.read(MiB - 512, 1024);
    expect(bad).toEqual({ error: NbdError.EINVAL, data: undefined, chunks: [] });
    const again = await c.read(4096, 512);
    expect(Buffer.from(again.data!).equals(big.subarray(4096, 4608))).toBe(true);
    await c.disconnect();
  });

  it.each([true, false])('EXPORT_NAME (NO_ZEROES=%s): header-less reply, then transmission', async (noZeroes) => {
    const c = await TestNbdClient.connect(rwSock, { noZeroes });
    expect(c.noZeroes).toBe(noZeroes);
    const info = await c.exportName('');
    expect(info.size).toBe(MiB);
    expect(info.transmissionFlags & TransmissionFlag.HAS_FLAGS).toBe(1);
    const w = pattern(4096, noZeroes ? 3 : 4);
    ok(await c.write(512 * KiB, w));
    const r = await c.read(512 * KiB, 4096);
    expect(Buffer.from(r.data!).equals(w)).toBe(true);
    await c.disconnect();
  });

  it('option haggling: LIST, INFO, refusals, then ABORT', async () => {
    const c = await TestNbdClient.connect(rwSock);
    const list = await c.option({ kind: 'list' });
    expect(list.map((r) => r.kind)).toEqual(['rep-server', 'rep-ack']);

    const info = await c.option({ kind: 'info', name: '', infoRequests: [Info.BLOCK_SIZE] });
    expect(finalReply(info)).toEqual({ kind: 'rep-ack', option: Opt.INFO });
    expect(info).toContainEqual({ kind: 'rep-info', option: Opt.INFO, info: { kind: 'export', size: MiB, transmissionFlags: expect.any(Number) } });
    expect(c.parser.phase).toBe('options');

    // Meta contexts need structured replies first.
    const early = await c.option({ kind: 'set-meta-context', name: '', queries: ['base:allocation'] });
    expect(early).toEqual([{ kind: 'rep-error', option: Opt.SET_META_CONTEXT, reply: Rep.ERR_INVALID, message: expect.any(String) }]);
    expect(await c.option({ kind: 'unknown-option', option: 0x1234, data: new Uint8Array([1, 2, 3]) })).toEqual([
      { kind: 'rep-error', option: 0x1234, reply: Rep.ERR_UNSUP, message: expect.any(String) },
    ]);
    // nbdkit answers a second LIST with ERR_INVALID (it allows one per connection); the stream is still in sync.
    expect(await c.option({ kind: 'list' })).toEqual([{ kind: 'rep-error', option: Opt.LIST, reply: Rep.ERR_INVALID, message: expect.any(String) }]);
    expect(finalReply(await c.option({ kind: 'info', name: 'x', infoRequests: [] }))).toEqual({ kind: 'rep-ack', option: Opt.INFO });

    expect(await c.abort()).toEqual([{ kind: 'rep-ack', option: Opt.ABORT }]);
    expect(c.parser.phase).toBe('closed');
  });

  it.skipIf(!version || !/^nbdkit 1\.(2\d|3[0-4])\./.test(version))('an nbdkit without extended headers refuses NBD_OPT_EXTENDED_HEADERS', async () => {
    const c = await TestNbdClient.connect(rwSock);
    expect(await c.option({ kind: 'extended-headers' })).toEqual([
      { kind: 'rep-error', option: Opt.EXTENDED_HEADERS, reply: Rep.ERR_UNSUP, message: expect.any(String) },
    ]);
    await c.abort();
  });

  it('errors: EIO read failures (error chunk and simple reply), EPERM on a read-only export', async () => {
    const s = await TestNbdClient.connect(faultySock);
    await s.structuredReplies();
    await s.go();
    expect(s.export!.transmissionFlags & TransmissionFlag.READ_ONLY).toBeTruthy();
    const r = await s.read(0, 4096);
    expect(r.error).toBe(NbdError.EIO);
    expect(r.chunks.every((x) => x.kind === 'chunk-error' || x.kind === 'chunk-error-offset')).toBe(true);
    expect((await s.write(0, Buffer.alloc(512))).error).toBe(NbdError.EPERM);
    await s.disconnect();

    const p = await TestNbdClient.connect(faultySock);
    await p.go();
    expect(await p.read(0, 4096)).toEqual({ error: NbdError.EIO, data: undefined, chunks: [] });
    expect((await p.read(4096, 4096)).error).toBe(NbdError.EIO);
    ok(await p.flush());
    await p.disconnect();
  });
});
