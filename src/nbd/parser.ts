/**
 * Incremental NBD stream parsers, one per direction. Feed received chunks with
 * push(); pull complete messages with next() (undefined: more bytes are
 * needed, or the parser waits for its owner, see NbdServerParser.phase).
 * Partial messages stay buffered as the chunks they arrived in; payloads are
 * views of those chunks when contiguous (see ByteQueue).
 *
 * A framing error (bad magic, a length over the configured maximum, an
 * unsupported protocol variant) throws NbdProtocolError and poisons the parser:
 * every later next() throws the same error. Nothing else is thrown for any
 * input.
 */
import { ByteQueue } from './byte-queue.js';
import { decodeChunk, decodeOptionData, decodeOptionReplyData, readCookie, readU16, readU32, readU64, SERVER_HANDSHAKE_FLAGS } from './codec.js';
import {
  Cmd,
  NBD_CLISERV_MAGIC_HI,
  NBD_CLISERV_MAGIC_LO,
  NBD_EXTENDED_REPLY_MAGIC,
  NBD_EXTENDED_REQUEST_MAGIC,
  NBD_MAGIC_HI,
  NBD_MAGIC_LO,
  NBD_OPTS_MAGIC_HI,
  NBD_OPTS_MAGIC_LO,
  NBD_REP_MAGIC_HI,
  NBD_REP_MAGIC_LO,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  Opt,
  optName,
} from './constants.js';
import { NbdProtocolError } from './errors.js';
import type { ClientMessage, InvalidOption, OptionRequest, ServerMessage } from './messages.js';

export interface NbdParserLimits {
  /** Largest option data (server side) or option reply data (client side) accepted. Default 64 KiB. */
  maxOptionLength?: number;
  /**
   * Largest payload accepted: NBD_CMD_WRITE data (server side) or structured
   * reply chunk data (client side). Default 32 MiB, the size the spec says no
   * peer should treat as a denial of service.
   */
  maxPayload?: number;
}

export const DEFAULT_MAX_OPTION_LENGTH = 64 * 1024;
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;

function limit(field: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${field} must be an integer in [0, 4294967295], got ${v}`);
  return v;
}

function hex(b: Uint8Array, from: number, to: number): string {
  return '0x' + Buffer.from(b.subarray(from, to)).toString('hex');
}

abstract class StreamParser<M> {
  protected readonly q = new ByteQueue();
  protected readonly maxOptionLength: number;
  protected readonly maxPayload: number;
  private failed: NbdProtocolError | undefined;
  /** Size of the message being waited for, for end()'s message. */
  private want = 0;

  constructor(limits: NbdParserLimits) {
    this.maxOptionLength = limit('maxOptionLength', limits.maxOptionLength, DEFAULT_MAX_OPTION_LENGTH);
    this.maxPayload = limit('maxPayload', limits.maxPayload, DEFAULT_MAX_PAYLOAD);
  }

  /** Adds received bytes. The chunk's memory must not be reused while messages viewing it are alive. */
  push(chunk: Uint8Array): void {
    this.q.push(chunk);
  }

  /** The next complete message, or undefined. Throws NbdProtocolError on a framing error. */
  next(): M | undefined {
    if (this.failed) throw this.failed;
    try {
      return this.step();
    } catch (e) {
      if (e instanceof NbdProtocolError) this.failed = e;
      throw e;
    }
  }

  /** Every complete message available now. */
  drain(): M[] {
    const out: M[] = [];
    for (let m = this.next(); m !== undefined; m = this.next()) out.push(m);
    return out;
  }

  /** Bytes received and not yet returned as messages. */
  get buffered(): number {
    return this.q.length;
  }

  /**
   * The peer closed the stream. Throws NbdProtocolError('truncated') when it
   * closed inside a message. Call after draining.
   */
  end(): void {
    if (this.failed) throw this.failed;
    const what = this.pendingMessage();
    if (what === undefined || this.q.length === 0) return;
    const of = this.want > this.q.length ? ` of the ${this.want} it needs` : '';
    this.failed = new NbdProtocolError('truncated', `stream ended inside ${what}: ${this.q.length} bytes received${of}`);
    throw this.failed;
  }

  /** True when `n` bytes are buffered; otherwise records `n` for end(). */
  protected need(n: number): boolean {
    if (this.q.length >= n) return true;
    this.want = n;
    return false;
  }

  protected abstract step(): M | undefined;
  /** What a partial message in the current phase would be, or undefined when buffered bytes are not an error at EOF. */
  protected abstract pendingMessage(): string | undefined;
}

// ---------------------------------------------------------------- server side: parses what a client sends

/**
 * - client-flags: expecting the client's 32-bit flags;
 * - options: expecting option requests;
 * - awaiting-go: an NBD_OPT_GO arrived; nothing more is parsed until the owner
 *   calls goAccepted() (after sending NBD_REP_ACK) or goRefused() (after an
 *   error reply), since the bytes that follow are requests in one case and
 *   options in the other;
 * - transmission: expecting requests;
 * - closed: NBD_OPT_ABORT, NBD_CMD_DISC or an unusable NBD_OPT_EXPORT_NAME
 *   arrived; the rest of the stream is ignored.
 */
export type ServerParserPhase = 'client-flags' | 'options' | 'awaiting-go' | 'transmission' | 'closed';

export interface NbdServerParserOptions extends NbdParserLimits {
  /** Handshake flags the server advertised; a client flag outside them is a protocol error. */
  handshakeFlags?: number;
}

export class NbdServerParser extends StreamParser<ClientMessage> {
  private state: ServerParserPhase = 'client-flags';
  private readonly handshakeFlags: number;

  constructor(opts: NbdServerParserOptions = {}) {
    super(opts);
    this.handshakeFlags = opts.handshakeFlags ?? SERVER_HANDSHAKE_FLAGS;
  }

  get phase(): ServerParserPhase {
    return this.state;
  }

  /** The server answered the pending NBD_OPT_GO with NBD_REP_ACK: what follows are requests. */
  goAccepted(): void {
    this.leaveGo('transmission');
  }

  /** The server answered the pending NBD_OPT_GO with an error: option haggling continues. */
  goRefused(): void {
    this.leaveGo('options');
  }

  private leaveGo(to: ServerParserPhase): void {
    if (this.state !== 'awaiting-go') throw new Error(`no NBD_OPT_GO is pending (parser phase is ${this.state})`);
    this.state = to;
  }

  protected pendingMessage(): string | undefined {
    switch (this.state) {
      case 'client-flags':
        return 'the client flags';
      case 'options':
        return 'an option';
      case 'transmission':
        return 'a request';
      default:
        return undefined;
    }
  }

  protected step(): ClientMessage | undefined {
    switch (this.state) {
      case 'client-flags':
        return this.clientFlags();
      case 'options':
        return this.option();
      case 'transmission':
        return this.request();
      default:
        return undefined;
    }
  }

  private clientFlags(): ClientMessage | undefined {
    if (!this.need(4)) return undefined;
    const flags = readU32(this.q.take(4), 0);
    if (flags & ~this.handshakeFlags) {
      throw new NbdProtocolError(
        'invalid',
        `client flags 0x${flags.toString(16)} set bits the server did not advertise (allowed: 0x${this.handshakeFlags.toString(16)})`,
      );
    }
    this.state = 'options';
    return { kind: 'client-flags', flags };
  }

  private option(): ClientMessage | undefined {
    if (!this.need(16)) return undefined;
    const o = this.q.header(16);
    const h = this.q.hdr;
    if (readU32(h, o) !== NBD_OPTS_MAGIC_HI || readU32(h, o + 4) !== NBD_OPTS_MAGIC_LO) {
      throw new NbdProtocolError('bad-magic', `option magic is ${hex(h, o, o + 8)}, expected IHAVEOPT (0x49484156454f5054)`);
    }
    const option = readU32(h, o + 8);
    const len = readU32(h, o + 12);
    if (len > this.maxOptionLength) {
      throw new NbdProtocolError('too-large', `${optName(option)} data length ${len} exceeds the maximum of ${this.maxOptionLength} bytes`);
    }
    if (!this.need(16 + len)) return undefined;
    this.q.skip(16);
    const data = this.q.take(len);
    let msg: OptionRequest | InvalidOption;
    try {
      msg = decodeOptionData(option, data);
    } catch (e) {
      if (!(e instanceof NbdProtocolError)) throw e;
      msg = { kind: 'invalid-option', option, error: e };
    }
    if (msg.kind === 'go') this.state = 'awaiting-go';
    else if (msg.kind === 'export-name') this.state = 'transmission';
    // An export name the server cannot even read, or an abort, ends the session.
    else if (msg.kind === 'abort' || (msg.kind === 'invalid-option' && option === Opt.EXPORT_NAME)) this.state = 'closed';
    return msg;
  }

  private request(): ClientMessage | undefined {
    if (!this.need(28)) return undefined;
    const o = this.q.header(28);
    const h = this.q.hdr;
    const magic = readU32(h, o);
    if (magic !== NBD_REQUEST_MAGIC) {
      if (magic === NBD_EXTENDED_REQUEST_MAGIC) {
        throw new NbdProtocolError('unsupported', 'extended request header received, but extended headers were not negotiated');
      }
      throw new NbdProtocolError('bad-magic', `request magic is ${hex(h, o, o + 4)}, expected 0x25609513`);
    }
    const type = readU16(h, o + 6);
    const length = readU32(h, o + 24);
    if (type === Cmd.WRITE) {
      if (length > this.maxPayload) {
        throw new NbdProtocolError('too-large', `NBD_CMD_WRITE length ${length} exceeds the maximum payload of ${this.maxPayload} bytes`);
      }
      if (!this.need(28 + length)) return undefined;
    }
    const flags = readU16(h, o + 4);
    const cookie = readCookie(h, o + 8);
    const offset = readU64(h, o + 16);
    this.q.skip(28);
    if (type === Cmd.WRITE) return { kind: 'request', type, flags, cookie, offset, length, data: this.q.take(length) };
    if (type === Cmd.DISC) this.state = 'closed';
    return { kind: 'request', type, flags, cookie, offset, length };
  }
}

// ---------------------------------------------------------------- client side: parses what a server sends

/**
 * - greeting: expecting NBDMAGIC, IHAVEOPT and the handshake flags;
 * - options: expecting option replies (an NBD_REP_ACK to NBD_OPT_GO moves to
 *   transmission by itself; one to NBD_OPT_ABORT closes);
 * - export-name-reply: the owner sent NBD_OPT_EXPORT_NAME (expectExportNameReply);
 * - transmission: expecting simple replies and structured reply chunks;
 * - closed.
 */
export type ClientParserPhase = 'greeting' | 'options' | 'export-name-reply' | 'transmission' | 'closed';

export class NbdClientParser extends StreamParser<ServerMessage> {
  private state: ClientParserPhase = 'greeting';
  private noZeroes = false;
  /** Cookie -> payload length of reads answered by simple replies. */
  private readonly reads = new Map<bigint, number>();

  constructor(limits: NbdParserLimits = {}) {
    super(limits);
  }

  get phase(): ClientParserPhase {
    return this.state;
  }

  /** The owner sent NBD_OPT_EXPORT_NAME: the next bytes are its header-less reply. */
  expectExportNameReply(noZeroes: boolean): void {
    if (this.state !== 'options') throw new Error(`an export name reply can only follow option haggling (parser phase is ${this.state})`);
    this.state = 'export-name-reply';
    this.noZeroes = noZeroes;
  }

  /**
   * The owner sent NBD_CMD_READ without structured replies: a successful simple
   * reply with this cookie carries `length` bytes, which only the sender knows.
   */
  expectSimpleReadReply(cookie: bigint, length: number): void {
    this.reads.set(cookie, length);
  }

  protected pendingMessage(): string | undefined {
    switch (this.state) {
      case 'greeting':
        return 'the greeting';
      case 'options':
        return 'an option reply';
      case 'export-name-reply':
        return 'the export name reply';
      case 'transmission':
        return 'a reply';
      default:
        return undefined;
    }
  }

  protected step(): ServerMessage | undefined {
    switch (this.state) {
      case 'greeting':
        return this.greeting();
      case 'options':
        return this.optionReply();
      case 'export-name-reply':
        return this.exportNameReply();
      case 'transmission':
        return this.reply();
      default:
        return undefined;
    }
  }

  private greeting(): ServerMessage | undefined {
    if (!this.need(16)) return undefined;
    const h = this.q.peek(16);
    if (readU32(h, 0) !== NBD_MAGIC_HI || readU32(h, 4) !== NBD_MAGIC_LO) {
      throw new NbdProtocolError('bad-magic', `greeting magic is ${hex(h, 0, 8)}, expected NBDMAGIC (0x4e42444d41474943)`);
    }
    const hi = readU32(h, 8);
    const lo = readU32(h, 12);
    if (hi === NBD_CLISERV_MAGIC_HI && lo === NBD_CLISERV_MAGIC_LO) {
      throw new NbdProtocolError('unsupported', 'the server uses oldstyle negotiation, which is not supported');
    }
    if (hi !== NBD_OPTS_MAGIC_HI || lo !== NBD_OPTS_MAGIC_LO) {
      throw new NbdProtocolError('bad-magic', `greeting second magic is ${hex(h, 8, 16)}, expected IHAVEOPT (0x49484156454f5054)`);
    }
    if (!this.need(18)) return undefined;
    const handshakeFlags = readU16(this.q.take(18), 16);
    this.state = 'options';
    return { kind: 'greeting', handshakeFlags };
  }

  private optionReply(): ServerMessage | undefined {
    if (!this.need(20)) return undefined;
    const h = this.q.peek(20);
    if (readU32(h, 0) !== NBD_REP_MAGIC_HI || readU32(h, 4) !== NBD_REP_MAGIC_LO) {
      throw new NbdProtocolError('bad-magic', `option reply magic is ${hex(h, 0, 8)}, expected 0x0003e889045565a9`);
    }
    const option = readU32(h, 8);
    const reply = readU32(h, 12);
    const len = readU32(h, 16);
    if (len > this.maxOptionLength) {
      throw new NbdProtocolError('too-large', `reply to ${optName(option)}: data length ${len} exceeds the maximum of ${this.maxOptionLength} bytes`);
    }
    if (!this.need(20 + len)) return undefined;
    this.q.skip(20);
    const msg = decodeOptionReplyData(option, reply, this.q.take(len));
    if (msg.kind === 'rep-ack' && option === Opt.GO) this.state = 'transmission';
    else if (msg.kind === 'rep-ack' && option === Opt.ABORT) this.state = 'closed';
    return msg;
  }

  private exportNameReply(): ServerMessage | undefined {
    const size = this.noZeroes ? 10 : 134;
    if (!this.need(size)) return undefined;
    const b = this.q.take(size);
    this.state = 'transmission';
    return { kind: 'export-name-reply', size: readU64(b, 0), transmissionFlags: readU16(b, 8) };
  }

  private reply(): ServerMessage | undefined {
    if (!this.need(4)) return undefined;
    let o = this.q.header(this.q.length >= 20 ? 20 : 4);
    let h = this.q.hdr;
    const magic = readU32(h, o);
    if (magic === NBD_SIMPLE_REPLY_MAGIC) {
      if (!this.need(16)) return undefined;
      o = this.q.header(16);
      h = this.q.hdr;
      const error = readU32(h, o + 4);
      const cookie = readCookie(h, o + 8);
      const dataLength = error === 0 ? this.reads.get(cookie) : undefined;
      if (dataLength !== undefined && !this.need(16 + dataLength)) return undefined;
      this.q.skip(16);
      this.reads.delete(cookie);
      if (dataLength === undefined) return { kind: 'simple-reply', error, cookie };
      return { kind: 'simple-reply', error, cookie, data: this.q.take(dataLength) };
    }
    if (magic === NBD_STRUCTURED_REPLY_MAGIC) {
      if (!this.need(20)) return undefined;
      const length = readU32(h, o + 16);
      if (length > this.maxPayload + 8) {
        throw new NbdProtocolError('too-large', `structured reply chunk length ${length} exceeds the maximum of ${this.maxPayload + 8} bytes`);
      }
      if (!this.need(20 + length)) return undefined;
      const flags = readU16(h, o + 4);
      const type = readU16(h, o + 6);
      const cookie = readCookie(h, o + 8);
      this.q.skip(20);
      return decodeChunk(flags, type, cookie, this.q.take(length));
    }
    if (magic === NBD_EXTENDED_REPLY_MAGIC) {
      throw new NbdProtocolError('unsupported', 'extended reply header received, but extended headers were not negotiated');
    }
    throw new NbdProtocolError('bad-magic', `reply magic is ${hex(h, o, o + 4)}, expected 0x67446698 (simple) or 0x668e33ef (structured)`);
  }
}
