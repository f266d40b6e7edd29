/**
 * SO_SNDBUF for a connected socket, which Node does not offer for stream
 * sockets. A large read reply is then copied into the kernel by one write,
 * while the bytes are still in the CPU's cache, instead of a socket-buffer's
 * worth at a time as the client drains it (bench/vs-nbdkit.ts measures the
 * difference). Best effort: without koffi, or for a socket libuv does not
 * expose, nothing changes and false is returned.
 */
import { createRequire } from 'node:module';
import type * as net from 'node:net';

const require = createRequire(import.meta.url);
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;

type SetSockOpt = (fd: number, level: number, name: number, value: number[], len: number) => number;
let setsockopt: SetSockOpt | null | undefined;

function binding(): SetSockOpt | null {
  if (setsockopt === undefined) {
    try {
      const koffi = require('koffi') as typeof import('koffi');
      setsockopt = koffi.load('libc.so.6').func('int setsockopt(int fd, int level, int name, const int *value, int len)') as SetSockOpt;
    } catch {
      setsockopt = null;
    }
  }
  return setsockopt;
}

/** Asks for a send buffer of `bytes` (the kernel caps it at net.core.wmem_max). */
export function setSendBuffer(sock: net.Socket, bytes: number): boolean {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return false;
  const fn = binding();
  return fn !== null && fn(fd, SOL_SOCKET, SO_SNDBUF, [bytes], 4) === 0;
}
