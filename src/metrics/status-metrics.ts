/**
 * Metric families from parsed status lines (src/status/parse.ts), one set of
 * points per layer: the same for a kernel device-mapper device (`dmsetup
 * status`) and for a served model's layers. Pure: parsed fields in,
 * families out. Paths and other free text stay out (a scrape need not learn
 * the host's file names); each layer's type and version go in
 * `remapsim_layer_info`.
 */
import type { StatusField, TargetStatus } from '../status/parse.js';
import type { StatusSnapshot } from '../status/sources.js';
import { toViewSample } from '../status/view.js';
import { type Labels, type MetricFamily, MetricSet } from './exposition.js';

/** The metric name's part after `remapsim_` for each target type's fields (the safe policy's `remap` names the common ones). */
const PREFIX: Readonly<Record<string, string>> = { remap: '', 'dm-remap-v4': 'v4_', dust: 'dust_', flakey: 'flakey_' };

/** Names that differ from the field's key, and the fields every target type shares a family for. */
const RENAMED: Readonly<Record<string, string>> = { enospc: 'spare_full_errors', cacheHitRatePct: 'cache_hit_ratio', totalIos: 'ios' };
const HEALTH = {
  name: 'remapsim_health_score',
  help: 'Health score, 0 (failing) to 100, as the target reports it (dm-remap-v4 prints the default 100 on a status call that takes its health mutex).',
};
const SHARED: Readonly<Record<string, { name: string; help: string }>> = { health: HEALTH, healthScore: HEALTH };

/** How a field's unit becomes the metric's: a base unit (seconds, bytes), `per` of the field's making one, or a name suffix. */
const UNITS: Readonly<Record<string, { suffix: string; unit?: string; per?: number; replaces?: string }>> = {
  ns: { suffix: 'seconds', unit: 'seconds', per: 1e9, replaces: 'ns' },
  s: { suffix: 'seconds', unit: 'seconds' },
  B: { suffix: 'bytes', unit: 'bytes' },
  'B/s': { suffix: 'bytes_per_second' },
  '%': { suffix: 'ratio', per: 100, replaces: 'pct' },
  sectors: { suffix: 'sectors' },
  blocks: { suffix: 'blocks' },
};

const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The family a status field becomes (undefined for text), and what its value is divided by. */
function familyOf(type: string, f: StatusField): { family: Omit<Extract<MetricFamily, { type: 'counter' | 'gauge' }>, 'points'>; per: number } | undefined {
  if (f.kind === 'text') return undefined;
  const mtype = f.kind === 'count' ? 'counter' : 'gauge';
  const shared = SHARED[f.key];
  if (shared) return { family: { name: shared.name, type: 'gauge', help: shared.help }, per: 1 };
  const u = f.unit === undefined ? undefined : UNITS[f.unit];
  let base = RENAMED[f.key] ?? snake(f.key);
  if (u && !RENAMED[f.key]) {
    if (u.replaces && base.endsWith(`_${u.replaces}`)) base = base.slice(0, -u.replaces.length - 1);
    if (!base.endsWith(`_${u.suffix}`)) base = `${base}_${u.suffix}`;
  }
  const name = `remapsim_${PREFIX[type] ?? `${type.replace(/\W/g, '_')}_`}${base}`;
  const help = `${type} status field ${f.key}: ${f.note ?? f.label}${u?.per ? ` (in ${u.unit ?? u.suffix})` : ''}.`;
  return { family: { name, type: mtype, help, ...(u?.unit ? { unit: u.unit } : {}) }, per: u?.per ?? 1 };
}

/** The safe policy's state token as a state set: the token names an errno or a file, the set keeps five states. */
export const REMAP_STATES = ['ok', 'spare_full', 'store_error', 'metadata_failed', 'backing_lost'] as const;

function stateOf(token: string): (typeof REMAP_STATES)[number] | undefined {
  if (token === 'ok' || token === 'spare_full' || token === 'metadata_failed') return token;
  if (token.startsWith('store_')) return 'store_error';
  if (token.startsWith('failed_')) return 'backing_lost';
  return undefined;
}

function numeric(f: StatusField): number | undefined {
  if (typeof f.value === 'boolean') return f.value ? 1 : 0;
  const n = typeof f.value === 'number' ? f.value : /^\d+$/.test(f.value) ? Number(f.value) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** Text fields that go in a layer's info labels (besides its name and type), by label name. */
const INFO_LABELS: Readonly<Record<string, string>> = { version: 'version', mode: 'mode', deviceMode: 'device_mode', features: 'features' };

function infoLabels(s: TargetStatus): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of s.fields) if (typeof f.value === 'string' && f.kind === 'text' && INFO_LABELS[f.key]) out[INFO_LABELS[f.key]] = f.value;
  return out;
}

export interface LayerStatus {
  /** The layer's name: `target`, `main.dust`, or a kernel device's name. */
  layer: string;
  status: TargetStatus;
}

/** The families of these layers' status lines, every point labelled with its layer. */
export function statusFamilies(layers: readonly LayerStatus[]): MetricFamily[] {
  const set = new MetricSet();
  for (const { layer, status: s } of layers) {
    const labels: Labels = { layer };
    set.add({
      name: 'remapsim_layer',
      type: 'info',
      help: 'A layer of the device: its target type, and the version and modes its status line names.',
      points: [{ labels: { layer, type: s.type, ...infoLabels(s) } }],
    });
    set.add({
      name: 'remapsim_status_parsed',
      type: 'gauge',
      help: "1 when remapsim knows the layer's target type and its status line matched the layout, else 0.",
      points: [{ labels, value: s.known ? 1 : 0 }],
    });
    for (const f of s.known ? s.fields : []) {
      const m = familyOf(s.type, f);
      const v = numeric(f);
      if (m && v !== undefined) set.add({ ...m.family, points: [{ labels, value: v / m.per }] });
    }
    const state = s.known && s.type === 'remap' ? s.fields.find((f) => f.key === 'state')?.value : undefined;
    if (typeof state === 'string') {
      const now = stateOf(state);
      set.add({
        name: 'remapsim_state',
        type: 'stateset',
        help: 'State of a remap target: ok, spare_full, store_error (the store under a device failed the last request), metadata_failed, backing_lost (a backing file deleted or shrunk).',
        points: [{ labels, states: Object.fromEntries(REMAP_STATES.map((st) => [st, st === now])) }],
      });
    }
  }
  return set.list();
}

/**
 * The layers of one status sample (`dmsetup status` of a device, or one
 * layer of a served model): named `label`, or `label@<start sector>` for
 * each target of a device with several.
 */
export function snapshotLayers(label: string, snap: StatusSnapshot): LayerStatus[] {
  const { targets } = toViewSample(label, snap);
  return targets.map((status) => ({ layer: targets.length === 1 ? label : `${label}@${status.start}`, status }));
}
