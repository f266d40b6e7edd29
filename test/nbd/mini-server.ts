/**
 * A minimal NBD server over the codec, for tests only (the real server lives
 * in src/nbd once written): one in-memory export, served to real libnbd
 * clients (nbdinfo, nbdcopy) to prove the server-side encoders.
 */
import * as net from 'node:net';
import {
  BlockState,
  Cmd,
  encodeChunk,
  encodeDataChunkHeader,
  encodeExportNameReply,
  encodeGreeting,
  encodeOptionReply,
  encodeSimpleReply,
  encodeSimpleReplyHeader,
  HandshakeFlag,
  Info,
  NbdError,
  NbdServerParser,
  optionCode,
  type OptionReply,
  Rep,
  ReplyFlag,
  SERVER_HANDSHAKE_FLAGS,
  TransmissionFlag,
} from '../../src/nbd/protocol.js';

const BLOCK = 4096;
const CONTEXT_ID = 1;
const SIMPLE_COMMANDS = new Set<number>([Cmd.WRITE, Cmd.WRITE_ZEROES, Cmd.TRIM, Cmd.FLUSH, Cmd.CACHE]);

export interface MiniServer {
  path: string;
  disk: Buffer;
  /** Every option and command kind the server saw, in order, across connections. */
  seen: string[];
  close(): Promise<void>;
}

export async function startMiniServer(path: string, disk: Buffer): Promise<MiniServer> {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const flags =
    TransmissionFlag.HAS_FLAGS |
    TransmissionFlag.SEND_FLUSH |
    TransmissionFlag.SEND_FUA |
    TransmissionFlag.SEND_TRIM |
    TransmissionFlag.SEND_WRITE_ZEROES |
    TransmissionFlag.SEND_CACHE |
    TransmissionFlag.CAN_MULTI_CONN;

  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    const parser = new NbdServerParser();
    let noZeroes = false;
    let structured = false;
    let metaSelected = false;
    const reply = (r: OptionReply) => sock.write(encodeOptionReply(r));
    const zeroBlock = (off: number) => disk.subarray(off, Math.min(off + BLOCK, disk.length)).every((b) => b === 0);

    const fail = (cookie: bigint, error: number) => {
      if (structured) sock.write(encodeChunk({ kind: 'chunk-error', flags: ReplyFlag.DONE, cookie, error, message: 'refused' }));
      else sock.write(encodeSimpleReplyHeader(error, cookie));
    };

    const read = (cookie: bigint, offset: number, length: number) => {
      if (!structured) {
        sock.write(encodeSimpleReplyHeader(0, cookie));
        sock.write(disk.subarray(offset, offset + length));
        return;
      }
      // Whole zero blocks go out as holes, the rest as data (header, then a view of the disk).
      for (let off = offset; off < offset + length; ) {
        const end = Math.min(offset + length, (Math.floor(off / BLOCK) + 1) * BLOCK);
        let runEnd = end;
        const hole = zeroBlock(Math.floor(off / BLOCK) * BLOCK);
        while (runEnd < offset + length && zeroBlock(runEnd) === hole) runEnd = Math.min(offset + length, runEnd + BLOCK);
        if (hole) sock.write(encodeChunk({ kind: 'chunk-hole', flags: 0, cookie, offset: off, length: runEnd - off }));
        else {
          sock.write(encodeDataChunkHeader(0, cookie, off, runEnd - off));
          sock.write(disk.subarray(off, runEnd));
        }
        off = runEnd;
      }
      sock.write(encodeChunk({ kind: 'chunk-none', flags: ReplyFlag.DONE, cookie }));
    };

    const blockStatus = (cookie: bigint, offset: number, length: number) => {
      const extents: { length: number; flags: number }[] = [];
      for (let off = offset; off < offset + length; ) {
        const end = Math.min(offset + length, (Math.floor(off / BLOCK) + 1) * BLOCK);
        const f = zeroBlock(Math.floor(off / BLOCK) * BLOCK) ? BlockState.HOLE | BlockState.ZERO : 0;
        const last = extents[extents.length - 1];
        if (last && last.flags === f) last.length += end - off;
        else extents.push({ length: end - off, flags: f });
        off = end;
      }
      sock.write(encodeChunk({ kind: 'chunk-block-status', flags: ReplyFlag.DONE, cookie, contextId: CONTEXT_ID, extents }));
    };

    sock.write(encodeGreeting(SERVER_HANDSHAKE_FLAGS));
    sock.on('data', (chunk) => {
      parser.push(chunk);
      try {
        for (let m = parser.next(); m !== undefined; m = parser.next()) {
          seen.push(m.kind === 'request' ? `cmd-${m.type}` : m.kind);
          switch (m.kind) {
            case 'client-flags':
              noZeroes = (m.flags & HandshakeFlag.NO_ZEROES) !== 0;
              break;
            case 'structured-reply':
              structured = true;
              reply({ kind: 'rep-ack', option: optionCode(m) });
              break;
            case 'list':
              reply({ kind: 'rep-server', option: optionCode(m), name: '', description: 'mini' });
              reply({ kind: 'rep-ack', option: optionCode(m) });
              break;
            case 'list-meta-context':
            case 'set-meta-context': {
              const option = optionCode(m);
              if (!structured) {
                reply({ kind: 'rep-error', option, reply: Rep.ERR_INVALID, message: 'negotiate structured replies first' });
                break;
              }
              const wanted = m.queries.some((q) => q === 'base:allocation' || (m.kind === 'list-meta-context' && q === 'base:'));
              if (wanted || (m.kind === 'list-meta-context' && m.queries.length === 0)) {
                reply({ kind: 'rep-meta-context', option, contextId: m.kind === 'set-meta-context' ? CONTEXT_ID : 0, name: 'base:allocation' });
              }
              if (m.kind === 'set-meta-context') metaSelected = wanted;
              reply({ kind: 'rep-ack', option });
              break;
            }
            case 'info':
            case 'go': {
              const option = optionCode(m);
              if (m.name !== '') {
                reply({ kind: 'rep-error', option, reply: Rep.ERR_UNKNOWN, message: `no export named ${m.name}` });
                if (m.kind === 'go') parser.goRefused();
                break;
              }
              reply({ kind: 'rep-info', option, info: { kind: 'export', size: disk.length, transmissionFlags: flags } });
              if (m.infoRequests.includes(Info.DESCRIPTION)) reply({ kind: 'rep-info', option, info: { kind: 'description', description: 'mini server' } });
              if (m.infoRequests.includes(Info.BLOCK_SIZE)) {
                reply({ kind: 'rep-info', option, info: { kind: 'block-size', minimum: 1, preferred: BLOCK, maximum: 32 * 1024 * 1024 } });
              }
              reply({ kind: 'rep-ack', option });
              if (m.kind === 'go') parser.goAccepted();
              break;
            }
            case 'export-name':
              sock.write(encodeExportNameReply({ size: disk.length, transmissionFlags: flags }, noZeroes));
              break;
            case 'abort':
              reply({ kind: 'rep-ack', option: optionCode(m) });
              sock.end();
              break;
            case 'invalid-option':
              if (parser.phase === 'closed') sock.destroy();
              else reply({ kind: 'rep-error', option: m.option, reply: Rep.ERR_INVALID, message: m.error.message });
              break;
            case 'starttls':
            case 'extended-headers':
            case 'unknown-option':
              reply({ kind: 'rep-error', option: optionCode(m), reply: Rep.ERR_UNSUP, message: '' });
              break;
            case 'request': {
              const { cookie, offset, length } = m;
              const inRange = offset + length <= disk.length;
              if (m.type === Cmd.DISC) {
                sock.end();
              } else if (m.type === Cmd.READ) {
                if (!inRange) fail(cookie, NbdError.EINVAL);
                else read(cookie, offset, length);
              } else if (m.type === Cmd.BLOCK_STATUS) {
                if (!metaSelected || !inRange) fail(cookie, NbdError.EINVAL);
                else blockStatus(cookie, offset, length);
              } else if (SIMPLE_COMMANDS.has(m.type)) {
                if (!inRange) fail(cookie, m.type === Cmd.WRITE || m.type === Cmd.WRITE_ZEROES ? NbdError.ENOSPC : NbdError.EINVAL);
                else {
                  if (m.type === Cmd.WRITE) disk.set(m.data!, offset);
                  if (m.type === Cmd.WRITE_ZEROES || m.type === Cmd.TRIM) disk.fill(0, offset, offset + length);
                  sock.write(encodeSimpleReply({ error: 0, cookie }));
                }
              } else {
                fail(cookie, NbdError.EINVAL);
              }
              break;
            }
          }
        }
      } catch {
        // NbdProtocolError: the client broke framing; hard disconnect.
        sock.destroy();
      }
    });
    sock.on('end', () => {
      try {
        parser.end();
      } catch {
        // a truncated message at EOF: nothing to answer
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    disk,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
