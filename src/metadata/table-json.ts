/**
 * Remap tables as JSON, for `remapsim export` and `import`: a pure codec with
 * a schema whose error messages name the field.
 *
 * remapsim safe format (addresses in remap blocks of `remapBlockSectors`):
 *   { "format": "remapsim-safe", "version": 1, "spareSectors": n, "remapBlockSectors": 1,
 *     "fingerprint": { "mainSectors": n, "logicalBlockSize": 512, "identity": "" },
 *     "cursor": n, "remaps": [ { "main": n, "spare": n }, ... ] }
 *
 * dm-remap-v4 (sectors; entries in the module's order, at most 2048):
 *   { "format": "dm-remap-v4", "version": 1, "sequence": n, "timestamp": n,
 *     "mainSectors": n, "spareSectors": n,
 *     "entries": [ { "originalSector": n, "spareSector": n, "timestampNs": n,
 *                    "accessCount": n, "errorCount": n, "reason": n, "flags": n }, ... ] }
 *
 * u64 fields are JSON numbers below 2^53 and decimal strings from there on;
 * import accepts either.
 */
import { z } from 'zod';
import { type V4Metadata, type V4RemapEntry, V4_MAX_REMAPS, v4Metadata } from './dm-remap-v4.js';
import { MetadataValueError } from './errors.js';
import type { DeviceFingerprint, SafeState } from './safe-format.js';

export const TABLE_JSON_VERSION = 1;

export interface SafeTableJson {
  format: 'remapsim-safe';
  version: 1;
  spareSectors: number;
  remapBlockSectors: number;
  fingerprint: DeviceFingerprint;
  cursor: number;
  remaps: Array<{ main: number; spare: number }>;
}

type U64Json = number | string;

export interface V4EntryJson {
  originalSector: U64Json;
  spareSector: U64Json;
  timestampNs: U64Json;
  accessCount: number;
  errorCount: number;
  reason: number;
  flags: number;
}

export interface V4TableJson {
  format: 'dm-remap-v4';
  version: 1;
  sequence: U64Json;
  timestamp: U64Json;
  mainSectors: U64Json;
  spareSectors: U64Json;
  entries: V4EntryJson[];
}

export type TableJson = SafeTableJson | V4TableJson;

function u64Json(v: bigint): U64Json {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

export function safeTableToJson(t: { spareSectors: number; remapBlockSectors: number; fingerprint: DeviceFingerprint; state: SafeState }): SafeTableJson {
  return {
    format: 'remapsim-safe',
    version: TABLE_JSON_VERSION,
    spareSectors: t.spareSectors,
    remapBlockSectors: t.remapBlockSectors,
    fingerprint: { ...t.fingerprint },
    cursor: t.state.cursor,
    remaps: [...t.state.remaps.entries()].sort((a, b) => a[0] - b[0]).map(([main, spare]) => ({ main, spare })),
  };
}

export function v4TableToJson(m: V4Metadata): V4TableJson {
  return {
    format: 'dm-remap-v4',
    version: TABLE_JSON_VERSION,
    sequence: u64Json(m.sequence),
    timestamp: u64Json(m.timestamp),
    mainSectors: u64Json(m.mainSectors),
    spareSectors: u64Json(m.spareSectors),
    entries: m.entries.map((e) => ({
      originalSector: u64Json(e.originalSector),
      spareSector: u64Json(e.spareSector),
      timestampNs: u64Json(e.timestampNs),
      accessCount: e.accessCount,
      errorCount: e.errorCount,
      reason: e.reason,
      flags: e.flags,
    })),
  };
}

// ---------------------------------------------------------------- parsing

/** A message for a wrong value, or "required" when the field is missing. */
const err = (text: string) => (issue: { input?: unknown }) => (issue.input === undefined ? 'required' : text);
const safeInt = (min = 0) =>
  z
    .number({ error: err('expected a number') })
    .int('expected an integer')
    .min(min, `expected an integer >= ${min}`)
    .max(Number.MAX_SAFE_INTEGER, 'expected an integer below 2^53');
const uint = (bits: 16 | 32) =>
  z
    .number({ error: err('expected a number') })
    .int('expected an integer')
    .min(0, 'expected an integer >= 0')
    .max(bits === 16 ? 0xffff : 0xffffffff, `expected an integer <= ${bits === 16 ? 65535 : 4294967295}`);
const u64 = z
  .union([safeInt(0), z.string().regex(/^(0|[1-9][0-9]{0,19})$/, 'expected a decimal integer string below 2^64')], {
    error: err('expected an integer (a number, or a decimal string beyond 2^53)'),
  })
  .refine((v) => typeof v === 'number' || (/^[0-9]+$/.test(v) && BigInt(v) < 1n << 64n), 'expected a value below 2^64');

const safeSchema = z
  .object({
    format: z.literal('remapsim-safe'),
    version: z.literal(TABLE_JSON_VERSION, { error: err(`expected ${TABLE_JSON_VERSION}`) }),
    spareSectors: safeInt(1),
    remapBlockSectors: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8)], { error: err('expected 1, 2, 4 or 8') }),
    fingerprint: z
      .object({
        mainSectors: safeInt(1),
        logicalBlockSize: z.union([z.literal(512), z.literal(1024), z.literal(2048), z.literal(4096)], { error: err('expected 512, 1024, 2048 or 4096') }),
        identity: z.string({ error: err('expected a string') }).refine((s) => Buffer.byteLength(s) <= 128, 'expected at most 128 bytes of UTF-8'),
      })
      .strict(),
    cursor: safeInt(0),
    remaps: z.array(z.object({ main: safeInt(0), spare: safeInt(0) }).strict(), { error: err('expected an array') }),
  })
  .strict();

const v4Schema = z
  .object({
    format: z.literal('dm-remap-v4'),
    version: z.literal(TABLE_JSON_VERSION, { error: err(`expected ${TABLE_JSON_VERSION}`) }),
    sequence: u64,
    timestamp: u64,
    mainSectors: u64,
    spareSectors: u64,
    entries: z
      .array(
        z
          .object({
            originalSector: u64,
            spareSector: u64,
            timestampNs: u64.optional(),
            accessCount: uint(32).optional(),
            errorCount: uint(32).optional(),
            reason: uint(16).optional(),
            flags: uint(16).optional(),
          })
          .strict(),
        { error: err('expected an array') },
      )
      .max(V4_MAX_REMAPS, `expected at most ${V4_MAX_REMAPS} entries (the module persists no more)`),
  })
  .strict();

function fieldName(p: ReadonlyArray<PropertyKey>): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s ? `.${String(k)}` : String(k);
  return s || '(top level)';
}

function firstIssue(error: z.ZodError): MetadataValueError {
  const issue = error.issues[0];
  const field = fieldName(issue.path);
  let msg = issue.message;
  if (issue.code === 'unrecognized_keys') msg = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  if (issue.code === 'too_big' && issue.origin === 'array') msg = issue.message;
  return new MetadataValueError(field, `${field}: ${msg}`);
}

/** Parses and validates an exported table; the error names the field. */
export function parseTableJson(text: string): TableJson {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new MetadataValueError('(json)', `not valid JSON: ${(e as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new MetadataValueError('(top level)', '(top level): expected a JSON object');
  const format = (data as { format?: unknown }).format;
  if (format === 'remapsim-safe') {
    const r = safeSchema.safeParse(data);
    if (!r.success) throw firstIssue(r.error);
    return r.data as SafeTableJson;
  }
  if (format === 'dm-remap-v4') {
    const r = v4Schema.safeParse(data);
    if (!r.success) throw firstIssue(r.error);
    return r.data as V4TableJson;
  }
  throw new MetadataValueError('format', `format: expected "remapsim-safe" or "dm-remap-v4", got ${format === undefined ? 'nothing' : JSON.stringify(format)}`);
}

export function safeJsonToState(t: SafeTableJson): { fingerprint: DeviceFingerprint; remaps: Array<[number, number]>; cursor: number } {
  return { fingerprint: { ...t.fingerprint }, remaps: t.remaps.map((r) => [r.main, r.spare]), cursor: t.cursor };
}

/** The module's table for an imported JSON: the module's defaults, the JSON's sizes, sequence, timestamp and entries. */
export function v4JsonToMetadata(t: V4TableJson): V4Metadata {
  const entries: V4RemapEntry[] = t.entries.map((e) => ({
    originalSector: BigInt(e.originalSector),
    spareSector: BigInt(e.spareSector),
    timestampNs: BigInt(e.timestampNs ?? 0),
    accessCount: e.accessCount ?? 0,
    errorCount: e.errorCount ?? 0,
    reason: e.reason ?? 0,
    flags: e.flags ?? 2,
  }));
  return v4Metadata({
    sequence: BigInt(t.sequence),
    timestamp: BigInt(t.timestamp),
    mainSectors: BigInt(t.mainSectors),
    spareSectors: BigInt(t.spareSectors),
    entries,
  });
}
