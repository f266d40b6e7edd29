/**
 * Who holds a block device, for the one line that explains a table load the
 * kernel refused with EBUSY. A table opens each device it names exclusively;
 * all device-mapper tables share one holder, so a dm device whose table uses
 * the device (sysfs `holders/dm-N`) does not block another table, but a
 * target that opened the device by path with a holder of its own (the
 * dm-remap-v4 module does, and its table echoes the path verbatim) and a
 * mounted filesystem do. Anything else holding it with O_EXCL is not visible
 * from here. Reading the live tables runs each target's status function
 * (DM_TABLE_STATUS); the dm-remap-v4 module's toggles a mutex there (see
 * test/vm/stack-cli.test.ts), which is why this runs only after a refusal.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { glibcMajorMinor } from './dev-t.js';

/** One target of a live device-mapper table, as far as the holder scan reads it. */
export interface TableTarget {
  type: string;
  params: string;
}

/** The two DmControl calls the table scan needs. */
export interface DmTablesView {
  listDevices(): Array<{ name: string; major: number; minor: number }>;
  table(name: string): TableTarget[];
}

export interface HolderPaths {
  /** Default /sys. */
  sysDir?: string;
  /** Default /proc/self/mountinfo. */
  mountinfo?: string;
}

export type Holder =
  /** A dm target that opened the device by path (its table line has the path, not MAJ:MIN). */
  | { kind: 'dm-by-path'; name: string; target: string; path: string }
  /** A dm device whose table uses the device through device-mapper (the shared holder). */
  | { kind: 'dm-table'; name: string; node?: string }
  | { kind: 'mount'; mountPoint: string; fsType: string };

export interface DevNumber {
  major: number;
  minor: number;
}

const key = (d: DevNumber): string => `${d.major}:${d.minor}`;

/** A table word that names a block device: MAJ:MIN, or a path to a block device node. */
export function blockDeviceOf(word: string): DevNumber | undefined {
  const mm = /^(\d+):(\d+)$/.exec(word);
  if (mm) return { major: Number(mm[1]), minor: Number(mm[2]) };
  if (!word.startsWith('/')) return undefined;
  try {
    const st = fs.statSync(word);
    return st.isBlockDevice() ? glibcMajorMinor(st.rdev) : undefined;
  } catch {
    return undefined;
  }
}

/** The words of a table's parameters that name block devices, in order, without repeats. */
export function tableDevices(targets: readonly TableTarget[]): Array<{ word: string; dev: DevNumber }> {
  const out: Array<{ word: string; dev: DevNumber }> = [];
  const seen = new Set<string>();
  for (const t of targets) {
    for (const word of t.params.split(/\s+/)) {
      const dev = blockDeviceOf(word);
      if (!dev || seen.has(key(dev))) continue;
      seen.add(key(dev));
      out.push({ word, dev });
    }
  }
  return out;
}

function readTrimmed(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Mount points of the filesystems on `dev` (from mountinfo: field 3 is the device, 5 the mount point, after ' - ' the type). */
export function mountsOf(dev: DevNumber, mountinfo = '/proc/self/mountinfo'): Array<{ mountPoint: string; fsType: string }> {
  const text = readTrimmed(mountinfo) ?? '';
  const out: Array<{ mountPoint: string; fsType: string }> = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[2] !== key(dev)) continue;
    const dash = f.indexOf('-', 6);
    // mountinfo escapes blanks and backslashes as octal
    const mountPoint = (f[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    out.push({ mountPoint, fsType: dash > 0 ? (f[dash + 1] ?? '?') : '?' });
  }
  return out;
}

/** The live tables of every dm device but `exclude` (a device removed meanwhile, or without a table, is skipped). */
export function liveTables(dm: DmTablesView, exclude?: string): Array<{ name: string; targets: TableTarget[] }> {
  let devices: Array<{ name: string }> = [];
  try {
    devices = dm.listDevices();
  } catch {
    return [];
  }
  const out: Array<{ name: string; targets: TableTarget[] }> = [];
  for (const d of devices) {
    if (d.name === exclude) continue;
    try {
      out.push({ name: d.name, targets: dm.table(d.name) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Who holds `dev`: dm targets that opened it by path and dm devices whose
 * tables use it (from `tables`, see liveTables, and sysfs holders), mounts.
 * `exclude` is the dm device being loaded (its own old table does not count).
 */
export function holdersOf(
  dev: DevNumber,
  tables: ReadonlyArray<{ name: string; targets: readonly TableTarget[] }>,
  opts: HolderPaths & { exclude?: string } = {},
): Holder[] {
  const sys = opts.sysDir ?? '/sys';
  const holders: Holder[] = [];
  for (const { name, targets } of tables) {
    if (name === opts.exclude) continue;
    for (const t of targets) {
      const hit = t.params.split(/\s+/).find((w) => {
        const n = blockDeviceOf(w);
        return n !== undefined && key(n) === key(dev);
      });
      if (hit === undefined) continue;
      holders.push(hit.startsWith('/') ? { kind: 'dm-by-path', name, target: t.type, path: hit } : { kind: 'dm-table', name });
      break;
    }
  }
  const holderDir = path.join(sys, 'dev', 'block', key(dev), 'holders');
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(holderDir).sort();
  } catch {
    // not a block device sysfs knows, or no holders
  }
  for (const node of entries) {
    const name = readTrimmed(path.join(holderDir, node, 'dm', 'name'));
    if (name === undefined || name === opts.exclude) continue;
    const known = holders.find((h) => h.kind !== 'mount' && h.name === name);
    if (known?.kind === 'dm-table') known.node = node;
    else if (!known) holders.push({ kind: 'dm-table', name, node });
  }
  for (const m of mountsOf(dev, opts.mountinfo)) holders.push({ kind: 'mount', ...m });
  return holders;
}

function describe(h: Holder): string {
  switch (h.kind) {
    case 'dm-by-path':
      return `${h.target} device '${h.name}' opened it by path (${h.path}) and holds it exclusively`;
    case 'dm-table':
      return `the table of dm device '${h.name}'${h.node ? ` (${h.node})` : ''} uses it`;
    case 'mount':
      return `it is mounted on ${h.mountPoint} (${h.fsType})`;
  }
}

/**
 * One line for a table load refused with EBUSY: for each device the table
 * names, who holds it. Holders that block a table (by-path openers, mounts)
 * come first; when none shows, the line says something else holds one.
 */
export function explainBusyTable(dm: DmTablesView | undefined, name: string, targets: readonly TableTarget[], opts: HolderPaths = {}): string {
  const devices = tableDevices(targets);
  const head = `device-mapper refused the table for '${name}' (EBUSY: a device it names is held)`;
  if (devices.length === 0) return `${head}; its parameters name no block device we can look up`;
  const tables = dm ? liveTables(dm, name) : [];
  const blocking: string[] = [];
  const sharing: string[] = [];
  for (const { word, dev } of devices) {
    const hs = holdersOf(dev, tables, { ...opts, exclude: name });
    const strong = hs.filter((h) => h.kind !== 'dm-table');
    const weak = hs.filter((h) => h.kind === 'dm-table');
    if (strong.length > 0) blocking.push(`${word}: ${strong.map(describe).join(', ')}`);
    if (weak.length > 0) sharing.push(`${word}: ${weak.map(describe).join(', ')}`);
  }
  if (blocking.length > 0) return `${head}: ${[...blocking, ...sharing].join('; ')}`;
  const words = devices.map((d) => d.word).join(', ');
  const also = sharing.length > 0 ? ` (device-mapper tables using ${devices.length === 1 ? 'it' : 'them'} do not block a load: ${sharing.join('; ')})` : '';
  return `${head}: ${words} ${devices.length === 1 ? 'is' : 'are'} not opened by path by a dm target nor mounted, so something else holds ${devices.length === 1 ? 'it' : 'one'} open exclusively (O_EXCL)${also}`;
}
