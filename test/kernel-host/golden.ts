/** Hand-written byte strings: hex with spaces, newlines and // comments. */
export function hex(s: string): Buffer {
  const clean = s.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(clean)) throw new Error(`bad hex: ${clean.slice(0, 40)}`);
  return Buffer.from(clean, 'hex');
}

/** n zero bytes as hex. */
export function z(n: number): string {
  return '00'.repeat(n);
}

/** ASCII text as hex (no terminator). */
export function a(s: string): string {
  return Buffer.from(s, 'latin1').toString('hex');
}
