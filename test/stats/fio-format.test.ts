import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cFixed, cFixedWidth, num2str } from '../../src/stats/fio-format.js';
import { Random } from '../../src/util/random.js';

describe('cFixed (printf %f)', () => {
  it('agrees with the C library printf, exact ties included', (ctx) => {
    if (!existsSync('/usr/bin/printf')) ctx.skip();
    const r = new Random(3);
    // Multiples of 1/1024 are exact in binary, so printf reads the very value we format,
    // and many of them are exact ties at 2 or 3 decimals.
    const xs = [0.125, 0.375, 2.5, 3.5, 0.0078125, 12.5078125, 0, 100, 1e6 + 0.5];
    for (let k = 0; k < 300; k++) xs.push(r.int(1 << 24) / 1024);
    const formats = [0, 1, 2, 3, 6];
    const args = xs.flatMap((x) => formats.map(() => String(x)));
    const fmt = xs.map(() => formats.map((d) => `%.${d}f`).join('\n')).join('\n') + '\n';
    const want = execFileSync('/usr/bin/printf', [fmt, ...args], { env: { LC_ALL: 'C' } })
      .toString()
      .split('\n');
    let j = 0;
    for (const x of xs) for (const d of formats) expect([x, d, cFixed(x, d)]).toEqual([x, d, want[j++]]);
  });

  it('pads like %5.2f', () => {
    expect(cFixedWidth(5.215, 5, 2)).toBe(' 5.21'); // 5.215 is stored a hair below
    expect(cFixedWidth(59482.666667, 5, 2)).toBe('59482.67');
  });
});

describe('num2str (fio)', () => {
  it('shortens the way fio prints IOPS, bandwidth, sizes and latencies', () => {
    expect(num2str(14578, 4, 1, false, '')).toBe('14.6k');
    expect(num2str(250, 4, 1, false, '')).toBe('250');
    expect(num2str(59731134, 4, 1, true, 'B/s')).toBe('57.0MiB/s');
    expect(num2str(59731134, 4, 1, false, 'B/s')).toBe('59.7MB/s');
    expect(num2str(119484416, 4, 1, true, 'B')).toBe('114MiB');
    expect(num2str(41943040, 4, 1, true, 'B')).toBe('40.0MiB');
    expect(num2str(3375600, 6, 1, false, '')).toBe('3375.6k');
    expect(num2str(19517, 6, 1, false, '')).toBe('19517');
    expect(num2str(1023999, 4, 1, true, 'B')).toBe('1000KiB'); // no room for decimals: carry rounds up
    expect(num2str(4, 4, 1024, true, 'B')).toBe('4KiB'); // base: num counts KiB
    expect(num2str(999_999, 4, 1, false, '')).toBe('1000k'); // 999.999k: no room for decimals, carry
  });
});
