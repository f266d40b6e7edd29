/**
 * Metadata contexts (NBD protocol, "Metadata querying"): which contexts a
 * NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT query selects. Pure:
 * names in, names out.
 *
 * Contexts this project defines:
 * - `base:allocation` (the spec's): NBD_STATE_HOLE (bit 0) and NBD_STATE_ZERO (bit 1);
 * - `remapsim:health`: where the exported device is remapped, pending or bad (HealthFlag).
 */
import { Rep } from './constants.js';

export const BASE_ALLOCATION = 'base:allocation';
export const HEALTH_CONTEXT = 'remapsim:health';

/**
 * `remapsim:health` flags, one bit each (a block may carry several):
 * - REMAPPED: its data lives on the spare now (reads and writes go there);
 * - PENDING: it failed a read and waits for a write to remap it (the safe
 *   policy), or the dm-remap-v4 module recorded a remap for it that it does
 *   not use until the table is loaded again;
 * - BAD: the main device's medium fails it (a fault layer lists it bad):
 *   reads fail there unless it is REMAPPED.
 */
export const HealthFlag = {
  REMAPPED: 1 << 0,
  PENDING: 1 << 1,
  BAD: 1 << 2,
} as const;

export type MetaContextSelection = { ok: true; names: string[] } | { ok: false; reply: number; message: string };

function namespaceOf(name: string): string {
  return name.slice(0, name.indexOf(':'));
}

/**
 * The contexts of `available` that `queries` select, in `available`'s order:
 * - LIST with no query lists every context;
 * - `ns:` (an empty leaf name) lists every context of that namespace, and
 *   selects nothing in SET (as the spec asks of `base:`);
 * - a full name selects that context; unknown names and namespaces are ignored;
 * - a query without a colon has no namespace: NBD_REP_ERR_INVALID.
 */
export function selectMetaContexts(kind: 'list' | 'set', queries: readonly string[], available: readonly string[]): MetaContextSelection {
  if (kind === 'list' && queries.length === 0) return { ok: true, names: [...available] };
  const chosen = new Set<string>();
  for (const q of queries) {
    const colon = q.indexOf(':');
    if (colon <= 0) {
      return {
        ok: false,
        reply: Rep.ERR_INVALID,
        message: `meta context query '${q.slice(0, 200)}' does not start with a namespace and a colon (namespace:leaf)`,
      };
    }
    if (colon === q.length - 1) {
      if (kind === 'list') for (const n of available) if (namespaceOf(n) === q.slice(0, colon)) chosen.add(n);
      continue;
    }
    if (available.includes(q)) chosen.add(q);
  }
  return { ok: true, names: available.filter((n) => chosen.has(n)) };
}
