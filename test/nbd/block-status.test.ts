/**
 * NBD block status on a served model, through the test client (client.ts):
 * meta context negotiation (LIST, SET, wildcards, refusals), the extents of
 * base:allocation and remapsim:health as holes, remaps, pending and bad
 * blocks come and go, REQ_ONE, and every bad request answered with the
 * protocol's error while the connection goes on.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { BlockState, Cmd, CmdFlag, NbdError, Opt, Rep, ReplyFlag, type BlockStatusChunk, type ReplyChunk } from '../../src/nbd/protocol.js';
import { BASE_ALLOCATION, HEALTH_CONTEXT, HealthFlag } from '../../src/nbd/meta-context.js';
import { type ModelStack, openModelStack, serveModel, type Serving } from '../../src/serve/served-model.js';
import { collectLayers } from '../../src/nbd/control-socket.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import type { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { tmpDir } from '../helpers/tmp.js';
import { TestNbdClient } from './client.js';
import { KiB, MiB, pattern } from './serve-helpers.js';

const tmp = tmpDir('remapsim-bstatus-');
afterAll(() => tmp.cleanup());

const SIZE = 16 * MiB;
let seq = 0;
let serving: Serving | undefined;
afterEach(async () => {
  await serving?.stop(1000);
  serving = undefined;
});

/** A remap model over a sparse main with data at [1 MiB, 1 MiB + 64 KiB) and [8 MiB, 9 MiB), a dust layer under main. */
async function servedModel(): Promise<{ sock: string; stack: ModelStack }> {
  const dir = path.join(tmp.dir, `m${seq++}`);
  fs.mkdirSync(dir);
  const main = path.join(dir, 'main.img');
  const spare = path.join(dir, 'spare.img');
  FileDevice.createSparse(main, SIZE);
  FileDevice.createSparse(spare, 4 * MiB);
  const fd = fs.openSync(main, 'r+');
  fs.writeSync(fd, pattern(64 * KiB, 1), 0, 64 * KiB, 1 * MiB);
  fs.writeSync(fd, pattern(1 * MiB, 2), 0, 1 * MiB, 8 * MiB);
  fs.closeSync(fd);
  const stack = openModelStack({ table: `0 ${SIZE / 512} remap ${main} ${spare}`, dustMain: true });
  const sock = path.join(dir, 's.sock');
  serving = await serveModel(stack, { socket: sock });
  return { sock, stack };
}

/** A dust target over a memory device of 4096-byte logical blocks (no file under it: all data). */
async function served4k(): Promise<{ sock: string; dust: DustDevice }> {
  const dust = new DustDevice(new MemoryDevice({ sectors: SIZE / 512, logicalBlockSize: 4096 }), { blockSize: 4096 });
  dust.enable();
  const sock = path.join(tmp.dir, `k${seq++}.sock`);
  serving = await serveModel({ target: dust, layers: collectLayers(dust) }, { socket: sock });
  return { sock, dust };
}

async function client(sock: string, queries: string[] = [BASE_ALLOCATION, HEALTH_CONTEXT]): Promise<{ c: TestNbdClient; ids: Map<string, number> }> {
  const c = await TestNbdClient.connect(sock);
  await c.structuredReplies();
  const ids = new Map<string, number>();
  if (queries.length > 0) {
    const r = await c.option({ kind: 'set-meta-context', name: '', queries });
    for (const m of r) if (m.kind === 'rep-meta-context') ids.set(m.name, m.contextId);
    expect(r[r.length - 1].kind).toBe('rep-ack');
  }
  const go = await c.go('');
  expect(go[go.length - 1].kind).toBe('rep-ack');
  return { c, ids };
}

/** The extents of one context's chunk, as [offset, length, flags]. */
function extentsOf(chunks: ReplyChunk[], id: number, offset = 0): Array<[number, number, number]> {
  const chunk = chunks.find((k): k is BlockStatusChunk => k.kind === 'chunk-block-status' && k.contextId === id);
  expect(chunk, `a chunk for context ${id}`).toBeDefined();
  let at = offset;
  return chunk!.extents.map((e) => {
    const r: [number, number, number] = [at, e.length, e.flags];
    at += e.length;
    return r;
  });
}

const HZ = BlockState.HOLE | BlockState.ZERO;

describe('NBD meta contexts on a served model', () => {
  it('LIST offers base:allocation and remapsim:health; wildcards pick a namespace; SET selects, replaces and clears', async () => {
    const { sock } = await servedModel();
    const c = await TestNbdClient.connect(sock);
    // before structured replies: refused, as the spec advises
    expect((await c.option({ kind: 'list-meta-context', name: '', queries: [] }))[0]).toMatchObject({ kind: 'rep-error', reply: Rep.ERR_INVALID });
    expect((await c.option({ kind: 'set-meta-context', name: '', queries: [BASE_ALLOCATION] }))[0]).toMatchObject({
      kind: 'rep-error',
      reply: Rep.ERR_INVALID,
    });
    await c.structuredReplies();
    const names = (r: Awaited<ReturnType<TestNbdClient['option']>>) => r.filter((m) => m.kind === 'rep-meta-context').map((m) => (m as { name: string }).name);
    const all = await c.option({ kind: 'list-meta-context', name: '', queries: [] });
    expect(all).toEqual([
      { kind: 'rep-meta-context', option: Opt.LIST_META_CONTEXT, contextId: 0, name: BASE_ALLOCATION },
      { kind: 'rep-meta-context', option: Opt.LIST_META_CONTEXT, contextId: 0, name: HEALTH_CONTEXT },
      { kind: 'rep-ack', option: Opt.LIST_META_CONTEXT },
    ]);
    expect(names(await c.option({ kind: 'list-meta-context', name: '', queries: ['remapsim:'] }))).toEqual([HEALTH_CONTEXT]);
    expect(names(await c.option({ kind: 'list-meta-context', name: '', queries: ['base:', 'qemu:dirty-bitmap:x', 'x-other:'] }))).toEqual([BASE_ALLOCATION]);
    // the empty leaf name selects nothing in SET; unknown names are ignored
    expect(await c.option({ kind: 'set-meta-context', name: '', queries: ['base:', 'base:nonesuch'] })).toEqual([
      { kind: 'rep-ack', option: Opt.SET_META_CONTEXT },
    ]);
    const set = await c.option({ kind: 'set-meta-context', name: '', queries: [HEALTH_CONTEXT, BASE_ALLOCATION, HEALTH_CONTEXT] });
    expect(names(set)).toEqual([BASE_ALLOCATION, HEALTH_CONTEXT]);
    const ids = set.filter((m) => m.kind === 'rep-meta-context').map((m) => (m as { contextId: number }).contextId);
    expect(new Set(ids).size).toBe(2);
    // a refused SET clears the selection too
    const bad = await c.option({ kind: 'set-meta-context', name: '', queries: ['nocolon'] });
    expect(bad[0]).toMatchObject({ kind: 'rep-error', reply: Rep.ERR_INVALID });
    expect((bad[0] as { message: string }).message).toMatch(/namespace/);
    expect((await c.option({ kind: 'set-meta-context', name: 'other', queries: [BASE_ALLOCATION] }))[0]).toMatchObject({
      kind: 'rep-error',
      reply: Rep.ERR_UNKNOWN,
    });
    expect((await c.go(''))[0].kind).not.toBe('rep-error');
    const r = await c.blockStatus(0, 4096);
    expect(r.error).toBe(NbdError.EINVAL);
    expect(r.chunks[0]).toMatchObject({ kind: 'chunk-error', error: NbdError.EINVAL });
    expect((r.chunks[0] as { message: string }).message).toMatch(/NBD_OPT_SET_META_CONTEXT/);
    expect((await c.read(0, 4096)).error).toBe(0); // the connection goes on
    await c.disconnect();
  });
});

describe('NBD block status extents on a served model', () => {
  it('base:allocation follows the backing file; remapsim:health marks remapped, pending and bad blocks, which allocation reports as data', async () => {
    const { sock, stack } = await servedModel();
    const { c, ids } = await client(sock);
    const alloc = ids.get(BASE_ALLOCATION)!;
    const health = ids.get(HEALTH_CONTEXT)!;
    let r = await c.blockStatus(0, SIZE);
    expect(r.error).toBe(0);
    expect(r.chunks.map((k) => k.flags & ReplyFlag.DONE)).toEqual([0, ReplyFlag.DONE]);
    expect(extentsOf(r.chunks, alloc)).toEqual([
      [0, 1 * MiB, HZ],
      [1 * MiB, 64 * KiB, 0],
      [1 * MiB + 64 * KiB, 7 * MiB - 64 * KiB, HZ],
      [8 * MiB, 1 * MiB, 0],
      [9 * MiB, 7 * MiB, HZ],
    ]);
    expect(extentsOf(r.chunks, health)).toEqual([[0, SIZE, 0]]);

    // block 100 (in a hole) moves to the spare; block 200 goes bad and is read: pending; block 300 is bad only
    stack.target.message(['remap', '100']);
    stack.dustMain!.addBadBlock(200);
    stack.dustMain!.addBadBlock(300);
    expect((await c.read(200 * 512, 512)).error).toBe(NbdError.EIO);
    r = await c.blockStatus(0, SIZE);
    expect(extentsOf(r.chunks, health)).toEqual([
      [0, 100 * 512, 0],
      [100 * 512, 512, HealthFlag.REMAPPED],
      [101 * 512, 99 * 512, 0],
      [200 * 512, 512, HealthFlag.PENDING | HealthFlag.BAD],
      [201 * 512, 99 * 512, 0],
      [300 * 512, 512, HealthFlag.BAD],
      [301 * 512, SIZE - 301 * 512, 0],
    ]);
    expect(extentsOf(r.chunks, alloc).slice(0, 7)).toEqual([
      [0, 100 * 512, HZ],
      [100 * 512, 512, 0],
      [101 * 512, 99 * 512, HZ],
      [200 * 512, 512, 0],
      [201 * 512, 99 * 512, HZ],
      [300 * 512, 512, 0],
      [301 * 512, 1 * MiB - 301 * 512, HZ],
    ]);
    // a write remaps the pending block; dust in bypass fails nothing, so nothing is bad then
    expect((await c.write(200 * 512, pattern(512, 3))).error).toBe(0);
    stack.dustMain!.disable();
    r = await c.blockStatus(0, 1 * MiB);
    expect(extentsOf(r.chunks, health)).toEqual([
      [0, 100 * 512, 0],
      [100 * 512, 512, HealthFlag.REMAPPED],
      [101 * 512, 99 * 512, 0],
      [200 * 512, 512, HealthFlag.REMAPPED],
      [201 * 512, 1 * MiB - 201 * 512, 0],
    ]);
    // a trim punches a hole in main: allocation sees it
    expect((await c.trim(8 * MiB, 512 * KiB)).error).toBe(0);
    r = await c.blockStatus(8 * MiB, 1 * MiB);
    expect(extentsOf(r.chunks, alloc, 8 * MiB)).toEqual([
      [8 * MiB, 512 * KiB, HZ],
      [8 * MiB + 512 * KiB, 512 * KiB, 0],
    ]);
    await c.disconnect();
  });

  it('dm-remap-v4: a failed write leaves a pending remap once a status call lets the module work; restored remaps are active', async () => {
    const dir = path.join(tmp.dir, `v4-${seq++}`);
    fs.mkdirSync(dir);
    FileDevice.createSparse(path.join(dir, 'main.img'), SIZE);
    FileDevice.createSparse(path.join(dir, 'spare.img'), 4 * MiB);
    const stack = openModelStack({ table: `0 ${SIZE / 512} dm-remap-v4 ${path.join(dir, 'main.img')} ${path.join(dir, 'spare.img')}`, dustMain: true });
    const sock = path.join(dir, 's.sock');
    serving = await serveModel(stack, { socket: sock });
    const { c, ids } = await client(sock, [HEALTH_CONTEXT]);
    stack.dustMain!.addBadBlock(300, 5);
    expect((await c.write(300 * 512, pattern(512, 4))).error).toBe(NbdError.EIO);
    stack.target.status(); // releases the health mutex the table load took: the queued remap is made, pending
    (stack.target as DmRemapV4Target).restore([{ originalSector: 40, spareSector: 4000, timeNs: 0, errorCount: 1 }]);
    const r = await c.blockStatus(0, 1 * MiB);
    expect(extentsOf(r.chunks, ids.get(HEALTH_CONTEXT)!)).toEqual([
      [0, 40 * 512, 0],
      [40 * 512, 512, HealthFlag.REMAPPED],
      [41 * 512, 259 * 512, 0],
      [300 * 512, 512, HealthFlag.PENDING | HealthFlag.BAD],
      [301 * 512, 1 * MiB - 301 * 512, 0],
    ]);
    await c.disconnect();
  });

  it('REQ_ONE gives one extent per context, no longer than asked; a range never ends past the request', async () => {
    const { sock } = await servedModel();
    const { c, ids } = await client(sock);
    const r = await c.blockStatus(1 * MiB - 4096, 64 * KiB, CmdFlag.REQ_ONE);
    expect(r.error).toBe(0);
    expect(extentsOf(r.chunks, ids.get(BASE_ALLOCATION)!, 1 * MiB - 4096)).toEqual([[1 * MiB - 4096, 4096, HZ]]);
    expect(extentsOf(r.chunks, ids.get(HEALTH_CONTEXT)!, 1 * MiB - 4096)).toEqual([[1 * MiB - 4096, 64 * KiB, 0]]);
    const part = await c.blockStatus(1 * MiB + 32 * KiB, 4096);
    expect(extentsOf(part.chunks, ids.get(BASE_ALLOCATION)!, 1 * MiB + 32 * KiB)).toEqual([[1 * MiB + 32 * KiB, 4096, 0]]);
    await c.disconnect();
  });

  it('a dust target of 4096-byte blocks: extents are whole logical blocks, all data without a file under it', async () => {
    const { sock, dust } = await served4k();
    const { c, ids } = await client(sock);
    dust.addBadBlock(3);
    const r = await c.blockStatus(0, 64 * KiB);
    expect(extentsOf(r.chunks, ids.get(BASE_ALLOCATION)!)).toEqual([[0, 64 * KiB, 0]]);
    expect(extentsOf(r.chunks, ids.get(HEALTH_CONTEXT)!)).toEqual([
      [0, 3 * 4096, 0],
      [3 * 4096, 4096, HealthFlag.BAD],
      [4 * 4096, 12 * 4096, 0],
    ]);
    await c.disconnect();
  });

  it('refuses bad block status requests with the protocol error and keeps serving', async () => {
    const { sock } = await served4k();
    const { c } = await client(sock);
    const cases: Array<[string, Promise<{ error: number; chunks: ReplyChunk[] }>]> = [
      ['past the end', c.blockStatus(SIZE - 4096, 8192)],
      ['at the end', c.blockStatus(SIZE, 4096)],
      ['a huge offset', c.blockStatus(2 ** 52, 4096)],
      ['offset + length beyond 2^64', c.request(Cmd.BLOCK_STATUS, 2 ** 53 - 4096, 0xfffff000)],
      ['zero length', c.blockStatus(0, 0)],
      ['misaligned offset', c.blockStatus(512, 4096)],
      ['misaligned length', c.blockStatus(0, 1000)],
      ['a flag it does not take (FUA)', c.blockStatus(0, 4096, CmdFlag.FUA)],
    ];
    for (const [what, p] of cases) {
      const r = await p;
      expect(r.error, what).toBe(NbdError.EINVAL);
      expect(r.chunks[0], what).toMatchObject({ kind: 'chunk-error', error: NbdError.EINVAL, flags: ReplyFlag.DONE });
    }
    // the largest length a request can carry is fine: the answer covers what it can
    const big = await c.blockStatus(0, 0xfffff000 > SIZE ? SIZE : 0xfffff000);
    expect(big.error).toBe(0);
    expect((await c.read(0, 4096)).error).toBe(0);
    await c.disconnect();
    // without structured replies the refusal is a simple reply
    const plain = await TestNbdClient.connect(sock);
    await plain.go('');
    expect(await plain.blockStatus(0, 4096)).toEqual({ error: NbdError.EINVAL, chunks: [] });
    await plain.disconnect();
  });
});
