/**
 * Kernel calls with a time limit. A DM ioctl, a loop ioctl or I/O on a
 * kernel block device can block for ever inside the kernel (a target whose
 * destructor waits on work that never runs, an oops in the middle of an
 * ioctl); a process stuck in such a call cannot be killed. So the calls run
 * in a child process (child.ts), and the parent waits for each answer only
 * as long as its time limit: a call that does not come back is reported
 * (which call, after how long), the child is abandoned where it is stuck,
 * and the parent goes on: to write its report, to clean up what can still be
 * cleaned, and to exit.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { StackSpec, StackState } from '../stack.js';
import type { DmMethod, AgentCall, AgentReply, AgentRequest } from './protocol.js';

/** A kernel call that did not return within its time limit. */
export class KernelCallTimeout extends Error {
  override readonly name = 'KernelCallTimeout';
  constructor(
    readonly call: string,
    readonly afterMs: number,
  ) {
    super(`${call} did not return within ${(afterMs / 1000).toFixed(1)} s`);
  }
}

/** The agent process ended (or was abandoned) before it answered. */
export class KernelAgentGone extends Error {
  override readonly name = 'KernelAgentGone';
}

/** A kernel call that returned an error: the remote error's name, message and errno. */
export class KernelCallError extends Error {
  constructor(
    message: string,
    readonly remoteName: string,
    readonly errno: number | undefined,
  ) {
    super(message);
    this.name = remoteName;
  }
}

export interface KernelAgentOptions {
  /** Time limit of one call unless the call says otherwise (default 30 s). */
  callTimeoutMs?: number;
  /** Time limit for the agent process to start (default 120 s: a node process starts slowly in an emulated VM). */
  startTimeoutMs?: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class KernelAgent {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Why the agent can take no more calls; undefined while it can. */
  gone: string | undefined;
  readonly callTimeoutMs: number;

  private constructor(child: ChildProcess, callTimeoutMs: number) {
    this.child = child;
    this.callTimeoutMs = callTimeoutMs;
    child.on('message', (m: AgentReply) => this.answer(m));
    child.on('exit', (code, signal) => this.lost(`the kernel agent (pid ${child.pid}) exited (${signal ?? `code ${code}`})`));
    child.on('error', (err) => this.lost(`the kernel agent failed: ${err.message}`));
  }

  static async start(opts: KernelAgentOptions = {}): Promise<KernelAgent> {
    const self = import.meta.url;
    const fromSource = self.endsWith('.ts');
    const entry = fileURLToPath(new URL(`./child${fromSource ? '.ts' : '.js'}`, self));
    // no inherited stdout or stderr: a child stuck in the kernel would hold them open, and whoever
    // reads our output to its end (a test runner, a pipe) would wait for it as long as it is stuck
    const child = fork(entry, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      execArgv: fromSource ? ['--import', 'tsx'] : [],
    });
    child.stderr?.on('data', (d: Buffer) => process.stderr.write(d));
    const agent = new KernelAgent(child, opts.callTimeoutMs ?? 30_000);
    await agent.call({ op: 'ping' }, { timeoutMs: opts.startTimeoutMs ?? 120_000, what: 'starting the kernel agent' });
    return agent;
  }

  /** Sends one request; rejects with KernelCallTimeout when it does not come back in time (the agent is then abandoned). */
  call<T = unknown>(request: AgentRequest, opts: { timeoutMs?: number; what?: string } = {}): Promise<T> {
    if (this.gone || !this.child) return Promise.reject(new KernelAgentGone(this.gone ?? 'the kernel agent is closed'));
    const id = this.nextId++;
    const limit = opts.timeoutMs ?? this.callTimeoutMs;
    const what = opts.what ?? describe(request);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.abandon(`${what} did not return within ${(limit / 1000).toFixed(1)} s`);
        reject(new KernelCallTimeout(what, limit));
      }, limit);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child!.send({ id, request } satisfies AgentCall);
    });
  }

  dm<T = unknown>(method: DmMethod, args: unknown[], opts: { timeoutMs?: number } = {}): Promise<T> {
    return this.call<T>(
      { op: 'dm', method, args },
      { ...opts, what: `dm ${method} ${args.filter((a) => typeof a === 'string' || typeof a === 'number').join(' ')}`.trim() },
    );
  }

  buildStack(spec: StackSpec, opts: { timeoutMs?: number } = {}): Promise<StackState> {
    return this.call<StackState>(
      { op: 'stack.build', spec },
      { timeoutMs: opts.timeoutMs ?? Math.max(this.callTimeoutMs, 60_000), what: `building stack '${spec.name}'` },
    );
  }

  /** Gives up on the agent: it is killed (if it is stuck in the kernel it stays where it is) and the parent no longer waits for it. */
  abandon(why: string): void {
    if (this.gone) return;
    this.gone = why;
    const child = this.child;
    this.child = undefined;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new KernelAgentGone(why));
    }
    this.pending.clear();
    if (child) {
      child.removeAllListeners('exit');
      child.stderr?.destroy();
      child.kill('SIGKILL');
      if (child.connected) child.disconnect();
      child.unref();
    }
  }

  /** Ends the agent after its last answer. */
  async close(): Promise<void> {
    const child = this.child;
    if (!child || this.gone) return;
    this.gone = 'the kernel agent is closed';
    this.child = undefined;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        child.unref();
        resolve();
      }, 5000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      if (child.connected) child.disconnect();
      else child.kill('SIGKILL');
    });
  }

  private answer(m: AgentReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.value);
    else p.reject(new KernelCallError(m.error.message, m.error.name, m.error.errno));
  }

  private lost(why: string): void {
    if (this.gone) return;
    this.gone = why;
    this.child = undefined;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new KernelAgentGone(why));
    }
    this.pending.clear();
  }
}

function describe(r: AgentRequest): string {
  switch (r.op) {
    case 'dev.read':
    case 'dev.write':
      return `${r.op === 'dev.read' ? 'read' : 'write'} at sector ${r.sector}`;
    case 'dev.discard':
      return `discard at sector ${r.sector}`;
    case 'dev.open':
      return `open ${r.path}`;
    case 'loop.detach':
      return `detach loop${r.device}`;
    default:
      return r.op;
  }
}
