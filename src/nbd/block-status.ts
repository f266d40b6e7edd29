/**
 * NBD_CMD_BLOCK_STATUS as the server answers it: the contexts an export
 * offers, and the reply chunks for one request. Encoding goes through the
 * codec; where the extents come from is the provider's business (a served
 * model: stack-extents.ts).
 */
import { errnoName } from '../block/device.js';
import { encodeChunk } from './codec.js';
import { CmdFlag, NbdError, ReplyFlag } from './constants.js';
import type { BlockExtent } from './messages.js';

/** Extents past this many per chunk are left to a follow-up request (the spec asks for at most 2^20). */
export const MAX_EXTENTS = 16384;

/** One metadata context an export offers. */
export interface MetaContextSource {
  readonly name: string;
  /**
   * Extents from `offset` on, covering at most `length` bytes: at least one,
   * at most `maxExtents`. Called on the server's thread between requests.
   */
  extents(offset: number, length: number, maxExtents: number): BlockExtent[];
}

export interface BlockStatusProvider {
  readonly contexts: readonly MetaContextSource[];
  /** Releases what the provider holds (file descriptors). */
  close?(): void;
}

/** A selected context: the id the client was given for it. */
export interface SelectedContext {
  id: number;
  source: MetaContextSource;
}

export type BlockStatusAnswer = { ok: true; reply: Buffer } | { ok: false; error: number; message: string };

/**
 * The reply to a checked block status request (in range, aligned, nonzero
 * length, contexts selected): one NBD_REPLY_TYPE_BLOCK_STATUS chunk per
 * context, the last flagged DONE. With NBD_CMD_FLAG_REQ_ONE each carries
 * one extent, no longer than the request. A provider that throws or breaks
 * the rules fails the request with EIO, never the connection.
 */
export function answerBlockStatus(contexts: readonly SelectedContext[], cookie: bigint, offset: number, length: number, flags: number): BlockStatusAnswer {
  const reqOne = (flags & CmdFlag.REQ_ONE) !== 0;
  const parts: Buffer[] = [];
  for (let i = 0; i < contexts.length; i++) {
    const { id, source } = contexts[i];
    let extents: BlockExtent[];
    try {
      extents = source.extents(offset, length, reqOne ? 1 : MAX_EXTENTS);
    } catch (err) {
      const code = (err as { errno?: unknown }).errno;
      const why = typeof code === 'number' ? errnoName(code) : (err as Error).message;
      return { ok: false, error: NbdError.EIO, message: `block status of ${source.name} at offset ${offset} failed: ${why}`.slice(0, 512) };
    }
    const problem = extentsProblem(extents, length, reqOne);
    if (problem) return { ok: false, error: NbdError.EIO, message: `block status of ${source.name} at offset ${offset}: ${problem}` };
    const done = i === contexts.length - 1 ? ReplyFlag.DONE : 0;
    parts.push(
      encodeChunk({
        kind: 'chunk-block-status',
        flags: done,
        cookie,
        contextId: id,
        extents: reqOne ? [{ length: Math.min(extents[0].length, length), flags: extents[0].flags }] : extents,
      }),
    );
  }
  return { ok: true, reply: Buffer.concat(parts) };
}

function extentsProblem(extents: readonly BlockExtent[], length: number, reqOne: boolean): string | undefined {
  if (extents.length === 0) return 'the provider gave no extent';
  if (extents.length > (reqOne ? 1 : MAX_EXTENTS)) return `the provider gave ${extents.length} extents`;
  let sum = 0;
  for (const e of extents) {
    if (!Number.isInteger(e.length) || e.length < 1 || e.length > 0xffffffff) return `extent length ${e.length} is not in [1, 2^32 - 1]`;
    sum += e.length;
  }
  if (sum - extents[extents.length - 1].length >= length) return 'extents run past the requested length';
  return undefined;
}
