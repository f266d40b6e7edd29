/**
 * Fuzzed NBD client sessions (shared by the fuzz test and the hostile-client
 * lane): fast-check builds client byte streams (random options and client
 * flags, requests with random commands, flags, offsets and lengths, garbage,
 * corrupted headers, streams cut at a random byte, sockets destroyed or
 * half-closed) and play() sends one over a real socket.
 *
 * Every WRITE payload carries, for each sector s it claims to cover, the
 * pattern P(s). A device that started with I(s) must afterwards hold I(s),
 * P(s) or zeroes (TRIM, WRITE_ZEROES) in every sector, whatever the server
 * accepted or refused: sectorProblem() checks that.
 */
import fc from 'fast-check';
import type * as net from 'node:net';
import { ClientFlag, Cmd, CmdFlag, encodeClientFlags, encodeOption, encodeRequestHeader, type OptionRequest } from '../../src/nbd/protocol.js';
import { haggleOption } from './arbitraries.js';
import { rawConnect } from './serve-helpers.js';

export function sectorContent(s: number, tag: number): Buffer {
  const b = Buffer.allocUnsafe(512);
  b.writeUInt32BE(s, 0);
  b[4] = tag;
  let x = (s * 2 + tag + 1) >>> 0 || 1;
  for (let i = 5; i < 512; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A sector's content before the fuzzing, and what every fuzzed WRITE carries for it. */
export const I = (s: number): Buffer => sectorContent(s, 0x49);
export const P = (s: number): Buffer => sectorContent(s, 0x50);
export const ZERO = Buffer.alloc(512);

/** What a WRITE carries: P for every sector from floor(offset / 512), cut to `length` bytes. */
export function payload(offset: number, length: number): Buffer {
  const first = Math.floor(offset / 512);
  const parts: Buffer[] = [];
  for (let got = 0, s = first; got < length; got += 512, s++) parts.push(s < 2 ** 32 ? P(s) : ZERO);
  return Buffer.concat(parts).subarray(0, length);
}

export type Action =
  | { kind: 'request'; type: number; flags: number; offset: number; length: number }
  | { kind: 'garbage'; bytes: Uint8Array }
  | { kind: 'corrupt'; type: number; offset: number; length: number; at: number; xor: number };

export interface Session {
  clientFlags: number;
  options: OptionRequest[];
  enter: 'go' | 'export-name' | 'go-unknown' | 'none';
  actions: Action[];
  /** Where the stream is cut (fraction of its length), or undefined to send it whole. */
  cut: number | undefined;
  ending: 'destroy' | 'end' | 'disc';
}

/**
 * Client sessions against an export of `sectors` sectors: flags, options, a
 * way into transmission (or none), requests (mostly in range, some past the
 * end, misaligned, with unknown commands or flags), garbage and corrupted
 * headers, the stream cut or not, and an ending.
 */
export function sessionArbitrary(sectors: number): fc.Arbitrary<Session> {
  const size = sectors * 512;
  const aligned = fc.integer({ min: 0, max: sectors - 1 }).map((s) => s * 512);
  const offsetArb = fc.oneof(
    { weight: 6, arbitrary: aligned },
    { weight: 1, arbitrary: fc.integer({ min: sectors - 8, max: sectors + 8 }).map((s) => s * 512) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: size + 4096 }) },
    { weight: 1, arbitrary: fc.maxSafeNat() },
  );
  const lengthArb = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 32 }).map((n) => n * 512) },
    { weight: 1, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 20000 }) },
  );
  const typeArb = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom<number>(Cmd.READ, Cmd.WRITE, Cmd.FLUSH, Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES) },
    { weight: 1, arbitrary: fc.constantFrom<number>(Cmd.BLOCK_STATUS, Cmd.DISC) },
    { weight: 1, arbitrary: fc.integer({ min: 8, max: 0xffff }) },
  );
  const flagsArb = fc.oneof(
    { weight: 5, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.constant(CmdFlag.FUA) },
    { weight: 1, arbitrary: fc.constant(CmdFlag.NO_HOLE) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
  );

  const actionArb: fc.Arbitrary<Action> = fc.oneof(
    { weight: 30, arbitrary: fc.record({ kind: fc.constant('request' as const), type: typeArb, flags: flagsArb, offset: offsetArb, length: lengthArb }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }) },
    {
      weight: 1,
      // A corrupted header of a request without payload: magic, flags, offset or length bytes (never the type, so it cannot become a WRITE)
      arbitrary: fc.record({
        kind: fc.constant('corrupt' as const),
        type: fc.constantFrom<number>(Cmd.READ, Cmd.FLUSH, Cmd.TRIM, Cmd.CACHE),
        offset: aligned,
        length: fc.integer({ min: 1, max: 8 }).map((n) => n * 512),
        at: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 16, max: 27 })),
        xor: fc.integer({ min: 1, max: 255 }),
      }),
    },
  );

  return fc.record({
    clientFlags: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES, ClientFlag.FIXED_NEWSTYLE, 0) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) },
    ),
    options: fc.array(haggleOption, { maxLength: 4 }),
    enter: fc.oneof(
      { weight: 5, arbitrary: fc.constant('go' as const) },
      { weight: 2, arbitrary: fc.constant('export-name' as const) },
      { weight: 1, arbitrary: fc.constantFrom('go-unknown' as const, 'none' as const) },
    ),
    actions: fc.array(actionArb, { minLength: 4, maxLength: 24, size: 'max' }),
    cut: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) }),
    ending: fc.constantFrom('destroy' as const, 'end' as const, 'disc' as const),
  });
}

export function encodeSession(s: Session): Buffer {
  const parts: Uint8Array[] = [encodeClientFlags(s.clientFlags), encodeOption({ kind: 'structured-reply' })];
  for (const o of s.options) {
    // a GO for the real export would end haggling early; the fuzzer decides that below
    if ((o.kind === 'go' || o.kind === 'info') && o.name === '') continue;
    parts.push(encodeOption(o));
  }
  if (s.enter === 'go') parts.push(encodeOption({ kind: 'go', name: '', infoRequests: [] }));
  if (s.enter === 'export-name') parts.push(encodeOption({ kind: 'export-name', name: '' }));
  if (s.enter === 'go-unknown') parts.push(encodeOption({ kind: 'go', name: 'missing', infoRequests: [] }));
  let cookie = 1n;
  for (const a of s.actions) {
    if (a.kind === 'garbage') {
      parts.push(a.bytes);
    } else if (a.kind === 'corrupt') {
      const h = encodeRequestHeader({ type: a.type, flags: 0, cookie: cookie++, offset: a.offset, length: a.length });
      h[a.at] ^= a.xor;
      parts.push(h);
    } else {
      const length = a.type === Cmd.WRITE ? Math.min(a.length, 64 * 1024) : a.length;
      parts.push(encodeRequestHeader({ type: a.type, flags: a.flags, cookie: cookie++, offset: a.offset, length }));
      if (a.type === Cmd.WRITE) parts.push(payload(a.offset, length));
    }
  }
  if (s.ending === 'disc') parts.push(encodeRequestHeader({ type: Cmd.DISC, flags: 0, cookie, offset: 0, length: 0 }));
  return Buffer.concat(parts);
}

/** Sends a session over a new connection and waits until the socket has closed. */
export async function play(path: string, s: Session): Promise<void> {
  const sock: net.Socket = await rawConnect(path);
  sock.on('error', () => {});
  sock.resume(); // read and drop whatever the server answers
  const closedP = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  let bytes = encodeSession(s);
  if (s.cut !== undefined) bytes = bytes.subarray(0, Math.floor(bytes.length * s.cut));
  // in a few pieces, so the server sees messages split across reads
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = Math.max(1, Math.floor(bytes.length / 3) + i * 7);
    sock.write(bytes.subarray(off, off + n));
    off += n;
  }
  if (s.ending === 'destroy' || s.cut !== undefined) {
    await new Promise((r) => setImmediate(r));
    sock.destroy();
  } else {
    sock.end();
  }
  await closedP;
}

/** Where `buf` (sectors from `first` on) holds bytes no valid request could have put there, or undefined. */
export function sectorProblem(buf: Uint8Array, first = 0): string | undefined {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i * 512 < b.length; i++) {
    const s = first + i;
    const got = b.subarray(i * 512, (i + 1) * 512);
    if (!(got.equals(I(s)) || got.equals(P(s)) || got.equals(ZERO))) {
      return `sector ${s} holds bytes no valid request could have written (first bytes ${got.subarray(0, 8).toString('hex')})`;
    }
  }
  return undefined;
}
