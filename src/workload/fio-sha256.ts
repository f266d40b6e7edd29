/**
 * fio's "sha256" (crc/sha256.c of fio 3.33), which is not SHA-256's digest:
 * the compression function is SHA-256's, but the message length is appended
 * little-endian, the 64-byte output area doubles as the buffer for partial
 * blocks, and the result keeps only the low byte of each of the eight state
 * words. verify=sha256 stores these 64 bytes after the verify header, and
 * fio compares all 64, so a block fio accepts must carry exactly them. This
 * follows fio's update/final step by step.
 */
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
  0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
  0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
  0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
  0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const H = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const W = new Uint32Array(64);

const ror = (x: number, n: number): number => (x >>> n) | (x << (32 - n));

/** SHA-256's compression of the 64 bytes at `block[at]` into `state`. */
function transform(state: Uint32Array, block: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++) {
    const p = at + i * 4;
    W[i] = ((block[p]! << 24) | (block[p + 1]! << 16) | (block[p + 2]! << 8) | block[p + 3]!) >>> 0;
  }
  for (let i = 16; i < 64; i++) {
    const a = W[i - 15]!;
    const b = W[i - 2]!;
    W[i] = (W[i - 16]! + (ror(a, 7) ^ ror(a, 18) ^ (a >>> 3)) + W[i - 7]! + (ror(b, 17) ^ ror(b, 19) ^ (b >>> 10))) >>> 0;
  }
  let [a, b, c, d, e, f, g, h] = state as unknown as number[];
  for (let i = 0; i < 64; i++) {
    const t1 = (h! + (ror(e!, 6) ^ ror(e!, 11) ^ ror(e!, 25)) + ((e! & f!) ^ (~e! & g!)) + K[i]! + W[i]!) >>> 0;
    const t2 = ((ror(a!, 2) ^ ror(a!, 13) ^ ror(a!, 22)) + ((a! & b!) ^ (a! & c!) ^ (b! & c!))) >>> 0;
    h = g;
    g = f;
    f = e;
    e = (d! + t1) >>> 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) >>> 0;
  }
  state[0] = (state[0]! + a!) >>> 0;
  state[1] = (state[1]! + b!) >>> 0;
  state[2] = (state[2]! + c!) >>> 0;
  state[3] = (state[3]! + d!) >>> 0;
  state[4] = (state[4]! + e!) >>> 0;
  state[5] = (state[5]! + f!) >>> 0;
  state[6] = (state[6]! + g!) >>> 0;
  state[7] = (state[7]! + h!) >>> 0;
}

interface Ctx {
  count: number;
  state: Uint32Array;
  /** The 64-byte output area, which fio also uses for partial blocks. */
  buf: Uint8Array;
}

/** fio_sha256_update. */
function update(ctx: Ctx, data: Uint8Array): void {
  const len = data.length;
  let partial = ctx.count & 0x3f;
  ctx.count = (ctx.count + len) >>> 0;
  let done = 0;
  let src = 0;
  let fromBuf = false;
  if (partial + len > 63) {
    if (partial) {
      done = -partial;
      ctx.buf.set(data.subarray(0, done + 64), partial);
      fromBuf = true;
    }
    do {
      if (fromBuf) transform(ctx.state, ctx.buf, 0);
      else transform(ctx.state, data, src);
      done += 64;
      src = done;
      fromBuf = false;
    } while (done + 63 < len);
    partial = 0;
  }
  ctx.buf.set(data.subarray(src, src + len - done), partial);
}

const PADDING = new Uint8Array(64);
PADDING[0] = 0x80;

/** The 64 bytes fio's verify=sha256 stores for `data` (fio_sha256_init, _update, _final). */
export function fioSha256(data: Uint8Array): Uint8Array {
  const ctx: Ctx = { count: 0, state: Uint32Array.from(H), buf: new Uint8Array(64) };
  update(ctx, data);
  const bits = ctx.count * 8;
  const index = ctx.count & 0x3f;
  update(ctx, PADDING.subarray(0, index < 56 ? 56 - index : 120 - index));
  const le = new Uint8Array(8);
  new DataView(le.buffer).setBigUint64(0, BigInt(bits), true);
  update(ctx, le);
  for (let i = 0; i < 8; i++) ctx.buf[i] = ctx.state[i]! & 0xff;
  return ctx.buf;
}
