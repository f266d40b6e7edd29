import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { OptionValueError } from '../../src/workload/errors.js';
import { formatSize } from '../../src/util/format-size.js';
import { parseBool, parseInteger, parsePerDir, parseRate, parseRateIops, parseSize, parseSizeOrPercent, parseTime } from '../../src/workload/size.js';

describe('parseSize', () => {
  it('reads fio sizes with kb_base=1024 (the default)', () => {
    const cases: [string, number][] = [
      ['4096', 4096],
      ['4k', 4096],
      ['4K', 4096],
      ['4kb', 4096],
      ['4KB', 4096],
      ['4ki', 4096], // fio 3.33 as run: only "kib" flips the base
      ['4KiB', 4000],
      ['4kib', 4000],
      ['512b', 512],
      ['512B', 512],
      ['1m', 1048576],
      ['1M', 1048576],
      ['1MiB', 1000000],
      ['1g', 2 ** 30],
      ['1t', 2 ** 40],
      ['1p', 2 ** 50],
      ['1pb', 2 ** 50],
      ['0x1000', 4096],
      [' 8k ', 8192],
    ];
    for (const [text, bytes] of cases) expect(parseSize(text, 'bs'), text).toBe(bytes);
  });

  it('swaps the prefixes with kb_base=1000', () => {
    expect(parseSize('4k', 'bs', 1000)).toBe(4000);
    expect(parseSize('4KiB', 'bs', 1000)).toBe(4096);
    expect(parseSize('1m', 'bs', 1000)).toBe(1_000_000);
    expect(parseSize('1MiB', 'bs', 1000)).toBe(1048576);
  });

  it('names the option and the text in errors', () => {
    expect(() => parseSize('x4k', 'bs')).toThrow("bs: invalid size 'x4k'");
    expect(() => parseSize('4kx', 'bs')).toThrow("bs: invalid size '4kx': unknown unit 'kx'");
    expect(() => parseSize('1.5g', 'size')).toThrow(/size: invalid size '1.5g': fractions are not accepted/);
    expect(() => parseSize('-4k', 'size')).toThrow(/must not be negative/);
    expect(() => parseSize('', 'size')).toThrow('size: missing value');
    expect(() => parseSize('50%', 'bs')).toThrow(/a percentage is not allowed here/);
    expect(() => parseSize('(4k*2)', 'bs')).toThrow(/arithmetic expressions are not supported/);
    expect(() => parseSize('8*1024', 'size')).toThrow(/arithmetic expressions are not supported/);
    expect(() => parseSize('99999999p', 'size')).toThrow(/too large/);
    expect(() => parseSize('0x10k', 'size')).toThrow(OptionValueError);
  });
});

describe('parseSizeOrPercent', () => {
  it('accepts 1% to 100% where fio allows percentages', () => {
    expect(parseSizeOrPercent('50%', 'size')).toEqual({ kind: 'percent', percent: 50 });
    expect(parseSizeOrPercent('100%', 'size')).toEqual({ kind: 'percent', percent: 100 });
    expect(parseSizeOrPercent('256M', 'size')).toEqual({ kind: 'bytes', bytes: 256 * 2 ** 20 });
    expect(() => parseSizeOrPercent('0%', 'size')).toThrow("size: invalid percentage '0%': allowed 1% to 100%");
    expect(() => parseSizeOrPercent('101%', 'offset')).toThrow(/offset: invalid percentage/);
  });
});

describe('parseTime', () => {
  it('returns microseconds; seconds by default, as runtime= reads them', () => {
    const cases: [string, number][] = [
      ['10', 10e6],
      ['10s', 10e6],
      ['10S', 10e6],
      ['5sec', 5e6],
      ['500ms', 500e3],
      ['500MSEC', 500e3],
      ['10us', 10],
      ['10usec', 10],
      ['1m', 60e6],
      ['1M', 60e6],
      ['2h', 7200e6],
      ['1d', 86400e6],
    ];
    for (const [text, us] of cases) expect(parseTime(text, 'runtime'), text).toBe(us);
    expect(parseTime('250', 'thinktime', 'us')).toBe(250);
  });

  it('refuses what fio would misread', () => {
    expect(() => parseTime('10x', 'runtime')).toThrow("runtime: invalid time '10x': unknown unit 'x'");
    expect(() => parseTime('0.5s', 'runtime')).toThrow(/fractions are not accepted \(write 500ms/);
    expect(() => parseTime('', 'ramp_time')).toThrow('ramp_time: missing value');
  });
});

describe('numbers, bools and per-direction lists', () => {
  it('parses integers with fio size suffixes and checks the range', () => {
    expect(parseInteger('16', 'iodepth', 1)).toBe(16);
    expect(parseInteger('1k', 'iodepth', 1)).toBe(1024);
    expect(() => parseInteger('0', 'iodepth', 1)).toThrow('iodepth: 0 is out of range (allowed at least 1)');
    expect(() => parseInteger('101', 'rwmixread', 0, 100)).toThrow('rwmixread: 101 is out of range (allowed 0 to 100)');
  });

  it('parses bools as 0 or 1', () => {
    expect(parseBool('1', 'direct')).toBe(true);
    expect(parseBool('0', 'direct')).toBe(false);
    expect(() => parseBool('2', 'direct')).toThrow("direct: invalid value '2' (allowed 0 or 1)");
  });

  it("applies fio's read,write,trim rules (checked against fio 3.33 iologs)", () => {
    const p = (t: string) => parsePerDir(t, 'bs', (x) => parseSize(x, 'bs'), 4096);
    expect(p('8k')).toEqual({ read: 8192, write: 8192, trim: 8192 });
    expect(p('8k,32k')).toEqual({ read: 8192, write: 32768, trim: 32768 });
    expect(p('8k,')).toEqual({ read: 8192, write: 4096, trim: 4096 });
    expect(p('8k,32k,')).toEqual({ read: 8192, write: 32768, trim: 4096 });
    expect(p(',8k')).toEqual({ read: 4096, write: 8192, trim: 8192 });
    expect(p(',8k,')).toEqual({ read: 4096, write: 8192, trim: 4096 });
    expect(p('1k,2k,3k')).toEqual({ read: 1024, write: 2048, trim: 3072 });
    expect(() => p('1k,2k,3k,4k')).toThrow('bs: too many values');
  });

  it('parses rates per direction', () => {
    expect(parseRate('10m', 'rate')).toEqual({ read: 10485760, write: 10485760, trim: 10485760 });
    expect(parseRate('1m,2m', 'rate')).toEqual({ read: 1048576, write: 2097152, trim: 2097152 });
    expect(parseRate(',500k', 'rate')).toEqual({ read: 0, write: 512000, trim: 512000 });
    expect(parseRate('500k,', 'rate')).toEqual({ read: 512000, write: 0, trim: 0 });
    expect(parseRateIops('1000,200', 'rate_iops')).toEqual({ read: 1000, write: 200, trim: 200 });
  });

  it('formats sizes for messages', () => {
    expect(formatSize(4096)).toBe('4 KiB');
    expect(formatSize(3 * 2 ** 30)).toBe('3 GiB');
    expect(formatSize(1000)).toBe('1000 B');
  });
});

function fioAvailable(): boolean {
  try {
    execFileSync('fio', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What fio's own parser stores for each `--opt=value` (fio --debug=parse prints "out=<n>"), in one fio run. */
function fioParsed(opt: string, values: readonly string[]): number[] {
  const args = ['--debug=parse', '--parse-only'];
  values.forEach((v, i) => args.push(`--name=j${i}`, `--${opt}=${v}`));
  const out = execFileSync('fio', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  const results: number[] = [];
  let waiting = false;
  for (const line of out.split('\n')) {
    if (line.includes(` handle_option=${opt}, `)) waiting = true;
    const m = /out=(\d+)/.exec(line);
    if (waiting && m) {
      results.push(Number(m[1]));
      waiting = false;
    }
  }
  if (results.length !== values.length) throw new Error(`expected ${values.length} values from fio, got ${results.length}:\n${out}`);
  return results;
}

describe.skipIf(!fioAvailable())('against the installed fio', () => {
  it('reads sizes exactly as fio does', () => {
    const values = ['4096', '4k', '4K', '4kb', '4KB', '4ki', '4KiB', '1m', '1MiB', '2g', '1t', '1p', '512b', '0x1000', '64MB'];
    expect(values.map((v) => parseSize(v, 'bs'))).toEqual(fioParsed('bs', values));
  });

  it('reads times exactly as fio does (fio stores microseconds)', () => {
    const values = ['10', '10s', '500ms', '500msec', '10us', '1m', '2h', '1d'];
    expect(values.map((v) => parseTime(v, 'runtime'))).toEqual(fioParsed('runtime', values));
  });
});
