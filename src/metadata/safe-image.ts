/**
 * A safe-policy spare read whole (every copy of every metadata block that
 * matters), replayed, and the repair that recovery would write: what
 * `inspect` and `repair` show, and what the store applies when it opens.
 */
import type { BlockDevice } from '../block/device.js';
import { MetadataFormatError } from './errors.js';
import { readSafeSuperblocks } from './probe.js';
import {
  AREAS,
  type Area,
  type DeviceFingerprint,
  type SafeLayout,
  type SafeSuperblock,
  SAFE_BLOCK_SIZE,
  decodeSuperblock,
  isBlankBlock,
  safeBlockSector,
} from './safe-format.js';
import { type ReplayResult, replay } from './safe-replay.js';
import { type ReadBuffers, readBlocks } from './spare-io.js';

type Maybe = Uint8Array | null;

/** Every copy of the safe metadata that matters, as read from a spare. */
export interface SafeImage {
  spareSectors: number;
  superblocks: { A: Maybe; B: Maybe };
  /** Valid superblocks as decoded (absent: damaged or unreadable). */
  decoded: { A?: SafeSuperblock; B?: SafeSuperblock };
  /** Why a superblock copy is not valid. */
  superblockProblems: { A?: string; B?: string };
  /** The newest valid superblock's layout. */
  layout: SafeLayout;
  checkpoint: { A: [Maybe[], Maybe[]]; B: [Maybe[], Maybe[]] };
  log: { A: Maybe[]; B: Maybe[] };
}

/**
 * Reads the superblocks, the checkpoint blocks each valid superblock names and
 * both logs (into `buffers`' memory when given). Throws MetadataFormatError 'unformatted' (both superblocks blank)
 * or 'no-valid-superblock'.
 */
export function readSafeImage(spare: BlockDevice, buffers?: ReadBuffers): SafeImage {
  const superblocks = readSafeSuperblocks(spare);
  const decoded: SafeImage['decoded'] = {};
  const superblockProblems: SafeImage['superblockProblems'] = {};
  let blank = 0;
  for (const area of AREAS) {
    const bytes = superblocks[area];
    if (bytes === null) {
      superblockProblems[area] = 'unreadable';
      continue;
    }
    try {
      decoded[area] = decodeSuperblock(bytes, area);
    } catch (e) {
      if (isBlankBlock(bytes)) blank++;
      superblockProblems[area] = e instanceof MetadataFormatError ? e.message : String(e);
    }
  }
  const valid = AREAS.flatMap((a) => (decoded[a] ? [decoded[a] as SafeSuperblock] : []));
  if (valid.length === 0) {
    if (blank === 2) throw new MetadataFormatError('unformatted', `${spare.name}: the spare holds no remapsim metadata (both superblocks are blank)`);
    throw new MetadataFormatError('no-valid-superblock', `${spare.name}: no valid superblock (A: ${superblockProblems.A}; B: ${superblockProblems.B})`);
  }
  const newest = valid.reduce((a, b) => (b.generation > a.generation ? b : a));
  const layout = newest.layout;
  const checkpoint: SafeImage['checkpoint'] = { A: [[], []], B: [[], []] };
  for (const sb of valid) {
    const slot = sb.checkpointSlot;
    for (const area of AREAS) {
      if (checkpoint[area][slot].length >= sb.checkpointBlocks) continue;
      const at = safeBlockSector(sb.layout, area, { region: 'checkpoint', slot, index: 0 });
      checkpoint[area][slot] = readBlocks(spare, at, sb.checkpointBlocks, SAFE_BLOCK_SIZE, buffers);
    }
  }
  const logs = { A: [] as Maybe[], B: [] as Maybe[] };
  for (const area of AREAS)
    logs[area] = readBlocks(spare, safeBlockSector(layout, area, { region: 'log', index: 0 }), layout.logBlocks, SAFE_BLOCK_SIZE, buffers);
  return { spareSectors: spare.sectors, superblocks, decoded, superblockProblems, layout, checkpoint, log: logs };
}

/** The fingerprint stored in the newest valid superblock of an image. */
export function imageFingerprint(image: SafeImage): DeviceFingerprint {
  const valid = AREAS.flatMap((a) => (image.decoded[a] ? [image.decoded[a] as SafeSuperblock] : []));
  return valid.reduce((a, b) => (b.generation > a.generation ? b : a)).fingerprint;
}

/** replay() over an image; `fingerprint` defaults to the image's own (no device check). */
export function replayImage(image: SafeImage, fingerprint: DeviceFingerprint = imageFingerprint(image)): ReplayResult {
  return replay(image.superblocks, image.checkpoint, image.log, { fingerprint, spareSectors: image.spareSectors });
}

// ---------------------------------------------------------------- repair planning

export type SafeRepairAction =
  | { kind: 'checkpoint'; reason: string }
  | { kind: 'superblock'; area: Area }
  | { kind: 'checkpoint-block'; area: Area; slot: 0 | 1; index: number }
  | { kind: 'log-block'; area: Area; index: number };

/** What recovery writes after a replay: a new checkpoint when needed, otherwise each damaged or stale copy. */
export function planSafeRepair(result: ReplayResult): SafeRepairAction[] {
  if (result.needsCheckpoint) {
    const why: string[] = [];
    if (result.fellBack) why.push('the newest checkpoint was lost in both copies; the state comes from the previous one');
    if (result.lostLogSlots.length > 0) why.push(`log slots ${result.lostLogSlots.join(', ')} were lost in both copies`);
    if (result.logFull) why.push('the log is full');
    return [{ kind: 'checkpoint', reason: why.join('; ') || 'needed' }];
  }
  return [
    ...result.rewrite.checkpoint.map((c) => ({ kind: 'checkpoint-block' as const, ...c })),
    ...result.rewrite.log.map((l) => ({ kind: 'log-block' as const, ...l })),
    ...result.rewrite.superblocks.map((area) => ({ kind: 'superblock' as const, area })),
  ];
}

export function describeRepairAction(a: SafeRepairAction): string {
  switch (a.kind) {
    case 'checkpoint':
      return `write a new checkpoint (${a.reason})`;
    case 'superblock':
      return `rewrite superblock ${a.area}`;
    case 'checkpoint-block':
      return `rewrite checkpoint block ${a.index} of slot ${a.slot} in area ${a.area} from area ${a.area === 'A' ? 'B' : 'A'}`;
    case 'log-block':
      return `rewrite log slot ${a.index} in area ${a.area} from area ${a.area === 'A' ? 'B' : 'A'}`;
  }
}

export interface SafeRecovery {
  result: ReplayResult;
  actions: SafeRepairAction[];
  /** True when the actions were written. */
  applied: boolean;
}
