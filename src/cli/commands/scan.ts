/**
 * `remapsim scan <device-or-file>`: one read-only pass over any block device
 * or file with the health scanner's slice reader, reporting bad sectors
 * (unreadable after retries), slow sectors (reads slower than --slow, twice),
 * transient errors (failed once, then read) and a latency map by position.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { FileDevice } from '../../block/file-device.js';
import { errnoName, SECTOR_SIZE } from '../../block/device.js';
import { formatBytes } from '../../util/format-size.js';
import type { BlockFinding, LatencyBucket } from '../../health/classify.js';
import { HealthScanner, ScannerOptionError, type ScanOrder } from '../../health/scanner.js';
import { realClock } from '../../util/clock.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from '../../util/errors.js';
import { parseByteSize } from './loop.js';
import { noteWriterHolding } from '../writer-note.js';
import { checkOutputPath } from '../output-path.js';
import { ddrescueMapOf, formatDdrescueMapfile, type SectorRange } from '../../faults/badlist.js';
import { formatBadblocksList } from '../../faults/badblocks.js';

interface ScanCliOptions {
  rate?: string;
  slice: string;
  blockSize?: string;
  slow: string;
  retries: string;
  buckets: string;
  order: string;
  direct?: boolean;
  json?: boolean;
  mapfile?: string;
  badblocks?: string;
  badblocksBlockSize: string;
}

export interface ScanFindingJson {
  sector: number;
  sectors: number;
  /** Byte offset and length. */
  offset: number;
  bytes: number;
  attempts: number;
  errno?: string;
  latencyMs?: number;
}

export interface ScanJson {
  device: string;
  bytes: number;
  logicalBlockSize: number;
  blockBytes: number;
  direct: boolean;
  rateLimitMBps: number | null;
  slowMs: number;
  retries: number;
  order: ScanOrder;
  elapsedSeconds: number;
  bytesScanned: number;
  throughputMBps: number;
  counts: { bad: number; slow: number; transient: number };
  bad: ScanFindingJson[];
  slow: ScanFindingJson[];
  transient: ScanFindingJson[];
  latencyMap: { bucketBytes: number; buckets: Array<{ offset: number; bytes: number; reads: number; meanMs: number; maxMs: number; errors: number }> };
}

function number(text: string, option: string, lo: number, hi: number, integer = false): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    throw new UsageError(`${option} must be ${integer ? 'an integer' : 'a number'} in ${lo}..${hi}, got '${text}'`);
  }
  return v;
}

function findingJson(f: BlockFinding): ScanFindingJson {
  const out: ScanFindingJson = { sector: f.sector, sectors: f.sectors, offset: f.sector * SECTOR_SIZE, bytes: f.sectors * SECTOR_SIZE, attempts: f.attempts };
  if (f.errno !== 0) out.errno = errnoName(f.errno);
  if (f.latencyNs > 0) out.latencyMs = Math.round(f.latencyNs / 1e3) / 1e3;
  return out;
}

function mapJson(entries: LatencyBucket[], bucketSectors: number): ScanJson['latencyMap'] {
  return {
    bucketBytes: bucketSectors * SECTOR_SIZE,
    buckets: entries.map((b) => ({
      offset: b.sector * SECTOR_SIZE,
      bytes: b.sectors * SECTOR_SIZE,
      reads: b.reads,
      meanMs: Math.round(b.meanNs / 1e3) / 1e3,
      maxMs: Math.round(b.maxNs / 1e3) / 1e3,
      errors: b.errors,
    })),
  };
}

/** The human report. */
export function formatScanReport(r: ScanJson): string {
  const lines: string[] = [];
  const mbps = r.throughputMBps.toFixed(1);
  lines.push(
    `${r.device}: ${formatBytes(r.bytesScanned)} scanned in ${r.elapsedSeconds.toFixed(2)} s (${mbps} MB/s), ${r.blockBytes}-byte blocks, ${r.direct ? 'direct I/O' : 'buffered I/O'}`,
  );
  const list = (title: string, xs: ScanFindingJson[], detail: (f: ScanFindingJson) => string): void => {
    lines.push(`${title}: ${xs.length}`);
    for (const f of xs.slice(0, 100)) lines.push(`  sector ${f.sector} (${f.sectors} sectors at byte ${f.offset}): ${detail(f)}`);
    if (xs.length > 100) lines.push(`  ... and ${xs.length - 100} more (--json lists all)`);
  };
  list('bad sectors', r.bad, (f) => `${f.errno ?? 'error'} after ${f.attempts} reads`);
  list(`slow sectors (reads over ${r.slowMs} ms)`, r.slow, (f) => `${f.latencyMs} ms${f.errno ? ` (read after ${f.errno})` : ''}`);
  list('transient errors (failed, then read)', r.transient, (f) => `${f.errno ?? 'error'}, read on attempt ${f.attempts}`);
  const m = r.latencyMap;
  const worst = Math.max(...m.buckets.map((b) => b.meanMs), 1e-9);
  lines.push(`latency map (${m.buckets.length} buckets of ${formatBytes(m.bucketBytes)}; mean / max ms per read; E = read errors):`);
  for (const b of m.buckets) {
    const bar = '#'.repeat(Math.max(b.reads > 0 ? 1 : 0, Math.round((b.meanMs / worst) * 30)));
    lines.push(
      `  ${formatBytes(b.offset).padStart(10)}  ${b.meanMs.toFixed(3).padStart(9)} / ${b.maxMs.toFixed(3).padStart(9)}  ${bar}${b.errors > 0 ? ` E${b.errors}` : ''}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function registerScan(program: Command): void {
  program
    .command('scan')
    .description('read a block device or file once, read-only, and report bad and slow sectors and a latency map')
    .argument('<device-or-file>', 'a block device (/dev/sdX, /dev/loopN, /dev/mapper/x) or a regular file')
    .option('--rate <MB/s>', 'read at most this many MB (10^6 bytes) per second (default: no limit)')
    .option('--slice <bytes>', 'bytes per read; a failing or slow read is then re-read block by block', '1M')
    .option('--block-size <bytes>', "granularity of the findings (default: the device's logical block size)")
    .option('--slow <ms>', 'a read slower than this (twice) is a slow sector', '50')
    .option('--retries <n>', 'retries of a failing block before it counts as bad', '3')
    .option('--buckets <n>', 'buckets of the latency map', '64')
    .option('--order <order>', 'sequential, or staggered (regions interleaved)', 'sequential')
    .option('--direct', 'O_DIRECT reads, past the page cache (default for block devices)')
    .option('--no-direct', 'buffered reads (default for regular files)')
    .option('--json', 'print the findings and the latency map as JSON')
    .option(
      '--mapfile <file>',
      "write a GNU ddrescue mapfile: bad sectors '-', the rest '+' (ddrescuelog, ddrescue -m, remapsim --known-bad and scenarios read it)",
    )
    .option('--badblocks <file>', 'write the bad blocks as badblocks(8) does, for e2fsck -l: one block number a line')
    .option('--badblocks-block-size <bytes>', "block size of the --badblocks list: the file system's block size for e2fsck (badblocks -b)", '1024')
    .addHelpText(
      'after',
      `
Nothing is ever written. A progress line is shown on a terminal.
Examples:
  remapsim scan /dev/loop3
  remapsim scan disk.img --rate 50 --json > findings.json
  remapsim scan /dev/sdb --block-size 4096 --slow 100
  remapsim scan /dev/sdb --mapfile sdb.map && ddrescuelog --list-blocks=- sdb.map
  remapsim scan /dev/sdb1 --badblocks bad.txt --badblocks-block-size 4096 && e2fsck -l bad.txt /dev/sdb1
Exit status: 0 nothing bad or slow found, 1 bad or slow sectors found, 2 bad input.`,
    )
    .action((target: string, opts: ScanCliOptions) => {
      const rateMBps = opts.rate === undefined ? 0 : number(opts.rate, '--rate', 0, 1e6);
      const sliceBytes = parseByteSize(opts.slice, '--slice');
      const slowMs = number(opts.slow, '--slow', 0.001, 3.6e6);
      const retries = number(opts.retries, '--retries', 0, 100, true);
      const buckets = number(opts.buckets, '--buckets', 1, 100_000, true);
      if (opts.order !== 'sequential' && opts.order !== 'staggered') throw new UsageError(`--order must be sequential or staggered, got '${opts.order}'`);
      const badblocksBlockSize = parseByteSize(opts.badblocksBlockSize, '--badblocks-block-size');
      if (badblocksBlockSize < SECTOR_SIZE || badblocksBlockSize % SECTOR_SIZE !== 0 || badblocksBlockSize > 1 << 20) {
        throw new UsageError(`--badblocks-block-size must be a multiple of ${SECTOR_SIZE} bytes in ${SECTOR_SIZE}..${1 << 20}, got ${badblocksBlockSize}`);
      }
      if (opts.mapfile !== undefined) checkOutputPath(opts.mapfile, '--mapfile');
      if (opts.badblocks !== undefined) checkOutputPath(opts.badblocks, '--badblocks');
      const probe = FileDevice.open(target, { readOnly: true });
      const isBlock = probe.isBlockDevice;
      probe.close();
      const direct = opts.direct ?? isBlock;
      const dev = FileDevice.open(target, { readOnly: true, direct });
      noteWriterHolding(dev, 'its data may change while it is scanned, and its I/O slows the slices it competes with (slow sectors may be its doing)');
      try {
        const blockBytes = opts.blockSize === undefined ? dev.logicalBlockSize : parseByteSize(opts.blockSize, '--block-size');
        if (blockBytes % dev.logicalBlockSize !== 0 || blockBytes > 1 << 20) {
          throw new UsageError(
            `--block-size must be a multiple of the device's ${dev.logicalBlockSize}-byte logical block size, at most 1 MiB, got ${blockBytes}`,
          );
        }
        if (sliceBytes < blockBytes || sliceBytes % blockBytes !== 0 || sliceBytes > 64 << 20) {
          throw new UsageError(`--slice must be a whole number of ${blockBytes}-byte blocks, at most 64 MiB, got ${sliceBytes}`);
        }
        let sc: HealthScanner;
        try {
          sc = new HealthScanner({
            device: dev,
            clock: realClock,
            rate: rateMBps * 1e6,
            sliceBytes,
            blockSectors: blockBytes / SECTOR_SIZE,
            slowNs: slowMs * 1e6,
            retries,
            order: opts.order,
            mapBuckets: buckets,
            maxTickNs: 100e6,
          });
        } catch (err) {
          if (err instanceof ScannerOptionError) throw new UsageError(err.message);
          throw err;
        }
        const tty = process.stderr.isTTY === true ? process.stderr : undefined; // stderr: --json output on stdout stays clean
        const t0 = realClock.nowNs();
        sc.tick(t0);
        let nextLine = t0 + 250e6;
        while (!sc.passComplete) {
          const now = realClock.nowNs();
          sc.tick(now);
          if (tty && now >= nextLine) {
            const s = sc.stats();
            const done = s.bytesScanned / (dev.sectors * SECTOR_SIZE);
            const rate = s.bytesScanned / ((now - t0) / 1e9) / 1e6;
            const eta = rate > 0 ? Math.ceil(((1 - done) * dev.sectors * SECTOR_SIZE) / 1e6 / rate) : 0;
            const line = `scanning ${target}: ${(done * 100).toFixed(1)}%  ${rate.toFixed(1)} MB/s  bad ${s.found.bad}  slow ${s.found.weak}  transient ${s.found.transient}  ETA ${eta}s`;
            tty.write(`\r\x1b[K${line.slice(0, (tty.columns ?? 80) - 1)}`);
            nextLine = now + 250e6;
          }
          if (!sc.passComplete && rateMBps > 0) {
            const wait = sc.nextDueNs() - realClock.nowNs();
            if (wait > 0) realClock.sleepNs(Math.min(wait, 100e6));
          }
        }
        if (tty) tty.write('\r\x1b[K');
        const elapsedNs = realClock.nowNs() - t0;
        const st = sc.stats();
        const of = (k: BlockFinding['kind']): ScanFindingJson[] => sc.findings.filter((f) => f.kind === k).map(findingJson);
        const report: ScanJson = {
          device: target,
          bytes: dev.sectors * SECTOR_SIZE,
          logicalBlockSize: dev.logicalBlockSize,
          blockBytes,
          direct,
          rateLimitMBps: rateMBps > 0 ? rateMBps : null,
          slowMs,
          retries,
          order: sc.order,
          elapsedSeconds: elapsedNs / 1e9,
          bytesScanned: st.bytesScanned,
          throughputMBps: st.bytesScanned / 1e6 / Math.max(elapsedNs / 1e9, 1e-9),
          counts: { bad: st.found.bad, slow: st.found.weak, transient: st.found.transient },
          bad: of('bad'),
          slow: of('weak'),
          transient: of('transient'),
          latencyMap: mapJson(sc.map.entries(), sc.map.bucketSectors),
        };
        const bad: SectorRange[] = sc.findings.filter((f) => f.kind === 'bad').map((f) => ({ start: f.sector, count: f.sectors }));
        if (opts.mapfile !== undefined)
          fs.writeFileSync(opts.mapfile, formatDdrescueMapfile(ddrescueMapOf(report.bytes, bad), `Mapfile. Created by remapsim scan ${target}`));
        if (opts.badblocks !== undefined) fs.writeFileSync(opts.badblocks, formatBadblocksList(bad, badblocksBlockSize));
        process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : formatScanReport(report));
        process.exitCode = report.counts.bad > 0 || report.counts.slow > 0 ? EXIT_FINDINGS : EXIT_OK;
      } finally {
        dev.close();
      }
    });
}
