/**
 * The pure parts of `remapsim compare`: the trace, the module's log lines,
 * the kernel log's trouble lines, status lines field by field, and the
 * metadata fields that differ between any two runs. Lines are copied from
 * the kernel lane's logs (dm-remap-v4 on Debian's 6.12 kernel).
 */
import { describe, expect, it } from 'vitest';
import { buildTrace, describeStep, writeData } from '../../src/compare/steps.js';
import { moduleEvent, isLoadComplete } from '../../src/compare/module-log.js';
import { compareStatusLines, maskVolatile } from '../../src/compare/observe.js';
import { compareLeftovers } from '../../src/compare/run.js';
import { parseKmsgRecord, troubleOf } from '../../src/kernel/kmsg.js';
import { jobFromRecord } from '../../src/workload/job.js';

const job = jobFromRecord({ rw: 'randrw', bs: '4k', size: '1m', io_size: '1g' });
const opts = { ops: 120, seed: 5, sectors: 32768, alignBytes: 512, growthEvery: 10, growthCluster: 4, badBlockSectors: 1, lifecycle: 'full' as const };

describe('compare: the trace', () => {
  it("is the same for the same seed, and holds the device's life around the I/O", () => {
    const a = buildTrace(job, opts);
    expect(buildTrace(job, opts)).toEqual(a);
    expect(buildTrace(job, { ...opts, seed: 6 })).not.toEqual(a);
    const kinds = new Set(a.map((s) => s.kind));
    for (const k of ['read', 'write', 'checkpoint', 'message', 'recreate', 'reload', 'idle', 'flush', 'grow', 'remove'])
      expect(kinds.has(k as never), k).toBe(true);
    expect(a.filter((s) => s.kind === 'read' || (s.kind === 'write' && !s.fua)).length).toBe(120);
    expect(a[0].kind).toBe('checkpoint');
    expect(a.at(-1)!.kind).toBe('remove');
    const msgs = a.filter((s) => s.kind === 'message').map((s) => (s as { args: string[] }).args[0]);
    expect(msgs).toEqual(['help', 'status', 'stats', 'health', 'cache_stats', 'clear_stats', 'bogus', 'test_remap', 'test_remap']);
    // new bad sectors land where the job works (its first MiB)
    for (const s of a) if (s.kind === 'grow') for (const x of s.sectors) expect(x).toBeLessThan(2048);
    expect(a.some((s) => s.kind === 'write' && s.fua)).toBe(true);
  });

  it('io only: I/O, growth and checkpoints', () => {
    const kinds = new Set(buildTrace(job, { ...opts, lifecycle: 'io' }).map((s) => s.kind));
    expect([...kinds].sort()).toEqual(['checkpoint', 'grow', 'read', 'remove', 'write']);
  });

  it('write data depends on the step, the same on both sides', () => {
    expect(writeData(3, 8)).toEqual(writeData(3, 8));
    expect(writeData(3, 8)).not.toEqual(writeData(4, 8));
    expect(describeStep({ kind: 'remove', suspendFirst: true })).toBe('suspend, then remove');
  });
});

describe('compare: the kernel log', () => {
  it("reads the module's work from its log lines", () => {
    expect(moduleEvent('dm-remap: WARNING: I/O error on sector 4103 (error=-5), queueing write-ahead remap')).toEqual({ kind: 'io-error', sector: 4103 });
    expect(moduleEvent('dm-remap: Write-ahead remap: sector 100 (ensuring metadata persisted first)')).toEqual({ kind: 'writeahead', sector: 100 });
    expect(moduleEvent('dm-remap: Added remap entry: sector 100 -> 1')).toEqual({ kind: 'remap-added', sector: 100, spare: 1 });
    expect(moduleEvent('dm-remap: Metadata written successfully (5 copies) using dm-bufio')).toEqual({ kind: 'metadata-write' });
    expect(moduleEvent('dm-remap: Restored remap: sector 100 -> 0')).toEqual({ kind: 'restored', sector: 100, spare: 0 });
    expect(moduleEvent('dm-remap: WARNING: I/O error detected on sector 100 (error=-5)')).toBeUndefined(); // end_io's line: counted once, by the next
    expect(isLoadComplete('dm-remap: Deferred metadata read work COMPLETE')).toBe(true);
  });

  it('parses /dev/kmsg records and tells kernel trouble from I/O errors', () => {
    expect(parseKmsgRecord('1,1234,42833715,-;BUG: kernel NULL pointer dereference, address: 0000000000000000\n SUBSYSTEM=x\n')).toEqual({
      seq: 1234,
      usec: 42833715,
      level: 1,
      text: 'BUG: kernel NULL pointer dereference, address: 0000000000000000',
    });
    expect(troubleOf('BUG: kernel NULL pointer dereference, address: 0000000000000000')).toBe('oops');
    expect(troubleOf('Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI')).toBe('oops');
    expect(troubleOf('INFO: task kworker/0:0:9 blocked for more than 120 seconds.')).toBe('hung-task');
    expect(troubleOf('WARNING: CPU: 0 PID: 199 at kernel/kthread.c:75 kthread_stop+0x1/0x2')).toBe('warning');
    expect(troubleOf('dm-remap: WARNING: I/O error detected on sector 100 (error=-5)')).toBeUndefined();
  });
});

describe('compare: observations', () => {
  const line = (reads: number, mapNs: number) =>
    `0 131072 dm-remap-v4 v4.0-phase1.4 /dev/mapper/bad /dev/loop1 ${reads} 1 0 0 2 5 ${mapNs} 67486 233483440 512 32768 5 5 0 0 0 5 0 0 0 100 0 0 operational real`;
  it('compares status lines field by field, leaving out the CPU-time fields', () => {
    expect(compareStatusLines(line(4, 337431), line(4, 99))).toEqual([]);
    expect(compareStatusLines(line(4, 1), line(5, 1))).toEqual([{ field: 'reads', model: '4', kernel: '5' }]);
  });

  it("masks the sequence, time and checksum of a copy header, and each entry's time, where a block overlaps a copy", () => {
    const b = new Uint8Array(512).fill(0xaa);
    const m = maskVolatile(b, 0);
    expect([...m.subarray(0, 8)].every((x) => x === 0xaa)).toBe(true);
    expect([...m.subarray(8, 28)].every((x) => x === 0)).toBe(true);
    expect([...m.subarray(28, 328)].every((x) => x === 0xaa)).toBe(true);
    expect([...m.subarray(328, 336)].every((x) => x === 0)).toBe(true); // entry 0's timestamp
    expect(maskVolatile(b, 200)).toEqual(b); // past copy 0's 84,288 bytes
    expect(b[10]).toBe(0xaa); // a copy, not in place
  });
});

describe('compare: leftovers of an earlier run', () => {
  it('names the stacks whose compare process is gone, with the command that removes them', () => {
    const devices = [{ name: 'cmp-4242-remap' }, { name: 'cmp-4242-bad' }, { name: 'live-7-remap' }, { name: 'oopsed-99-bad' }, { name: 'other' }];
    expect(compareLeftovers(devices, (pid) => pid === 7)).toEqual([
      { name: 'cmp-4242', clean: 'remapsim stack clean cmp-4242 --dir /var/tmp/remapsim-compare-cmp-4242' },
      { name: 'oopsed-99', clean: 'remapsim stack clean oopsed-99 --dir /var/tmp/remapsim-compare-oopsed-99' },
    ]);
  });
});
