/**
 * The trace a differential run plays on the model and on the kernel: I/O from
 * the scenario's first job, and around it the life a real device has — long
 * stretches in which nothing reads status and stretches that poll it, the
 * target's messages, flush and FUA, suspend and resume, a table reload,
 * remove and re-create on the same spare, bad sectors that appear, and
 * checkpoints that settle the target and compare everything observable.
 * Pure and seeded: the same scenario, seed and options give the same trace.
 */
import { SECTOR_SIZE } from '../block/device.js';
import { Random } from '../util/random.js';
import { IoGenerator, newIoRequest } from '../workload/generator.js';
import type { JobSpec } from '../workload/job.js';

export type Step =
  | { kind: 'read' | 'discard'; sector: number; sectors: number }
  | { kind: 'write'; sector: number; sectors: number; fua?: boolean }
  | { kind: 'flush' }
  | { kind: 'status' }
  | { kind: 'idle'; ms: number }
  | { kind: 'message'; args: string[] }
  | { kind: 'suspend' }
  | { kind: 'resume' }
  | { kind: 'reload' }
  | { kind: 'recreate' }
  | { kind: 'grow'; sectors: number[] }
  | { kind: 'checkpoint' }
  | { kind: 'remove'; suspendFirst: boolean };

export type StepKind = Step['kind'];

export interface TraceOptions {
  /** I/O operations in all (default 400). */
  ops: number;
  seed: number;
  /** Size of the device, in 512-byte sectors. */
  sectors: number;
  /** Alignment of I/O, in bytes (the stack's logical block size). */
  alignBytes: number;
  /** One cluster of new bad sectors every this many operations (0: none). */
  growthEvery: number;
  /** Sectors per cluster. */
  growthCluster: number;
  /** Smallest unit the bad-sector layer marks bad, in sectors. */
  badBlockSectors: number;
  /** Where new bad sectors appear, in sectors (default: where the job does its I/O). */
  growthRegion?: { from: number; to: number };
  /**
   * 'full': the lifecycle steps between I/O segments (the target must be
   * dm-remap-v4); 'io': I/O, growth and checkpoints only.
   */
  lifecycle: 'full' | 'io';
}

/** The documented messages of dm-remap-v4, two refusals, and a test_remap. */
function messageSteps(rnd: Random, sectors: number): Step[] {
  const args: string[][] = [
    ['help'],
    ['status'],
    ['stats'],
    ['health'],
    ['cache_stats'],
    ['clear_stats'],
    ['bogus'],
    ['test_remap', '5'],
    ['test_remap', String(rnd.int(sectors)), String(rnd.int(64))],
  ];
  return args.map((a) => ({ kind: 'message', args: a }));
}

/** Builds the trace for the scenario's first job. */
export function buildTrace(job: JobSpec, opts: TraceOptions): Step[] {
  const rnd = new Random(opts.seed ^ 0x7ace);
  const gen = new IoGenerator({ ...job, timeBased: false }, { deviceBytes: opts.sectors * SECTOR_SIZE, seed: opts.seed, alignBytes: opts.alignBytes });
  const req = newIoRequest();
  const steps: Step[] = [];
  const from = opts.growthRegion?.from ?? gen.region.startBytes / SECTOR_SIZE;
  const to = Math.min(opts.sectors, opts.growthRegion?.to ?? (gen.region.startBytes + gen.region.sizeBytes) / SECTOR_SIZE);
  let done = 0;
  let exhausted = false;
  const io = (n: number, poll: number): void => {
    for (let i = 0; i < n && !exhausted; i++) {
      if (opts.growthEvery > 0 && done > 0 && done % opts.growthEvery === 0) {
        const first = from + rnd.int(Math.max(1, to - from - opts.growthCluster * opts.badBlockSectors));
        const aligned = first - (first % opts.badBlockSectors);
        steps.push({ kind: 'grow', sectors: Array.from({ length: opts.growthCluster }, (_, k) => aligned + k * opts.badBlockSectors) });
      }
      req.lengthBytes = 0;
      if (!gen.next(req)) {
        exhausted = true; // a size-based job ends; the trace ends with it
        break;
      }
      const sector = req.offsetBytes / SECTOR_SIZE;
      const sectors = req.lengthBytes / SECTOR_SIZE;
      steps.push(req.op === 'trim' ? { kind: 'discard', sector, sectors } : { kind: req.op, sector, sectors });
      done++;
      if (poll > 0 && done % poll === 0) steps.push({ kind: 'status' });
    }
  };
  if (opts.lifecycle === 'io') {
    steps.push({ kind: 'checkpoint' });
    io(opts.ops, 0);
    steps.push({ kind: 'checkpoint' }, { kind: 'remove', suspendFirst: false });
    return steps;
  }

  // the lifecycle events, in a seeded order, between I/O segments that either poll status or leave it alone
  const lifecycle: Step[][] = [
    messageSteps(rnd, opts.sectors),
    [{ kind: 'idle', ms: 200 + rnd.int(600) }],
    [{ kind: 'flush' }, { kind: 'write', sector: alignedSector(rnd, opts), sectors: opts.alignBytes / SECTOR_SIZE, fua: true }, { kind: 'flush' }],
    [{ kind: 'recreate' }],
    [{ kind: 'reload' }],
  ];
  if (rnd.next() < 0.5) lifecycle.push([{ kind: 'suspend' }, { kind: 'resume' }]);
  if (rnd.next() < 0.5) lifecycle.push([{ kind: 'recreate' }]);
  shuffle(rnd, lifecycle);
  const segment = Math.max(1, Math.floor(opts.ops / (lifecycle.length + 1)));
  steps.push({ kind: 'checkpoint' });
  for (const event of lifecycle) {
    io(segment, rnd.next() < 0.5 ? 0 : 2 + rnd.int(9));
    steps.push(...event, { kind: 'checkpoint' });
  }
  io(opts.ops - done, rnd.next() < 0.5 ? 0 : 2 + rnd.int(9));
  steps.push({ kind: 'checkpoint' }, { kind: 'remove', suspendFirst: rnd.next() < 0.3 });
  return steps;
}

function alignedSector(rnd: Random, opts: TraceOptions): number {
  const per = opts.alignBytes / SECTOR_SIZE;
  return rnd.int(Math.floor(opts.sectors / per)) * per;
}

function shuffle<T>(rnd: Random, a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rnd.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
}

/** The bytes a write step puts down: distinct per step and offset, the same on both sides. */
export function writeData(stepIndex: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const v = new DataView(out.buffer);
  for (let j = 0; j < bytes; j += 4) v.setUint32(j, (Math.imul(stepIndex + 1, 2654435761) + j) >>> 0, true);
  return out;
}

/** One line per step, for reports and reproductions. */
export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'read':
    case 'discard':
      return `${s.kind} ${s.sectors} sectors at ${s.sector}`;
    case 'write':
      return `write ${s.sectors} sectors at ${s.sector}${s.fua ? ' (FUA)' : ''}`;
    case 'idle':
      return `idle ${s.ms} ms`;
    case 'message':
      return `message ${s.args.join(' ')}`;
    case 'grow':
      return `bad sectors appear: ${s.sectors.join(' ')}`;
    case 'remove':
      return s.suspendFirst ? 'suspend, then remove' : 'remove';
    default:
      return s.kind;
  }
}
