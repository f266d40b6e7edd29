/**
 * fio's verify format as pure codecs: verify_pattern's syntax (fio's own
 * examples from lib/pattern.c), the header and its checks, the state file,
 * and where verify_state_load stops. test/cli/bench-fio.test.ts checks the
 * same bytes against fio itself.
 */
import { describe, expect, it } from 'vitest';
import { fioBins, fioPlatIndex, fioPlatValue } from '../../src/stats/fio-bins.js';
import { LatencyHistogram } from '../../src/stats/latency.js';
import { parseFioPattern } from '../../src/workload/fio-pattern.js';
import { decodeFioState, encodeFioState, FioWriteLog, fioStateFileName, fioStateStops } from '../../src/workload/fio-verify-state.js';
import { FioVerifyPattern, fioCrc32c } from '../../src/workload/fio-verify.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe("verify_pattern, as fio's parse_and_fill_pattern reads it", () => {
  it("gives the bytes of fio's own examples", () => {
    expect(hex(parseFioPattern('"abcd"'))).toBe('61626364');
    expect(hex(parseFioPattern('-1024'))).toBe('00fcffff');
    expect(hex(parseFioPattern('66'))).toBe('42');
    expect(hex(parseFioPattern('0xFF0X1'))).toBe('ff01');
    expect(hex(parseFioPattern('"123"0xFFeeCC'))).toBe('313233ffeecc');
    expect(hex(parseFioPattern('0'))).toBe('00');
    expect(hex(parseFioPattern('0xabc'))).toBe('0abc');
    expect(hex(parseFioPattern('0xfefefefefefefefefefefefefefefefefefefefefe'))).toBe('fe'.repeat(21));
  });

  it('refuses what it cannot make, in one line', () => {
    expect(() => parseFioPattern('%o')).toThrow("'%o' (a format fio pastes into the pattern) is not implemented in remapsim; give the bytes");
    expect(() => parseFioPattern('"abc')).toThrow("unterminated string in '\"abc'");
    expect(() => parseFioPattern('4294967296')).toThrow('4294967296 is outside [-2147483648, 2147483647]');
    expect(() => parseFioPattern('zz')).toThrow(`'zz' is not a number, "string", 'file' or 0x hex bytes`);
    expect(() => parseFioPattern(`0x${'ab'.repeat(513)}`)).toThrow("longer than 512 bytes (fio's limit)");
  });
});

describe("fio's verify header", () => {
  const unitSize = 4096;
  const md5 = new FioVerifyPattern({ unitSize, runId: 7, seed: 1, algorithm: 'md5' });

  it('lays out magic, type, length, offset and a header crc fio accepts', () => {
    const b = new Uint8Array(unitSize);
    md5.fill(b, 3, 2);
    const dv = new DataView(b.buffer);
    expect(dv.getUint16(0, true)).toBe(0xacca);
    expect(dv.getUint16(2, true)).toBe(2); // VERIFY_MD5
    expect(dv.getUint32(4, true)).toBe(unitSize);
    expect(dv.getBigUint64(16, true)).toBe(BigInt(3 * unitSize));
    expect(dv.getUint32(36, true)).toBe(fioCrc32c(b.subarray(0, 36)));
    expect(md5.intact(b, 3)).toBeUndefined();
    expect(md5.judge(b, 3, 2)).toEqual({ kind: 'current' });
    expect(md5.judge(b, 3, 5)).toEqual({ kind: 'older', gen: 2 });
  });

  it('says why a block is not intact, as fio would', () => {
    const b = new Uint8Array(unitSize);
    md5.fill(b, 3, 1);
    expect(md5.intact(b, 4)).toEqual({ reason: 'misdirected', detail: `bad header offset ${3 * unitSize}, wanted ${4 * unitSize}` });
    const flipped = b.slice();
    flipped[1000] ^= 1;
    expect(md5.intact(flipped, 3)).toMatchObject({ reason: 'bad-checksum' });
    const torn = b.slice();
    torn[24] ^= 1; // time_sec: only the header crc covers it
    expect(md5.intact(torn, 3)?.reason).toBe('torn-header');
    expect(md5.intact(new Uint8Array(unitSize), 3)).toEqual({ reason: 'zero' });
    const other = new FioVerifyPattern({ unitSize, runId: 8, seed: 1, algorithm: 'md5' });
    expect(other.intact(b, 3)).toBeUndefined(); // another run's block is intact to verify_only
    expect(other.judge(b, 3, 1)).toEqual({ kind: 'corrupt', reason: 'other-run' });
  });

  it('checks verify_pattern after the header (meta), or over the whole block (pattern)', () => {
    const p = Uint8Array.from([0xde, 0xad, 0xbe, 0xef]);
    const meta = new FioVerifyPattern({ unitSize, runId: 1, seed: 1, algorithm: 'meta', verifyPattern: p });
    const b = new Uint8Array(unitSize);
    meta.fill(b, 0, 1);
    expect(hex(b.subarray(40, 48))).toBe('deadbeefdeadbeef');
    b[100] = 0;
    expect(meta.intact(b, 0)).toEqual({ reason: 'bad-pattern', detail: "got pattern '00', wanted 'de' at byte 100 (pattern 0xdeadbeef)" });
    const bare = new FioVerifyPattern({ unitSize, runId: 1, seed: 1, algorithm: 'pattern', verifyPattern: p });
    const c = new Uint8Array(unitSize);
    bare.fill(c, 9, 1);
    expect(hex(c.subarray(0, 8))).toBe('deadbeefdeadbeef');
    expect(bare.judge(c, 9, 1)).toEqual({ kind: 'current' });
    expect(bare.judge(new Uint8Array(unitSize), 9, 1)).toEqual({ kind: 'zero' });
  });
});

describe("fio's verify state file", () => {
  it('round-trips, and refuses a damaged one', () => {
    const s = { name: 'a/b', index: 2, depth: 4, numberio: 10, comps: [36864, 32768, 28672, 24576] };
    const bytes = encodeFioState(s);
    expect(bytes.length).toBe(24 + 152 + 4 * 16);
    expect(decodeFioState(bytes)).toEqual(s);
    expect(fioStateFileName(s.name, s.index)).toBe('local-a.b-2-verify.state');
    bytes[30] ^= 1;
    expect(() => decodeFioState(bytes)).toThrow('the checksum does not match: the state is corrupt');
  });

  it('records the last iodepth completions, newest first, and stops where fio stops', () => {
    const log = new FioWriteLog(2);
    for (let i = 0; i < 5; i++) {
      log.issued++;
      log.complete(i * 4096);
    }
    log.issued++; // one more issued, never completed
    const s = log.state('w', 0);
    expect(s).toEqual({ name: 'w', index: 0, depth: 2, numberio: 6, comps: [16384, 12288] });
    // replaying 4k sequential writes: reads 0..3 go on unchecked, then only completed offsets
    const verified = [0, 1, 2, 3, 4, 5, 6].filter((i) => !fioStateStops(s, i, i * 4096));
    expect(verified).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("fio's json+ latency bins", () => {
  it("names buckets as fio does, and puts each latency in fio's bucket", () => {
    // bucket values taken from fio 3.33 json+ output
    for (const v of [2480, 2672, 4640, 350208, 19529728]) expect(fioPlatValue(fioPlatIndex(v))).toBe(v);
    expect(fioPlatIndex(100)).toBe(100);
    expect(fioPlatValue(fioPlatIndex(4096))).toBe(4096 + 32);
    const h = new LatencyHistogram();
    for (const v of [4100, 4150, 4160, 1e6]) h.record(v);
    expect(fioBins(h)).toEqual({ '4128': 2, '4192': 1, '1003520': 1 });
  });
});
