/**
 * An NBD server for any BlockDevice (through an IoExecutor), on Unix sockets
 * and TCP loopback ports: the export it offers (size, flags, block sizes),
 * listening, admission, the counters, and closing. Each client is a
 * Connection (connection.ts: the request phase), whose option phase is
 * handshake.ts and whose replies are written into reply-pool.ts's buffers.
 *
 * Admission: at most `maxConnections` connections, handshake and transmission
 * together; one that has not finished its handshake `handshakeTimeoutMs`
 * after it connected is closed (the policy: connection-limiter.ts). Each
 * client socket asks for a 4 MiB send buffer, so a large reply enters the
 * kernel in one write.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { log } from '../util/log.js';
import { blockSizeProblem, TransmissionFlag } from './protocol.js';
import type { IoExecutor } from './executor.js';
import { setSendBuffer } from './sockopt.js';
import { type ConnectionLimits, ConnectionLimiter } from './connection-limiter.js';
import { listenUnixSocket, type SocketAccess } from './unix-socket.js';
import type { BlockStatusProvider } from './block-status.js';
import { Connection } from './connection.js';
import { ReplyPool } from './reply-pool.js';

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
  readonly pool = new ReplyPool();
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
