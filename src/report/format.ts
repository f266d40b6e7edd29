/** Number formatting for the report: units people read at a glance. Pure. */

const trim0 = (s: string): string => (s.includes('.') ? s.replace(/\.?0+$/, '') : s);

/** Up to 3 significant digits. */
export function sig3(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return trim0(v.toFixed(1));
  if (a >= 1) return trim0(v.toFixed(2));
  return trim0(v.toPrecision(3));
}

function scaled(v: number, base: number, units: readonly string[]): string {
  let i = 0;
  let x = Math.abs(v);
  while (x >= base * 0.9995 && i < units.length - 1) {
    x /= base;
    i++;
  }
  return `${v < 0 ? '-' : ''}${sig3(x)}${units[i]}`;
}

/** 1.5k, 23M: counts and rates of things. */
export function fmtCount(v: number): string {
  if (Math.abs(v) < 1000) return sig3(v);
  return scaled(v, 1000, ['', 'k', 'M', 'G', 'T', 'P']);
}

/** Bytes with IEC units: 512 B, 1.5 KiB, 78.6 MiB. */
export function fmtBytes(v: number): string {
  return scaled(v, 1024, [' B', ' KiB', ' MiB', ' GiB', ' TiB', ' PiB']);
}

export function fmtBytesPerSec(v: number): string {
  return `${fmtBytes(v)}/s`;
}

/** Nanoseconds as ns, µs, ms or s. */
export function fmtNs(v: number): string {
  const a = Math.abs(v);
  if (a < 1e3) return `${sig3(v)} ns`;
  if (a < 1e6) return `${sig3(v / 1e3)} µs`;
  if (a < 1e9) return `${sig3(v / 1e6)} ms`;
  return `${sig3(v / 1e9)} s`;
}

/** Seconds on a time axis: 0s, 45s, 2m, 1m30s, 2h. */
export function fmtSeconds(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 120) return `${sig3(v)}s`;
  if (a < 7200) {
    const m = Math.floor(a / 60);
    const s = Math.round(a - m * 60);
    return `${v < 0 ? '-' : ''}${m}m${s > 0 ? `${s}s` : ''}`;
  }
  return `${sig3(v / 3600)}h`;
}

/** Percentile labels as fio prints them: 50, 99, 99.9, 99.99. */
export function fmtPercentile(p: number): string {
  return trim0(p.toFixed(6));
}
