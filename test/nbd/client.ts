/**
 * A tiny NBD client over the codec, for tests only: it proves the codec
 * against real servers (nbdkit). One socket, options one at a time, requests
 * pipelined with replies routed by cookie.
 */
import * as net from 'node:net';
import {
  ClientFlag,
  Cmd,
  encodeClientFlags,
  encodeOption,
  encodeRequestHeader,
  HandshakeFlag,
  Info,
  NbdClientParser,
  type NbdParserLimits,
  NbdProtocolError,
  type OptionReply,
  type OptionRequest,
  type ReplyChunk,
  ReplyFlag,
  type ServerMessage,
} from '../../src/nbd/protocol.js';

export interface CommandResult {
  /** NBD error value (the first error chunk's, for structured replies). */
  error: number;
  /** Reassembled read data (reads only, when error is 0). */
  data?: Uint8Array;
  /** Every structured chunk received for the request, in arrival order (empty for a simple reply). */
  chunks: ReplyChunk[];
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  chunks: ReplyChunk[];
  buf?: Uint8Array;
  covered: number;
  error: number;
  resolve(r: CommandResult): void;
  reject(e: Error): void;
}

export interface ExportInfo {
  size: number;
  transmissionFlags: number;
}

export class TestNbdClient {
  readonly parser: NbdClientParser;
  handshakeFlags = 0;
  noZeroes = false;
  structured = false;
  export: ExportInfo | undefined;
  private readonly queue: ServerMessage[] = [];
  private readonly waiters: Array<{ resolve(m: ServerMessage): void; reject(e: Error): void }> = [];
  private readonly pending = new Map<bigint, Pending>();
  private failure: Error | undefined;
  private cookie = 0x1_0000_0000n; // above 2^32, so a cookie truncated to 32 bits would be caught
  readonly closed: Promise<void>;

  private constructor(
    private readonly sock: net.Socket,
    limits: NbdParserLimits,
  ) {
    this.parser = new NbdClientParser(limits);
    sock.on('data', (chunk: Buffer) => {
      this.parser.push(chunk);
      this.pump();
    });
    sock.on('end', () => {
      try {
        this.parser.end();
        this.fail(new Error('server closed the connection'));
      } catch (e) {
        this.fail(e as Error);
      }
    });
    sock.on('error', (e) => this.fail(e));
    this.closed = new Promise((resolve) => sock.once('close', () => resolve()));
  }

  /** Connects and reads the greeting; answers it with FIXED_NEWSTYLE (and NO_ZEROES when offered and wanted). */
  static async connect(path: string, opts: { noZeroes?: boolean; limits?: NbdParserLimits } = {}): Promise<TestNbdClient> {
    const sock = net.createConnection(path);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const c = new TestNbdClient(sock, opts.limits ?? {});
    const g = await c.nextMessage();
    if (g.kind !== 'greeting') throw new Error(`expected the greeting, got ${g.kind}`);
    c.handshakeFlags = g.handshakeFlags;
    c.noZeroes = (opts.noZeroes ?? true) && (g.handshakeFlags & HandshakeFlag.NO_ZEROES) !== 0;
    sock.write(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | (c.noZeroes ? ClientFlag.NO_ZEROES : 0)));
    return c;
  }

  private pump(): void {
    try {
      for (let m = this.parser.next(); m !== undefined; m = this.parser.next()) this.dispatch(m);
    } catch (e) {
      this.fail(e as Error);
      this.sock.destroy();
    }
  }

  private dispatch(m: ServerMessage): void {
    if (m.kind === 'simple-reply' || m.kind.startsWith('chunk-')) {
      const cookie = (m as { cookie: bigint }).cookie;
      const p = this.pending.get(cookie);
      if (!p) throw new NbdProtocolError('invalid', `reply for unknown cookie ${cookie}`);
      if (m.kind === 'simple-reply') {
        this.pending.delete(cookie);
        p.resolve({ error: m.error, data: m.data, chunks: [] });
        return;
      }
      this.onChunk(cookie, p, m as ReplyChunk);
      return;
    }
    const w = this.waiters.shift();
    if (w) w.resolve(m);
    else this.queue.push(m);
  }

  private onChunk(cookie: bigint, p: Pending, c: ReplyChunk): void {
    p.chunks.push(c);
    const within = (off: number, len: number) => {
      if (off < p.offset || off + len > p.offset + p.length) {
        throw new NbdProtocolError('invalid', `chunk [${off}, ${off + len}) lies outside request [${p.offset}, ${p.offset + p.length})`);
      }
    };
    switch (c.kind) {
      case 'chunk-data':
        within(c.offset, c.data.length);
        p.buf?.set(c.data, c.offset - p.offset);
        p.covered += c.data.length;
        break;
      case 'chunk-hole':
        within(c.offset, c.length);
        p.buf?.fill(0, c.offset - p.offset, c.offset - p.offset + c.length);
        p.covered += c.length;
        break;
      case 'chunk-error':
      case 'chunk-error-offset':
      case 'chunk-unknown-error':
        if (p.error === 0) p.error = c.error;
        break;
      default:
        break;
    }
    if (c.flags & ReplyFlag.DONE) {
      this.pending.delete(cookie);
      if (p.error === 0 && p.type === Cmd.READ && p.covered !== p.length) {
        throw new NbdProtocolError('invalid', `read reply covered ${p.covered} of ${p.length} bytes`);
      }
      p.resolve({ error: p.error, data: p.type === Cmd.READ && p.error === 0 ? p.buf : undefined, chunks: p.chunks });
    }
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const w of this.waiters.splice(0)) w.reject(e);
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** The next handshake-phase message. */
  nextMessage(): Promise<ServerMessage> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Sends an option and collects its replies up to the final ACK or error. */
  async option(o: OptionRequest): Promise<OptionReply[]> {
    this.sock.write(encodeOption(o));
    const replies: OptionReply[] = [];
    for (;;) {
      const m = await this.nextMessage();
      if (!m.kind.startsWith('rep-')) throw new Error(`expected an option reply, got ${m.kind}`);
      replies.push(m as OptionReply);
      if (m.kind === 'rep-ack' || m.kind === 'rep-error') return replies;
    }
  }

  async structuredReplies(): Promise<OptionReply[]> {
    const r = await this.option({ kind: 'structured-reply' });
    this.structured = r[r.length - 1].kind === 'rep-ack';
    return r;
  }

  /** NBD_OPT_GO; on success the connection is in transmission and `export` is set. */
  async go(name = '', infoRequests: number[] = [Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE]): Promise<OptionReply[]> {
    const replies = await this.option({ kind: 'go', name, infoRequests });
    for (const r of replies) if (r.kind === 'rep-info' && r.info.kind === 'export') this.export = r.info;
    return replies;
  }

  /** NBD_OPT_EXPORT_NAME: the old way into transmission, with no error path. */
  async exportName(name = ''): Promise<ExportInfo> {
    this.parser.expectExportNameReply(this.noZeroes);
    this.sock.write(encodeOption({ kind: 'export-name', name }));
    const m = await this.nextMessage();
    if (m.kind !== 'export-name-reply') throw new Error(`expected the export name reply, got ${m.kind}`);
    this.export = { size: m.size, transmissionFlags: m.transmissionFlags };
    return this.export;
  }

  /** Sends a request; resolves with its (possibly multi-chunk) reply. */
  request(type: number, offset: number, length: number, flags = 0, data?: Uint8Array): Promise<CommandResult> {
    if (this.failure) return Promise.reject(this.failure);
    const cookie = this.cookie++;
    const p = new Promise<CommandResult>((resolve, reject) => {
      const buf = type === Cmd.READ ? new Uint8Array(length) : undefined;
      this.pending.set(cookie, { type, offset, length, chunks: [], buf, covered: 0, error: 0, resolve, reject });
    });
    if (type === Cmd.READ && !this.structured) this.parser.expectSimpleReadReply(cookie, length);
    this.sock.write(encodeRequestHeader({ type, flags, cookie, offset, length }));
    if (data) this.sock.write(data);
    return p;
  }

  read(offset: number, length: number, flags = 0): Promise<CommandResult> {
    return this.request(Cmd.READ, offset, length, flags);
  }
  write(offset: number, data: Uint8Array, flags = 0): Promise<CommandResult> {
    return this.request(Cmd.WRITE, offset, data.length, flags, data);
  }
  flush(): Promise<CommandResult> {
    return this.request(Cmd.FLUSH, 0, 0);
  }
  trim(offset: number, length: number, flags = 0): Promise<CommandResult> {
    return this.request(Cmd.TRIM, offset, length, flags);
  }
  writeZeroes(offset: number, length: number, flags = 0): Promise<CommandResult> {
    return this.request(Cmd.WRITE_ZEROES, offset, length, flags);
  }
  cache(offset: number, length: number): Promise<CommandResult> {
    return this.request(Cmd.CACHE, offset, length);
  }
  blockStatus(offset: number, length: number, flags = 0): Promise<CommandResult> {
    return this.request(Cmd.BLOCK_STATUS, offset, length, flags);
  }

  /** NBD_CMD_DISC: no reply; the server closes the connection. */
  async disconnect(): Promise<void> {
    this.sock.write(encodeRequestHeader({ type: Cmd.DISC, flags: 0, cookie: this.cookie++, offset: 0, length: 0 }));
    this.sock.end();
    await this.closed;
  }

  /** NBD_OPT_ABORT: the server acknowledges and the client drops the connection. */
  async abort(): Promise<OptionReply[]> {
    const r = await this.option({ kind: 'abort' });
    this.sock.end();
    await this.closed;
    return r;
  }

  destroy(): void {
    this.sock.destroy();
  }

  get failed(): Error | undefined {
    return this.failure;
  }
}
