/**
 * Buffered writes the kernel fails to write back are findings: a loop device
 * whose backing file lives on a 4 MiB tmpfs but is 16 MiB long, written
 * buffered (the page cache acknowledges every write) until the tmpfs is
 * full. Writeback then fails (ENOSPC under the loop device, EIO above it),
 * and the next fsync of /dev/loopN returns EIO once (errseq). The oracle
 * must count the units written since the last good flush as lost, not
 * report lost=0; `remapsim verify` (direct reads) finds them missing too.
 * Needs root and loop devices; skipped with the reason printed otherwise.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachLoop, detachLoop } from '../../src/kernel/loop.js';
import { runCli } from '../helpers/cli.js';
import { loopUnavailable, skipReason, tmpDir } from '../helpers/tmp.js';

const skip = skipReason(loopUnavailable(), 'writeback errors through a loop device on a full tmpfs');
const tmp = tmpDir('remapsim-wb-');
const mnt = path.join(tmp.dir, 'mnt');
let loop: { device: string; number: number } | undefined;
let mounted = false;

afterAll(() => {
  if (loop) {
    try {
      detachLoop(loop.number);
    } catch {
      // already gone
    }
  }
  if (mounted) execFileSync('umount', [mnt]);
  tmp.cleanup();
});

describe.skipIf(skip)('writeback errors on a buffered block device', () => {
  beforeAll(() => {
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    mounted = true;
    const backing = path.join(mnt, 'backing.img');
    fs.writeFileSync(backing, '');
    fs.truncateSync(backing, 16 << 20); // four times what the tmpfs can hold
    loop = attachLoop(backing); // buffered: no LO_FLAGS_DIRECT_IO
  });

  const state = path.join(tmp.dir, 'wb.state');
  let lostAtWriteback = 0;

  it('fsync=N: each failed flush turns the units written since the last good one into losses', () => {
    const r = runCli([
      'bench',
      '--rw',
      'write',
      '--bs',
      '4k',
      '--size',
      '8M',
      '--verify',
      'crc32c',
      '--fsync',
      '128',
      '--continue_on_error',
      'all',
      '--output-format',
      'json',
      '--target',
      `dev:${loop!.device}`,
      '--verify-state',
      state,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    const o = j.jobs[0].verify.run;
    expect(j.remapsim.durability.jobFlushes.issued).toBe(16);
    expect(j.remapsim.durability.jobFlushes.failed).toBeGreaterThan(0);
    expect(o.durability.failedFlushes).toBe(j.remapsim.durability.jobFlushes.failed);
    lostAtWriteback = o.durability.writebackLost;
    // the tmpfs holds about 1024 of the 2048 units written
    expect(lostAtWriteback).toBeGreaterThanOrEqual(512);
    expect(lostAtWriteback).toBeLessThanOrEqual(1536);
    expect(lostAtWriteback % 128).toBe(0);
    expect(o.reads.lost).toBe(lostAtWriteback);
    expect(o.findings).toBe(lostAtWriteback);
    // read back through the page cache they look fine: the oracle does not judge them again
    expect(o.reads.unjudged).toBe(lostAtWriteback);
    expect(o.reads.corrupt + o.reads.stale).toBe(0);
  }, 120_000);

  it('verify from the state, reading past the page cache, finds them missing on the device', () => {
    const r = runCli(['verify', '--state', state, '--target', `dev:${loop!.device}`, '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.direct).toBe(true);
    expect(j.state.complete).toBe(true);
    expect(j.reads.lost).toBeGreaterThan(0);
    expect(j.reads.lost).toBeLessThanOrEqual(lostAtWriteback);
    expect(j.reads.ok).toBe(2048 - j.reads.lost);
    expect(j.findings).toBe(j.reads.lost);
  }, 60_000);

  it('without fsync=N (the engine, no flushes during the run): the final flush reports it, every unit of the run is counted', () => {
    const r = runCli(['bench', '--rw', 'write', '--bs', '4k', '--size', '8M', '--verify', 'crc32c', '--target', `dev:${loop!.device}`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^data path: engine/m);
    expect(r.stdout).toMatch(/^flushes: 0 by the jobs, final flush EIO$/m);
    expect(r.stdout).toMatch(
      /^writeback: 1 flush\(es\) failed: the kernel did not write buffered data back; the 2048 units acknowledged since the last good flush are counted lost/m,
    );
    expect(r.stdout).toMatch(/ lost=2048 /);
  }, 120_000);
});
