/**
 * The bytes received so far, kept as the chunks they arrived in. A read that
 * lies inside one chunk is a view of it; only a read that spans chunks is
 * copied, into a buffer of exactly its size. So a large WRITE payload that
 * arrived in one socket read costs no copy, and one that arrived in many costs
 * one.
 */
export class ByteQueue {
  private readonly chunks: Uint8Array[] = [];
  /** Bytes already consumed from chunks[0]. */
  private head = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Where header() put the bytes it made readable. */
  hdr: Uint8Array = new Uint8Array(0);
  private readonly scratch = Buffer.allocUnsafe(64);

  /**
   * Makes the first `n` bytes (n <= length, n <= 64) readable in place, for
   * header fields read at once: returns the offset of the first byte in `hdr`.
   * No view is created; bytes spanning chunks are copied into a scratch buffer
   * that the next call reuses.
   */
  header(n: number): number {
    const first = this.chunks[0];
    if (first.length - this.head >= n) {
      this.hdr = first;
      return this.head;
    }
    let copied = 0;
    let off = this.head;
    for (let i = 0; copied < n; i++, off = 0) {
      const c = this.chunks[i];
      const take = Math.min(c.length - off, n - copied);
      this.scratch.set(c.subarray(off, off + take), copied);
      copied += take;
    }
    this.hdr = this.scratch;
    return 0;
  }

  /** The first `n` bytes (n <= length) without consuming them. */
  peek(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.chunks[0];
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let off = this.head;
    for (let i = 0; copied < n; i++, off = 0) {
      const c = this.chunks[i];
      const take = Math.min(c.length - off, n - copied);
      out.set(c.subarray(off, off + take), copied);
      copied += take;
    }
    return out;
  }

  skip(n: number): void {
    this.total -= n;
    while (n > 0) {
      const avail = this.chunks[0].length - this.head;
      if (avail > n) {
        this.head += n;
        return;
      }
      n -= avail;
      this.chunks.shift();
      this.head = 0;
    }
  }

  take(n: number): Uint8Array {
    const v = this.peek(n);
    this.skip(n);
    return v;
  }
}
