/**
 * The power cut of the lifecycle, on the real module and on the model: in a
 * first VM the kernel stack runs a verified workload that flushes every few
 * writes and saves its oracle state at each flush (a monitor has read status
 * once, so the module's work runs and remaps get made); the VM is killed in
 * the middle (qemu ends, as at a power cut: the guest's memory is gone, the
 * backing files on the host are what the disks held). A second VM builds the
 * stack again on the same files (the module loads its metadata) and `remapsim
 * verify` checks every unit the state says was acknowledged. The model gets
 * the same files (copied before the second boot) and the same check, through
 * the dm-remap-v4 policy. Kernel and model must agree on each class of unit;
 * acknowledged data the kernel lost is a finding.
 *
 *   npx tsx bench/powercut.ts [--json] [--quick]     (after `npm run build` and `bash scripts/vm/setup.sh`)
 *
 * Exit 0 when model and kernel agree, 1 when they do not, 2 when a phase failed.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface VerifyJson {
  reads: Record<string, number>;
  first: Record<string, number[]>;
  findings: number;
  state?: { written: number; durable: number; flushes: number };
}

export interface PowerCutResult {
  scenario: string;
  cutAfterS: number;
  kernel?: VerifyJson;
  model?: VerifyJson;
  /** The classes in which model and kernel counted differently. */
  differences: Array<{ class: string; model: number; kernel: number }>;
  agree: boolean;
  /** Acknowledged data the kernel lost, with whether the model predicted it. */
  finding?: { kind: string; detail: string; predicted: boolean; reproduction: { command: string; steps: string[] } };
  /** Why a phase failed (no result then). */
  error?: string;
  work: string;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BAD = [64, 72, 80, 1000, 1008, 1016];
const CLASSES = ['ok', 'stale', 'lost', 'corrupt', 'expectedError', 'unexpectedError', 'unjudged'];

/** Runs `script` in a VM; with `cutAfter`, kills the VM (a power cut) that many seconds after `cutFrom` appears. */
function vm(
  work: string,
  script: string,
  timeoutS: number,
  cut?: { cutFrom: string; cutAfterS: number },
): Promise<{ code: number | null; stderr: string; cut: boolean }> {
  return new Promise((resolve) => {
    const p = spawn('bash', ['scripts/vm/run.sh', '--quiet', '--timeout', String(timeoutS), '--share', work, '--', 'bash', '-c', script], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let cutDone = false;
    p.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    let seen = 0;
    const timer = cut
      ? setInterval(() => {
          if (seen === 0 && fs.existsSync(cut.cutFrom)) seen = Date.now();
          if (seen > 0 && Date.now() - seen >= cut.cutAfterS * 1000 && !cutDone) {
            cutDone = true;
            p.kill('SIGTERM'); // run.sh kills qemu: the guest gets no shutdown
          }
        }, 250)
      : undefined;
    p.on('close', (code) => {
      if (timer) clearInterval(timer);
      resolve({ code, stderr, cut: cutDone });
    });
  });
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export async function runPowerCut(opts: { cutAfterS?: number; say?: (s: string) => void } = {}): Promise<PowerCutResult> {
  const say = opts.say ?? (() => {});
  const cutAfterS = opts.cutAfterS ?? 45;
  const work = fs.mkdtempSync(path.join('/var/tmp', 'remapsim-powercut-'));
  const W = (f: string): string => path.join(work, f);
  const result: PowerCutResult = { scenario: 'powercut', cutAfterS, differences: [], agree: false, work };
  const devices = (main: string, spare: string) => ({ main: { path: main }, spare: { path: spare } });
  fs.writeFileSync(
    W('pc.json'),
    JSON.stringify({ name: 'pc', devices: { main: { size: '16M' }, spare: { size: '8M' } }, faults: { main: { badSectors: BAD } }, jobs: [{ rw: 'read' }] }),
  );
  fs.writeFileSync(
    W('pc-again.json'),
    JSON.stringify({ name: 'pc', devices: devices(W('pc-main.img'), W('pc-spare.img')), faults: { main: { badSectors: BAD } }, jobs: [{ rw: 'read' }] }),
  );
  fs.writeFileSync(
    W('model.json'),
    JSON.stringify({
      name: 'pc-model',
      devices: devices(W('model-main.img'), W('model-spare.img')),
      faults: { main: { badSectors: BAD } },
      target: { policy: 'dm-remap-v4' },
      jobs: [{ rw: 'read' }],
    }),
  );
  const cli = 'node dist/cli/main.js';
  const workload = `${cli} bench --target dev:/dev/mapper/pc-remap --name cut --rw randrw --bs 4k --size 1m --direct 1 --verify crc32c --fsync 8 --continue_on_error all --time_based --runtime 3600 --stack-state ${W('stack.json')} --verify-state ${W('vs.state')}`;
  const steps = [
    `stack up (16 MiB main with bad sectors ${BAD.join(' ')}, dm-dust, dm-remap-v4, an 8 MiB spare)`,
    'dm status (once: a monitor; it releases the mutex the table load left held, so the module makes remaps)',
    `${workload.replace(cli, 'remapsim')}`,
    `power cut ${cutAfterS} s after the workload saved its first state (qemu killed)`,
    'boot, stack up on the same backing files (the module loads its metadata)',
    'remapsim verify --state vs.state --target dev:/dev/mapper/pc-remap --stack-state stack2.json',
  ];
  say(`power cut: workload in a VM, cut ${cutAfterS} s after its first saved state (${work})`);
  const first = await vm(
    work,
    `set -e; ${cli} stack up ${W('pc.json')} --name pc --dir ${work} --state ${W('stack.json')} > ${W('up.txt')}; ${cli} dm status pc-remap > /dev/null; ${workload} > ${W('bench.out')} 2>&1`,
    900,
    { cutFrom: W('vs.state'), cutAfterS },
  );
  if (!first.cut || !fs.existsSync(W('vs.state'))) {
    const out = fs.existsSync(W('bench.out')) ? fs.readFileSync(W('bench.out'), 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
    result.error = `the workload VM ended (${first.code}) before the cut: ${out} ${first.stderr.trim().split('\n').slice(-3).join(' | ')}`;
    return result;
  }
  fs.copyFileSync(W('pc-main.img'), W('model-main.img'));
  fs.copyFileSync(W('pc-spare.img'), W('model-spare.img'));
  say('power cut: booting again, verifying on the kernel');
  const second = await vm(
    work,
    `${cli} stack up ${W('pc-again.json')} --name pc --dir ${work} --state ${W('stack2.json')} > ${W('up2.txt')} && ${cli} verify --state ${W('vs.state')} --target dev:/dev/mapper/pc-remap --stack-state ${W('stack2.json')} --json > ${W('kernel-verify.json')}; true`,
    600,
  );
  result.kernel = readJson<VerifyJson>(W('kernel-verify.json'));
  if (!result.kernel) {
    result.error = `verifying on the kernel gave no result (${second.code}): ${second.stderr.trim().split('\n').slice(-3).join(' | ')}`;
    return result;
  }
  say('power cut: verifying on the model');
  const m = spawnSync('node', ['dist/cli/main.js', 'verify', '--state', W('vs.state'), '--target', `scenario:${W('model.json')}`, '--json'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  fs.writeFileSync(W('model-verify.json'), m.stdout);
  result.model = readJson<VerifyJson>(W('model-verify.json'));
  if (!result.model) {
    result.error = `verifying on the model gave no result (${m.status}): ${m.stderr.trim()}`;
    return result;
  }
  for (const c of CLASSES) {
    const m = result.model.reads[c] ?? 0;
    const k = result.kernel.reads[c] ?? 0;
    if (m !== k) result.differences.push({ class: c, model: m, kernel: k });
  }
  result.agree = result.differences.length === 0;
  const lost = (v: VerifyJson): number => (v.reads.lost ?? 0) + (v.reads.corrupt ?? 0) + (v.reads.stale ?? 0);
  if (lost(result.kernel) > 0) {
    const first = [...(result.kernel.first.stale ?? []), ...(result.kernel.first.lost ?? []), ...(result.kernel.first.corrupt ?? [])].slice(0, 8);
    result.finding = {
      kind: 'lost-acknowledged-data',
      detail:
        `after a power cut and a reboot the kernel returns ${lost(result.kernel)} units whose acknowledged and flushed data is gone: stale ${result.kernel.reads.stale ?? 0}, lost ${result.kernel.reads.lost ?? 0}, corrupt ${result.kernel.reads.corrupt ?? 0} (first sectors ${first.join(' ')}). ` +
        "The target declares no flush support, so the block layer completes fsync and FUA at once and nothing reaches the devices below (here the loop devices' page cache), and its remaps come back from whatever metadata dm-bufio had written; " +
        `the model, reading the same disks through its own table load, counts ${lost(result.model)}`,
      predicted: lost(result.model) === lost(result.kernel),
      reproduction: { command: 'npx tsx bench/powercut.ts', steps },
    };
  }
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const json = process.argv.includes('--json');
  const say = (s: string): void => {
    (json ? process.stderr : process.stdout).write(`${s}\n`);
  };
  const r = await runPowerCut({ cutAfterS: process.argv.includes('--quick') ? 35 : 45, say });
  if (r.error) say(`power cut: ${r.error}`);
  else {
    const row = (v: VerifyJson): string =>
      CLASSES.filter((c) => (v.reads[c] ?? 0) > 0)
        .map((c) => `${c} ${v.reads[c]}`)
        .join(', ');
    say(`kernel: ${row(r.kernel!)}`);
    say(`model:  ${row(r.model!)}`);
    say(
      r.agree
        ? 'model and kernel agree on every class'
        : `differences: ${r.differences.map((d) => `${d.class}: model ${d.model}, kernel ${d.kernel}`).join('; ')}`,
    );
    if (r.finding) say(`finding: ${r.finding.detail}${r.finding.predicted ? ' (predicted by the model)' : ''}`);
  }
  if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exitCode = r.error ? 2 : r.agree ? 0 : 1;
}
