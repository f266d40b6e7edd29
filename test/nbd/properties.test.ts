import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ClientMessage,
  Cmd,
  encodeClientMessage,
  encodeOption,
  encodeServerMessage,
  NbdClientParser,
  NbdProtocolError,
  NbdServerParser,
  Opt,
  type ServerMessage,
} from '../../src/nbd/protocol.js';
import { clientStream, haggleOption, normalize, serverStream, split, u32 } from './arbitraries.js';

const cuts = fc.array(fc.nat(), { maxLength: 40 });

/** Feeds chunks to a server-side parser, answering GOs the way the stream says, and returns what came out. */
function parseClientStream(chunks: Uint8Array[], expected: ClientMessage[], opts = {}): ClientMessage[] {
  const p = new NbdServerParser(opts);
  const acceptAt = expected.some((m) => m.kind === 'export-name') ? -1 : expected.findLastIndex((m) => m.kind === 'go');
  const out: ClientMessage[] = [];
  for (const c of chunks) {
    p.push(c);
    for (let m = p.next(); m !== undefined; m = p.next()) {
      out.push(m);
      if (m.kind === 'go') {
        if (out.length - 1 === acceptAt) p.goAccepted();
        else p.goRefused();
      }
    }
  }
  p.end();
  return out;
}

/** Feeds chunks to a client-side parser, doing what a client does between messages. */
function parseServerStream(chunks: Uint8Array[], expected: ServerMessage[], noZeroes: boolean): ServerMessage[] {
  const p = new NbdClientParser();
  for (const m of expected) if (m.kind === 'simple-reply' && m.data) p.expectSimpleReadReply(m.cookie, m.data.length);
  const out: ServerMessage[] = [];
  const prepare = () => {
    if (expected[out.length]?.kind === 'export-name-reply') p.expectExportNameReply(noZeroes);
  };
  for (const c of chunks) {
    p.push(c);
    for (let m = p.next(); m !== undefined; m = p.next()) {
      out.push(m);
      prepare();
    }
  }
  p.end();
  return out;
}

describe('NBD codec properties', () => {
  it('client -> server: every message round-trips, whatever the chunking', () => {
    fc.assert(
      fc.property(clientStream, cuts, (msgs, cutPoints) => {
        const wire = Buffer.concat(msgs.map(encodeClientMessage));
        const got = parseClientStream(split(wire, cutPoints), msgs);
        expect(normalize(got)).toEqual(normalize(msgs));
      }),
      { numRuns: 300 },
    );
  });

  it('server -> client: every message round-trips, whatever the chunking', () => {
    fc.assert(
      fc.property(serverStream, cuts, ({ messages, noZeroes }, cutPoints) => {
        const wire = Buffer.concat(messages.map((m) => encodeServerMessage(m, noZeroes)));
        const got = parseServerStream(split(wire, cutPoints), messages, noZeroes);
        expect(normalize(got)).toEqual(normalize(messages));
      }),
      { numRuns: 300 },
    );
  });

  it('byte-at-a-time feeding gives the same messages as one chunk', () => {
    fc.assert(
      fc.property(clientStream, (msgs) => {
        const wire = Buffer.concat(msgs.map(encodeClientMessage));
        const oneByte = Array.from({ length: wire.length }, (_, i) => wire.subarray(i, i + 1));
        expect(normalize(parseClientStream(oneByte, msgs))).toEqual(normalize(parseClientStream([wire], msgs)));
      }),
      { numRuns: 50 },
    );
  });

  it('WRITE payloads that arrive in one chunk are views of it, not copies', () => {
    fc.assert(
      fc.property(clientStream, (msgs) => {
        const wire = Buffer.concat(msgs.map(encodeClientMessage));
        for (const m of parseClientStream([wire], msgs)) {
          if (m.kind === 'request' && m.type === Cmd.WRITE && m.length > 0) {
            expect(m.data!.buffer).toBe(wire.buffer);
          }
        }
      }),
      { numRuns: 100 },
    );
  });

  it('mutated or truncated client streams yield messages or NbdProtocolError, never another exception', () => {
    fc.assert(
      fc.property(
        clientStream,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(),
        cuts,
        fc.boolean(),
        (msgs, mutations, cut, cutPoints, accept) => {
          const wire = Buffer.from(Buffer.concat(msgs.map(encodeClientMessage)));
          for (const [i, v] of mutations) wire[i % wire.length] = v;
          const bad = wire.subarray(0, cut % (wire.length + 1));
          const p = new NbdServerParser({ maxOptionLength: 256, maxPayload: 512 });
          try {
            for (const c of split(bad, cutPoints)) {
              p.push(c);
              for (let m = p.next(); m !== undefined; m = p.next()) {
                if (m.kind === 'invalid-option') expect(m.error).toBeInstanceOf(NbdProtocolError);
                if (m.kind === 'go') accept ? p.goAccepted() : p.goRefused();
              }
            }
            p.end();
          } catch (e) {
            expect(e).toBeInstanceOf(NbdProtocolError);
            // a poisoned parser keeps failing the same way
            expect(() => p.next()).toThrow(e as Error);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('mutated or truncated server streams yield messages or NbdProtocolError, never another exception', () => {
    fc.assert(
      fc.property(
        serverStream,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(),
        cuts,
        ({ messages, noZeroes }, mutations, cut, cutPoints) => {
          const wire = Buffer.from(Buffer.concat(messages.map((m) => encodeServerMessage(m, noZeroes))));
          for (const [i, v] of mutations) wire[i % wire.length] = v;
          const bad = wire.subarray(0, cut % (wire.length + 1));
          const p = new NbdClientParser({ maxOptionLength: 256, maxPayload: 512 });
          for (const m of messages) if (m.kind === 'simple-reply' && m.data) p.expectSimpleReadReply(m.cookie, m.data.length);
          let n = 0;
          try {
            for (const c of split(bad, cutPoints)) {
              p.push(c);
              for (let m = p.next(); m !== undefined; m = p.next()) {
                n++;
                if (messages[n]?.kind === 'export-name-reply' && p.phase === 'options') p.expectExportNameReply(noZeroes);
              }
            }
            p.end();
          } catch (e) {
            expect(e).toBeInstanceOf(NbdProtocolError);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('random bytes in every server-parser phase yield only NbdProtocolError', () => {
    const prefixes = [
      Buffer.alloc(0),
      encodeClientMessage({ kind: 'client-flags', flags: 3 }),
      Buffer.concat([encodeClientMessage({ kind: 'client-flags', flags: 3 }), encodeOption({ kind: 'export-name', name: 'x' })]),
    ];
    fc.assert(
      fc.property(fc.constantFrom(...prefixes), fc.uint8Array({ maxLength: 200 }), cuts, (prefix, noise, cutPoints) => {
        const p = new NbdServerParser({ maxOptionLength: 128, maxPayload: 128 });
        try {
          for (const c of split(Buffer.concat([prefix, noise]), cutPoints)) {
            p.push(c);
            for (let m = p.next(); m !== undefined; m = p.next()) if (m.kind === 'go') p.goRefused();
          }
          p.end();
        } catch (e) {
          expect(e).toBeInstanceOf(NbdProtocolError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('an option length over the maximum fails at once, before its data arrives', () => {
    fc.assert(
      fc.property(u32, fc.integer({ min: 257, max: 0xffffffff }), (option, len) => {
        const p = new NbdServerParser({ maxOptionLength: 256 });
        const h = Buffer.alloc(16);
        h.write('IHAVEOPT', 0, 'latin1');
        h.writeUInt32BE(option, 8);
        h.writeUInt32BE(len, 12);
        p.push(Buffer.from([0, 0, 0, 1]));
        p.push(h);
        expect(p.next()).toEqual({ kind: 'client-flags', flags: 1 });
        expect(() => p.next()).toThrow(expect.objectContaining({ problem: 'too-large' }));
      }),
    );
  });

  it('a WRITE length over the maximum payload fails at once', () => {
    fc.assert(
      fc.property(fc.integer({ min: 4097, max: 0xffffffff }), (len) => {
        const p = new NbdServerParser({ maxPayload: 4096 });
        p.push(encodeClientMessage({ kind: 'client-flags', flags: 1 }));
        p.push(encodeOption({ kind: 'export-name', name: '' }));
        const h = Buffer.alloc(28);
        h.writeUInt32BE(0x25609513, 0);
        h.writeUInt16BE(Cmd.WRITE, 6);
        h.writeUInt32BE(len, 24);
        p.push(h);
        expect(p.next()!.kind).toBe('client-flags');
        expect(p.next()!.kind).toBe('export-name');
        expect(() => p.next()).toThrow(NbdProtocolError);
      }),
    );
  });

  it('option data truncated inside the option yields invalid-option, and the stream stays in sync', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<number>(Opt.INFO, Opt.GO, Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT),
        fc.uint8Array({ maxLength: 12 }),
        fc.integer({ min: 13, max: 0xffffffff }),
        haggleOption,
        (option, body, claimed, after) => {
          // A name length larger than what the option holds.
          const data = Buffer.alloc(4 + body.length);
          data.writeUInt32BE(claimed, 0);
          data.set(body, 4);
          const h = Buffer.alloc(16);
          h.write('IHAVEOPT', 0, 'latin1');
          h.writeUInt32BE(option, 8);
          h.writeUInt32BE(data.length, 12);
          const p = new NbdServerParser();
          p.push(Buffer.concat([encodeClientMessage({ kind: 'client-flags', flags: 1 }), h, data, encodeOption(after)]));
          p.next();
          const bad = p.next();
          expect(bad).toMatchObject({ kind: 'invalid-option', option });
          expect((bad as { error: NbdProtocolError }).error).toBeInstanceOf(NbdProtocolError);
          expect(normalize(p.next())).toEqual(normalize(after));
        },
      ),
    );
  });
});
