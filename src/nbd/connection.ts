/**
 * One client connection of an NbdServer: reading and framing its stream,
 * handing the option phase to handshake.ts, then the request phase: READ,
 * WRITE (+FUA), FLUSH, TRIM, WRITE_ZEROES, CACHE, BLOCK_STATUS (the contexts
 * a BlockStatusProvider offers) and DISC, run on the executor and answered.
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
 * Backpressure: requests are parsed only while fewer than `maxInflight`
 * requests (and `maxInflightBytes` bytes) are being executed and fewer than
 * `maxOutputBacklog` reply bytes wait in the process for the kernel's socket
 * buffer to take them; otherwise the socket is paused, so the kernel's
 * buffers and TCP flow control hold the client back. At most one request
 * beyond what is already buffered is read into memory (a WRITE of at most
 * `maxBlockSize` bytes).
 *
 * Hot path: replies go into the connection's slab and large reads into
 * pooled buffers (reply-pool.ts), unless the executor lends the data where
 * it already is (lendRead: a model file's mapped page cache, an engine's
 * buffer slot): then the socket sends it from there, one copy fewer (server
 * CPU per 1 MiB read 450 -> 290 us here). Completions may arrive out of order
 * from an asynchronous executor: each reply carries its request's cookie.
 */
import type * as net from 'node:net';
import { BlockRequestError, EINVAL, EIO, errnoName, type IoStatus, type LentRead, OK, SECTOR_SHIFT } from '../block/device.js';
import { log } from '../util/log.js';
import {
  CHUNK_HEADER_SIZE,
  Cmd,
  CmdFlag,
  cmdName,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  NbdError,
  nbdErrorFromStatus,
  nbdErrorName,
  NbdProtocolError,
  NbdServerParser,
  ReplyFlag,
  ReplyType,
  SERVER_HANDSHAKE_FLAGS,
  SIMPLE_REPLY_HEADER_SIZE,
} from './protocol.js';
import type { ClientMessage, NbdRequest } from './messages.js';
import type { IoCompletion, IoExecutor } from './executor.js';
import type { ConnectionSlot } from './connection-limiter.js';
import { answerBlockStatus, type SelectedContext } from './block-status.js';
import { Handshake, type HandshakeMessage } from './handshake.js';
import { ReplySlab } from './reply-pool.js';
import type { NbdServer } from './server.js';

/** Reads up to this size are laid out in the batch slab; larger ones get a buffer of their own. */
const SLAB_READ_MAX = 128 * 1024;

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

/** One client. */
export class Connection {
  readonly closed: Promise<void>;
  private readonly parser: NbdServerParser;
  private readonly handshake: Handshake;
  private readonly ex: IoExecutor;
  private readonly size: number;
  private readonly minMask: number;
  /** What the handshake settled, fixed once transmission starts. */
  private structured = false;
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
  private readonly replies: ReplySlab;

  constructor(
    private readonly srv: NbdServer,
    private readonly sock: net.Socket,
    private readonly slot: ConnectionSlot,
  ) {
    this.ex = srv.executor;
    this.size = srv.size;
    this.minMask = srv.minBlockSize - 1;
    this.parser = new NbdServerParser({ maxPayload: srv.maxBlockSize, handshakeFlags: SERVER_HANDSHAKE_FLAGS });
    this.handshake = new Handshake(srv, sock, this.parser);
    this.replies = new ReplySlab((b) => this.send(b));
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
    this.handshake.greet();
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
        else this.negotiate(m);
      }
    } finally {
      this.pumping = false;
      this.replies.flush();
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
    this.replies.flush();
    this.destroy();
  }

  private maybeEnd(): void {
    if (!this.ending || this.inflight > 0 || this.dead) return;
    this.replies.flush();
    this.dead = true;
    this.sock.end();
    // a client that does not close its side in time is cut off
    this.sock.setTimeout(5000, () => this.sock.destroy());
  }

  private negotiate(m: HandshakeMessage): void {
    switch (this.handshake.message(m)) {
      case 'transmission':
        this.structured = this.handshake.structured;
        this.contexts = this.handshake.contexts;
        this.slot.transmitting();
        return;
      case 'abort':
        this.ending = true;
        return;
      case 'hang-up':
        this.destroy();
        return;
    }
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
    const at = this.replies.reserve(a.reply.length);
    a.reply.copy(this.replies.buf, at);
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
      this.replies.flush();
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
    const start = this.replies.reserve(total);
    const slab = this.replies.buf;
    const c = this.call(() => this.ex.read(sector, slab.subarray(start + hdr, start + total)));
    if (typeof c === 'number') {
      if (c === OK) {
        this.readHeader(slab, start, cookie, offset, length);
      } else {
        this.replies.unreserve(start); // nothing after the reservation yet: give it back
        this.readFailed(cookie, offset, length, c);
      }
      return;
    }
    // Completes later: the reservation leaves the batch and goes out on its own.
    this.replies.detach(start);
    this.settle(c, length, (s) => {
      if (s === OK) {
        this.readHeader(slab, start, cookie, offset, length);
        this.replies.flush(); // replies already in the slab go first, then this one from its reservation
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
    const at = this.replies.reserve(hdr);
    this.readHeader(this.replies.buf, at, cookie, offset, length);
    this.sock.cork(); // earlier replies, this header and the data: one writev
    this.replies.flush();
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
        this.replies.flush(); // keep the socket's byte order simple: earlier replies first
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
    const at = this.replies.reserve(SIMPLE_REPLY_HEADER_SIZE);
    const b = this.replies.buf;
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
    const at = this.replies.reserve(ERROR_CHUNK_FIXED + msg.length);
    const b = this.replies.buf;
    b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, at);
    b.writeUInt16BE(ReplyFlag.DONE, at + 4);
    b.writeUInt16BE(ReplyType.ERROR, at + 6);
    b.writeBigUInt64BE(cookie, at + 8);
    b.writeUInt32BE(6 + msg.length, at + 16);
    b.writeUInt32BE(error, at + 20);
    b.writeUInt16BE(msg.length, at + 24);
    msg.copy(b, at + 26);
  }

  private send(b: Buffer): void {
    if (this.dead || !this.sock.writable) return;
    this.sock.write(b);
  }
}

function statusOfThrown(err: unknown): IoStatus {
  if (err instanceof BlockRequestError) return EINVAL;
  log.error({ err }, 'nbd executor threw; the request fails with EIO');
  return EIO;
}
