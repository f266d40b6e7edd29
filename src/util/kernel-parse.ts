/**
 * Number parsing with the kernel's semantics, for messages whose handlers use
 * them. Results are JS numbers when exact (< 2^53), else the caller decides.
 */

/**
 * simple_strtoull(text, NULL, 0): base from the prefix (0x hex, 0 octal, else
 * decimal), leading whitespace skipped, digits read until the first invalid
 * character, no error: "garbage" gives 0, "12abc" gives 12. Wraps modulo 2^64.
 */
export function simpleStrtoull(text: string): bigint {
  let s = text.replace(/^\s+/, '');
  let base = 10n;
  if (/^0[xX][0-9a-fA-F]/.test(s)) {
    base = 16n;
    s = s.slice(2);
  } else if (s.startsWith('0')) {
    base = 8n;
  }
  let v = 0n;
  for (const ch of s) {
    const d = parseInt(ch, 16);
    if (Number.isNaN(d) || BigInt(d) >= base) break;
    v = (v * base + BigInt(d)) & 0xffff_ffff_ffff_ffffn;
  }
  return v;
}

/**
 * kstrtoull(text, 10): a whole decimal number with an optional trailing
 * newline, else an error (the kernel returns -EINVAL / -ERANGE). Returns
 * undefined when the text is not such a number or does not fit in 64 bits.
 */
export function kstrtoull(text: string, base = 10): bigint | undefined {
  const s = text.endsWith('\n') ? text.slice(0, -1) : text;
  const re = base === 16 ? /^(0[xX])?[0-9a-fA-F]+$/ : base === 8 ? /^[0-7]+$/ : /^\+?[0-9]+$/;
  if (!re.test(s)) return undefined;
  const v = base === 16 ? BigInt(s.startsWith('0x') || s.startsWith('0X') ? s : `0x${s}`) : base === 8 ? BigInt(`0o${s}`) : BigInt(s.replace(/^\+/, ''));
  return v > 0xffff_ffff_ffff_ffffn ? undefined : v;
}
