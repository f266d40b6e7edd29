/**
 * Builds a model target from a device-mapper table line, resolving device
 * paths as the kernel would: each path opened once, sizes and block sizes
 * checked, the same device never claimed twice. Used by `remapsim
 * check-table`, scenarios and the served device.
 */
import * as fs from 'node:fs';
import type { BlockDevice } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { type ControlTarget, TableError } from '../control/target.js';
import { type TableLine, parseTableLine } from '../control/table-line.js';
import { DustDevice } from '../faults/dust.js';
import { FlakeyDevice } from '../faults/flakey.js';
import type { Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';
import { DmRemapV4Target } from '../remap/v4-target.js';
import { SafeRemapTarget } from '../remap/safe-target.js';
import type { MinSpareParams } from '../metadata/min-spare.js';
import { MetadataFormatError, MetadataValueError } from '../metadata/errors.js';
import { type SafeStoreChoice, deviceIdentity, openSafeStore } from './models.js';
import { probeSpare } from '../metadata/probe.js';
import { MetadataIoError } from '../metadata/safe-store.js';
import { V4MetadataStore } from '../metadata/v4-store.js';

export type ModelTarget = BlockDevice & ControlTarget;

export const MODEL_TARGET_TYPES = ['dm-remap-v4', 'remap', 'dust', 'flakey'] as const;

export interface OpenTargetOptions extends MinSpareParams {
  /** Opens a path as a device (default: FileDevice, read-write). */
  openDevice?: (path: string) => BlockDevice;
  readOnly?: boolean;
  clock?: Clock;
  random?: Random;
  /**
   * Metadata of the `remap` (safe) target. Default {}: the store on the spare
   * is opened (recovered), or a blank spare is formatted; read-only opens
   * use a store only when the spare already holds one. false: no
   * persistence (the table lives in memory only).
   */
  safeMetadata?: SafeStoreChoice | false;
  /** dm-remap-v4: load and write the module's metadata on the spare (default true, as the module does). */
  v4Metadata?: boolean;
  /** Wall-clock seconds for dm-remap-v4 metadata timestamps (default Date.now() / 1000). */
  nowSeconds?: () => number;
}

/**
 * Opens paths as FileDevices, refusing a second claim of the same file or
 * block device (as the kernel's exclusive open does): within one table, and,
 * for a writer, against every other writer (FileDevice's `exclusive` claim).
 */
export function exclusiveOpener(readOnly = false): { open: (path: string) => BlockDevice; opened: BlockDevice[] } {
  const claimed = new Map<string, string>();
  const opened: BlockDevice[] = [];
  return {
    opened,
    open(path: string): BlockDevice {
      let st: fs.Stats;
      try {
        st = fs.statSync(path);
      } catch {
        throw new TableError(`${path}: no such file or directory`, 2);
      }
      const id = st.isBlockDevice() ? `blk:${st.rdev}` : `file:${st.dev}:${st.ino}`;
      const prev = claimed.get(id);
      if (prev !== undefined) throw new TableError(`${path}: already claimed as ${prev} (device or resource busy)`, 16);
      const dev = FileDevice.open(path, { readOnly, exclusive: !readOnly });
      claimed.set(id, path);
      opened.push(dev);
      return dev;
    },
  };
}

export function openTarget(lineText: string | TableLine, opts: OpenTargetOptions = {}): ModelTarget {
  const line = typeof lineText === 'string' ? parseTableLine(lineText) : lineText;
  if (line.start !== 0) throw new TableError(`the model maps one target starting at sector 0, got start ${line.start}`);
  const opener = opts.openDevice ? { open: opts.openDevice, opened: [] as BlockDevice[] } : exclusiveOpener(opts.readOnly);
  try {
    return build(line, opener.open, opts);
  } catch (err) {
    for (const d of opener.opened) d.close();
    throw err;
  }
}

function build(line: TableLine, open: (path: string) => BlockDevice, opts: OpenTargetOptions): ModelTarget {
  switch (line.type) {
    case 'dm-remap-v4': {
      const t = DmRemapV4Target.fromTable(line, open, { ...opts });
      t.tableLoaded();
      if (opts.v4Metadata === false) return t;
      try {
        V4MetadataStore.open(t.spare, t.main.sectors, { readOnly: opts.readOnly, nowSeconds: opts.nowSeconds }).attach(t);
      } catch (err) {
        t.close();
        throw err;
      }
      return t;
    }
    case 'remap': {
      const t = SafeRemapTarget.fromTable(line, open, {}, safeSetup(opts));
      if (line.length > t.sectors) {
        t.close();
        throw new TableError(
          `remap: table length ${line.length} is beyond the main device (${t.sectors} sectors): the file is smaller than the declared length`,
          22,
        );
      }
      return t;
    }
    case 'dust': {
      if (line.args.length < 1) throw new TableError('dust: Invalid argument count');
      return DustDevice.fromTable(open(line.args[0]), line.args, { sectors: line.length });
    }
    case 'flakey': {
      if (line.args.length < 1) throw new TableError('flakey: Invalid argument count');
      return FlakeyDevice.fromTable(open(line.args[0]), line.args, { sectors: line.length, clock: opts.clock, random: opts.random });
    }
    default:
      throw new TableError(`target type '${line.type}' is not modelled (model targets: ${MODEL_TARGET_TYPES.join(', ')})`, 22);
  }
}

/** Plugs the safe metadata store into a `remap` line (see OpenTargetOptions.safeMetadata). */
function safeSetup(opts: OpenTargetOptions): Parameters<typeof SafeRemapTarget.fromTable>[3] {
  const choice = opts.safeMetadata ?? {};
  if (choice === false) return undefined;
  return ({ main, spare, mainPath, reservedSectors }) => {
    const readOnly = opts.readOnly ?? choice.readOnly ?? false;
    if (readOnly && choice.create !== 'always') {
      const kind = probeSpare(spare).kind;
      if (kind !== 'safe' && kind !== 'safe-damaged') return {};
    }
    let store: ReturnType<typeof openSafeStore>['store'];
    try {
      ({ store } = openSafeStore(main, spare, { ...choice, readOnly, identity: choice.identity ?? deviceIdentity(mainPath) }));
    } catch (err) {
      if (err instanceof MetadataFormatError || err instanceof MetadataValueError || err instanceof MetadataIoError)
        throw new TableError(`remap: spare metadata: ${err.message}`, 22);
      throw err;
    }
    if (reservedSectors !== undefined && reservedSectors !== store.reservedStartSectors) {
      throw new TableError(
        `remap: reserved_sectors ${reservedSectors} does not match the metadata area of ${store.reservedStartSectors} sectors on the spare`,
        22,
      );
    }
    return store.targetOptions();
  };
}
