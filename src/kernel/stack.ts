/**
 * The usual kernel test stack, built and torn down in one call each:
 *
 *   backing files -> loop devices -> bad-sector layer -> remap target
 *
 * - backing files: created sparse (or existing ones used as they are);
 * - loop devices: one for main, one for spare, at the stack's logical block size;
 * - bad-sector layer on main: dm-dust when the kernel has it (reads of a listed
 *   block fail with EIO; a write to it goes through and takes it off the list,
 *   as on a disk that reallocates on write), else dm-linear with dm-error
 *   segments over the bad sectors (reads and writes there always fail);
 * - the remap target (`dm-remap-v4 <bad layer> <spare loop>`) when the kernel
 *   has that target type. When it does not, the stack ends at the bad-sector
 *   layer and the state says so (`remap.present: false` with the reason); the
 *   spare loop device is still attached, so the userspace model can run on
 *   top of the kernel's bad-sector layer and the spare.
 *
 * The state is plain JSON (saveStackState / loadStackState), so another
 * process can add, remove and list bad sectors of a live stack or tear it
 * down. It records the identity of everything stack up made (dm UUIDs, loop
 * and file inodes: stack-identity.ts); teardown touches only what the state
 * names and still carries that identity, and is idempotent. Without the
 * state, findStackLeftovers / cleanStack find and remove what a stack of a
 * given name left: its dm devices by name (those with its UUID), its backing
 * files and the loop devices on them.
 *
 * All calls are synchronous and need root and a kernel with device-mapper.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SECTOR_SIZE } from '../block/device.js';
import { describeFsError } from '../block/file-device.js';
import { v4MinSpare } from '../metadata/min-spare.js';
import { DmControl, DmError, DmUnavailableError } from './dm-control.js';
import { type DmTargetSpec, formatTargetLine } from './dm-ioctl-codec.js';
import { attachLoop, detachLoop, listLoops, loopDeviceInfo, LoopError } from './loop.js';
import { isStackUuid, newStackUuidStem, observeLoop, observeStack, planTeardown, type SeenLoop } from './stack-identity.js';
import { type FileId, fileIdOf } from '../util/file-identity.js';
import { createSparseFile } from '../block/sparse-file.js';
import { RemapsimError } from '../util/errors.js';

const ENXIO = 6;

/** A backing device: a new sparse file of `bytes`, or an existing file (or block device) used as it is. */
export type StackBacking = { bytes: number } | { file: string };

export interface StackSpec {
  /** Prefix of the dm device names (`<name>-bad`, `<name>-remap`) and of created files: 1..64 of [A-Za-z0-9._-], starting with a letter or digit. */
  name: string;
  main: StackBacking;
  /** The remap target's spare device. Default: a new file of 1/8 of main (at least 8 MiB). */
  spare?: StackBacking;
  /** Where new backing files go (default: os.tmpdir()). */
  dir?: string;
  /** Logical block size of the loop devices, and so of the whole stack (default 512). */
  logicalBlockSize?: 512 | 4096;
  /** Bad sectors of main, in 512-byte sectors. */
  badSectors?: readonly number[];
  /** 'auto' (default): dust when the kernel has it, else linear+error. */
  badLayer?: 'auto' | 'dust' | 'linear-error';
  /** dm-dust block size in bytes: a power of two >= the logical block size (default: the logical block size). */
  dustBlockSize?: number;
  /** Remap target type to put on top (default 'dm-remap-v4'); null for none. */
  remapTarget?: string | null;
  /** LO_FLAGS_DIRECT_IO on the loop devices (default false). */
  directIo?: boolean;
}

export type StackRole = 'main' | 'spare';

/** The state format `stack up` writes: 2 records identities (see stack-identity.ts); 1 (older) does not, and is still read. */
export const STACK_STATE_VERSION = 2;

export interface StackState {
  version: 1 | 2;
  name: string;
  createdAt: string;
  logicalBlockSize: 512 | 4096;
  /** dev and ino (version 2): the file's identity when stack up created or opened it. */
  files: Array<{ role: StackRole; path: string; bytes: number; created: boolean; dev?: number; ino?: number }>;
  /** backingDev and backingIno (version 2): the identity of the file the loop device was attached to. */
  loops: Array<{
    role: StackRole;
    device: string;
    number: number;
    major: number;
    minor: number;
    backingFile: string;
    backingDev?: number;
    backingIno?: number;
  }>;
  /** Bottom-up: the bad-sector layer first, the remap target (if any) last. uuid (version 2): the one stack up set at create. */
  devices: Array<{ role: 'bad' | 'remap'; name: string; path: string; major: number; minor: number; sectors: number; table: string[]; uuid?: string }>;
  badLayer: { kind: 'dust'; blockSize: number } | { kind: 'linear-error' };
  /** Every bad sector given so far, sorted. With dust, a write may have taken some off the kernel's list since. */
  badSectors: number[];
  remap: { target: string | null; present: boolean; version?: string; reason?: string };
  /** The device to run I/O on: the remap target when present, else the bad-sector layer. */
  top: string;
  /** Size of `top` in 512-byte sectors. */
  sectors: number;
  /** The spare loop device, for a userspace remap target on top of `top`. */
  spareDevice: string;
  notes: string[];
}

export interface TeardownReport {
  removedDevices: string[];
  detachedLoops: string[];
  removedFiles: string[];
  /** Things named in the state that were already gone (not an error). */
  alreadyGone: string[];
}

/** A stack that could not be built, changed or fully torn down; the message says what and why. */
export class StackError extends RemapsimError {
  override readonly name = 'StackError';
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MiB = 1 << 20;

// ------------------------------------------------------------------ pure parts

function checkBacking(b: StackBacking | undefined, field: string, lbs: number): void {
  if (b === undefined) return;
  if ('bytes' in b) {
    if (!Number.isSafeInteger(b.bytes) || b.bytes < lbs || b.bytes % lbs !== 0) {
      throw new StackError(`${field}.bytes must be a multiple of the ${lbs}-byte logical block size in ${lbs}..${Number.MAX_SAFE_INTEGER}, got ${b.bytes}`);
    }
  } else if (typeof b.file !== 'string' || b.file === '') {
    throw new StackError(`${field}.file must be a path, got ${JSON.stringify(b.file)}`);
  }
}

/** Checks a spec; throws StackError naming the field and the allowed values. */
export function checkStackSpec(spec: StackSpec): void {
  if (typeof spec.name !== 'string' || !NAME_RE.test(spec.name)) {
    throw new StackError(`name must be 1..64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit, got ${JSON.stringify(spec.name)}`);
  }
  const lbs = spec.logicalBlockSize ?? 512;
  if (lbs !== 512 && lbs !== 4096) throw new StackError(`logicalBlockSize must be 512 or 4096, got ${lbs}`);
  if (!spec.main || typeof spec.main !== 'object') throw new StackError('main must be { bytes } or { file }');
  checkBacking(spec.main, 'main', lbs);
  checkBacking(spec.spare, 'spare', lbs);
  const layer = spec.badLayer ?? 'auto';
  if (!['auto', 'dust', 'linear-error'].includes(layer))
    throw new StackError(`badLayer must be 'auto', 'dust' or 'linear-error', got ${JSON.stringify(layer)}`);
  const dbs = spec.dustBlockSize ?? lbs;
  if (!Number.isInteger(dbs) || dbs < lbs || dbs > 1 << 30 || (dbs & (dbs - 1)) !== 0) {
    throw new StackError(`dustBlockSize must be a power of two from the logical block size (${lbs}) to 1073741824, got ${dbs}`);
  }
  for (const s of spec.badSectors ?? []) {
    if (!Number.isSafeInteger(s) || s < 0) throw new StackError(`badSectors must hold sector numbers in 0..${Number.MAX_SAFE_INTEGER}, got ${s}`);
  }
  if (spec.remapTarget !== undefined && spec.remapTarget !== null && !/^[A-Za-z0-9_-]{1,15}$/.test(spec.remapTarget)) {
    throw new StackError(`remapTarget must be a target type name of 1..15 characters, or null, got ${JSON.stringify(spec.remapTarget)}`);
  }
}

/** Sorted, de-duplicated bad sectors, checked against the device size. */
function normaliseSectors(sectors: readonly number[], deviceSectors: number): number[] {
  for (const s of sectors) {
    if (!Number.isSafeInteger(s) || s < 0 || s >= deviceSectors) throw new StackError(`bad sector ${s} is out of range 0..${deviceSectors - 1}`);
  }
  return [...new Set(sectors)].sort((a, b) => a - b);
}

/**
 * The dm-linear + dm-error table over `device` (`sectors` long) that fails
 * every logical block holding a bad sector. Boundaries are on logical block
 * boundaries (the kernel refuses a table whose targets split a logical block).
 */
export function linearErrorTable(device: string, sectors: number, badSectors: readonly number[], logicalBlockSize: number): DmTargetSpec[] {
  const spb = logicalBlockSize / SECTOR_SIZE;
  const ranges: Array<[number, number]> = [];
  for (const s of [...badSectors].sort((a, b) => a - b)) {
    const first = s - (s % spb);
    const last = ranges[ranges.length - 1];
    if (last && first <= last[1]) last[1] = Math.max(last[1], first + spb);
    else ranges.push([first, first + spb]);
  }
  const out: DmTargetSpec[] = [];
  let at = 0;
  for (const [a, b] of ranges) {
    if (a > at) out.push({ start: at, length: a - at, type: 'linear', params: `${device} ${at}` });
    out.push({ start: a, length: b - a, type: 'error', params: '' });
    at = b;
  }
  if (at < sectors) out.push({ start: at, length: sectors - at, type: 'linear', params: `${device} ${at}` });
  return out;
}

/** The dust blocks (numbered from the start of the underlying device, as dm-dust messages number them) that hold these sectors. */
export function dustBlocksOf(sectors: readonly number[], dustBlockSize: number): number[] {
  const spb = dustBlockSize / SECTOR_SIZE;
  return [...new Set(sectors.map((s) => Math.floor(s / spb)))].sort((a, b) => a - b);
}

// ------------------------------------------------------------------ state files

export function saveStackState(file: string, state: StackState): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/** Reads a state file written by saveStackState; a file that is not one is refused with the field at fault. */
export function loadStackState(file: string): StackState {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new StackError(`cannot read stack state ${file}: ${describeFsError(err)} (the file \`remapsim stack up --state\` wrote)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StackError(`${file} is not a remapsim stack state: not JSON (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
  const s = raw as Partial<StackState>;
  const bad = (field: string): never => {
    throw new StackError(`${file} is not a remapsim stack state: field '${field}' is missing or malformed`);
  };
  if (!s || typeof s !== 'object') bad('(root)');
  if (s.version !== 1 && s.version !== STACK_STATE_VERSION) bad('version');
  if (typeof s.name !== 'string' || !NAME_RE.test(s.name)) bad('name');
  // version 2 must carry the identities teardown checks; version 1 has none (teardown then touches nothing it names)
  const v2 = s.version === STACK_STATE_VERSION;
  const id = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!Array.isArray(s.files) || s.files.some((f) => typeof f?.path !== 'string' || typeof f.created !== 'boolean' || (v2 && (!id(f.dev) || !id(f.ino)))))
    bad('files');
  if (
    !Array.isArray(s.loops) ||
    s.loops.some(
      (l) =>
        typeof l?.device !== 'string' ||
        !Number.isInteger(l.number) ||
        typeof l.backingFile !== 'string' ||
        !id(l.major) ||
        !id(l.minor) ||
        (v2 && (!id(l.backingDev) || !id(l.backingIno))),
    )
  ) {
    bad('loops');
  }
  if (!Array.isArray(s.devices) || s.devices.some((d) => typeof d?.name !== 'string' || (v2 && (typeof d.uuid !== 'string' || !isStackUuid(d.uuid, s.name!)))))
    bad('devices');
  if (!s.badLayer || (s.badLayer.kind !== 'dust' && s.badLayer.kind !== 'linear-error')) bad('badLayer');
  if (!Array.isArray(s.badSectors)) bad('badSectors');
  if (s.logicalBlockSize !== 512 && s.logicalBlockSize !== 4096) bad('logicalBlockSize');
  return s as StackState;
}

// ------------------------------------------------------------------ build

function withControl<T>(control: DmControl | undefined, fn: (dm: DmControl) => T): T {
  const dm = control ?? DmControl.open();
  try {
    return fn(dm);
  } finally {
    if (!control) dm.close();
  }
}

function fileBytes(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (err) {
    throw new StackError(`cannot use ${p} as a backing file: ${describeFsError(err)}`);
  }
  if (st.isFile()) return st.size;
  throw new StackError(`${p} is not a regular file; give block devices to dm directly instead of a loop device`);
}

/**
 * Builds the stack. On any failure, everything made so far is torn down
 * again and the error is rethrown (as StackError where it is ours).
 */
export function buildKernelStack(spec: StackSpec, opts: { control?: DmControl } = {}): StackState {
  checkStackSpec(spec);
  const lbs = spec.logicalBlockSize ?? 512;
  return withControl(opts.control, (dm) => {
    const badName = `${spec.name}-bad`;
    const remapName = `${spec.name}-remap`;
    const dir = spec.dir ?? os.tmpdir();
    const creates = (['main', 'spare'] as const).filter((r) => (r === 'spare' ? spec.spare === undefined || 'bytes' in spec.spare : 'bytes' in spec.main));
    const left = findStackLeftovers(spec.name, { dir, control: dm, roles: creates });
    if (leftoverCount(left) > 0) {
      throw new StackError(
        `stack '${spec.name}' looks up already: ${describeLeftovers(left)}. Tear it down with \`remapsim stack down STATE\`, or remove exactly these with \`remapsim stack clean ${spec.name}${spec.dir === undefined ? '' : ` --dir ${spec.dir}`}\``,
      );
    }
    const remapTarget = spec.remapTarget === undefined ? 'dm-remap-v4' : spec.remapTarget;
    const hasDust = dm.targetVersion('dust') !== undefined;
    const wanted = spec.badLayer ?? 'auto';
    if (wanted === 'dust' && !hasDust) throw new StackError("badLayer 'dust' was asked for, but this kernel has no dm-dust target (CONFIG_DM_DUST)");
    const kind: 'dust' | 'linear-error' = wanted === 'auto' ? (hasDust ? 'dust' : 'linear-error') : wanted;
    const dustBlockSize = spec.dustBlockSize ?? lbs;

    const uuidStem = newStackUuidStem(spec.name);
    const state: StackState = {
      version: STACK_STATE_VERSION,
      name: spec.name,
      createdAt: new Date().toISOString(),
      logicalBlockSize: lbs,
      files: [],
      loops: [],
      devices: [],
      badLayer: kind === 'dust' ? { kind, blockSize: dustBlockSize } : { kind },
      badSectors: [],
      remap: { target: remapTarget, present: false },
      top: '',
      sectors: 0,
      spareDevice: '',
      notes: [],
    };
    try {
      const backing = (role: StackRole, b: StackBacking): string => {
        if ('file' in b) {
          const p = path.resolve(b.file);
          const bytes = fileBytes(p);
          state.files.push({ role, path: p, bytes, created: false, ...fileIdOf(p) });
          return p;
        }
        const p = path.join(dir, `${spec.name}-${role}.img`);
        if (fs.existsSync(p)) throw new StackError(`backing file ${p} already exists: remove it, or pass it as ${role}: { file } to use it`);
        try {
          createSparseFile(p, b.bytes, `${role} backing file`);
        } catch (err) {
          throw new StackError((err as Error).message);
        }
        state.files.push({ role, path: p, bytes: b.bytes, created: true, ...fileIdOf(p) });
        return p;
      };
      const attach = (role: StackRole, file: string): { device: string; sectors: number } => {
        const att = attachLoop(file, { blockSize: lbs, direct: spec.directIo });
        const seen = observeLoop(att.number);
        const info = loopDeviceInfo(att.number);
        if (!seen || !info) throw new StackError(`${att.device} vanished right after it was attached`);
        state.loops.push({
          role,
          device: att.device,
          number: att.number,
          major: seen.major,
          minor: seen.minor,
          backingFile: seen.backingFile,
          backingDev: seen.backingDev,
          backingIno: seen.backingIno,
        });
        return { device: att.device, sectors: info.sectors - (info.sectors % (lbs / SECTOR_SIZE)) };
      };

      const mainFile = backing('main', spec.main);
      const main = attach('main', mainFile);
      if (main.sectors === 0) throw new StackError(`main backing ${mainFile} is smaller than one ${lbs}-byte block`);
      const defaultSpare = Math.max(8 * MiB, Math.ceil((main.sectors * SECTOR_SIZE) / 8 / lbs) * lbs);
      const spareFile = backing('spare', spec.spare ?? { bytes: defaultSpare });
      const spare = attach('spare', spareFile);
      state.spareDevice = spare.device;

      const bad = normaliseSectors(spec.badSectors ?? [], main.sectors);
      state.badSectors = bad;
      const badTable =
        kind === 'dust'
          ? [{ start: 0, length: main.sectors, type: 'dust', params: `${main.device} 0 ${dustBlockSize}` }]
          : linearErrorTable(main.device, main.sectors, bad, lbs);
      const badInfo = createDevice(dm, badName, badTable, state, 'bad', `${uuidStem}-bad`);
      if (kind === 'dust') {
        for (const b of dustBlocksOf(bad, dustBlockSize)) dm.message(badName, 0, `addbadblock ${b}`);
        dm.message(badName, 0, 'enable');
        state.notes.push(
          `bad-sector layer: dm-dust, ${dustBlockSize}-byte blocks; reads of a listed block fail with EIO, a write to it succeeds and takes it off the list`,
        );
      } else {
        state.notes.push(
          hasDust
            ? 'bad-sector layer: dm-linear with dm-error segments (asked for); reads and writes of a bad logical block always fail with EIO'
            : 'bad-sector layer: dm-linear with dm-error segments (this kernel has no dm-dust); reads and writes of a bad logical block always fail with EIO',
        );
      }
      state.top = badInfo.path;
      state.sectors = main.sectors;

      if (remapTarget === null) {
        state.remap = { target: null, present: false, reason: 'no remap target was asked for' };
        state.notes.push('the stack ends at the bad-sector layer (no remap target asked for)');
      } else {
        const v = dm.targetVersion(remapTarget);
        if (!v) {
          state.remap = { target: remapTarget, present: false, reason: `target type '${remapTarget}' is not loaded in this kernel (and could not be loaded)` };
          state.notes.push(
            `the stack ends at the bad-sector layer: the kernel has no '${remapTarget}' target; ${spare.device} is attached for a userspace remap target`,
          );
        } else {
          if (remapTarget === 'dm-remap-v4') {
            const min = v4MinSpare(main.sectors, lbs);
            if (spare.sectors < min)
              throw new StackError(`spare is ${spare.sectors} sectors; dm-remap-v4 needs at least ${min} for a main device of ${main.sectors} sectors`);
          }
          const table = [{ start: 0, length: main.sectors, type: remapTarget, params: `${badInfo.path} ${spare.device}` }];
          const top = createDevice(dm, remapName, table, state, 'remap', `${uuidStem}-remap`);
          state.remap = { target: remapTarget, present: true, version: v.version.join('.') };
          state.top = top.path;
          state.sectors = top.sectors;
        }
      }
      return state;
    } catch (err) {
      try {
        teardownKernelStack(state, { control: dm });
      } catch (cleanupErr) {
        const why = err instanceof Error ? err.message : String(err);
        throw new StackError(`${why}; cleaning up after it also failed: ${(cleanupErr as Error).message}`);
      }
      throw err;
    }
  });
}

function createDevice(
  dm: DmControl,
  name: string,
  table: DmTargetSpec[],
  state: StackState,
  role: 'bad' | 'remap',
  uuid: string,
): { path: string; sectors: number } {
  const info = dm.create(name, { uuid });
  const p = `/dev/mapper/${name}`;
  const sectors = table.reduce((a, t) => Math.max(a, t.start + t.length), 0);
  state.devices.push({ role, name, path: p, major: info.major, minor: info.minor, sectors, table: table.map(formatTargetLine), uuid });
  dm.load(name, table);
  dm.resume(name);
  return { path: p, sectors };
}

// ------------------------------------------------------------------ live changes

function badDevice(state: StackState): StackState['devices'][number] {
  const dev = state.devices.find((d) => d.role === 'bad');
  if (!dev) throw new StackError(`stack '${state.name}' has no bad-sector layer`);
  return dev;
}

const DUST_FOUND = /^dust_query_block: block \d+ found in badblocklist$/;

/** Whether dm-dust lists `block` now (a write to a listed block takes it off). */
function dustHas(dm: DmControl, device: string, block: number): boolean {
  return DUST_FOUND.test(dm.message(device, 0, `queryblock ${block}`));
}

/**
 * Puts a new linear+error table live: load, suspend, resume (I/O in flight
 * waits, none fails). A resume that fails drops the new table and resumes
 * the old one: a device left suspended would hang every I/O on the stack.
 */
function swapLinearErrorTable(dm: DmControl, state: StackState, sectors: readonly number[]): StackState {
  const dev = badDevice(state);
  const mainLoop = state.loops.find((l) => l.role === 'main');
  if (!mainLoop) throw new StackError(`stack '${state.name}' has no main loop device`);
  const table = linearErrorTable(mainLoop.device, dev.sectors, sectors, state.logicalBlockSize);
  dm.load(dev.name, table);
  dm.suspend(dev.name);
  try {
    dm.resume(dev.name);
  } catch (err) {
    try {
      dm.clear(dev.name);
      dm.resume(dev.name);
    } catch {
      // report the first failure
    }
    throw err;
  }
  const devices = state.devices.map((d) => (d === dev ? { ...d, table: table.map(formatTargetLine) } : d));
  return { ...state, devices, badSectors: [...sectors] };
}

/**
 * Adds bad sectors to a live stack and returns the new state (save it again
 * if another process will use it). dm-dust gets `addbadblock` messages for
 * the blocks not yet listed; the linear+error layer gets a new table.
 */
export function addBadSectors(state: StackState, sectors: readonly number[], opts: { control?: DmControl } = {}): StackState {
  const dev = badDevice(state);
  const added = normaliseSectors(sectors, dev.sectors);
  const all = normaliseSectors([...state.badSectors, ...added], dev.sectors);
  return withControl(opts.control, (dm) => {
    if (state.badLayer.kind === 'dust') {
      for (const b of dustBlocksOf(added, state.badLayer.blockSize)) {
        if (!dustHas(dm, dev.name, b)) dm.message(dev.name, 0, `addbadblock ${b}`);
      }
      return { ...state, badSectors: all };
    }
    return swapLinearErrorTable(dm, state, all);
  });
}

/**
 * Takes sectors off a live stack's bad list and returns the new state.
 * dm-dust gets `removebadblock` for each block that no remaining bad sector
 * shares and that is still listed (a write may have taken it off already);
 * the linear+error layer gets a new table without them. A sector that is
 * neither in the state nor failed by the kernel is refused before anything
 * changes.
 */
export function removeBadSectors(state: StackState, sectors: readonly number[], opts: { control?: DmControl } = {}): StackState {
  const dev = badDevice(state);
  const removing = normaliseSectors(sectors, dev.sectors);
  const gone = new Set(removing);
  const remaining = state.badSectors.filter((s) => !gone.has(s));
  return withControl(opts.control, (dm) => {
    const layer = state.badLayer;
    if (layer.kind === 'dust') {
      const spb = layer.blockSize / SECTOR_SIZE;
      const listed = new Map(dustBlocksOf(removing, layer.blockSize).map((b) => [b, dustHas(dm, dev.name, b)]));
      const unknown = removing.filter((s) => !state.badSectors.includes(s) && !listed.get(Math.floor(s / spb)));
      if (unknown.length > 0) throw notBad(state, unknown);
      const kept = new Set(dustBlocksOf(remaining, layer.blockSize));
      for (const [b, isListed] of listed) if (isListed && !kept.has(b)) dm.message(dev.name, 0, `removebadblock ${b}`);
      return { ...state, badSectors: remaining };
    }
    const unknown = removing.filter((s) => !state.badSectors.includes(s));
    if (unknown.length > 0) throw notBad(state, unknown);
    return swapLinearErrorTable(dm, state, remaining);
  });
}

function notBad(state: StackState, sectors: number[]): StackError {
  const list = state.badSectors.length === 0 ? 'it has none' : `its bad sectors: ${abbreviate(state.badSectors)}`;
  return new StackError(
    `${sectors.length === 1 ? 'sector' : 'sectors'} ${abbreviate(sectors)} ${sectors.length === 1 ? 'is' : 'are'} not bad on stack '${state.name}' (${list})`,
  );
}

function abbreviate(xs: readonly number[], max = 20): string {
  return xs.length <= max ? xs.join(', ') : `${xs.slice(0, max).join(', ')} and ${xs.length - max} more`;
}

/** An inclusive range of 512-byte sectors. */
export interface SectorRange {
  first: number;
  last: number;
}

export interface BadSectorListing {
  name: string;
  /** The bad-sector layer's dm device. */
  device: string;
  layer: 'dust' | 'linear-error';
  /** Sectors per block of the layer: a dust block, or a logical block for linear+error (the kernel fails whole blocks). */
  blockSectors: number;
  /** The bad sectors the state file holds. */
  state: number[];
  /** What the kernel fails now (dust's list, or the error segments of the live table); null when dm-dust does not say (a kernel that logs the list instead). */
  kernel: SectorRange[] | null;
  /** State sectors the kernel does not fail now (dust: a write to the block took it off the list). */
  onlyInState: number[];
  /** Kernel ranges holding no state sector (added behind the state's back, e.g. with `dm message`). */
  onlyInKernel: SectorRange[];
}

/** Adjacent or overlapping ranges merged, sorted. */
function mergeRanges(ranges: SectorRange[]): SectorRange[] {
  const out: SectorRange[] = [];
  for (const r of [...ranges].sort((a, b) => a.first - b.first)) {
    const last = out[out.length - 1];
    if (last && r.first <= last.last + 1) last.last = Math.max(last.last, r.last);
    else out.push({ ...r });
  }
  return out;
}

/** dm-dust's `listbadblocks` reply as block numbers; null for a reply that is not a list. */
export function parseDustList(text: string): number[] | null {
  const t = text.trim();
  if (t === '' || /^No blocks in badblocklist$/.test(t)) return [];
  const words = t.split(/\s+/);
  return words.every((w) => /^\d+$/.test(w)) ? words.map(Number) : null;
}

/** What the kernel's bad-sector layer fails now, next to what the state says, and where they differ. */
export function listBadSectors(state: StackState, opts: { control?: DmControl } = {}): BadSectorListing {
  const dev = badDevice(state);
  const layer = state.badLayer;
  const blockSectors = (layer.kind === 'dust' ? layer.blockSize : state.logicalBlockSize) / SECTOR_SIZE;
  const kernel = withControl(opts.control, (dm): SectorRange[] | null => {
    if (layer.kind === 'linear-error') {
      return mergeRanges(
        dm
          .table(dev.name)
          .filter((t) => t.type === 'error')
          .map((t) => ({ first: t.start, last: t.start + t.length - 1 })),
      );
    }
    const reply = dm.messageReply(dev.name, 0, 'listbadblocks');
    const blocks = reply.replied ? parseDustList(reply.text) : null;
    return blocks === null ? null : mergeRanges(blocks.map((b) => ({ first: b * blockSectors, last: (b + 1) * blockSectors - 1 })));
  });
  const inside = (r: SectorRange, s: number): boolean => r.first <= s && s <= r.last;
  return {
    name: state.name,
    device: dev.name,
    layer: layer.kind,
    blockSectors,
    state: [...state.badSectors],
    kernel,
    onlyInState: kernel === null ? [] : state.badSectors.filter((s) => !kernel.some((r) => inside(r, s))),
    onlyInKernel: kernel === null ? [] : kernel.filter((r) => !state.badSectors.some((s) => inside(r, s))),
  };
}

// ------------------------------------------------------------------ leftovers

/** The backing files `stack up` creates for a stack name in `dir`. */
export function stackFilePath(name: string, dir: string, role: StackRole): string {
  return path.join(path.resolve(dir), `${name}-${role}.img`);
}

export interface StackLeftovers {
  name: string;
  /** dm devices `<name>-remap`, `<name>-bad` that exist, top first. */
  devices: string[];
  /** Loop devices backed by one of the stack's files (also by one deleted since). */
  loops: Array<{ device: string; number: number; backingFile: string }>;
  /** The stack's backing files that exist. */
  files: string[];
  /** Why dm devices were not looked for (a kernel without device-mapper has none). */
  noDeviceMapper?: string;
}

export function leftoverCount(l: StackLeftovers): number {
  return l.devices.length + l.loops.length + l.files.length;
}

/** "dm devices a-remap, a-bad; loop devices /dev/loop3 (on /tmp/a-main.img); files /tmp/a-main.img" */
export function describeLeftovers(l: StackLeftovers): string {
  const parts: string[] = [];
  if (l.devices.length > 0) parts.push(`dm device${l.devices.length > 1 ? 's' : ''} ${l.devices.join(', ')}`);
  if (l.loops.length > 0) parts.push(`loop device${l.loops.length > 1 ? 's' : ''} ${l.loops.map((x) => `${x.device} (on ${x.backingFile})`).join(', ')}`);
  if (l.files.length > 0) parts.push(`file${l.files.length > 1 ? 's' : ''} ${l.files.join(', ')}`);
  return parts.length === 0 ? 'nothing' : parts.join('; ');
}

/** `dir` with symlinks resolved, as sysfs names a loop device's backing file. */
function realDir(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

/**
 * What a stack named `name` left behind: its dm devices, its backing files in
 * `dir` (default: the system temp directory) and the loop devices on them.
 * `roles` limits the files (and their loops) to those roles.
 */
export function findStackLeftovers(name: string, opts: { dir?: string; control?: DmControl; roles?: readonly StackRole[] } = {}): StackLeftovers {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new StackError(`name must be 1..64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit, got ${JSON.stringify(name)}`);
  }
  const dir = realDir(opts.dir ?? os.tmpdir());
  const files = (opts.roles ?? ['main', 'spare']).map((r) => stackFilePath(name, dir, r));
  const out: StackLeftovers = { name, devices: [], loops: [], files: files.filter((f) => fs.existsSync(f)) };
  for (const l of listLoops()) {
    if (files.some((f) => sameBacking(l.backingFile, f))) out.loops.push({ device: l.device, number: l.number, backingFile: l.backingFile });
  }
  let dm = opts.control;
  try {
    dm ??= DmControl.open();
  } catch (err) {
    if (!(err instanceof DmUnavailableError)) throw err;
    out.noDeviceMapper = err.message;
    return out;
  }
  try {
    out.devices = [`${name}-remap`, `${name}-bad`].filter((n) => dm.exists(n));
  } finally {
    if (!opts.control) dm.close();
  }
  return out;
}

export interface CleanReport {
  removedDevices: string[];
  detachedLoops: string[];
  removedFiles: string[];
  /** Set when the kernel has no device-mapper (so no dm devices to remove). */
  noDeviceMapper?: string;
}

/**
 * What of a stack's leftovers `stack clean` may remove, without a state to
 * check against: a dm device only when its UUID is one `stack up` gives a
 * stack of this name; a loop device only when its backing file is the
 * stack's file itself (same inode; a loop on a deleted file of that name
 * cannot be checked and goes by its name, as the files do). Pure.
 */
export function planClean(
  left: StackLeftovers,
  seen: { devices: Record<string, { uuid: string } | 'gone'>; loops: Record<number, SeenLoop | 'gone'>; files: Record<string, FileId | 'gone'> },
): {
  devices: string[];
  loops: StackLeftovers['loops'];
  files: string[];
  refused: string[];
} {
  const out = { devices: [] as string[], loops: [] as StackLeftovers['loops'], files: [] as string[], refused: [] as string[] };
  for (const d of left.devices) {
    const now = seen.devices[d] ?? 'gone';
    if (now === 'gone') continue;
    if (isStackUuid(now.uuid, left.name)) out.devices.push(d);
    else out.refused.push(`dm device ${d} (${now.uuid === '' ? 'no UUID' : `UUID '${now.uuid}'`}: not one remapsim stack up gives stack '${left.name}')`);
  }
  for (const l of left.loops) {
    const now = seen.loops[l.number] ?? 'gone';
    if (now === 'gone') continue;
    const file = seen.files[now.backingFile] ?? 'gone';
    if (file !== 'gone' && (file.dev !== now.backingDev || file.ino !== now.backingIno)) {
      out.refused.push(`loop device ${l.device} (backed by inode ${now.backingIno}, not by ${now.backingFile}, inode ${file.ino})`);
    } else out.loops.push(l);
  }
  for (const f of left.files) if ((seen.files[f] ?? 'gone') !== 'gone') out.files.push(f);
  return out;
}

/**
 * Removes what findStackLeftovers finds and planClean allows: the dm devices
 * (top first), the loop devices on the stack's files, then the files.
 * Throws a StackError naming what it left alone or could not remove, after
 * trying all.
 */
export function cleanStack(name: string, opts: { dir?: string; control?: DmControl } = {}): CleanReport {
  const left = findStackLeftovers(name, opts);
  const report: CleanReport = { removedDevices: [], detachedLoops: [], removedFiles: [] };
  if (left.noDeviceMapper) report.noDeviceMapper = left.noDeviceMapper;
  const seen: Parameters<typeof planClean>[1] = { devices: {}, loops: {}, files: {} };
  if (left.devices.length > 0) {
    withControl(opts.control, (dm) => {
      for (const d of left.devices) {
        try {
          seen.devices[d] = { uuid: dm.info(d).uuid };
        } catch (err) {
          if (!(err instanceof DmError && err.errno === ENXIO)) throw err;
        }
      }
    });
  }
  for (const l of left.loops) {
    const now = observeLoop(l.number);
    if (now) {
      seen.loops[l.number] = now;
      seen.files[now.backingFile] = fileIdOf(now.backingFile) ?? 'gone';
    }
  }
  for (const f of left.files) seen.files[f] = fileIdOf(f) ?? 'gone';
  const plan = planClean(left, seen);
  const failures: string[] = [];
  if (plan.devices.length > 0) {
    withControl(opts.control, (dm) => {
      for (const d of plan.devices) {
        try {
          dm.remove(d, { retries: 10, retryDelayMs: 100 });
          report.removedDevices.push(d);
        } catch (err) {
          if (!(err instanceof DmError && err.errno === ENXIO)) failures.push(`${d}: ${(err as Error).message}`);
        }
      }
    });
  }
  for (const l of plan.loops) {
    try {
      if (detachLoop(l.number) === 'deferred') failures.push(`${l.device} is still open somewhere: the kernel detaches it on last close`);
      else report.detachedLoops.push(l.device);
    } catch (err) {
      if (!(err instanceof LoopError && err.errno === ENXIO)) failures.push(`${l.device}: ${(err as Error).message}`);
    }
  }
  for (const f of plan.files) {
    try {
      fs.unlinkSync(f);
      report.removedFiles.push(f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failures.push(`${f}: ${(err as Error).message}`);
    }
  }
  const problems = [...(plan.refused.length > 0 ? [`left alone, not made by remapsim stack up: ${plan.refused.join(', ')}`] : []), ...failures];
  if (problems.length > 0) throw new StackError(`stack '${name}' is not fully cleaned up: ${problems.join('; ')}`);
  return report;
}

// ------------------------------------------------------------------ teardown

function sameBacking(sysfs: string, ours: string): boolean {
  return sysfs === ours || sysfs === `${ours} (deleted)`;
}

/**
 * Removes the dm devices (top first), detaches the loop devices and deletes
 * the backing files the stack created (unless keepFiles), each only while it
 * still carries the identity the state recorded (planTeardown); anything
 * already gone is fine. Throws a StackError naming what it left alone or
 * could not remove, after doing the rest.
 */
export function teardownKernelStack(state: StackState, opts: { control?: DmControl; keepFiles?: boolean } = {}): TeardownReport {
  const report: TeardownReport = { removedDevices: [], detachedLoops: [], removedFiles: [], alreadyGone: [] };
  const failures: string[] = [];
  let dm: DmControl | undefined = opts.control;
  let dmUnreachable: string | undefined;
  if (state.devices.length > 0 && !dm) {
    try {
      dm = DmControl.open();
    } catch (err) {
      dmUnreachable = (err as Error).message;
      failures.push(
        `cannot reach device-mapper to remove ${[...state.devices]
          .reverse()
          .map((d) => d.name)
          .join(', ')}: ${dmUnreachable}`,
      );
    }
  }
  try {
    const plan = planTeardown(state, observeStack(state, dm, dmUnreachable), { keepFiles: opts.keepFiles });
    report.alreadyGone.push(...plan.alreadyGone);
    for (const name of plan.removeDevices) {
      try {
        dm!.remove(name, { retries: 10, retryDelayMs: 100 });
        report.removedDevices.push(name);
      } catch (err) {
        if (err instanceof DmError && err.errno === ENXIO) report.alreadyGone.push(name);
        else failures.push(`${name}: ${(err as Error).message}`);
      }
    }
    for (const l of plan.detachLoops) {
      try {
        if (detachLoop(l.number) === 'deferred') failures.push(`${l.device} is still open somewhere: the kernel detaches it on last close`);
        else report.detachedLoops.push(l.device);
      } catch (err) {
        if (err instanceof LoopError && err.errno === ENXIO) report.alreadyGone.push(l.device);
        else failures.push(`${l.device}: ${(err as Error).message}`);
      }
    }
    for (const f of plan.removeFiles) {
      try {
        fs.unlinkSync(f);
        report.removedFiles.push(f);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') report.alreadyGone.push(f);
        else failures.push(`${f}: ${(err as Error).message}`);
      }
    }
    if (plan.refused.length > 0) {
      const why =
        state.version < STACK_STATE_VERSION ? ' (a version-1 state, written before stack up recorded identities: check each and remove it by hand)' : '';
      failures.unshift(`left alone, no longer what stack up made: ${plan.refused.join(', ')}${why}`);
    }
  } finally {
    if (dm && !opts.control) dm.close();
  }
  if (failures.length > 0) throw new StackError(`stack '${state.name}' is not fully torn down: ${failures.join('; ')}`);
  return report;
}
