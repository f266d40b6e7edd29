/**
 * What `stack up` made, told apart from what only has the same name or
 * number now. `stack up` records the identity of everything it creates:
 * each file's device and inode, each loop device's major:minor and its
 * backing file's device and inode (LOOP_GET_STATUS64), each dm device's UUID
 * (`remapsim-<name>-<random>-<role>`, set when it is created). Teardown looks
 * at what is there now (observeStack) and a pure plan (planTeardown) acts
 * only on what still matches; the rest is left alone and named.
 *
 * A version-1 state (written before identities were recorded) names things
 * it cannot vouch for: nothing it names that still exists is touched.
 *
 * This guards against a state that no longer describes the system (stale,
 * edited, hand-written, or version 1), not against one forged with the right
 * identities: writing those takes root, which can remove the devices anyway.
 */
import { randomBytes } from 'node:crypto';
import type { DmControl } from './dm-control.js';
import { DmError } from './dm-control.js';
import { LoopError, loopDeviceInfo, loopStatus } from './loop.js';
import { type FileId, fileIdOf } from '../util/file-identity.js';

const ENXIO = 6;

/** A new UUID stem for a stack's dm devices; each device's UUID is `<stem>-<role>`. */
export function newStackUuidStem(name: string): string {
  return `remapsim-${name}-${randomBytes(8).toString('hex')}`;
}

/** Whether `uuid` is one `stack up` gives a dm device of a stack called `name`. */
export function isStackUuid(uuid: string | undefined, name: string): boolean {
  if (uuid === undefined || !uuid.startsWith(`remapsim-${name}-`)) return false;
  return /^[0-9a-f]{16}-(bad|remap)$/.test(uuid.slice(`remapsim-${name}-`.length));
}

/** The parts of a stack state that teardown acts on (StackState has them all). */
export interface StackItems {
  version: number;
  name: string;
  files: ReadonlyArray<{ path: string; created: boolean; dev?: number; ino?: number }>;
  loops: ReadonlyArray<{ device: string; number: number; major: number; minor: number; backingFile: string; backingDev?: number; backingIno?: number }>;
  devices: ReadonlyArray<{ name: string; uuid?: string }>;
}

export interface SeenLoop {
  major: number;
  minor: number;
  backingFile: string;
  backingDev: number;
  backingIno: number;
}

/** What the system shows now for each thing a state names; 'gone' when it no longer exists. */
export interface StackObservation {
  /** Set when device-mapper could not be asked (then `devices` is empty). */
  dmUnreachable?: string;
  devices: Record<string, { uuid: string } | 'gone'>;
  loops: Record<number, SeenLoop | 'gone'>;
  files: Record<string, FileId | 'gone'>;
}

/** What one loop device is now: its numbers and its backing file's identity; undefined when it is not attached. */
export function observeLoop(n: number): SeenLoop | undefined {
  const info = loopDeviceInfo(n);
  if (!info) return undefined;
  try {
    const st = loopStatus(n);
    return { major: info.major, minor: info.minor, backingFile: info.backingFile, backingDev: st.device, backingIno: st.inode };
  } catch (err) {
    if (err instanceof LoopError && err.errno === ENXIO) return undefined; // detached meanwhile
    throw err;
  }
}

/** Looks at everything `items` names. `dm` undefined with `dmUnreachable`: device-mapper is not there. */
export function observeStack(items: StackItems, dm: DmControl | undefined, dmUnreachable?: string): StackObservation {
  const seen: StackObservation = { devices: {}, loops: {}, files: {} };
  if (dm === undefined) seen.dmUnreachable = dmUnreachable ?? 'device-mapper is not available';
  else {
    for (const d of items.devices) {
      try {
        seen.devices[d.name] = { uuid: dm.info(d.name).uuid };
      } catch (err) {
        if (!(err instanceof DmError && err.errno === ENXIO)) throw err;
        seen.devices[d.name] = 'gone';
      }
    }
  }
  for (const l of items.loops) seen.loops[l.number] = observeLoop(l.number) ?? 'gone';
  for (const f of items.files) seen.files[f.path] = fileIdOf(f.path) ?? 'gone';
  return seen;
}

export interface TeardownPlan {
  /** dm devices to remove, top first. */
  removeDevices: string[];
  detachLoops: Array<{ device: string; number: number }>;
  removeFiles: string[];
  alreadyGone: string[];
  /** What the state names that is there but not (or not provably) this stack's: left alone, one phrase each. */
  refused: string[];
}

const NO_IDENTITY = 'the state records no identity to check it by';

/**
 * Decides what a teardown may touch: only what still carries the identity
 * the state recorded. Pure: `seen` is what observeStack found.
 */
export function planTeardown(items: StackItems, seen: StackObservation, opts: { keepFiles?: boolean } = {}): TeardownPlan {
  const plan: TeardownPlan = { removeDevices: [], detachLoops: [], removeFiles: [], alreadyGone: [], refused: [] };
  const v1 = items.version < 2;
  if (seen.dmUnreachable === undefined) {
    for (const d of [...items.devices].reverse()) {
      const now = seen.devices[d.name] ?? 'gone';
      if (now === 'gone') plan.alreadyGone.push(d.name);
      else if (v1 || d.uuid === undefined) plan.refused.push(`dm device ${d.name} (${NO_IDENTITY})`);
      else if (now.uuid !== d.uuid)
        plan.refused.push(`dm device ${d.name} (its UUID is ${now.uuid === '' ? 'empty' : `'${now.uuid}'`}, not this stack's '${d.uuid}')`);
      else plan.removeDevices.push(d.name);
    }
  }
  for (const l of [...items.loops].reverse()) {
    const now = seen.loops[l.number] ?? 'gone';
    if (now === 'gone') plan.alreadyGone.push(l.device);
    else if (v1 || l.backingDev === undefined || l.backingIno === undefined) plan.refused.push(`loop device ${l.device} (${NO_IDENTITY})`);
    else if (now.major !== l.major || now.minor !== l.minor)
      plan.refused.push(`loop device ${l.device} (now ${now.major}:${now.minor}, not this stack's ${l.major}:${l.minor})`);
    else if (now.backingDev !== l.backingDev || now.backingIno !== l.backingIno) {
      plan.refused.push(
        `loop device ${l.device} (now backed by ${now.backingFile}, inode ${now.backingIno} on device ${now.backingDev}; this stack's was ${l.backingFile}, inode ${l.backingIno} on device ${l.backingDev})`,
      );
    } else plan.detachLoops.push({ device: l.device, number: l.number });
  }
  if (!opts.keepFiles) {
    for (const f of items.files) {
      if (!f.created) continue;
      const now = seen.files[f.path] ?? 'gone';
      if (now === 'gone') plan.alreadyGone.push(f.path);
      else if (v1 || f.dev === undefined || f.ino === undefined) plan.refused.push(`file ${f.path} (${NO_IDENTITY})`);
      else if (now.dev !== f.dev || now.ino !== f.ino)
        plan.refused.push(`file ${f.path} (inode ${now.ino} on device ${now.dev}, not the inode ${f.ino} on device ${f.dev} stack up created)`);
      else plan.removeFiles.push(f.path);
    }
  }
  return plan;
}
