/**
 * A writer of remapsim's safe metadata on in-memory block images, following
 * the commit protocol documented in src/metadata/safe-format.ts (append a log
 * block to A then B; checkpoint = snapshot into the other slot of A and B,
 * then superblock A, then B). Tests and the fuzzer damage these images and
 * check what replay() makes of them.
 */
import {
  LOG_RECORDS_PER_BLOCK,
  dataUnits,
  encodeLogBlock,
  formatSafe,
  planCheckpoint,
  type Area,
  type DeviceFingerprint,
  type LogRecord,
  type SafeFormatOptions,
  type SafeState,
  type SafeSuperblock,
} from '../../src/metadata/safe-format.js';
import { replay, type ReplayResult } from '../../src/metadata/safe-replay.js';

export interface AreaImage {
  superblock: Uint8Array | null;
  checkpoint: [Array<Uint8Array | null>, Array<Uint8Array | null>];
  log: Array<Uint8Array | null>;
}

const blank = () => new Uint8Array(4096);

export class SimVolume {
  sb: SafeSuperblock;
  readonly images: { A: AreaImage; B: AreaImage };
  /** State after every committed log block (what replay must find). */
  readonly durable: SafeState;
  nextSlot = 0;
  nextSeq = 1;
  /** Next spare block to hand out (includes uncommitted allocations). */
  alloc: number;
  pending: LogRecord[] = [];
  /** Every block image ever written, oldest first (stale copies for damage tests). */
  readonly history: Array<{ region: 'superblock' | 'checkpoint' | 'log'; bytes: Uint8Array }> = [];

  constructor(readonly opts: SafeFormatOptions) {
    const f = formatSafe(opts);
    this.sb = f.superblock;
    const { checkpointSlotBlocks: C, logBlocks: L } = f.superblock.layout;
    const area = (): AreaImage => ({
      superblock: blank(),
      checkpoint: [Array.from({ length: C }, blank), Array.from({ length: C }, blank)],
      log: Array.from({ length: L }, blank),
    });
    this.images = { A: area(), B: area() };
    this.durable = { remaps: new Map(f.state.remaps), cursor: f.state.cursor };
    this.alloc = f.state.cursor;
    f.checkpointBlocks.forEach((b, i) => this.writeBoth('checkpoint', b, i, 0));
    this.writeSuperblocks(f.superblockBytes);
  }

  get fingerprint(): DeviceFingerprint {
    return this.opts.fingerprint;
  }

  spareRoom(): number {
    return dataUnits(this.sb.layout).end - this.alloc;
  }

  add(main: number): number {
    const spare = this.alloc++;
    this.pending.push({ op: 'add', main, spare });
    return spare;
  }

  remove(main: number): void {
    this.pending.push({ op: 'remove', main });
  }

  skip(n: number): void {
    this.alloc += n;
    this.pending.push({ op: 'cursor', cursor: this.alloc });
  }

  /** Writes pending records as log blocks (checkpointing first whenever the log is full). */
  commit(only?: Area): void {
    while (this.pending.length > 0) {
      if (this.nextSlot >= this.sb.layout.logBlocks) this.checkpoint();
      const records = this.pending.splice(0, LOG_RECORDS_PER_BLOCK);
      const bytes = this.logBlock(records);
      if (only) this.images[only].log[this.nextSlot] = bytes.slice();
      else this.writeBoth('log', bytes, this.nextSlot);
      this.apply(records);
      this.nextSlot++;
      this.nextSeq++;
    }
  }

  /** The bytes the next log block would carry. */
  logBlock(records: LogRecord[], slot = this.nextSlot): Uint8Array {
    return encodeLogBlock({ volumeId: this.sb.volumeId, epoch: this.sb.checkpointEpoch, seq: this.sb.logStartSeq + slot, records });
  }

  checkpoint(opts: { superblocks?: Area[] } = {}): void {
    const plan = planCheckpoint(this.sb, this.durable, this.nextSeq);
    plan.checkpointBlocks.forEach((b, i) => this.writeBoth('checkpoint', b, i, plan.superblock.checkpointSlot));
    for (const area of opts.superblocks ?? (['A', 'B'] as Area[])) {
      this.images[area].superblock = plan.superblockBytes[area].slice();
      this.history.push({ region: 'superblock', bytes: plan.superblockBytes[area] });
    }
    this.sb = plan.superblock;
    this.nextSlot = 0;
  }

  replay(): ReplayResult {
    const { A, B } = this.images;
    return replay(
      { A: A.superblock, B: B.superblock },
      { A: A.checkpoint, B: B.checkpoint },
      { A: A.log, B: B.log },
      { fingerprint: this.fingerprint, spareSectors: this.opts.spareSectors },
    );
  }

  private apply(records: LogRecord[]): void {
    for (const r of records) {
      if (r.op === 'add') {
        this.durable.remaps.set(r.main, r.spare);
        this.durable.cursor = Math.max(this.durable.cursor, r.spare + 1);
      } else if (r.op === 'remove') this.durable.remaps.delete(r.main);
      else this.durable.cursor = Math.max(this.durable.cursor, r.cursor);
    }
  }

  private writeBoth(region: 'checkpoint' | 'log', bytes: Uint8Array, index: number, slot: 0 | 1 = 0): void {
    for (const area of ['A', 'B'] as const) {
      const copy = bytes.slice(); // separate copies, so damage to one leaves the other intact
      if (region === 'log') this.images[area].log[index] = copy;
      else this.images[area].checkpoint[slot][index] = copy;
    }
    this.history.push({ region, bytes });
  }

  private writeSuperblocks(bytes: { A: Uint8Array; B: Uint8Array }): void {
    this.images.A.superblock = bytes.A.slice();
    this.images.B.superblock = bytes.B.slice();
    this.history.push({ region: 'superblock', bytes: bytes.A }, { region: 'superblock', bytes: bytes.B });
  }
}

export function sortedEntries(m: ReadonlyMap<number, number>): Array<[number, number]> {
  return [...m.entries()].sort((x, y) => x[0] - y[0]);
}
