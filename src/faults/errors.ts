import { EINVAL } from '../block/device.js';
import { MessageError, TableError } from '../control/target.js';
import { parseTableLine } from '../control/table-line.js';

/**
 * A constructor failure whose `kernelText` is exactly the kernel's ti->error
 * string (what dmesg shows after "device-mapper: table: ...: <type>: "), so a
 * differential test can compare it with the real target. `message` may add a
 * detail for the user after it.
 */
export class KernelTableError extends TableError {
  constructor(
    readonly kernelText: string,
    detail?: string,
    errno: number = EINVAL,
  ) {
    super(detail ? `${kernelText} (${detail})` : kernelText, errno);
  }
}

/**
 * A refused target message. `kernelLog` is the line the kernel target logs
 * for this failure (DMERR), or undefined where the kernel fails silently;
 * `message` is always a readable one-line reason.
 */
export class KernelMessageError extends MessageError {
  constructor(
    message: string,
    readonly kernelLog: string | undefined,
    errno: number = EINVAL,
  ) {
    super(message, errno);
  }
}

export type FaultLogLevel = 'info' | 'error';
/** Where a fault layer sends the lines the kernel target would print with DMINFO / DMERR. */
export type FaultLogSink = (level: FaultLogLevel, line: string) => void;

/**
 * A whole table line `0 <len> <type> <args...>` for a fault target the model
 * maps as one device: its length and arguments, or a KernelTableError as the
 * kernel's table load reports it.
 */
export function singleTargetLine(line: string, type: string): { length: number; args: string[] } {
  let parsed: ReturnType<typeof parseTableLine>;
  try {
    parsed = parseTableLine(line);
  } catch (err) {
    if (err instanceof TableError && !(err instanceof KernelTableError)) throw new KernelTableError('Invalid argument count', err.message);
    throw err;
  }
  if (parsed.type !== type) throw new KernelTableError('Unknown target type', `expected '${type}', got '${parsed.type}'`);
  if (parsed.start !== 0) throw new KernelTableError('Invalid argument count', `the model maps one target starting at sector 0, got start ${parsed.start}`);
  return { length: parsed.length, args: parsed.args };
}
