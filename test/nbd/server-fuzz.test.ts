/**
 * Protocol fuzzing against the live server: fast-check builds client byte
 * streams (random options and client flags, requests with random commands,
 * flags, offsets and lengths, garbage, corrupted headers, streams cut at a
 * random byte, sockets destroyed or half-closed) and sends them over a real
 * socket. The server must survive every one, and the device must only ever
 * hold what a valid request could have put there.
 *
 * The invariant: every WRITE payload the fuzzer sends carries, for each
 * sector s it claims to cover, the pattern P(s); the device starts with I(s).
 * Whatever the server accepts or refuses, each sector must afterwards hold
 * I(s), P(s) or zeroes (TRIM, WRITE_ZEROES). A write applied at the wrong
 * place, partly, or from misframed bytes breaks it.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { CmdFlag } from '../../src/nbd/protocol.js';
import { tmpDir } from '../helpers/tmp.js';
import { TestNbdClient } from './client.js';
import { DeviceExecutor } from '../../src/nbd/executor.js';
import { type Served, serve, shuffledExecutor, until } from './serve-helpers.js';
import { I, P, play, sectorProblem, sessionArbitrary } from './fuzz-sessions.js';

const SECTORS = 2048; // 1 MiB export
const SIZE = SECTORS * 512;
const sessionArb = sessionArbitrary(SECTORS);

function checkInvariant(mem: MemoryDevice): void {
  const buf = Buffer.alloc(SIZE);
  mem.read(0, buf);
  const problem = sectorProblem(buf);
  if (problem) throw new Error(problem);
}

describe('NBD server under fuzzed client streams', () => {
  const tmp = tmpDir('remapsim-nbdfuzz-');
  const mem = new MemoryDevice({ sectors: SECTORS });
  let srv: Served;

  beforeAll(async () => {
    for (let s = 0; s < SECTORS; s++) mem.write(s, I(s));
    srv = await serve(tmp.dir, mem, { maxBlockSize: 1024 * 1024 });
  });
  afterAll(async () => {
    await srv.close();
    tmp.cleanup();
  });

  it('survives random, corrupted and cut streams one at a time, and writes only what valid requests carry', async () => {
    await fc.assert(
      fc.asyncProperty(sessionArb, async (s) => {
        await play(srv.path, s);
        await until(() => srv.server.connectionCount === 0, 5000, 'the server to close the fuzzed connection');
        checkInvariant(mem);
      }),
      { numRuns: 150, seed: 0x5eed, endOnFailure: true },
    );
    console.log(
      `fuzz: ${srv.server.stats.requests} requests, ${srv.server.stats.errors} refused or failed, ${srv.server.stats.protocolErrors} clients dropped for protocol errors`,
    );
    expect(srv.server.stats.requests).toBeGreaterThan(300);
    expect(srv.server.stats.protocolErrors).toBeGreaterThan(5);
  });

  it('survives many fuzzed clients at once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sessionArb, { minLength: 4, maxLength: 8 }), async (sessions) => {
        await Promise.all(sessions.map((s) => play(srv.path, s)));
        await until(() => srv.server.connectionCount === 0, 5000, 'the server to close the fuzzed connections');
        checkInvariant(mem);
      }),
      { numRuns: 15, seed: 0xf00d, endOnFailure: true },
    );
  });

  it('the same through an asynchronous executor completing out of order', async () => {
    let n = 0;
    const async = await serve(
      tmp.dir,
      shuffledExecutor(new DeviceExecutor(mem), () => (n++ * 7) % 4),
      { maxBlockSize: 1024 * 1024 },
    );
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(sessionArb, { minLength: 1, maxLength: 4 }), async (sessions) => {
          await Promise.all(sessions.map((s) => play(async.path, s)));
          await until(() => async.server.connectionCount === 0, 5000, 'the server to close the fuzzed connections');
          checkInvariant(mem);
        }),
        { numRuns: 25, seed: 0xa5a5, endOnFailure: true },
      );
    } finally {
      await async.close();
    }
  });

  it('still serves a well-behaved client correctly afterwards', async () => {
    const c = await TestNbdClient.connect(srv.path);
    await c.structuredReplies();
    await c.go('');
    const w = Buffer.concat([P(100), P(101), P(102), P(103)]);
    expect((await c.write(100 * 512, w, CmdFlag.FUA)).error).toBe(0);
    const r = await c.read(0, SIZE);
    expect(r.error).toBe(0);
    const expected = Buffer.alloc(SIZE);
    mem.read(0, expected);
    expect(Buffer.from(r.data!).equals(expected)).toBe(true);
    expect(
      Buffer.from(r.data!)
        .subarray(100 * 512, 104 * 512)
        .equals(w),
    ).toBe(true);
    await c.disconnect();
  });
});
