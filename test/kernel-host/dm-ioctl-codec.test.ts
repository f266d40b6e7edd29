import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DM_BUFFER_FULL_FLAG,
  DM_DATA_OUT_FLAG,
  DM_DEV_CREATE,
  DM_GET_TARGET_VERSION,
  DM_IOCTL_SIZE,
  DM_LIST_DEVICES,
  DM_PERSISTENT_DEV_FLAG,
  DM_READONLY_FLAG,
  DM_SUSPEND_FLAG,
  DM_TABLE_LOAD,
  DM_TARGET_MSG,
  DM_UUID_FLAG,
  DM_VERSION,
  DmCodecError,
  decodeDmIoctl,
  decodeMessageReply,
  decodeNameList,
  decodeTableLoad,
  decodeTargetDeps,
  decodeTargetSpecs,
  decodeTargetVersions,
  dmFlagNames,
  dmIoctlRequest,
  encodeRename,
  encodeRequest,
  encodeTableLoad,
  encodeTargetMessage,
  formatTargetLine,
  newDecodeDev,
  newEncodeDev,
} from '../../src/kernel/dm-ioctl-codec.js';
import { hex, z } from './golden.js';

/** A reply header as the kernel leaves it: version 4.50.0, data_start 312. */
function replyHeader(o: {
  dataSize: number;
  flags?: number;
  targetCount?: number;
  openCount?: string;
  eventNr?: string;
  dev?: string;
  name?: string;
  uuid?: string;
}): string {
  return `
    04000000 32000000 00000000                 // version 4.50.0
    ${o.dataSize
      .toString(16)
      .padStart(4, '0')
      .replace(/(..)(..)/, '$2$1')}0000 // data_size
    38010000                                   // data_start 312
    ${(o.targetCount ?? 0).toString(16).padStart(2, '0')}000000 // target_count
    ${o.openCount ?? '00000000'}               // open_count
    ${(o.flags ?? 0)
      .toString(16)
      .padStart(8, '0')
      .replace(/(..)(..)(..)(..)/, '$4$3$2$1')} // flags
    ${o.eventNr ?? '00000000'}                 // event_nr
    00000000                                   // padding
    ${o.dev ?? z(8)}                           // dev
    ${o.name ?? ''}${z(128 - (o.name ?? '').length / 2)} // name[128]
    ${o.uuid ?? ''}${z(129 - (o.uuid ?? '').length / 2)} // uuid[129]
    ${z(7)}                                    // data[7]
  `;
}

describe('struct dm_ioctl layout', () => {
  it('is 312 bytes with the fields where the uapi header puts them', () => {
    const buf = encodeRequest({ name: 'n', uuid: 'u', dev: 0x0102030405, flags: 0x11223344, eventNr: 0x55667788, version: [4, 1, 2] }, undefined, 0x99);
    expect(buf.length).toBe(DM_IOCTL_SIZE);
    expect(buf.readUInt32LE(0)).toBe(4);
    expect(buf.readUInt32LE(4)).toBe(1);
    expect(buf.readUInt32LE(8)).toBe(2);
    expect(buf.readUInt32LE(12)).toBe(312); // data_size
    expect(buf.readUInt32LE(16)).toBe(312); // data_start
    expect(buf.readUInt32LE(20)).toBe(0x99); // target_count
    expect(buf.readUInt32LE(28)).toBe(0x11223344); // flags
    expect(buf.readUInt32LE(32)).toBe(0x55667788); // event_nr
    expect(buf.readBigUInt64LE(40)).toBe(0x0102030405n); // dev
    expect(buf[48]).toBe(0x6e); // name
    expect(buf[176]).toBe(0x75); // uuid
  });

  it('encodes the ioctl numbers as _IOWR(0xfd, nr, struct dm_ioctl)', () => {
    expect(DM_VERSION).toBe(0xc138fd00);
    expect(DM_LIST_DEVICES).toBe(0xc138fd02);
    expect(DM_DEV_CREATE).toBe(0xc138fd03);
    expect(DM_TABLE_LOAD).toBe(0xc138fd09);
    expect(DM_TARGET_MSG).toBe(0xc138fd0e);
    expect(DM_GET_TARGET_VERSION).toBe(0xc138fd11);
    expect(() => dmIoctlRequest(256)).toThrow(DmCodecError);
  });

  it('names flags', () => {
    expect(dmFlagNames(DM_SUSPEND_FLAG | (1 << 5) | (1 << 31))).toEqual(['SUSPEND', 'ACTIVE_PRESENT', 'bit 31']);
  });
});

describe('dev_t helpers', () => {
  it('follow new_encode_dev / new_decode_dev', () => {
    expect(newEncodeDev(253, 0)).toBe(0xfd00);
    expect(newEncodeDev(7, 300)).toBe(0x10072c);
    expect(newEncodeDev(259, 0x12345)).toBe(0x12310345);
    expect(newDecodeDev(0x12310345)).toEqual({ major: 259, minor: 0x12345 });
    expect(newDecodeDev(0xffffffff00000fd01n)).toEqual({ major: 253, minor: 1 }); // huge_decode_dev uses the low 32 bits
    expect(() => newEncodeDev(4096, 0)).toThrow(/major 4096 is out of range 0..4095/);
    expect(() => newEncodeDev(1, 1 << 20)).toThrow(/minor 1048576 is out of range/);
  });

  it('round-trip every major/minor', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xfff }), fc.integer({ min: 0, max: 0xfffff }), (major, minor) => {
        expect(newDecodeDev(newEncodeDev(major, minor))).toEqual({ major, minor });
      }),
    );
  });
});

describe('requests, golden bytes', () => {
  it('DM_VERSION', () => {
    expect(encodeRequest({})).toEqual(
      hex(`
        04000000 00000000 00000000  // version 4.0.0
        38010000                    // data_size 312
        38010000                    // data_start 312
        00000000 00000000 00000000  // target_count, open_count, flags
        00000000 00000000           // event_nr, padding
        0000000000000000            // dev
        ${z(128)} ${z(129)} ${z(7)} // name, uuid, data
      `),
    );
  });

  it('DM_DEV_CREATE with a uuid and a fixed minor', () => {
    const buf = encodeRequest({ name: 'vol0', uuid: 'REMAP-1', flags: DM_PERSISTENT_DEV_FLAG, dev: newEncodeDev(0, 5) });
    expect(buf).toEqual(
      hex(`
        04000000 00000000 00000000
        38010000 38010000
        00000000 00000000
        08000000                         // DM_PERSISTENT_DEV_FLAG
        00000000 00000000
        0500000000000000                 // dev: minor 5
        766f6c30 ${z(124)}               // "vol0"
        52454d41502d31 ${z(122)}         // "REMAP-1"
        ${z(7)}
      `),
    );
  });

  it('DM_TABLE_LOAD with two targets: specs padded to 8, next relative to the current spec', () => {
    const buf = encodeTableLoad({ name: 'vol0', flags: DM_READONLY_FLAG }, [
      { start: 0, length: 2048, type: 'linear', params: '7:0 0' },
      { start: 2048, length: 2048, type: 'error', params: '' },
    ]);
    expect(buf).toEqual(
      hex(`
        04000000 00000000 00000000
        98010000                         // data_size 408 = 312 + 48 + 48
        38010000                         // data_start
        02000000                         // target_count 2
        00000000
        01000000                         // DM_READONLY_FLAG
        00000000 00000000
        0000000000000000
        766f6c30 ${z(124)}
        ${z(129)} ${z(7)}
        // spec 0 at 312
        0000000000000000                 // sector_start 0
        0008000000000000                 // length 2048
        00000000                         // status
        30000000                         // next 48
        6c696e656172 ${z(10)}            // "linear"
        373a302030 00 0000               // "7:0 0", NUL, pad to 8
        // spec 1 at 360
        0008000000000000                 // sector_start 2048
        0008000000000000                 // length 2048
        00000000
        30000000                         // next 48
        6572726f72 ${z(11)}              // "error"
        00 ${z(7)}                       // "", NUL, pad
      `),
    );
    expect(decodeTableLoad(buf)).toEqual([
      { start: 0, length: 2048, type: 'linear', params: '7:0 0' },
      { start: 2048, length: 2048, type: 'error', params: '' },
    ]);
  });

  it('DM_TARGET_MSG: sector and message at data_start, room for the reply', () => {
    const buf = encodeTargetMessage({ name: 'vol0', bufferSize: 400 }, 8, 'stats');
    expect(buf).toEqual(
      hex(`
        04000000 00000000 00000000
        90010000                         // data_size 400
        38010000
        00000000 00000000 00000000 00000000 00000000
        0000000000000000
        766f6c30 ${z(124)} ${z(129)} ${z(7)}
        0800000000000000                 // sector 8
        7374617473 00                    // "stats"
        ${z(400 - 312 - 14)}
      `),
    );
  });

  it('DM_DEV_RENAME puts the new name at data_start; with setUuid it raises DM_UUID_FLAG', () => {
    const buf = encodeRename({ name: 'old' }, 'new');
    expect(buf.length).toBe(320);
    expect(buf.subarray(312, 316)).toEqual(hex('6e657700'));
    expect(decodeDmIoctl(encodeRename({ name: 'old' }, 'U-1', true)).flags).toBe(DM_UUID_FLAG);
  });

  it('table load round-trips through the kernel reading rules', () => {
    const target = fc.record({
      start: fc.integer({ min: 0, max: 2 ** 40 }),
      length: fc.integer({ min: 1, max: 2 ** 40 }),
      type: fc.constantFrom('linear', 'error', 'dust', 'flakey', 'zero', 'dm-remap-v4'),
      params: fc.string({ maxLength: 200 }).filter((s) => !s.includes('\0')),
    });
    fc.assert(
      fc.property(fc.array(target, { minLength: 1, maxLength: 8 }), (targets) => {
        expect(decodeTableLoad(encodeTableLoad({ name: 'x' }, targets))).toEqual(targets);
      }),
    );
  });

  it('refuses what the kernel would refuse, naming the field and range', () => {
    expect(() => encodeRequest({ name: 'n'.repeat(128) })).toThrow('device name is 128 bytes; the limit is 127');
    expect(() => encodeRequest({ uuid: 'u'.repeat(129) })).toThrow('device uuid is 129 bytes; the limit is 128');
    expect(() => encodeTableLoad({ name: 'x' }, [{ start: 0, length: 1, type: 'sixteen-chars-xx', params: '' }])).toThrow(
      "target 0 type 'sixteen-chars-xx' must be 1..15 bytes",
    );
    expect(() => encodeTableLoad({ name: 'x' }, [{ start: -1, length: 1, type: 'zero', params: '' }])).toThrow(/target 0 start sector must be an integer/);
    expect(() => encodeTableLoad({ name: 'x' }, [{ start: 0, length: 1, type: 'zero', params: 'a\0b' }])).toThrow(
      'target 0 parameters must not contain a NUL character',
    );
    expect(() => encodeTableLoad({ name: 'x' }, [])).toThrow('a table needs at least one target');
    expect(() => encodeTargetMessage({ name: 'x' }, 0, '  ')).toThrow('target message must not be empty');
    expect(() => encodeRename({ name: 'x' }, 'a/b')).toThrow("must not contain '/'");
  });

  it('decodeTableLoad rejects a misaligned next like populate_table()', () => {
    const buf = encodeTableLoad({ name: 'x' }, [
      { start: 0, length: 8, type: 'zero', params: '' },
      { start: 8, length: 8, type: 'zero', params: '' },
    ]);
    buf.writeUInt32LE(44, 312 + 20);
    expect(() => decodeTableLoad(buf)).toThrow('target 1: next offset 44 is not 8-byte aligned');
  });
});

describe('replies built in the kernel layout', () => {
  it('header of a DM_DEV_STATUS reply', () => {
    const h = decodeDmIoctl(
      hex(
        replyHeader({
          dataSize: 305,
          flags: DM_SUSPEND_FLAG | (1 << 6),
          targetCount: 1,
          openCount: 'ffffffff',
          eventNr: '07000000',
          dev: '02fd000000000000',
          name: '766f6c30',
          uuid: '5531',
        }) + z(0),
      ),
    );
    expect(h).toEqual({
      version: [4, 50, 0],
      dataSize: 305,
      dataStart: 312,
      targetCount: 1,
      openCount: -1,
      flags: DM_SUSPEND_FLAG | (1 << 6),
      eventNr: 7,
      dev: 0xfd02,
      name: 'vol0',
      uuid: 'U1',
    });
  });

  it('DM_LIST_DEVICES from a kernel with the event_nr/flags/uuid trailer', () => {
    const buf = hex(
      replyHeader({ dataSize: 368, flags: DM_UUID_FLAG }) +
        `
        // record 0 at 312
        00fd000000000000     // dev 253:0
        20000000             // next 32
        6100                 // "a"
        0000                 // to the 8-byte boundary (328)
        03000000 01000000    // event_nr 3, DM_NAME_LIST_FLAG_HAS_UUID
        553100 ${z(5)}       // uuid "U1" at 336, padded to 344
        // record 1 at 344
        01fd000000000000     // dev 253:1
        00000000             // next 0: last
        626200               // "bb"
        00                   // to 360
        00000000 02000000    // event_nr 0, DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID
      `,
    );
    expect(decodeNameList(buf)).toEqual([
      { name: 'a', dev: 0xfd00, major: 253, minor: 0, eventNr: 3, listFlags: 1, uuid: 'U1' },
      { name: 'bb', dev: 0xfd01, major: 253, minor: 1, eventNr: 0, listFlags: 2, uuid: '' },
    ]);
  });

  it('DM_LIST_DEVICES from an old kernel (name only) and from one with event_nr but no uuid', () => {
    const old = hex(
      replyHeader({ dataSize: 344 }) +
        `
        00fd000000000000 10000000 6100 ${z(2)}       // "a", next 16
        01fd000000000000 00000000 626200 ${z(1)}     // "bb", last, ends at 344
      `,
    );
    expect(decodeNameList(old)).toEqual([
      { name: 'a', dev: 0xfd00, major: 253, minor: 0 },
      { name: 'bb', dev: 0xfd01, major: 253, minor: 1 },
    ]);
    const mid = hex(
      replyHeader({ dataSize: 336 }) +
        `
        05fd000000000000 00000000 6300 ${z(2)}       // "c" at 324, trailer at 328
        09000000 00000000                            // event_nr 9, no uuid flags
      `,
    );
    expect(decodeNameList(mid)).toEqual([{ name: 'c', dev: 0xfd05, major: 253, minor: 5, eventNr: 9, listFlags: 0 }]);
  });

  it('DM_LIST_DEVICES with no devices: data_size == data_start, or a zero dev', () => {
    expect(decodeNameList(hex(replyHeader({ dataSize: 312 }) + z(16)))).toEqual([]);
    expect(decodeNameList(hex(replyHeader({ dataSize: 320 }) + z(16)))).toEqual([]);
  });

  it('DM_LIST_DEVICES with DM_BUFFER_FULL_FLAG or a record past the end is refused', () => {
    expect(() => decodeNameList(hex(replyHeader({ dataSize: 312, flags: DM_BUFFER_FULL_FLAG })))).toThrow(/DM_BUFFER_FULL_FLAG/);
    const bad = hex(replyHeader({ dataSize: 336 }) + `00fd000000000000 40000000 6100 ${z(10)}`);
    expect(() => decodeNameList(bad)).toThrow(/runs past the end/);
  });

  it('DM_LIST_VERSIONS with the kernel sizing slack in data_size', () => {
    const buf = hex(
      replyHeader({ dataSize: 371 }) +
        `
        18000000 01000000 04000000 00000000   // next 24, v1.4.0
        6c696e65617200                        // "linear"
        00                                    // pad to 336
        00000000 01000000 06000000 00000000   // last, v1.6.0
        6572726f7200                          // "error"
        ${z(13)}                              // pad + slack to 371
      `,
    );
    expect(decodeTargetVersions(buf)).toEqual([
      { name: 'linear', version: [1, 4, 0] },
      { name: 'error', version: [1, 6, 0] },
    ]);
  });

  it('DM_TABLE_STATUS: next counts from the first spec, data_size ends at the last NUL', () => {
    const buf = hex(
      replyHeader({ dataSize: 452, targetCount: 3 }) +
        `
        // spec 0 at 312
        0000000000000000 0008000000000000 00000000
        30000000                 // next 48: spec 1 at 312 + 48
        6c696e656172 ${z(10)}
        373a302030 00 0000       // "7:0 0"
        // spec 1 at 360
        0008000000000000 0008000000000000 00000000
        60000000                 // next 96: spec 2 at 312 + 96 (360 + 96 would be wrong)
        6572726f72 ${z(11)}
        00 ${z(7)}               // ""
        // spec 2 at 408
        0010000000000000 0800000000000000 00000000
        90000000                 // next 144 (past the end)
        7a65726f ${z(12)}
        7820790000               // "x y" then NUL; data_size 452
      `,
    );
    const specs = decodeTargetSpecs(buf);
    expect(specs).toEqual([
      { start: 0, length: 2048, status: 0, type: 'linear', params: '7:0 0' },
      { start: 2048, length: 2048, status: 0, type: 'error', params: '' },
      { start: 4096, length: 8, status: 0, type: 'zero', params: 'x y' },
    ]);
    expect(specs.map(formatTargetLine)).toEqual(['0 2048 linear 7:0 0', '2048 2048 error', '4096 8 zero x y']);
  });

  it('DM_TABLE_STATUS of a device without a table: no targets, data_size 305', () => {
    expect(decodeTargetSpecs(hex(replyHeader({ dataSize: 305 })))).toEqual([]);
  });

  it('DM_TABLE_DEPS', () => {
    const buf = hex(replyHeader({ dataSize: 336 }) + `02000000 00000000 0007000000000000 0107000000000000`);
    expect(decodeTargetDeps(buf).map((d) => newDecodeDev(d))).toEqual([
      { major: 7, minor: 0 },
      { major: 7, minor: 1 },
    ]);
    expect(decodeTargetDeps(hex(replyHeader({ dataSize: 305 })))).toEqual([]);
    expect(() => decodeTargetDeps(hex(replyHeader({ dataSize: 328 }) + `02000000 00000000 0007000000000000`))).toThrow(/2 devices do not fit/);
  });

  it('DM_TARGET_MSG reply: text only with DM_DATA_OUT_FLAG', () => {
    const text = hex(replyHeader({ dataSize: 324, flags: DM_DATA_OUT_FLAG }) + `68656c6c6f20776f726c6400`);
    expect(decodeMessageReply(text)).toBe('hello world');
    expect(decodeMessageReply(hex(replyHeader({ dataSize: 305 })))).toBeUndefined();
    expect(() => decodeMessageReply(hex(replyHeader({ dataSize: 305, flags: DM_DATA_OUT_FLAG | DM_BUFFER_FULL_FLAG })))).toThrow(/truncated/);
  });
});
