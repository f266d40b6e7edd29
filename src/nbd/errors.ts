import { EDQUOT, EFBIG, EINVAL, EIO, ENODATA, ENOSPC, EOPNOTSUPP, EROFS, type IoStatus, OK } from '../block/device.js';
import { CmdFlag, NbdError } from './constants.js';

/**
 * What went wrong in a byte stream:
 * - bad-magic: a header did not start with the magic its position requires;
 * - too-large: a length field exceeds the configured maximum (or the protocol's);
 * - truncated: the data ended inside a message, or a field overruns its container;
 * - invalid: the bytes are framed correctly but break a MUST of the protocol;
 * - unsupported: a well-formed feature this codec does not speak (oldstyle, extended headers).
 */
export type NbdProtocolProblem = 'bad-magic' | 'too-large' | 'truncated' | 'invalid' | 'unsupported';

/**
 * The one error type the decoders and stream parsers throw for bad input. A
 * stream parser that threw it is poisoned (the peer broke framing, so nothing
 * after can be trusted): the connection must be dropped. Option data that is
 * well framed but malformed is not thrown; it arrives as an `invalid-option`
 * message carrying this error, so a server can answer NBD_REP_ERR_INVALID.
 */
export class NbdProtocolError extends Error {
  override readonly name = 'NbdProtocolError';
  constructor(
    readonly problem: NbdProtocolProblem,
    message: string,
  ) {
    super(message);
  }
}

// errno values the device layer may return that device.ts does not name.
const EPERM = 1;
const ENOMEM = 12;
const EOVERFLOW = 75;
const ESHUTDOWN = 108;

/**
 * Maps a device status (0 or an errno, see src/block/device.ts) to the error
 * value an NBD reply may carry, the way nbdkit and qemu-nbd do: EROFS becomes
 * EPERM, EDQUOT/EFBIG become ENOSPC, ENOTSUP and EOVERFLOW are only reported as
 * such when the request carried the flag that makes them legal (FAST_ZERO, DF)
 * and EINVAL otherwise. ENODATA (an unreadable sector) and any errno the
 * protocol has no value for become EIO: they come from the data path, so to the
 * client they are media errors, not a malformed request.
 */
export function nbdErrorFromStatus(status: IoStatus, cmdFlags = 0): number {
  switch (status) {
    case OK:
      return NbdError.OK;
    case EPERM:
    case EROFS:
      return NbdError.EPERM;
    case EIO:
    case ENODATA:
      return NbdError.EIO;
    case ENOMEM:
      return NbdError.ENOMEM;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return NbdError.ENOSPC;
    case EINVAL:
      return NbdError.EINVAL;
    case EOVERFLOW:
      return cmdFlags & CmdFlag.DF ? NbdError.EOVERFLOW : NbdError.EINVAL;
    case EOPNOTSUPP:
      return cmdFlags & CmdFlag.FAST_ZERO ? NbdError.ENOTSUP : NbdError.EINVAL;
    case ESHUTDOWN:
      return NbdError.ESHUTDOWN;
    default:
      return NbdError.EIO;
  }
}

const KNOWN_NBD_ERRORS = new Set<number>(Object.values(NbdError));

/**
 * The errno a client should act on for an NBD reply error. The NBD values are
 * the Linux errno values; the spec asks clients to treat an unexpected value as
 * EINVAL.
 */
export function statusFromNbdError(error: number): IoStatus {
  return KNOWN_NBD_ERRORS.has(error) ? error : EINVAL;
}
