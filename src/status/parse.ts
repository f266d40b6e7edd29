/**
 * Status lines (`<start> <length> <type> <tokens...>`, as `dmsetup status`,
 * DmDeviceTarget and the model print them) parsed into named, described
 * fields. Pure: text in, objects out.
 *
 * Known types: dm-remap-v4 (its 28 tokens), remap (the safe policy's 11),
 * dust (3) and flakey (none: the kernel prints an empty status; its table
 * line, when given, supplies the interesting part). Other types keep their
 * raw tokens.
 */

/** count: only grows (a rate makes sense); gauge: goes up and down; text: a word; flag: true/false. */
export type FieldKind = 'count' | 'gauge' | 'text' | 'flag';

export interface FieldDef {
  /** camelCase name used in JSON and CSV. */
  key: string;
  /** Short human label (fits the 80-column view). */
  label: string;
  kind: FieldKind;
  unit?: string;
  /** What the field really means, where its name says otherwise. */
  note?: string;
}

export interface StatusField extends FieldDef {
  value: string | number | boolean;
  /** The token it came from ('' for derived fields). */
  raw: string;
}

export interface TargetStatus {
  start: number;
  length: number;
  type: string;
  tokens: string[];
  /** Named fields in display order; empty when the type is unknown or its tokens did not match. */
  fields: StatusField[];
  /** True when the type has a parser here and the tokens matched it. */
  known: boolean;
  /** Why a known type's tokens did not match its layout. */
  mismatch?: string;
}

export class StatusParseError extends Error {
  override readonly name = 'StatusParseError';
}

/** u64 counters can exceed 2^53: keep those as exact decimal strings. */
function num(t: string): number | string {
  if (!/^\d+$/.test(t)) return t;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : t;
}

/** dm-remap-v4's 28 status tokens (design/dm-remap-v4.md, research v4-semantics.md section 3). */
export const V4_STATUS_FIELDS: readonly FieldDef[] = [
  { key: 'version', label: 'version', kind: 'text' },
  { key: 'mainPath', label: 'main', kind: 'text' },
  { key: 'sparePath', label: 'spare', kind: 'text' },
  { key: 'reads', label: 'reads', kind: 'count', note: 'bios mapped for READ' },
  { key: 'writes', label: 'writes', kind: 'count', note: 'bios mapped for every other direction' },
  { key: 'remappedReads', label: 'remapped reads', kind: 'count', note: 'READ bios sent to the spare by the hash lookup' },
  { key: 'errors', label: 'errors', kind: 'count', note: 'never incremented by the module: always 0' },
  { key: 'activeMappings', label: 'mappings', kind: 'count', note: 'remaps added since load (auto and test_remap; restored ones not counted)' },
  { key: 'ioOperations', label: 'io ops', kind: 'count' },
  { key: 'totalMapTimeNs', label: 'map time ns', kind: 'count', unit: 'ns', note: 'CPU time spent in map(), not device latency' },
  { key: 'avgMapTimeNs', label: 'avg map ns', kind: 'gauge', unit: 'ns' },
  { key: 'peakThroughput', label: 'peak map B/s', kind: 'gauge', unit: 'B/s', note: 'max bytes per second of map() CPU time; never reset' },
  { key: 'sectorSize', label: 'sector bytes', kind: 'gauge', unit: 'B' },
  {
    key: 'spareSectors',
    label: 'spare sectors',
    kind: 'gauge',
    unit: 'sectors',
    note: "the spare device's size, printed with %u (mod 2^32); checked against the loaded module",
  },
  { key: 'totalIos', label: 'total ios', kind: 'count' },
  { key: 'normalIos', label: 'normal ios', kind: 'count' },
  { key: 'remappedIos', label: 'remapped ios', kind: 'count' },
  { key: 'remappedSectors', label: 'remapped sect', kind: 'count', note: 'stats.remapped_sectors (documented as auto_remaps_made)' },
  { key: 'cacheHits', label: 'cache hits', kind: 'count' },
  { key: 'cacheMisses', label: 'cache misses', kind: 'count' },
  { key: 'fastPathHits', label: 'fast path', kind: 'count' },
  { key: 'slowPathHits', label: 'slow path', kind: 'count', note: 'never incremented by the module: always 0' },
  { key: 'healthScans', label: 'health scans', kind: 'count' },
  {
    key: 'healthScore',
    label: 'health',
    kind: 'gauge',
    unit: '%',
    note: "a status call that takes the module's health mutex prints the default 100; the next releases it and prints the real score (inverted trylock; a table load counts as one)",
  },
  { key: 'hotspots', label: 'hotspots', kind: 'gauge', note: 'the default 0 on every status call that takes the health mutex (see health)' },
  { key: 'cacheHitRatePct', label: 'cache hit rate', kind: 'gauge', unit: '%' },
  { key: 'mode', label: 'mode', kind: 'text', note: 'operational or maintenance (nothing sets maintenance)' },
  { key: 'deviceMode', label: 'device mode', kind: 'text', note: 'real or demo: the real_device_mode module parameter now' },
];

/** The safe policy's status: `v1 <main> <spare> <remaps> <pending> <used>/<total> <read errors> <write errors> <enospc> <state> <health>`. */
export const REMAP_STATUS_FIELDS: readonly FieldDef[] = [
  { key: 'version', label: 'version', kind: 'text' },
  { key: 'mainPath', label: 'main', kind: 'text' },
  { key: 'sparePath', label: 'spare', kind: 'text' },
  { key: 'remaps', label: 'remaps', kind: 'gauge', note: 'blocks now redirected to the spare' },
  { key: 'pending', label: 'pending', kind: 'gauge', note: 'unreadable blocks waiting for a write to remap them' },
  { key: 'spareUsed', label: 'spare used', kind: 'gauge', unit: 'blocks' },
  { key: 'spareTotal', label: 'spare total', kind: 'gauge', unit: 'blocks' },
  { key: 'readErrors', label: 'read errors', kind: 'count' },
  { key: 'writeErrors', label: 'write errors', kind: 'count' },
  { key: 'enospc', label: 'spare full', kind: 'count', note: 'writes that failed because the spare was full' },
  {
    key: 'state',
    label: 'state',
    kind: 'text',
    note: 'ok, spare_full, store_<errno> (the store under a device failed the last write, e.g. store_enospc: a full file system; clears with the next write that succeeds), metadata_failed (no remap can be recorded until reopened), failed_<main|spare>_<deleted|shrunk> (a backing file lost: writes and flushes fail until reopened)',
  },
  { key: 'health', label: 'health', kind: 'gauge', unit: '%', note: "health score 0..100 (the scanner's when one runs)" },
];

export const DUST_STATUS_FIELDS: readonly FieldDef[] = [
  { key: 'device', label: 'device', kind: 'text' },
  { key: 'failReads', label: 'fail reads', kind: 'flag', note: 'fail_read_on_bad_block (enabled) or bypass' },
  { key: 'quiet', label: 'quiet', kind: 'flag', note: 'quiet or verbose (logs each bad block hit)' },
];

/** Fields flakey's table line gives (its status is empty). */
export const FLAKEY_TABLE_FIELDS: readonly FieldDef[] = [
  { key: 'device', label: 'device', kind: 'text' },
  { key: 'offset', label: 'offset', kind: 'gauge', unit: 'sectors' },
  { key: 'upSeconds', label: 'up', kind: 'gauge', unit: 's' },
  { key: 'downSeconds', label: 'down', kind: 'gauge', unit: 's' },
  { key: 'features', label: 'features', kind: 'text' },
];

function field(def: FieldDef, value: string | number | boolean, raw: string): StatusField {
  return { ...def, value, raw };
}

type FieldsOrWhy = StatusField[] | string;

function v4Fields(t: string[]): FieldsOrWhy {
  if (t.length !== V4_STATUS_FIELDS.length) return `dm-remap-v4 prints ${V4_STATUS_FIELDS.length} status tokens, this line has ${t.length}`;
  const out = V4_STATUS_FIELDS.map((def, i) => field(def, def.kind === 'text' ? t[i] : num(t[i]), t[i]));
  const bad = out.find((f) => f.kind !== 'text' && typeof f.value !== 'number' && !/^\d+$/.test(String(f.value)));
  if (bad) return `dm-remap-v4 token ${out.indexOf(bad) + 1} (${bad.key}) must be a decimal number, got '${bad.raw}'`;
  return out;
}

function remapFields(t: string[]): FieldsOrWhy {
  if (t.length !== 11) return `remap prints 11 status tokens, this line has ${t.length}`;
  if (t[0] !== 'v1') return `remap status version must be v1, got '${t[0]}'`;
  const m = /^(\d+)\/(\d+)$/.exec(t[5]);
  if (!m) return `remap token 6 must be <used>/<total>, got '${t[5]}'`;
  const values: Array<string | number> = [t[0], t[1], t[2], num(t[3]), num(t[4]), num(m[1]), num(m[2]), num(t[6]), num(t[7]), num(t[8]), t[9], num(t[10])];
  const raws = [t[0], t[1], t[2], t[3], t[4], t[5], t[5], t[6], t[7], t[8], t[9], t[10]];
  const out = REMAP_STATUS_FIELDS.map((def, i) => field(def, values[i], raws[i]));
  const bad = out.find((f) => f.kind !== 'text' && typeof f.value !== 'number');
  if (bad) return `remap field ${bad.key} must be a decimal number, got '${bad.raw}'`;
  return out;
}

function dustFields(t: string[]): FieldsOrWhy {
  if (t.length !== 3) return `dust prints 3 status tokens, this line has ${t.length}`;
  if (t[1] !== 'fail_read_on_bad_block' && t[1] !== 'bypass') return `dust token 2 must be fail_read_on_bad_block or bypass, got '${t[1]}'`;
  if (t[2] !== 'quiet' && t[2] !== 'verbose') return `dust token 3 must be quiet or verbose, got '${t[2]}'`;
  return [
    field(DUST_STATUS_FIELDS[0], t[0], t[0]),
    field(DUST_STATUS_FIELDS[1], t[1] === 'fail_read_on_bad_block', t[1]),
    field(DUST_STATUS_FIELDS[2], t[2] === 'quiet', t[2]),
  ];
}

function splitLine(line: string): { start: number; length: number; type: string; tokens: string[] } {
  const words = line
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  if (words.length < 3 || !/^\d+$/.test(words[0]) || !/^\d+$/.test(words[1])) {
    throw new StatusParseError(`not a status line (expected '<start> <length> <type> ...'): '${line.trim().slice(0, 120)}'`);
  }
  const start = Number(words[0]);
  const length = Number(words[1]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length))
    throw new StatusParseError(`status line start/length beyond 2^53 sectors: '${line.trim().slice(0, 120)}'`);
  return { start, length, type: words[2], tokens: words.slice(3) };
}

/** flakey's table params: `<dev> <offset> <up> <down> [<#features> <features...>]`. */
function flakeyTableFields(tableLine: string | undefined): StatusField[] {
  if (tableLine === undefined) return [];
  const { type, tokens: a } = splitLine(tableLine);
  if (type !== 'flakey' || a.length < 4 || !/^\d+$/.test(a[1]) || !/^\d+$/.test(a[2]) || !/^\d+$/.test(a[3])) return [];
  const features = a.length > 5 ? a.slice(5).join(' ') : '';
  const values: Array<string | number> = [a[0], num(a[1]), num(a[2]), num(a[3]), features === '' ? '-' : features];
  return FLAKEY_TABLE_FIELDS.map((def, i) => field(def, values[i], i === 4 ? features : a[i]));
}

/** dust's table params: `<dev> <offset> <blksz>`: the block size tells what a bad-block count covers. */
function dustTableFields(tableLine: string | undefined): StatusField[] {
  if (tableLine === undefined) return [];
  const { type, tokens: a } = splitLine(tableLine);
  if (type !== 'dust' || a.length !== 3 || !/^\d+$/.test(a[2])) return [];
  return [field({ key: 'blockSize', label: 'block size', kind: 'gauge', unit: 'B' }, num(a[2]), a[2])];
}

/**
 * Parses one status line. `tableLine` (the same target's `dmsetup table`
 * line) adds what the status omits: flakey's up/down intervals, dust's block
 * size. Throws StatusParseError when the line is not `<start> <length> <type> ...`.
 */
export function parseStatusLine(line: string, tableLine?: string): TargetStatus {
  const { start, length, type, tokens } = splitLine(line);
  let r: FieldsOrWhy | undefined;
  switch (type) {
    case 'dm-remap-v4':
      r = v4Fields(tokens);
      break;
    case 'remap':
      r = remapFields(tokens);
      break;
    case 'dust':
      r = dustFields(tokens);
      if (typeof r !== 'string') r.push(...dustTableFields(tableLine));
      break;
    case 'flakey':
      r = tokens.length === 0 ? flakeyTableFields(tableLine) : `flakey prints no status tokens, this line has ${tokens.length}`;
      break;
    default:
      r = undefined;
  }
  if (r === undefined) return { start, length, type, tokens, fields: [], known: false };
  if (typeof r === 'string') return { start, length, type, tokens, fields: [], known: false, mismatch: r };
  return { start, length, type, tokens, fields: r, known: true };
}

/** Every line of a device's status (one per target); `tableText` lines pair with them by position. */
export function parseStatusText(text: string, tableText?: string): TargetStatus[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new StatusParseError('empty status: the device has no active table');
  const tables = tableText?.split('\n').filter((l) => l.trim() !== '') ?? [];
  return lines.map((l, i) => parseStatusLine(l, tables[i]));
}

/** `countbadblocks: N badblock(s) found` (dust's reply) -> N. */
export function parseDustCount(reply: string): number | undefined {
  const m = /countbadblocks:\s*(\d+)\s+badblock/.exec(reply);
  return m ? Number(m[1]) : undefined;
}

/** The fields as a plain record (key -> value). */
export function fieldRecord(s: TargetStatus): Record<string, string | number | boolean> {
  return Object.fromEntries(s.fields.map((f) => [f.key, f.value]));
}

/** A field's value as a number, when it is one. */
export function fieldNumber(s: TargetStatus, key: string): number | undefined {
  const f = s.fields.find((x) => x.key === key);
  return f && typeof f.value === 'number' ? f.value : undefined;
}
