/**
 * mknod(2) through koffi: Node has no mknod, and without udev nobody else
 * makes /dev/mapper/NAME (or /dev/mapper/control, or a /dev/loopN that a
 * container's /dev lacks). Private to src/kernel until src/sys/libc.ts offers it.
 */
import { createRequire } from 'node:module';
import { glibcMakedev } from '../sys/dev-t.js';
import { SysError } from '../sys/libc.js';

const require = createRequire(import.meta.url);

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export interface NodeSys {
  /** mknod(path, mode, makedev(major, minor)); throws SysError. `mode` includes S_IFBLK / S_IFCHR. */
  mknod(path: string, mode: number, major: number, minor: number): void;
}

let cached: NodeSys | undefined;

export function nodeSys(): NodeSys {
  cached ??= load();
  return cached;
}

function load(): NodeSys {
  const koffi = require('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  let call: (path: string, mode: number, dev: bigint) => number;
  try {
    const mknod = lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
    call = (p, mode, dev) => mknod(p, mode, dev) as number;
  } catch {
    // glibc before 2.33 exports only __xmknod(_MKNOD_VER, path, mode, &dev); the version is 0 on x86-64 and arm64.
    const xmknod = lib.func('int __xmknod(int ver, const char *path, uint32_t mode, uint64_t *dev)');
    call = (p, mode, dev) => xmknod(0, p, mode, [dev]) as number;
  }
  return {
    mknod(path, mode, major, minor) {
      if (call(path, mode, glibcMakedev(major, minor)) < 0) throw new SysError(`mknod ${path}`, koffi.errno());
    },
  };
}
