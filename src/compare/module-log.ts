/**
 * The dm-remap-v4 module's kernel log lines read back as the events the
 * model reports (V4Event): what the module's background work did, seen
 * without touching the device. Pure: text in, events out.
 */
import type { V4Event } from '../remap/v4-target.js';

const PATTERNS: Array<[RegExp, (m: RegExpExecArray) => V4Event]> = [
  [/^dm-remap: WARNING: I\/O error on sector (\d+) \(error=-?\d+\), queueing write-ahead remap/, (m) => ({ kind: 'io-error', sector: Number(m[1]) })],
  [/^dm-remap: Write-ahead remap: sector (\d+) /, (m) => ({ kind: 'writeahead', sector: Number(m[1]) })],
  [/^dm-remap: Added remap entry: sector (\d+) -> (\d+)/, (m) => ({ kind: 'remap-added', sector: Number(m[1]), spare: Number(m[2]) })],
  [/No spare sectors available for write-ahead remap of sector (\d+)/, (m) => ({ kind: 'no-spare', sector: Number(m[1]) })],
  [/Sector (\d+) already remapped during write-ahead work/, (m) => ({ kind: 'already-remapped', sector: Number(m[1]) })],
  [/^dm-remap: Metadata written successfully \(5 copies\)/, () => ({ kind: 'metadata-write' })],
  [/^dm-remap: Restored remap: sector (\d+) -> (\d+)/, (m) => ({ kind: 'restored', sector: Number(m[1]), spare: Number(m[2]) })],
];

/** The event a module log line reports, if it is one the model also reports. */
export function moduleEvent(text: string): V4Event | undefined {
  for (const [re, make] of PATTERNS) {
    const m = re.exec(text);
    if (m) return make(m);
  }
  return undefined;
}

/** The model's events that the module logs (analysis and blocking leave no line at the default debug level). */
export function loggedEvents(events: readonly V4Event[]): V4Event[] {
  return events.filter((e) => e.kind !== 'analysis' && e.kind !== 'analysis-blocked');
}

export function formatEvent(e: V4Event): string {
  switch (e.kind) {
    case 'remap-added':
    case 'restored':
      return `${e.kind} ${e.sector} -> ${e.spare}`;
    case 'metadata-write':
      return e.kind;
    default:
      return `${e.kind} ${e.sector}`;
  }
}

/** True when the module's deferred metadata read (100 ms after a table load) has finished. */
export function isLoadComplete(text: string): boolean {
  return /^dm-remap: Deferred metadata read work COMPLETE/.test(text);
}
