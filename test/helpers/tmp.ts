import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

/** A fresh temporary directory, removed by the returned cleanup. */
export function tmpDir(prefix = 'remapsim-test-'): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A temporary directory and an undo list, both cleared after the file's
 * tests: undos run last registered first, each failure ignored, then the
 * directory goes.
 */
export function tmpWithUndo(prefix: string, afterAll: (fn: () => void) => void): { dir: string; undo: Array<() => void> } {
  const tmp = tmpDir(prefix);
  const undo: Array<() => void> = [];
  afterAll(() => {
    for (const u of undo.reverse()) {
      try {
        u();
      } catch {
        // best effort
      }
    }
    tmp.cleanup();
  });
  return { dir: tmp.dir, undo };
}

/** Why loop devices cannot be used here, or undefined when they can. */
export function loopUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'loop devices need root';
  if (!fs.existsSync('/dev/loop-control')) return '/dev/loop-control is missing';
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'losetup is not installed';
  }
  return undefined;
}

export function skipReason(reason: string | undefined, what: string): boolean {
  if (reason) console.log(`skipping ${what}: ${reason}`);
  return reason !== undefined;
}
