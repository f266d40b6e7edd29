/**
 * The few C formatting rules fio's output depends on, reproduced so our text
 * matches fio's digit for digit: printf's %f (round half to even on exact
 * ties, which toFixed does not do), fio's num2str, and ctime().
 */

/** printf("%.<digits>f", x). */
export function cFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const plain = x.toFixed(digits);
  if (Math.abs(x) >= 1e21) return plain;
  const exact = Math.abs(x).toFixed(100);
  const point = exact.indexOf('.');
  const tail = exact.slice(point + 1 + digits);
  if (tail[0] !== '5' || !/^0*$/.test(tail.slice(1))) return plain;
  // An exact tie: toFixed rounded away from zero; printf rounds to even.
  const kept = exact.slice(0, point + 1 + digits).replace('.', '');
  const last = Number(kept[kept.length - 1]);
  let n = BigInt(kept);
  if (last % 2 === 1) n += 1n;
  let s = n.toString().padStart(digits + 1, '0');
  if (digits > 0) s = `${s.slice(0, s.length - digits)}.${s.slice(s.length - digits)}`;
  return x < 0 ? `-${s}` : s;
}

/** printf("%<width>.<digits>f", x). */
export function cFixedWidth(x: number, width: number, digits: number): string {
  return cFixed(x, digits).padStart(width, ' ');
}

export type N2sUnit = '' | 'B' | 'B/s';

const SI = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
const IEC = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

/**
 * fio's num2str(): shorten an integer to at most `maxlen` digits (the '.'
 * counts) with an SI (pow2=false) or IEC (pow2=true) prefix. `base` says what
 * one unit of `num` is worth (1, or 1024 for KiB).
 */
export function num2str(num: number, maxlen: number, base: number, pow2: boolean, unit: N2sUnit): string {
  const prefixes = pow2 ? IEC : SI;
  const thousand = pow2 ? 1024 : 1000;
  let post = 0;
  for (let b = base; b > 1; b = Math.floor(b / thousand)) post++;
  let n = Math.floor(num);
  let modulo = -1;
  let carry = false;
  while (post < prefixes.length) {
    if (String(n).length <= maxlen) break;
    modulo = n % thousand;
    n = Math.floor(n / thousand);
    carry = modulo >= thousand / 2;
    post++;
  }
  if (post >= prefixes.length) post = 0;
  if (modulo === -1) return `${n}${prefixes[post]}${unit}`;
  const intLen = String(n).length;
  if (maxlen - intLen <= 1) {
    if (carry) n++;
    return `${n}${prefixes[post]}${unit}`;
  }
  const frac = cFixed(modulo / thousand, maxlen - intLen - 1);
  if (frac[0] === '1') n++;
  return `${n}.${frac.slice(2)}${prefixes[post]}${unit}`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** ctime() without the trailing newline, in local time: "Mon Nov  3 09:05:07 2026". */
export function ctime(d: Date): string {
  const p2 = (n: number) => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`
  );
}
