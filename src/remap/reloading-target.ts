/**
 * A remap model whose table is loaded again, now and then, on the same
 * devices: what a reboot (or a remove and create) does to a real target.
 * Each reload removes the live target as its policy does (the dm-remap-v4
 * module's presuspend and destructor, dm-bufio's write-back) and opens a new
 * one that loads its metadata from the spare. A remove that would hang or
 * oops the kernel ends the reloading: the old target keeps serving, and
 * `stopped` says why.
 */
import type { BlockDevice, IoStatus, WriteFlags } from '../block/device.js';
import type { ControlTarget } from '../control/target.js';
import { DmRemapV4Target } from './v4-target.js';
import type { SafeRemapTarget } from './safe-target.js';

export type RemapModel = SafeRemapTarget | DmRemapV4Target;

/** A model as opened on its devices, and how to close what opening it made besides the target. */
export interface OpenedModel {
  target: RemapModel;
  closeStore?: () => void;
}

export class ReloadingTarget implements BlockDevice, ControlTarget {
  readonly name: string;
  readonly sectors: number;
  readonly logicalBlockSize: BlockDevice['logicalBlockSize'];
  readonly targetType: string;
  private opened: OpenedModel;
  /** Reloads done. */
  reloads = 0;
  /** Why reloading stopped: the remove of the live target would not have returned. */
  stopped: string | undefined;

  constructor(private readonly open: () => OpenedModel) {
    this.opened = open();
    const t = this.opened.target;
    this.name = t.name;
    this.sectors = t.sectors;
    this.logicalBlockSize = t.logicalBlockSize;
    this.targetType = t.targetType;
  }

  /** The live target. */
  get model(): RemapModel {
    return this.opened.target;
  }

  reload(): 'ok' | 'hang' | 'oops' | 'stopped' {
    if (this.stopped) return 'stopped';
    const t = this.opened.target;
    const outcome = t instanceof DmRemapV4Target ? t.remove() : 'ok';
    if (outcome !== 'ok') {
      this.stopped = `reload ${this.reloads + 1}: removing the dm-remap-v4 target would ${outcome === 'hang' ? 'never return (its work waits for the health mutex a status call holds)' : 'oops the kernel (a second presuspend stops the stopped metadata thread)'}`;
      return outcome;
    }
    if (!(t instanceof DmRemapV4Target)) t.close();
    this.opened.closeStore?.();
    this.opened = this.open();
    this.reloads++;
    return 'ok';
  }

  read(sector: number, buf: Uint8Array): IoStatus {
    return this.opened.target.read(sector, buf);
  }

  write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    return this.opened.target.write(sector, buf, flags);
  }

  flush(): IoStatus {
    return this.opened.target.flush();
  }

  discard(sector: number, count: number): IoStatus {
    return this.opened.target.discard(sector, count);
  }

  table(): string {
    return this.opened.target.table();
  }

  status(): string {
    return this.opened.target.status();
  }

  message(args: string[]): string {
    return this.opened.target.message(args);
  }

  close(): void {
    this.opened.target.close();
    this.opened.closeStore?.();
  }
}
