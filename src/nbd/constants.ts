/**
 * NBD protocol constants (NetworkBlockDevice/nbd doc/proto.md). All fields
 * travel big-endian. Numeric codes are kept as plain numbers on the wire
 * types, since a peer may send values this file does not know.
 */

/** 'NBDMAGIC', the first 8 bytes the server sends, as two 32-bit halves. */
export const NBD_MAGIC_HI = 0x4e42444d;
export const NBD_MAGIC_LO = 0x41474943;
/** 'IHAVEOPT': the newstyle greeting's second magic and every option header's magic. */
export const NBD_OPTS_MAGIC_HI = 0x49484156;
export const NBD_OPTS_MAGIC_LO = 0x454f5054;
/** Oldstyle negotiation's second magic (0x00420281861253); recognised only to refuse it clearly. */
export const NBD_CLISERV_MAGIC_HI = 0x00004202;
export const NBD_CLISERV_MAGIC_LO = 0x81861253;
/** Option reply magic 0x3e889045565a9. */
export const NBD_REP_MAGIC_HI = 0x0003e889;
export const NBD_REP_MAGIC_LO = 0x045565a9;

export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;
/** Extended-header magics: recognised only to report that extended headers were not negotiated. */
export const NBD_EXTENDED_REQUEST_MAGIC = 0x21e41c71;
export const NBD_EXTENDED_REPLY_MAGIC = 0x6e8a278c;

/** Strings (export names, descriptions, messages) MUST be no longer than this many bytes. */
export const NBD_MAX_STRING = 4096;

/** Handshake flags (16 bits, server greeting). */
export const HandshakeFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Client flags (32 bits, the client's answer to the greeting). */
export const ClientFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Transmission flags (16 bits, per export). */
export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
  BLOCK_STAT_PAYLOAD: 1 << 12,
} as const;

/** Option codes (client -> server during option haggling). */
export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

const REP_ERR = 0x80000000;

/** Option reply types; errors have bit 31 set. */
export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: REP_ERR + 1,
  ERR_POLICY: REP_ERR + 2,
  ERR_INVALID: REP_ERR + 3,
  ERR_PLATFORM: REP_ERR + 4,
  ERR_TLS_REQD: REP_ERR + 5,
  ERR_UNKNOWN: REP_ERR + 6,
  ERR_SHUTDOWN: REP_ERR + 7,
  ERR_BLOCK_SIZE_REQD: REP_ERR + 8,
  ERR_TOO_BIG: REP_ERR + 9,
  ERR_EXT_HEADER_REQD: REP_ERR + 10,
} as const;

export function isRepError(reply: number): boolean {
  return reply >= REP_ERR;
}

/** Information types inside NBD_REP_INFO (and requested by NBD_OPT_INFO / NBD_OPT_GO). */
export const Info = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Request types (transmission phase). */
export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

/** Command flags (16 bits per request). */
export const CmdFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

/** Structured reply chunk flags. */
export const ReplyFlag = {
  DONE: 1 << 0,
} as const;

/** Structured reply chunk types; error types have bit 15 set. */
export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 0x8000 + 1,
  ERROR_OFFSET: 0x8000 + 2,
} as const;

export function isReplyTypeError(type: number): boolean {
  return (type & 0x8000) !== 0;
}

/** The error values the protocol allows in replies. */
export const NbdError = {
  OK: 0,
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** base:allocation status flags (NBD_REPLY_TYPE_BLOCK_STATUS descriptors). */
export const BlockState = {
  HOLE: 1 << 0,
  ZERO: 1 << 1,
} as const;

function invert(table: Record<string, number>, prefix: string): Map<number, string> {
  return new Map(Object.entries(table).map(([k, v]) => [v, prefix + k]));
}

const OPT_NAMES = invert(Opt, 'NBD_OPT_');
const REP_NAMES = invert(Rep, 'NBD_REP_');
const INFO_NAMES = invert(Info, 'NBD_INFO_');
const CMD_NAMES = invert(Cmd, 'NBD_CMD_');
const REPLY_TYPE_NAMES = invert(ReplyType, 'NBD_REPLY_TYPE_');
const ERROR_NAMES = invert(NbdError, 'NBD_');

const hex = (n: number) => `0x${n.toString(16)}`;

export const optName = (o: number): string => OPT_NAMES.get(o) ?? `NBD_OPT_${hex(o)}`;
export const repName = (r: number): string => REP_NAMES.get(r) ?? `NBD_REP_${hex(r)}`;
export const infoName = (i: number): string => INFO_NAMES.get(i) ?? `NBD_INFO_${hex(i)}`;
export const cmdName = (c: number): string => CMD_NAMES.get(c) ?? `NBD_CMD_${hex(c)}`;
export const replyTypeName = (t: number): string => REPLY_TYPE_NAMES.get(t) ?? `NBD_REPLY_TYPE_${hex(t)}`;
export const nbdErrorName = (e: number): string => ERROR_NAMES.get(e) ?? `NBD error ${e}`;

function flagNames(table: Record<string, number>, flags: number): string {
  const names: string[] = [];
  let rest = flags;
  for (const [k, v] of Object.entries(table)) {
    if (flags & v) {
      names.push(k);
      rest &= ~v;
    }
  }
  if (rest) names.push(hex(rest));
  return names.length ? names.join('|') : '0';
}

export const transmissionFlagNames = (flags: number): string => flagNames(TransmissionFlag, flags);
export const cmdFlagNames = (flags: number): string => flagNames(CmdFlag, flags);
