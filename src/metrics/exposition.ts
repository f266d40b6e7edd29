/**
 * Metric families and their text expositions: OpenMetrics 1.0.0 (what
 * Prometheus asks for when it scrapes) and the Prometheus text format 0.0.4
 * (what `promtool check metrics` and older tools read). Pure: families in,
 * text out.
 *
 * The two differ in how they name things: an OpenMetrics counter family
 * `foo` exposes the sample `foo_total`, the Prometheus format names the
 * family `foo_total` itself; info and stateset families are OpenMetrics
 * types that the older format shows as gauges; only OpenMetrics has UNIT
 * lines and ends with `# EOF`.
 */

export type Labels = Readonly<Record<string, string>>;

interface FamilyBase {
  /** Without the `_total` of a counter; ends in `_<unit>` when there is a unit. */
  name: string;
  help: string;
}

export type MetricFamily =
  | (FamilyBase & { type: 'counter' | 'gauge'; unit?: string; points: Array<{ labels: Labels; value: number }> })
  | (FamilyBase & { type: 'info'; points: Array<{ labels: Labels }> })
  | (FamilyBase & { type: 'stateset'; points: Array<{ labels: Labels; states: Readonly<Record<string, boolean>> }> })
  | (FamilyBase & { type: 'histogram'; unit?: string; points: HistogramPoint[] });

export interface HistogramPoint {
  labels: Labels;
  /** Upper bounds, increasing, without +Inf. */
  bounds: readonly number[];
  /** Cumulative counts: one per bound, then the +Inf bucket (= count). */
  cumulative: readonly number[];
  sum: number;
}

export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
export const PROMETHEUS_TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const RESERVED_SUFFIX = /_(total|created|count|sum|bucket|gcount|gsum|info)$/;

/** A family name the formats accept and that cannot clash with another family's samples; throws RangeError otherwise. */
export function checkFamily(f: MetricFamily): void {
  if (!NAME.test(f.name) || f.name.startsWith('__')) throw new RangeError(`metric name '${f.name}' is not valid`);
  if (RESERVED_SUFFIX.test(f.name)) throw new RangeError(`metric family '${f.name}' ends in a suffix the formats reserve for samples`);
  const unit = 'unit' in f ? f.unit : undefined;
  if (unit !== undefined && !f.name.endsWith(`_${unit}`)) throw new RangeError(`metric family '${f.name}' must end in its unit '_${unit}'`);
  for (const p of f.points) {
    for (const k of Object.keys(p.labels)) {
      if (!LABEL.test(k) || k.startsWith('__')) throw new RangeError(`label name '${k}' of ${f.name} is not valid`);
      if (k === 'le' || k === 'quantile' || (f.type === 'stateset' && k === f.name)) throw new RangeError(`label name '${k}' of ${f.name} is reserved`);
    }
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string, openMetrics: boolean): string {
  const s = v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  return openMetrics ? s.replace(/"/g, '\\"') : s;
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** A sample value: integers without a decimal point, others as JavaScript prints them (a point or an exponent), NaN and the infinities spelled out. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** An `le` value in the canonical form OpenMetrics asks for (Go's %g, `.0` added when it has no point or exponent). */
export function canonicalNumber(v: number): string {
  if (v === Infinity) return '+Inf';
  const [mant, e] = v.toExponential().split('e');
  const exp = Number(e);
  if (v !== 0 && (exp < -4 || exp >= 6)) {
    return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

function samples(f: MetricFamily, openMetrics: boolean): string[] {
  const out: string[] = [];
  switch (f.type) {
    case 'counter':
      for (const p of f.points) out.push(`${f.name}_total${labelText(p.labels)} ${formatValue(p.value)}`);
      break;
    case 'gauge':
      for (const p of f.points) out.push(`${f.name}${labelText(p.labels)} ${formatValue(p.value)}`);
      break;
    case 'info':
      for (const p of f.points) out.push(`${f.name}_info${labelText(p.labels)} 1`);
      break;
    case 'stateset':
      for (const p of f.points) for (const [state, on] of Object.entries(p.states)) out.push(`${f.name}${labelText(p.labels, [f.name, state])} ${on ? 1 : 0}`);
      break;
    case 'histogram':
      for (const p of f.points) {
        p.bounds.forEach((b, i) =>
          out.push(`${f.name}_bucket${labelText(p.labels, ['le', openMetrics ? canonicalNumber(b) : formatValue(b)])} ${p.cumulative[i]}`),
        );
        const count = p.cumulative[p.bounds.length];
        out.push(`${f.name}_bucket${labelText(p.labels, ['le', '+Inf'])} ${count}`);
        out.push(`${f.name}_count${labelText(p.labels)} ${count}`);
        out.push(`${f.name}_sum${labelText(p.labels)} ${formatValue(p.sum)}`);
      }
      break;
  }
  return out;
}

/** The OpenMetrics 1.0.0 exposition of `families` (names unique), ending with `# EOF`. */
export function renderOpenMetrics(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  checkUnique(families);
  for (const f of families) {
    checkFamily(f);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    if ('unit' in f && f.unit) lines.push(`# UNIT ${f.name} ${f.unit}`);
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help, true)}`);
    lines.push(...samples(f, true));
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

/** The same families in the Prometheus text format 0.0.4. */
export function renderPrometheusText(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  checkUnique(families);
  for (const f of families) {
    checkFamily(f);
    const [name, type] =
      f.type === 'counter'
        ? [`${f.name}_total`, 'counter']
        : f.type === 'info'
          ? [`${f.name}_info`, 'gauge']
          : f.type === 'stateset'
            ? [f.name, 'gauge']
            : [f.name, f.type];
    lines.push(`# HELP ${name} ${escapeHelp(f.help, false)}`);
    lines.push(`# TYPE ${name} ${type}`);
    lines.push(...samples(f, false));
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function checkUnique(families: readonly MetricFamily[]): void {
  const seen = new Set<string>();
  for (const f of families) {
    if (seen.has(f.name)) throw new RangeError(`metric family '${f.name}' appears twice`);
    seen.add(f.name);
  }
}

/**
 * Which format an HTTP Accept header asks for: OpenMetrics unless the client
 * names text/plain and not application/openmetrics-text (curl's `*\/*`, or no
 * header at all, get OpenMetrics).
 */
export function negotiateFormat(accept: string | undefined): 'openmetrics' | 'prometheus-text' {
  const a = (accept ?? '').toLowerCase();
  if (a.includes('application/openmetrics-text')) return 'openmetrics';
  return a.includes('text/plain') ? 'prometheus-text' : 'openmetrics';
}

/**
 * Families by name, points added in any order: what several sources (each
 * layer of a stack) contribute to one family is exposed together.
 */
export class MetricSet {
  private readonly families = new Map<string, MetricFamily>();

  /** Adds a family, or its points to the family of that name already here (which must have the same type). */
  add(f: MetricFamily): void {
    const have = this.families.get(f.name);
    if (!have) {
      this.families.set(f.name, { ...f, points: [...f.points] } as MetricFamily);
      return;
    }
    if (have.type !== f.type) throw new RangeError(`metric family '${f.name}' added as ${have.type} and as ${f.type}`);
    (have.points as unknown[]).push(...f.points);
  }

  addAll(fs: Iterable<MetricFamily>): this {
    for (const f of fs) this.add(f);
    return this;
  }

  list(): MetricFamily[] {
    return [...this.families.values()].filter((f) => f.points.length > 0);
  }
}
