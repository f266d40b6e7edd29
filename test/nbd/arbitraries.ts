/** fast-check generators for NBD messages and byte streams. */
import fc from 'fast-check';
import {
  Cmd,
  Opt,
  Rep,
  ReplyFlag,
  type ClientMessage,
  type InfoItem,
  type NbdRequest,
  type OptionReply,
  type OptionRequest,
  type ReplyChunk,
  type ServerMessage,
} from '../../src/nbd/protocol.js';

export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const u64 = fc.maxSafeNat();
export const cookie = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
export const bytes = (maxLength = 48) => fc.uint8Array({ maxLength });
/** Well-formed strings without NUL, any plane (multi-byte UTF-8 included). */
export const nbdString = fc.string({ unit: 'binary', maxLength: 24 }).filter((s) => !s.includes('\0'));

const KNOWN_OPTIONS = new Set<number>([1, 2, 3, 5, 6, 7, 8, 9, 10, 11]);

/** Options that keep the stream in option haggling when refused (everything but EXPORT_NAME and ABORT). */
export const haggleOption: fc.Arbitrary<OptionRequest> = fc.oneof(
  fc.constant({ kind: 'list' as const }),
  fc.constant({ kind: 'starttls' as const }),
  fc.constant({ kind: 'structured-reply' as const }),
  fc.constant({ kind: 'extended-headers' as const }),
  fc.record({ kind: fc.constantFrom('info' as const, 'go' as const), name: nbdString, infoRequests: fc.array(u16, { maxLength: 6 }) }),
  fc.record({
    kind: fc.constantFrom('list-meta-context' as const, 'set-meta-context' as const),
    name: nbdString,
    queries: fc.array(nbdString, { maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant('unknown-option' as const),
    option: u32.filter((o) => !KNOWN_OPTIONS.has(o)),
    data: bytes(),
  }),
);

const requestType = fc.oneof(
  fc.constantFrom<number>(Cmd.READ, Cmd.FLUSH, Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES, Cmd.BLOCK_STATUS),
  u16.filter((t) => t !== Cmd.WRITE && t !== Cmd.DISC),
);

export const request: fc.Arbitrary<NbdRequest> = fc.oneof(
  fc.record({ kind: fc.constant('request' as const), type: requestType, flags: u16, cookie, offset: u64, length: u32 }),
  bytes(300).chain((data) =>
    fc.record({
      kind: fc.constant('request' as const),
      type: fc.constant<number>(Cmd.WRITE),
      flags: u16,
      cookie,
      offset: u64,
      length: fc.constant(data.length),
      data: fc.constant(data),
    }),
  ),
);

const disc = fc.record({
  kind: fc.constant('request' as const),
  type: fc.constant<number>(Cmd.DISC),
  flags: fc.constant(0),
  cookie,
  offset: fc.constant(0),
  length: fc.constant(0),
});

/**
 * A whole client stream: flags, options (GOs among them are refused), then GO
 * (accepted) or EXPORT_NAME, requests, and maybe a final DISC.
 */
export const clientStream: fc.Arbitrary<ClientMessage[]> = fc
  .tuple(
    fc.integer({ min: 0, max: 3 }),
    fc.array(haggleOption, { maxLength: 6 }),
    fc.oneof(
      fc.record({ kind: fc.constant('go' as const), name: nbdString, infoRequests: fc.array(u16, { maxLength: 4 }) }),
      fc.record({ kind: fc.constant('export-name' as const), name: nbdString }),
    ),
    fc.array(request, { maxLength: 8 }),
    fc.option(disc, { nil: undefined }),
  )
  .map(([flags, opts, enter, reqs, end]) => [{ kind: 'client-flags' as const, flags }, ...opts, enter, ...reqs, ...(end ? [end] : [])]);

export const infoItem: fc.Arbitrary<InfoItem> = fc.oneof(
  fc.record({ kind: fc.constant('export' as const), size: u64, transmissionFlags: u16 }),
  fc.record({ kind: fc.constant('name' as const), name: nbdString }),
  fc.record({ kind: fc.constant('description' as const), description: nbdString }),
  fc.record({ kind: fc.constant('block-size' as const), minimum: u32, preferred: u32, maximum: u32 }),
  fc.record({ kind: fc.constant('unknown' as const), info: fc.integer({ min: 4, max: 0xffff }), data: bytes() }),
);

/** Option codes whose ACK does not change the parser's phase. */
const plainOption = u32.filter((o) => o !== Opt.GO && o !== Opt.ABORT);

export const optionReply: fc.Arbitrary<OptionReply> = fc.oneof(
  fc.record({ kind: fc.constant('rep-ack' as const), option: plainOption }),
  fc.record({ kind: fc.constant('rep-server' as const), option: u32, name: nbdString, description: nbdString }),
  fc.record({ kind: fc.constant('rep-info' as const), option: u32, info: infoItem }),
  fc.record({ kind: fc.constant('rep-meta-context' as const), option: u32, contextId: u32, name: nbdString }),
  fc.record({
    kind: fc.constant('rep-error' as const),
    option: u32,
    reply: fc.oneof(
      fc.constantFrom<number>(Rep.ERR_UNSUP, Rep.ERR_POLICY, Rep.ERR_INVALID, Rep.ERR_UNKNOWN, Rep.ERR_BLOCK_SIZE_REQD, Rep.ERR_TOO_BIG),
      fc.integer({ min: 0x80000000, max: 0xffffffff }),
    ),
    message: nbdString,
  }),
  fc.record({ kind: fc.constant('rep-unknown' as const), option: u32, reply: fc.integer({ min: 5, max: 0x7fffffff }), data: bytes() }),
);

export const chunk = (c: fc.Arbitrary<bigint> = cookie): fc.Arbitrary<ReplyChunk> =>
  fc.oneof(
    fc.record({ kind: fc.constant('chunk-none' as const), flags: u16.map((f) => f | ReplyFlag.DONE), cookie: c }),
    fc.record({ kind: fc.constant('chunk-data' as const), flags: u16, cookie: c, offset: u64, data: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
    fc.record({ kind: fc.constant('chunk-hole' as const), flags: u16, cookie: c, offset: u64, length: fc.integer({ min: 1, max: 0xffffffff }) }),
    fc.record({
      kind: fc.constant('chunk-block-status' as const),
      flags: u16,
      cookie: c,
      contextId: u32,
      extents: fc.array(fc.record({ length: fc.integer({ min: 1, max: 0xffffffff }), flags: u32 }), { minLength: 1, maxLength: 5 }),
    }),
    fc.record({ kind: fc.constant('chunk-error' as const), flags: u16, cookie: c, error: fc.integer({ min: 1, max: 0xffffffff }), message: nbdString }),
    fc.record({
      kind: fc.constant('chunk-error-offset' as const),
      flags: u16,
      cookie: c,
      error: fc.integer({ min: 1, max: 0xffffffff }),
      message: nbdString,
      offset: u64,
    }),
    fc.record({
      kind: fc.constant('chunk-unknown-error' as const),
      flags: u16,
      cookie: c,
      type: fc.integer({ min: 0x8003, max: 0xffff }),
      error: fc.integer({ min: 1, max: 0xffffffff }),
      message: nbdString,
      rest: bytes(),
    }),
  );

/** A transmission-phase server message; simple replies with data are reads the client registered. */
const transmissionReply: fc.Arbitrary<ServerMessage> = fc.oneof(
  fc.record({ kind: fc.constant('simple-reply' as const), error: u32, cookie }),
  fc.record({ kind: fc.constant('simple-reply' as const), error: fc.constant(0), cookie, data: bytes(300) }),
  chunk(),
);

export interface ServerStream {
  messages: ServerMessage[];
  /** Whether the client asked for NO_ZEROES (matters for an export-name-reply). */
  noZeroes: boolean;
}

/**
 * A whole server stream: greeting, option replies, then an ACK to GO or an
 * export-name reply, then replies with distinct cookies.
 */
export const serverStream: fc.Arbitrary<ServerStream> = fc
  .tuple(
    u16,
    fc.array(optionReply, { maxLength: 6 }),
    fc.oneof(
      fc.constant<ServerMessage>({ kind: 'rep-ack', option: Opt.GO }),
      fc.record({ kind: fc.constant('export-name-reply' as const), size: u64, transmissionFlags: u16 }),
    ),
    fc.boolean(),
    fc.array(transmissionReply, { maxLength: 8 }),
  )
  .map(([handshakeFlags, replies, enter, noZeroes, tail]) => {
    // Distinct cookies, so a registered read length belongs to exactly one reply.
    const seen = new Set<bigint>();
    const unique = tail.filter((m) => {
      const c = (m as { cookie: bigint }).cookie;
      if (seen.has(c)) return false;
      seen.add(c);
      return true;
    });
    return { messages: [{ kind: 'greeting' as const, handshakeFlags }, ...replies, enter, ...unique], noZeroes };
  });

/** Splits `buf` at the given cut points (taken modulo its length) into chunks. */
export function split(buf: Uint8Array, cuts: number[]): Uint8Array[] {
  if (buf.length === 0) return [];
  const points = [...new Set(cuts.map((c) => c % buf.length))].filter((p) => p > 0).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Deep copy with every byte view turned into a plain Uint8Array, so Buffer and Uint8Array compare equal. */
export function normalize<T>(v: T): T {
  if (v instanceof Uint8Array) return new Uint8Array(v) as T;
  if (Array.isArray(v)) return v.map(normalize) as T;
  if (v && typeof v === 'object' && !(v instanceof Error)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)])) as T;
  }
  return v;
}
