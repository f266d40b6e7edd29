import { EINVAL } from '../block/device.js';
import { RemapsimError } from '../util/errors.js';

/**
 * The control plane of a device-mapper target: the three things dmsetup offers
 * besides creating and removing. The userspace model and a kernel device reached
 * through FFI both implement it, so the CLI speaks to either with the same verbs.
 */
export interface ControlTarget {
  /** Target type as in a table line ("dust", "flakey", "dm-remap-v4", "remap"). */
  readonly targetType: string;
  /** The table line `0 <len> <type> <args>` as `dmsetup table` prints it. */
  table(): string;
  /** The status line `0 <len> <type> <status>` as `dmsetup status` prints it. */
  status(): string;
  /** A target message (`dmsetup message <dev> 0 <args...>`); returns the reply text ('' for none). */
  message(args: string[]): string;
}

/** A message the target refused: `errno` is what the kernel's message handler returns. */
export class MessageError extends RemapsimError {
  override readonly name = 'MessageError';
  constructor(
    message: string,
    readonly errno: number = EINVAL,
  ) {
    super(message);
  }
}

/** A table line the target refused (constructor failure): `errno` as dm returns it. */
export class TableError extends RemapsimError {
  override readonly name = 'TableError';
  constructor(
    message: string,
    readonly errno: number = EINVAL,
  ) {
    super(message);
  }
}
