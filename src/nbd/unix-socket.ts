/**
 * Unix sockets the server listens on (the NBD socket and the control socket):
 * path checks before anything is created, the stale-socket check, and the
 * access mode and group.
 *
 * A socket file is created 0600 whatever the process umask: anyone who can
 * connect to the control socket can unremap or fail sectors, and anyone who
 * can connect to the NBD socket can read and write the device. A wider mode
 * (`mode`) and a group (`group`) share it on purpose; the group is set before
 * the mode, so the file is never open to a group it was not meant for.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

/** Longest socket path in bytes: Linux's sun_path holds 108, the terminating NUL included. */
export const MAX_SOCKET_PATH_BYTES = 107;
export const DEFAULT_SOCKET_MODE = 0o600;

export interface SocketAccess {
  /** Permission bits of the socket file (default 0600). */
  mode?: number;
  /** Group id given to the socket file (default: the process's group). */
  group?: number;
}

/** A socket that cannot be set up where asked: one line, the path in it. */
export class SocketSetupError extends Error {
  override readonly name = 'SocketSetupError';
}

/**
 * Why a socket cannot be created at `p` (too long for sun_path, its directory
 * missing, not a directory, not writable), or undefined. Creates nothing.
 * The reason does not repeat the path: callers put it in front.
 */
export function socketPathProblem(p: string): string | undefined {
  const bytes = Buffer.byteLength(p);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    return `${bytes} bytes, over the ${MAX_SOCKET_PATH_BYTES} a Unix socket path can have (sun_path holds ${MAX_SOCKET_PATH_BYTES + 1} bytes with the terminating NUL)`;
  }
  if (p === '' || p.endsWith('/')) return 'not a file path';
  const dir = path.dirname(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `directory '${dir}' does not exist`;
    if (code === 'ENOTDIR') return `'${dir}' is not a directory`;
    return `cannot use directory '${dir}': ${code ?? (err as Error).message}`;
  }
  if (!st.isDirectory()) return `'${dir}' is not a directory`;
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    return `cannot create a socket in '${dir}': permission denied`;
  }
  return undefined;
}

/** Removes a socket file nobody listens on; throws when something does, or when the path is not a socket. */
export async function removeStaleSocket(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new SocketSetupError(`${p} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const s = net.createConnection(p);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new SocketSetupError(`${p}: another server is already listening there`);
  fs.rmSync(p, { force: true });
}

/**
 * Binds and listens `srv` on `p` with the access asked for. The file is
 * created 0600: the umask is 0177 for the bind, which net.Server.listen does
 * synchronously, and back before anything else runs (the umask is the
 * process's: a file another thread creates in that instant gets a narrower
 * mode, never a wider one). Must run on the main thread.
 */
export async function listenUnixSocket(srv: net.Server, p: string, access: SocketAccess = {}): Promise<void> {
  const problem = socketPathProblem(p);
  if (problem) throw new SocketSetupError(`${p}: ${problem}`);
  const mode = access.mode ?? DEFAULT_SOCKET_MODE;
  await removeStaleSocket(p);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      srv.off('listening', onListening);
      reject(err.code === 'EADDRINUSE' ? new SocketSetupError(`${p}: address in use`) : err);
    };
    const onListening = (): void => {
      srv.off('error', onError);
      resolve();
    };
    srv.once('error', onError);
    srv.once('listening', onListening);
    const saved = process.umask(0o177);
    try {
      srv.listen(p);
    } finally {
      process.umask(saved);
    }
  });
  try {
    if (access.group !== undefined) fs.chownSync(p, -1, access.group);
    if (mode !== DEFAULT_SOCKET_MODE) fs.chmodSync(p, mode);
  } catch (err) {
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    fs.rmSync(p, { force: true });
    const e = err as NodeJS.ErrnoException;
    const what = access.group !== undefined && e.syscall === 'chown' ? `cannot give it to group ${access.group}` : `cannot set its mode to ${formatMode(mode)}`;
    const hint = e.code === 'EPERM' ? ' (only root, or a member of the group, can)' : '';
    throw new SocketSetupError(`${p}: ${what}: ${e.code ?? e.message}${hint}`);
  }
}

export function formatMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/**
 * An octal socket mode (`660`, `0660`, `0o660`) that leaves its owner read
 * and write, or undefined when the text is not one.
 */
export function parseSocketMode(text: string): number | undefined {
  const m = /^(?:0o?)?([0-7]{3})$/i.exec(text.trim());
  if (!m) return undefined;
  const mode = parseInt(m[1], 8);
  return (mode & 0o600) === 0o600 ? mode : undefined;
}

/** The gid of a group given by name or number (names through NSS: `getent group`, else /etc/group); undefined when there is none. */
export function resolveGroup(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const gid = Number(t);
    return gid < 0xffffffff ? gid : undefined;
  }
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/.test(t)) return undefined;
  let entry: string | undefined;
  try {
    entry = execFileSync('getent', ['group', t], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
  } catch (err) {
    // getent exits 2 for an unknown group; anything else (no getent): read the file
    if ((err as { status?: number }).status === 2) return undefined;
    try {
      entry = fs
        .readFileSync('/etc/group', 'utf8')
        .split('\n')
        .find((l) => l.startsWith(`${t}:`));
    } catch {
      return undefined;
    }
  }
  const gid = entry?.split(':')[2];
  return gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : undefined;
}
