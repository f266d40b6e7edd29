/**
 * The kernel log, read from /dev/kmsg without blocking: what a kernel test
 * needs to see besides return codes. Each read returns the records logged
 * since the last one. Reading has no effect on any device, so a tester can
 * watch a target's background work (and its crashes) without changing it.
 *
 * Record format (Documentation/ABI/testing/dev-kmsg):
 *   "<prio>,<seq>,<usec>,<flags>[,...];<message>\n" followed by " KEY=value" lines.
 */
import * as fs from 'node:fs';

const EAGAIN = 'EAGAIN';
const EPIPE = 'EPIPE';

export interface KmsgRecord {
  seq: number;
  /** Microseconds since boot. */
  usec: number;
  level: number;
  text: string;
}

/** Kernel events that mean the kernel itself went wrong, not an I/O error. */
export type KernelTrouble = 'oops' | 'bug' | 'warning' | 'hung-task' | 'panic' | 'lockdep' | 'rcu-stall';

const TROUBLE: Array<[KernelTrouble, RegExp]> = [
  ['panic', /^Kernel panic/],
  ['oops', /^Oops:|^BUG: kernel NULL pointer dereference|^general protection fault|^BUG: unable to handle/],
  ['bug', /^kernel BUG at|^BUG: /],
  ['hung-task', /^INFO: task .* blocked for more than/],
  ['rcu-stall', /^rcu: INFO: rcu_.* detected stalls/],
  ['lockdep', /^WARNING: possible (circular|recursive) locking/],
  ['warning', /^WARNING: CPU: \d+ PID: \d+ at /],
];

/** What kind of kernel trouble a log line reports, if any. */
export function troubleOf(text: string): KernelTrouble | undefined {
  for (const [kind, re] of TROUBLE) if (re.test(text)) return kind;
  return undefined;
}

/** Parses one /dev/kmsg record (one read() returns one). */
export function parseKmsgRecord(raw: string): KmsgRecord | undefined {
  const semi = raw.indexOf(';');
  if (semi < 0) return undefined;
  const head = raw.slice(0, semi).split(',');
  if (head.length < 3) return undefined;
  const prio = Number(head[0]);
  const nl = raw.indexOf('\n', semi);
  const text = raw.slice(semi + 1, nl < 0 ? undefined : nl);
  return { seq: Number(head[1]), usec: Number(head[2]), level: prio & 7, text };
}

export class KernelLog {
  private fd: number;
  private readonly buf = Buffer.alloc(8192);
  /** Every record read, in order (bounded: the oldest are dropped past `keep`). */
  readonly records: KmsgRecord[] = [];
  /** Records lost because the kernel's ring overwrote them before they were read. */
  missed = 0;

  private constructor(
    fd: number,
    private readonly keep: number,
  ) {
    this.fd = fd;
  }

  /** Opens /dev/kmsg positioned at its end: only what is logged from now on is read. Undefined when there is no /dev/kmsg to read. */
  static open(opts: { keep?: number; path?: string } = {}): KernelLog | undefined {
    let fd: number;
    try {
      fd = fs.openSync(opts.path ?? '/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch {
      return undefined;
    }
    const log = new KernelLog(fd, opts.keep ?? 20000);
    // SEEK_END is not reachable from node's fs: drain what is there instead
    log.read();
    log.records.length = 0;
    return log;
  }

  /** Reads the records logged since the last call and returns them. */
  read(): KmsgRecord[] {
    const out: KmsgRecord[] = [];
    if (this.fd < 0) return out;
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === EAGAIN) break;
        if (code === EPIPE) {
          this.missed++; // overwritten before we read it; the next read goes on from the oldest record left
          continue;
        }
        throw err;
      }
      if (n <= 0) break;
      const rec = parseKmsgRecord(this.buf.toString('utf8', 0, n));
      if (rec) out.push(rec);
    }
    this.records.push(...out);
    if (this.records.length > this.keep) this.records.splice(0, this.records.length - this.keep);
    return out;
  }

  /** The last `n` lines read, as `[seconds] text`. */
  tail(n: number): string[] {
    return this.records.slice(-n).map(formatRecord);
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

export function formatRecord(r: KmsgRecord): string {
  return `[${(r.usec / 1e6).toFixed(6).padStart(12)}] ${r.text}`;
}
