/**
 * A campaign's answer from its runs: per sweep point, the probability of
 * losing acknowledged data by each time with a 95% interval (Wilson), the
 * distribution of the time to spare exhaustion, user-visible errors per
 * TB-year (an exact Poisson interval), who found grown bad blocks first,
 * health over time, latency (HdrHistograms merged); and the policies side
 * by side at each point of the other parameters. A pure function of the run
 * records in run order, so any split of the runs over processes or machines
 * gives the same summary.
 */
import { encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import { mergeEncoded } from './latency.js';
import type { SimRunResult } from './result.js';
import { type Interval, quantile, rateInterval, wilson } from './stats.js';
import { YEAR_SECONDS } from './time.js';

/** One line of a campaign's results file. */
export interface RunRecord {
  campaign: string;
  name: string;
  run: number;
  /** Runs in the whole campaign (all shards). */
  of: number;
  point: number;
  replicate: number;
  seed: number;
  /** The sweep point's parameters (what differs between points, and what the spec sets for all). */
  params: Record<string, string | number>;
  /** Main device size in bytes (for errors per TB-year). */
  driveBytes: number;
  result: SimRunResult;
}

export interface LossCurve {
  /** Times (s). */
  t: number[];
  /** P(a user read found acknowledged data lost by t): any kind, silent (damaged data returned), unreadable. */
  any: Interval[];
  silent: Interval[];
  unreadable: Interval[];
}

export interface GroupSummary {
  point: number;
  /** The parameters that tell this point from the others ('' when there is one point). */
  label: string;
  params: Record<string, string | number>;
  runs: number;
  horizonSeconds: number;
  /** P(loss within the horizon), the read-back at the horizon included. */
  lossByHorizon: { any: Interval; silent: Interval; unreadable: Interval };
  loss: LossCurve;
  exhaustion: {
    /** Share of runs whose spare ran out within the horizon. */
    share: Interval;
    /** Quantiles of the time to exhaustion over the runs where it ran out (s). */
    quantiles: { p10: number; p50: number; p90: number } | null;
    /** Every exhaustion time, ascending (s). */
    times: number[];
  };
  /** User-visible errors (failed reads and writes) per TB-year, with a 95% interval. */
  errorsPerTBYear: Interval;
  errors: { read: number; write: number; enospc: number };
  means: { remaps: number; pending: number; spareUsed: number; badBlocks: number; transientErrors: number; simulatedIos: number };
  detection: { appeared: number; scannerFirst: number; userFirst: number; undiscovered: number; userFirstShare: Interval | null };
  restartsStopped: Interval;
  /** Mean health score at each sample time. */
  health: { t: number[]; score: number[] };
  latency: { count: number; p50: number; p99: number; p999: number; max: number; hdr: string } | null;
}

export interface ComparisonRow {
  /** The parameters other than the policy that differ between points. */
  label: string;
  params: Record<string, string | number>;
  /** Per policy: P(loss within the horizon) and the group's point index. */
  policies: Record<string, { point: number; any: Interval; silent: Interval; unreadable: Interval; exhausted: Interval }>;
}

export interface CampaignSummary {
  campaign: string;
  name: string;
  runs: number;
  expected: number;
  missing: number;
  horizonSeconds: number;
  /** The parameters every point shares (set for all, or swept over one value). */
  fixed: Record<string, string | number>;
  groups: GroupSummary[];
  comparison: ComparisonRow[];
}

const CURVE_POINTS = 40;

/** `k=v k=v` of the parameters named in `keys` (all of them without), in the params' order. */
export function paramsLabel(params: Record<string, string | number>, keys?: ReadonlySet<string>): string {
  return Object.entries(params)
    .filter(([k]) => keys === undefined || keys.has(k))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** The parameters whose value differs between points. */
function varyingKeys(params: ReadonlyArray<Record<string, string | number>>): Set<string> {
  const out = new Set<string>();
  for (const k of new Set(params.flatMap((p) => Object.keys(p)))) if (new Set(params.map((p) => String(p[k]))).size > 1) out.add(k);
  return out;
}

function curveTimes(horizon: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < CURVE_POINTS; i++) out.push(Math.round(((horizon * i) / CURVE_POINTS) * 1e3) / 1e3);
  out.push(horizon);
  return out;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function round(x: number, digits = 6): number {
  return Number(x.toPrecision(digits));
}

function roundInterval(i: Interval): Interval {
  return { point: round(i.point), lo: round(i.lo), hi: round(i.hi) };
}

/** One sweep point's summary; `shown`: the parameters its label names (default all). */
export function summarizeGroup(records: readonly RunRecord[], shown?: ReadonlySet<string>): GroupSummary {
  const first = records[0]!;
  const n = records.length;
  const rs = records.map((r) => r.result);
  const horizon = first.result.horizonSeconds;
  const t = curveTimes(horizon);
  // a loss the read-back found is dated at the horizon: it counts in the curve's last point only
  const curve = (pick: (r: SimRunResult) => number | null): Interval[] =>
    t.map((time) =>
      roundInterval(
        wilson(
          rs.filter((r) => {
            const at = pick(r);
            return at !== null && at <= time;
          }).length,
          n,
        ),
      ),
    );
  const count = (pick: (r: SimRunResult) => number | null): number => rs.filter((r) => pick(r) !== null).length;
  const ex = rs
    .map((r) => r.spare.exhaustedAt)
    .filter((x): x is number => x !== null)
    .sort((a, b) => a - b);
  const errors = { read: 0, write: 0, enospc: 0 };
  for (const r of rs) {
    errors.read += r.errors.read;
    errors.write += r.errors.write;
    errors.enospc += r.errors.enospc;
  }
  const tbYears = (n * (first.driveBytes / 1e12) * horizon) / YEAR_SECONDS;
  const det = { appeared: 0, scannerFirst: 0, userFirst: 0, undiscovered: 0 };
  for (const r of rs) {
    det.appeared += r.detection.appeared;
    det.scannerFirst += r.detection.scannerFirst;
    det.userFirst += r.detection.userFirst;
    det.undiscovered += r.detection.undiscovered;
  }
  const found = det.scannerFirst + det.userFirst;
  // health: the runs sample at the same times; the mean score at each
  const ht = first.result.health.t;
  const score = ht.map((_, i) => round(mean(rs.map((r) => r.health.score[i] ?? r.health.score[r.health.score.length - 1] ?? 100)), 4));
  const lat = mergeEncoded(rs.map((r) => r.latency));
  return {
    point: first.point,
    label: paramsLabel(first.params, shown),
    params: first.params,
    runs: n,
    horizonSeconds: horizon,
    lossByHorizon: {
      any: roundInterval(
        wilson(
          count((r) => r.loss.at),
          n,
        ),
      ),
      silent: roundInterval(
        wilson(
          count((r) => r.loss.silentAt),
          n,
        ),
      ),
      unreadable: roundInterval(
        wilson(
          count((r) => r.loss.unreadableAt),
          n,
        ),
      ),
    },
    loss: { t, any: curve((r) => r.loss.at), silent: curve((r) => r.loss.silentAt), unreadable: curve((r) => r.loss.unreadableAt) },
    exhaustion: {
      share: roundInterval(wilson(ex.length, n)),
      quantiles: ex.length === 0 ? null : { p10: round(quantile(ex, 0.1)), p50: round(quantile(ex, 0.5)), p90: round(quantile(ex, 0.9)) },
      times: ex,
    },
    errorsPerTBYear: roundInterval(rateInterval(errors.read + errors.write, tbYears)),
    errors,
    means: {
      remaps: round(mean(rs.map((r) => r.spare.remaps))),
      pending: round(mean(rs.map((r) => r.spare.pending))),
      spareUsed: round(mean(rs.map((r) => r.spare.used))),
      badBlocks: round(mean(rs.map((r) => r.faults.badBlocks))),
      transientErrors: round(mean(rs.map((r) => r.faults.transientErrors))),
      simulatedIos: round(mean(rs.map((r) => r.ios.simulated))),
    },
    detection: { ...det, userFirstShare: found > 0 ? roundInterval(wilson(det.userFirst, found)) : null },
    restartsStopped: roundInterval(wilson(rs.filter((r) => r.restarts.stoppedAt !== null).length, n)),
    health: { t: ht, score },
    latency: lat
      ? {
          count: lat.totalCount,
          p50: lat.getValueAtPercentile(50),
          p99: lat.getValueAtPercentile(99),
          p999: lat.getValueAtPercentile(99.9),
          max: lat.maxValue,
          hdr: encodeIntoCompressedBase64(lat),
        }
      : null,
  };
}

/** The summary of a campaign's records (any order, any shards): grouped by sweep point, in point order. */
export function summarize(records: readonly RunRecord[]): CampaignSummary {
  if (records.length === 0) throw new RangeError('no runs to summarize');
  const sorted = [...records].sort((a, b) => a.run - b.run);
  const byPoint = new Map<number, RunRecord[]>();
  for (const r of sorted) {
    let list = byPoint.get(r.point);
    if (!list) {
      list = [];
      byPoint.set(r.point, list);
    }
    list.push(r);
  }
  const points = [...byPoint.keys()].sort((a, b) => a - b);
  const varying = varyingKeys(points.map((p) => byPoint.get(p)![0]!.params));
  const groups = points.map((p) => summarizeGroup(byPoint.get(p)!, varying));
  const others = new Set([...varying].filter((k) => k !== 'policy'));
  const rows = new Map<string, ComparisonRow>();
  for (const g of groups) {
    const label = paramsLabel(g.params, others);
    let row = rows.get(label);
    if (!row) {
      const { policy: _p, ...rest } = g.params;
      row = { label, params: rest, policies: {} };
      rows.set(label, row);
    }
    row.policies[String(g.params.policy ?? g.label)] = {
      point: g.point,
      any: g.lossByHorizon.any,
      silent: g.lossByHorizon.silent,
      unreadable: g.lossByHorizon.unreadable,
      exhausted: g.exhaustion.share,
    };
  }
  const first = sorted[0]!;
  return {
    campaign: first.campaign,
    name: first.name,
    runs: sorted.length,
    expected: first.of,
    missing: first.of - sorted.length,
    horizonSeconds: first.result.horizonSeconds,
    fixed: Object.fromEntries(Object.entries(first.params).filter(([k]) => !varying.has(k))),
    groups,
    comparison: [...rows.values()],
  };
}
