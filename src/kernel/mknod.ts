/**
 * mknod(2) through koffi: Node has no mknod, and without udev nobody else
 * makes /dev/mapper/NAME (or /dev/mapper/control, or a /dev/loopN that a
 * container's /dev lacks). Private to src/kernel until src/sys/libc.ts offers it.
 */
import { createRequire } from 'node:module';
import { SysError } from '../sys/libc.js';

const require = createRequire(import.meta.url);

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export interface NodeSys {
  /** mknod(path, mode, makedev(major, minor)); throws SysError. `mode` includes S_IFBLK / S_IFCHR. */
  mknod(path: string, mode: number, major: number, minor: number): void;
}

/**
 * glibc's makedev: the 64-bit dev_t with the major's low 12 bits at 8..19, the
 * minor's low 8 bits at 0..7 and its next 12 at 20..31 (high parts above 32).
 * For every number the kernel can hand out this equals new_encode_dev.
 */
export function glibcMakedev(major: number, minor: number): bigint {
  const M = BigInt(major);
  const m = BigInt(minor);
  return ((M & 0xfffn) << 8n) | ((M & ~0xfffn) << 32n) | (m & 0xffn) | ((m & ~0xffn) << 12n);
}

/** glibc's major()/minor() of a dev_t as fs.Stats.rdev gives it. */
export function glibcMajorMinor(rdev: number | bigint): { major: number; minor: number } {
  const d = BigInt(rdev);
  return {
    major: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)),
    minor: Number((d & 0xffn) | ((d >> 12n) & ~0xffn)),
  };
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
