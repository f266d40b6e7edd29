/**
 * SO_SNDBUF for a connected socket, which Node does not offer for stream
 * sockets. A large read reply is then copied into the kernel by one write,
 * while the bytes are still in the CPU's cache, instead of a socket-buffer's
 * worth at a time as the client drains it (bench/vs-nbdkit.ts measures the
 * difference). Best effort: without koffi, or for a socket libuv does not
 * expose, nothing changes and false is returned.
 */
import type * as net from 'node:net';
import { libc } from '../sys/libc.js';

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;

/** Asks for a send buffer of `bytes` (the kernel caps it at net.core.wmem_max). */
export function setSendBuffer(sock: net.Socket, bytes: number): boolean {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return false;
  try {
    return libc().setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, bytes);
  } catch {
    return false;
  }
}
