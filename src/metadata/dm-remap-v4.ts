/**
 * The on-spare metadata of the dm-remap-v4 kernel module, byte-compatible with
 * the module's own structs (github amigatomte/dm-remap, commit ee8a282, the
 * source the VM lane builds).
 *
 * One copy is a packed little-endian struct of 84,288 bytes; the module keeps
 * five copies at spare sectors 0, 256, 512, 768 and 1024. Every field of the
 * table in that document is read and written at its documented offset:
 *
 *   0 magic "DMR4" 0x444D5234 | 4 version 4 | 8 sequence u64 | 16 timestamp s u64
 *   24 checksum | 28 copy index | 32 structure size 84288 | 36 reserved
 *   40 main uuid char[37] | 77 spare uuid char[37] | 114 padding[6]
 *   120 main sectors u64 | 128 spare sectors u64 | 136 sector size | 140 remap capacity
 *   144 fingerprint[32] | 176 model char[64] | 240 last full scan u64 | 248 next scan u64
 *   256 health | 260 scan progress % | 264 errors found | 268 predictive remaps
 *   272 scan interval h | 276 scan flags | 280 scan stats u32[4]
 *   296 active remaps | 300 max remaps | 304 next spare sector | 308 remap flags
 *   312 + 40*i entries[2048] | 82232 expansion version | 82236 expansion size
 *   82240 expansion data[2048]   (total 84288)
 *
 * Entry (40 bytes): 0 original sector u64, 8 spare sector u64, 16 timestamp ns
 * u64, 24 access count u32, 28 error count u32, 32 reason u16, 34 flags u16,
 * 36 padding[4].
 *
 * Checksum: Linux crc32_le(0, ...) over [0,24) then [28,84288) (see crc.ts).
 *
 * u64 fields are bigint: the module stores ktime nanoseconds (beyond 2^53) and
 * nothing bounds the sector fields, so numbers would lose bits. Padding,
 * reserved gaps inside entries and the entry slots past `active remaps` are
 * not decoded and are written as zeros, as the module's zeroed struct has them.
 */

import { crc32Le } from './crc.js';
import { checkBytes, checkU64, checkUint, requireBytes, view } from './bytes.js';
import { MetadataValueError } from './errors.js';

export const V4_MAGIC = 0x444d5234;
export const V4_VERSION = 4;
export const V4_STRUCT_SIZE = 84288;
export const V4_MAX_REMAPS = 2048;
export const V4_ENTRY_SIZE = 40;
export const V4_COPY_SECTORS: readonly number[] = Object.freeze([0, 256, 512, 768, 1024]);
/** The module accepts timestamps up to this many seconds ahead of its clock. */
export const V4_FUTURE_TOLERANCE_S = 86400;
export const V4_HEALTH_PERFECT = 100;
export const V4_DEFAULT_SCAN_INTERVAL_HOURS = 24;
export const V4_UUID_LENGTH = 37;
export const V4_MODEL_LENGTH = 64;
export const V4_FINGERPRINT_LENGTH = 32;
export const V4_EXPANSION_DATA_LENGTH = 2048;
export const V4_ENTRY_PENDING = 1;
export const V4_ENTRY_ACTIVE = 2;

const O = {
  magic: 0,
  version: 4,
  sequence: 8,
  timestamp: 16,
  checksum: 24,
  copyIndex: 28,
  structureSize: 32,
  reserved: 36,
  mainUuid: 40,
  spareUuid: 77,
  mainSectors: 120,
  spareSectors: 128,
  sectorSize: 136,
  remapCapacity: 140,
  deviceFingerprint: 144,
  deviceModel: 176,
  lastFullScan: 240,
  nextScheduledScan: 248,
  healthScore: 256,
  scanProgressPercent: 260,
  totalErrorsFound: 264,
  predictiveRemaps: 268,
  scanIntervalHours: 272,
  scanFlags: 276,
  scanStats: 280,
  activeRemaps: 296,
  maxRemaps: 300,
  nextSpareSector: 304,
  remapFlags: 308,
  entries: 312,
  expansionVersion: 82232,
  expansionSize: 82236,
  expansionData: 82240,
} as const;

export interface V4RemapEntry {
  originalSector: bigint;
  spareSector: bigint;
  timestampNs: bigint;
  accessCount: number;
  errorCount: number;
  reason: number;
  /** 1 pending, 2 active (the module loads every entry as active regardless). */
  flags: number;
}

export interface V4Metadata {
  sequence: bigint;
  /** Seconds since the epoch (ktime_get_real_seconds). */
  timestamp: bigint;
  copyIndex: number;
  structureSize: number;
  reserved: number;
  mainUuid: string;
  spareUuid: string;
  mainSectors: bigint;
  spareSectors: bigint;
  sectorSize: number;
  remapCapacity: number;
  deviceFingerprint: Uint8Array;
  deviceModel: string;
  lastFullScan: bigint;
  nextScheduledScan: bigint;
  healthScore: number;
  scanProgressPercent: number;
  totalErrorsFound: number;
  predictiveRemaps: number;
  scanIntervalHours: number;
  scanFlags: number;
  scanStats: readonly [number, number, number, number];
  maxRemaps: number;
  nextSpareSector: number;
  remapFlags: number;
  /** Written as `active remaps`; at most 2048 are persisted. */
  entries: V4RemapEntry[];
  expansionVersion: number;
  expansionSize: number;
  expansionData: Uint8Array;
}

export type V4InvalidReason = 'bad-magic' | 'bad-version' | 'bad-crc' | 'too-many-remaps' | 'bad-health' | 'future-timestamp';

export type V4DecodeResult =
  | { valid: true; metadata: V4Metadata; checksum: number }
  | { valid: false; reason: V4InvalidReason; message: string; sequence: bigint; timestamp: bigint };

/** Linux crc32_le(0, ...) over [0,24) followed by [28,84288) of a copy. */
export function v4Checksum(bytes: Uint8Array): number {
  const b = requireBytes(bytes, V4_STRUCT_SIZE, 'dm-remap-v4 copy');
  return crc32Le(crc32Le(0, b.subarray(0, O.checksum)), b.subarray(O.copyIndex, V4_STRUCT_SIZE));
}

function readCString(bytes: Uint8Array, offset: number, length: number): string {
  let end = offset;
  while (end < offset + length && bytes[end] !== 0) end++;
  return String.fromCharCode(...bytes.subarray(offset, end));
}

function writeCString(field: string, bytes: Uint8Array, offset: number, length: number, value: unknown): void {
  if (typeof value !== 'string' || value.length > length || !/^[\x01-\xff]*$/.test(value)) {
    throw new MetadataValueError(
      field,
      `${field} must be a string of at most ${length} characters U+0001..U+00FF, got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value}`,
    );
  }
  for (let i = 0; i < value.length; i++) bytes[offset + i] = value.charCodeAt(i);
}

function toBigNow(now: number | bigint): bigint {
  if (typeof now === 'bigint' && now >= 0n) return now;
  if (typeof now === 'number' && Number.isFinite(now) && now >= 0) return BigInt(Math.floor(now));
  throw new MetadataValueError('now', `now must be seconds since the epoch, a finite number >= 0, got ${String(now)}`);
}

/**
 * Decodes one copy. The checks and their order are the module's: magic,
 * version, checksum, active remaps <= 2048, health <= 100, timestamp <= now +
 * 86400 s. `now` is in seconds. Only a buffer shorter than 84,288 bytes throws
 * (MetadataFormatError 'truncated'); bytes past the struct are ignored.
 */
export function decodeV4Copy(bytes: Uint8Array, now: number | bigint): V4DecodeResult {
  const nowS = toBigNow(now);
  const b = requireBytes(bytes, V4_STRUCT_SIZE, 'dm-remap-v4 copy');
  const dv = view(b);
  const sequence = dv.getBigUint64(O.sequence, true);
  const timestamp = dv.getBigUint64(O.timestamp, true);
  const invalid = (reason: V4InvalidReason, message: string): V4DecodeResult => ({ valid: false, reason, message, sequence, timestamp });

  const magic = dv.getUint32(O.magic, true);
  if (magic !== V4_MAGIC) return invalid('bad-magic', `magic is 0x${hex(magic)}, expected 0x${hex(V4_MAGIC)}`);
  const version = dv.getUint32(O.version, true);
  if (version !== V4_VERSION) return invalid('bad-version', `version is ${version}, expected ${V4_VERSION}`);
  const stored = dv.getUint32(O.checksum, true);
  const computed = v4Checksum(b);
  if (stored !== computed) return invalid('bad-crc', `checksum is 0x${hex(stored)}, computed 0x${hex(computed)}`);
  const active = dv.getUint32(O.activeRemaps, true);
  if (active > V4_MAX_REMAPS) return invalid('too-many-remaps', `active remaps is ${active}, at most ${V4_MAX_REMAPS} allowed`);
  const health = dv.getUint32(O.healthScore, true);
  if (health > 100) return invalid('bad-health', `health score is ${health}, at most 100 allowed`);
  if (timestamp > nowS + BigInt(V4_FUTURE_TOLERANCE_S)) {
    return invalid('future-timestamp', `timestamp ${timestamp} is more than ${V4_FUTURE_TOLERANCE_S} s after now (${nowS})`);
  }

  const entries: V4RemapEntry[] = new Array(active);
  for (let i = 0; i < active; i++) {
    const e = O.entries + i * V4_ENTRY_SIZE;
    entries[i] = {
      originalSector: dv.getBigUint64(e, true),
      spareSector: dv.getBigUint64(e + 8, true),
      timestampNs: dv.getBigUint64(e + 16, true),
      accessCount: dv.getUint32(e + 24, true),
      errorCount: dv.getUint32(e + 28, true),
      reason: dv.getUint16(e + 32, true),
      flags: dv.getUint16(e + 34, true),
    };
  }
  const metadata: V4Metadata = {
    sequence,
    timestamp,
    copyIndex: dv.getUint32(O.copyIndex, true),
    structureSize: dv.getUint32(O.structureSize, true),
    reserved: dv.getUint32(O.reserved, true),
    mainUuid: readCString(b, O.mainUuid, V4_UUID_LENGTH),
    spareUuid: readCString(b, O.spareUuid, V4_UUID_LENGTH),
    mainSectors: dv.getBigUint64(O.mainSectors, true),
    spareSectors: dv.getBigUint64(O.spareSectors, true),
    sectorSize: dv.getUint32(O.sectorSize, true),
    remapCapacity: dv.getUint32(O.remapCapacity, true),
    deviceFingerprint: b.slice(O.deviceFingerprint, O.deviceFingerprint + V4_FINGERPRINT_LENGTH),
    deviceModel: readCString(b, O.deviceModel, V4_MODEL_LENGTH),
    lastFullScan: dv.getBigUint64(O.lastFullScan, true),
    nextScheduledScan: dv.getBigUint64(O.nextScheduledScan, true),
    healthScore: health,
    scanProgressPercent: dv.getUint32(O.scanProgressPercent, true),
    totalErrorsFound: dv.getUint32(O.totalErrorsFound, true),
    predictiveRemaps: dv.getUint32(O.predictiveRemaps, true),
    scanIntervalHours: dv.getUint32(O.scanIntervalHours, true),
    scanFlags: dv.getUint32(O.scanFlags, true),
    scanStats: [
      dv.getUint32(O.scanStats, true),
      dv.getUint32(O.scanStats + 4, true),
      dv.getUint32(O.scanStats + 8, true),
      dv.getUint32(O.scanStats + 12, true),
    ],
    maxRemaps: dv.getUint32(O.maxRemaps, true),
    nextSpareSector: dv.getUint32(O.nextSpareSector, true),
    remapFlags: dv.getUint32(O.remapFlags, true),
    entries,
    expansionVersion: dv.getUint32(O.expansionVersion, true),
    expansionSize: dv.getUint32(O.expansionSize, true),
    expansionData: b.slice(O.expansionData, O.expansionData + V4_EXPANSION_DATA_LENGTH),
  };
  return { valid: true, metadata, checksum: stored };
}

export interface V4Encoded {
  bytes: Uint8Array;
  checksum: number;
  /** Entries past the 2048th, which the module does not persist (they are dropped, as it drops them). */
  dropped: number;
}

/**
 * Encodes one copy: magic and version are always the module's; every other
 * field comes from `meta` (build it with v4Metadata() for the module's
 * defaults). `active remaps` = min(entries, 2048): the first 2048 entries are
 * kept, the rest reported in `dropped`. Out-of-range values throw
 * MetadataValueError naming the field. `into` (at least V4_STRUCT_SIZE
 * bytes): memory to encode into, for a caller that copies the bytes at once.
 */
export function encodeV4Copy(meta: V4Metadata, into?: Uint8Array): V4Encoded {
  const b = into ? into.fill(0, 0, V4_STRUCT_SIZE).subarray(0, V4_STRUCT_SIZE) : new Uint8Array(V4_STRUCT_SIZE);
  const dv = view(b);
  dv.setUint32(O.magic, V4_MAGIC, true);
  dv.setUint32(O.version, V4_VERSION, true);
  dv.setBigUint64(O.sequence, checkU64('sequence', meta.sequence), true);
  dv.setBigUint64(O.timestamp, checkU64('timestamp', meta.timestamp), true);
  dv.setUint32(O.copyIndex, checkUint('copyIndex', meta.copyIndex, 32), true);
  dv.setUint32(O.structureSize, checkUint('structureSize', meta.structureSize, 32), true);
  dv.setUint32(O.reserved, checkUint('reserved', meta.reserved, 32), true);
  writeCString('mainUuid', b, O.mainUuid, V4_UUID_LENGTH, meta.mainUuid);
  writeCString('spareUuid', b, O.spareUuid, V4_UUID_LENGTH, meta.spareUuid);
  dv.setBigUint64(O.mainSectors, checkU64('mainSectors', meta.mainSectors), true);
  dv.setBigUint64(O.spareSectors, checkU64('spareSectors', meta.spareSectors), true);
  dv.setUint32(O.sectorSize, checkUint('sectorSize', meta.sectorSize, 32), true);
  dv.setUint32(O.remapCapacity, checkUint('remapCapacity', meta.remapCapacity, 32), true);
  b.set(checkBytes('deviceFingerprint', meta.deviceFingerprint, V4_FINGERPRINT_LENGTH), O.deviceFingerprint);
  writeCString('deviceModel', b, O.deviceModel, V4_MODEL_LENGTH, meta.deviceModel);
  dv.setBigUint64(O.lastFullScan, checkU64('lastFullScan', meta.lastFullScan), true);
  dv.setBigUint64(O.nextScheduledScan, checkU64('nextScheduledScan', meta.nextScheduledScan), true);
  dv.setUint32(O.healthScore, checkUint('healthScore', meta.healthScore, 32), true);
  dv.setUint32(O.scanProgressPercent, checkUint('scanProgressPercent', meta.scanProgressPercent, 32), true);
  dv.setUint32(O.totalErrorsFound, checkUint('totalErrorsFound', meta.totalErrorsFound, 32), true);
  dv.setUint32(O.predictiveRemaps, checkUint('predictiveRemaps', meta.predictiveRemaps, 32), true);
  dv.setUint32(O.scanIntervalHours, checkUint('scanIntervalHours', meta.scanIntervalHours, 32), true);
  dv.setUint32(O.scanFlags, checkUint('scanFlags', meta.scanFlags, 32), true);
  if (!Array.isArray(meta.scanStats) || meta.scanStats.length !== 4) {
    throw new MetadataValueError('scanStats', `scanStats must be an array of 4 integers in [0, 4294967295]`);
  }
  for (let i = 0; i < 4; i++) dv.setUint32(O.scanStats + 4 * i, checkUint(`scanStats[${i}]`, meta.scanStats[i], 32), true);
  if (!Array.isArray(meta.entries)) throw new MetadataValueError('entries', 'entries must be an array');
  const kept = Math.min(meta.entries.length, V4_MAX_REMAPS);
  dv.setUint32(O.activeRemaps, kept, true);
  dv.setUint32(O.maxRemaps, checkUint('maxRemaps', meta.maxRemaps, 32), true);
  dv.setUint32(O.nextSpareSector, checkUint('nextSpareSector', meta.nextSpareSector, 32), true);
  dv.setUint32(O.remapFlags, checkUint('remapFlags', meta.remapFlags, 32), true);
  for (let i = 0; i < kept; i++) {
    const en = meta.entries[i];
    const f = `entries[${i}]`;
    const e = O.entries + i * V4_ENTRY_SIZE;
    dv.setBigUint64(e, checkU64(`${f}.originalSector`, en.originalSector), true);
    dv.setBigUint64(e + 8, checkU64(`${f}.spareSector`, en.spareSector), true);
    dv.setBigUint64(e + 16, checkU64(`${f}.timestampNs`, en.timestampNs), true);
    dv.setUint32(e + 24, checkUint(`${f}.accessCount`, en.accessCount, 32), true);
    dv.setUint32(e + 28, checkUint(`${f}.errorCount`, en.errorCount, 32), true);
    dv.setUint16(e + 32, checkUint(`${f}.reason`, en.reason, 16), true);
    dv.setUint16(e + 34, checkUint(`${f}.flags`, en.flags, 16), true);
  }
  dv.setUint32(O.expansionVersion, checkUint('expansionVersion', meta.expansionVersion, 32), true);
  dv.setUint32(O.expansionSize, checkUint('expansionSize', meta.expansionSize, 32), true);
  b.set(checkBytes('expansionData', meta.expansionData, V4_EXPANSION_DATA_LENGTH), O.expansionData);
  const checksum = v4Checksum(b);
  dv.setUint32(O.checksum, checksum, true);
  return { bytes: b, checksum, dropped: meta.entries.length - kept };
}

type U64In = bigint | number;

export interface V4EntryInit {
  originalSector: U64In;
  spareSector: U64In;
  timestampNs?: U64In;
  accessCount?: number;
  errorCount?: number;
  reason?: number;
  flags?: number;
}

/** An entry with zero counters and the `active` flag unless given. */
export function v4Entry(init: V4EntryInit): V4RemapEntry {
  return {
    originalSector: checkU64('originalSector', init.originalSector),
    spareSector: checkU64('spareSector', init.spareSector),
    timestampNs: checkU64('timestampNs', init.timestampNs ?? 0n),
    accessCount: init.accessCount ?? 0,
    errorCount: init.errorCount ?? 0,
    reason: init.reason ?? 0,
    flags: init.flags ?? V4_ENTRY_ACTIVE,
  };
}

export type V4MetadataInit = Partial<Omit<V4Metadata, 'sequence' | 'timestamp' | 'mainSectors' | 'spareSectors' | 'lastFullScan' | 'nextScheduledScan'>> & {
  sequence?: U64In;
  timestamp?: U64In;
  mainSectors?: U64In;
  spareSectors?: U64In;
  lastFullScan?: U64In;
  nextScheduledScan?: U64In;
};

/**
 * A table with the values the module's initialiser writes (zeroed struct,
 * sequence 1, structure size 84288, sector size 512, health 100, scan
 * interval 24 h, max remaps 2048, copy index 0, next spare sector 0, empty
 * uuids), overridden by `init`.
 */
export function v4Metadata(init: V4MetadataInit = {}): V4Metadata {
  return {
    copyIndex: 0,
    structureSize: V4_STRUCT_SIZE,
    reserved: 0,
    mainUuid: '',
    spareUuid: '',
    sectorSize: 512,
    remapCapacity: 0,
    deviceFingerprint: new Uint8Array(V4_FINGERPRINT_LENGTH),
    deviceModel: '',
    healthScore: V4_HEALTH_PERFECT,
    scanProgressPercent: 0,
    totalErrorsFound: 0,
    predictiveRemaps: 0,
    scanIntervalHours: V4_DEFAULT_SCAN_INTERVAL_HOURS,
    scanFlags: 0,
    scanStats: [0, 0, 0, 0],
    maxRemaps: V4_MAX_REMAPS,
    nextSpareSector: 0,
    remapFlags: 0,
    entries: [],
    expansionVersion: 0,
    expansionSize: 0,
    expansionData: new Uint8Array(V4_EXPANSION_DATA_LENGTH),
    ...init,
    sequence: checkU64('sequence', init.sequence ?? 1n),
    timestamp: checkU64('timestamp', init.timestamp ?? 0n),
    mainSectors: checkU64('mainSectors', init.mainSectors ?? 0n),
    spareSectors: checkU64('spareSectors', init.spareSectors ?? 0n),
    lastFullScan: checkU64('lastFullScan', init.lastFullScan ?? 0n),
    nextScheduledScan: checkU64('nextScheduledScan', init.nextScheduledScan ?? 0n),
  };
}

/**
 * The table the module writes over all five copies when none is valid: no
 * remaps, the device sizes, the time of writing, and the sequence number the
 * writer assigns (the module's initialiser uses 1).
 */
export function v4EmptyTable(opts: { mainSectors: U64In; spareSectors: U64In; timestamp: U64In; sequence?: U64In }): V4Metadata {
  return v4Metadata({
    mainSectors: opts.mainSectors,
    spareSectors: opts.spareSectors,
    timestamp: opts.timestamp,
    sequence: opts.sequence ?? 1n,
  });
}

export type V4CopyResult = V4DecodeResult | { valid: false; reason: 'unreadable'; message: string };

export interface V4Choice {
  /** The winning copy, or null when no copy is valid (write v4EmptyTable() to all five). */
  best: { index: number; metadata: V4Metadata } | null;
  /** Per copy, in the order given. */
  results: V4CopyResult[];
  /**
   * Copies to rewrite: with a winner, those that are invalid, unreadable or
   * carry another sequence number (the module's repair rule); with no winner,
   * all of them.
   */
  rewrite: number[];
}

/**
 * The module's choice among copies (null = the read failed). It scans the
 * copies in order keeping the best so far, starting from sequence 0 and
 * timestamp 0, and replaces it only when a valid copy has a higher sequence, or
 * the same sequence and a newer timestamp. So exact ties keep the lower index,
 * and (as in the module's loop) a copy with sequence 0 and timestamp 0 never
 * wins.
 */
export function chooseBestCopy(copies: ReadonlyArray<Uint8Array | null | undefined>, now: number | bigint): V4Choice {
  const results: V4CopyResult[] = [];
  for (let i = 0; i < copies.length; i++) {
    const c = copies[i];
    if (c === null || c === undefined) results.push({ valid: false, reason: 'unreadable', message: 'the copy could not be read' });
    else if (c.length < V4_STRUCT_SIZE) results.push({ valid: false, reason: 'unreadable', message: `short read: ${c.length} of ${V4_STRUCT_SIZE} bytes` });
    else {
      // the copies are written together and mostly alike: one with the bytes of an earlier one decodes as it did
      const same = copies.findIndex((d, j) => j < i && d !== null && d !== undefined && d.length >= V4_STRUCT_SIZE && sameStruct(c, d));
      results.push(same >= 0 ? { ...results[same] } : decodeV4Copy(c, now));
    }
  }
  let bestIndex = -1;
  let bestSeq = 0n;
  let bestTs = 0n;
  results.forEach((r, i) => {
    if (!r.valid) return;
    const { sequence, timestamp } = r.metadata;
    if (sequence > bestSeq || (sequence === bestSeq && timestamp > bestTs)) {
      bestIndex = i;
      bestSeq = sequence;
      bestTs = timestamp;
    }
  });
  if (bestIndex < 0) return { best: null, results, rewrite: results.map((_, i) => i) };
  const winner = results[bestIndex] as Extract<V4DecodeResult, { valid: true }>;
  const rewrite = results.flatMap((r, i) => (!r.valid || r.metadata.sequence !== bestSeq ? [i] : []));
  return { best: { index: bestIndex, metadata: winner.metadata }, results, rewrite };
}

function sameStruct(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a.subarray(0, V4_STRUCT_SIZE), b.subarray(0, V4_STRUCT_SIZE)) === 0;
}

function hex(v: number): string {
  return v.toString(16).padStart(8, '0');
}
