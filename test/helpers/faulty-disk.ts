/**
 * A disk with real read faults, as a file: nbdkit's sh plugin serves a disk
 * of zeroes whose listed 4 KiB blocks fail every read with EIO (and one that
 * reads slowly, if asked); nbdfuse turns it into a read-only file, read with
 * O_DIRECT so every read reaches nbdkit.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface FaultyDiskSpec {
  /** A directory of its own (the script and the mount point go there). */
  dir: string;
  bytes: number;
  /** 4 KiB blocks that fail every read with EIO. */
  badBlocks: readonly number[];
  /** A 4 KiB block that takes `slowSeconds` to read. */
  slowBlock?: number;
  slowSeconds?: number;
}

export interface FaultyDisk {
  /** The disk as a file. */
  path: string;
  stop(): Promise<void>;
}

/** Why the disk cannot be made here (FUSE or a tool missing), or undefined. */
export function faultyDiskUnavailable(): string | undefined {
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing';
  for (const tool of ['nbdkit', 'nbdfuse', 'fusermount3']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

export async function waitFor(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function script(spec: FaultyDiskSpec): string {
  const slow = spec.slowBlock === undefined ? '' : `    if overlaps ${spec.slowBlock}; then sleep ${spec.slowSeconds ?? 0.6}; fi\n`;
  return `#!/bin/bash
overlaps() { local s=$(($1*4096)); [ "$off" -lt $((s+4096)) ] && [ $((off+count)) -gt "$s" ]; }
case "$1" in
  get_size) echo ${spec.bytes} ;;
  pread)
    count=$3; off=$4
    for b in ${spec.badBlocks.join(' ')}; do if overlaps $b; then echo "EIO bad block $b" >&2; exit 1; fi; done
${slow}    head -c "$count" /dev/zero ;;
  can_write) exit 3 ;;
  *) exit 2 ;;
esac
`;
}

export async function startFaultyDisk(spec: FaultyDiskSpec): Promise<FaultyDisk> {
  const mnt = path.join(spec.dir, 'mnt');
  fs.mkdirSync(mnt, { recursive: true });
  const file = path.join(spec.dir, 'disk.sh');
  fs.writeFileSync(file, script(spec), { mode: 0o755 });
  const disk = path.join(mnt, 'disk');
  const fuse: ChildProcess = spawn('nbdfuse', ['-r', disk, '--command', 'nbdkit', '-s', 'sh', file], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    try {
      execFileSync('fusermount3', ['-u', mnt], { stdio: 'ignore' });
    } catch {
      fuse.kill();
    }
    await waitFor('nbdfuse to exit', () => fuse.exitCode !== null || fuse.signalCode !== null, 10_000).catch(() => fuse.kill('SIGKILL'));
  };
  try {
    await waitFor('the nbdfuse file', () => fs.existsSync(disk) && fs.statSync(disk).size === spec.bytes);
  } catch (err) {
    await stop();
    throw err;
  }
  return { path: disk, stop };
}
