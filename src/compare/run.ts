/**
 * One scenario on the model and on the real kernel, step by step
 * (`remapsim compare`). The kernel side is the stack a scenario asks for
 * (loop devices, dm-dust with its bad sectors, the dm-remap-v4 module on
 * top); the model side is the same stack in userspace with the dm-remap-v4
 * policy. Each step of the trace (steps.ts) runs on both; its outcomes are
 * compared, the kernel is given time to finish the work the step started
 * (settled: the module's log shows the work the model did, then goes quiet),
 * and at checkpoints everything a user can observe is compared: the status
 * line field by field, the metadata copies on the spare, the spare's bytes
 * where remaps point, the bad-block lists. Kernel calls have time limits: a
 * call that does not return, or an oops, is a finding (with the kernel log),
 * not a hang of this process, and it ends the run. The report is complete
 * before teardown starts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SECTOR_SIZE } from '../block/device.js';
import type { StackState } from '../kernel/stack.js';
import { loggedEvents, formatEvent } from './module-log.js';
import { ModelSide, type Outcome } from './model-side.js';
import { KernelSide, type KernelTrouble } from './kernel-side.js';
import { compareMetadata, compareStatusLines, digest, lookAtMetadata, maskVolatile, type MetadataLook } from './observe.js';
import { type Step, buildTrace, describeStep } from './steps.js';
import { scenarioJobs } from '../scenario/run.js';
import type { Scenario } from '../scenario/schema.js';
import { stackSpecFromScenario } from '../scenario/stack-spec.js';

export interface StepDifference {
  step: number;
  /** The step, described. */
  what: string;
  field: string;
  model: string;
  kernel: string;
}

/** Something the kernel did wrong: a call that never returned, an oops, a warning in its log. */
export interface Finding {
  scenario: string;
  step: number;
  what: string;
  kind: string;
  detail: string;
  /** Whether the model predicted it (the dm-remap-v4 policy reproduces the module's hangs and oopses). */
  predicted: boolean;
  /** The steps that led there, and the command that replays them. */
  reproduction: { command: string; steps: string[] };
  log: string[];
}

export interface ComparisonReport {
  scenario: string;
  seed: number;
  steps: number;
  /** Steps run before the run ended (a wedged kernel ends it early). */
  stepsRun: number;
  layers: string[];
  remap: StackState['remap'];
  differences: StepDifference[];
  differenceCount: number;
  /** Model and kernel agreed on every compared observation. */
  agree: boolean;
  counts: { reads: number; writes: number; errorsModel: number; errorsKernel: number; statusCalls: number; checkpoints: number; grownBadSectors: number };
  settle: { count: number; maxMs: number; totalMs: number; incomplete: number };
  findings: Finding[];
  /** What ended the kernel side early, if anything. */
  wedged?: { kind: string; step: number; call?: string; afterMs?: number };
  teardown?: { removed: string[]; leftBehind: string[] };
}

export interface CompareOptions {
  /** I/O operations in the trace (default 400). */
  ops?: number;
  seed?: number;
  /** One cluster of new bad sectors every this many operations (default 50; 0: none). */
  growthEvery?: number;
  lifecycle?: 'full' | 'io';
  /** Run these steps instead of a generated trace. */
  trace?: Step[];
  name?: string;
  dir?: string;
  callTimeoutMs?: number;
  settleLimitMs?: number;
  maxDifferences?: number;
  /** Called with the report before teardown starts (it is complete then). */
  beforeTeardown?: (r: ComparisonReport) => void;
  /** Progress: called after each step. */
  onStep?: (done: number, total: number) => void;
}

const COMPARE_DIR = '/var/tmp';

/**
 * dm devices that an earlier compare left behind (its process is gone: it
 * was killed, or the kernel wedged), each with the command that removes what
 * it built. Reading the device list touches no target.
 */
export function compareLeftovers(devices: ReadonlyArray<{ name: string }>, alive: (pid: number) => boolean): Array<{ name: string; clean: string }> {
  const out: Array<{ name: string; clean: string }> = [];
  for (const d of devices) {
    // -bad as well: a remove that oopsed takes -remap out of the list before it fails
    const m = /^(.+-(\d+))-(?:remap|bad)$/.exec(d.name);
    if (!m || alive(Number(m[2])) || out.some((o) => o.name === m[1])) continue;
    const state = path.join(COMPARE_DIR, `remapsim-compare-${m[1]}`, 'stack.json');
    out.push({ name: m[1], clean: fs.existsSync(state) ? `remapsim stack down ${state}` : `remapsim stack clean ${m[1]} --dir ${path.dirname(state)}` });
  }
  return out;
}

export async function compareScenario(scenario: Scenario, opts: CompareOptions = {}): Promise<ComparisonReport> {
  const seed = opts.seed ?? scenario.seed;
  const name = opts.name ?? `${scenario.name.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 32)}-${process.pid}`;
  // named after the stack, so that leftovers of a run that was killed can be traced to it (compareLeftovers)
  const dir = opts.dir ?? path.join(COMPARE_DIR, `remapsim-compare-${name}`);
  fs.mkdirSync(dir, { recursive: true });
  const spec = { ...stackSpecFromScenario(scenario, { name, dir }), remapTarget: 'dm-remap-v4' };
  const job = scenarioJobs(scenario)[0];
  const kernel = await KernelSide.start(spec, {
    stateFile: path.join(dir, 'stack.json'),
    callTimeoutMs: opts.callTimeoutMs ?? 20_000,
    settleLimitMs: opts.settleLimitMs ?? 15_000,
    quietMs: 100,
  });
  let model: ModelSide | undefined;
  const report: ComparisonReport = {
    scenario: scenario.name,
    seed,
    steps: 0,
    stepsRun: 0,
    layers: ['dust', 'dm-remap-v4'],
    remap: kernel.state.remap,
    differences: [],
    differenceCount: 0,
    agree: false,
    counts: { reads: 0, writes: 0, errorsModel: 0, errorsKernel: 0, statusCalls: 0, checkpoints: 0, grownBadSectors: 0 },
    settle: { count: 0, maxMs: 0, totalMs: 0, incomplete: 0 },
    findings: [],
  };
  try {
    if (!kernel.state.remap.present) throw new Error(`the kernel has no dm-remap-v4 target: ${kernel.state.remap.reason}`);
    const st = kernel.state;
    const dustBlockSize = st.badLayer.kind === 'dust' ? st.badLayer.blockSize : st.logicalBlockSize;
    model = new ModelSide({
      dir,
      mainSectors: st.sectors,
      spareSectors: st.files.find((f) => f.role === 'spare')!.bytes / SECTOR_SIZE,
      logicalBlockSize: st.logicalBlockSize,
      dustBlockSize,
      badSectors: st.badSectors,
      mainPath: kernel.tablePaths.main,
      sparePath: kernel.tablePaths.spare,
    });
    const growth = scenario.faults.main?.growth[0];
    const trace =
      opts.trace ??
      buildTrace(job, {
        ops: opts.ops ?? 400,
        seed,
        sectors: st.sectors,
        alignBytes: st.logicalBlockSize,
        growthEvery: growth ? (opts.growthEvery ?? 50) : 0,
        growthCluster: growth?.cluster ?? 0,
        badBlockSectors: dustBlockSize / SECTOR_SIZE,
        growthRegion: growth?.region,
        lifecycle: opts.lifecycle ?? 'full',
      });
    report.steps = trace.length;
    const runner = new Runner(report, model, kernel, trace, opts, scenario);
    await runner.settleLoad();
    await runner.run();
    runner.addKernelTrouble();
  } finally {
    // a run the kernel ended early agrees when the model predicted how it ended (no difference at that step)
    const predictedEnd = report.wedged !== undefined && report.findings.some((f) => f.step === report.wedged!.step && f.predicted);
    report.agree = report.differenceCount === 0 && (report.stepsRun === report.steps || predictedEnd);
    opts.beforeTeardown?.(report);
    model?.close();
    report.teardown = await kernel.teardown();
    if (opts.dir === undefined && !kernel.wedged) fs.rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

class Runner {
  private lastKernelSequence: bigint | null = null;
  private readonly maxDiffs: number;

  constructor(
    private readonly report: ComparisonReport,
    private readonly model: ModelSide,
    private readonly kernel: KernelSide,
    private readonly trace: Step[],
    private readonly opts: CompareOptions,
    private readonly scenario: Scenario,
  ) {
    this.maxDiffs = opts.maxDifferences ?? 100;
  }

  /** The table load before the first step: the module's deferred metadata read and first metadata write. */
  async settleLoad(): Promise<void> {
    const events = loggedEvents(this.model.takeEvents());
    await this.settle(-1, events.length, events);
  }

  async run(): Promise<void> {
    const { model, kernel, trace, report } = this;
    for (let i = 0; i < trace.length; i++) {
      const step = trace[i];
      if (step.kind === 'checkpoint') await this.settle(i, 0);
      if (model.touchesBufioBlocks(step) && model.store?.pendingWriteback()) await this.followWriteback();
      const mask = model.maskFor(step);
      const m = model.step(step, i, mask);
      const k = await kernel.step(step, i, mask);
      report.stepsRun = i + 1;
      this.count(step, m, k);
      this.compareOutcomes(i, step, m, k);
      if (k.result === 'hang' || k.result === 'oops' || m.result === 'hang' || m.result === 'oops') {
        this.wedgedAt(i, step, m, k);
        break;
      }
      const events = loggedEvents(model.takeEvents());
      if (events.length > 0 || isLifecycle(step)) await this.settle(i, events.length, events);
      if (step.kind === 'checkpoint') await this.checkpoint(i);
      if (step.kind === 'recreate') await this.noteKernelSequence();
      this.opts.onStep?.(i + 1, trace.length);
    }
  }

  private count(step: Step, m: Outcome, k: Outcome): void {
    const c = this.report.counts;
    if (step.kind === 'read') c.reads++;
    if (step.kind === 'write') c.writes++;
    if (step.kind === 'status' || step.kind === 'checkpoint') c.statusCalls++;
    if (step.kind === 'checkpoint') c.checkpoints++;
    if (step.kind === 'grow') c.grownBadSectors += step.sectors.length;
    if (step.kind === 'read' || step.kind === 'write' || step.kind === 'discard') {
      if (m.result === 'error') c.errorsModel++;
      if (k.result === 'error') c.errorsKernel++;
    }
  }

  private diff(step: number, field: string, model: string, kernel: string): void {
    this.report.differenceCount++;
    const what = step < 0 ? 'table load' : describeStep(this.trace[step]);
    if (this.report.differences.length < this.maxDiffs) this.report.differences.push({ step, what, field, model, kernel });
  }

  private compareOutcomes(i: number, step: Step, m: Outcome, k: Outcome): void {
    const fmt = (o: Outcome): string => (o.result === 'error' ? `errno ${o.errno}` : o.result);
    if (fmt(m) !== fmt(k)) this.diff(i, 'outcome', fmt(m), fmt(k));
    else if (m.data !== undefined && m.data !== k.data) this.diff(i, 'data', `crc32c ${m.data?.toString(16)}`, `crc32c ${k.data?.toString(16)}`);
    if (step.kind === 'message' && m.result === 'ok' && k.result === 'ok' && (m.reply ?? null) !== (k.reply ?? null)) {
      this.diff(i, 'reply', m.reply === null ? 'none' : JSON.stringify(m.reply), k.reply === null ? 'none' : JSON.stringify(k.reply));
    }
    if (m.status !== undefined && k.status !== undefined)
      for (const d of compareStatusLines(m.status, k.status)) this.diff(i, `status.${d.field}`, d.model, d.kernel);
  }

  /** Waits for the kernel to finish the work the model did in step i, and compares the two. */
  private async settle(i: number, expected: number, modelEvents: ReturnType<typeof loggedEvents> = []): Promise<void> {
    const s = await this.kernel.settle(expected);
    const r = this.report.settle;
    r.count++;
    r.totalMs += s.ms;
    r.maxMs = Math.max(r.maxMs, s.ms);
    if (!s.complete) r.incomplete++;
    const a = modelEvents.map(formatEvent).join(', ');
    const b = s.events.map(formatEvent).join(', ');
    if (a !== b) this.diff(i, 'module work', a || 'none', `${b || 'none'}${s.complete ? '' : ` (not settled after ${s.ms} ms)`}`);
  }

  /**
   * dm-bufio writes back on its own timer: when the kernel's spare shows a
   * table it did not show before, the model writes back the same table (the
   * newest of its unwritten ones with the same entries).
   */
  private async followWriteback(): Promise<MetadataLook> {
    let look = lookAtMetadata(await this.kernel.readCopies(), Date.now() / 1000);
    // dm-bufio writes the five blocks one by one: copies of two tables mean a write-back is under way; look again
    for (let tries = 0; tries < 5 && new Set(look.sequences.filter((x) => x !== null)).size > 1; tries++) {
      await new Promise((r) => setTimeout(r, 100));
      look = lookAtMetadata(await this.kernel.readCopies(), Date.now() / 1000);
    }
    if (look.sequence !== null && look.sequence !== this.lastKernelSequence) {
      this.lastKernelSequence = look.sequence;
      const store = this.model.store;
      const key = (entries: ReadonlyArray<{ original: number; spare: number; flags: number }>): string =>
        entries.map((e) => `${e.original}>${e.spare}/${e.flags}`).join(' ');
      const want = key(look.entries);
      const tables = store?.unwritten() ?? [];
      for (let i = tables.length - 1; i >= 0; i--) {
        const mine = key(tables[i].entries.map((e) => ({ original: Number(e.originalSector), spare: Number(e.spareSector), flags: e.flags })));
        if (mine === want) {
          store!.writebackAt(i);
          break;
        }
      }
    }
    return look;
  }

  /** After a remove, the destructor's write-back is on both spares already: only remember where the kernel's stands. */
  private async noteKernelSequence(): Promise<void> {
    this.lastKernelSequence = lookAtMetadata(await this.kernel.readCopies(), Date.now() / 1000).sequence;
  }

  private async checkpoint(i: number): Promise<void> {
    const kLook = await this.followWriteback();
    const mLook = lookAtMetadata(this.model.readCopies(), Date.now() / 1000);
    for (const d of compareMetadata(mLook, kLook)) this.diff(i, `metadata.${d.field}`, d.model, d.kernel);
    // the spare where remaps point (the model's list: restored and pending alike)
    const lbs = this.kernel.state.logicalBlockSize / SECTOR_SIZE;
    const targets = [...new Set((this.model.target?.entries ?? []).map((e) => e.spareSector - (e.spareSector % lbs)))]
      .filter((s) => s < this.model.spare.sectors)
      .slice(0, 32);
    const mSpare = this.model.readSpare(targets);
    const kSpare = await this.kernel.readSpare(targets);
    targets.forEach((s, j) => {
      const a = mSpare[j] ? digest(maskVolatile(mSpare[j]!, s)) : 'unreadable';
      const b = kSpare[j] ? digest(maskVolatile(kSpare[j]!, s)) : 'unreadable';
      if (a !== b) this.diff(i, `spare sector ${s}`, a, b);
    });
    const mBad = this.model.dust.listBadBlocks().join(' ');
    const kBad = (await this.kernel.badBlocks()).join(' ');
    if (mBad !== kBad) this.diff(i, 'bad blocks', `${this.model.dust.listBadBlocks().length} blocks`, `${kBad.split(' ').filter(Boolean).length} blocks`);
  }

  private wedgedAt(i: number, step: Step, m: Outcome, k: Outcome): void {
    const w: KernelTrouble | undefined = this.kernel.wedged;
    this.report.wedged = { kind: w?.kind ?? k.result, step: i, call: w?.call, afterMs: w?.afterMs };
    const predicted = m.result === k.result;
    const what = describeStep(step);
    const detail =
      k.result === 'hang'
        ? `${w?.call ?? what} did not return within ${((w?.afterMs ?? 0) / 1000).toFixed(1)} s`
        : k.result === 'oops'
          ? `the kernel oopsed during ${what}`
          : `the model predicted ${m.result} for ${what}; the kernel returned ${k.result === 'error' ? `errno ${k.errno}` : k.result}`;
    this.report.findings.push({
      scenario: this.scenario.name,
      step: i,
      what,
      kind: k.result === 'hang' || k.result === 'oops' ? k.result : `model-${m.result}`,
      detail,
      predicted,
      reproduction: this.reproduction(i),
      log: w?.log ?? [],
    });
  }

  /** Kernel trouble in the log that the wedge (if any) does not already report: warnings, hung tasks, an oops in the background. */
  addKernelTrouble(): void {
    const wedge = this.kernel.wedged;
    for (const t of this.kernel.troubles) {
      if (wedge && (t.kind === wedge.kind || wedge.kind === 'oops')) continue;
      const at = this.report.stepsRun - 1;
      this.report.findings.push({
        scenario: this.scenario.name,
        step: at,
        what: 'the kernel log',
        kind: t.kind,
        detail: t.log[0] ?? t.kind,
        predicted: false,
        reproduction: this.reproduction(at),
        log: t.log,
      });
    }
  }

  /**
   * The steps that led to step `upTo`: every step that is not plain I/O (the
   * device's life, status calls, bad sectors appearing: what a hang or an
   * oops of this module depends on) and the last few I/Os before it, with
   * how many I/Os were left out.
   */
  reproduction(upTo: number): Finding['reproduction'] {
    const command = `remapsim compare <scenario ${this.scenario.name}> --seed ${this.report.seed} --ops ${this.opts.ops ?? 400}${this.opts.lifecycle === 'io' ? ' --io-only' : ''}`;
    const steps: string[] = [];
    let skipped = 0;
    const isIo = (s: Step): boolean => s.kind === 'read' || s.kind === 'write' || s.kind === 'discard';
    this.trace.slice(0, upTo + 1).forEach((s, j) => {
      if (isIo(s) && j < upTo - 4) {
        skipped++;
        return;
      }
      if (skipped > 0) steps.push(`(${skipped} I/Os)`);
      skipped = 0;
      steps.push(`${j}: ${describeStep(s)}`);
    });
    return { command, steps };
  }
}

function isLifecycle(s: Step): boolean {
  return s.kind !== 'read' && s.kind !== 'write' && s.kind !== 'discard' && s.kind !== 'status' && s.kind !== 'grow' && s.kind !== 'checkpoint';
}
