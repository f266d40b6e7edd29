/**
 * A block device that keeps, per 512-byte sector, a stamp (which unit and
 * generation it holds) or the few bytes that are not data (metadata), so a
 * 4 TB drive costs memory only for the sectors a run touched. The policy
 * code reads and writes it as any device: a stamped sector written is kept
 * as its stamp, a read gives the stamp back (see stamp.ts).
 *
 * `initial: 'self'` (a main device): a sector never written holds its own
 * content from before the run (an initial stamp naming it), as a drive in
 * service does; 'zero' (a spare): zeroes.
 */
import { type BlockDevice, type IoStatus, type LogicalBlockSize, OK, SECTOR_SHIFT, checkIo, checkRequest } from '../block/device.js';
import { type SectorValue, getSector, putSector, sectorWords } from './stamp.js';

export class GenerationDevice implements BlockDevice {
  readonly sectors: number;
  readonly logicalBlockSize: LogicalBlockSize;
  private readonly cells = new Map<number, SectorValue>();
  private readonly selfInitial: boolean;

  constructor(
    readonly name: string,
    sectors: number,
    logicalBlockSize: LogicalBlockSize,
    initial: 'self' | 'zero',
  ) {
    if (!Number.isSafeInteger(sectors) || sectors <= 0 || sectors % (logicalBlockSize >>> SECTOR_SHIFT) !== 0) {
      throw new RangeError(`${name}: ${sectors} sectors is not a positive whole number of ${logicalBlockSize}-byte blocks`);
    }
    this.sectors = sectors;
    this.logicalBlockSize = logicalBlockSize;
    this.selfInitial = initial === 'self';
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    const n = checkIo(this, sector, buf);
    const w = buf.byteOffset % 4 === 0 ? sectorWords(buf) : undefined;
    if (!this.selfInitial) {
      // a spare: zeroes, with what was written laid over them
      buf.fill(0);
      if (this.cells.size === 0) return OK;
      for (let i = 0; i < n; i++) {
        const v = this.cells.get(sector + i);
        if (v !== undefined) putSector(buf, i, v, undefined, w);
      }
      return OK;
    }
    for (let i = 0; i < n; i++) putSector(buf, i, this.cells.get(sector + i), sector + i, w);
    return OK;
  }

  write(sector: number, buf: Uint8Array): IoStatus {
    const n = checkIo(this, sector, buf);
    const w = sectorWords(buf);
    for (let i = 0; i < n; i++) this.set(sector + i, getSector(buf, i, w));
    return OK;
  }

  /** Puts a value straight into a sector (what the device held before the run, set by the simulator). */
  set(sector: number, v: SectorValue): void {
    if (v !== 0 && !(v instanceof Uint8Array) && v.kind === 2 && v.sector === sector && this.selfInitial) this.cells.delete(sector);
    else if (v === 0 && !this.selfInitial) this.cells.delete(sector);
    else this.cells.set(sector, v);
  }

  /** The value of a sector (undefined: never written). */
  get(sector: number): SectorValue | undefined {
    return this.cells.get(sector);
  }

  flush(): IoStatus {
    return OK;
  }

  discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    for (let s = sector; s < sector + count; s++) this.set(s, 0);
    return OK;
  }

  /** Sectors holding anything other than their initial content. */
  get usedSectors(): number {
    return this.cells.size;
  }

  close(): void {
    this.cells.clear();
  }
}
