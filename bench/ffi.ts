/**
 * The cost of one device-mapper status round trip: DM_TABLE_STATUS through
 * koffi (DmControl.status: encode, ioctl, decode) against `dmsetup status
 * NAME` run as a process, as a script would. Needs device-mapper and root:
 * run it in the kernel-lane VM (`npm run bench:ffi`).
 *
 *   node bench/ffi.js [--json] [--quick]
 *
 * Reports medians: ours over batches of calls, dmsetup over single runs. The
 * last line (with --json) is {"comparisons":[...]} with ops/s, ratio =
 * ours/theirs (higher is better for us). Under the VM's emulated CPU (TCG)
 * both sides are 10-20x slower than on hardware; the ratio is what carries over,
 * roughly (process start-up suffers more from emulation than an ioctl does).
 */
import { spawnSync } from 'node:child_process';
import { DmControl } from '../src/kernel/dm-control.js';
import { dmsetupLine } from '../src/cli/commands/dm.js';
import { benchArgs, emitJson } from './args.js';

const args = benchArgs();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function say(line: string): void {
  if (!args.json) process.stdout.write(`${line}\n`);
  else process.stderr.write(`${line}\n`);
}

const dm = DmControl.open();
const name = `remapsim-bench-ffi-${process.pid}`;
dm.create(name);
try {
  dm.load(name, [{ start: 0, length: 2048, type: 'zero', params: '' }]);
  dm.resume(name);

  // Same answer both ways, or the comparison means nothing.
  const mine = `${dm.status(name).map(dmsetupLine).join('\n')}\n`;
  const theirs = spawnSync('dmsetup', ['status', name], { encoding: 'utf8' });
  if (theirs.status !== 0) throw new Error(`dmsetup status failed: ${theirs.stderr.trim()}`);
  if (theirs.stdout !== mine) throw new Error(`dmsetup says ${JSON.stringify(theirs.stdout)}, we say ${JSON.stringify(mine)}`);

  const batch = args.quick ? 50 : 200;
  const batches = args.quick ? 10 : 40;
  for (let i = 0; i < batch; i++) dm.status(name); // warm-up: JIT, koffi's call path
  const perCall: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) dm.status(name);
    perCall.push(Number(process.hrtime.bigint() - t0) / batch);
  }
  const oursNs = median(perCall);

  const runs = args.quick ? 8 : 30;
  const procNs: number[] = [];
  const trueNs: number[] = [];
  spawnSync('dmsetup', ['status', name]); // warm the page cache for the binary and libdevmapper
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    const p = spawnSync('dmsetup', ['status', name], { stdio: ['ignore', 'pipe', 'pipe'] });
    procNs.push(Number(process.hrtime.bigint() - t0));
    if (p.status !== 0) throw new Error(`dmsetup status failed on run ${r}`);
    const t1 = process.hrtime.bigint();
    spawnSync('true', [], { stdio: 'ignore' });
    trueNs.push(Number(process.hrtime.bigint() - t1));
  }
  const theirsNs = median(procNs);

  say(
    `DM_TABLE_STATUS through koffi: median ${(oursNs / 1000).toFixed(1)} us per call (${batches} batches of ${batch}; min ${(Math.min(...perCall) / 1000).toFixed(1)} us)`,
  );
  say(`dmsetup status as a process:   median ${(theirsNs / 1e6).toFixed(2)} ms per run (${runs} runs; min ${(Math.min(...procNs) / 1e6).toFixed(2)} ms)`);
  say(`  (starting /bin/true alone:    median ${(median(trueNs) / 1e6).toFixed(2)} ms)`);
  say(`ratio ${(theirsNs / oursNs).toFixed(0)}x in favour of the in-process ioctl`);

  const ours = 1e9 / oursNs;
  const them = 1e9 / theirsNs;
  if (args.json) {
    emitJson({
      comparisons: [
        {
          name: 'dm-status-roundtrip',
          ours: Math.round(ours),
          theirs: Math.round(them * 100) / 100,
          unit: 'ops/s',
          ratio: Math.round((ours / them) * 10) / 10,
        },
      ],
    });
  }
} finally {
  dm.remove(name, { retries: 10 });
  dm.close();
}
