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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attachLoop, type LoopAttachment } from '../../src/kernel/loop.js';
import type { ScanJson } from '../../src/cli/commands/scan.js';
import { runInProcess } from '../cli/in-process.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';
import { type FaultyDisk, faultyDiskUnavailable, startFaultyDisk } from '../helpers/faulty-disk.js';

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
    expect(j).toMatchObject({
      device: file,
      bytes: 4 << 20,
      bytesScanned: 4 << 20,
      direct: false,
      counts: { bad: 0, slow: 0, transient: 0 },
      rateLimitMBps: null,
    });
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
  return loopUnavailable() ?? faultyDiskUnavailable();
}

const skip = skipReason(why(), 'remapsim scan on a loop device vs a file (nbdkit + nbdfuse)');
const BAD_BLOCKS = [100, 700];
const SLOW_BLOCK = 300;

describe.skipIf(skip)('remapsim scan: loop device vs file', () => {
  it('finds the same bad and slow sectors through both', async () => {
    let disk: FaultyDisk | undefined;
    let loop: LoopAttachment | undefined;
    try {
      disk = await startFaultyDisk({ dir: path.join(tmp.dir, 'nbd'), bytes: 4 << 20, badBlocks: BAD_BLOCKS, slowBlock: SLOW_BLOCK, slowSeconds: 0.6 });
      const common = ['--json', '--block-size', '4096', '--slice', '64K', '--slow', '300', '--buckets', '4'];
      const viaFile = await runInProcess(['scan', disk.path, '--direct', ...common]);
      loop = attachLoop(disk.path, { readOnly: true, direct: true });
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
      const shape = (j: ScanJson): Array<[boolean, number]> => j.latencyMap.buckets.map((x) => [x.maxMs > 500, x.errors]); // the slow block takes 600 ms: 500 leaves room on a loaded machine
      expect(shape(b)).toEqual(shape(a));
      expect(a.bytesScanned).toBe(b.bytesScanned);
    } finally {
      loop?.release();
      await disk?.stop();
    }
  }, 60_000);
});
