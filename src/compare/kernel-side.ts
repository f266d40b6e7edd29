/**
 * The kernel's side of a differential run: the stack built by the kernel
 * agent, every call made through it with a time limit, and the kernel log
 * read alongside. A call that does not come back, or an oops, ends the
 * kernel side (the kernel is no longer trustworthy); what it logged goes into
 * the report.
 */
import * as fs from 'node:fs';
import { OK, SECTOR_SIZE } from '../block/device.js';
import type { DmTargetSpec } from '../kernel/dm-ioctl-codec.js';
import { KernelAgent, KernelAgentGone, KernelCallError, KernelCallTimeout } from '../kernel/agent/client.js';
import { KernelLog, type KmsgRecord, formatRecord, troubleOf } from '../kernel/kmsg.js';
import { type StackSpec, type StackState, saveStackState } from '../kernel/stack.js';
import { V4_COPY_SECTORS } from '../metadata/dm-remap-v4.js';
import { v4CopyIoBytes } from '../metadata/v4-store.js';
import type { V4Event } from '../remap/v4-target.js';
import { type Outcome, readDigest } from './model-side.js';
import { isLoadComplete, moduleEvent } from './module-log.js';
import { type Step, writeData } from './steps.js';

const ENXIO = 6;

export interface KernelTrouble {
  kind: string;
  /** The call it happened in, if one was under way. */
  call?: string;
  afterMs?: number;
  log: string[];
}

export interface KernelSideOptions {
  callTimeoutMs: number;
  settleLimitMs: number;
  /** Quiet time that ends a settle once the expected work was seen. */
  quietMs: number;
}

export class KernelSide {
  state!: StackState;
  private handle: number | undefined;
  private spareHandle: number | undefined;
  /** Module events read from the log and not yet taken. */
  private events: V4Event[] = [];
  private lastModuleLineAt = 0;
  private loadsCompleted = 0;
  /** Set when the kernel side can go no further: why. */
  wedged: KernelTrouble | undefined;
  /** Kernel trouble seen in the log (oops, hung task, warnings), in order. */
  readonly troubles: KernelTrouble[] = [];

  private constructor(
    private agent: KernelAgent,
    readonly log: KernelLog | undefined,
    private readonly opts: KernelSideOptions,
  ) {}

  /** Builds the stack; its state goes to `stateFile` so that `remapsim stack down` can remove it if this process cannot. */
  static async start(spec: StackSpec, opts: KernelSideOptions & { stateFile: string }): Promise<KernelSide> {
    const agent = await KernelAgent.start({ callTimeoutMs: opts.callTimeoutMs });
    const side = new KernelSide(agent, KernelLog.open(), opts);
    side.state = await agent.buildStack(spec);
    saveStackState(opts.stateFile, side.state);
    await side.waitForLoad();
    await side.openTop();
    return side;
  }

  get remapName(): string {
    return this.state.devices.find((d) => d.role === 'remap')!.name;
  }

  get remapTable(): DmTargetSpec[] {
    const dev = this.state.devices.find((d) => d.role === 'remap')!;
    const bad = this.state.devices.find((d) => d.role === 'bad')!;
    return [{ start: 0, length: dev.sectors, type: 'dm-remap-v4', params: `${bad.path} ${this.state.spareDevice}` }];
  }

  /** The kernel's table arguments (what its status and table lines echo). */
  get tablePaths(): { main: string; spare: string } {
    return { main: this.state.devices.find((d) => d.role === 'bad')!.path, spare: this.state.spareDevice };
  }

  private async openTop(): Promise<void> {
    this.handle = await this.agent.call<number>({ op: 'dev.open', path: this.state.top, direct: true });
  }

  private async closeTop(): Promise<void> {
    if (this.handle === undefined) return;
    const h = this.handle;
    this.handle = undefined;
    await this.agent.call({ op: 'dev.close', handle: h });
  }

  /** Runs one step. A hang or an oops ends the kernel side. */
  async step(step: Step, index: number, mask?: number): Promise<Outcome> {
    if (this.wedged) return { result: 'skipped' };
    const what = `step ${index}`;
    try {
      return await this.run(step, index, mask);
    } catch (err) {
      if (err instanceof KernelCallTimeout) await dumpBlockedTasks();
      return this.failure(err, what);
    }
  }

  private async run(step: Step, index: number, mask: number | undefined): Promise<Outcome> {
    const a = this.agent;
    const name = this.remapName;
    switch (step.kind) {
      case 'read': {
        if (this.handle === undefined) return { result: 'error', errno: ENXIO };
        const r = await a.call<{ status: number; data: Uint8Array }>({
          op: 'dev.read',
          handle: this.handle,
          sector: step.sector,
          bytes: step.sectors * SECTOR_SIZE,
        });
        return r.status === OK ? { result: 'ok', data: readDigest(r.data, mask) } : { result: 'error', errno: r.status };
      }
      case 'write': {
        if (this.handle === undefined) return { result: 'error', errno: ENXIO };
        const rc = await a.call<number>({
          op: 'dev.write',
          handle: this.handle,
          sector: step.sector,
          data: writeData(index, step.sectors * SECTOR_SIZE),
          fua: step.fua ?? false,
        });
        return rc === OK ? { result: 'ok' } : { result: 'error', errno: rc };
      }
      case 'discard': {
        if (this.handle === undefined) return { result: 'error', errno: ENXIO };
        const rc = await a.call<number>({ op: 'dev.discard', handle: this.handle, sector: step.sector, count: step.sectors });
        return rc === OK ? { result: 'ok' } : { result: 'error', errno: rc };
      }
      case 'flush': {
        if (this.handle === undefined) return { result: 'error', errno: ENXIO };
        const rc = await a.call<number>({ op: 'dev.flush', handle: this.handle });
        return rc === OK ? { result: 'ok' } : { result: 'error', errno: rc };
      }
      case 'status':
      case 'checkpoint': {
        const t = await a.dm<Array<{ start: number; length: number; type: string; params: string }>>('status', [name]);
        return { result: 'ok', status: t.map((x) => `${x.start} ${x.length} ${x.type} ${x.params}`).join('\n') };
      }
      case 'idle':
        await sleep(step.ms);
        return { result: 'ok' };
      case 'message':
        return this.callResult(
          () => a.dm('messageReply', [name, 0, step.args.join(' ')]),
          (v) => ({ result: 'ok', reply: replyText(v) }),
        );
      case 'grow': {
        this.state = await a.call<StackState>({ op: 'stack.addBad', state: this.state, sectors: step.sectors });
        return { result: 'ok' };
      }
      case 'suspend':
        return this.callResult(
          () => a.dm('suspend', [name]),
          () => ({ result: 'ok' }),
        );
      case 'resume':
        return this.callResult(
          () => a.dm('resume', [name]),
          () => ({ result: 'ok' }),
        );
      case 'reload': {
        // no EBUSY explanation: it reads every live table, and a status call changes the module under test
        const r = await this.callResult(
          () => a.dm('load', [name, this.remapTable, { explainBusy: false }]),
          () => ({ result: 'ok' }) as Outcome,
        );
        if (r.result === 'ok') await a.dm('clear', [name]); // not expected: leave the live table as it was
        return r;
      }
      case 'recreate': {
        await this.closeTop();
        const r = await this.callResult(
          () => a.dm('remove', [name]),
          () => ({ result: 'ok' }) as Outcome,
        );
        if (r.result !== 'ok') return r;
        await a.dm('create', [name]);
        await a.dm('load', [name, this.remapTable, { explainBusy: false }]);
        await a.dm('resume', [name]);
        await this.waitForLoad();
        await this.openTop();
        return { result: 'ok' };
      }
      case 'remove': {
        await this.closeTop();
        if (step.suspendFirst) {
          const s = await this.callResult(
            () => a.dm('suspend', [name]),
            () => ({ result: 'ok' }) as Outcome,
          );
          if (s.result !== 'ok') return s;
        }
        return this.callResult(
          () => a.dm('remove', [name]),
          () => ({ result: 'ok' }) as Outcome,
        );
      }
    }
  }

  /** A call whose refusal (an errno) is an outcome to compare, not a failure of the run. */
  private async callResult<T>(call: () => Promise<T>, ok: (v: T) => Outcome): Promise<Outcome> {
    try {
      return ok(await call());
    } catch (err) {
      if (err instanceof KernelCallError && err.errno !== undefined) return { result: 'error', errno: err.errno };
      throw err;
    }
  }

  private failure(err: unknown, what: string): Outcome {
    this.readLog();
    const oops = this.troubles.some((t) => t.kind === 'oops' || t.kind === 'bug' || t.kind === 'panic');
    if (err instanceof KernelCallTimeout) {
      this.wedged = { kind: oops ? 'oops' : 'hang', call: `${what}: ${err.call}`, afterMs: err.afterMs, log: this.log?.tail(200) ?? [] };
      return { result: oops ? 'oops' : 'hang' };
    }
    if (err instanceof KernelAgentGone) {
      this.wedged = { kind: oops ? 'oops' : 'agent-died', call: `${what}: ${err.message}`, log: this.log?.tail(60) ?? [] };
      return { result: oops ? 'oops' : 'hang' };
    }
    throw err;
  }

  /** Reads the kernel log: module events are queued, kernel trouble is recorded. */
  readLog(): KmsgRecord[] {
    const recs = this.log?.read() ?? [];
    for (const r of recs) {
      if (r.text.startsWith('dm-remap:')) this.lastModuleLineAt = Date.now();
      const e = moduleEvent(r.text);
      if (e) this.events.push(e);
      if (isLoadComplete(r.text)) this.loadsCompleted++;
      const kind = troubleOf(r.text);
      if (kind) this.troubles.push({ kind, log: [formatRecord(r), ...(this.log?.tail(40) ?? [])] });
    }
    return recs;
  }

  private async waitForLoad(): Promise<void> {
    const want = this.loadsCompleted + 1;
    const t0 = Date.now();
    while (Date.now() - t0 < this.opts.settleLimitMs) {
      this.readLog();
      if (this.loadsCompleted >= want) return;
      await sleep(20);
    }
  }

  /**
   * Waits until the module has logged at least `expected` events since the
   * last settle and then been quiet for a moment, or the limit passes.
   * Returns the events seen and how long it took.
   */
  async settle(expected: number): Promise<{ events: V4Event[]; ms: number; complete: boolean }> {
    const t0 = Date.now();
    let complete = false;
    for (;;) {
      this.readLog();
      const now = Date.now();
      if (this.events.length >= expected && now - this.lastModuleLineAt >= this.opts.quietMs) {
        complete = true;
        break;
      }
      if (now - t0 >= this.opts.settleLimitMs) break;
      await sleep(expected > this.events.length ? 10 : Math.max(5, this.opts.quietMs / 4));
    }
    const events = this.events;
    this.events = [];
    return { events, ms: Date.now() - t0, complete };
  }

  /** The five metadata copies on the spare, read past every cache. */
  async readCopies(): Promise<Array<Uint8Array | null>> {
    const bytes = v4CopyIoBytes(this.state.logicalBlockSize);
    const out: Array<Uint8Array | null> = [];
    for (const s of V4_COPY_SECTORS) {
      const r = await this.spareRead(s, bytes);
      out.push(r);
    }
    return out;
  }

  /** The spare's logical blocks at these sectors. */
  async readSpare(sectors: readonly number[]): Promise<Array<Uint8Array | null>> {
    const out: Array<Uint8Array | null> = [];
    for (const s of sectors) out.push(await this.spareRead(s, this.state.logicalBlockSize));
    return out;
  }

  private async spareRead(sector: number, bytes: number): Promise<Uint8Array | null> {
    this.spareHandle ??= await this.agent.call<number>({ op: 'dev.open', path: this.state.spareDevice, direct: true });
    const r = await this.agent.call<{ status: number; data: Uint8Array }>({ op: 'dev.read', handle: this.spareHandle, sector, bytes });
    return r.status === OK ? r.data : null;
  }

  /** dm-dust's bad-block list now. */
  async badBlocks(): Promise<number[]> {
    const bad = this.state.devices.find((d) => d.role === 'bad')!;
    const v = await this.agent.dm('message', [bad.name, 0, 'listbadblocks']);
    const text = replyText(v) ?? '';
    return /^No blocks/.test(text.trim())
      ? []
      : text
          .split(/\s+/)
          .filter((w) => w !== '')
          .map(Number);
  }

  /**
   * Tears the stack down, each call with its time limit, through a fresh
   * agent when the old one is stuck. Returns what was left behind, and why.
   */
  async teardown(): Promise<{ removed: string[]; leftBehind: string[] }> {
    const removed: string[] = [];
    const leftBehind: string[] = [];
    if (this.wedged) {
      leftBehind.push(
        ...this.state.devices.map((d) => `${d.path} (the kernel is wedged: ${this.wedged!.kind} in ${this.wedged!.call ?? 'a call'}; reboot to clear it)`),
      );
      leftBehind.push(...this.state.loops.map((l) => l.device), ...this.state.files.filter((f) => f.created).map((f) => f.path));
      this.agent.abandon('the kernel side is wedged');
      return { removed, leftBehind };
    }
    try {
      await this.closeTop();
      if (this.spareHandle !== undefined) await this.agent.call({ op: 'dev.close', handle: this.spareHandle });
    } catch {
      // the removes below say what is left
    }
    for (const d of [...this.state.devices].reverse()) {
      try {
        await this.agent.dm('remove', [d.name, { retries: 10, retryDelayMs: 100 }]);
        removed.push(d.name);
      } catch (err) {
        if (err instanceof KernelCallError && err.errno === ENXIO) continue;
        leftBehind.push(`${d.path}: ${(err as Error).message}`);
        if (err instanceof KernelCallTimeout || err instanceof KernelAgentGone) {
          this.readLog();
          this.wedged = {
            kind: 'hang',
            call: `removing ${d.name}`,
            afterMs: err instanceof KernelCallTimeout ? err.afterMs : undefined,
            log: this.log?.tail(60) ?? [],
          };
          return { removed, leftBehind };
        }
      }
    }
    for (const l of [...this.state.loops].reverse()) {
      try {
        const info = await this.agent.call<{ backingFile: string } | null>({ op: 'loop.info', device: l.number });
        if (info && (info.backingFile === l.backingFile || info.backingFile === `${l.backingFile} (deleted)`))
          await this.agent.call({ op: 'loop.detach', device: l.number });
        removed.push(l.device);
      } catch (err) {
        leftBehind.push(`${l.device}: ${(err as Error).message}`);
      }
    }
    for (const f of this.state.files) {
      if (!f.created) continue;
      try {
        await this.agent.call({ op: 'file.unlink', path: f.path });
        removed.push(f.path);
      } catch (err) {
        leftBehind.push(`${f.path}: ${(err as Error).message}`);
      }
    }
    await this.agent.close();
    this.log?.close();
    return { removed, leftBehind };
  }

  /** Gives up on the agent without waiting (it may be stuck in the kernel). */
  abandon(): void {
    this.agent.abandon('abandoned');
    this.log?.close();
  }
}

function replyText(v: unknown): string | null {
  if (typeof v === 'string') return v === '' ? null : v;
  if (v && typeof v === 'object' && 'text' in v) {
    const r = v as { text: string; replied?: boolean };
    return r.replied === false ? null : r.text;
  }
  return null;
}

/** Asks the kernel to log the stack of every blocked task (sysrq 'w'), so a hang's report shows where it waits. */
async function dumpBlockedTasks(): Promise<void> {
  try {
    fs.writeFileSync('/proc/sysrq-trigger', 'w');
    await sleep(300);
  } catch {
    // not root, or no sysrq: the report has the log as it is
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
