/**
 * What the simulator's stores hold instead of data: each 512-byte sector is a
 * stamp saying which generation of which unit (and which sector of it) it
 * carries. A stamped sector is 20 bytes of header and zeroes; anything else a
 * layer writes (the policies' metadata) is kept as bytes. The policy code
 * copies, splits and misroutes stamped sectors exactly as it would data, and
 * before the oracle judges a read the stamps are turned back into the bytes
 * the verify pattern would have written (expand()).
 *
 *   0  u32 STAMP_MAGIC
 *   4  u32 kind: 1 data, 2 a main sector's content from before the run
 *   8  u32 data: the unit's slot   | initial: the sector, low 32 bits
 *  12  u32 data: its generation    | initial: the sector, high bits
 *  16  u32 data: the sector's index within the unit
 */
import { SECTOR_SIZE } from '../block/device.js';

export const STAMP_MAGIC = 0x4d495347; // "GSIM" little-endian
export const KIND_DATA = 1;
export const KIND_INITIAL = 2;

export interface DataStamp {
  readonly kind: 1;
  readonly slot: number;
  readonly gen: number;
  readonly part: number;
}

export interface InitialStamp {
  readonly kind: 2;
  /** The main sector whose pre-run content this is. */
  readonly sector: number;
}

export type Stamp = DataStamp | InitialStamp;

/** A sector's content as a store keeps it: a stamp, bytes, or 0 for zeroes. */
export type SectorValue = Stamp | Uint8Array | 0;

const TWO32 = 4294967296;
const WORDS = SECTOR_SIZE / 4;

/** 32-bit words of a buffer (a copy-free view when it is 4-byte aligned, as every buffer the simulator makes is). */
function words(buf: Uint8Array): Uint32Array {
  if (buf.byteOffset % 4 === 0) return new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
  return new Uint32Array(buf.slice().buffer);
}

/**
 * Writes sector `i` of `buf` from `v` (undefined: `initialSector`'s own
 * pre-run content, or zeroes when that is undefined too). `w`: words(buf),
 * when the caller writes many sectors of one buffer.
 */
export function putSector(buf: Uint8Array, i: number, v: SectorValue | undefined, initialSector?: number, w?: Uint32Array): void {
  const off = i * SECTOR_SIZE;
  if (v instanceof Uint8Array) {
    buf.set(v, off);
    return;
  }
  buf.fill(0, off, off + SECTOR_SIZE);
  if (v === 0) return;
  if (v === undefined) {
    if (initialSector === undefined) return;
    v = { kind: KIND_INITIAL, sector: initialSector };
  }
  if (buf.byteOffset % 4 !== 0) {
    const tmp = new Uint8Array(SECTOR_SIZE);
    putSector(tmp, 0, v);
    buf.set(tmp, off);
    return;
  }
  const u = w ?? words(buf);
  const o = i * WORDS;
  u[o] = STAMP_MAGIC;
  u[o + 1] = v.kind;
  if (v.kind === KIND_DATA) {
    u[o + 2] = v.slot;
    u[o + 3] = v.gen;
    u[o + 4] = v.part;
  } else {
    u[o + 2] = v.sector % TWO32;
    u[o + 3] = Math.floor(v.sector / TWO32);
  }
}

/** What sector `i` of `buf` holds: a stamp, 0 for zeroes, or a copy of its bytes. `w`: words(buf). */
export function getSector(buf: Uint8Array, i: number, w?: Uint32Array): SectorValue {
  const u = w ?? words(buf);
  const o = i * WORDS;
  if (u[o] === STAMP_MAGIC) {
    const kind = u[o + 1];
    if (kind === KIND_DATA) return { kind: KIND_DATA, slot: u[o + 2]!, gen: u[o + 3]!, part: u[o + 4]! };
    if (kind === KIND_INITIAL) return { kind: KIND_INITIAL, sector: u[o + 2]! + u[o + 3]! * TWO32 };
  }
  for (let k = o; k < o + WORDS; k++) if (u[k] !== 0) return buf.slice(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE);
  return 0;
}

export { words as sectorWords };

/** Fills `buf` (whole units of `unitSectors`) with the stamps of generation `gens[k]` of slot `slot0 + k`. */
export function stampUnits(buf: Uint8Array, slot0: number, gens: readonly number[], unitSectors: number): void {
  for (let k = 0; k < gens.length; k++) {
    for (let p = 0; p < unitSectors; p++) putSector(buf, k * unitSectors + p, { kind: KIND_DATA, slot: slot0 + k, gen: gens[k]!, part: p });
  }
}

/** The bytes of a unit: (slot, gen) -> the verify pattern's unit (see SlotOracle.unitBytes). */
export type UnitBytes = (slot: number, gen: number) => Uint8Array;

/** Bytes that are nobody's data of this run: a main sector's pre-run content. */
function foreignSector(out: Uint8Array, off: number, sector: number): void {
  for (let o = 0; o < SECTOR_SIZE; o += 8) {
    out[off + o] = 0xa5;
    out[off + o + 1] = 0xa5;
    out[off + o + 4] = sector & 0xff;
    out[off + o + 5] = (sector >>> 8) & 0xff;
  }
}

/**
 * Turns a stamped buffer into the bytes it stands for, in place: each data
 * stamp becomes its sector of the unit's verify-pattern bytes, an initial
 * stamp foreign bytes, zeroes and kept bytes stay as they are.
 */
export function expand(buf: Uint8Array, unitBytes: UnitBytes): void {
  const n = buf.length / SECTOR_SIZE;
  const w = words(buf);
  let lastSlot = -1;
  let lastGen = -1;
  let last: Uint8Array | undefined;
  for (let i = 0; i < n; i++) {
    const v = getSector(buf, i, w);
    if (v === 0 || v instanceof Uint8Array) continue;
    const off = i * SECTOR_SIZE;
    if (v.kind === KIND_INITIAL) {
      foreignSector(buf, off, v.sector);
      continue;
    }
    if (v.slot !== lastSlot || v.gen !== lastGen || last === undefined) {
      last = unitBytes(v.slot, v.gen);
      lastSlot = v.slot;
      lastGen = v.gen;
    }
    const from = v.part * SECTOR_SIZE;
    if (from + SECTOR_SIZE <= last.length) buf.set(last.subarray(from, from + SECTOR_SIZE), off);
    else foreignSector(buf, off, v.slot);
  }
}
