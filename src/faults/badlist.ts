/**
 * Bad-sector lists as pure codecs (text in, typed objects out, and back):
 * a plain list file (one sector a line) and a GNU ddrescue mapfile; plus a
 * loader that puts such a set into a DustDevice.
 *
 * ddrescue mapfile (GNU ddrescue manual, "Mapfile structure", 1.27): comment
 * lines and trailing comments start with '#' at line start or after
 * whitespace; the first other line is the status line
 * `<current_pos> <current_status> [<current_pass>]` (the pass field is absent
 * in mapfiles from ddrescue before 1.21); then one `<pos> <size> <status>`
 * line per block, in bytes, contiguous and non-overlapping. Numbers use C
 * integer syntax: decimal, 0x hexadecimal, or 0-prefixed octal. Block
 * statuses: '?' non-tried, '*' failed non-trimmed, '/' failed non-scraped,
 * '-' failed bad-sector(s), '+' finished.
 *
 * Which blocks count as bad: by default every failed block, '-', '*' and
 * '/'. A '*' or '/' block is one where a read failed and ddrescue has not
 * yet narrowed the failure down to sectors, so its data was not rescued and
 * somewhere inside it is at least one unreadable sector; treating the whole
 * block as bad errs towards more failures, never towards reads that succeed
 * on a real disk's unreadable sector. Pass `statuses: ['-']` to take only
 * the sectors ddrescue has confirmed bad. '?' (never tried) is not bad.
 * A block that covers part of a sector makes the whole sector bad, as
 * `ddrescuelog -l` lists it.
 */
import { SECTOR_SIZE } from '../block/device.js';
import type { DustDevice } from './dust.js';

export class BadListError extends Error {
  override readonly name = 'BadListError';
  constructor(
    /** 1-based line number, 0 for a problem with the file as a whole. */
    readonly line: number,
    readonly reason: string,
    source = 'bad-sector list',
  ) {
    super(line > 0 ? `${source}, line ${line}: ${reason}` : `${source}: ${reason}`);
  }
}

export interface SectorRange {
  start: number;
  count: number;
}

// ---------------------------------------------------------------- plain list

export interface PlainListOptions {
  /** Sectors must be below this (the device size in sectors). */
  limit?: number;
}

function stripHashComment(line: string): string {
  const i = line.indexOf('#');
  return i < 0 ? line : line.slice(0, i);
}

/**
 * One sector number a line (decimal, or hexadecimal with 0x), blank lines and
 * `#` comments allowed anywhere. Returns the sectors sorted, without
 * duplicates.
 */
export function parseSectorList(text: string, opts: PlainListOptions = {}): number[] {
  const set = new Set<number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const body = stripHashComment(lines[i]!).trim();
    if (body === '') continue;
    const lineNo = i + 1;
    if (/\s/.test(body)) throw new BadListError(lineNo, `expected one sector number, got '${body}'`);
    let v: bigint;
    if (/^[0-9]+$/.test(body)) v = BigInt(body);
    else if (/^0[xX][0-9a-fA-F]+$/.test(body)) v = BigInt(body);
    else throw new BadListError(lineNo, `'${body}' is not a sector number (decimal, or hexadecimal with 0x)`);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BadListError(lineNo, `sector ${body} is too large (at most ${Number.MAX_SAFE_INTEGER})`);
    const s = Number(v);
    if (opts.limit !== undefined && s >= opts.limit) {
      throw new BadListError(lineNo, `sector ${s} is beyond the device end (sectors 0..${opts.limit - 1})`);
    }
    set.add(s);
  }
  return [...set].sort((a, b) => a - b);
}

/** The inverse of parseSectorList: one sector a line, optional `#` header lines. */
export function formatSectorList(sectors: readonly number[], header?: string): string {
  const head = header
    ? header
        .split('\n')
        .map((l) => `# ${l}\n`)
        .join('')
    : '';
  return (
    head +
    [...new Set(sectors)]
      .sort((a, b) => a - b)
      .map((s) => `${s}\n`)
      .join('')
  );
}

/** Sorted unique sectors -> maximal runs. */
export function sectorsToRanges(sectors: readonly number[]): SectorRange[] {
  const sorted = [...new Set(sectors)].sort((a, b) => a - b);
  const out: SectorRange[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && last.start + last.count === s) last.count++;
    else out.push({ start: s, count: 1 });
  }
  return out;
}

// ---------------------------------------------------------- ddrescue mapfile

export type DdrescueBlockStatus = '?' | '*' | '/' | '-' | '+';
export type DdrescuePhase = '?' | '*' | '/' | '-' | 'F' | 'G' | '+';

export interface DdrescueBlock {
  /** Byte position in the input. */
  pos: number;
  /** Size in bytes (> 0). */
  size: number;
  status: DdrescueBlockStatus;
}

export interface DdrescueMap {
  /** Byte position ddrescue was working at. */
  currentPos: number;
  currentStatus: DdrescuePhase;
  /** Pass number in the current phase; absent in mapfiles written before ddrescue 1.21. */
  currentPass?: number;
  blocks: DdrescueBlock[];
}

const BLOCK_STATUSES = new Set(['?', '*', '/', '-', '+']);
const PHASES = new Set(['?', '*', '/', '-', 'F', 'G', '+']);
const MAPFILE = 'ddrescue mapfile';

/** '#' at the start of a line or after whitespace begins a comment. */
function stripMapfileComment(line: string): string {
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

/** An integer in C++ literal syntax: decimal, 0x hex, 0 octal. */
function parseCInteger(tok: string): bigint | undefined {
  if (/^[1-9][0-9]*$/.test(tok)) return BigInt(tok);
  if (/^0[xX][0-9a-fA-F]+$/.test(tok)) return BigInt(tok);
  if (/^0[0-7]*$/.test(tok)) return BigInt(`0o${tok.slice(1) || '0'}`);
  return undefined;
}

function mapfileInt(tok: string, what: string, lineNo: number): number {
  const v = parseCInteger(tok);
  if (v === undefined) throw new BadListError(lineNo, `${what} '${tok}' is not an integer (decimal, 0x hexadecimal or 0 octal)`, MAPFILE);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new BadListError(lineNo, `${what} ${tok} is too large`, MAPFILE);
  return Number(v);
}

export function parseDdrescueMapfile(text: string): DdrescueMap {
  const lines = text.split(/\r?\n/);
  let map: DdrescueMap | undefined;
  let end = 0;
  for (let i = 0; i < lines.length; i++) {
    const body = stripMapfileComment(lines[i]!).trim();
    if (body === '') continue;
    const lineNo = i + 1;
    const toks = body.split(/\s+/);
    if (!map) {
      if (toks.length < 2 || toks.length > 3) {
        throw new BadListError(lineNo, `bad status line '${body}' (expected '<current_pos> <current_status> [<current_pass>]')`, MAPFILE);
      }
      const currentPos = mapfileInt(toks[0]!, 'current_pos', lineNo);
      if (!PHASES.has(toks[1]!)) throw new BadListError(lineNo, `current_status '${toks[1]}' is not one of ? * / - F G +`, MAPFILE);
      map = { currentPos, currentStatus: toks[1] as DdrescuePhase, blocks: [] };
      if (toks.length === 3) {
        if (!/^[1-9][0-9]*$/.test(toks[2]!)) throw new BadListError(lineNo, `current_pass '${toks[2]}' must be a positive decimal integer`, MAPFILE);
        map.currentPass = Number(toks[2]);
      }
      continue;
    }
    if (toks.length !== 3) throw new BadListError(lineNo, `bad block line '${body}' (expected '<pos> <size> <status>')`, MAPFILE);
    const pos = mapfileInt(toks[0]!, 'pos', lineNo);
    const size = mapfileInt(toks[1]!, 'size', lineNo);
    const status = toks[2]!;
    if (size <= 0) throw new BadListError(lineNo, `block size must be > 0, got ${toks[1]}`, MAPFILE);
    if (!BLOCK_STATUSES.has(status)) throw new BadListError(lineNo, `block status '${status}' is not one of ? * / - +`, MAPFILE);
    if (map.blocks.length > 0 && pos !== end) {
      throw new BadListError(lineNo, `blocks are not contiguous: this block starts at ${pos}, the previous one ends at ${end}`, MAPFILE);
    }
    map.blocks.push({ pos, size, status: status as DdrescueBlockStatus });
    end = pos + size;
  }
  if (!map) throw new BadListError(0, "no status line (expected '<current_pos> <current_status> [<current_pass>]')", MAPFILE);
  return map;
}

const hex = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;

/** Writes a mapfile in ddrescue's own layout (hex numbers). */
export function formatDdrescueMapfile(map: DdrescueMap, comment = 'Mapfile. Created by remapsim'): string {
  const out = [`# ${comment}`];
  if (map.currentPass !== undefined) {
    out.push('# current_pos  current_status  current_pass', `${hex(map.currentPos)}     ${map.currentStatus}               ${map.currentPass}`);
  } else {
    out.push('# current_pos  current_status', `${hex(map.currentPos)}     ${map.currentStatus}`);
  }
  out.push('#      pos        size  status');
  for (const b of map.blocks) out.push(`${hex(b.pos)}  ${hex(b.size)}  ${b.status}`);
  return out.join('\n') + '\n';
}

/** The bytes a mapfile's blocks cover, from 0 (a mapfile covers its whole input). */
export function ddrescueMapExtent(map: DdrescueMap): number {
  const last = map.blocks[map.blocks.length - 1];
  return last === undefined ? 0 : last.pos + last.size;
}

/**
 * Refuses a mapfile made for a device of another size: ddrescue maps its
 * whole input, so the blocks must start at 0 and end at the device's last
 * byte; one that ends elsewhere describes another device (or a rescue of part
 * of one), and its sectors would land on the wrong places.
 */
export function checkDdrescueMapSize(map: DdrescueMap, deviceBytes: number, source = MAPFILE): void {
  const first = map.blocks[0];
  const end = ddrescueMapExtent(map);
  if (first !== undefined && first.pos !== 0)
    throw new BadListError(0, `its blocks start at byte ${first.pos}, not 0: a ddrescue mapfile covers its whole device`, source);
  if (end !== deviceBytes) {
    throw new BadListError(0, `it maps ${end} bytes, the device has ${deviceBytes}: a mapfile of a device of another size is refused`, source);
  }
}

/**
 * A finished ddrescue mapfile of a device of `deviceBytes` whose bad sectors
 * are `bad`: bad areas '-' (failed bad sectors), the rest '+' (finished), as
 * ddrescue leaves a device it has read whole.
 */
export function ddrescueMapOf(deviceBytes: number, bad: readonly SectorRange[], sectorSize = SECTOR_SIZE): DdrescueMap {
  const blocks: DdrescueBlock[] = [];
  let at = 0;
  const push = (pos: number, size: number, status: DdrescueBlockStatus): void => {
    if (size <= 0) return;
    const prev = blocks[blocks.length - 1];
    if (prev && prev.status === status && prev.pos + prev.size === pos) prev.size += size;
    else blocks.push({ pos, size, status });
  };
  for (const r of [...bad].sort((a, b) => a.start - b.start)) {
    const pos = Math.max(at, r.start * sectorSize);
    const end = Math.min(deviceBytes, (r.start + r.count) * sectorSize);
    if (end <= pos) continue;
    push(at, pos - at, '+');
    push(pos, end - pos, '-');
    at = end;
  }
  push(at, deviceBytes - at, '+');
  return { currentPos: 0, currentStatus: '+', currentPass: 1, blocks };
}

export interface BadRangeOptions {
  /** Block statuses that count as bad (default '-', '*', '/'). */
  statuses?: readonly DdrescueBlockStatus[];
  /** Sector size in bytes (default 512). */
  sectorSize?: number;
}

/** The sectors of the map's bad blocks, as merged ranges; a partly covered sector counts. */
export function ddrescueBadRanges(map: DdrescueMap, opts: BadRangeOptions = {}): SectorRange[] {
  const want = new Set<string>(opts.statuses ?? ['-', '*', '/']);
  const ss = opts.sectorSize ?? SECTOR_SIZE;
  const out: SectorRange[] = [];
  for (const b of map.blocks) {
    if (!want.has(b.status)) continue;
    const first = Math.floor(b.pos / ss);
    const last = Math.floor((b.pos + b.size - 1) / ss);
    const prev = out[out.length - 1];
    if (prev && prev.start + prev.count >= first) prev.count = Math.max(prev.count, last + 1 - prev.start);
    else out.push({ start: first, count: last + 1 - first });
  }
  return out;
}

// ------------------------------------------------------ either kind of file

/**
 * A plain list or a ddrescue mapfile, told apart by the first line that is
 * not blank or a comment: a mapfile's status line has two or three fields, a
 * list line one. Returns the bad sectors as merged ranges; with
 * `deviceBytes`, a mapfile of a device of another size is refused.
 */
export function parseBadSectorFile(text: string, opts: { deviceBytes?: number } = {}): SectorRange[] {
  const first = text
    .split(/\r?\n/)
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .find((l) => l !== '');
  if (first !== undefined && first.split(/\s+/).length >= 2) {
    const map = parseDdrescueMapfile(text);
    if (opts.deviceBytes !== undefined) checkDdrescueMapSize(map, opts.deviceBytes);
    return ddrescueBadRanges(map);
  }
  return sectorsToRanges(parseSectorList(text));
}

// -------------------------------------------------------------- into dust

export interface DustLoadOptions {
  /** Write failures each added block gets before a write clears it (0..255, default 0). */
  wrFailCnt?: number;
  /** Refuse sets that would list more blocks than this (default 10,000,000). */
  maxBlocks?: number;
}

export interface DustLoadResult {
  /** Blocks newly put on the list. */
  added: number;
  /** Blocks that were already listed (left as they were). */
  alreadyListed: number;
}

/**
 * Lists in `dust` every block holding one of the given sectors. Sectors are
 * the dust device's own (target) sectors; dust numbers blocks on the
 * underlying device, so the table offset is added. dust fails whole blocks:
 * one bad sector makes its whole block fail.
 */
export function loadIntoDust(dust: DustDevice, bad: readonly number[] | readonly SectorRange[], opts: DustLoadOptions = {}): DustLoadResult {
  const ranges: SectorRange[] = bad.length > 0 && typeof bad[0] === 'number' ? sectorsToRanges(bad as number[]) : [...(bad as SectorRange[])];
  const spb = dust.sectorsPerBlock;
  const maxBlocks = opts.maxBlocks ?? 10_000_000;
  const blocks = new Set<number>();
  for (const r of ranges) {
    if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.count) || r.start < 0 || r.count <= 0) {
      throw new BadListError(0, `invalid sector range start=${r.start} count=${r.count}`);
    }
    if (r.start + r.count > dust.sectors) {
      throw new BadListError(0, `sectors ${r.start}..${r.start + r.count - 1} are beyond the end of ${dust.name} (sectors 0..${dust.sectors - 1})`);
    }
    const lo = Math.floor((dust.offset + r.start) / spb);
    const hi = Math.floor((dust.offset + r.start + r.count - 1) / spb);
    if (hi - lo + 1 > maxBlocks) throw new BadListError(0, `the set covers more than ${maxBlocks} blocks (maxBlocks)`);
    for (let b = lo; b <= hi; b++) {
      blocks.add(b);
      if (blocks.size > maxBlocks) throw new BadListError(0, `the set covers more than ${maxBlocks} blocks (maxBlocks)`);
    }
  }
  let added = 0;
  let alreadyListed = 0;
  for (const b of [...blocks].sort((x, y) => x - y)) {
    if (dust.isBadBlock(b)) {
      alreadyListed++;
      continue;
    }
    dust.addBadBlock(b, opts.wrFailCnt ?? 0);
    added++;
  }
  return { added, alreadyListed };
}
