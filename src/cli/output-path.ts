/**
 * Output files (--json, -o, reports, state files) are checked before any work
 * starts, so a run is never lost to a path it cannot write at its end.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeFsError } from '../block/file-device.js';
import { UsageError } from '../util/errors.js';
import { statIfAny } from '../util/file-identity.js';

/**
 * Refuses `file` (given as `option`) unless it can be written: its directory
 * exists and is writable, and the path is not a directory (an existing
 * file is replaced; /dev/stdout and pipes are fine). Creates nothing.
 */
export function checkOutputPath(file: string, option: string): void {
  const dir = path.dirname(path.resolve(file));
  const d = statIfAny(dir);
  if (d === undefined) throw new UsageError(`${option}: cannot write ${file}: directory ${dir} does not exist`);
  if (!d.isDirectory()) throw new UsageError(`${option}: cannot write ${file}: ${dir} is not a directory`);
  const st = statIfAny(file);
  if (st?.isDirectory()) throw new UsageError(`${option}: ${file} is a directory; give a file name`);
  try {
    fs.accessSync(st === undefined ? dir : file, fs.constants.W_OK);
    if (st === undefined) fs.accessSync(dir, fs.constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `${option}: cannot write ${st === undefined ? `in ${dir}` : file}: ${code === 'EROFS' ? 'read-only file system' : describeFsError(err)}`,
    );
  }
}
