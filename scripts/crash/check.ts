/**
 * What survives a crash, judged: every acknowledged write must read back as
 * its generation or a later one that may have landed before the crash (never
 * older, never zeroes, never corrupt), and every remap reported as made must
 * still be in the reopened model's table. Shared by the SIGKILL harness and
 * the in-process crash-point tests.
 */
import { type BlockDevice, OK } from '../../src/block/device.js';
import type { VerifyPattern } from '../../src/workload/verify-pattern.js';

/** What the writer was told: acknowledged generations, failed units, remaps reported. */
export class Expectations {
  /** unit -> acknowledged generation */
  readonly acked = new Map<number, number>();
  /** Units whose last write failed: their content is not judged until the next acknowledged write. */
  readonly unknown = new Set<number>();
  /** remap key (safe: main block; dm-remap-v4: sector) -> spare block/sector, latest report wins */
  readonly remaps = new Map<number, number>();
  ackCount = 0;
  failCount = 0;
  remapReports = 0;

  ack(unit: number, gen: number): void {
    this.acked.set(unit, gen);
    this.unknown.delete(unit);
    this.ackCount++;
  }

  fail(unit: number): void {
    this.unknown.add(unit);
    this.failCount++;
  }

  remap(key: number, spare: number): void {
    this.remaps.set(key, spare);
    this.remapReports++;
  }
}

export const FINDING_KINDS = ['stale', 'zero', 'corrupt', 'readError', 'lostRemap'] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export interface CheckResult {
  unitsChecked: number;
  ok: number;
  /** Acknowledged units that read back a later, unacknowledged generation (allowed). */
  newer: number;
  unjudged: number;
  remapsChecked: number;
  findings: Record<FindingKind, number>;
  corruptReasons: Record<string, number>;
  /** Units (remap keys for lostRemap) of each finding. */
  keys: Record<FindingKind, number[]>;
  /** First findings, human-readable. */
  examples: string[];
}

export function emptyCheck(): CheckResult {
  return {
    unitsChecked: 0,
    ok: 0,
    newer: 0,
    unjudged: 0,
    remapsChecked: 0,
    findings: { stale: 0, zero: 0, corrupt: 0, readError: 0, lostRemap: 0 },
    corruptReasons: {},
    keys: { stale: [], zero: [], corrupt: [], readError: [], lostRemap: [] },
    examples: [],
  };
}

export function addChecks(into: CheckResult, r: CheckResult, keep = 20): void {
  into.unitsChecked += r.unitsChecked;
  into.ok += r.ok;
  into.newer += r.newer;
  into.unjudged += r.unjudged;
  into.remapsChecked += r.remapsChecked;
  for (const k of FINDING_KINDS) {
    into.findings[k] += r.findings[k];
    into.keys[k].push(...r.keys[k]);
  }
  for (const [k, v] of Object.entries(r.corruptReasons)) into.corruptReasons[k] = (into.corruptReasons[k] ?? 0) + v;
  for (const e of r.examples) if (into.examples.length < keep) into.examples.push(e);
}

export function totalFindings(r: CheckResult): number {
  return FINDING_KINDS.reduce((a, k) => a + r.findings[k], 0);
}

/** Reads every acknowledged unit through `model` (unit by unit) and every reported remap through `lookup`. */
export function checkModel(
  model: BlockDevice & { lookup(key: number): number },
  pattern: VerifyPattern,
  exp: Expectations,
  opts: { label?: string; keep?: number } = {},
): CheckResult {
  const r = emptyCheck();
  const keep = opts.keep ?? 10;
  const label = opts.label ? `${opts.label}: ` : '';
  const note = (kind: FindingKind, key: number, text: string): void => {
    r.findings[kind]++;
    r.keys[kind].push(key);
    if (r.examples.length < keep) r.examples.push(`${label}${text}`);
  };
  const unitSectors = pattern.unitSize / 512;
  const buf = new Uint8Array(pattern.unitSize);
  for (const [unit, gen] of [...exp.acked.entries()].sort((a, b) => a[0] - b[0])) {
    if (exp.unknown.has(unit)) {
      r.unjudged++;
      continue;
    }
    r.unitsChecked++;
    buf.fill(0);
    const rc = model.read(unit * unitSectors, buf);
    if (rc !== OK) {
      note('readError', unit, `unit ${unit} (acknowledged generation ${gen}): read failed with errno ${rc}`);
      continue;
    }
    const v = pattern.judge(buf, unit, gen);
    switch (v.kind) {
      case 'current':
        r.ok++;
        break;
      case 'older':
        note('stale', unit, `unit ${unit}: reads generation ${v.gen}, acknowledged ${gen}`);
        break;
      case 'zero':
        note('zero', unit, `unit ${unit}: reads zeroes, acknowledged generation ${gen}`);
        break;
      case 'corrupt':
        // generations are unique and increasing: a later one is a write issued after the acknowledged one
        if (v.reason === 'newer-generation') {
          r.newer++;
          break;
        }
        r.corruptReasons[v.reason] = (r.corruptReasons[v.reason] ?? 0) + 1;
        note('corrupt', unit, `unit ${unit}: corrupt (${v.reason}${v.detail ? `, ${v.detail}` : ''}), acknowledged generation ${gen}`);
        break;
    }
  }
  for (const [key, spare] of exp.remaps) {
    r.remapsChecked++;
    const now = model.lookup(key);
    if (now !== spare) note('lostRemap', key, `remap ${key} -> ${spare}: ${now < 0 ? 'gone' : `now -> ${now}`} after reopening`);
  }
  return r;
}
