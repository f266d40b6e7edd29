/**
 * The model's side of a differential run: the kernel stack rebuilt in
 * userspace (a dust layer over a file the size of main, a spare file the size
 * of the spare, the dm-remap-v4 policy on top) and the device-mapper device
 * around the target (table load, suspend, resume, remove), so that every
 * step of a trace has the outcome the model predicts for the kernel.
 */
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { type BlockDevice, OK, SECTOR_SIZE, withoutClose } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { DustDevice } from '../faults/dust.js';
import { MessageError } from '../control/target.js';
import { V4_COPY_SECTORS } from '../metadata/dm-remap-v4.js';
import { V4MetadataStore, v4CopyIoBytes } from '../metadata/v4-store.js';
import { DmRemapV4Target, type V4Event } from '../remap/v4-target.js';
import { maskVolatile } from './observe.js';
import { type Step, writeData } from './steps.js';

const EBUSY = 16;
const ENXIO = 6;

/** What one step did on one side. */
export interface Outcome {
  result: 'ok' | 'error' | 'hang' | 'oops' | 'skipped';
  errno?: number;
  /** Reads: a digest of the data. */
  data?: number;
  /** Messages: the reply the caller got (null: none). */
  reply?: string | null;
  /** Status: the line. */
  status?: string;
}

export interface ModelSideOptions {
  dir: string;
  mainSectors: number;
  spareSectors: number;
  logicalBlockSize: 512 | 4096;
  /** The bad-sector layer's block size in bytes (dm-dust's). */
  dustBlockSize: number;
  badSectors: readonly number[];
  /** The kernel's table arguments, so that status and table lines can be compared as they are. */
  mainPath: string;
  sparePath: string;
}

/** The digest a read step compares: crc32c of the data, the metadata's volatile fields masked when it came from `maskAt` on the spare. */
export function readDigest(data: Uint8Array, maskAt: number | undefined): number {
  return crc32c(maskAt === undefined ? data : maskVolatile(data, maskAt)) >>> 0;
}

export class ModelSide {
  readonly dust: DustDevice;
  private readonly mainFile: FileDevice;
  private readonly spareFile: FileDevice;
  target: DmRemapV4Target | undefined;
  store: V4MetadataStore | undefined;
  private suspended = false;
  /** Set when a step hung or oopsed: nothing more runs. */
  wedged: Outcome['result'] | undefined;
  /** The module's events since the last take(). */
  private events: V4Event[] = [];

  constructor(private readonly opts: ModelSideOptions) {
    const mainPath = path.join(opts.dir, 'model-main.img');
    const sparePath = path.join(opts.dir, 'model-spare.img');
    FileDevice.createSparse(mainPath, opts.mainSectors * SECTOR_SIZE);
    FileDevice.createSparse(sparePath, opts.spareSectors * SECTOR_SIZE);
    this.mainFile = FileDevice.open(mainPath, { logicalBlockSize: opts.logicalBlockSize, exclusive: true });
    this.spareFile = FileDevice.open(sparePath, { logicalBlockSize: opts.logicalBlockSize, exclusive: true });
    this.dust = new DustDevice(this.mainFile, { blockSize: opts.dustBlockSize });
    this.addBad(opts.badSectors);
    this.dust.enable();
    this.create();
  }

  get spare(): BlockDevice {
    return this.spareFile;
  }

  /** A table load: the target is constructed, dm's IMA measurement reads its status, the deferred metadata read restores the table. */
  private create(): void {
    const t = new DmRemapV4Target({
      main: withoutClose(this.dust),
      spare: withoutClose(this.spareFile),
      mainPath: this.opts.mainPath,
      sparePath: this.opts.sparePath,
      failedSector: { kind: 'dm-split', sectors: this.opts.dustBlockSize / SECTOR_SIZE },
    });
    t.onEvent((e) => this.events.push(e));
    t.tableLoaded();
    const store = V4MetadataStore.open(this.spareFile, this.opts.mainSectors);
    store.attach(t);
    this.target = t;
    this.store = store;
    this.suspended = false;
  }

  /** The events the module reported since the last call. */
  takeEvents(): V4Event[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  addBad(sectors: readonly number[]): void {
    const per = this.opts.dustBlockSize / SECTOR_SIZE;
    for (const s of sectors) {
      const b = Math.floor(s / per);
      if (!this.dust.isBadBlock(b)) this.dust.addBadBlock(b, 0);
    }
  }

  /**
   * Where a read of `step` goes on the spare when that lies in the metadata
   * copies (whose sequence numbers and times differ between any two runs),
   * so both sides digest the data with those fields masked; else undefined.
   */
  maskFor(step: Step): number | undefined {
    return step.kind === 'read' && this.touchesBufioBlocks(step) ? this.target!.lookup(step.sector) : undefined;
  }

  /** Runs one step; `index` numbers the step (write data depends on it). */
  step(step: Step, index: number, mask?: number): Outcome {
    if (this.wedged) return { result: 'skipped' };
    const t = this.target;
    switch (step.kind) {
      case 'read': {
        if (!t) return { result: 'error', errno: ENXIO };
        const buf = new Uint8Array(step.sectors * SECTOR_SIZE);
        const rc = t.read(step.sector, buf);
        return rc === OK ? { result: 'ok', data: readDigest(buf, mask) } : { result: 'error', errno: rc };
      }
      case 'write': {
        if (!t) return { result: 'error', errno: ENXIO };
        const rc = t.write(step.sector, writeData(index, step.sectors * SECTOR_SIZE));
        return rc === OK ? { result: 'ok' } : { result: 'error', errno: rc };
      }
      case 'discard': {
        if (!t) return { result: 'error', errno: ENXIO };
        const rc = t.discard();
        return rc === OK ? { result: 'ok' } : { result: 'error', errno: rc };
      }
      case 'flush':
        return t ? { result: 'ok' } : { result: 'error', errno: ENXIO };
      case 'status':
      case 'checkpoint':
        return t ? { result: 'ok', status: t.status() } : { result: 'error', errno: ENXIO };
      case 'idle':
        return { result: 'ok' };
      case 'message':
        if (!t) return { result: 'error', errno: ENXIO };
        try {
          t.message(step.args);
          return { result: 'ok', reply: null };
        } catch (err) {
          if (err instanceof MessageError) return { result: 'error', errno: err.errno };
          throw err;
        }
      case 'grow':
        this.addBad(step.sectors);
        return { result: 'ok' };
      case 'suspend':
        return this.suspend();
      case 'resume':
        this.suspended = false;
        return { result: 'ok' };
      case 'reload':
        // the new table's target opens main and spare exclusively while the live one holds them
        return t ? { result: 'error', errno: EBUSY } : { result: 'error', errno: ENXIO };
      case 'recreate': {
        const r = this.remove(false);
        if (r.result !== 'ok') return r;
        this.create();
        return { result: 'ok' };
      }
      case 'remove':
        return this.remove(step.suspendFirst);
    }
  }

  private suspend(): Outcome {
    if (!this.target) return { result: 'error', errno: ENXIO };
    if (this.suspended) return { result: 'ok' };
    const r = this.target.presuspend();
    this.suspended = true;
    return this.outcome(r);
  }

  private remove(suspendFirst: boolean): Outcome {
    const t = this.target;
    if (!t) return { result: 'error', errno: ENXIO };
    if (suspendFirst) {
      const s = this.suspend();
      if (s.result !== 'ok') return s;
    }
    const r = this.outcome(t.remove({ suspended: this.suspended }));
    if (r.result === 'ok') {
      this.target = undefined;
      this.store = undefined;
    }
    return r;
  }

  private outcome(r: 'ok' | 'hang' | 'oops'): Outcome {
    if (r === 'ok') return { result: 'ok' };
    this.wedged = r;
    return { result: r };
  }

  /** Does this I/O step go to the spare within the five metadata blocks (where dm-bufio's write-back lands)? */
  touchesBufioBlocks(step: Step): boolean {
    if (!this.target || (step.kind !== 'read' && step.kind !== 'write')) return false;
    const s = this.target.lookup(step.sector);
    return s >= 0 && s < V4_COPY_SECTORS[V4_COPY_SECTORS.length - 1] + 256;
  }

  /** The five copies as the spare holds them now. */
  readCopies(): Array<Uint8Array | null> {
    const bytes = v4CopyIoBytes(this.opts.logicalBlockSize);
    return V4_COPY_SECTORS.map((s) => {
      const b = new Uint8Array(bytes);
      return this.spareFile.read(s, b) === OK ? b : null;
    });
  }

  /** The spare's logical blocks at these sectors. */
  readSpare(sectors: readonly number[]): Array<Uint8Array | null> {
    return sectors.map((s) => {
      const b = new Uint8Array(this.opts.logicalBlockSize);
      return this.spareFile.read(s, b) === OK ? b : null;
    });
  }

  close(): void {
    this.mainFile.close();
    this.spareFile.close();
  }
}
