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
