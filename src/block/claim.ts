/**
 * A writer's claim on a backing file or block device, as the kernel claims a
 * block device for a table: one writer at a time, so two models never hand
 * the same spare block to two remaps. The claim is an open file description
 * lock (fcntl F_OFD_SETLK, F_WRLCK, whole file) on the writer's descriptor;
 * a block device is also opened O_EXCL (the kernel's own claim, which mounts
 * and device-mapper tables take too). Both end when the descriptor is
 * closed, also when the process dies. Readers take no claim; they can ask
 * whether a writer holds one (F_OFD_GETLK).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { glibcMajorMinor } from '../sys/dev-t.js';
import { holdersOf } from '../sys/holders.js';
import { type Libc, errnoText } from '../sys/libc.js';
import { log } from '../util/log.js';

const EAGAIN = 11;
const EACCES = 13;

/** The one line for a refused claim. */
function heldByWriter(filePath: string, holder: string): string {
  return `${filePath}: in use by another writer, ${holder}; stop it first (read-only tools: inspect, scan and export may look at it meanwhile)`;
}

/**
 * Takes the writer's lock on `fd` (open for writing). Returns undefined when
 * it is ours, or who holds it (a line for the error).
 */
export function claimWriter(fd: number, filePath: string, sys: Libc): string | undefined {
  const rc = sys.ofdSetLock(fd, 'write');
  if (rc === 0) return undefined;
  if (rc !== -EAGAIN && rc !== -EACCES) {
    // a file system without locks (some FUSE, NFS without lockd): no claim to take, nothing to refuse
    log.warn(`${filePath}: no writer's lock on this file system (${errnoText(-rc)}): a second writer would not be refused`);
    return undefined;
  }
  return heldByWriter(filePath, describeHolders(lockHolders(filePath)));
}

/**
 * Who holds a writer's claim on the file open as `fd` (read-only is fine),
 * or undefined when nobody does. For a reader to say that what it shows may
 * change under it.
 */
export function writerHolding(fd: number, filePath: string, sys: Libc): string | undefined {
  let kind: 'read' | 'write' | undefined;
  try {
    kind = sys.ofdGetLock(fd);
  } catch {
    return undefined; // no locks on this file system
  }
  return kind === undefined ? undefined : describeHolders(lockHolders(filePath));
}

/** One line for a block device whose O_EXCL open failed with EBUSY: a remapsim writer, a mount or a device-mapper table. */
export function describeBusyBlockDevice(devPath: string): string {
  const writers = lockHolders(devPath);
  if (writers.length > 0) return heldByWriter(devPath, describeHolders(writers));
  let who: string[] = [];
  try {
    const st = fs.statSync(devPath);
    who = holdersOf(glibcMajorMinor(st.rdev), []).map((h) =>
      h.kind === 'mount' ? `mounted on ${h.mountPoint} (${h.fsType})` : `used by the table of dm device '${h.name}'`,
    );
  } catch {
    // gone meanwhile
  }
  const what = who.length > 0 ? who.join(', ') : 'something holds it open exclusively (O_EXCL: a mount, a device-mapper table, another program)';
  return `${devPath}: the block device is held (EBUSY): ${what}; a writer needs it to itself`;
}

interface LockHolder {
  pid: number;
  command: string;
}

/**
 * Processes holding an OFD lock on the file at `filePath`: F_OFD_GETLK does
 * not say (its l_pid is -1 for these locks), so the holders are found in
 * /proc/<pid>/fdinfo, whose `lock:` lines show the locks taken through that
 * descriptor ("OFDLCK ADVISORY WRITE -1 MAJ:MIN:INODE 0 EOF"). Error paths
 * only: it reads every process's fdinfo.
 */
function lockHolders(filePath: string): LockHolder[] {
  let key: string;
  try {
    const st = fs.statSync(filePath);
    const { major, minor } = glibcMajorMinor(st.dev);
    key = ` ${hex2(major)}:${hex2(minor)}:${st.ino} `;
  } catch {
    return [];
  }
  const out: LockHolder[] = [];
  let pids: string[] = [];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  for (const pid of pids) {
    const dir = path.join('/proc', pid, 'fdinfo');
    let fds: string[];
    try {
      fds = fs.readdirSync(dir);
    } catch {
      continue; // gone, or not ours to look at
    }
    const holds = fds.some((fd) => {
      try {
        return fs
          .readFileSync(path.join(dir, fd), 'utf8')
          .split('\n')
          .some((l) => l.startsWith('lock:') && l.includes('OFDLCK') && l.includes(key));
      } catch {
        return false;
      }
    });
    if (holds) out.push({ pid: Number(pid), command: commandOf(pid) });
  }
  return out;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function commandOf(pid: string): string {
  try {
    const words = fs
      .readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((w) => w !== '');
    // node --import tsx .../main.ts serve ...: show from the script on, shortened
    const script = words.findIndex((w) => /(^|\/)(main\.[jt]s|remapsim)$/.test(w));
    const shown = (script >= 0 ? ['remapsim', ...words.slice(script + 1)] : words).join(' ');
    return shown.length > 100 ? `${shown.slice(0, 97)}...` : shown;
  } catch {
    return '';
  }
}

function describeHolders(holders: LockHolder[]): string {
  if (holders.length === 0) return 'a process this one cannot see (another PID namespace or container)';
  return holders
    .map((h) => {
      const self = h.pid === process.pid ? ', this process' : '';
      return `pid ${h.pid}${h.command ? ` (${h.command}${self})` : self ? ` (${self.slice(2)})` : ''}`;
    })
    .join(', ');
}
