/**
 * fio's verify options as remapsim takes them: verify= (which header the
 * units carry), verify_pattern, verify_only, verify_state_save and
 * verify_state_load. Values are checked here; how they combine, in
 * verifyRules, with the job's other options.
 */
import { OptionValueError } from './errors.js';
import { parseFioPattern, PatternError } from './fio-pattern.js';
import type { VerifyAlgorithm } from './verify-pattern.js';

export type VerifyKind = 'none' | VerifyAlgorithm;

const VERIFY: Record<string, VerifyKind> = {
  '0': 'none',
  crc32c: 'crc32c',
  'crc32c-intel': 'crc32c',
  xxhash: 'xxhash',
  md5: 'md5',
  sha256: 'sha256',
  meta: 'meta',
  pattern: 'pattern',
};
const ALLOWED = Object.keys(VERIFY).join(', ');
const FIO_OTHERS = ['crc64', 'crc32', 'crc16', 'crc7', 'sha1', 'sha512', 'sha3-224', 'sha3-256', 'sha3-384', 'sha3-512', 'null'];

/** Kinds that write fio's verify header (or, for pattern, fio's bare pattern): fio's own verify reads them. */
export function isFioFormat(kind: VerifyKind): boolean {
  return kind !== 'none' && kind !== 'crc32c' && kind !== 'xxhash';
}

export function parseVerifyValue(v: string, key: string): VerifyKind {
  const k = Object.hasOwn(VERIFY, v) ? VERIFY[v] : undefined;
  if (k) return k;
  if (FIO_OTHERS.includes(v)) throw new OptionValueError(key, `'${v}' is a fio checksum remapsim does not implement (allowed: ${ALLOWED})`);
  if (v === 'none') throw new OptionValueError(key, `invalid value 'none' (fio spells it verify=0)`);
  throw new OptionValueError(key, `invalid value '${v}' (allowed: ${ALLOWED})`);
}

export function parseVerifyPatternValue(v: string, key: string): Uint8Array {
  try {
    return parseFioPattern(v);
  } catch (err) {
    if (err instanceof PatternError) throw new OptionValueError(key, err.message);
    throw err;
  }
}

export interface VerifySettings {
  verify: VerifyKind;
  /** verify= was given (verify_pattern alone then means fio's header plus the pattern). */
  verifySet: boolean;
  pattern?: Uint8Array;
  verifyOnly: boolean;
  stateLoad: boolean;
  timeBased: boolean;
  writes: boolean;
}

export interface VerifyRuleIssue {
  option: string;
  message: string;
}

/** The verify kind the job runs with, and what does not fit together (fio's rules, and where remapsim is stricter). */
export function verifyRules(s: VerifySettings): { verify: VerifyKind; issues: VerifyRuleIssue[] } {
  const issues: VerifyRuleIssue[] = [];
  let verify = s.verify;
  if (s.pattern && !s.verifySet) verify = 'pattern-header'; // fio: verify_pattern alone is VERIFY_PATTERN, a header then the pattern
  if (verify === 'pattern' && !s.pattern) issues.push({ option: 'verify', message: 'verify=pattern needs verify_pattern (the bytes every block must hold)' });
  if (s.pattern && (verify === 'crc32c' || verify === 'xxhash')) {
    issues.push({
      option: 'verify_pattern',
      message: `works with verify=md5, sha256, meta or pattern (fio's header); verify=${verify} writes remapsim's own unit header`,
    });
  }
  if (s.verifyOnly) {
    if (verify === 'none') issues.push({ option: 'verify_only', message: 'needs verify= (the kind of block to check)' });
    if (!s.writes)
      issues.push({ option: 'verify_only', message: 'the job writes nothing to check (fio: verify_only makes sense only for workloads that write data)' });
    if (s.timeBased) issues.push({ option: 'verify_only', message: 'does not support time_based (as in fio: the write pass it replays must have an end)' });
  }
  if (s.stateLoad && !s.verifyOnly)
    issues.push({ option: 'verify_state_load', message: "needs verify_only: remapsim loads fio's verify state for a verify-only pass" });
  return { verify, issues };
}
