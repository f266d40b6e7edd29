/** Which file a path names now: for telling two paths to one file apart from two files, and a file from its replacement. */
import * as fs from 'node:fs';

/** fs.statSync (symlinks followed), or undefined when nothing is there: also when a parent is not a directory (ENOTDIR). */
export function statIfAny(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** A file's identity: st_dev and st_ino. */
export interface FileId {
  dev: number;
  ino: number;
}

/** The identity of the file at `p` (symlinks followed), or undefined when there is none. */
export function fileIdOf(p: string): FileId | undefined {
  const st = statIfAny(p);
  return st === undefined ? undefined : { dev: st.dev, ino: st.ino };
}

/** Whether two stats are one file or device: block devices by device number (two nodes of one disk), the rest by device and inode. */
export function sameFile(a: fs.Stats, b: fs.Stats): boolean {
  if (a.isBlockDevice() && b.isBlockDevice()) return a.rdev === b.rdev;
  return a.dev === b.dev && a.ino === b.ino;
}
