/**
 * External tools (fio, nbdinfo, nbdkit) under a time limit and with their
 * output capped: fio 3.33's nbd engine spins at full CPU printing "state
 * DEAD" when its server dies, which must cost a test neither its time budget
 * nor its memory. Give fio `--thread`: it forks its jobs into sessions of
 * their own otherwise, which the time limit's SIGKILL does not reach (and
 * whose open output pipes keep the caller waiting).
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface ToolResult {
  /** Exit status; -1 when it ended by a signal. */
  code: number;
  /** The time limit ran out (the tool was killed). */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** The output cap was hit (the tool was killed). */
  capped: boolean;
}

export interface ToolOptions {
  /** Seconds before `timeout` sends SIGKILL. Default 60. */
  timeoutS?: number;
  /** Bytes of stdout (and of stderr) kept; past that the tool is killed. Default 1 MiB. */
  maxOutput?: number;
  cwd?: string;
}

/** Runs `cmd` under `timeout -s KILL`; resolves whatever its exit status. */
export function runTool(cmd: string, args: string[], opts: ToolOptions = {}): Promise<ToolResult> {
  const { timeoutS = 60, maxOutput = 1 << 20, cwd } = opts;
  return new Promise((resolve) => {
    execFile('timeout', ['-s', 'KILL', String(timeoutS), cmd, ...args], { cwd, encoding: 'utf8', maxBuffer: maxOutput }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string | null }) | null;
      const capped = e?.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER';
      const code: number = !e ? 0 : typeof e.code === 'number' ? e.code : -1;
      // timeout's SIGKILL goes to its process group, timeout itself included
      const timedOut = code === 137 || (e?.signal === 'SIGKILL' && !capped);
      resolve({ code, timedOut, stdout: String(stdout ?? ''), stderr: String(stderr ?? ''), capped });
    });
  });
}

/** The same, synchronously; throws when the tool fails (its stderr in the message). */
export function runToolSync(cmd: string, args: string[], opts: ToolOptions = {}): string {
  const { timeoutS = 60, maxOutput = 1 << 20, cwd } = opts;
  return execFileSync('timeout', ['-s', 'KILL', String(timeoutS), cmd, ...args], {
    cwd,
    encoding: 'utf8',
    maxBuffer: maxOutput,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** fio's JSON output file; with --thread, the nbd engine's "fio: connected to NBD server" line comes before it. */
export function readFioJson(file: string): { jobs: Array<Record<string, any>> } {
  const text = fs.readFileSync(file, 'utf8');
  const start = text.search(/^\{/m);
  if (start < 0) throw new Error(`${file}: no JSON in fio's output: ${text.slice(0, 300)}`);
  return JSON.parse(text.slice(start));
}
