/**
 * An NBD server for any BlockDevice (through an IoExecutor), on Unix sockets
 * and TCP loopback ports: fixed newstyle handshake (NBD_OPT_GO, INFO, LIST,
 * ABORT, EXPORT_NAME, STRUCTURED_REPLY, LIST_META_CONTEXT, SET_META_CONTEXT),
 * and READ, WRITE (+FUA), FLUSH, TRIM, WRITE_ZEROES, CACHE, BLOCK_STATUS
 * (the contexts a BlockStatusProvider offers) and DISC.
 *
 * Safety:
 * - A WRITE is handed to the device only once its whole payload has arrived
 *   (the stream parser frames it): a client that vanishes in the middle of a
 *   payload has nothing of that write applied. Requests already received
 *   before it vanished are completed; their replies are dropped.
 * - A framing error (bad magic, a payload over the advertised maximum, an
 *   unsupported protocol variant) drops that client only. A well-framed but
 *   invalid request (out of range, misaligned, unknown command or flag) gets
 *   the protocol's error (EINVAL, ENOSPC for writes past the end, EPERM on a
 *   read-only export) and the connection goes on.
 * - Device statuses are mapped through nbdErrorFromStatus; an executor that
 *   throws or rejects fails that request with EIO (EINVAL for a
 *   BlockRequestError), never the server.
 *
 * Admission: at most `maxConnections` connections, handshake and transmission
 * together; one that has not finished its handshake `handshakeTimeoutMs`
 * after it connected is closed (the policy: connection-limiter.ts).
 *
 * Backpressure, per connection: requests are parsed only while fewer than
 * `maxInflight` requests (and `maxInflightBytes` bytes) are being executed
 * and fewer than `maxOutputBacklog` reply bytes wait in the process for the
 * kernel's socket buffer to take them; otherwise the socket is paused, so the
 * kernel's buffers and TCP flow control hold the client back. At most one
 * request beyond what is already buffered is read into memory (a WRITE of at
 * most `maxBlockSize` bytes).
 *
 * Hot path: the replies of the requests that arrived in one socket read are
 * laid out back to back in a slab, read data included (the device reads
 * straight into the reply, no copy), and go out in one socket write. Reads
 * over 128 KiB get a buffer of their own from a pool, reused once the socket
 * has taken it; their data starts on a 64-byte boundary (the kernel copies
 * page-cache data into a buffer misaligned by 16 bytes, where malloc puts
 * Node's, about 5x slower here), unless the executor lends the data where
 * it already is (lendRead: a model file's mapped page cache, an engine's
 * buffer slot): then the socket sends it from there, one copy fewer (server
 * CPU per 1 MiB read 450 -> 290 us here). Each client socket asks for a 4 MiB send buffer, so a large
 * reply enters the kernel in one write. Completions may arrive out of order
 * from an asynchronous executor: each reply carries its request's cookie.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { BlockRequestError, EINVAL, errnoName, type IoStatus, type LentRead, OK, SECTOR_SHIFT } from '../block/device.js';
import { log } from '../util/log.js';
import { libc } from '../sys/libc.js';
import {
  blockSizeProblem,
  CHUNK_HEADER_SIZE,
  Cmd,
  CmdFlag,
  cmdName,
  encodeExportNameReply,
  encodeGreeting,
  encodeOptionReply,
  HandshakeFlag,
  Info,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  NbdError,
  nbdErrorFromStatus,
  nbdErrorName,
  NbdProtocolError,
  NbdServerParser,
  optionCode,
  type OptionReply,
  Rep,
  ReplyFlag,
  ReplyType,
  SERVER_HANDSHAKE_FLAGS,
  SIMPLE_REPLY_HEADER_SIZE,
  TransmissionFlag,
} from './protocol.js';
import type { ClientMessage, NbdRequest } from './messages.js';
import type { IoCompletion, IoExecutor } from './executor.js';
import { setSendBuffer } from './sockopt.js';
import { type ConnectionLimits, ConnectionLimiter, type ConnectionSlot } from './connection-limiter.js';
import { listenUnixSocket, type SocketAccess } from './unix-socket.js';
import { answerBlockStatus, type BlockStatusProvider, type SelectedContext } from './block-status.js';
import { selectMetaContexts } from './meta-context.js';

export interface NbdServerOptions extends ConnectionLimits {
  /** The export's name ('' is the default export a client gets without naming one). Default ''. */
  exportName?: string;
  /** Free text shown by `nbdinfo` and in NBD_OPT_LIST. */
  description?: string;
  /** Largest READ or WRITE accepted, advertised as the maximum block size. Default 32 MiB. */
  maxBlockSize?: number;
  /** Advertised preferred block size. Default max(4096, logical block size). */
  preferredBlockSize?: number;
  /** Requests executing at once per connection before the socket is paused. Default 128. */
  maxInflight?: number;
  /** Bytes of requests executing at once per connection before the socket is paused. Default 64 MiB. */
  maxInflightBytes?: number;
  /** Reply bytes queued in the process (beyond the kernel's socket buffer) before the client's socket is paused. Default 2 MiB. */
  maxOutputBacklog?: number;
  /** SO_SNDBUF asked for each client socket (0: the system default). Default 4 MiB. */
  sendBuffer?: number;
  /** The metadata contexts offered for NBD_CMD_BLOCK_STATUS (none without it). */
  blockStatus?: BlockStatusProvider;
}

export interface NbdServerStats {
  connections: number;
  connectionsTotal: number;
  /** Connections dropped for breaking the protocol. */
  protocolErrors: number;
  /** Connections closed at once because the server was full (maxConnections). */
  refused: number;
  /** Connections closed because they had not finished the handshake in time. */
  handshakeTimeouts: number;
  requests: number;
  readBytes: number;
  /** Reads sent from memory the executor lent (a mapped page cache, an engine slot): no copy into a reply buffer. */
  lentReads: number;
  writtenBytes: number;
  /** Requests answered with an error (refused or failed). */
  errors: number;
}

export interface ListenAddress {
  kind: 'unix' | 'tcp';
  /** The socket path, or host:port. */
  address: string;
  /** An NBD URI for clients (nbdinfo, fio's nbd engine, nbdfuse). */
  uri: string;
}

const MiB = 1024 * 1024;
const SLAB_SIZE = 1 * MiB;
/** Reads up to this size are laid out in the batch slab; larger ones get a buffer of their own. */
const SLAB_READ_MAX = 128 * 1024;
/** Bytes of large read buffers kept for reuse (fresh large buffers cost page faults). */
const POOL_MAX_BYTES = 64 * MiB;
/** Room before a pooled buffer's data for the reply header and the alignment (see PooledBuffer.at). */
const POOL_HEADER_ROOM = 128;
const DATA_ALIGN = 64;

/** Structured OFFSET_DATA chunk header: the chunk header and the 64-bit offset. */
const DATA_CHUNK_HEADER_SIZE = CHUNK_HEADER_SIZE + 8;
const ERROR_CHUNK_FIXED = CHUNK_HEADER_SIZE + 6;

const ALLOWED_FLAGS: Record<number, number> = {
  [Cmd.READ]: 0,
  [Cmd.WRITE]: CmdFlag.FUA,
  [Cmd.FLUSH]: 0,
  [Cmd.TRIM]: CmdFlag.FUA,
  [Cmd.CACHE]: 0,
  [Cmd.WRITE_ZEROES]: CmdFlag.FUA | CmdFlag.NO_HOLE,
  [Cmd.BLOCK_STATUS]: CmdFlag.REQ_ONE,
};

interface PooledBuffer {
  buf: Buffer;
  /** Where the data goes: at least 64 bytes in (room for any reply header), on a 64-byte boundary in memory. */
  at: number;
  /** Data bytes it holds: a power of two (>= 64 KiB). */
  cls: number;
}

/** Large read buffers, reused once the socket has taken their bytes. */
class BufferPool {
  private readonly free = new Map<number, PooledBuffer[]>();
  private bytes = 0;

  /** A buffer for `size` bytes of data. */
  take(size: number): PooledBuffer {
    const cls = sizeClass(size);
    const b = this.free.get(cls)?.pop();
    if (b) {
      this.bytes -= cls;
      return b;
    }
    const buf = Buffer.allocUnsafeSlow(cls + POOL_HEADER_ROOM);
    const misalign = (libc().addressOf(buf) + DATA_ALIGN) % DATA_ALIGN;
    return { buf, at: DATA_ALIGN + (misalign === 0 ? 0 : DATA_ALIGN - misalign), cls };
  }

  give(b: PooledBuffer): void {
    if (this.bytes + b.cls > POOL_MAX_BYTES) return;
    let list = this.free.get(b.cls);
    if (!list) {
      list = [];
      this.free.set(b.cls, list);
    }
    list.push(b);
    this.bytes += b.cls;
  }
}

function sizeClass(n: number): number {
  let c = 64 * 1024;
  while (c < n) c *= 2;
  return c;
}

export class NbdServer {
  readonly exportName: string;
  readonly description: string;
  readonly size: number;
  readonly transmissionFlags: number;
  readonly minBlockSize: number;
  readonly preferredBlockSize: number;
  readonly maxBlockSize: number;
  readonly limits: { maxInflight: number; maxInflightBytes: number; maxOutputBacklog: number };
  readonly sendBuffer: number;
  readonly blockStatus: BlockStatusProvider | undefined;
  readonly stats: NbdServerStats = {
    connections: 0,
    connectionsTotal: 0,
    protocolErrors: 0,
    refused: 0,
    handshakeTimeouts: 0,
    requests: 0,
    readBytes: 0,
    lentReads: 0,
    writtenBytes: 0,
    errors: 0,
  };
  readonly limiter: ConnectionLimiter;
  readonly pool = new BufferPool();
  private readonly servers: net.Server[] = [];
  private readonly unixPaths: string[] = [];
  private readonly conns = new Set<Connection>();
  private closing = false;

  constructor(
    readonly executor: IoExecutor,
    opts: NbdServerOptions = {},
  ) {
    this.exportName = opts.exportName ?? '';
    this.description = opts.description ?? executor.name;
    this.size = executor.sectors * 512;
    this.minBlockSize = executor.logicalBlockSize;
    this.maxBlockSize = intOption('maxBlockSize', opts.maxBlockSize, 32 * MiB, this.minBlockSize, 0x7fffffff);
    this.preferredBlockSize = intOption('preferredBlockSize', opts.preferredBlockSize, Math.max(4096, this.minBlockSize), 512, 0x7fffffff);
    const problem = blockSizeProblem(this.minBlockSize, this.preferredBlockSize, this.maxBlockSize, this.size);
    if (problem) throw new RangeError(problem);
    this.limits = {
      maxInflight: intOption('maxInflight', opts.maxInflight, 128, 1, 65536),
      maxInflightBytes: intOption('maxInflightBytes', opts.maxInflightBytes, 64 * MiB, 1, Number.MAX_SAFE_INTEGER),
      maxOutputBacklog: intOption('maxOutputBacklog', opts.maxOutputBacklog, 2 * MiB, 1, Number.MAX_SAFE_INTEGER),
    };
    this.limiter = new ConnectionLimiter(opts, this.stats);
    this.sendBuffer = intOption('sendBuffer', opts.sendBuffer, 4 * MiB, 0, 0x7fffffff);
    this.blockStatus = opts.blockStatus;
    const f = executor.features;
    let flags = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_CACHE;
    if (f.readOnly) flags |= TransmissionFlag.READ_ONLY;
    else flags |= TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_WRITE_ZEROES | (f.trim ? TransmissionFlag.SEND_TRIM : 0);
    if (f.multiConn) flags |= TransmissionFlag.CAN_MULTI_CONN;
    this.transmissionFlags = flags;
  }

  /**
   * Listens on a Unix socket, created 0600 unless `access` says otherwise
   * (unix-socket.ts). A stale socket file (nobody listening) is replaced; a
   * live one, a path too long for sun_path or a missing directory is an error.
   */
  async listenUnix(path: string, access?: SocketAccess): Promise<ListenAddress> {
    const srv = this.makeServer();
    await listenUnixSocket(srv, path, access);
    this.unixPaths.push(path);
    return { kind: 'unix', address: path, uri: `nbd+unix:///${encodeURIComponent(this.exportName)}?socket=${path}` };
  }

  /** Listens on a TCP port (default host 127.0.0.1; port 0 picks a free one). */
  async listenTcp(port: number, host = '127.0.0.1'): Promise<ListenAddress> {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be an integer in [0, 65535], got ${port}`);
    const srv = this.makeServer();
    await listen(srv, { port, host });
    const a = srv.address() as net.AddressInfo;
    const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return { kind: 'tcp', address: `${h}:${a.port}`, uri: `nbd://${h}:${a.port}/${encodeURIComponent(this.exportName)}` };
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /**
   * Stops accepting, lets every connection finish the requests it has
   * received and send their replies, then closes it; connections still open
   * after `graceMs` are destroyed. Removes the Unix socket files.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    const closed = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    const conns = [...this.conns];
    for (const c of conns) c.shutdown();
    const all = Promise.all(conns.map((c) => c.closed));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    for (const c of this.conns) c.destroy();
    await Promise.all([...closed, all]);
    for (const p of this.unixPaths) fs.rmSync(p, { force: true });
    this.unixPaths.length = 0;
  }

  private makeServer(): net.Server {
    const srv = net.createServer({ noDelay: true, allowHalfOpen: true }, (sock) => this.accept(sock));
    srv.on('error', (err) => log.error({ err }, 'nbd listener error'));
    this.servers.push(srv);
    return srv;
  }

  private accept(sock: net.Socket): void {
    if (this.closing) {
      sock.destroy();
      return;
    }
    const slot = this.limiter.admit(() => sock.destroy());
    if (!slot) {
      sock.destroy();
      return;
    }
    if (this.sendBuffer > 0) setSendBuffer(sock, this.sendBuffer);
    const c = new Connection(this, sock, slot);
    this.conns.add(c);
    this.stats.connections = this.conns.size;
    this.stats.connectionsTotal++;
    void c.closed.then(() => {
      slot.release();
      this.conns.delete(c);
      this.stats.connections = this.conns.size;
    });
  }
}

function intOption(field: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${field} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

function listen(srv: net.Server, opts: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    srv.once('error', onError);
    srv.listen(opts, () => {
      srv.off('error', onError);
      resolve();
    });
  });
}

/** One client. */
class Connection {
  readonly closed: Promise<void>;
  private readonly parser: NbdServerParser;
  private readonly ex: IoExecutor;
  private readonly size: number;
  private readonly minMask: number;
  private structured = false;
  private noZeroes = false;
  /** Metadata contexts selected by the last NBD_OPT_SET_META_CONTEXT. */
  private contexts: SelectedContext[] = [];
  private inflight = 0;
  private inflightBytes = 0;
  /** DISC, ABORT, or the server closing: no more requests are taken; the socket ends once in-flight ones are answered. */
  private ending = false;
  private dead = false;
  /** Reads whose data the socket is sending from the executor's memory. */
  private readonly lent = new Set<LentRead>();
  private paused = false;
  private pumping = false;
  private flushQueued = false;
  // The reply slab: [batchStart, pos) holds replies not yet handed to the socket.
  private slab = Buffer.alloc(0); // allocated by the first reply that needs it
  private pos = 0;
  private batchStart = 0;

  constructor(
    private readonly srv: NbdServer,
    private readonly sock: net.Socket,
    private readonly slot: ConnectionSlot,
  ) {
    this.ex = srv.executor;
    this.size = srv.size;
    this.minMask = srv.minBlockSize - 1;
    this.parser = new NbdServerParser({ maxPayload: srv.maxBlockSize, handshakeFlags: SERVER_HANDSHAKE_FLAGS });
    this.closed = new Promise((resolve) => sock.once('close', () => resolve()));
    sock.on('close', () => {
      this.dead = true;
      // the socket is gone, its writes finished or cancelled: nothing reads lent memory any more
      for (const r of this.lent) r.release();
      this.lent.clear();
    });
    sock.on('error', (err) => {
      log.debug({ err }, 'nbd client socket error');
      this.dead = true;
      sock.destroy();
    });
    sock.on('end', () => this.onEnd());
    sock.on('drain', () => this.pump());
    sock.on('data', (chunk: Buffer) => {
      if (this.ending || this.dead) return; // after DISC, ABORT or shutdown nothing more is parsed: drop, do not buffer
      this.parser.push(chunk);
      this.pump();
    });
    sock.write(encodeGreeting(SERVER_HANDSHAKE_FLAGS));
  }

  /** The server is closing: take no more requests; end once the ones received are answered. */
  shutdown(): void {
    this.ending = true;
    this.maybeEnd();
  }

  destroy(): void {
    this.dead = true;
    this.sock.uncork(); // pump's cork: what was answered goes out before the socket is cut
    this.sock.destroy();
  }

  private onEnd(): void {
    // The client will send nothing more. Whatever is buffered and complete is still
    // executed (it was sent); a partial message at the end is dropped.
    this.pump();
    try {
      this.parser.end();
    } catch (err) {
      if (!(err instanceof NbdProtocolError)) throw err;
      log.debug(`nbd client left inside a message: ${err.message}`);
    }
    this.ending = true;
    this.maybeEnd();
  }

  private blocked(): boolean {
    return (
      this.inflight >= this.srv.limits.maxInflight ||
      this.inflightBytes >= this.srv.limits.maxInflightBytes ||
      this.sock.writableLength >= this.srv.limits.maxOutputBacklog
    );
  }

  private pump(): void {
    if (this.pumping || this.dead) return;
    this.pumping = true;
    this.sock.cork(); // replies sent from lent memory during this pass join the slab's in one writev
    try {
      while (!this.ending && !this.dead && !this.blocked()) {
        let m: ClientMessage | undefined;
        try {
          m = this.parser.next();
        } catch (err) {
          if (!(err instanceof NbdProtocolError)) throw err;
          this.protocolError(err);
          return;
        }
        if (m === undefined) break;
        if (m.kind === 'request') this.request(m);
        else this.handshake(m);
      }
    } finally {
      this.pumping = false;
      this.flushBatch();
      this.sock.uncork();
    }
    if (this.dead) return;
    const block = this.blocked() && !this.ending;
    if (block && !this.paused) {
      this.paused = true;
      this.sock.pause();
    } else if (!block && this.paused) {
      this.paused = false;
      this.sock.resume();
    }
    this.maybeEnd();
  }

  private protocolError(err: NbdProtocolError): void {
    this.srv.stats.protocolErrors++;
    log.info(`nbd client dropped: ${err.message}`);
    this.flushBatch();
    this.destroy();
  }

  private maybeEnd(): void {
    if (!this.ending || this.inflight > 0 || this.dead) return;
    this.flushBatch();
    this.dead = true;
    this.sock.end();
    // a client that does not close its side in time is cut off
    this.sock.setTimeout(5000, () => this.sock.destroy());
  }

  // ---------------------------------------------------------------- handshake

  private reply(r: OptionReply): void {
    if (this.sock.writable) this.sock.write(encodeOptionReply(r));
  }

  private handshake(m: Exclude<ClientMessage, NbdRequest>): void {
    const srv = this.srv;
    switch (m.kind) {
      case 'client-flags':
        this.noZeroes = (m.flags & HandshakeFlag.NO_ZEROES) !== 0;
        return;
      case 'export-name':
        if (m.name !== srv.exportName) {
          // The protocol has no way to refuse NBD_OPT_EXPORT_NAME but to hang up.
          log.info(`nbd client asked for unknown export '${m.name}'; closing`);
          this.destroy();
          return;
        }
        this.sock.write(encodeExportNameReply({ size: srv.size, transmissionFlags: srv.transmissionFlags }, this.noZeroes));
        this.slot.transmitting();
        return;
      case 'info':
      case 'go': {
        const option = optionCode(m);
        if (m.name !== srv.exportName) {
          this.reply({ kind: 'rep-error', option, reply: Rep.ERR_UNKNOWN, message: `no export named '${m.name}' (this server exports '${srv.exportName}')` });
          if (m.kind === 'go') this.parser.goRefused();
          return;
        }
        this.reply({ kind: 'rep-info', option, info: { kind: 'export', size: srv.size, transmissionFlags: srv.transmissionFlags } });
        if (m.infoRequests.includes(Info.NAME)) this.reply({ kind: 'rep-info', option, info: { kind: 'name', name: srv.exportName } });
        if (m.infoRequests.includes(Info.DESCRIPTION) && srv.description) {
          this.reply({ kind: 'rep-info', option, info: { kind: 'description', description: srv.description } });
        }
        // Sent whether asked or not: clients must learn the minimum (the logical block size).
        this.reply({
          kind: 'rep-info',
          option,
          info: { kind: 'block-size', minimum: srv.minBlockSize, preferred: srv.preferredBlockSize, maximum: srv.maxBlockSize },
        });
        this.reply({ kind: 'rep-ack', option });
        if (m.kind === 'go') {
          this.parser.goAccepted();
          this.slot.transmitting();
        }
        return;
      }
      case 'list':
        this.reply({ kind: 'rep-server', option: optionCode(m), name: srv.exportName, description: srv.description });
        this.reply({ kind: 'rep-ack', option: optionCode(m) });
        return;
      case 'abort':
        this.reply({ kind: 'rep-ack', option: optionCode(m) });
        this.ending = true;
        return;
      case 'structured-reply':
        this.structured = true;
        this.reply({ kind: 'rep-ack', option: optionCode(m) });
        return;
      case 'list-meta-context':
      case 'set-meta-context':
        this.metaContext(m.kind === 'set-meta-context' ? 'set' : 'list', optionCode(m), m.name, m.queries);
        return;
      case 'starttls':
        this.reply({ kind: 'rep-error', option: optionCode(m), reply: Rep.ERR_UNSUP, message: 'TLS is not supported' });
        return;
      case 'extended-headers':
      case 'unknown-option':
        this.reply({ kind: 'rep-error', option: optionCode(m), reply: Rep.ERR_UNSUP, message: 'option not supported' });
        return;
      case 'invalid-option':
        if (this.parser.phase === 'closed') {
          this.destroy();
          return;
        }
        this.reply({ kind: 'rep-error', option: m.option, reply: Rep.ERR_INVALID, message: m.error.message.slice(0, 1024) });
        return;
    }
  }

  /** NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT; a SET replaces the selection, also when it fails. */
  private metaContext(kind: 'list' | 'set', option: number, name: string, queries: string[]): void {
    if (kind === 'set') this.contexts = [];
    if (!this.structured) {
      this.reply({ kind: 'rep-error', option, reply: Rep.ERR_INVALID, message: 'negotiate structured replies first' });
      return;
    }
    if (name !== this.srv.exportName) {
      this.reply({ kind: 'rep-error', option, reply: Rep.ERR_UNKNOWN, message: `no export named '${name}' (this server exports '${this.srv.exportName}')` });
      return;
    }
    const sources = this.srv.blockStatus?.contexts ?? [];
    const names = sources.map((c) => c.name);
    const sel = selectMetaContexts(kind, queries, names);
    if (!sel.ok) {
      this.reply({ kind: 'rep-error', option, reply: sel.reply, message: sel.message });
      return;
    }
    const chosen: SelectedContext[] = sel.names.map((n) => ({ id: names.indexOf(n) + 1, source: sources[names.indexOf(n)] }));
    for (const c of chosen) this.reply({ kind: 'rep-meta-context', option, contextId: kind === 'set' ? c.id : 0, name: c.source.name });
    this.reply({ kind: 'rep-ack', option });
    if (kind === 'set') this.contexts = chosen;
  }

  // ---------------------------------------------------------------- transmission

  private request(r: NbdRequest): void {
    const stats = this.srv.stats;
    stats.requests++;
    const { type, offset, length, cookie } = r;
    if (type === Cmd.DISC) {
      this.ending = true;
      return;
    }
    const problem = this.check(r);
    if (problem !== 0) {
      stats.errors++;
      const why = type === Cmd.BLOCK_STATUS && this.contexts.length === 0 ? ' (no metadata context was selected with NBD_OPT_SET_META_CONTEXT)' : '';
      this.errorReply(cookie, problem, type === Cmd.READ || type === Cmd.BLOCK_STATUS, `${cmdName(type)} refused: ${nbdErrorName(problem)}${why}`);
      return;
    }
    const sector = offset / 512;
    switch (type) {
      case Cmd.READ:
        this.read(cookie, offset, sector, length);
        return;
      case Cmd.WRITE:
        stats.writtenBytes += length;
        this.track(
          cookie,
          type,
          r.flags,
          length,
          this.call(() => this.ex.write(sector, r.data!, (r.flags & CmdFlag.FUA) !== 0)),
        );
        return;
      case Cmd.WRITE_ZEROES:
        this.track(
          cookie,
          type,
          r.flags,
          0,
          this.call(() => this.ex.writeZeroes(sector, length >>> SECTOR_SHIFT, (r.flags & CmdFlag.FUA) !== 0)),
        );
        return;
      case Cmd.TRIM:
        this.track(
          cookie,
          type,
          r.flags,
          0,
          this.call(() => this.trim(sector, length >>> SECTOR_SHIFT, (r.flags & CmdFlag.FUA) !== 0)),
        );
        return;
      case Cmd.FLUSH:
        this.track(
          cookie,
          type,
          r.flags,
          0,
          this.call(() => this.ex.flush()),
        );
        return;
      case Cmd.CACHE:
        this.simpleReply(cookie, 0);
        return;
      case Cmd.BLOCK_STATUS:
        this.blockStatusReply(cookie, offset, length, r.flags);
        return;
    }
  }

  /** Computed on this thread, in arrival order with the other replies of the batch. */
  private blockStatusReply(cookie: bigint, offset: number, length: number, flags: number): void {
    const a = answerBlockStatus(this.contexts, cookie, offset, length, flags);
    if (!a.ok) {
      this.srv.stats.errors++;
      log.warn(a.message);
      this.errorReply(cookie, a.error, true, a.message);
      return;
    }
    if (this.dead) return;
    const at = this.reserve(a.reply.length);
    a.reply.copy(this.slab, at);
  }

  /** 0, or the NBD error a request gets before it reaches the device. */
  private check(r: NbdRequest): number {
    const { type, flags, offset, length } = r;
    const allowed = ALLOWED_FLAGS[type];
    if (allowed === undefined || (flags & ~allowed) !== 0) return NbdError.EINVAL;
    if (type === Cmd.BLOCK_STATUS && (!this.structured || this.contexts.length === 0)) return NbdError.EINVAL;
    const ro = this.srv.executor.features.readOnly;
    const modifies = type === Cmd.WRITE || type === Cmd.WRITE_ZEROES || type === Cmd.TRIM;
    if (modifies && ro) return NbdError.EPERM;
    if (type === Cmd.TRIM && !this.ex.features.trim) return NbdError.EINVAL;
    if (type === Cmd.FLUSH) return offset === 0 && length === 0 ? 0 : NbdError.EINVAL;
    if (length === 0) return NbdError.EINVAL;
    if (offset + length > this.size) return type === Cmd.WRITE || type === Cmd.WRITE_ZEROES ? NbdError.ENOSPC : NbdError.EINVAL;
    // offset < 2^53 here (it is below the export size), so the bit test is exact on its low 32 bits
    if (((offset % 0x100000000) & this.minMask) !== 0 || (length & this.minMask) !== 0) return NbdError.EINVAL;
    if ((type === Cmd.READ || type === Cmd.WRITE) && length > this.srv.maxBlockSize) return NbdError.EINVAL;
    return 0;
  }

  private trim(sector: number, count: number, fua: boolean): IoCompletion {
    const c = this.ex.discard(sector, count);
    if (!fua) return c;
    if (typeof c === 'number') return c === OK ? this.ex.flush() : c;
    return c.then((s) => (s === OK ? this.ex.flush() : s));
  }

  /** Runs an executor call; a throw becomes a status. */
  private call(fn: () => IoCompletion): IoCompletion {
    try {
      return fn();
    } catch (err) {
      return statusOfThrown(err);
    }
  }

  /** Counts a request as in flight until its completion settles, then calls `fn` with its status (a throw becomes an errno). */
  private settle(c: Promise<IoStatus>, bytes: number, fn: (s: IoStatus) => void): void {
    this.inflight++;
    this.inflightBytes += bytes;
    c.then(
      (s) => s,
      (err: unknown) => statusOfThrown(err),
    ).then((s) => {
      this.asyncBatch();
      this.inflight--;
      this.inflightBytes -= bytes;
      fn(s);
    });
  }

  /** Replies to a request that carries no data back, now or when its promise settles. */
  private track(cookie: bigint, type: number, flags: number, bytes: number, c: IoCompletion): void {
    if (typeof c === 'number') {
      this.finishSimple(cookie, type, flags, c);
      return;
    }
    this.settle(c, bytes, (s) => this.finishSimple(cookie, type, flags, s));
  }

  private finishSimple(cookie: bigint, type: number, flags: number, status: IoStatus): void {
    const err = nbdErrorFromStatus(status, flags);
    if (err !== 0) {
      this.srv.stats.errors++;
      log.debug(`${cmdName(type)} failed: ${errnoName(status)}`);
    }
    this.simpleReply(cookie, err);
  }

  /**
   * Called first by every asynchronous completion: replies sent until the
   * microtask queue drains are corked into one socket write, and then more
   * requests are taken if the limits were the brake.
   */
  private asyncBatch(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    this.sock.cork();
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flushBatch();
      this.sock.uncork();
      if (this.paused || this.parser.buffered > 0) this.pump();
      else this.maybeEnd();
    });
  }

  private read(cookie: bigint, offset: number, sector: number, length: number): void {
    this.srv.stats.readBytes += length;
    const hdr = this.structured ? DATA_CHUNK_HEADER_SIZE : SIMPLE_REPLY_HEADER_SIZE;
    const total = hdr + length;
    const ex = this.ex;
    const lend =
      ex.lendRead !== undefined && length <= (ex.maxLentBytes ?? 0) && (ex.minLentBytes === undefined ? total > SLAB_READ_MAX : length >= ex.minLentBytes);
    if (lend && this.readLent(cookie, offset, sector, length, hdr)) return;
    if (total > SLAB_READ_MAX) {
      this.readLarge(cookie, offset, sector, length, hdr);
      return;
    }
    const start = this.reserve(total);
    const slab = this.slab;
    const c = this.call(() => this.ex.read(sector, slab.subarray(start + hdr, start + total)));
    if (typeof c === 'number') {
      if (c === OK) {
        this.readHeader(slab, start, cookie, offset, length);
      } else {
        this.pos = start; // nothing after the reservation yet: give it back
        this.readFailed(cookie, offset, length, c);
      }
      return;
    }
    // Completes later: the reservation leaves the batch and goes out on its own.
    this.detach(start);
    this.settle(c, length, (s) => {
      if (s === OK) {
        this.readHeader(slab, start, cookie, offset, length);
        this.flushBatch(); // replies already in the slab go first, then this one from its reservation
        this.send(slab.subarray(start, start + total));
      } else {
        this.readFailed(cookie, offset, length, s);
      }
    });
  }

  /**
   * A large read sent from the executor's memory (the header goes out with
   * the batch, the data after it); false when the executor cannot lend it.
   */
  private readLent(cookie: bigint, offset: number, sector: number, length: number, hdr: number): boolean {
    let c: LentRead | Promise<LentRead> | undefined;
    try {
      c = this.ex.lendRead!(sector, length);
    } catch (err) {
      this.readFailed(cookie, offset, length, statusOfThrown(err));
      return true;
    }
    if (c === undefined) return false;
    if (!(c instanceof Promise)) {
      this.sendLent(c, cookie, offset, length, hdr);
      return true;
    }
    let lent: LentRead | undefined;
    const status = c.then((r) => {
      lent = r;
      return r.status;
    });
    this.settle(status, length, (s) => {
      if (lent) this.sendLent(lent, cookie, offset, length, hdr);
      else this.readFailed(cookie, offset, length, s);
    });
    return true;
  }

  private sendLent(r: LentRead, cookie: bigint, offset: number, length: number, hdr: number): void {
    if (r.status !== OK) {
      r.release();
      this.readFailed(cookie, offset, length, r.status);
      return;
    }
    if (this.dead || !this.sock.writable) {
      r.release();
      return;
    }
    const at = this.reserve(hdr);
    this.readHeader(this.slab, at, cookie, offset, length);
    this.sock.cork(); // earlier replies, this header and the data: one writev
    this.flushBatch();
    this.srv.stats.lentReads++;
    this.lent.add(r);
    this.sock.write(r.data, () => {
      this.lent.delete(r);
      r.release();
    });
    this.sock.uncork();
  }

  private readLarge(cookie: bigint, offset: number, sector: number, length: number, hdr: number): void {
    const pooled = this.srv.pool.take(length);
    const { buf, at } = pooled;
    const done = (s: IoStatus): void => {
      if (s === OK && !this.dead && this.sock.writable) {
        this.readHeader(buf, at - hdr, cookie, offset, length);
        this.flushBatch(); // keep the socket's byte order simple: earlier replies first
        this.sock.write(buf.subarray(at - hdr, at + length), () => this.srv.pool.give(pooled));
      } else {
        this.srv.pool.give(pooled);
        if (s !== OK) this.readFailed(cookie, offset, length, s);
      }
    };
    const c = this.call(() => this.ex.read(sector, buf.subarray(at, at + length)));
    if (typeof c === 'number') {
      done(c);
      return;
    }
    this.settle(c, length, done);
  }

  private readHeader(b: Buffer, at: number, cookie: bigint, offset: number, length: number): void {
    if (this.structured) {
      b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, at);
      b.writeUInt16BE(ReplyFlag.DONE, at + 4);
      b.writeUInt16BE(ReplyType.OFFSET_DATA, at + 6);
      b.writeBigUInt64BE(cookie, at + 8);
      b.writeUInt32BE(length + 8, at + 16);
      b.writeUInt32BE(Math.floor(offset / 0x100000000), at + 20);
      b.writeUInt32BE(offset >>> 0, at + 24);
    } else {
      b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, at);
      b.writeUInt32BE(0, at + 4);
      b.writeBigUInt64BE(cookie, at + 8);
    }
  }

  private readFailed(cookie: bigint, offset: number, length: number, status: IoStatus): void {
    this.srv.stats.errors++;
    const err = nbdErrorFromStatus(status);
    this.errorReply(cookie, err, true, `read of ${length} bytes at offset ${offset} failed: ${errnoName(status)}`);
  }

  private simpleReply(cookie: bigint, error: number): void {
    if (this.dead) return;
    const at = this.reserve(SIMPLE_REPLY_HEADER_SIZE);
    const b = this.slab;
    b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, at);
    b.writeUInt32BE(error, at + 4);
    b.writeBigUInt64BE(cookie, at + 8);
  }

  /** An error reply; for a read under structured replies, an NBD_REPLY_TYPE_ERROR chunk carrying `message`. */
  private errorReply(cookie: bigint, error: number, isRead: boolean, message: string): void {
    if (this.dead) return;
    if (!(isRead && this.structured)) {
      this.simpleReply(cookie, error);
      return;
    }
    const msg = Buffer.from(message.slice(0, 512), 'utf8');
    const at = this.reserve(ERROR_CHUNK_FIXED + msg.length);
    const b = this.slab;
    b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, at);
    b.writeUInt16BE(ReplyFlag.DONE, at + 4);
    b.writeUInt16BE(ReplyType.ERROR, at + 6);
    b.writeBigUInt64BE(cookie, at + 8);
    b.writeUInt32BE(6 + msg.length, at + 16);
    b.writeUInt32BE(error, at + 20);
    b.writeUInt16BE(msg.length, at + 24);
    msg.copy(b, at + 26);
  }

  // ---------------------------------------------------------------- the reply slab

  /** Room for `n` bytes at the end of the batch; returns its offset in this.slab. */
  private reserve(n: number): number {
    if (this.pos + n > this.slab.length) {
      this.flushBatch();
      // The old slab stays alive as long as the socket holds views of it.
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n));
      this.pos = 0;
      this.batchStart = 0;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** Sends the batch before `start` now; the bytes from `start` to pos are owned by a pending request. */
  private detach(start: number): void {
    if (start > this.batchStart) this.send(this.slab.subarray(this.batchStart, start));
    this.batchStart = this.pos;
  }

  private flushBatch(): void {
    if (this.pos > this.batchStart) {
      this.send(this.slab.subarray(this.batchStart, this.pos));
      this.batchStart = this.pos;
    }
  }

  private send(b: Buffer): void {
    if (this.dead || !this.sock.writable) return;
    this.sock.write(b);
  }
}

function statusOfThrown(err: unknown): IoStatus {
  if (err instanceof BlockRequestError) return EINVAL;
  log.error({ err }, 'nbd executor threw; the request fails with EIO');
  return 5;
}
