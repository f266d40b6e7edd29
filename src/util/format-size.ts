const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** A byte count for messages: the largest binary unit that divides it exactly (4096 -> '4 KiB'). */
export function formatSize(bytes: number): string {
  let v = bytes;
  let i = 0;
  while (i < UNITS.length - 1 && v >= 1024 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v} ${UNITS[i]}`;
}

/** Repeated division into a unit ladder: the value and the unit's index. */
function scaled(bytes: number, base: number, units: number): [number, number] {
  let v = bytes;
  let i = 0;
  while (v >= base && i < units - 1) {
    v /= base;
    i++;
  }
  return [v, i];
}

/** A byte count for people, rounded in binary units (1536 -> '1.5 KiB'). */
export function formatBytes(bytes: number): string {
  const [v, i] = scaled(bytes, 1024, UNITS.length);
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** A byte count in decimal units, three significant digits, as drives are sold (4e12 -> '4 TB'). */
export function formatDecimalBytes(bytes: number): string {
  const [v, i] = scaled(bytes, 1000, DECIMAL_UNITS.length);
  return `${Number(v.toPrecision(3))} ${DECIMAL_UNITS[i]}`;
}
