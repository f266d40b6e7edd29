/**
 * Pure NBD encoders and body decoders: bytes in, typed messages out, and back.
 * No I/O. The stream parsers (parser.ts) frame a byte stream and call the body
 * decoders here; encoders return Buffers ready for a socket.
 *
 * Encoders validate their input and throw RangeError with the field and its
 * allowed range (the caller built a bad message); decoders throw
 * NbdProtocolError (the peer sent bad bytes).
 */
import {
  Cmd,
  HandshakeFlag,
  Info,
  isRepError,
  isReplyTypeError,
  NBD_MAGIC_HI,
  NBD_MAGIC_LO,
  NBD_MAX_STRING,
  NBD_OPTS_MAGIC_HI,
  NBD_OPTS_MAGIC_LO,
  NBD_REP_MAGIC_HI,
  NBD_REP_MAGIC_LO,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  Opt,
  optName,
  Rep,
  ReplyFlag,
  ReplyType,
  replyTypeName,
  repName,
} from './constants.js';
import { NbdProtocolError } from './errors.js';
import type { ClientMessage, ExportNameReply, InfoItem, NbdRequest, OptionReply, OptionRequest, ReplyChunk, ServerMessage, SimpleReply } from './messages.js';

export const GREETING_SIZE = 18;
export const CLIENT_FLAGS_SIZE = 4;
export const OPTION_HEADER_SIZE = 16;
export const OPTION_REPLY_HEADER_SIZE = 20;
export const EXPORT_NAME_REPLY_SIZE = 134;
export const EXPORT_NAME_REPLY_NO_ZEROES_SIZE = 10;
export const REQUEST_HEADER_SIZE = 28;
export const SIMPLE_REPLY_HEADER_SIZE = 16;
export const CHUNK_HEADER_SIZE = 20;

const TWO32 = 2 ** 32;
const U32_MAX = 0xffffffff;

// ---------------------------------------------------------------- readers

export function readU16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function readU32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** A u64 as a number: exact up to 2^53, and never below 2^53 when the true value is not. */
export function readU64(b: Uint8Array, o: number): number {
  return readU32(b, o) * TWO32 + readU32(b, o + 4);
}

export function readCookie(b: Uint8Array, o: number): bigint {
  return (BigInt(readU32(b, o)) << 32n) | BigInt(readU32(b, o + 4));
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeString(field: string, b: Uint8Array): string {
  if (b.length > NBD_MAX_STRING) {
    throw new NbdProtocolError('too-large', `${field} is ${b.length} bytes; NBD strings are at most ${NBD_MAX_STRING} bytes`);
  }
  let s: string;
  try {
    s = utf8.decode(b);
  } catch {
    throw new NbdProtocolError('invalid', `${field} is not valid UTF-8`);
  }
  if (s.includes('\0')) throw new NbdProtocolError('invalid', `${field} contains a NUL character, which NBD strings must not`);
  return s;
}

// ---------------------------------------------------------------- writers and checks

function checkUint(field: string, v: number, bits: 8 | 16 | 32): void {
  const max = bits === 32 ? U32_MAX : (1 << bits) - 1;
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`${field} must be an integer in [0, ${max}], got ${v}`);
  }
}

function checkU64(field: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`${field} must be an integer in [0, 2^53 - 1], got ${v}`);
  }
}

function checkCookie(v: bigint): void {
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << 64n) {
    throw new RangeError(`cookie must be a bigint in [0, 2^64 - 1], got ${String(v)}`);
  }
}

function writeU64(buf: Buffer, v: number, o: number): void {
  buf.writeUInt32BE(Math.floor(v / TWO32), o);
  buf.writeUInt32BE(v % TWO32, o + 4);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function encodeString(field: string, s: string): Buffer {
  if (typeof s !== 'string') throw new RangeError(`${field} must be a string`);
  if (s.includes('\0')) throw new RangeError(`${field} must not contain a NUL character`);
  if (LONE_SURROGATE.test(s)) throw new RangeError(`${field} is not a well-formed Unicode string (lone surrogate)`);
  const b = Buffer.from(s, 'utf8');
  if (b.length > NBD_MAX_STRING) {
    throw new RangeError(`${field} is ${b.length} bytes in UTF-8; NBD strings are at most ${NBD_MAX_STRING} bytes`);
  }
  return b;
}

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

function u16b(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v, 0);
  return b;
}

function u32b(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v, 0);
  return b;
}

// ---------------------------------------------------------------- handshake

export function encodeGreeting(handshakeFlags: number): Buffer {
  checkUint('handshakeFlags', handshakeFlags, 16);
  const b = Buffer.allocUnsafe(GREETING_SIZE);
  b.writeUInt32BE(NBD_MAGIC_HI, 0);
  b.writeUInt32BE(NBD_MAGIC_LO, 4);
  b.writeUInt32BE(NBD_OPTS_MAGIC_HI, 8);
  b.writeUInt32BE(NBD_OPTS_MAGIC_LO, 12);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

export function encodeClientFlags(flags: number): Buffer {
  checkUint('client flags', flags, 32);
  return u32b(flags);
}

/** The handshake flags a server built on this codec advertises. */
export const SERVER_HANDSHAKE_FLAGS = HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES;

// ---------------------------------------------------------------- options (client -> server)

const OPTION_CODES: Record<Exclude<OptionRequest['kind'], 'unknown-option'>, number> = {
  'export-name': Opt.EXPORT_NAME,
  abort: Opt.ABORT,
  list: Opt.LIST,
  starttls: Opt.STARTTLS,
  info: Opt.INFO,
  go: Opt.GO,
  'structured-reply': Opt.STRUCTURED_REPLY,
  'list-meta-context': Opt.LIST_META_CONTEXT,
  'set-meta-context': Opt.SET_META_CONTEXT,
  'extended-headers': Opt.EXTENDED_HEADERS,
};
const DECODED_OPTIONS = new Set(Object.values(OPTION_CODES));

/** The option code a decoded option (or an invalid one) answers to. */
export function optionCode(o: OptionRequest | { kind: 'invalid-option'; option: number }): number {
  return o.kind === 'unknown-option' || o.kind === 'invalid-option' ? o.option : OPTION_CODES[o.kind];
}

function optionData(o: OptionRequest): Uint8Array {
  switch (o.kind) {
    case 'export-name':
      return encodeString('export name', o.name);
    case 'abort':
    case 'list':
    case 'starttls':
    case 'structured-reply':
    case 'extended-headers':
      return new Uint8Array(0);
    case 'info':
    case 'go': {
      const name = encodeString('export name', o.name);
      checkUint('number of info requests', o.infoRequests.length, 16);
      const b = Buffer.allocUnsafe(4 + name.length + 2 + 2 * o.infoRequests.length);
      b.writeUInt32BE(name.length, 0);
      b.set(name, 4);
      let p = 4 + name.length;
      b.writeUInt16BE(o.infoRequests.length, p);
      p += 2;
      for (const r of o.infoRequests) {
        checkUint('info request', r, 16);
        b.writeUInt16BE(r, p);
        p += 2;
      }
      return b;
    }
    case 'list-meta-context':
    case 'set-meta-context': {
      const name = encodeString('export name', o.name);
      const parts: Uint8Array[] = [u32b(name.length), name, u32b(o.queries.length)];
      for (const q of o.queries) {
        const qb = encodeString('meta context query', q);
        parts.push(u32b(qb.length), qb);
      }
      return concat(parts);
    }
    case 'unknown-option':
      checkUint('option', o.option, 32);
      if (DECODED_OPTIONS.has(o.option)) {
        throw new RangeError(`option ${optName(o.option)} has its own message kind; unknown-option is for codes the codec does not decode`);
      }
      return o.data;
  }
}

export function encodeOption(o: OptionRequest): Buffer {
  const data = optionData(o);
  const b = Buffer.allocUnsafe(OPTION_HEADER_SIZE + data.length);
  b.writeUInt32BE(NBD_OPTS_MAGIC_HI, 0);
  b.writeUInt32BE(NBD_OPTS_MAGIC_LO, 4);
  b.writeUInt32BE(optionCode(o), 8);
  b.writeUInt32BE(data.length, 12);
  b.set(data, OPTION_HEADER_SIZE);
  return b;
}

function noData(option: number, data: Uint8Array): void {
  if (data.length !== 0) {
    throw new NbdProtocolError('invalid', `${optName(option)} carries no data, got ${data.length} bytes`);
  }
}

/** Reads a u32-length-prefixed string at `p` of option data; returns it and the position after it. */
function lengthPrefixedString(field: string, option: number, data: Uint8Array, p: number): [string, number] {
  if (p + 4 > data.length) {
    throw new NbdProtocolError('truncated', `${optName(option)}: ${field} length overruns the ${data.length}-byte option data`);
  }
  const len = readU32(data, p);
  if (len > data.length - p - 4) {
    throw new NbdProtocolError('truncated', `${optName(option)}: ${field} length ${len} exceeds the ${data.length - p - 4} bytes left in the option data`);
  }
  return [decodeString(field, data.subarray(p + 4, p + 4 + len)), p + 4 + len];
}

/** Decodes option data for option code `option`; throws NbdProtocolError when the data is malformed. */
export function decodeOptionData(option: number, data: Uint8Array): OptionRequest {
  switch (option) {
    case Opt.EXPORT_NAME:
      return { kind: 'export-name', name: decodeString('export name', data) };
    case Opt.ABORT:
      // The spec asks servers to ignore data sent with NBD_OPT_ABORT.
      return { kind: 'abort' };
    case Opt.LIST:
      noData(option, data);
      return { kind: 'list' };
    case Opt.STARTTLS:
      noData(option, data);
      return { kind: 'starttls' };
    case Opt.STRUCTURED_REPLY:
      noData(option, data);
      return { kind: 'structured-reply' };
    case Opt.EXTENDED_HEADERS:
      noData(option, data);
      return { kind: 'extended-headers' };
    case Opt.INFO:
    case Opt.GO: {
      if (data.length < 6) {
        throw new NbdProtocolError('truncated', `${optName(option)} data is ${data.length} bytes; it needs at least 6`);
      }
      const [name, p] = lengthPrefixedString('export name', option, data, 0);
      if (p + 2 > data.length) {
        throw new NbdProtocolError('truncated', `${optName(option)}: no room for the info request count after the export name`);
      }
      const count = readU16(data, p);
      if (data.length !== p + 2 + 2 * count) {
        throw new NbdProtocolError('invalid', `${optName(option)}: ${count} info requests need ${p + 2 + 2 * count} bytes of option data, got ${data.length}`);
      }
      const infoRequests: number[] = [];
      for (let i = 0; i < count; i++) infoRequests.push(readU16(data, p + 2 + 2 * i));
      return { kind: option === Opt.GO ? 'go' : 'info', name, infoRequests };
    }
    case Opt.LIST_META_CONTEXT:
    case Opt.SET_META_CONTEXT: {
      const [name, afterName] = lengthPrefixedString('export name', option, data, 0);
      let p = afterName;
      if (p + 4 > data.length) {
        throw new NbdProtocolError('truncated', `${optName(option)}: no room for the query count after the export name`);
      }
      const count = readU32(data, p);
      p += 4;
      const queries: string[] = [];
      for (let i = 0; i < count; i++) {
        let q: string;
        [q, p] = lengthPrefixedString(`query ${i}`, option, data, p);
        queries.push(q);
      }
      if (p !== data.length) {
        throw new NbdProtocolError('invalid', `${optName(option)}: ${data.length - p} bytes after the last query`);
      }
      return { kind: option === Opt.SET_META_CONTEXT ? 'set-meta-context' : 'list-meta-context', name, queries };
    }
    default:
      return { kind: 'unknown-option', option, data };
  }
}

// ---------------------------------------------------------------- option replies (server -> client)

function infoData(info: InfoItem): Buffer {
  switch (info.kind) {
    case 'export': {
      checkU64('export size', info.size);
      checkUint('transmission flags', info.transmissionFlags, 16);
      const b = Buffer.allocUnsafe(12);
      b.writeUInt16BE(Info.EXPORT, 0);
      writeU64(b, info.size, 2);
      b.writeUInt16BE(info.transmissionFlags, 10);
      return b;
    }
    case 'name':
      return concat([u16b(Info.NAME), encodeString('export name', info.name)]);
    case 'description':
      return concat([u16b(Info.DESCRIPTION), encodeString('export description', info.description)]);
    case 'block-size': {
      checkUint('minimum block size', info.minimum, 32);
      checkUint('preferred block size', info.preferred, 32);
      checkUint('maximum block size', info.maximum, 32);
      const b = Buffer.allocUnsafe(14);
      b.writeUInt16BE(Info.BLOCK_SIZE, 0);
      b.writeUInt32BE(info.minimum, 2);
      b.writeUInt32BE(info.preferred, 6);
      b.writeUInt32BE(info.maximum, 10);
      return b;
    }
    case 'unknown':
      checkUint('info type', info.info, 16);
      if (info.info <= Info.BLOCK_SIZE) throw new RangeError(`info type ${info.info} has its own kind; 'unknown' is for types the codec does not decode`);
      return concat([u16b(info.info), info.data]);
  }
}

function replyTypeAndData(r: OptionReply): [number, Uint8Array] {
  switch (r.kind) {
    case 'rep-ack':
      return [Rep.ACK, new Uint8Array(0)];
    case 'rep-server': {
      const name = encodeString('export name', r.name);
      return [Rep.SERVER, concat([u32b(name.length), name, encodeString('export description', r.description)])];
    }
    case 'rep-info':
      return [Rep.INFO, infoData(r.info)];
    case 'rep-meta-context':
      checkUint('meta context id', r.contextId, 32);
      return [Rep.META_CONTEXT, concat([u32b(r.contextId), encodeString('meta context name', r.name)])];
    case 'rep-error':
      checkUint('reply type', r.reply, 32);
      if (!isRepError(r.reply)) throw new RangeError(`reply type ${repName(r.reply)} is not an error (bit 31 clear)`);
      return [r.reply, encodeString('error message', r.message)];
    case 'rep-unknown':
      checkUint('reply type', r.reply, 32);
      if (isRepError(r.reply) || (r.reply >= Rep.ACK && r.reply <= Rep.META_CONTEXT)) {
        throw new RangeError(`reply type ${repName(r.reply)} has its own kind; rep-unknown is for non-error types the codec does not decode`);
      }
      return [r.reply, r.data];
  }
}

export function encodeOptionReply(r: OptionReply): Buffer {
  checkUint('option', r.option, 32);
  const [type, data] = replyTypeAndData(r);
  const b = Buffer.allocUnsafe(OPTION_REPLY_HEADER_SIZE + data.length);
  b.writeUInt32BE(NBD_REP_MAGIC_HI, 0);
  b.writeUInt32BE(NBD_REP_MAGIC_LO, 4);
  b.writeUInt32BE(r.option, 8);
  b.writeUInt32BE(type, 12);
  b.writeUInt32BE(data.length, 16);
  b.set(data, OPTION_REPLY_HEADER_SIZE);
  return b;
}

function decodeInfo(data: Uint8Array): InfoItem {
  if (data.length < 2) throw new NbdProtocolError('truncated', `NBD_REP_INFO data is ${data.length} bytes; it needs at least 2`);
  const info = readU16(data, 0);
  const exact = (n: number, what: string) => {
    if (data.length !== n) throw new NbdProtocolError('invalid', `${what} reply must be ${n} bytes, got ${data.length}`);
  };
  switch (info) {
    case Info.EXPORT:
      exact(12, 'NBD_INFO_EXPORT');
      return { kind: 'export', size: readU64(data, 2), transmissionFlags: readU16(data, 10) };
    case Info.NAME:
      return { kind: 'name', name: decodeString('export name', data.subarray(2)) };
    case Info.DESCRIPTION:
      return { kind: 'description', description: decodeString('export description', data.subarray(2)) };
    case Info.BLOCK_SIZE:
      exact(14, 'NBD_INFO_BLOCK_SIZE');
      return { kind: 'block-size', minimum: readU32(data, 2), preferred: readU32(data, 6), maximum: readU32(data, 10) };
    default:
      return { kind: 'unknown', info, data: data.subarray(2) };
  }
}

/** Decodes an option reply body; throws NbdProtocolError when it is malformed. */
export function decodeOptionReplyData(option: number, reply: number, data: Uint8Array): OptionReply {
  switch (reply) {
    case Rep.ACK:
      if (data.length !== 0) throw new NbdProtocolError('invalid', `NBD_REP_ACK carries no data, got ${data.length} bytes`);
      return { kind: 'rep-ack', option };
    case Rep.SERVER: {
      if (data.length < 4) throw new NbdProtocolError('truncated', `NBD_REP_SERVER data is ${data.length} bytes; it needs at least 4`);
      const len = readU32(data, 0);
      if (len > data.length - 4) {
        throw new NbdProtocolError('truncated', `NBD_REP_SERVER name length ${len} exceeds the ${data.length - 4} bytes that follow`);
      }
      return {
        kind: 'rep-server',
        option,
        name: decodeString('export name', data.subarray(4, 4 + len)),
        description: decodeString('export description', data.subarray(4 + len)),
      };
    }
    case Rep.INFO:
      return { kind: 'rep-info', option, info: decodeInfo(data) };
    case Rep.META_CONTEXT:
      if (data.length < 4) throw new NbdProtocolError('truncated', `NBD_REP_META_CONTEXT data is ${data.length} bytes; it needs at least 4`);
      return { kind: 'rep-meta-context', option, contextId: readU32(data, 0), name: decodeString('meta context name', data.subarray(4)) };
    default:
      if (isRepError(reply)) return { kind: 'rep-error', option, reply, message: decodeString(`${repName(reply)} message`, data) };
      return { kind: 'rep-unknown', option, reply, data };
  }
}

/** The reply to NBD_OPT_EXPORT_NAME; the 124 zero bytes are left out when NO_ZEROES was agreed. */
export function encodeExportNameReply(r: Omit<ExportNameReply, 'kind'>, noZeroes: boolean): Buffer {
  checkU64('export size', r.size);
  checkUint('transmission flags', r.transmissionFlags, 16);
  const b = Buffer.alloc(noZeroes ? EXPORT_NAME_REPLY_NO_ZEROES_SIZE : EXPORT_NAME_REPLY_SIZE);
  writeU64(b, r.size, 0);
  b.writeUInt16BE(r.transmissionFlags, 8);
  return b;
}

// ---------------------------------------------------------------- transmission: requests

/** The 28-byte request header; a WRITE's payload (`length` bytes) follows it on the wire. */
export function encodeRequestHeader(r: Omit<NbdRequest, 'kind' | 'data'>): Buffer {
  checkUint('command type', r.type, 16);
  checkUint('command flags', r.flags, 16);
  checkCookie(r.cookie);
  checkU64('offset', r.offset);
  checkUint('length', r.length, 32);
  const b = Buffer.allocUnsafe(REQUEST_HEADER_SIZE);
  b.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  b.writeUInt16BE(r.flags, 4);
  b.writeUInt16BE(r.type, 6);
  b.writeBigUInt64BE(r.cookie, 8);
  writeU64(b, r.offset, 16);
  b.writeUInt32BE(r.length, 24);
  return b;
}

/** A whole request, payload included (a copy: use encodeRequestHeader to send a large payload without one). */
export function encodeRequest(r: NbdRequest): Buffer {
  const header = encodeRequestHeader(r);
  if (r.type === Cmd.WRITE) {
    if (!r.data || r.data.length !== r.length) {
      throw new RangeError(`NBD_CMD_WRITE data must be exactly length (${r.length}) bytes, got ${r.data ? r.data.length : 'none'}`);
    }
    return concat([header, r.data]);
  }
  if (r.data) throw new RangeError('only NBD_CMD_WRITE carries data');
  return header;
}

// ---------------------------------------------------------------- transmission: replies

export function encodeSimpleReplyHeader(error: number, cookie: bigint): Buffer {
  checkUint('error', error, 32);
  checkCookie(cookie);
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_HEADER_SIZE);
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(cookie, 8);
  return b;
}

export function encodeSimpleReply(r: Omit<SimpleReply, 'kind'>): Buffer {
  const header = encodeSimpleReplyHeader(r.error, r.cookie);
  if (!r.data) return header;
  if (r.error !== 0) throw new RangeError('a simple reply with a nonzero error carries no data');
  return concat([header, r.data]);
}

export function encodeChunkHeader(flags: number, type: number, cookie: bigint, length: number): Buffer {
  checkUint('reply flags', flags, 16);
  checkUint('reply type', type, 16);
  checkCookie(cookie);
  checkUint('chunk length', length, 32);
  const b = Buffer.allocUnsafe(CHUNK_HEADER_SIZE);
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeUInt32BE(length, 16);
  return b;
}

/** Chunk header plus the offset of an NBD_REPLY_TYPE_OFFSET_DATA chunk; `dataLength` bytes of data follow it. */
export function encodeDataChunkHeader(flags: number, cookie: bigint, offset: number, dataLength: number): Buffer {
  if (!Number.isInteger(dataLength) || dataLength < 1 || dataLength > U32_MAX - 8) {
    throw new RangeError(`OFFSET_DATA data length must be an integer in [1, ${U32_MAX - 8}], got ${dataLength}`);
  }
  checkU64('offset', offset);
  const h = encodeChunkHeader(flags, ReplyType.OFFSET_DATA, cookie, dataLength + 8);
  const b = Buffer.allocUnsafe(CHUNK_HEADER_SIZE + 8);
  b.set(h, 0);
  writeU64(b, offset, CHUNK_HEADER_SIZE);
  return b;
}

function errorPayload(error: number, message: string, tail: Uint8Array): Buffer {
  checkUint('error', error, 32);
  if (error === 0) throw new RangeError('an error chunk needs a nonzero error');
  const m = encodeString('error message', message);
  const b = Buffer.allocUnsafe(6 + m.length + tail.length);
  b.writeUInt32BE(error, 0);
  b.writeUInt16BE(m.length, 4);
  b.set(m, 6);
  b.set(tail, 6 + m.length);
  return b;
}

function chunkTypeAndPayload(c: ReplyChunk): [number, Uint8Array] {
  switch (c.kind) {
    case 'chunk-none':
      if (!(c.flags & ReplyFlag.DONE)) throw new RangeError('an NBD_REPLY_TYPE_NONE chunk must have NBD_REPLY_FLAG_DONE set');
      return [ReplyType.NONE, new Uint8Array(0)];
    case 'chunk-data': {
      if (c.data.length < 1) throw new RangeError('an OFFSET_DATA chunk must carry at least 1 byte');
      checkU64('offset', c.offset);
      const b = Buffer.allocUnsafe(8 + c.data.length);
      writeU64(b, c.offset, 0);
      b.set(c.data, 8);
      return [ReplyType.OFFSET_DATA, b];
    }
    case 'chunk-hole': {
      checkU64('offset', c.offset);
      checkUint('hole length', c.length, 32);
      if (c.length === 0) throw new RangeError('hole length must be in [1, 4294967295], got 0');
      const b = Buffer.allocUnsafe(12);
      writeU64(b, c.offset, 0);
      b.writeUInt32BE(c.length, 8);
      return [ReplyType.OFFSET_HOLE, b];
    }
    case 'chunk-block-status': {
      checkUint('meta context id', c.contextId, 32);
      if (c.extents.length === 0) throw new RangeError('a block status chunk needs at least one extent');
      const b = Buffer.allocUnsafe(4 + 8 * c.extents.length);
      b.writeUInt32BE(c.contextId, 0);
      c.extents.forEach((e, i) => {
        checkUint('extent length', e.length, 32);
        if (e.length === 0) throw new RangeError('extent length must be in [1, 4294967295], got 0');
        checkUint('extent flags', e.flags, 32);
        b.writeUInt32BE(e.length, 4 + 8 * i);
        b.writeUInt32BE(e.flags, 8 + 8 * i);
      });
      return [ReplyType.BLOCK_STATUS, b];
    }
    case 'chunk-error':
      return [ReplyType.ERROR, errorPayload(c.error, c.message, new Uint8Array(0))];
    case 'chunk-error-offset': {
      checkU64('offset', c.offset);
      const o = Buffer.allocUnsafe(8);
      writeU64(o, c.offset, 0);
      return [ReplyType.ERROR_OFFSET, errorPayload(c.error, c.message, o)];
    }
    case 'chunk-unknown-error':
      checkUint('reply type', c.type, 16);
      if (!isReplyTypeError(c.type) || c.type === ReplyType.ERROR || c.type === ReplyType.ERROR_OFFSET) {
        throw new RangeError(`reply type ${replyTypeName(c.type)} is not an unknown error type`);
      }
      return [c.type, errorPayload(c.error, c.message, c.rest)];
  }
}

/** A whole structured reply chunk (payload copied; see encodeDataChunkHeader for large reads). */
export function encodeChunk(c: ReplyChunk): Buffer {
  const [type, payload] = chunkTypeAndPayload(c);
  return concat([encodeChunkHeader(c.flags, type, c.cookie, payload.length), payload]);
}

/** Decodes a structured reply chunk body; throws NbdProtocolError when it breaks the chunk's layout. */
export function decodeChunk(flags: number, type: number, cookie: bigint, payload: Uint8Array): ReplyChunk {
  const len = payload.length;
  const bad = (problem: 'invalid' | 'truncated', what: string) => new NbdProtocolError(problem, `${replyTypeName(type)} chunk: ${what}`);
  switch (type) {
    case ReplyType.NONE:
      if (len !== 0) throw bad('invalid', `length must be 0, got ${len}`);
      if (!(flags & ReplyFlag.DONE)) throw bad('invalid', 'NBD_REPLY_FLAG_DONE must be set');
      return { kind: 'chunk-none', flags, cookie };
    case ReplyType.OFFSET_DATA:
      if (len < 9) throw bad('truncated', `length must be at least 9, got ${len}`);
      return { kind: 'chunk-data', flags, cookie, offset: readU64(payload, 0), data: payload.subarray(8) };
    case ReplyType.OFFSET_HOLE: {
      if (len !== 12) throw bad('invalid', `length must be 12, got ${len}`);
      const length = readU32(payload, 8);
      if (length === 0) throw bad('invalid', 'hole size must be nonzero');
      return { kind: 'chunk-hole', flags, cookie, offset: readU64(payload, 0), length };
    }
    case ReplyType.BLOCK_STATUS: {
      if (len < 12 || (len - 4) % 8 !== 0) throw bad('invalid', `length must be 4 + a positive multiple of 8, got ${len}`);
      const extents = [];
      for (let p = 4; p < len; p += 8) {
        const length = readU32(payload, p);
        if (length === 0) throw bad('invalid', `extent ${(p - 4) / 8} has length 0`);
        extents.push({ length, flags: readU32(payload, p + 4) });
      }
      return { kind: 'chunk-block-status', flags, cookie, contextId: readU32(payload, 0), extents };
    }
    default: {
      if (!isReplyTypeError(type)) {
        throw new NbdProtocolError('unsupported', `structured reply type ${replyTypeName(type)} is not known and not an error type`);
      }
      if (len < 6) throw bad('truncated', `length must be at least 6, got ${len}`);
      const error = readU32(payload, 0);
      if (error === 0) throw bad('invalid', 'error must be nonzero');
      const mlen = readU16(payload, 4);
      if (mlen > len - 6) throw bad('truncated', `message length ${mlen} exceeds the ${len - 6} bytes that follow`);
      const message = decodeString('error message', payload.subarray(6, 6 + mlen));
      const rest = payload.subarray(6 + mlen);
      if (type === ReplyType.ERROR) {
        if (rest.length !== 0) throw bad('invalid', `${rest.length} bytes after the message`);
        return { kind: 'chunk-error', flags, cookie, error, message };
      }
      if (type === ReplyType.ERROR_OFFSET) {
        if (rest.length !== 8) throw bad('invalid', `expected an 8-byte offset after the message, got ${rest.length} bytes`);
        return { kind: 'chunk-error-offset', flags, cookie, error, message, offset: readU64(rest, 0) };
      }
      return { kind: 'chunk-unknown-error', flags, cookie, type, error, message, rest };
    }
  }
}

// ---------------------------------------------------------------- generic dispatch

/** Encodes anything a client sends (an invalid-option cannot be encoded: it only comes out of the parser). */
export function encodeClientMessage(m: ClientMessage): Buffer {
  switch (m.kind) {
    case 'client-flags':
      return encodeClientFlags(m.flags);
    case 'request':
      return encodeRequest(m);
    case 'invalid-option':
      throw new RangeError('an invalid-option message cannot be encoded');
    default:
      return encodeOption(m);
  }
}

/** Encodes anything a server sends. `noZeroes` matters only for export-name-reply. */
export function encodeServerMessage(m: ServerMessage, noZeroes = false): Buffer {
  switch (m.kind) {
    case 'greeting':
      return encodeGreeting(m.handshakeFlags);
    case 'export-name-reply':
      return encodeExportNameReply(m, noZeroes);
    case 'simple-reply':
      return encodeSimpleReply(m);
    case 'rep-ack':
    case 'rep-server':
    case 'rep-info':
    case 'rep-meta-context':
    case 'rep-error':
    case 'rep-unknown':
      return encodeOptionReply(m);
    default:
      return encodeChunk(m);
  }
}

// ---------------------------------------------------------------- block size constraints

/**
 * Checks block size constraints against the rules of the spec ("Block size
 * constraints"); returns a one-line problem or undefined when they are valid.
 */
export function blockSizeProblem(minimum: number, preferred: number, maximum: number, exportSize?: number): string | undefined {
  const pow2 = (v: number) => Number.isInteger(v) && v > 0 && (v & (v - 1)) === 0;
  if (!pow2(minimum) || minimum > 65536) return `minimum block size must be a power of 2 in [1, 65536], got ${minimum}`;
  const prefFloor = Math.max(512, minimum);
  if (!pow2(preferred) || preferred < prefFloor || preferred > U32_MAX) {
    return `preferred block size must be a power of 2 >= ${prefFloor}, got ${preferred}`;
  }
  if (!Number.isInteger(maximum) || maximum < 1 || maximum > U32_MAX) return `maximum block size must be in [1, ${U32_MAX}], got ${maximum}`;
  if (maximum !== U32_MAX && maximum % minimum !== 0) {
    return `maximum block size must be a multiple of the minimum (${minimum}) or ${U32_MAX}, got ${maximum}`;
  }
  const floor = exportSize === undefined ? preferred : Math.min(preferred, exportSize);
  if (maximum < floor) return `maximum block size must be at least ${floor}, got ${maximum}`;
  return undefined;
}
