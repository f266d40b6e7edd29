/**
 * Shared by the kernel-lane tests (node:test, run in the VM by
 * `npm run test:kernel`): running tools, scratch files, loop devices made
 * through our own FFI path, and cleanup in reverse order.
 */
import { after } from 'node:test';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { attachLoop, detachLoop, loopDeviceInfo } from '../../src/kernel/loop.js';
import { DmControl } from '../../src/kernel/dm-control.js';
import { runCli } from '../../src/cli/run-cli.js';

export const NOT_IN_VM = 'kernel tests need real device-mapper: run them with `npm run test:kernel`';

/** Runs a tool; a failure throws with the tool's stderr in the message. */
export function sh(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], input });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** Runs a tool that may fail: its status, stdout and stderr. */
export function shTry(cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const cleanups: Array<() => void> = [];
let registered = false;

/** Runs `undo` after the file's tests, last registered first; failures are ignored (the VM is thrown away). */
export function onCleanup(undo: () => void): void {
  if (!registered) {
    registered = true;
    after(() => {
      for (const u of cleanups.splice(0).reverse()) {
        try {
          u();
        } catch {
          // best effort
        }
      }
    });
  }
  cleanups.push(undo);
}

/** A unique dm device name for this test process. */
export function uniqueName(tag: string): string {
  return `rs-${tag}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
}

export function scratchDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remapsim-kernel-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A loop device (through our FFI path) over a fresh sparse file; detached after the tests. */
export function loopDevice(
  bytes: number,
  opts: { blockSize?: number; dir?: string } = {},
): { device: string; number: number; file: string; majorMinor: string } {
  const dir = opts.dir ?? scratchDir();
  const file = path.join(dir, `backing-${Math.floor(Math.random() * 1e9)}.img`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  const att = attachLoop(file, { blockSize: opts.blockSize });
  onCleanup(() => {
    if (loopDeviceInfo(att.number)?.backingFile === file) detachLoop(att.number);
  });
  const info = loopDeviceInfo(att.number);
  if (!info) throw new Error(`${att.device} vanished after attach`);
  return { device: att.device, number: att.number, file, majorMinor: `${info.major}:${info.minor}` };
}

/** A control object for the file, closed after its tests. */
export function control(): DmControl {
  const dm = DmControl.open();
  onCleanup(() => dm.close());
  return dm;
}

/** Removes the device after the tests if it still exists. */
export function removeLater(dm: DmControl, name: string): void {
  onCleanup(() => {
    if (dm.exists(name)) dm.remove(name, { retries: 10 });
  });
}

/** `dmsetup info NAME` as field -> value. */
export function parseDmsetupInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s+(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `remapsim <args>` in this process, with only the given command modules
 * registered (the same commander program and error mapping as the binary; a
 * node start costs seconds under emulation). Captures what it writes and its
 * exit status.
 */
export function inProcessCli(register: ReadonlyArray<(program: Command) => void>): (...args: string[]) => Promise<CliRun> {
  return async (...args) => {
    const program = new Command('remapsim').version('0.0.0-test').exitOverride();
    for (const r of register) r(program);
    let stdout = '';
    let stderr = '';
    const realOut = process.stdout.write.bind(process.stdout);
    const realErr = process.stderr.write.bind(process.stderr);
    const savedCode = process.exitCode;
    process.exitCode = 0;
    // Only strings are ours: the test runner's own reports are written as Buffers.
    process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string') {
        stdout += chunk;
        return true;
      }
      return (realOut as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
    process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string') {
        stderr += chunk;
        return true;
      }
      return (realErr as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    let code: number;
    try {
      await runCli(program, ['node', 'remapsim', ...args]);
      code = Number(process.exitCode ?? 0);
    } finally {
      process.stdout.write = realOut;
      process.stderr.write = realErr;
      process.exitCode = savedCode;
    }
    return { code, stdout, stderr };
  };
}
