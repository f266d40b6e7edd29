/**
 * fio's verify_pattern (lib/pattern.c, parse_and_fill_pattern, fio 3.33):
 * pieces written one after another, each one of
 *
 *   0x1f2e...   hex bytes as written (an odd count: the first digit is a byte
 *               of its own); `0xff0x14` is two pieces
 *   -1024, 66   a decimal int in [INT_MIN, INT_MAX], its bytes little-endian,
 *               as many as the value needs (0 is one zero byte)
 *   "text"      the bytes between the quotes (no escapes)
 *   'file'      the first bytes of a file
 *
 * at most 512 bytes in all (MAX_PATTERN_SIZE). fio's %o (the block offset
 * pasted into the pattern) is refused: remapsim does not implement it. The
 * pattern repeats over a block from the block's first byte (cpy_pattern).
 */
import * as fs from 'node:fs';

export const MAX_PATTERN_BYTES = 512;

export class PatternError extends Error {
  override readonly name = 'PatternError';
}

function hexPiece(s: string, out: number[]): number {
  const m = /^0[xX]([0-9a-fA-F]+)/.exec(s)!;
  let digits = m[1]!;
  // look back: in "0xff0x14" the 0 before the second x starts the next piece
  if (s.length > 2 + digits.length && /^[xX]/.test(s.slice(2 + digits.length)) && digits.endsWith('0')) digits = digits.slice(0, -1);
  if (digits.length === 0) throw new PatternError(`'${s}': no hex digits after 0x`);
  let i = 0;
  if (digits.length % 2 === 1) out.push(parseInt(digits[i++]!, 16));
  for (; i < digits.length; i += 2) out.push(parseInt(digits.slice(i, i + 2), 16));
  return 2 + digits.length;
}

function decimalPiece(s: string, out: number[]): number {
  const ahead = s.search(/0[xX]/);
  const text = ahead > 0 ? s.slice(0, ahead) : s;
  const m = /^\s*[-+]?[0-9]+/.exec(text);
  if (!m) throw new PatternError(`'${s}' is not a number, "string", 'file' or 0x hex bytes`);
  const v = Number(m[0]);
  if (v > 2147483647 || v < -2147483648) throw new PatternError(`${m[0].trim()} is outside [-2147483648, 2147483647]`);
  let u = v >>> 0;
  if (u === 0) out.push(0);
  while (u !== 0) {
    out.push(u & 0xff);
    u >>>= 8;
  }
  return m[0].length;
}

/** The bytes of a verify_pattern value; throws PatternError with a one-line reason. */
export function parseFioPattern(text: string, readFile: (file: string) => Uint8Array = (f) => fs.readFileSync(f)): Uint8Array {
  if (text.length === 0) throw new PatternError('empty pattern');
  const out: number[] = [];
  let s = text;
  while (s.length > 0) {
    let used: number;
    if (s[0] === '"' || s[0] === "'") {
      const end = s.indexOf(s[0], 1);
      if (end < 0) throw new PatternError(`unterminated ${s[0] === '"' ? 'string' : 'file name'} in '${text}'`);
      const body = s.slice(1, end);
      if (s[0] === '"') {
        if (body.length === 0) throw new PatternError('empty string ""');
        out.push(...new TextEncoder().encode(body));
      } else {
        let bytes: Uint8Array;
        try {
          bytes = readFile(body);
        } catch (err) {
          throw new PatternError(`cannot read pattern file '${body}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        if (bytes.length === 0) throw new PatternError(`pattern file '${body}' is empty`);
        out.push(...bytes.subarray(0, MAX_PATTERN_BYTES - out.length));
      }
      used = end + 1;
    } else if (s[0] === '%') {
      throw new PatternError(`'${s.slice(0, 2)}' (a format fio pastes into the pattern) is not implemented in remapsim; give the bytes`);
    } else if (/^0[xX][0-9a-fA-F]/.test(s)) used = hexPiece(s, out);
    else used = decimalPiece(s, out);
    if (out.length > MAX_PATTERN_BYTES) throw new PatternError(`longer than ${MAX_PATTERN_BYTES} bytes (fio's limit)`);
    s = s.slice(used);
  }
  return Uint8Array.from(out);
}

/** Fills `out` with the pattern repeated from its first byte, as fio's cpy_pattern. */
export function fillPattern(pattern: Uint8Array, out: Uint8Array): void {
  for (let at = 0; at < out.length; at += pattern.length) out.set(pattern.subarray(0, Math.min(pattern.length, out.length - at)), at);
}

/** The first byte of `bytes` that differs from the pattern repeated from phase `phase`, or -1. */
export function patternMismatch(pattern: Uint8Array, bytes: Uint8Array, phase = 0): number {
  let k = phase % pattern.length;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== pattern[k]) return i;
    if (++k === pattern.length) k = 0;
  }
  return -1;
}

/** How fio prints a pattern back: 0x and its bytes in hex. */
export function formatPattern(pattern: Uint8Array): string {
  return `0x${Buffer.from(pattern).toString('hex')}`;
}
