import { describe, expect, it } from 'vitest';
import {
  V4_COPY_SECTORS,
  V4_STRUCT_SIZE,
  chooseBestCopy,
  decodeV4Copy,
  encodeV4Copy,
  v4Checksum,
  v4EmptyTable,
  v4Entry,
  v4Metadata,
  type V4Metadata,
} from '../../src/metadata/dm-remap-v4.js';
import { MetadataFormatError, MetadataValueError } from '../../src/metadata/errors.js';

const NOW = 1_750_000_000; // seconds

/** Linux crc32_le by definition, to check the stored checksum independently. */
function crc32LeBitwise(seed: number, bytes: Uint8Array): number {
  let crc = seed >>> 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return crc >>> 0;
}

/** Index of the first differing byte, -1 when equal (deep toEqual is slow on 84 KB). */
const firstDiff = (a: Uint8Array, b: Uint8Array) => {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
};
const dvOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const cstr = (b: Uint8Array, off: number, len: number) => {
  const s = b.subarray(off, off + len);
  const end = s.indexOf(0);
  return String.fromCharCode(...s.subarray(0, end < 0 ? len : end));
};

/** Every field distinct, so a value found at the wrong offset cannot pass. */
function distinctMetadata(): V4Metadata {
  const fingerprint = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
  const expansion = Uint8Array.from({ length: 2048 }, (_, i) => (i * 7 + 3) & 0xff);
  return v4Metadata({
    sequence: 0x0102030405060708n,
    timestamp: 1_700_000_123n,
    copyIndex: 3,
    structureSize: 84288,
    reserved: 0xdeadbeef,
    mainUuid: '11111111-2222-3333-4444-555555555555',
    spareUuid: 'spare-uuid',
    mainSectors: (1n << 40n) + 11n,
    spareSectors: (1n << 33n) + 13n,
    sectorSize: 4096,
    remapCapacity: 4321,
    deviceFingerprint: fingerprint,
    deviceModel: 'WDC WD40EFRX-68N32N0',
    lastFullScan: 1_699_000_001n,
    nextScheduledScan: 1_699_086_401n,
    healthScore: 87,
    scanProgressPercent: 42,
    totalErrorsFound: 9,
    predictiveRemaps: 5,
    scanIntervalHours: 13,
    scanFlags: 0x55,
    scanStats: [1001, 1002, 1003, 1004],
    maxRemaps: 2047,
    nextSpareSector: 0x0badf00d,
    remapFlags: 6,
    entries: [
      v4Entry({
        originalSector: 0xfedcba9876543210n,
        spareSector: 77n,
        timestampNs: 1_700_000_000_123_456_789n,
        accessCount: 31,
        errorCount: 32,
        reason: 33,
        flags: 1,
      }),
      v4Entry({ originalSector: 1n << 48n, spareSector: (1n << 48n) + 1n, timestampNs: 5n, accessCount: 41, errorCount: 42, reason: 43, flags: 2 }),
      v4Entry({ originalSector: 999n, spareSector: 1000n, accessCount: 0xffffffff, errorCount: 7, reason: 0xffff, flags: 3 }),
    ],
    expansionVersion: 7,
    expansionSize: 2048,
    expansionData: expansion,
  });
}

function fullTable(n: number): V4Metadata {
  return v4Metadata({
    sequence: 9n,
    timestamp: BigInt(NOW - 60),
    mainSectors: 1n << 30n,
    spareSectors: 1n << 20n,
    entries: Array.from({ length: n }, (_, i) =>
      v4Entry({
        originalSector: BigInt(i) * 1_000_003n + 17n,
        spareSector: BigInt(i),
        timestampNs: BigInt(NOW) * 1_000_000_000n + BigInt(i),
        accessCount: i,
        errorCount: i % 5,
        reason: i % 3,
      }),
    ),
  });
}

/** Changes a u32 and recomputes the checksum, as a writer with other values would. */
function patchU32(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const b = bytes.slice();
  dvOf(b).setUint32(offset, value, true);
  dvOf(b).setUint32(24, v4Checksum(b), true);
  return b;
}

function patchU64(bytes: Uint8Array, offset: number, value: bigint): Uint8Array {
  const b = bytes.slice();
  dvOf(b).setBigUint64(offset, value, true);
  dvOf(b).setUint32(24, v4Checksum(b), true);
  return b;
}

describe('dm-remap-v4 metadata: layout', () => {
  it('writes every documented field at its documented offset', () => {
    const { bytes, dropped } = encodeV4Copy(distinctMetadata());
    expect(bytes.length).toBe(84288);
    expect(dropped).toBe(0);
    const dv = dvOf(bytes);
    expect(dv.getUint32(0, true)).toBe(0x444d5234);
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe('4RMD'); // "DMR4" as a little-endian u32
    expect(dv.getUint32(4, true)).toBe(4);
    expect(dv.getBigUint64(8, true)).toBe(0x0102030405060708n);
    expect(dv.getBigUint64(16, true)).toBe(1_700_000_123n);
    expect(dv.getUint32(28, true)).toBe(3);
    expect(dv.getUint32(32, true)).toBe(84288);
    expect(dv.getUint32(36, true)).toBe(0xdeadbeef);
    expect(cstr(bytes, 40, 37)).toBe('11111111-2222-3333-4444-555555555555');
    expect(bytes[76]).toBe(0); // 36 characters + NUL in char[37]
    expect(cstr(bytes, 77, 37)).toBe('spare-uuid');
    expect([...bytes.subarray(114, 120)]).toEqual([0, 0, 0, 0, 0, 0]);
    expect(dv.getBigUint64(120, true)).toBe((1n << 40n) + 11n);
    expect(dv.getBigUint64(128, true)).toBe((1n << 33n) + 13n);
    expect(dv.getUint32(136, true)).toBe(4096);
    expect(dv.getUint32(140, true)).toBe(4321);
    expect([...bytes.subarray(144, 176)]).toEqual(Array.from({ length: 32 }, (_, i) => 0xa0 + i));
    expect(cstr(bytes, 176, 64)).toBe('WDC WD40EFRX-68N32N0');
    expect(dv.getBigUint64(240, true)).toBe(1_699_000_001n);
    expect(dv.getBigUint64(248, true)).toBe(1_699_086_401n);
    expect(dv.getUint32(256, true)).toBe(87);
    expect(dv.getUint32(260, true)).toBe(42);
    expect(dv.getUint32(264, true)).toBe(9);
    expect(dv.getUint32(268, true)).toBe(5);
    expect(dv.getUint32(272, true)).toBe(13);
    expect(dv.getUint32(276, true)).toBe(0x55);
    expect([280, 284, 288, 292].map((o) => dv.getUint32(o, true))).toEqual([1001, 1002, 1003, 1004]);
    expect(dv.getUint32(296, true)).toBe(3);
    expect(dv.getUint32(300, true)).toBe(2047);
    expect(dv.getUint32(304, true)).toBe(0x0badf00d);
    expect(dv.getUint32(308, true)).toBe(6);
    // entry i at 312 + 40*i
    const e = (i: number, off: number) => 312 + 40 * i + off;
    expect(dv.getBigUint64(e(0, 0), true)).toBe(0xfedcba9876543210n);
    expect(dv.getBigUint64(e(0, 8), true)).toBe(77n);
    expect(dv.getBigUint64(e(0, 16), true)).toBe(1_700_000_000_123_456_789n);
    expect(dv.getUint32(e(0, 24), true)).toBe(31);
    expect(dv.getUint32(e(0, 28), true)).toBe(32);
    expect(dv.getUint16(e(0, 32), true)).toBe(33);
    expect(dv.getUint16(e(0, 34), true)).toBe(1);
    expect(dv.getUint32(e(0, 36), true)).toBe(0);
    expect(dv.getBigUint64(e(1, 0), true)).toBe(1n << 48n);
    expect(dv.getBigUint64(e(1, 8), true)).toBe((1n << 48n) + 1n);
    expect(dv.getUint16(e(1, 32), true)).toBe(43);
    expect(dv.getUint32(e(2, 24), true)).toBe(0xffffffff);
    expect(dv.getUint16(e(2, 32), true)).toBe(0xffff);
    expect(dv.getUint16(e(2, 34), true)).toBe(3);
    expect(bytes.subarray(e(3, 0), 82232).every((x) => x === 0)).toBe(true); // unused entry slots
    expect(dv.getUint32(82232, true)).toBe(7);
    expect(dv.getUint32(82236, true)).toBe(2048);
    expect(bytes[82240]).toBe(3);
    expect(bytes[84287]).toBe((2047 * 7 + 3) & 0xff);
    // checksum: crc32_le(0, ...) over [0,24) then [28,84288), computed by definition here
    const crc = crc32LeBitwise(crc32LeBitwise(0, bytes.subarray(0, 24)), bytes.subarray(28));
    expect(dv.getUint32(24, true)).toBe(crc);
  });

  it('decodes what it encodes, and re-encodes it to the same bytes', () => {
    const meta = distinctMetadata();
    const { bytes } = encodeV4Copy(meta);
    const r = decodeV4Copy(bytes, NOW);
    if (!r.valid) throw new Error(r.message);
    expect(r.metadata).toEqual(meta);
    expect(firstDiff(encodeV4Copy(r.metadata).bytes, bytes)).toBe(-1);
  });

  it('chooses among copies that repeat one another as among copies decoded one by one', () => {
    const meta = distinctMetadata();
    const a = encodeV4Copy(meta).bytes;
    const b = encodeV4Copy({ ...meta, sequence: meta.sequence + 1n }).bytes;
    const copies = [a, a.slice(), b, null, a.slice(), b.slice()];
    const c = chooseBestCopy(copies, NOW);
    copies.forEach((x, i) => {
      if (x !== null) expect(c.results[i]).toEqual(decodeV4Copy(x, NOW));
    });
    expect(c.results[3]).toMatchObject({ valid: false, reason: 'unreadable' });
    expect(c.best?.index).toBe(2);
    expect(c.rewrite).toEqual([0, 1, 3, 4]);
  });

  it('encodes into given memory exactly as into new memory, whatever that memory held', () => {
    const meta = distinctMetadata();
    const into = new Uint8Array(V4_STRUCT_SIZE + 512).fill(0xee);
    const e = encodeV4Copy(meta, into);
    expect(e.bytes.buffer).toBe(into.buffer);
    expect(e.bytes.length).toBe(V4_STRUCT_SIZE);
    expect(firstDiff(e.bytes, encodeV4Copy(meta).bytes)).toBe(-1);
    expect(e.checksum).toBe(encodeV4Copy(meta).checksum);
  });

  it('the empty table carries the fixed values the module writes', () => {
    const meta = v4EmptyTable({ mainSectors: 204800, spareSectors: 40960, timestamp: NOW });
    const { bytes } = encodeV4Copy(meta);
    const dv = dvOf(bytes);
    expect(dv.getUint32(0, true)).toBe(0x444d5234);
    expect(dv.getUint32(4, true)).toBe(4);
    expect(dv.getBigUint64(8, true)).toBe(1n);
    expect(dv.getBigUint64(16, true)).toBe(BigInt(NOW));
    expect(dv.getUint32(28, true)).toBe(0); // copy index written as 0
    expect(dv.getUint32(32, true)).toBe(84288);
    expect(cstr(bytes, 40, 37)).toBe('');
    expect(cstr(bytes, 77, 37)).toBe('');
    expect(dv.getBigUint64(120, true)).toBe(204800n);
    expect(dv.getBigUint64(128, true)).toBe(40960n);
    expect(dv.getUint32(136, true)).toBe(512);
    expect(dv.getUint32(140, true)).toBe(0);
    expect(bytes.subarray(144, 240).every((x) => x === 0)).toBe(true);
    expect(dv.getUint32(256, true)).toBe(100);
    expect(dv.getUint32(272, true)).toBe(24);
    expect(dv.getUint32(296, true)).toBe(0);
    expect(dv.getUint32(300, true)).toBe(2048);
    expect(dv.getUint32(304, true)).toBe(0);
    expect(decodeV4Copy(bytes, NOW).valid).toBe(true);
    expect(V4_COPY_SECTORS).toEqual([0, 256, 512, 768, 1024]);
    expect(V4_STRUCT_SIZE).toBe(84288);
  });
});

describe('dm-remap-v4 metadata: remap entries', () => {
  it('round-trips a full table of 2048 entries', () => {
    const meta = fullTable(2048);
    const enc = encodeV4Copy(meta);
    expect(enc.dropped).toBe(0);
    expect(dvOf(enc.bytes).getUint32(296, true)).toBe(2048);
    const r = decodeV4Copy(enc.bytes, NOW);
    if (!r.valid) throw new Error(r.message);
    expect(r.metadata.entries).toHaveLength(2048);
    expect(r.metadata).toEqual(meta);
    // the last entry ends exactly where the expansion area starts
    expect(dvOf(enc.bytes).getBigUint64(312 + 40 * 2047, true)).toBe(2047n * 1_000_003n + 17n);
    expect(312 + 40 * 2048).toBe(82232);
  });

  it('keeps the first 2048 of 2049 entries and reports one dropped', () => {
    const meta = fullTable(2049);
    const enc = encodeV4Copy(meta);
    expect(enc.dropped).toBe(1);
    expect(dvOf(enc.bytes).getUint32(296, true)).toBe(2048);
    const r = decodeV4Copy(enc.bytes, NOW);
    if (!r.valid) throw new Error(r.message);
    expect(r.metadata.entries).toEqual(meta.entries.slice(0, 2048));
    expect(firstDiff(encodeV4Copy(fullTable(2048)).bytes, enc.bytes)).toBe(-1);
  });
});

describe('dm-remap-v4 metadata: validity', () => {
  const good = encodeV4Copy(v4EmptyTable({ mainSectors: 2048, spareSectors: 4096, timestamp: NOW })).bytes;

  it('a good copy is valid', () => {
    expect(decodeV4Copy(good, NOW).valid).toBe(true);
  });

  it.each([
    ['bad-magic', () => patchU32(good, 0, 0x444d5233)],
    ['bad-version', () => patchU32(good, 4, 3)],
    [
      'bad-crc',
      () => {
        const b = good.slice();
        b[5000] ^= 1;
        return b;
      },
    ],
    [
      'bad-crc',
      () => {
        const b = good.slice();
        b[24] ^= 0x80;
        return b;
      },
    ],
    ['too-many-remaps', () => patchU32(good, 296, 2049)],
    ['too-many-remaps', () => patchU32(good, 296, 0xffffffff)],
    ['bad-health', () => patchU32(good, 256, 101)],
    ['future-timestamp', () => patchU64(good, 16, BigInt(NOW + 86401))],
    ['future-timestamp', () => patchU64(good, 16, 0xffffffffffffffffn)],
  ] as const)('reports %s', (reason, make) => {
    const r = decodeV4Copy(make(), NOW);
    expect(r.valid).toBe(false);
    if (!r.valid) {
      expect(r.reason).toBe(reason);
      expect(r.message).not.toMatch(/\n/);
    }
  });

  it('accepts the boundaries: 2048 remaps, health 100, timestamp now + 86400', () => {
    expect(decodeV4Copy(patchU32(good, 256, 100), NOW).valid).toBe(true);
    expect(decodeV4Copy(patchU64(good, 16, BigInt(NOW + 86400)), NOW).valid).toBe(true);
    const full = encodeV4Copy(fullTable(2048)).bytes;
    expect(decodeV4Copy(full, NOW).valid).toBe(true);
  });

  it('checks in the module order: magic before checksum, checksum before the counts', () => {
    const b = good.slice();
    b[0] = 0;
    b[1000] ^= 0xff;
    expect(decodeV4Copy(b, NOW)).toMatchObject({ valid: false, reason: 'bad-magic' });
    const c = good.slice();
    dvOf(c).setUint32(296, 5000, true); // not resealed
    expect(decodeV4Copy(c, NOW)).toMatchObject({ valid: false, reason: 'bad-crc' });
  });

  it('refuses a truncated buffer with MetadataFormatError, and ignores bytes past the struct', () => {
    expect(() => decodeV4Copy(good.subarray(0, 84287), NOW)).toThrow(MetadataFormatError);
    const longer = new Uint8Array(84288 + 512).fill(0xee);
    longer.set(good);
    expect(decodeV4Copy(longer, NOW).valid).toBe(true);
  });

  it('encoder refuses out-of-range values with a message naming the field', () => {
    const m = v4Metadata();
    expect(() => encodeV4Copy({ ...m, healthScore: -1 })).toThrow(/healthScore must be an integer in \[0, 4294967295\]/);
    expect(() => encodeV4Copy({ ...m, mainUuid: 'x'.repeat(38) })).toThrow(MetadataValueError);
    expect(() => encodeV4Copy({ ...m, sequence: -1n })).toThrow(/sequence must be an integer in \[0, 2\^64-1\]/);
    expect(() => encodeV4Copy({ ...m, entries: [{ ...v4Entry({ originalSector: 1, spareSector: 2 }), reason: 70000 }] })).toThrow(/entries\[0\]\.reason/);
    expect(() => encodeV4Copy({ ...m, deviceFingerprint: new Uint8Array(31) })).toThrow(/deviceFingerprint/);
  });
});

describe('dm-remap-v4 metadata: choosing the copy', () => {
  const copy = (sequence: bigint, timestamp: number, n = 0) =>
    encodeV4Copy(v4Metadata({ sequence, timestamp: BigInt(timestamp), entries: fullTable(n).entries })).bytes;

  it('the valid copy with the highest sequence wins, and the others are to be rewritten', () => {
    const copies = [copy(5n, NOW - 10, 1), copy(7n, NOW - 20, 2), copy(6n, NOW, 3), copy(7n, NOW - 30, 4), copy(2n, NOW, 5)];
    const c = chooseBestCopy(copies, NOW);
    expect(c.best?.index).toBe(1);
    expect(c.best?.metadata.entries).toHaveLength(2);
    expect(c.rewrite).toEqual([0, 2, 4]); // copy 3 has the same sequence
  });

  it('a tie on sequence goes to the newer timestamp; an exact tie keeps the first', () => {
    expect(chooseBestCopy([copy(7n, NOW - 20, 1), copy(7n, NOW - 5, 2), copy(7n, NOW - 9, 3)], NOW).best?.index).toBe(1);
    expect(chooseBestCopy([copy(7n, NOW - 5, 1), copy(7n, NOW - 5, 2)], NOW).best?.index).toBe(0);
  });

  it('ignores invalid and unreadable copies even with a higher sequence', () => {
    const future = copy(99n, NOW + 86401);
    const crcBad = copy(98n, NOW);
    crcBad[400] ^= 1;
    const c = chooseBestCopy([future, null, crcBad, copy(3n, NOW - 1, 1), copy(3n, NOW - 1, 1)], NOW);
    expect(c.best?.index).toBe(3);
    expect(c.results.map((r) => (r.valid ? 'ok' : r.reason))).toEqual(['future-timestamp', 'unreadable', 'bad-crc', 'ok', 'ok']);
    expect(c.rewrite).toEqual([0, 1, 2]);
  });

  it('with no valid copy there is no winner, every copy is rewritten, with the empty table', () => {
    const zero = new Uint8Array(84288);
    const c = chooseBestCopy([zero, zero, null, zero.subarray(0, 100), zero], NOW);
    expect(c.best).toBeNull();
    expect(c.rewrite).toEqual([0, 1, 2, 3, 4]);
    const empty = encodeV4Copy(v4EmptyTable({ mainSectors: 2048, spareSectors: 4096, timestamp: NOW })).bytes;
    const after = chooseBestCopy([empty, empty, empty, empty, empty], NOW);
    expect(after.best?.metadata.entries).toEqual([]);
    expect(after.rewrite).toEqual([]);
  });

  it('as in the module loop, a copy with sequence 0 and timestamp 0 never wins', () => {
    expect(chooseBestCopy([copy(0n, 0)], NOW).best).toBeNull();
    expect(chooseBestCopy([copy(0n, 0), copy(0n, 1)], NOW).best?.index).toBe(1);
  });
});
