/**
 * Loop device structs and ioctl numbers (include/uapi/linux/loop.h) as a pure
 * codec. Little-endian host order.
 */

export const LO_NAME_SIZE = 64;
export const LO_KEY_SIZE = 32;

export const LO_FLAGS_READ_ONLY = 1;
export const LO_FLAGS_AUTOCLEAR = 4;
export const LO_FLAGS_PARTSCAN = 8;
export const LO_FLAGS_DIRECT_IO = 16;
/** What LOOP_CONFIGURE accepts in info.lo_flags (anything else is EINVAL). */
export const LOOP_CONFIGURE_SETTABLE_FLAGS = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_DIRECT_IO;
/** What LOOP_SET_STATUS64 can set. */
export const LOOP_SET_STATUS_SETTABLE_FLAGS = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN;

export const LOOP_SET_FD = 0x4c00;
export const LOOP_CLR_FD = 0x4c01;
export const LOOP_SET_STATUS = 0x4c02;
export const LOOP_GET_STATUS = 0x4c03;
export const LOOP_SET_STATUS64 = 0x4c04;
export const LOOP_GET_STATUS64 = 0x4c05;
export const LOOP_CHANGE_FD = 0x4c06;
export const LOOP_SET_CAPACITY = 0x4c07;
export const LOOP_SET_DIRECT_IO = 0x4c08;
export const LOOP_SET_BLOCK_SIZE = 0x4c09;
export const LOOP_CONFIGURE = 0x4c0a;
export const LOOP_CTL_ADD = 0x4c80;
export const LOOP_CTL_REMOVE = 0x4c81;
export const LOOP_CTL_GET_FREE = 0x4c82;

/** The block device major of loop devices. */
export const LOOP_MAJOR = 7;

/** sizeof(struct loop_info64). */
export const LOOP_INFO64_SIZE = 232;
export const LOOP_INFO64_OFFSETS = {
  device: 0,
  inode: 8,
  rdevice: 16,
  offset: 24,
  sizeLimit: 32,
  number: 40,
  encryptType: 44,
  encryptKeySize: 48,
  flags: 52,
  fileName: 56,
  cryptName: 120,
  encryptKey: 184,
  init: 216,
} as const;

/** sizeof(struct loop_config): fd, block_size, loop_info64, __reserved[8]. */
export const LOOP_CONFIG_SIZE = 304;
export const LOOP_CONFIG_OFFSETS = { fd: 0, blockSize: 4, info: 8, reserved: 240 } as const;

export class LoopCodecError extends Error {
  override readonly name = 'LoopCodecError';
}

export interface LoopInfo64 {
  /** st_dev of the backing file (huge_encode_dev), read-only. */
  device: number;
  /** Inode of the backing file, read-only. */
  inode: number;
  /** st_rdev of the backing file, read-only. */
  rdevice: number;
  /** Byte offset into the backing file. */
  offset: number;
  /** Bytes exposed; 0 = up to the end of the file. */
  sizeLimit: number;
  /** N of /dev/loopN, read-only. */
  number: number;
  encryptType: number;
  encryptKeySize: number;
  flags: number;
  /** lo_file_name: informational, at most 63 bytes. */
  fileName: string;
  cryptName: string;
}

function u64(v: number, what: string): bigint {
  if (!Number.isSafeInteger(v) || v < 0) throw new LoopCodecError(`${what} must be an integer in 0..${Number.MAX_SAFE_INTEGER}, got ${v}`);
  return BigInt(v);
}

function u32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new LoopCodecError(`${what} must be an integer in 0..4294967295, got ${v}`);
  return v;
}

function readU64(buf: Buffer, off: number, what: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new LoopCodecError(`${what} ${v} does not fit in a JavaScript number`);
  return Number(v);
}

/** UTF-8 of `s` cut to at most `max` bytes without splitting a character. */
function truncatedUtf8(s: string, max: number): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

function cString(buf: Buffer, start: number, len: number): string {
  const nul = buf.indexOf(0, start);
  const end = nul >= 0 && nul < start + len ? nul : start + len;
  return buf.toString('utf8', start, end);
}

/** Writes struct loop_info64 at `at` (the read-only fields are written as given; the kernel ignores them). */
export function writeLoopInfo64(buf: Buffer, at: number, info: Partial<LoopInfo64>): void {
  const o = LOOP_INFO64_OFFSETS;
  if (buf.length < at + LOOP_INFO64_SIZE) throw new LoopCodecError(`loop_info64 needs ${LOOP_INFO64_SIZE} bytes at offset ${at}`);
  buf.fill(0, at, at + LOOP_INFO64_SIZE);
  buf.writeBigUInt64LE(u64(info.device ?? 0, 'lo_device'), at + o.device);
  buf.writeBigUInt64LE(u64(info.inode ?? 0, 'lo_inode'), at + o.inode);
  buf.writeBigUInt64LE(u64(info.rdevice ?? 0, 'lo_rdevice'), at + o.rdevice);
  buf.writeBigUInt64LE(u64(info.offset ?? 0, 'offset'), at + o.offset);
  buf.writeBigUInt64LE(u64(info.sizeLimit ?? 0, 'size limit'), at + o.sizeLimit);
  buf.writeUInt32LE(u32(info.number ?? 0, 'lo_number'), at + o.number);
  buf.writeUInt32LE(u32(info.encryptType ?? 0, 'lo_encrypt_type'), at + o.encryptType);
  buf.writeUInt32LE(u32(info.encryptKeySize ?? 0, 'lo_encrypt_key_size'), at + o.encryptKeySize);
  buf.writeUInt32LE(u32(info.flags ?? 0, 'lo_flags'), at + o.flags);
  truncatedUtf8(info.fileName ?? '', LO_NAME_SIZE - 1).copy(buf, at + o.fileName);
  truncatedUtf8(info.cryptName ?? '', LO_NAME_SIZE - 1).copy(buf, at + o.cryptName);
}

export function encodeLoopInfo64(info: Partial<LoopInfo64>): Buffer {
  const buf = Buffer.alloc(LOOP_INFO64_SIZE);
  writeLoopInfo64(buf, 0, info);
  return buf;
}

export function decodeLoopInfo64(buf: Buffer, at = 0): LoopInfo64 {
  const o = LOOP_INFO64_OFFSETS;
  if (buf.length < at + LOOP_INFO64_SIZE) throw new LoopCodecError(`loop_info64 needs ${LOOP_INFO64_SIZE} bytes, got ${buf.length - at}`);
  return {
    device: readU64(buf, at + o.device, 'lo_device'),
    inode: readU64(buf, at + o.inode, 'lo_inode'),
    rdevice: readU64(buf, at + o.rdevice, 'lo_rdevice'),
    offset: readU64(buf, at + o.offset, 'lo_offset'),
    sizeLimit: readU64(buf, at + o.sizeLimit, 'lo_sizelimit'),
    number: buf.readUInt32LE(at + o.number),
    encryptType: buf.readUInt32LE(at + o.encryptType),
    encryptKeySize: buf.readUInt32LE(at + o.encryptKeySize),
    flags: buf.readUInt32LE(at + o.flags),
    fileName: cString(buf, at + o.fileName, LO_NAME_SIZE),
    cryptName: cString(buf, at + o.cryptName, LO_NAME_SIZE),
  };
}

export interface LoopConfig {
  /** The backing file's descriptor. */
  fd: number;
  /** Logical block size; 0 = the kernel's default (512, or the backing file's DIO alignment with direct I/O). */
  blockSize: number;
  info: Partial<LoopInfo64>;
}

/** struct loop_config for LOOP_CONFIGURE (the kernel 5.8+ one-shot attach). */
export function encodeLoopConfig(cfg: LoopConfig): Buffer {
  const buf = Buffer.alloc(LOOP_CONFIG_SIZE);
  buf.writeUInt32LE(u32(cfg.fd, 'fd'), LOOP_CONFIG_OFFSETS.fd);
  buf.writeUInt32LE(u32(cfg.blockSize, 'block size'), LOOP_CONFIG_OFFSETS.blockSize);
  const flags = cfg.info.flags ?? 0;
  if (flags & ~LOOP_CONFIGURE_SETTABLE_FLAGS)
    throw new LoopCodecError(
      `loop flags 0x${flags.toString(16)} include bits LOOP_CONFIGURE does not accept (allowed: 0x${LOOP_CONFIGURE_SETTABLE_FLAGS.toString(16)})`,
    );
  writeLoopInfo64(buf, LOOP_CONFIG_OFFSETS.info, cfg.info);
  return buf;
}

export function decodeLoopConfig(buf: Buffer): { fd: number; blockSize: number; info: LoopInfo64 } {
  if (buf.length < LOOP_CONFIG_SIZE) throw new LoopCodecError(`loop_config needs ${LOOP_CONFIG_SIZE} bytes, got ${buf.length}`);
  return {
    fd: buf.readUInt32LE(LOOP_CONFIG_OFFSETS.fd),
    blockSize: buf.readUInt32LE(LOOP_CONFIG_OFFSETS.blockSize),
    info: decodeLoopInfo64(buf, LOOP_CONFIG_OFFSETS.info),
  };
}
