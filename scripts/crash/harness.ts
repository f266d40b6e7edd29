/**
 * The SIGKILL crash harness, shared by both policies. Per run: a child
 * process (child.ts) recovers the model from two files and runs a
 * write-heavy job with main sectors going bad, reporting each acknowledged
 * write and each remap over a pipe; it is killed with SIGKILL, either by the
 * parent after a seeded number of acknowledged writes or by itself at a
 * seeded write to the spare (optionally torn). The parent then reopens the
 * model (recovery, no faults) and checks that every acknowledged write reads
 * back and every reported remap is still there.
 *
 * Everything the parent decides comes from one seed: child seeds, crash
 * points and kill thresholds. Where exactly a parent-sent SIGKILL lands
 * depends on scheduling; crash points at spare writes are exact.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileDevice } from '../../src/block/file-device.js';
import { Random } from '../../src/util/random.js';
import { type CheckResult, type FindingKind, Expectations, FINDING_KINDS, addChecks, checkModel, emptyCheck, totalFindings } from './check.js';
import type { ChildConfig } from './child.js';
import { type CrashGeometry, type CrashPolicy, DEFAULT_GEOMETRY, crashPattern, modelDevice, openCrashModel } from './workload.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'child.ts');
const ROOT = path.resolve(here, '../..');
const GEN_STRIDE = 1 << 22;

export interface CrashSuiteOptions {
  policy: CrashPolicy;
  seed: number;
  /** Number of child runs, each ended by a SIGKILL. */
  kills: number;
  geometry?: CrashGeometry;
  /** Directory for the two image files (default: a fresh temporary directory, removed afterwards). */
  dir?: string;
  /** The parent kills after a number of acknowledged writes drawn from [minAcks, maxAcks]. */
  minAcks?: number;
  maxAcks?: number;
  /** Share of runs that crash themselves at a drawn write to the spare (default 0.5). */
  crashPointRate?: number;
  /** Highest spare write a crash point is drawn from (default 40). */
  maxCrashPoint?: number;
  log?: (line: string) => void;
}

export interface RunRecord {
  run: number;
  killedBy: 'parent' | 'crash-point' | 'crash-point-torn';
  crashAtWrite?: number;
  acks: number;
  remaps: number;
  opened: string;
  findings: number;
}

export interface CrashSuiteReport {
  policy: CrashPolicy;
  seed: number;
  kills: { total: number; byParent: number; atCrashPoint: number; torn: number };
  writes: { acknowledged: number; failed: number };
  remapsReported: number;
  badSectors: number;
  /** Reopens that found no valid metadata and started from an empty table (dm-remap-v4). */
  tableResets: number;
  /** dm-remap-v4: entries the last reopen restored (the module keeps at most 2048). */
  restoredAtLastReopen?: number;
  /** Summed over the checks after every kill (a loss that persists is counted after each kill that sees it). */
  checks: CheckResult;
  /** Findings of the last check: what is lost at the end of the run. */
  finalCheck: CheckResult;
  /** Distinct units (and remap keys) ever found lost, by class. */
  distinct: Record<FindingKind, number>;
  findings: number;
  runs: RunRecord[];
  durationMs: number;
}

/**
 * How to start the child. A bundle made with esbuild (present through tsx and
 * vitest) starts in about a third of the time tsx takes, which is most of
 * the cost of a kill; without esbuild the child runs through tsx.
 */
async function childCommand(): Promise<{ args: string[]; cleanup(): void }> {
  try {
    const esbuild = await import('esbuild');
    const dir = path.join(ROOT, 'node_modules', '.cache', 'remapsim-crash');
    fs.mkdirSync(dir, { recursive: true });
    const out = path.join(dir, `child-${process.pid}-${Date.now()}.mjs`);
    await esbuild.build({
      entryPoints: [CHILD],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile: out,
      logLevel: 'silent',
    });
    return { args: [out], cleanup: () => fs.rmSync(out, { force: true }) };
  } catch {
    return { args: ['--import', 'tsx', CHILD], cleanup: () => {} };
  }
}

interface ChildOutcome {
  killedBy: 'parent' | 'crash-point';
  opened: string;
  acks: number;
  remaps: number;
}

function runChild(command: string[], cfg: ChildConfig, killAfterAcks: number, exp: Expectations, bad: Map<number, number>): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [...command, JSON.stringify(cfg)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    const report = child.stdio[3] as NodeJS.ReadableStream;
    let stderr = '';
    let rest = '';
    let acks = 0;
    let remaps = 0;
    let opened = '';
    let killed = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let ended = false;
    const finish = (): void => {
      if (!exited || !ended) return;
      if (exited.signal !== 'SIGKILL') {
        reject(new Error(`crash child exited with ${exited.code ?? exited.signal} without being killed: ${stderr.trim() || '(no output)'}`));
        return;
      }
      resolve({ killedBy: killed ? 'parent' : 'crash-point', opened, acks, remaps });
    };
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    report.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        const [t, a, b] = line.split(' ');
        switch (t) {
          case 'A':
            exp.ack(Number(a), Number(b));
            acks++;
            break;
          case 'F':
            exp.fail(Number(a));
            break;
          case 'R':
            exp.remap(Number(a), Number(b));
            remaps++;
            break;
          case 'B':
            bad.set(Number(a), Number(b));
            break;
          case 'O':
            opened = line.slice(2);
            break;
          default:
            reject(new Error(`crash child sent an unknown report: ${JSON.stringify(line)}`));
        }
      }
      if (!killed && acks >= killAfterAcks && child.exitCode === null && child.signalCode === null) {
        killed = child.kill('SIGKILL');
      }
    });
    report.on('end', () => {
      ended = true;
      finish();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      finish();
    });
  });
}

export async function runCrashSuite(opts: CrashSuiteOptions): Promise<CrashSuiteReport> {
  const t0 = Date.now();
  const geometry = opts.geometry ?? DEFAULT_GEOMETRY;
  const log = opts.log ?? (() => {});
  const master = new Random(opts.seed >>> 0);
  const patternSeed = master.nextU32();
  const pattern = crashPattern(patternSeed, geometry.unitSize);
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'remapsim-crash-'));
  const mainPath = path.join(dir, `${opts.policy}-main.img`);
  const sparePath = path.join(dir, `${opts.policy}-spare.img`);
  for (const [p, sectors] of [
    [mainPath, geometry.mainSectors],
    [sparePath, geometry.spareSectors],
  ] as const) {
    fs.rmSync(p, { force: true });
    FileDevice.createSparse(p, sectors * 512);
  }
  const exp = new Expectations();
  const bad = new Map<number, number>();
  const command = await childCommand();
  const report: CrashSuiteReport = {
    policy: opts.policy,
    seed: opts.seed,
    kills: { total: 0, byParent: 0, atCrashPoint: 0, torn: 0 },
    writes: { acknowledged: 0, failed: 0 },
    remapsReported: 0,
    badSectors: 0,
    tableResets: 0,
    checks: emptyCheck(),
    finalCheck: emptyCheck(),
    distinct: { stale: 0, zero: 0, corrupt: 0, readError: 0, lostRemap: 0 },
    findings: 0,
    runs: [],
    durationMs: 0,
  };
  try {
    if (opts.policy === 'safe') {
      // the format is not what is tested here: make it before the first child
      const m = openCrashModel('safe', FileDevice.open(mainPath), FileDevice.open(sparePath), geometry, 'auto');
      m.target.close();
    }
    const minAcks = opts.minAcks ?? 100;
    const maxAcks = Math.max(minAcks, opts.maxAcks ?? 2500);
    for (let run = 0; run < opts.kills; run++) {
      const crashPoint = master.next() < (opts.crashPointRate ?? 0.5);
      const crashAtWrite = 1 + master.int(opts.maxCrashPoint ?? 40);
      const torn = master.next() < 0.5;
      const killAfterAcks = minAcks + master.int(maxAcks - minAcks + 1);
      const cfg: ChildConfig = {
        policy: opts.policy,
        main: mainPath,
        spare: sparePath,
        geometry,
        patternSeed,
        seed: master.nextU32(),
        genBase: (run + 1) * GEN_STRIDE,
        bad: [...bad.entries()],
        crashAtWrite: crashPoint ? crashAtWrite : undefined,
        torn: crashPoint ? torn : undefined,
        maxSteps: GEN_STRIDE / 8,
      };
      // a run with a crash point is killed by the parent only if it never reaches that spare write
      const outcome = await runChild(command.args, cfg, crashPoint ? 2 * maxAcks : killAfterAcks, exp, bad);
      const killedBy = outcome.killedBy === 'parent' ? 'parent' : torn ? 'crash-point-torn' : 'crash-point';
      report.kills.total++;
      if (killedBy === 'parent') report.kills.byParent++;
      else report.kills.atCrashPoint++;
      if (killedBy === 'crash-point-torn') report.kills.torn++;

      const model = openCrashModel(opts.policy, FileDevice.open(mainPath), FileDevice.open(sparePath), geometry);
      let check: CheckResult;
      try {
        if (model.policy === 'dm-remap-v4') {
          if (model.store.initialized && exp.remaps.size > 0) report.tableResets++;
          report.restoredAtLastReopen = model.target.entries.length;
        }
        check = checkModel(modelDevice(model), pattern, exp, { label: `${opts.policy} run ${run}` });
      } finally {
        model.target.close();
      }
      addChecks(report.checks, check);
      report.finalCheck = check;
      const n = totalFindings(check);
      report.runs.push({
        run,
        killedBy,
        crashAtWrite: crashPoint ? crashAtWrite : undefined,
        acks: outcome.acks,
        remaps: outcome.remaps,
        opened: outcome.opened,
        findings: n,
      });
      log(
        `${opts.policy} run ${run}: killed by ${killedBy}${crashPoint && killedBy !== 'parent' ? ` at spare write ${crashAtWrite}` : ''} after ${outcome.acks} acknowledged writes, ${outcome.remaps} remaps (opened: ${outcome.opened}); checked ${check.unitsChecked} units, ${check.remapsChecked} remaps: ${n} findings`,
      );
    }
  } finally {
    command.cleanup();
    if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
  }
  report.writes = { acknowledged: exp.ackCount, failed: exp.failCount };
  report.remapsReported = exp.remapReports;
  report.badSectors = bad.size;
  report.findings = totalFindings(report.checks);
  for (const k of FINDING_KINDS) report.distinct[k] = new Set(report.checks.keys[k]).size;
  report.durationMs = Date.now() - t0;
  return report;
}

export function formatCrashReport(r: CrashSuiteReport): string {
  const f = r.checks.findings;
  const last = r.finalCheck.findings;
  const lines = [
    `${r.policy}: seed ${r.seed}: ${r.kills.total} SIGKILLs (${r.kills.byParent} by the parent at random moments, ${r.kills.atCrashPoint} at spare-write crash points, ${r.kills.torn} of them torn) in ${(r.durationMs / 1000).toFixed(1)} s`,
    `  ${r.writes.acknowledged} acknowledged writes, ${r.writes.failed} failed, ${r.remapsReported} remaps reported, ${r.badSectors} bad main sectors`,
    `  checked after every kill: ${r.checks.unitsChecked} unit reads (${r.checks.ok} current, ${r.checks.newer} a later unacknowledged generation, ${r.checks.unjudged} unjudged after a failed write), ${r.checks.remapsChecked} remap lookups`,
    `  findings summed over all checks: stale ${f.stale}, zeroes ${f.zero}, corrupt ${f.corrupt}, unreadable ${f.readError}, lost remaps ${f.lostRemap} (total ${r.findings})`,
    `  distinct units lost: stale ${r.distinct.stale}, zeroes ${r.distinct.zero}, corrupt ${r.distinct.corrupt}, unreadable ${r.distinct.readError}; distinct remaps lost ${r.distinct.lostRemap}`,
    `  lost at the end: stale ${last.stale}, zeroes ${last.zero}, corrupt ${last.corrupt}, unreadable ${last.readError}, lost remaps ${last.lostRemap}`,
  ];
  if (Object.keys(r.checks.corruptReasons).length > 0)
    lines.push(
      `  corrupt by reason: ${Object.entries(r.checks.corruptReasons)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
  if (r.tableResets > 0) lines.push(`  reopens that found no valid metadata copy and reset the table: ${r.tableResets}`);
  if (r.restoredAtLastReopen !== undefined) lines.push(`  the last reopen restored ${r.restoredAtLastReopen} remap entries (the module persists at most 2048)`);
  for (const e of r.checks.examples.slice(0, 8)) lines.push(`  e.g. ${e}`);
  return lines.join('\n');
}
