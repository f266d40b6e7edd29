/**
 * Typed NBD messages. Codes the codec knows get their own `kind`; anything
 * else is carried through raw (`unknown-*`) so that a peer newer than this
 * file can still be answered (for example with NBD_REP_ERR_UNSUP).
 *
 * Numbers: offsets and sizes are u64 on the wire and plain numbers here. Any
 * value up to 2^53 is exact; a larger one decodes to a number >= 2^53, which
 * no export can reach, so range checks against an export size stay correct.
 * Cookies (the request handle) are opaque and echoed bit for bit: bigint.
 */
import type { NbdProtocolError } from './errors.js';

// ---------------------------------------------------------------- client -> server

/** The client's 32-bit answer to the greeting (ClientFlag bits). */
export interface ClientFlagsMessage {
  kind: 'client-flags';
  flags: number;
}

export interface ExportNameOption {
  kind: 'export-name';
  name: string;
}
export interface AbortOption {
  kind: 'abort';
}
export interface ListOption {
  kind: 'list';
}
export interface StartTlsOption {
  kind: 'starttls';
}
/** NBD_OPT_INFO and NBD_OPT_GO share one layout. */
export interface InfoOption {
  kind: 'info' | 'go';
  name: string;
  /** NBD_INFO_* codes the client asks for, in the order sent. */
  infoRequests: number[];
}
export interface StructuredReplyOption {
  kind: 'structured-reply';
}
export interface MetaContextOption {
  kind: 'list-meta-context' | 'set-meta-context';
  name: string;
  queries: string[];
}
export interface ExtendedHeadersOption {
  kind: 'extended-headers';
}
/** An option code this codec does not decode; `data` is the raw option data. */
export interface UnknownOption {
  kind: 'unknown-option';
  option: number;
  data: Uint8Array;
}

export type OptionRequest =
  | ExportNameOption
  | AbortOption
  | ListOption
  | StartTlsOption
  | InfoOption
  | StructuredReplyOption
  | MetaContextOption
  | ExtendedHeadersOption
  | UnknownOption;

/**
 * A correctly framed option whose data breaks the protocol (a name length
 * overrunning the option, data where none is allowed, a string over 4096
 * bytes...). The stream stays in sync: a server answers NBD_REP_ERR_INVALID.
 */
export interface InvalidOption {
  kind: 'invalid-option';
  option: number;
  error: NbdProtocolError;
}

/** A transmission-phase request. */
export interface NbdRequest {
  kind: 'request';
  /** NBD_CMD_* (unknown values are passed through for the server to refuse). */
  type: number;
  /** NBD_CMD_FLAG_* bits. */
  flags: number;
  cookie: bigint;
  offset: number;
  length: number;
  /**
   * NBD_CMD_WRITE payload, `length` bytes. When the payload arrived inside one
   * pushed chunk this is a view of that chunk (no copy); the caller must not
   * reuse a chunk's memory while views of it are alive.
   */
  data?: Uint8Array;
}

/** Everything a server reads from a client. */
export type ClientMessage = ClientFlagsMessage | OptionRequest | InvalidOption | NbdRequest;

// ---------------------------------------------------------------- server -> client

/** NBDMAGIC, IHAVEOPT and the 16-bit handshake flags. */
export interface GreetingMessage {
  kind: 'greeting';
  handshakeFlags: number;
}

export type InfoItem =
  | { kind: 'export'; size: number; transmissionFlags: number }
  | { kind: 'name'; name: string }
  | { kind: 'description'; description: string }
  | { kind: 'block-size'; minimum: number; preferred: number; maximum: number }
  | { kind: 'unknown'; info: number; data: Uint8Array };

export interface AckReply {
  kind: 'rep-ack';
  option: number;
}
/** NBD_REP_SERVER: one export in the answer to NBD_OPT_LIST. */
export interface ServerReply {
  kind: 'rep-server';
  option: number;
  name: string;
  /** Free text after the name ('' when the server sent none). */
  description: string;
}
export interface InfoReply {
  kind: 'rep-info';
  option: number;
  info: InfoItem;
}
export interface MetaContextReply {
  kind: 'rep-meta-context';
  option: number;
  contextId: number;
  name: string;
}
/** Any reply type with bit 31 set (NBD_REP_ERR_*), with its optional message. */
export interface ErrorReply {
  kind: 'rep-error';
  option: number;
  reply: number;
  message: string;
}
/** A non-error reply type this codec does not know. */
export interface UnknownReply {
  kind: 'rep-unknown';
  option: number;
  reply: number;
  data: Uint8Array;
}

export type OptionReply = AckReply | ServerReply | InfoReply | MetaContextReply | ErrorReply | UnknownReply;

/** The answer to NBD_OPT_EXPORT_NAME: no option-reply header; 124 zero bytes unless NO_ZEROES was agreed. */
export interface ExportNameReply {
  kind: 'export-name-reply';
  size: number;
  transmissionFlags: number;
}

export interface SimpleReply {
  kind: 'simple-reply';
  /** An NBD error value (0 on success). */
  error: number;
  cookie: bigint;
  /** Read data: only after a successful NBD_CMD_READ. */
  data?: Uint8Array;
}

/** Common header fields of a structured reply chunk. */
interface ChunkBase {
  /** NBD_REPLY_FLAG_* bits (DONE marks the last chunk of a reply). */
  flags: number;
  cookie: bigint;
}
export interface NoneChunk extends ChunkBase {
  kind: 'chunk-none';
}
export interface DataChunk extends ChunkBase {
  kind: 'chunk-data';
  offset: number;
  data: Uint8Array;
}
export interface HoleChunk extends ChunkBase {
  kind: 'chunk-hole';
  offset: number;
  length: number;
}
export interface BlockExtent {
  length: number;
  flags: number;
}
export interface BlockStatusChunk extends ChunkBase {
  kind: 'chunk-block-status';
  contextId: number;
  extents: BlockExtent[];
}
export interface ErrorChunk extends ChunkBase {
  kind: 'chunk-error';
  error: number;
  message: string;
}
export interface ErrorOffsetChunk extends ChunkBase {
  kind: 'chunk-error-offset';
  error: number;
  message: string;
  offset: number;
}
/** An error chunk type (bit 15) this codec does not know: the reply failed; `rest` follows the message. */
export interface UnknownErrorChunk extends ChunkBase {
  kind: 'chunk-unknown-error';
  type: number;
  error: number;
  message: string;
  rest: Uint8Array;
}

export type ReplyChunk = NoneChunk | DataChunk | HoleChunk | BlockStatusChunk | ErrorChunk | ErrorOffsetChunk | UnknownErrorChunk;

/** Everything a client reads from a server. */
export type ServerMessage = GreetingMessage | OptionReply | ExportNameReply | SimpleReply | ReplyChunk;
