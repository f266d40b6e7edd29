/**
 * A remap target together with its metadata store: what a (re)started model
 * is. openSafeModel opens or formats the safe store and builds a
 * SafeRemapTarget on it; openV4Model builds a DmRemapV4Target that loads and
 * writes the module's metadata.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { BlockDevice } from '../block/device.js';
import { SafeRemapTarget } from '../remap/safe-target.js';
import { DmRemapV4Target, type V4Options } from '../remap/v4-target.js';
import { MetadataFormatError } from '../metadata/errors.js';
import { describeContent, probeSpare } from '../metadata/probe.js';
import type { DeviceFingerprint } from '../metadata/safe-format.js';
import { type SafeDurability, SafeMetadataStore } from '../metadata/safe-store.js';
import { type V4StoreOptions, V4MetadataStore } from '../metadata/v4-store.js';
import type { ReadBuffers } from '../metadata/spare-io.js';

export interface SafeStoreChoice {
  /**
   * 'auto' (default): open the store, or format a spare that was never used
   * (blank metadata places and, on a file, no written data: see probeSpare's
   * 'used'). A spare that lost its metadata is never formatted again unless forced.
   * 'never': the spare must already be formatted.
   * 'always': format (a spare that holds anything needs `force`).
   */
  create?: 'auto' | 'never' | 'always';
  /** Overwrite foreign or unreadable metadata (formats a new, empty table). */
  force?: boolean;
  /** Identity recorded in (and required of) the main device's fingerprint. Default ''. */
  identity?: string;
  readOnly?: boolean;
  durability?: SafeDurability;
  /** Memory for the store's reads (SafeStoreOpenOptions.readBuffers). */
  readBuffers?: ReadBuffers;
  /** Format options. */
  logBlocks?: number;
  checkpointSlotBlocks?: number;
}

export interface SafeModelOptions extends SafeStoreChoice {
  mainPath?: string;
  sparePath?: string;
  discardPassdown?: boolean;
}

export function safeFingerprint(main: Pick<BlockDevice, 'sectors' | 'logicalBlockSize'>, identity = ''): DeviceFingerprint {
  return { mainSectors: main.sectors, logicalBlockSize: main.logicalBlockSize, identity };
}

/** Opens (recovering) or formats the safe store of `spare` for the main device `main`. */
export function openSafeStore(
  main: Pick<BlockDevice, 'sectors' | 'logicalBlockSize'>,
  spare: BlockDevice,
  opts: SafeStoreChoice = {},
): { store: SafeMetadataStore; formatted: boolean } {
  const fingerprint = safeFingerprint(main, opts.identity);
  const remapBlockSectors = main.logicalBlockSize / 512;
  const create = opts.create ?? 'auto';
  const format = (force: boolean) =>
    SafeMetadataStore.format(spare, {
      fingerprint,
      remapBlockSectors,
      logBlocks: opts.logBlocks,
      checkpointSlotBlocks: opts.checkpointSlotBlocks,
      durability: opts.durability,
      force,
    });
  if (create === 'always') return { store: format(opts.force ?? false), formatted: true };
  const content = probeSpare(spare);
  if (content.kind === 'blank' && create === 'auto' && !opts.readOnly) return { store: format(false), formatted: true };
  if (content.kind !== 'safe' && content.kind !== 'safe-damaged') {
    if (opts.force && !opts.readOnly) return { store: format(true), formatted: true };
    const hint =
      content.kind === 'blank'
        ? opts.readOnly
          ? ''
          : '; format it first'
        : content.kind === 'used'
          ? "; formatting it would send main's remapped blocks back to their old contents: restore the spare's metadata (or the spare), or use --force to format it anyway"
          : '; use --force to overwrite it with an empty table';
    throw new MetadataFormatError(
      content.kind === 'blank' ? 'unformatted' : 'foreign-device',
      `${spare.name}: the spare holds ${describeContent(content)}${hint}`,
    );
  }
  let store: SafeMetadataStore;
  try {
    store = SafeMetadataStore.open(spare, { fingerprint, durability: opts.durability, readOnly: opts.readOnly, readBuffers: opts.readBuffers });
  } catch (e) {
    if (e instanceof MetadataFormatError && opts.force && !opts.readOnly) return { store: format(true), formatted: true };
    if (e instanceof MetadataFormatError) {
      throw new MetadataFormatError(
        e.problem,
        `${e.message}${e.problem === 'foreign-device' ? '' : ` (try 'remapsim repair ${spare.name}')`}; --force overwrites it with an empty table`,
      );
    }
    throw e;
  }
  if (store.layout.remapBlockSectors !== remapBlockSectors) {
    throw new MetadataFormatError(
      'foreign-device',
      `${spare.name}: the metadata uses remap blocks of ${store.layout.remapBlockSectors} sectors; this main device's logical block is ${remapBlockSectors}`,
    );
  }
  return { store, formatted: false };
}

export interface SafeModel {
  target: SafeRemapTarget;
  store: SafeMetadataStore;
  formatted: boolean;
}

/**
 * The safe policy on persistent metadata: the store is opened (recovered) or
 * formatted, and the target reserves exactly the store's areas and starts
 * from its table and allocation cursor.
 */
export function openSafeModel(main: BlockDevice, spare: BlockDevice, opts: SafeModelOptions = {}): SafeModel {
  const { store, formatted } = openSafeStore(main, spare, opts);
  const target = new SafeRemapTarget({
    main,
    spare,
    mainPath: opts.mainPath,
    sparePath: opts.sparePath,
    discardPassdown: opts.discardPassdown,
    ...store.targetOptions(),
  });
  return { target, store, formatted };
}

export interface V4Model {
  target: DmRemapV4Target;
  store: V4MetadataStore;
  restored: number;
}

/** The dm-remap-v4 policy as a table load makes it: the module's metadata loaded, and written (through dm-bufio) as the module writes it. */
export function openV4Model(main: BlockDevice, spare: BlockDevice, opts: Omit<V4Options, 'main' | 'spare'> & V4StoreOptions = {}): V4Model {
  const target = new DmRemapV4Target({ main, spare, ...opts });
  target.tableLoaded();
  const store = V4MetadataStore.open(spare, main.sectors, opts);
  const restored = store.attach(target);
  return { target, store, restored };
}

/**
 * A stable identity for the main device at `path`, for the fingerprint: a
 * block device's WWID, serial or dm UUID from sysfs when it has one; '' for
 * regular files and devices without one (the size and block size still
 * count). A loop device is identified by its backing file.
 */
export function deviceIdentity(path: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    return '';
  }
  if (!st.isBlockDevice()) return '';
  const major = Math.floor(st.rdev / 256) & 0xfff;
  const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
  const base = `/sys/dev/block/${major}:${minor}`;
  for (const [file, prefix] of [
    ['device/wwid', 'wwid:'],
    ['wwid', 'wwid:'],
    ['device/serial', 'serial:'],
    ['serial', 'serial:'],
    ['dm/uuid', 'dm:'],
    ['loop/backing_file', 'loop:'],
  ] as const) {
    try {
      const v = fs.readFileSync(`${base}/${file}`, 'utf8').trim();
      if (v) return Buffer.byteLength(prefix + v) <= 128 ? prefix + v : `${prefix}sha256:${createHash('sha256').update(v).digest('hex')}`;
    } catch {
      // not there
    }
  }
  return '';
}
