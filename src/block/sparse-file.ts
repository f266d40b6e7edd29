/**
 * Sparse backing files of a given size. The filesystem is asked first, with
 * the same call that makes the real file: a probe file in the same directory
 * is truncated to the size and removed. A size the filesystem cannot hold
 * (EFBIG: ext4 stops at 16 TiB with 4 KiB blocks; statvfs does not tell the
 * limit) is one line naming the size, and a failed creation leaves no file.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../util/errors.js';
import { describeFsError } from './file-device.js';
import { formatSize } from '../util/format-size.js';

/** A file that could not be made at the size asked for; `what` (an option or field) starts the message. */
export class FileSizeError extends UsageError {
  override readonly name: string = 'FileSizeError';
}

function sizeText(bytes: number): string {
  const s = formatSize(bytes);
  return s.endsWith(' B') ? `${bytes} bytes` : `${s} (${bytes} bytes)`;
}

function truncateError(err: unknown, what: string, file: string, bytes: number): FileSizeError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EFBIG' || code === 'EINVAL') {
    return new FileSizeError(`${what}: ${sizeText(bytes)} is more than the filesystem of ${path.dirname(path.resolve(file))} allows for one file (${code})`);
  }
  return new FileSizeError(`${what}: cannot make ${file} ${sizeText(bytes)} long: ${describeFsError(err)}`);
}

/**
 * Throws a FileSizeError when the filesystem of `dir` cannot hold a file of
 * `bytes` (or no file can be created there). Nothing is left behind.
 */
export function checkFileSize(dir: string, bytes: number, what: string): void {
  const probe = path.join(dir, `.remapsim-size-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number;
  try {
    fd = fs.openSync(probe, 'wx', 0o600);
  } catch (err) {
    throw new FileSizeError(`${what}: cannot create a file in ${dir}: ${describeFsError(err)}`);
  }
  try {
    fs.ftruncateSync(fd, bytes);
  } catch (err) {
    throw truncateError(err, what, probe, bytes);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(probe, { force: true });
  }
}

/** Creates `file`, which must not exist, sparse and `bytes` long; when that fails, no file is left. */
export function createSparseFile(file: string, bytes: number, what: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FileSizeError(`${what}: cannot create ${file}: ${code === 'EEXIST' ? 'it exists already' : describeFsError(err)}`);
  }
  try {
    fs.ftruncateSync(fd, bytes);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw truncateError(err, what, file, bytes);
  }
  fs.closeSync(fd);
}

/** Makes an existing regular file at least `bytes` long (sparse; never shorter). */
export function growFile(file: string, bytes: number, what: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    if (fs.fstatSync(fd).size < bytes) fs.ftruncateSync(fd, bytes);
  } catch (err) {
    throw truncateError(err, what, file, bytes);
  } finally {
    fs.closeSync(fd);
  }
}
