/**
 * --stack-state and --known-bad, shared by `bench` and `run`: sectors known
 * to be bad on a device the model does not own (a kernel stack built by
 * `remapsim stack up`, a disk with a ddrescue mapfile), so the oracle counts
 * a read error over one of them as expected rather than as a finding.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { SECTOR_SIZE } from '../block/device.js';
import { BadListError, parseBadSectorFile } from '../faults/badlist.js';
import { KnownBadSectors } from '../faults/known-bad.js';
import { loadStackState, StackError } from '../kernel/stack.js';
import { UsageError } from '../util/errors.js';
import { sameFile } from '../util/file-identity.js';

export interface KnownBadCliOptions {
  stackState?: string;
  knownBad?: string;
}

export function addKnownBadOptions(cmd: Command): Command {
  return cmd
    .option('--stack-state <file>', "the state file `remapsim stack up` wrote: its bad sectors are known bad (the target must be the stack's top device)")
    .option('--known-bad <file>', 'sectors known bad on the target: one sector a line, or a GNU ddrescue mapfile');
}

/** The device the sectors are about: its path (undefined for a model), size and how to name it in messages. */
export interface KnownBadTarget {
  path?: string;
  sectors: number;
  description: string;
}

export interface ResolvedKnownBad {
  set?: KnownBadSectors;
  /** One line per source, for the report: where the sectors came from and how many. */
  sources: string[];
}

function sameDevice(a: string, b: string): boolean {
  try {
    return sameFile(fs.statSync(a), fs.statSync(b));
  } catch {
    return false;
  }
}

function checkRange(set: KnownBadSectors, option: string, target: KnownBadTarget): void {
  if (set.end > target.sectors) {
    const past = set.toRanges().find((r) => r.start + r.count > target.sectors)!;
    const sector = Math.max(past.start, target.sectors);
    throw new UsageError(`${option}: sector ${sector} is beyond the end of ${target.description} (sectors 0..${target.sectors - 1})`);
  }
}

/** Reads --stack-state and --known-bad, checks them against the target; one-line UsageErrors (exit 2) for anything wrong. */
export function resolveKnownBad(opts: KnownBadCliOptions, target: KnownBadTarget): ResolvedKnownBad {
  const sets: KnownBadSectors[] = [];
  const sources: string[] = [];
  if (opts.stackState !== undefined) {
    let state: ReturnType<typeof loadStackState>;
    try {
      state = loadStackState(opts.stackState);
    } catch (err) {
      if (err instanceof StackError) throw new UsageError(`--stack-state: ${err.message}`);
      throw err;
    }
    if (typeof state.top !== 'string' || state.top === '')
      throw new UsageError(`--stack-state: ${opts.stackState} is not a remapsim stack state: field 'top' is missing or malformed`);
    if (!fs.existsSync(state.top)) throw new UsageError(`--stack-state: the stack's device ${state.top} does not exist (was stack '${state.name}' torn down?)`);
    if (target.path === undefined || !sameDevice(target.path, state.top)) {
      throw new UsageError(`--stack-state: ${opts.stackState} describes stack '${state.name}' on ${state.top}, but the target is ${target.description}`);
    }
    // the bad-sector layer fails whole blocks: dust its block size, dm-error whole logical blocks
    const block = state.badLayer.kind === 'dust' ? state.badLayer.blockSize : state.logicalBlockSize;
    const set = KnownBadSectors.fromRanges(state.badSectors.map((s) => ({ start: s, count: 1 }))).widenedTo(block);
    checkRange(set, '--stack-state', target);
    sets.push(set);
    sources.push(`stack '${state.name}' (${opts.stackState}): ${state.badSectors.length} bad sectors, ${set.sectors} sectors in failing ${block}-byte blocks`);
  }
  if (opts.knownBad !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(opts.knownBad, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new UsageError(`--known-bad: cannot read ${opts.knownBad}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    }
    let set: KnownBadSectors;
    try {
      set = KnownBadSectors.fromRanges(parseBadSectorFile(text, { deviceBytes: target.sectors * SECTOR_SIZE }));
    } catch (err) {
      if (err instanceof BadListError) throw new UsageError(`--known-bad ${opts.knownBad}: ${err.message}`);
      throw err;
    }
    checkRange(set, `--known-bad ${opts.knownBad}`, target);
    sets.push(set);
    sources.push(`${opts.knownBad}: ${set.sectors} sectors`);
  }
  if (sets.length === 0) return { sources };
  return { set: sets.length === 1 ? sets[0] : KnownBadSectors.union(sets), sources };
}
