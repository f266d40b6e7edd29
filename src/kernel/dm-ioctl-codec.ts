/**
 * The device-mapper ioctl interface, version 4, as a pure codec: Buffers in,
 * typed objects out, and back. No I/O here; dm-control.ts does the ioctls.
 *
 * Layout and reply formats follow include/uapi/linux/dm-ioctl.h and
 * drivers/md/dm-ioctl.c (interface 4.50). All integers are little-endian
 * host order (every Linux target this project runs on is little-endian).
 *
 * Every request is one buffer: struct dm_ioctl (312 bytes) followed by the
 * payload at data_start. `data_size` is the size of the whole buffer, which the
 * kernel also takes as the room it may use for its reply. Replies are written
 * back into the same buffer; the kernel sets data_start to 312 (sizeof rounded
 * up to 8) and data_size to the end of what it wrote.
 */

export const DM_IOCTL_TYPE = 0xfd;
export const DM_NAME_LEN = 128;
export const DM_UUID_LEN = 129;
export const DM_MAX_TYPE_NAME = 16;

/** sizeof(struct dm_ioctl). */
export const DM_IOCTL_SIZE = 312;
/** offsetof(struct dm_ioctl, data): the smallest data_size the kernel accepts. */
export const DM_MIN_DATA_SIZE = 305;
/** Where requests put their payload, and where the kernel puts its reply (align8(sizeof)). */
export const DM_DATA_START = 312;

/** Byte offsets inside struct dm_ioctl. */
export const DM_IOCTL_OFFSETS = {
  version: 0,
  dataSize: 12,
  dataStart: 16,
  targetCount: 20,
  openCount: 24,
  flags: 28,
  eventNr: 32,
  padding: 36,
  dev: 40,
  name: 48,
  uuid: 176,
  data: 305,
} as const;

/** struct dm_target_spec: 40 bytes, the parameter string follows, padded to 8. */
export const DM_TARGET_SPEC_SIZE = 40;
export const DM_TARGET_SPEC_OFFSETS = { sectorStart: 0, length: 8, status: 16, next: 20, targetType: 24 } as const;
/** offsetof(struct dm_name_list, name). */
export const DM_NAME_LIST_NAME_OFFSET = 12;
/** offsetof(struct dm_target_versions, name). */
export const DM_TARGET_VERSIONS_NAME_OFFSET = 16;
/** offsetof(struct dm_target_deps, dev). */
export const DM_TARGET_DEPS_DEV_OFFSET = 8;
/** offsetof(struct dm_target_msg, message). */
export const DM_TARGET_MSG_MESSAGE_OFFSET = 8;

/** Command numbers (the `nr` of the ioctl request). */
export const DmCmd = {
  VERSION: 0,
  REMOVE_ALL: 1,
  LIST_DEVICES: 2,
  DEV_CREATE: 3,
  DEV_REMOVE: 4,
  DEV_RENAME: 5,
  DEV_SUSPEND: 6,
  DEV_STATUS: 7,
  DEV_WAIT: 8,
  TABLE_LOAD: 9,
  TABLE_CLEAR: 10,
  TABLE_DEPS: 11,
  TABLE_STATUS: 12,
  LIST_VERSIONS: 13,
  TARGET_MSG: 14,
  DEV_SET_GEOMETRY: 15,
  DEV_ARM_POLL: 16,
  GET_TARGET_VERSION: 17,
} as const;
export type DmCmdName = keyof typeof DmCmd;

const CMD_NAMES: Record<number, string> = Object.fromEntries(Object.entries(DmCmd).map(([k, v]) => [v, `DM_${k}`]));

/** "DM_TABLE_LOAD" for 9. */
export function dmCmdName(cmd: number): string {
  return CMD_NAMES[cmd] ?? `DM command ${cmd}`;
}

/**
 * _IOWR(0xfd, nr, struct dm_ioctl). The generic encoding (dir<<30 | size<<16 |
 * type<<8 | nr) and the powerpc/mips/sparc one (dir<<29 with 13 size bits)
 * give the same number here: read|write is 3<<30 in one and 6<<29 in the other.
 */
export function dmIoctlRequest(cmd: number): number {
  if (!Number.isInteger(cmd) || cmd < 0 || cmd > 0xff) throw new DmCodecError(`dm command number ${cmd} is out of range 0..255`);
  return ((3 << 30) | (DM_IOCTL_SIZE << 16) | (DM_IOCTL_TYPE << 8) | cmd) >>> 0;
}

export const DM_VERSION = dmIoctlRequest(DmCmd.VERSION);
export const DM_REMOVE_ALL = dmIoctlRequest(DmCmd.REMOVE_ALL);
export const DM_LIST_DEVICES = dmIoctlRequest(DmCmd.LIST_DEVICES);
export const DM_DEV_CREATE = dmIoctlRequest(DmCmd.DEV_CREATE);
export const DM_DEV_REMOVE = dmIoctlRequest(DmCmd.DEV_REMOVE);
export const DM_DEV_RENAME = dmIoctlRequest(DmCmd.DEV_RENAME);
export const DM_DEV_SUSPEND = dmIoctlRequest(DmCmd.DEV_SUSPEND);
export const DM_DEV_STATUS = dmIoctlRequest(DmCmd.DEV_STATUS);
export const DM_DEV_WAIT = dmIoctlRequest(DmCmd.DEV_WAIT);
export const DM_TABLE_LOAD = dmIoctlRequest(DmCmd.TABLE_LOAD);
export const DM_TABLE_CLEAR = dmIoctlRequest(DmCmd.TABLE_CLEAR);
export const DM_TABLE_DEPS = dmIoctlRequest(DmCmd.TABLE_DEPS);
export const DM_TABLE_STATUS = dmIoctlRequest(DmCmd.TABLE_STATUS);
export const DM_LIST_VERSIONS = dmIoctlRequest(DmCmd.LIST_VERSIONS);
export const DM_TARGET_MSG = dmIoctlRequest(DmCmd.TARGET_MSG);
export const DM_DEV_SET_GEOMETRY = dmIoctlRequest(DmCmd.DEV_SET_GEOMETRY);
export const DM_DEV_ARM_POLL = dmIoctlRequest(DmCmd.DEV_ARM_POLL);
export const DM_GET_TARGET_VERSION = dmIoctlRequest(DmCmd.GET_TARGET_VERSION);

/** The interface version this codec speaks; the kernel accepts any 4.x with x <= its own minor. */
export const DM_VERSION_MAJOR = 4;

export const DM_READONLY_FLAG = 1 << 0; // in/out
export const DM_SUSPEND_FLAG = 1 << 1; // in/out
/** Not in the kernel's uapi header: bit 2 is reserved for libdevmapper, the kernel never reads or sets it. */
export const DM_EXISTS_FLAG = 1 << 2;
export const DM_PERSISTENT_DEV_FLAG = 1 << 3; // in
export const DM_STATUS_TABLE_FLAG = 1 << 4; // in
export const DM_ACTIVE_PRESENT_FLAG = 1 << 5; // out
export const DM_INACTIVE_PRESENT_FLAG = 1 << 6; // out
export const DM_BUFFER_FULL_FLAG = 1 << 8; // out
export const DM_SKIP_BDGET_FLAG = 1 << 9; // in, ignored
export const DM_SKIP_LOCKFS_FLAG = 1 << 10; // in
export const DM_NOFLUSH_FLAG = 1 << 11; // in
export const DM_QUERY_INACTIVE_TABLE_FLAG = 1 << 12; // in
export const DM_UEVENT_GENERATED_FLAG = 1 << 13; // out
export const DM_UUID_FLAG = 1 << 14; // in
export const DM_SECURE_DATA_FLAG = 1 << 15; // in
export const DM_DATA_OUT_FLAG = 1 << 16; // out
export const DM_DEFERRED_REMOVE = 1 << 17; // in/out
export const DM_INTERNAL_SUSPEND_FLAG = 1 << 18; // out
export const DM_IMA_MEASUREMENT_FLAG = 1 << 19; // in

/** Flags in the trailer of a dm_name_list entry (kernels with interface >= 4.45). */
export const DM_NAME_LIST_FLAG_HAS_UUID = 1;
export const DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID = 2;

const FLAG_NAMES: Array<[number, string]> = [
  [DM_READONLY_FLAG, 'READONLY'],
  [DM_SUSPEND_FLAG, 'SUSPEND'],
  [DM_EXISTS_FLAG, 'EXISTS'],
  [DM_PERSISTENT_DEV_FLAG, 'PERSISTENT_DEV'],
  [DM_STATUS_TABLE_FLAG, 'STATUS_TABLE'],
  [DM_ACTIVE_PRESENT_FLAG, 'ACTIVE_PRESENT'],
  [DM_INACTIVE_PRESENT_FLAG, 'INACTIVE_PRESENT'],
  [DM_BUFFER_FULL_FLAG, 'BUFFER_FULL'],
  [DM_SKIP_BDGET_FLAG, 'SKIP_BDGET'],
  [DM_SKIP_LOCKFS_FLAG, 'SKIP_LOCKFS'],
  [DM_NOFLUSH_FLAG, 'NOFLUSH'],
  [DM_QUERY_INACTIVE_TABLE_FLAG, 'QUERY_INACTIVE_TABLE'],
  [DM_UEVENT_GENERATED_FLAG, 'UEVENT_GENERATED'],
  [DM_UUID_FLAG, 'UUID'],
  [DM_SECURE_DATA_FLAG, 'SECURE_DATA'],
  [DM_DATA_OUT_FLAG, 'DATA_OUT'],
  [DM_DEFERRED_REMOVE, 'DEFERRED_REMOVE'],
  [DM_INTERNAL_SUSPEND_FLAG, 'INTERNAL_SUSPEND'],
  [DM_IMA_MEASUREMENT_FLAG, 'IMA_MEASUREMENT'],
];

/** ["SUSPEND", "ACTIVE_PRESENT"] for 0x22; unknown bits as "bit N". */
export function dmFlagNames(flags: number): string[] {
  const out: string[] = [];
  let rest = flags >>> 0;
  for (const [bit, name] of FLAG_NAMES) {
    if (rest & bit) {
      out.push(name);
      rest &= ~bit;
    }
  }
  for (let b = 0; b < 32; b++) if (rest & (1 << b)) out.push(`bit ${b}`);
  return out;
}

/** Input the codec refuses, or a reply that does not follow the kernel's layout. */
export class DmCodecError extends Error {
  override readonly name = 'DmCodecError';
}

// ---------------------------------------------------------------- dev_t

export interface DevNumber {
  major: number;
  minor: number;
}

/**
 * The kernel's new_encode_dev: 12-bit major, 20-bit minor packed as
 * minor[7:0] | major << 8 | minor[19:8] << 20. huge_encode_dev (the u64 in
 * struct dm_ioctl and the deps list) is the same value widened.
 */
export function newEncodeDev(major: number, minor: number): number {
  if (!Number.isInteger(major) || major < 0 || major > 0xfff) throw new DmCodecError(`device major ${major} is out of range 0..4095`);
  if (!Number.isInteger(minor) || minor < 0 || minor > 0xfffff) throw new DmCodecError(`device minor ${minor} is out of range 0..1048575`);
  return ((minor & 0xff) | (major << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

/** new_decode_dev; huge_decode_dev uses the low 32 bits of the u64 the same way. */
export function newDecodeDev(dev: number | bigint): DevNumber {
  const d = typeof dev === 'bigint' ? Number(dev & 0xffffffffn) : dev >>> 0;
  return { major: (d & 0xfff00) >>> 8, minor: (d & 0xff) | ((d >>> 12) & 0xfff00) };
}

export const hugeDecodeDev = newDecodeDev;

/** "253:0". */
export function formatDev(d: DevNumber): string {
  return `${d.major}:${d.minor}`;
}

// ---------------------------------------------------------------- helpers

export function align8(n: number): number {
  return (n + 7) & ~7;
}

function utf8(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/** A NUL-terminated string in [start, end); the whole range when no NUL is there. */
function cString(buf: Buffer, start: number, end: number): { text: string; terminated: boolean; next: number } {
  const stop = Math.min(end, buf.length);
  const nul = buf.indexOf(0, start);
  if (nul >= 0 && nul < stop) return { text: buf.toString('utf8', start, nul), terminated: true, next: nul + 1 };
  return { text: buf.toString('utf8', start, stop), terminated: false, next: stop };
}

function readU64(buf: Buffer, off: number, what: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DmCodecError(`${what} ${v} does not fit in a JavaScript number`);
  return Number(v);
}

function checkU64(v: number, what: string): bigint {
  if (!Number.isSafeInteger(v) || v < 0) throw new DmCodecError(`${what} must be an integer in 0..${Number.MAX_SAFE_INTEGER}, got ${v}`);
  return BigInt(v);
}

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new DmCodecError(`${what} must be an integer in 0..4294967295, got ${v}`);
  return v;
}

function noNul(s: string, what: string): void {
  if (s.includes('\0')) throw new DmCodecError(`${what} must not contain a NUL character`);
}

/**
 * A device name the kernel accepts: 1..127 bytes, no '/', not "control", "." or "..".
 * Returns the reason it is refused, or undefined.
 */
export function dmNameProblem(name: string): string | undefined {
  const len = Buffer.byteLength(name, 'utf8');
  if (len === 0) return 'device name must not be empty';
  if (len > DM_NAME_LEN - 1) return `device name '${name.slice(0, 40)}...' is ${len} bytes; the limit is ${DM_NAME_LEN - 1}`;
  if (name.includes('/')) return `device name '${name}' must not contain '/'`;
  if (name === 'control' || name === '.' || name === '..') return `device name must not be '${name}'`;
  if (name.includes('\0')) return 'device name must not contain a NUL character';
  return undefined;
}

function uuidProblem(uuid: string): string | undefined {
  const len = Buffer.byteLength(uuid, 'utf8');
  if (len > DM_UUID_LEN - 1) return `device uuid is ${len} bytes; the limit is ${DM_UUID_LEN - 1}`;
  if (uuid.includes('\0')) return 'device uuid must not contain a NUL character';
  return undefined;
}

// ---------------------------------------------------------------- struct dm_ioctl

export type DmVersion = [number, number, number];

export interface DmIoctlHeader {
  version: DmVersion;
  dataSize: number;
  dataStart: number;
  targetCount: number;
  openCount: number;
  flags: number;
  eventNr: number;
  /** huge_encode_dev of the device (0 when none). */
  dev: number;
  name: string;
  uuid: string;
}

/** What a request sets in the header. Lookups use uuid when given, else name, else dev. */
export interface DmRequest {
  /** Interface version the client speaks (default 4.0.0). */
  version?: DmVersion;
  name?: string;
  uuid?: string;
  /** huge_encode_dev value (for DM_PERSISTENT_DEV_FLAG on create, or a lookup by number). */
  dev?: number;
  flags?: number;
  eventNr?: number;
  /** Total buffer size to hand the kernel (room for its reply); rounded up to 8, at least 312 + payload. */
  bufferSize?: number;
}

export function decodeDmIoctl(buf: Buffer): DmIoctlHeader {
  if (buf.length < DM_IOCTL_SIZE) throw new DmCodecError(`a dm_ioctl reply needs ${DM_IOCTL_SIZE} bytes, got ${buf.length}`);
  const o = DM_IOCTL_OFFSETS;
  return {
    version: [buf.readUInt32LE(0), buf.readUInt32LE(4), buf.readUInt32LE(8)],
    dataSize: buf.readUInt32LE(o.dataSize),
    dataStart: buf.readUInt32LE(o.dataStart),
    targetCount: buf.readUInt32LE(o.targetCount),
    openCount: buf.readInt32LE(o.openCount),
    flags: buf.readUInt32LE(o.flags),
    eventNr: buf.readUInt32LE(o.eventNr),
    dev: readU64(buf, o.dev, 'dev'),
    name: cString(buf, o.name, o.name + DM_NAME_LEN).text,
    uuid: cString(buf, o.uuid, o.uuid + DM_UUID_LEN).text,
  };
}

/**
 * One request buffer: the header, then `payload` at data_start (312), zero
 * padding up to the buffer size. data_size is the whole buffer.
 */
export function encodeRequest(req: DmRequest, payload?: Buffer, targetCount = 0): Buffer {
  const payloadLen = payload?.length ?? 0;
  const need = DM_DATA_START + payloadLen;
  const size = align8(Math.max(need, req.bufferSize ?? 0));
  if (size > 0xffffffff) throw new DmCodecError(`dm ioctl buffer of ${size} bytes is too large`);
  const buf = Buffer.alloc(size);
  const o = DM_IOCTL_OFFSETS;
  const [maj, min, patch] = req.version ?? [DM_VERSION_MAJOR, 0, 0];
  buf.writeUInt32LE(checkU32(maj, 'version major'), 0);
  buf.writeUInt32LE(checkU32(min, 'version minor'), 4);
  buf.writeUInt32LE(checkU32(patch, 'version patch'), 8);
  buf.writeUInt32LE(size, o.dataSize);
  buf.writeUInt32LE(DM_DATA_START, o.dataStart);
  buf.writeUInt32LE(checkU32(targetCount, 'target count'), o.targetCount);
  buf.writeUInt32LE(checkU32(req.flags ?? 0, 'flags') >>> 0, o.flags);
  buf.writeUInt32LE(checkU32(req.eventNr ?? 0, 'event number'), o.eventNr);
  buf.writeBigUInt64LE(checkU64(req.dev ?? 0, 'dev'), o.dev);
  if (req.name !== undefined && req.name !== '') {
    const bytes = utf8(req.name);
    if (bytes.length > DM_NAME_LEN - 1) throw new DmCodecError(`device name is ${bytes.length} bytes; the limit is ${DM_NAME_LEN - 1}`);
    noNul(req.name, 'device name');
    bytes.copy(buf, o.name);
  }
  if (req.uuid !== undefined && req.uuid !== '') {
    const problem = uuidProblem(req.uuid);
    if (problem) throw new DmCodecError(problem);
    utf8(req.uuid).copy(buf, o.uuid);
  }
  if (payload) payload.copy(buf, DM_DATA_START);
  return buf;
}

// ---------------------------------------------------------------- tables (struct dm_target_spec)

export interface DmTargetSpec {
  /** First sector this target maps. */
  start: number;
  /** Sectors it maps. */
  length: number;
  /** Target type name ("linear", "error", "dust", ...): at most 15 bytes. */
  type: string;
  /** The parameter string (table arguments, or the status/table text in replies). */
  params: string;
}

export interface DmTargetSpecReply extends DmTargetSpec {
  /** dm_target_spec.status (the kernel writes 0). */
  status: number;
}

function checkTarget(t: DmTargetSpec, i: number): void {
  const where = `target ${i}`;
  checkU64(t.start, `${where} start sector`);
  checkU64(t.length, `${where} length`);
  const tlen = Buffer.byteLength(t.type, 'utf8');
  if (tlen === 0 || tlen > DM_MAX_TYPE_NAME - 1) throw new DmCodecError(`${where} type '${t.type}' must be 1..${DM_MAX_TYPE_NAME - 1} bytes`);
  noNul(t.type, `${where} type`);
  noNul(t.params, `${where} parameters`);
}

/**
 * The DM_TABLE_LOAD payload: for each target a dm_target_spec, its parameter
 * string with its NUL, zero padding to 8. `next` is, as populate_table() reads
 * it on input, the distance from the start of this spec to the next one (set on
 * the last spec too, as libdevmapper does; the kernel ignores it there).
 */
export function encodeTargetSpecs(targets: readonly DmTargetSpec[]): Buffer {
  if (targets.length === 0) throw new DmCodecError('a table needs at least one target');
  const parts: Buffer[] = [];
  targets.forEach((t, i) => {
    checkTarget(t, i);
    const params = utf8(t.params);
    const size = align8(DM_TARGET_SPEC_SIZE + params.length + 1);
    const b = Buffer.alloc(size);
    b.writeBigUInt64LE(BigInt(t.start), DM_TARGET_SPEC_OFFSETS.sectorStart);
    b.writeBigUInt64LE(BigInt(t.length), DM_TARGET_SPEC_OFFSETS.length);
    b.writeInt32LE(0, DM_TARGET_SPEC_OFFSETS.status);
    b.writeUInt32LE(size, DM_TARGET_SPEC_OFFSETS.next);
    utf8(t.type).copy(b, DM_TARGET_SPEC_OFFSETS.targetType);
    params.copy(b, DM_TARGET_SPEC_SIZE);
    parts.push(b);
  });
  return Buffer.concat(parts);
}

export function encodeTableLoad(req: DmRequest, targets: readonly DmTargetSpec[]): Buffer {
  return encodeRequest(req, encodeTargetSpecs(targets), targets.length);
}

/**
 * Reads a DM_TABLE_LOAD request the way populate_table() does (first spec at
 * data_start, each `next` relative to the spec it is in, parameters
 * NUL-terminated, each next spec past the previous parameters and 8-aligned).
 */
export function decodeTableLoad(buf: Buffer): DmTargetSpec[] {
  const h = decodeDmIoctl(buf);
  const end = Math.min(h.dataSize, buf.length);
  const out: DmTargetSpec[] = [];
  if (h.targetCount === 0) throw new DmCodecError('table load names no targets');
  let spec = 0;
  let next = h.dataStart;
  let minSize = DM_IOCTL_SIZE;
  for (let i = 0; i < h.targetCount; i++) {
    if (next < minSize) throw new DmCodecError(`target ${i}: next offset ${next} overlaps the previous data`);
    if (next % 8 !== 0) throw new DmCodecError(`target ${i}: next offset ${next} is not 8-byte aligned`);
    spec += next;
    if (spec + DM_TARGET_SPEC_SIZE >= end) throw new DmCodecError(`target ${i}: spec extends beyond the end of the parameters`);
    const params = cString(buf, spec + DM_TARGET_SPEC_SIZE, end);
    if (!params.terminated) throw new DmCodecError(`target ${i}: parameters are not NUL-terminated`);
    out.push({
      start: readU64(buf, spec + DM_TARGET_SPEC_OFFSETS.sectorStart, 'sector_start'),
      length: readU64(buf, spec + DM_TARGET_SPEC_OFFSETS.length, 'length'),
      type: cString(buf, spec + DM_TARGET_SPEC_OFFSETS.targetType, spec + DM_TARGET_SPEC_SIZE).text,
      params: params.text,
    });
    minSize = params.next - spec;
    next = buf.readUInt32LE(spec + DM_TARGET_SPEC_OFFSETS.next);
  }
  return out;
}

/**
 * The specs of a DM_TABLE_STATUS or DM_DEV_WAIT reply. retrieve_status()
 * writes `next` as the offset from the start of the FIRST spec (the start of
 * the data area), not from the current one; the uapi header says so too.
 * A reply without a table has target_count 0 and data_size 305.
 */
export function decodeTargetSpecs(buf: Buffer): DmTargetSpecReply[] {
  const h = decodeDmIoctl(buf);
  if (h.flags & DM_BUFFER_FULL_FLAG) throw new DmCodecError('the status reply is truncated (DM_BUFFER_FULL_FLAG): retry with a larger buffer');
  const out: DmTargetSpecReply[] = [];
  if (h.targetCount === 0) return out;
  const base = h.dataStart;
  const end = Math.min(h.dataSize, buf.length);
  let spec = base;
  for (let i = 0; i < h.targetCount; i++) {
    if (spec < base || spec + DM_TARGET_SPEC_SIZE > end)
      throw new DmCodecError(`status reply: target ${i} at offset ${spec} lies outside the data (${base}..${end})`);
    const params = cString(buf, spec + DM_TARGET_SPEC_SIZE, end);
    out.push({
      start: readU64(buf, spec + DM_TARGET_SPEC_OFFSETS.sectorStart, 'sector_start'),
      length: readU64(buf, spec + DM_TARGET_SPEC_OFFSETS.length, 'length'),
      status: buf.readInt32LE(spec + DM_TARGET_SPEC_OFFSETS.status),
      type: cString(buf, spec + DM_TARGET_SPEC_OFFSETS.targetType, spec + DM_TARGET_SPEC_SIZE).text,
      params: params.text,
    });
    const next = base + buf.readUInt32LE(spec + DM_TARGET_SPEC_OFFSETS.next);
    if (i + 1 < h.targetCount && next <= spec) throw new DmCodecError(`status reply: target ${i} points back to offset ${next}`);
    spec = next;
  }
  return out;
}

// ---------------------------------------------------------------- DM_LIST_DEVICES (struct dm_name_list)

export interface DmNameListEntry {
  name: string;
  /** huge_encode_dev value. */
  dev: number;
  major: number;
  minor: number;
  /** Present on kernels that write the trailer after the name (interface >= 4.37). */
  eventNr?: number;
  /** The trailer flags (DM_NAME_LIST_FLAG_*), when there is a trailer. */
  listFlags?: number;
  /** The uuid when the kernel sent it (DM_UUID_FLAG asked, interface >= 4.45); '' when it says there is none. */
  uuid?: string;
}

/**
 * Entries of a DM_LIST_DEVICES reply. Each record is dev (u64), next (u32,
 * from the start of this record, 0 on the last), name with its NUL; newer
 * kernels then write, at the next 8-byte boundary, event_nr and flags (u32
 * each) and, when flags has HAS_UUID, the uuid at the following boundary. A
 * record only has that trailer when its extent reaches past it. No devices:
 * data_size is data_start (nothing written) or the first dev is 0.
 */
export function decodeNameList(buf: Buffer): DmNameListEntry[] {
  const h = decodeDmIoctl(buf);
  if (h.flags & DM_BUFFER_FULL_FLAG) throw new DmCodecError('the device list is truncated (DM_BUFFER_FULL_FLAG): retry with a larger buffer');
  const end = Math.min(h.dataSize, buf.length);
  const out: DmNameListEntry[] = [];
  let rec = h.dataStart;
  if (rec + 8 > end || buf.readBigUInt64LE(rec) === 0n) return out;
  for (;;) {
    if (rec + DM_NAME_LIST_NAME_OFFSET > end) throw new DmCodecError(`device list: record at offset ${rec} lies past the end of the data (${end})`);
    const dev = readU64(buf, rec, 'dev');
    const next = buf.readUInt32LE(rec + 8);
    const recEnd = next === 0 ? end : rec + next;
    if (recEnd > end) throw new DmCodecError(`device list: record at offset ${rec} runs past the end of the data (${end})`);
    const name = cString(buf, rec + DM_NAME_LIST_NAME_OFFSET, recEnd);
    if (!name.terminated) throw new DmCodecError(`device list: name at offset ${rec + DM_NAME_LIST_NAME_OFFSET} is not NUL-terminated`);
    const entry: DmNameListEntry = { name: name.text, dev, ...newDecodeDev(dev) };
    const trailer = align8(name.next);
    if (trailer + 8 <= recEnd) {
      entry.eventNr = buf.readUInt32LE(trailer);
      entry.listFlags = buf.readUInt32LE(trailer + 4);
      if (entry.listFlags & DM_NAME_LIST_FLAG_HAS_UUID) {
        const u = cString(buf, align8(trailer + 8), recEnd);
        if (!u.terminated) throw new DmCodecError(`device list: uuid of '${entry.name}' is not NUL-terminated`);
        entry.uuid = u.text;
      } else if (entry.listFlags & DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID) {
        entry.uuid = '';
      }
    }
    out.push(entry);
    if (next === 0) return out;
    if (next < DM_NAME_LIST_NAME_OFFSET + 1) throw new DmCodecError(`device list: record at offset ${rec} has next ${next}`);
    rec += next;
  }
}

// ---------------------------------------------------------------- DM_LIST_VERSIONS (struct dm_target_versions)

export interface DmTargetVersion {
  name: string;
  version: DmVersion;
}

/**
 * Entries of a DM_LIST_VERSIONS / DM_GET_TARGET_VERSION reply: next (u32, from
 * the start of this record, 0 on the last), version[3], name with its NUL,
 * the next record at the following 8-byte boundary. data_size may include up
 * to 7 spare bytes per target (the kernel sizes with ALIGN_MASK slack).
 */
export function decodeTargetVersions(buf: Buffer): DmTargetVersion[] {
  const h = decodeDmIoctl(buf);
  if (h.flags & DM_BUFFER_FULL_FLAG) throw new DmCodecError('the target list is truncated (DM_BUFFER_FULL_FLAG): retry with a larger buffer');
  const end = Math.min(h.dataSize, buf.length);
  const out: DmTargetVersion[] = [];
  let rec = h.dataStart;
  if (rec + DM_TARGET_VERSIONS_NAME_OFFSET > end) return out;
  for (;;) {
    if (rec + DM_TARGET_VERSIONS_NAME_OFFSET > end) throw new DmCodecError(`target list: record at offset ${rec} lies past the end of the data (${end})`);
    const next = buf.readUInt32LE(rec);
    const recEnd = next === 0 ? end : rec + next;
    if (recEnd > end) throw new DmCodecError(`target list: record at offset ${rec} runs past the end of the data (${end})`);
    const name = cString(buf, rec + DM_TARGET_VERSIONS_NAME_OFFSET, recEnd);
    if (!name.terminated) throw new DmCodecError(`target list: name at offset ${rec + DM_TARGET_VERSIONS_NAME_OFFSET} is not NUL-terminated`);
    out.push({ name: name.text, version: [buf.readUInt32LE(rec + 4), buf.readUInt32LE(rec + 8), buf.readUInt32LE(rec + 12)] });
    if (next === 0) return out;
    if (next < DM_TARGET_VERSIONS_NAME_OFFSET + 1) throw new DmCodecError(`target list: record at offset ${rec} has next ${next}`);
    rec += next;
  }
}

// ---------------------------------------------------------------- DM_TABLE_DEPS (struct dm_target_deps)

/** huge_encode_dev values of the devices the table uses. No table: an empty list. */
export function decodeTargetDeps(buf: Buffer): number[] {
  const h = decodeDmIoctl(buf);
  if (h.flags & DM_BUFFER_FULL_FLAG) throw new DmCodecError('the dependency list is truncated (DM_BUFFER_FULL_FLAG): retry with a larger buffer');
  const end = Math.min(h.dataSize, buf.length);
  const base = h.dataStart;
  if (base + DM_TARGET_DEPS_DEV_OFFSET > end) return [];
  const count = buf.readUInt32LE(base);
  if (base + DM_TARGET_DEPS_DEV_OFFSET + count * 8 > end)
    throw new DmCodecError(`dependency list: ${count} devices do not fit in the data (${end - base} bytes)`);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(readU64(buf, base + DM_TARGET_DEPS_DEV_OFFSET + i * 8, 'dev'));
  return out;
}

// ---------------------------------------------------------------- DM_TARGET_MSG (struct dm_target_msg)

/**
 * A target message: dm_target_msg { u64 sector; char message[] } at
 * data_start. The kernel writes its reply over the same area, so bufferSize
 * should leave room for it.
 */
export function encodeTargetMessage(req: DmRequest, sector: number, message: string): Buffer {
  noNul(message, 'target message');
  if (message.trim() === '') throw new DmCodecError('target message must not be empty');
  const text = utf8(message);
  const payload = Buffer.alloc(DM_TARGET_MSG_MESSAGE_OFFSET + text.length + 1);
  payload.writeBigUInt64LE(checkU64(sector, 'message sector'), 0);
  text.copy(payload, DM_TARGET_MSG_MESSAGE_OFFSET);
  return encodeRequest(req, payload);
}

/**
 * The reply text of DM_TARGET_MSG: present only when the kernel set
 * DM_DATA_OUT_FLAG (the target returned 1); then a NUL-terminated string at
 * data_start. undefined when the target produced no output.
 */
export function decodeMessageReply(buf: Buffer): string | undefined {
  const h = decodeDmIoctl(buf);
  if (!(h.flags & DM_DATA_OUT_FLAG)) return undefined;
  if (h.flags & DM_BUFFER_FULL_FLAG) throw new DmCodecError('the message reply is truncated (DM_BUFFER_FULL_FLAG): retry with a larger buffer');
  const end = Math.min(h.dataSize, buf.length);
  if (h.dataStart >= end) return '';
  return cString(buf, h.dataStart, end).text;
}

// ---------------------------------------------------------------- DM_DEV_RENAME, DM_DEV_SET_GEOMETRY

/** Rename (or, with `setUuid`, set the uuid of a device that has none): the new string at data_start. */
export function encodeRename(req: DmRequest, newValue: string, setUuid = false): Buffer {
  const problem = setUuid ? uuidProblem(newValue) : dmNameProblem(newValue);
  if (problem) throw new DmCodecError(problem);
  if (newValue === '') throw new DmCodecError('the new uuid must not be empty');
  const flags = (req.flags ?? 0) | (setUuid ? DM_UUID_FLAG : 0);
  return encodeRequest({ ...req, flags }, Buffer.concat([utf8(newValue), Buffer.alloc(1)]));
}

/**
 * `0 2048 linear 7:0 0`: a table or status line. No trailing blank for empty
 * parameters (`100 200 error`), where dmsetup prints one (`100 200 error `);
 * src/cli/commands/dm.ts has the byte-exact dmsetup form.
 */
export function formatTargetLine(t: DmTargetSpec): string {
  return t.params === '' ? `${t.start} ${t.length} ${t.type}` : `${t.start} ${t.length} ${t.type} ${t.params}`;
}
