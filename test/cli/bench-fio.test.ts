/**
 * bench with fio's habits, checked against fio 3.33 itself (under a time
 * limit, output capped): filename= as the target, the same JSON keys for the
 * same job file (json+ bins included), and fio's verify format both ways:
 * `fio --verify_only` accepts what remapsim wrote and remapsim's verify_only
 * accepts what fio wrote, each stopping where the other's saved verify state
 * says the writes stopped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeFioState } from '../../src/workload/fio-verify-state.js';
import { runInProcess } from './in-process.js';
import { runTool } from '../nbd/tools.js';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { spawnSync } from 'node:child_process';

const tmp = tmpDir('remapsim-bench-fio-');
afterAll(() => tmp.cleanup());
const noFio = spawnSync('fio', ['--version'], { encoding: 'utf8' }).stdout?.startsWith('fio-') ? undefined : 'fio is not installed';

/** fio in tmp.dir (its state files there too); its JSON output parsed; stderr kept for messages. */
async function fio(args: string[]): Promise<{ code: number; json?: any; stderr: string; stdout: string }> {
  const r = await runTool('fio', ['--thread', `--aux-path=${tmp.dir}`, ...args], { cwd: tmp.dir, timeoutS: 60, maxOutput: 4 << 20 });
  expect(r.timedOut, 'fio ran out of time').toBe(false);
  const start = r.stdout.search(/^\{/m);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, json: start >= 0 ? JSON.parse(r.stdout.slice(start)) : undefined };
}

async function remapsim(args: string[]) {
  return runInProcess(['bench', `--aux-path=${tmp.dir}`, ...args]);
}

/** Every key path of a JSON value ("bins" members are latencies, not keys). */
function keyPaths(v: unknown, at = ''): Set<string> {
  const out = new Set<string>();
  if (Array.isArray(v)) for (const x of v) for (const k of keyPaths(x, `${at}[]`)) out.add(k);
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      out.add(`${at}.${k}`);
      if (k !== 'bins') for (const p of keyPaths(x, `${at}.${k}`)) out.add(p);
    }
  }
  return out;
}

describe.skipIf(skipReason(noFio, "bench against fio's own habits"))("bench and fio's habits", () => {
  it("runs on a job file's filename= when --target is absent; --filename too; refuses a disagreement in one line", async () => {
    const img = path.join(tmp.dir, 'named.img');
    const job = path.join(tmp.dir, 'named.fio');
    fs.writeFileSync(job, `[w]\nfilename=${img}\nrw=write\nbs=4k\nsize=256k\n`);
    const r = await remapsim([job]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^target: file ${img} \\(filename= of ${job}:2\\)$`, 'm'));
    expect(fs.statSync(img).size).toBe(256 << 10);
    const flag = await remapsim(['--filename', img, '--name', 'r', '--rw', 'read', '--bs', '4k', '--output-format', 'json']);
    expect(flag.code).toBe(0);
    expect(JSON.parse(flag.stdout).jobs[0].read.io_bytes).toBe(256 << 10);
    expect((await remapsim([job, '--target', `file:${img}`])).code).toBe(0); // the same file: fine
    const other = path.join(tmp.dir, 'other.img');
    const clash = await remapsim([job, '--target', `file:${other}`]);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toBe(`remapsim: filename=${img} (${job}:2) and --target file:${other} name different targets; drop one, or make them agree\n`);
    const none = await remapsim(['--rw', 'read', '--bs', '4k']);
    expect(none.stderr).toBe("remapsim: bench needs a target: --target SPEC, or filename= in the job (fio's --filename)\n");
    expect(none.code).toBe(2);
    const two = await remapsim(['--filename', `${img}:${other}`, '--rw', 'read']);
    expect(two.stderr).toBe(`remapsim: filename: '${img}:${other}' (command line) names 2 files; remapsim runs a job on one target\n`);
  }, 60_000);

  it('gives the same JSON keys as fio for the same job file, json+ latency bins included, and says which parts are its own', async () => {
    const img = path.join(tmp.dir, 'same.img');
    const job = path.join(tmp.dir, 'same.fio');
    fs.writeFileSync(job, `[global]\nfilename=${img}\nsize=2m\nbs=4k\n\n[w]\nrw=randwrite\nfsync=16\nverify=md5\n\n[r]\nrw=randread\n`);
    const f = await fio([job, '--output-format=json+']);
    expect(f.code).toBe(0);
    const r = await remapsim([job, '--output-format', 'json+']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      `remapsim: note: json+ as fio prints it (latency bins in clat_ns and sync); "remapsim" (top level), jobs[].verify are remapsim's own, not fio's\n`,
    );
    const ours = JSON.parse(r.stdout);
    const theirs = f.json;
    const mine = keyPaths(ours);
    const fios = keyPaths(theirs);
    const ownParts = (k: string) => k.startsWith('.remapsim') || /^\.jobs\[\]\.(verify|remap)\b/.test(k);
    expect([...mine].filter((k) => !fios.has(k) && !ownParts(k))).toEqual([]);
    expect([...fios].filter((k) => !mine.has(k) && !k.startsWith('.disk_util'))).toEqual([]); // per-disk kernel counters: not sampled
    for (const j of [ours, theirs]) {
      const bins = j.jobs[0].write.clat_ns.bins as Record<string, number>;
      expect(Object.values(bins).reduce((a, b) => a + b, 0)).toBe(j.jobs[0].write.total_ios);
      expect(Object.keys(j.jobs[0].sync.lat_ns.bins).length).toBeGreaterThan(0);
    }
    expect(ours['global options']).toEqual({ filename: img, size: '2m', bs: '4k' });
    expect(ours.jobs[0]['job options']).toEqual(theirs.jobs[0]['job options']);
  }, 90_000);

  const KINDS: Array<[string, string[]]> = [
    ['md5', ['--verify=md5']],
    ['sha256', ['--verify=sha256', '--verify_pattern=0x1122334455']],
    ['meta', ['--verify=meta', '--verify_pattern="ab"0xff']],
    ['pattern', ['--verify=pattern', '--verify_pattern=0xdeadbeef']],
  ];
  const common = (img: string) => ['--name=w', `--filename=${img}`, '--rw=write', '--bs=4k', '--size=256k'];

  it.each(KINDS)(
    "fio's verify_only accepts what remapsim wrote with verify=%s, and rejects a damaged block",
    async (kind, opts) => {
      const img = path.join(tmp.dir, `by-remapsim-${kind}.img`);
      const w = await remapsim([...common(img), ...opts]);
      expect(w.stderr).toBe('');
      expect(w.code).toBe(0);
      expect(w.stdout).toMatch(/^verify: ok=64 stale=0 lost=0 corrupt=0 /m);
      const ok = await fio([...common(img), ...opts, '--verify_only', '--output-format=json']);
      expect(ok.stderr).not.toMatch(/verify|bad/);
      expect(ok.code).toBe(0);
      expect(ok.json.jobs[0].error).toBe(0);
      expect(ok.json.jobs[0].read.total_ios).toBe(64);
      const fd = fs.openSync(img, 'r+');
      fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, 10 * 4096 + 3000); // block 10, in its data
      fs.closeSync(fd);
      const bad = await fio([...common(img), ...opts, '--verify_only', '--output-format=json']);
      expect(bad.json.jobs[0].error).toBe(84); // EILSEQ
      expect(bad.stderr).toMatch(/verify failed at file .* offset 40960|bad pattern block offset/);
      const ours = await remapsim([...common(img), ...opts, '--verify_only', '--continue_on_error=verify']);
      expect(ours.code).toBe(1);
      expect(ours.stdout).toMatch(/^verify: ok=63 stale=0 lost=0 corrupt=1 /m);
    },
    90_000,
  );

  it.each(KINDS)(
    'remapsim verify_only accepts what fio wrote with verify=%s, and each stops where the other saved its write state',
    async (kind, opts) => {
      const img = path.join(tmp.dir, `by-fio-${kind}.img`);
      // psync, one write at a time: the completions fio records are in order (with libaio they may not be)
      const w = await fio([...common(img), ...opts, '--io_size=40k', '--do_verify=0', '--output-format=json']);
      expect(w.code).toBe(0);
      const state = decodeFioState(fs.readFileSync(path.join(tmp.dir, 'local-w-0-verify.state')));
      expect(state).toEqual({ name: 'w', index: 0, depth: 1, numberio: 10, comps: [36864] });
      // with fio's state: exactly the 10 blocks fio wrote
      const r = await remapsim([...common(img), ...opts, '--verify_only', '--verify_state_load=1', '--output-format', 'json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).jobs[0].verify.reads).toMatchObject({ ok: 10, lost: 0, corrupt: 0 });
      // without it, the 11th block holds zeroes: fio's "bad magic header", lost to remapsim
      const all = await remapsim([...common(img), ...opts, '--verify_only']);
      expect(all.code).toBe(1);
      expect(all.stdout).toMatch(/^verify: ok=10 stale=0 lost=1 corrupt=0 /m);
      // the other way round: remapsim writes 40k and saves its state, fio verifies exactly that
      const img2 = path.join(tmp.dir, `by-remapsim-part-${kind}.img`);
      const part = await remapsim([...common(img2), ...opts, '--io_size=40k']);
      expect(part.code).toBe(0);
      expect(part.stdout).toContain(`fio's verify state: ${path.join(tmp.dir, 'local-w-0-verify.state')}`);
      const f = await fio([...common(img2), ...opts, '--verify_only', '--verify_state_load=1', '--output-format=json']);
      expect(f.json.jobs[0].error).toBe(0);
      expect(f.json.jobs[0].read.total_ios).toBe(10);
    },
    90_000,
  );
});
