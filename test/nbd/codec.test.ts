import { describe, expect, it } from 'vitest';
import { EINVAL, EIO, ENODATA, ENOSPC, EOPNOTSUPP, EROFS } from '../../src/block/device.js';
import {
  blockSizeProblem,
  ClientFlag,
  Cmd,
  CmdFlag,
  cmdName,
  encodeChunk,
  encodeClientFlags,
  encodeDataChunkHeader,
  encodeExportNameReply,
  encodeGreeting,
  encodeOption,
  encodeOptionReply,
  encodeRequest,
  encodeRequestHeader,
  encodeSimpleReply,
  HandshakeFlag,
  Info,
  NbdClientParser,
  NbdError,
  nbdErrorFromStatus,
  NbdProtocolError,
  NbdServerParser,
  Opt,
  optionCode,
  Rep,
  ReplyFlag,
  ReplyType,
  repName,
  statusFromNbdError,
  TransmissionFlag,
  transmissionFlagNames,
} from '../../src/nbd/protocol.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const COOKIE = 0x0102030405060708n;

/** A server parser already past the client flags and in the given phase. */
function serverParser(phase: 'options' | 'transmission', limits = {}): NbdServerParser {
  const p = new NbdServerParser(limits);
  p.push(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES));
  expect(p.next()).toEqual({ kind: 'client-flags', flags: 3 });
  if (phase === 'transmission') {
    p.push(encodeOption({ kind: 'export-name', name: '' }));
    expect(p.next()).toEqual({ kind: 'export-name', name: '' });
  }
  return p;
}

/** A client parser already past the greeting and, if asked, in transmission. */
function clientParser(phase: 'options' | 'transmission'): NbdClientParser {
  const p = new NbdClientParser();
  p.push(encodeGreeting(3));
  expect(p.next()).toEqual({ kind: 'greeting', handshakeFlags: 3 });
  if (phase === 'transmission') {
    p.push(encodeOptionReply({ kind: 'rep-ack', option: Opt.GO }));
    expect(p.next()).toEqual({ kind: 'rep-ack', option: Opt.GO });
    expect(p.phase).toBe('transmission');
  }
  return p;
}

describe('NBD codec: golden bytes (from the layouts in doc/proto.md)', () => {
  it('greeting: NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE|NO_ZEROES', () => {
    const g = encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES);
    expect(g).toEqual(Buffer.concat([Buffer.from('NBDMAGICIHAVEOPT', 'latin1'), hex('0003')]));
    expect(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE)).toEqual(hex('00000001'));
  });

  it('NBD_OPT_GO with a name and one info request', () => {
    const wire = hex('49484156454f5054 00000007 00000009 00000001 61 0001 0003');
    expect(encodeOption({ kind: 'go', name: 'a', infoRequests: [Info.BLOCK_SIZE] })).toEqual(wire);
    const p = serverParser('options');
    p.push(wire);
    expect(p.next()).toEqual({ kind: 'go', name: 'a', infoRequests: [3] });
    expect(p.phase).toBe('awaiting-go');
  });

  it('option replies: NBD_REP_INFO(NBD_INFO_EXPORT) and NBD_REP_ERR_UNSUP with a message', () => {
    const info = hex('0003e889045565a9 00000007 00000003 0000000c 0000 0000000100000000 0ded');
    expect(encodeOptionReply({ kind: 'rep-info', option: Opt.GO, info: { kind: 'export', size: 2 ** 32, transmissionFlags: 0x0ded } })).toEqual(info);
    const err = hex('0003e889045565a9 0000000b 80000001 00000002 6e6f');
    expect(encodeOptionReply({ kind: 'rep-error', option: Opt.EXTENDED_HEADERS, reply: Rep.ERR_UNSUP, message: 'no' })).toEqual(err);
    const p = clientParser('options');
    p.push(Buffer.concat([info, err]));
    expect(p.drain()).toEqual([
      { kind: 'rep-info', option: 7, info: { kind: 'export', size: 2 ** 32, transmissionFlags: 0x0ded } },
      { kind: 'rep-error', option: 11, reply: Rep.ERR_UNSUP, message: 'no' },
    ]);
  });

  it('NBD_REP_SERVER, NBD_INFO_BLOCK_SIZE and NBD_REP_META_CONTEXT layouts', () => {
    expect(encodeOptionReply({ kind: 'rep-server', option: Opt.LIST, name: 'ab', description: 'c' })).toEqual(
      hex('0003e889045565a9 00000003 00000002 00000007 00000002 6162 63'),
    );
    expect(encodeOptionReply({ kind: 'rep-info', option: Opt.INFO, info: { kind: 'block-size', minimum: 512, preferred: 4096, maximum: 0x2000000 } })).toEqual(
      hex('0003e889045565a9 00000006 00000003 0000000e 0003 00000200 00001000 02000000'),
    );
    expect(encodeOptionReply({ kind: 'rep-meta-context', option: Opt.SET_META_CONTEXT, contextId: 1, name: 'b:a' })).toEqual(
      hex('0003e889045565a9 0000000a 00000004 00000007 00000001 623a61'),
    );
  });

  it('export name reply: 134 bytes, or 10 with NO_ZEROES', () => {
    const short = hex('0000000000100000 0001');
    expect(encodeExportNameReply({ size: 1 << 20, transmissionFlags: TransmissionFlag.HAS_FLAGS }, true)).toEqual(short);
    const long = encodeExportNameReply({ size: 1 << 20, transmissionFlags: TransmissionFlag.HAS_FLAGS }, false);
    expect(long).toEqual(Buffer.concat([short, Buffer.alloc(124)]));
    for (const [noZeroes, wire] of [
      [true, short],
      [false, long],
    ] as const) {
      const p = clientParser('options');
      p.expectExportNameReply(noZeroes);
      p.push(wire);
      expect(p.next()).toEqual({ kind: 'export-name-reply', size: 1 << 20, transmissionFlags: 1 });
      expect(p.phase).toBe('transmission');
      expect(p.buffered).toBe(0);
    }
  });

  it('WRITE request with FUA: header then payload', () => {
    const wire = hex('25609513 0001 0001 0102030405060708 0000000100000000 00000004 deadbeef');
    const req = { kind: 'request' as const, type: Cmd.WRITE, flags: CmdFlag.FUA, cookie: COOKIE, offset: 2 ** 32, length: 4, data: hex('deadbeef') };
    expect(encodeRequest(req)).toEqual(wire);
    expect(encodeRequestHeader(req)).toEqual(wire.subarray(0, 28));
    const p = serverParser('transmission');
    p.push(wire);
    expect(p.next()).toEqual(req);
  });

  it('simple reply: EIO for a cookie', () => {
    const wire = hex('67446698 00000005 0102030405060708');
    expect(encodeSimpleReply({ error: NbdError.EIO, cookie: COOKIE })).toEqual(wire);
    const p = clientParser('transmission');
    p.push(wire);
    expect(p.next()).toEqual({ kind: 'simple-reply', error: 5, cookie: COOKIE });
  });

  it('structured chunks: OFFSET_DATA (header-only encoder too), OFFSET_HOLE, ERROR, ERROR_OFFSET, NONE', () => {
    const data = hex('668e33ef 0000 0001 0102030405060708 0000000c 0000000000001000 01020304');
    expect(encodeChunk({ kind: 'chunk-data', flags: 0, cookie: COOKIE, offset: 4096, data: hex('01020304') })).toEqual(data);
    expect(encodeDataChunkHeader(0, COOKIE, 4096, 4)).toEqual(data.subarray(0, 28));
    const hole = hex('668e33ef 0000 0002 0102030405060708 0000000c 0000000000002000 00000200');
    expect(encodeChunk({ kind: 'chunk-hole', flags: 0, cookie: COOKIE, offset: 8192, length: 512 })).toEqual(hole);
    const err = hex('668e33ef 0000 8001 0102030405060708 00000008 00000005 0002 6869');
    expect(encodeChunk({ kind: 'chunk-error', flags: 0, cookie: COOKIE, error: 5, message: 'hi' })).toEqual(err);
    const errOff = hex('668e33ef 0000 8002 0102030405060708 0000000e 00000005 0000 0000000000000200');
    expect(encodeChunk({ kind: 'chunk-error-offset', flags: 0, cookie: COOKIE, error: 5, message: '', offset: 512 })).toEqual(errOff);
    const none = hex('668e33ef 0001 0000 0102030405060708 00000000');
    expect(encodeChunk({ kind: 'chunk-none', flags: ReplyFlag.DONE, cookie: COOKIE })).toEqual(none);
    const p = clientParser('transmission');
    p.push(Buffer.concat([data, hole, err, errOff, none]));
    expect(p.drain().map((m) => m.kind)).toEqual(['chunk-data', 'chunk-hole', 'chunk-error', 'chunk-error-offset', 'chunk-none']);
  });
});

describe('NBD server-side parser', () => {
  it('holds the bytes after NBD_OPT_GO until the server decides', () => {
    const p = serverParser('options');
    const read = encodeRequest({ kind: 'request', type: Cmd.READ, flags: 0, cookie: 1n, offset: 0, length: 512 });
    p.push(Buffer.concat([encodeOption({ kind: 'go', name: '', infoRequests: [] }), read]));
    expect(p.next()!.kind).toBe('go');
    expect(p.next()).toBeUndefined();
    expect(p.buffered).toBe(28);
    p.goAccepted();
    expect(p.next()).toMatchObject({ kind: 'request', type: Cmd.READ, length: 512 });
  });

  it('continues option haggling after a refused GO', () => {
    const p = serverParser('options');
    p.push(Buffer.concat([encodeOption({ kind: 'go', name: 'nope', infoRequests: [] }), encodeOption({ kind: 'list' })]));
    expect(p.next()!.kind).toBe('go');
    p.goRefused();
    expect(p.next()).toEqual({ kind: 'list' });
    expect(() => p.goAccepted()).toThrow(/no NBD_OPT_GO is pending/);
  });

  it('a WRITE split over chunks is reassembled; one inside a chunk is a view', () => {
    const payload = Buffer.alloc(10000, 0xab);
    const wire = encodeRequest({ kind: 'request', type: Cmd.WRITE, flags: 0, cookie: 9n, offset: 512, length: payload.length, data: payload });
    const p = serverParser('transmission');
    p.push(wire.subarray(0, 20));
    expect(p.next()).toBeUndefined();
    p.push(wire.subarray(20, 5000));
    expect(p.next()).toBeUndefined();
    p.push(wire.subarray(5000));
    const m = p.next();
    expect(m).toMatchObject({ kind: 'request', type: Cmd.WRITE, length: 10000 });
    expect(Buffer.from((m as { data: Uint8Array }).data).equals(payload)).toBe(true);

    const q = serverParser('transmission');
    q.push(wire);
    const v = q.next() as { data: Uint8Array };
    expect(v.data.buffer).toBe(wire.buffer);
    expect(v.data.byteOffset).toBe(wire.byteOffset + 28);
  });

  it('NBD_CMD_DISC closes: later bytes are ignored and end() is clean', () => {
    const p = serverParser('transmission');
    p.push(encodeRequest({ kind: 'request', type: Cmd.DISC, flags: 0, cookie: 1n, offset: 0, length: 0 }));
    p.push(Buffer.from('junk'));
    expect(p.next()).toMatchObject({ type: Cmd.DISC });
    expect(p.next()).toBeUndefined();
    expect(p.phase).toBe('closed');
    expect(() => p.end()).not.toThrow();
  });

  it('end() inside a message is a truncation error naming what was cut', () => {
    const p = serverParser('options');
    p.push(encodeOption({ kind: 'export-name', name: 'abcdef' }).subarray(0, 19));
    expect(p.next()).toBeUndefined();
    expect(() => p.end()).toThrow(new NbdProtocolError('truncated', 'stream ended inside an option: 19 bytes received of the 22 it needs'));
  });

  it('refuses client flags the server did not advertise', () => {
    const p = new NbdServerParser({ handshakeFlags: HandshakeFlag.FIXED_NEWSTYLE });
    p.push(encodeClientFlags(3));
    expect(() => p.next()).toThrow(/client flags 0x3 set bits the server did not advertise \(allowed: 0x1\)/);
  });

  it('bad magic poisons the parser', () => {
    const p = serverParser('transmission');
    p.push(hex('25609514 0000 0000 0000000000000001 0000000000000000 00000000'));
    const e = (() => {
      try {
        p.next();
      } catch (err) {
        return err as NbdProtocolError;
      }
    })();
    expect(e).toBeInstanceOf(NbdProtocolError);
    expect(e!.problem).toBe('bad-magic');
    expect(e!.message).toBe('request magic is 0x25609514, expected 0x25609513');
    p.push(encodeRequest({ kind: 'request', type: Cmd.FLUSH, flags: 0, cookie: 1n, offset: 0, length: 0 }));
    expect(() => p.next()).toThrow(e!);
  });

  it('an offset beyond 2^53 decodes to a number no export can reach (never rounded below 2^53)', () => {
    const p = serverParser('transmission');
    p.push(hex('25609513 0000 0000 0000000000000001 0020000000000001 00000200'));
    p.push(hex('25609513 0000 0000 0000000000000002 ffffffffffffffff 00000200'));
    const [a, b] = p.drain() as { offset: number }[];
    expect(a.offset).toBeGreaterThanOrEqual(2 ** 53);
    expect(b.offset).toBeGreaterThanOrEqual(2 ** 53);
  });

  it('an extended request header is reported as unsupported', () => {
    const p = serverParser('transmission');
    p.push(hex('21e41c71 0000 0000 0000000000000001 0000000000000000 0000000000000000'));
    expect(() => p.next()).toThrow(expect.objectContaining({ problem: 'unsupported' }));
  });

  it('malformed option data arrives as invalid-option and the stream stays usable', () => {
    const p = serverParser('options');
    const opt = (code: number, data: Buffer) => {
      const h = Buffer.alloc(16);
      h.write('IHAVEOPT', 'latin1');
      h.writeUInt32BE(code, 8);
      h.writeUInt32BE(data.length, 12);
      return Buffer.concat([h, data]);
    };
    p.push(opt(Opt.LIST, hex('00')));
    p.push(opt(Opt.INFO, hex('00000001 61 0002 0003'))); // claims 2 info requests, carries 1
    p.push(opt(Opt.GO, Buffer.concat([hex('00001001'), Buffer.alloc(4097, 0x61), hex('0000')])));
    p.push(opt(Opt.SET_META_CONTEXT, hex('00000000 00000001 00000002 ff fe'))); // not UTF-8
    p.push(opt(Opt.ABORT, hex('0102'))); // data is ignored, per the spec
    const got = p.drain();
    expect(got.map((m) => (m.kind === 'invalid-option' ? [m.option, m.error.problem, m.error.message] : m.kind))).toEqual([
      [Opt.LIST, 'invalid', 'NBD_OPT_LIST carries no data, got 1 bytes'],
      [Opt.INFO, 'invalid', 'NBD_OPT_INFO: 2 info requests need 11 bytes of option data, got 9'],
      [Opt.GO, 'too-large', 'export name is 4097 bytes; NBD strings are at most 4096 bytes'],
      [Opt.SET_META_CONTEXT, 'invalid', 'query 0 is not valid UTF-8'],
      'abort',
    ]);
    expect(p.phase).toBe('closed');
  });

  it('an export name it cannot decode ends the session (the option has no error reply)', () => {
    const p = serverParser('options');
    const h = hex('49484156454f5054 00000001 00000002 c328');
    p.push(h);
    expect(p.next()).toMatchObject({ kind: 'invalid-option', option: Opt.EXPORT_NAME });
    expect(p.phase).toBe('closed');
  });
});

describe('NBD client-side parser', () => {
  it('refuses oldstyle negotiation and bad magic', () => {
    const old = new NbdClientParser();
    old.push(hex('4e42444d41474943 0000420281861253'));
    expect(() => old.next()).toThrow(new NbdProtocolError('unsupported', 'the server uses oldstyle negotiation, which is not supported'));
    const bad = new NbdClientParser();
    bad.push(Buffer.from('HTTP/1.1 400 Bad Request\r\n'));
    expect(() => bad.next()).toThrow(expect.objectContaining({ problem: 'bad-magic' }));
  });

  it('takes read data only for registered reads that succeeded', () => {
    const p = clientParser('transmission');
    p.expectSimpleReadReply(1n, 4);
    p.expectSimpleReadReply(2n, 4);
    p.push(encodeSimpleReply({ error: 0, cookie: 1n, data: hex('01020304') }));
    p.push(encodeSimpleReply({ error: NbdError.EIO, cookie: 2n }));
    p.push(encodeSimpleReply({ error: 0, cookie: 3n }));
    expect(p.drain()).toEqual([
      { kind: 'simple-reply', error: 0, cookie: 1n, data: hex('01020304') },
      { kind: 'simple-reply', error: 5, cookie: 2n },
      { kind: 'simple-reply', error: 0, cookie: 3n },
    ]);
  });

  it('an ACK to NBD_OPT_ABORT closes the stream', () => {
    const p = clientParser('options');
    p.push(encodeOptionReply({ kind: 'rep-ack', option: Opt.ABORT }));
    expect(p.next()).toEqual({ kind: 'rep-ack', option: Opt.ABORT });
    expect(p.phase).toBe('closed');
  });

  const chunk = (flags: number, type: number, payload: string) => {
    const b = hex(payload);
    return Buffer.concat([
      hex('668e33ef'),
      Buffer.from([flags >> 8, flags & 255, type >> 8, type & 255]),
      hex('0000000000000001'),
      hex(b.length.toString(16).padStart(8, '0')),
      b,
    ]);
  };

  it.each([
    ['NONE without DONE', chunk(0, ReplyType.NONE, ''), 'NBD_REPLY_TYPE_NONE chunk: NBD_REPLY_FLAG_DONE must be set'],
    ['a zero-length hole', chunk(1, ReplyType.OFFSET_HOLE, '0000000000000000 00000000'), 'NBD_REPLY_TYPE_OFFSET_HOLE chunk: hole size must be nonzero'],
    ['OFFSET_DATA with no data', chunk(1, ReplyType.OFFSET_DATA, '0000000000000000'), 'NBD_REPLY_TYPE_OFFSET_DATA chunk: length must be at least 9, got 8'],
    [
      'a ragged block status',
      chunk(1, ReplyType.BLOCK_STATUS, '00000001 00000200'),
      'NBD_REPLY_TYPE_BLOCK_STATUS chunk: length must be 4 + a positive multiple of 8, got 8',
    ],
    [
      'an error message overrunning the chunk',
      chunk(1, ReplyType.ERROR, '00000005 0009 6869'),
      'NBD_REPLY_TYPE_ERROR chunk: message length 9 exceeds the 2 bytes that follow',
    ],
    ['error 0 in an error chunk', chunk(1, ReplyType.ERROR, '00000000 0000'), 'NBD_REPLY_TYPE_ERROR chunk: error must be nonzero'],
    ['an unknown non-error type', chunk(1, 6, '00'), 'structured reply type NBD_REPLY_TYPE_0x6 is not known and not an error type'],
  ])('rejects %s', (_, wire, message) => {
    const p = clientParser('transmission');
    p.push(wire);
    expect(() => p.next()).toThrow(message);
  });

  it('keeps an unknown error chunk type as an error the reply carries', () => {
    const p = clientParser('transmission');
    p.push(chunk(1, 0x8009, '0000001c 0002 6f6b aabb'));
    expect(p.next()).toEqual({
      kind: 'chunk-unknown-error',
      flags: 1,
      cookie: 1n,
      type: 0x8009,
      error: 28,
      message: 'ok',
      rest: hex('aabb'),
    });
  });

  it('refuses a chunk longer than the maximum payload before it arrives', () => {
    const p = new NbdClientParser({ maxPayload: 1024 });
    p.push(encodeGreeting(1));
    p.push(encodeOptionReply({ kind: 'rep-ack', option: Opt.GO }));
    p.push(hex('668e33ef 0000 0001 0000000000000001 00000409'));
    expect(p.next()!.kind).toBe('greeting');
    expect(p.next()!.kind).toBe('rep-ack');
    expect(() => p.next()).toThrow('structured reply chunk length 1033 exceeds the maximum of 1032 bytes');
  });
});

describe('NBD encoders refuse values that do not fit, naming the field', () => {
  it.each([
    [() => encodeGreeting(0x10000), 'handshakeFlags must be an integer in [0, 65535], got 65536'],
    [() => encodeRequestHeader({ type: Cmd.READ, flags: 0, cookie: -1n, offset: 0, length: 0 }), 'cookie must be a bigint in [0, 2^64 - 1], got -1'],
    [() => encodeRequestHeader({ type: Cmd.READ, flags: 0, cookie: 0n, offset: 2 ** 53, length: 0 }), 'offset must be an integer in [0, 2^53 - 1]'],
    [() => encodeRequestHeader({ type: Cmd.READ, flags: 0, cookie: 0n, offset: 0, length: 2 ** 32 }), 'length must be an integer in [0, 4294967295]'],
    [
      () => encodeRequest({ kind: 'request', type: Cmd.WRITE, flags: 0, cookie: 0n, offset: 0, length: 4, data: new Uint8Array(3) }),
      'NBD_CMD_WRITE data must be exactly length (4) bytes, got 3',
    ],
    [() => encodeOption({ kind: 'export-name', name: 'x'.repeat(4097) }), 'export name is 4097 bytes in UTF-8; NBD strings are at most 4096 bytes'],
    [() => encodeOption({ kind: 'export-name', name: 'a\0b' }), 'export name must not contain a NUL character'],
    [() => encodeOption({ kind: 'unknown-option', option: Opt.GO, data: new Uint8Array() }), 'has its own message kind'],
    [() => encodeChunk({ kind: 'chunk-none', flags: 0, cookie: 0n }), 'must have NBD_REPLY_FLAG_DONE set'],
    [() => encodeChunk({ kind: 'chunk-error', flags: 1, cookie: 0n, error: 0, message: '' }), 'an error chunk needs a nonzero error'],
    [() => encodeOptionReply({ kind: 'rep-error', option: 1, reply: Rep.ACK, message: '' }), 'reply type NBD_REP_ACK is not an error'],
  ])('%#', (fn, message) => {
    expect(fn).toThrow(RangeError);
    expect(fn).toThrow(message);
  });
});

describe('errno mapping (device statuses -> NBD error values)', () => {
  it('maps device statuses the way nbdkit and qemu-nbd do', () => {
    expect(nbdErrorFromStatus(0)).toBe(NbdError.OK);
    expect(nbdErrorFromStatus(EIO)).toBe(NbdError.EIO);
    expect(nbdErrorFromStatus(ENODATA)).toBe(NbdError.EIO);
    expect(nbdErrorFromStatus(EROFS)).toBe(NbdError.EPERM);
    expect(nbdErrorFromStatus(1)).toBe(NbdError.EPERM);
    expect(nbdErrorFromStatus(12)).toBe(NbdError.ENOMEM);
    expect(nbdErrorFromStatus(ENOSPC)).toBe(NbdError.ENOSPC);
    expect(nbdErrorFromStatus(122)).toBe(NbdError.ENOSPC); // EDQUOT
    expect(nbdErrorFromStatus(27)).toBe(NbdError.ENOSPC); // EFBIG
    expect(nbdErrorFromStatus(EINVAL)).toBe(NbdError.EINVAL);
    expect(nbdErrorFromStatus(108)).toBe(NbdError.ESHUTDOWN);
    expect(nbdErrorFromStatus(EOPNOTSUPP)).toBe(NbdError.EINVAL);
    expect(nbdErrorFromStatus(EOPNOTSUPP, CmdFlag.FAST_ZERO)).toBe(NbdError.ENOTSUP);
    expect(nbdErrorFromStatus(75)).toBe(NbdError.EINVAL);
    expect(nbdErrorFromStatus(75, CmdFlag.DF)).toBe(NbdError.EOVERFLOW);
    expect(nbdErrorFromStatus(2)).toBe(NbdError.EIO); // ENOENT from a backing file: a device failure
  });

  it('maps reply errors back, treating unknown values as EINVAL', () => {
    for (const v of Object.values(NbdError)) expect(statusFromNbdError(v)).toBe(v);
    expect(statusFromNbdError(61)).toBe(EINVAL);
  });
});

describe('names and helpers', () => {
  it('names codes, including unknown ones', () => {
    expect(cmdName(Cmd.WRITE_ZEROES)).toBe('NBD_CMD_WRITE_ZEROES');
    expect(cmdName(99)).toBe('NBD_CMD_0x63');
    expect(repName(Rep.ERR_BLOCK_SIZE_REQD)).toBe('NBD_REP_ERR_BLOCK_SIZE_REQD');
    expect(transmissionFlagNames(0x0d | 0x8000)).toBe('HAS_FLAGS|SEND_FLUSH|SEND_FUA|0x8000');
    expect(optionCode({ kind: 'structured-reply' })).toBe(Opt.STRUCTURED_REPLY);
    expect(optionCode({ kind: 'unknown-option', option: 4, data: new Uint8Array() })).toBe(4);
  });

  it('checks block size constraints', () => {
    expect(blockSizeProblem(512, 4096, 32 << 20)).toBeUndefined();
    expect(blockSizeProblem(1, 4096, 0xffffffff)).toBeUndefined();
    expect(blockSizeProblem(4096, 4096, 4096, 8192)).toBeUndefined();
    expect(blockSizeProblem(3, 4096, 4096)).toBe('minimum block size must be a power of 2 in [1, 65536], got 3');
    expect(blockSizeProblem(4096, 512, 4096)).toBe('preferred block size must be a power of 2 >= 4096, got 512');
    expect(blockSizeProblem(512, 4096, 1000)).toBe('maximum block size must be a multiple of the minimum (512) or 4294967295, got 1000');
    expect(blockSizeProblem(512, 4096, 1024)).toBe('maximum block size must be at least 4096, got 1024');
  });
});
