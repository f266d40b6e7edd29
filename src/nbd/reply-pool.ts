/**
 * Where a connection's replies are written before the socket takes them.
 *
 * The replies of the requests that arrived in one socket read are laid out
 * back to back in a slab (ReplySlab, one per connection), read data included
 * (the device reads straight into the reply, no copy), and go out in one
 * socket write. Reads over 128 KiB get a buffer of their own from a pool
 * (ReplyPool, one per server), reused once the socket has taken it; their
 * data starts on a 64-byte boundary (the kernel copies page-cache data into a
 * buffer misaligned by 16 bytes, where malloc puts Node's, about 5x slower
 * here).
 */
import { libc } from '../sys/libc.js';

const MiB = 1024 * 1024;
const SLAB_SIZE = 1 * MiB;
/** Bytes of large read buffers kept for reuse (fresh large buffers cost page faults). */
const POOL_MAX_BYTES = 64 * MiB;
/** Room before a pooled buffer's data for the reply header and the alignment (see PooledBuffer.at). */
const POOL_HEADER_ROOM = 128;
const DATA_ALIGN = 64;

export interface PooledBuffer {
  buf: Buffer;
  /** Where the data goes: at least 64 bytes in (room for any reply header), on a 64-byte boundary in memory. */
  at: number;
  /** Data bytes it holds: a power of two (>= 64 KiB). */
  cls: number;
}

/** Large read buffers, reused once the socket has taken their bytes. */
export class ReplyPool {
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

/** A connection's reply slab: [batchStart, pos) holds replies not yet handed to the socket. */
export class ReplySlab {
  /** The slab the offsets reserve() returns point into. */
  buf = Buffer.alloc(0); // allocated by the first reply that needs it
  private pos = 0;
  private batchStart = 0;

  constructor(private readonly send: (b: Buffer) => void) {}

  /** Room for `n` bytes at the end of the batch; returns its offset in this.buf. */
  reserve(n: number): number {
    if (this.pos + n > this.buf.length) {
      this.flush();
      // The old slab stays alive as long as the socket holds views of it.
      this.buf = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n));
      this.pos = 0;
      this.batchStart = 0;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** Gives back the last reservation, made at `start`, while nothing was reserved after it. */
  unreserve(start: number): void {
    this.pos = start;
  }

  /** Sends the batch before `start` now; the bytes from `start` to pos are owned by a pending request. */
  detach(start: number): void {
    if (start > this.batchStart) this.send(this.buf.subarray(this.batchStart, start));
    this.batchStart = this.pos;
  }

  flush(): void {
    if (this.pos > this.batchStart) {
      this.send(this.buf.subarray(this.batchStart, this.pos));
      this.batchStart = this.pos;
    }
  }
}
