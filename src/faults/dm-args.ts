/**
 * Argument parsing with the kernel's exact acceptance rules, so a table line
 * or message the model accepts is one the kernel accepts, and the other way
 * round. Each function names the kernel idiom it reproduces.
 */

const U64_MOD = 1n << 64n;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * `sscanf(s, "%llu%c", &v, &dummy) == 1`: optional leading whitespace, at
 * least one decimal digit, nothing after. No sign is accepted (the kernel's
 * vsscanf breaks on '+' and '-' for unsigned conversions). Overflow wraps
 * modulo 2^64 as simple_strntoull does. Returns undefined when the kernel's
 * check would fail.
 */
export function scanU64(s: string): bigint | undefined {
  let i = 0;
  while (i < s.length && /\s/.test(s[i]!)) i++;
  const start = i;
  while (i < s.length && isDigit(s.charCodeAt(i))) i++;
  if (i === start || i !== s.length) return undefined;
  return BigInt(s.slice(start)) % U64_MOD;
}

/** `sscanf(s, "%u%c", &v, &dummy) == 1`: as scanU64, then truncated to 32 bits the way vsscanf stores into an unsigned int. */
export function scanU32(s: string): number | undefined {
  const v = scanU64(s);
  return v === undefined ? undefined : Number(v & 0xffffffffn);
}

/**
 * `kstrtouint(s, 10, &v) == 0`: an optional '+', decimal digits, an optional
 * single trailing newline; values above 2^32-1 are rejected (ERANGE).
 */
export function kstrtouint(s: string): number | undefined {
  let body = s.endsWith('\n') ? s.slice(0, -1) : s;
  if (body.startsWith('+')) body = body.slice(1);
  if (body.length === 0) return undefined;
  for (let i = 0; i < body.length; i++) if (!isDigit(body.charCodeAt(i))) return undefined;
  const v = BigInt(body);
  return v > 0xffffffffn ? undefined : Number(v);
}

/** dm_read_arg(): a `%u` argument within [min, max]; undefined when dm would reject it. */
export function dmReadArg(s: string | undefined, min: number, max: number): number | undefined {
  if (s === undefined) return undefined;
  const v = scanU32(s);
  if (v === undefined || v < min || v > max) return undefined;
  return v;
}
