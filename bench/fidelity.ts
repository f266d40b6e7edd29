/**
 * How well the dm-remap-v4 policy predicts the real module: each scenario of
 * a seeded family (src/compare/family.ts) runs through `remapsim compare` in
 * a fresh VM with the module loaded (a scenario may wedge the kernel, so none
 * shares a kernel with another), and the power cut (bench/powercut.ts) is
 * one more. A scenario agrees when model and kernel
 * agree on every I/O status, every read's data, the remap count and table,
 * the status fields and the metadata on the spare — hangs and oopses
 * included, when the model predicted them. Every kernel misbehaviour is a
 * finding, with the steps that reproduce it.
 *
 *   npm run bench:fidelity -- [--json] [--quick]        (builds first; needs `bash scripts/vm/setup.sh`)
 *
 * The last line (--json) is {"comparisons":[{"name":"fidelity-agreement",...}],"findings":[...]}.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { familyMember } from '../src/compare/family.js';
import type { ComparisonReport, Finding } from '../src/compare/run.js';
import { benchArgs, emitJson } from './args.js';
import { runPowerCut } from './powercut.js';

const args = benchArgs(process.argv.slice(2), ['--parallel']);
const count = args.quick ? 6 : 24;
const jobs = args.flags.has('--parallel') ? 2 : 1;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const work = fs.mkdtempSync(path.join('/var/tmp', 'remapsim-fidelity-'));

function say(line: string): void {
  (args.json ? process.stderr : process.stdout).write(`${line}\n`);
}

interface Outcome {
  index: number;
  report?: ComparisonReport;
  error?: string;
  seconds: number;
}

function runOne(i: number): Promise<Outcome> {
  const m = familyMember(i);
  const file = path.join(work, `s${i}.json`);
  const out = path.join(work, `r${i}.json`);
  fs.writeFileSync(file, JSON.stringify(m.scenario));
  const cli = ['node', 'dist/cli/main.js', 'compare', file, '--ops', String(m.ops), '--growth-every', String(m.growthEvery), '--json', '--out', out];
  if (m.lifecycle === 'io') cli.push('--io-only');
  const t0 = Date.now();
  return new Promise((resolve) => {
    const vm = spawn('bash', ['scripts/vm/run.sh', '--quiet', '--timeout', '900', '--share', work, '--', ...cli], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    vm.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    vm.on('close', () => {
      const seconds = (Date.now() - t0) / 1000;
      try {
        resolve({ index: i, report: JSON.parse(fs.readFileSync(out, 'utf8')) as ComparisonReport, seconds });
      } catch {
        resolve({ index: i, error: err.trim().split('\n').slice(-5).join(' | ') || 'no report', seconds });
      }
    });
  });
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const queue = Array.from({ length: count }, (_, i) => i);
  const results: Outcome[] = [];
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        const r = await runOne(i);
        results.push(r);
        const rep = r.report;
        say(
          rep
            ? `scenario ${i}: ${rep.agree ? 'agree' : `${rep.differenceCount} differences`}, ${rep.stepsRun}/${rep.steps} steps${rep.wedged ? `, kernel ${rep.wedged.kind} at step ${rep.wedged.step}` : ''}, ${rep.findings.length} findings (${r.seconds.toFixed(0)} s)`
            : `scenario ${i}: no report: ${r.error}`,
        );
        if (rep && !rep.agree)
          for (const d of rep.differences.slice(0, 3)) say(`    step ${d.step} (${d.what}): ${d.field}: model ${d.model}, kernel ${d.kernel}`);
      }
    }),
  );
  results.sort((a, b) => a.index - b.index);
  // the power cut: the lifecycle step that needs two boots
  const cut = await runPowerCut({ say });
  say(
    cut.error
      ? `power cut: ${cut.error}`
      : `power cut: ${cut.agree ? 'agree' : cut.differences.map((d) => `${d.class}: model ${d.model}, kernel ${d.kernel}`).join('; ')}`,
  );
  const total = count + 1;
  const agreeing = results.filter((r) => r.report?.agree).length + (cut.agree ? 1 : 0);
  const findings: Finding[] = results.flatMap((r) => r.report?.findings ?? []);
  if (cut.finding) findings.push({ scenario: 'powercut', step: 3, what: 'power cut', log: [], ...cut.finding });
  // one line per kind of misbehaviour, with the scenarios that showed it
  const kinds = new Map<string, Finding[]>();
  for (const f of findings) kinds.set(`${f.kind} during ${f.what}`, [...(kinds.get(`${f.kind} during ${f.what}`) ?? []), f]);
  for (const [k, fs] of kinds)
    say(
      `finding: the kernel ${k}${fs.every((f) => f.predicted) ? ' (predicted by the model every time)' : ''}: ${fs.map((f) => `${f.scenario} step ${f.step}`).join(', ')}`,
    );
  say(`agreement: ${agreeing}/${total} scenarios; ${findings.length} findings; reports in ${work}`);
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  emitJson({
    comparisons: [{ name: 'fidelity-agreement', ours: agreeing, theirs: total, unit: 'scenarios', ratio: agreeing / total }],
    findings: findings.map((f) => ({
      scenario: f.scenario,
      step: f.step,
      what: f.what,
      kind: f.kind,
      detail: f.detail,
      predicted: f.predicted,
      reproduction: f.reproduction,
    })),
    machine: {
      cpu,
      host: os.release(),
      vmKernel: readOr(path.join(process.env.REMAPSIM_VM_DIR ?? '/var/tmp/remapsim-vm', 'kver')),
      module: readOr(path.join(process.env.REMAPSIM_VM_DIR ?? '/var/tmp/remapsim-vm', 'dm-remap.note')),
    },
  });
}

await main();
