/**
 * `remapsim scan`: a plain file (report shape, rate limit, input errors), and
 * the same disk seen as a file and as a loop device giving the same findings.
 *
 * The disk with real faults: nbdkit's sh plugin serves 4 MiB whose 4 KiB
 * blocks 100 and 700 fail every read with EIO and whose block 300 reads in
 * 0.6 s; nbdfuse turns it into a file (read with O_DIRECT, so every read
 * reaches nbdkit), and a loop device with direct I/O sits on that file.
 * Skipped, with the reason printed, without root, FUSE, loop devices or the tools.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attachLoop, type LoopAttachment } from '../../src/kernel/loop.js';
import type { ScanJson } from '../../src/cli/commands/scan.js';
import { runInProcess } from '../cli/in-process.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-scan-cli-');
afterAll(() => tmp.cleanup());

function scanJson(out: string): ScanJson {
  return JSON.parse(out.trim().split('\n').pop()!) as ScanJson;
}

describe('remapsim scan on a plain file', () => {
  const file = path.join(tmp.dir, 'plain.img');
  fs.writeFileSync(file, Buffer.alloc(4 << 20, 7));

  it('reports a clean file: no findings, every byte scanned, a latency map, exit 0', async () => {
    const r = await runInProcess(['scan', file, '--json', '--buckets', '8', '--slice', '256K']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = scanJson(r.stdout);
    expect(j).toMatchObject({ device: file, bytes: 4 << 20, bytesScanned: 4 << 20, direct: false, counts: { bad: 0, slow: 0, transient: 0 }, rateLimitMBps: null });
    expect(j.latencyMap.buckets).toHaveLength(8);
    expect(j.latencyMap.buckets.reduce((a, b) => a + b.reads, 0)).toBe(16);
    const text = await runInProcess(['scan', file, '--buckets', '2']);
    expect(text.stdout).toMatch(/^.*plain\.img: 4\.0 MiB scanned in .* buffered I\/O\nbad sectors: 0\nslow sectors \(reads over 50 ms\): 0\n/);
  });

  it('--rate limits the read rate', async () => {
    const r = await runInProcess(['scan', file, '--json', '--rate', '16', '--slice', '64K']);
    const j = scanJson(r.stdout);
    // 4 MiB at 16 MB/s: 0.26 s at least
    expect(j.elapsedSeconds).toBeGreaterThan(0.24);
    expect(j.throughputMBps).toBeLessThan(16 * 1.1);
  });

  it('refuses wrong input with one line and exit 2', async () => {
    for (const [args, msg] of [
      [['scan', path.join(tmp.dir, 'nope')], /cannot open .*nope: no such file or directory/],
      [['scan', file, '--rate', 'fast'], /--rate must be a number in 0\.\.1000000, got 'fast'/],
      [['scan', file, '--block-size', '1000'], /--block-size must be a multiple of the device's 512-byte logical block size/],
      [['scan', file, '--order', 'random'], /--order must be sequential or staggered/],
      [['scan', file, '--retries', '1.5'], /--retries must be an integer in 0\.\.100/],
    ] as const) {
      const r = await runInProcess([...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

function why(): string | undefined {
  const loop = loopUnavailable();
  if (loop) return loop;
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing';
  for (const tool of ['nbdkit', 'nbdfuse', 'fusermount3']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

const skip = skipReason(why(), 'remapsim scan on a loop device vs a file (nbdkit + nbdfuse)');
const BAD_BLOCKS = [100, 700];
const SLOW_BLOCK = 300;

const DISK_SCRIPT = `#!/bin/bash
overlaps() { local s=$(($1*4096)); [ "$off" -lt $((s+4096)) ] && [ $((off+count)) -gt "$s" ]; }
case "$1" in
  get_size) echo ${4 << 20} ;;
  pread)
    count=$3; off=$4
    for b in ${BAD_BLOCKS.join(' ')}; do if overlaps $b; then echo "EIO bad block $b" >&2; exit 1; fi; done
    if overlaps ${SLOW_BLOCK}; then sleep 0.6; fi
    head -c "$count" /dev/zero ;;
  can_write) exit 3 ;;
  *) exit 2 ;;
esac
`;

async function waitFor(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(skip)('remapsim scan: loop device vs file', () => {
  it('finds the same bad and slow sectors through both', async () => {
    const dir = path.join(tmp.dir, 'nbd');
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt, { recursive: true });
    const script = path.join(dir, 'disk.sh');
    fs.writeFileSync(script, DISK_SCRIPT, { mode: 0o755 });
    const disk = path.join(mnt, 'disk');
    let fuse: ChildProcess | undefined;
    let loop: LoopAttachment | undefined;
    try {
      fuse = spawn('nbdfuse', ['-r', disk, '--command', 'nbdkit', '-s', 'sh', script], { stdio: 'ignore' });
      await waitFor('the nbdfuse file', () => fs.existsSync(disk) && fs.statSync(disk).size === 4 << 20);
      const common = ['--json', '--block-size', '4096', '--slice', '64K', '--slow', '300', '--buckets', '4'];
      const viaFile = await runInProcess(['scan', disk, '--direct', ...common]);
      loop = attachLoop(disk, { readOnly: true, direct: true });
      const viaLoop = await runInProcess(['scan', loop.device, ...common]);
      const a = scanJson(viaFile.stdout);
      const b = scanJson(viaLoop.stdout);
      expect(viaFile.code).toBe(1);
      expect(viaLoop.code).toBe(1);
      expect(b.direct).toBe(true); // the default for a block device
      const sectors = (xs: ScanJson['bad']): number[] => xs.map((f) => f.sector);
      expect(sectors(a.bad)).toEqual(BAD_BLOCKS.map((x) => x * 8));
      expect(sectors(a.slow)).toEqual([SLOW_BLOCK * 8]);
      expect(a.slow[0]!.latencyMs).toBeGreaterThan(550);
      expect(sectors(b.bad)).toEqual(sectors(a.bad));
      expect(sectors(b.slow)).toEqual(sectors(a.slow));
      expect(b.transient).toEqual(a.transient);
      expect(b.bad.map((f) => f.errno)).toEqual(['EIO', 'EIO']);
      // the latency maps agree on where the slow and failing reads are
      const shape = (j: ScanJson): Array<[boolean, number]> => j.latencyMap.buckets.map((x) => [x.maxMs > 300, x.errors]);
      expect(shape(b)).toEqual(shape(a));
      expect(a.bytesScanned).toBe(b.bytesScanned);
    } finally {
      loop?.release();
      if (fuse) {
        try {
          execFileSync('fusermount3', ['-u', mnt], { stdio: 'ignore' });
        } catch {
          fuse.kill();
        }
        await waitFor('nbdfuse to exit', () => fuse!.exitCode !== null || fuse!.signalCode !== null, 10_000).catch(() => fuse!.kill('SIGKILL'));
      }
    }
  }, 60_000);
});
