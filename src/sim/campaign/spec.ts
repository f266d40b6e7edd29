/**
 * A campaign: a scenario, the parameters swept (their cartesian product is
 * the set of sweep points), the runs per point, and a seed. It expands into
 * independent runs numbered 0..N-1: run i is replicate i mod runs of point
 * floor(i / runs). Its seed comes from the campaign seed and the replicate
 * number, so every point sees the same drives (the same fault histories:
 * policies and spare sizes are compared on identical luck, common random
 * numbers), and any split of the runs over processes and machines gives
 * every run the same seed, hence the same result.
 *
 *   name: loss-5y
 *   seed: 42
 *   scenario: field-4tb.yaml           # relative to this file
 *   runs: 200                          # per sweep point
 *   set: { horizon: 5y, restartEvery: 30d, statusEvery: 1h }   # for every point
 *   sweep:
 *     policy: [safe, dm-remap-v4]
 *     spare: [1MiB, 8MiB, 64MiB]
 *     scanEvery: [1w, 1mo, never]
 *
 * The campaign id is a hash of the spec and the scenario file's text: shards
 * and results files of another campaign are told apart by it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { parseScenarioText } from '../../scenario/load.js';
import { OVERRIDE_KEYS, type SimConfig, type SimOverrides, type SimSource, resolveSimConfig, simSourceFromText } from '../config.js';
import { SimInputError } from '../time.js';

export const MAX_RUNS_WITHOUT_FORCE = 1_000_000;
const SPEC_VERSION = 1;

const value = z.union([z.string(), z.number()]);
const overrideShape = Object.fromEntries(OVERRIDE_KEYS.map((k) => [k, value.optional()])) as Record<
  (typeof OVERRIDE_KEYS)[number],
  z.ZodOptional<typeof value>
>;

export const campaignSpecSchema = z
  .object({
    name: z.string().min(1).default('campaign'),
    description: z.string().optional(),
    seed: z.number().int().min(0).max(0xffffffff).default(1),
    scenario: z.string().min(1),
    runs: z.number().int().min(1),
    set: z.object(overrideShape).strict().default({}),
    sweep: z
      .object(Object.fromEntries(OVERRIDE_KEYS.map((k) => [k, z.array(value).min(1).optional()])) as Record<string, z.ZodOptional<z.ZodArray<typeof value>>>)
      .strict()
      .default({}),
  })
  .strict();

export type CampaignSpec = z.output<typeof campaignSpecSchema>;

export interface SweepPoint {
  index: number;
  /** Swept parameters, in the spec's order, then the fixed ones. */
  params: Record<string, string | number>;
  overrides: SimOverrides;
}

export interface Campaign {
  id: string;
  spec: CampaignSpec;
  /** Where the spec came from (for messages). */
  file: string;
  source: SimSource;
  points: SweepPoint[];
  totalRuns: number;
}

function zodLines(file: string, issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map(
      (i) =>
        `${file}: ${
          i.path
            .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
            .join('')
            .replace(/^\./, '') || '(top level)'
        }: ${i.message}`,
    )
    .join('\n');
}

/** Sorted keys, so the id does not depend on how the spec was written out (but for the sweep's order). */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, x]) => [k, canonical(x)]),
    );
  return v;
}

export function campaignId(spec: CampaignSpec, scenarioText: string): string {
  // the sweep's key order numbers the points (and so the runs): it stays as written
  const { sweep, ...rest } = spec;
  const axes = Object.entries(sweep).filter(([, v]) => v !== undefined);
  return createHash('sha256')
    .update(JSON.stringify({ v: SPEC_VERSION, spec: canonical(rest), sweep: axes, scenario: scenarioText }))
    .digest('hex')
    .slice(0, 16);
}

/** The cartesian product of the sweep, in the spec's key order (the last key varies fastest). */
export function expandSweep(spec: CampaignSpec): SweepPoint[] {
  const axes = Object.entries(spec.sweep).filter((e): e is [string, Array<string | number>] => e[1] !== undefined);
  let combos: Array<Record<string, string | number>> = [{}];
  for (const [k, values] of axes) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [k]: v })));
  return combos.map((c, index) => ({ index, params: { ...c, ...spec.set }, overrides: { ...spec.set, ...c } as SimOverrides }));
}

/** Reads, validates and expands a campaign spec; every sweep point's configuration is resolved (and so checked) here. */
export function loadCampaign(file: string, opts: { force?: boolean } = {}): Campaign {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SimInputError(`${file}: cannot read the campaign spec (${code === 'ENOENT' ? 'no such file' : (code ?? (err as Error).message)})`);
  }
  const r = campaignSpecSchema.safeParse(parseScenarioText(text, file));
  if (!r.success) throw new SimInputError(zodLines(file, r.error.issues));
  const spec = r.data;
  const scenarioFile = path.resolve(path.dirname(file), spec.scenario);
  let scenarioText: string;
  try {
    scenarioText = fs.readFileSync(scenarioFile, 'utf8');
  } catch (err) {
    throw new SimInputError(`${file}: scenario: cannot read ${scenarioFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return campaignFrom(spec, simSourceFromText(scenarioText, scenarioFile), scenarioText, file, opts);
}

export function campaignFrom(spec: CampaignSpec, source: SimSource, scenarioText: string, file: string, opts: { force?: boolean } = {}): Campaign {
  for (const k of Object.keys(spec.sweep)) if (k in spec.set) throw new SimInputError(`${file}: ${k} is both swept (sweep.${k}) and set (set.${k}); keep one`);
  const points = expandSweep(spec);
  const totalRuns = points.length * spec.runs;
  if (totalRuns > MAX_RUNS_WITHOUT_FORCE && !opts.force) {
    throw new SimInputError(
      `${file}: the sweep expands to ${points.length} points x ${spec.runs} runs = ${totalRuns} runs, more than ${MAX_RUNS_WITHOUT_FORCE}; give --force to run them`,
    );
  }
  for (const p of points) {
    try {
      resolveSimConfig(source, p.overrides);
    } catch (err) {
      if (err instanceof SimInputError)
        throw new SimInputError(
          `${file}: sweep point ${p.index} (${Object.entries(p.params)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}): ${err.message}`,
        );
      throw err;
    }
  }
  return { id: campaignId(spec, scenarioText), spec, file, source, points, totalRuns };
}

/** Run i: its point, replicate and seed. */
export function runOf(c: Pick<Campaign, 'spec' | 'points'>, i: number): { point: SweepPoint; replicate: number; seed: number } {
  const replicate = i % c.spec.runs;
  return { point: c.points[Math.floor(i / c.spec.runs)]!, replicate, seed: runSeed(c.spec.seed, replicate) };
}

/** A run's seed from the campaign seed and its replicate number (splitmix32 of both). */
export function runSeed(campaignSeed: number, replicate: number): number {
  let z = (campaignSeed ^ Math.imul(replicate + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The configuration of every point (resolved once per process). */
export function pointConfigs(c: Pick<Campaign, 'source' | 'points'>): SimConfig[] {
  return c.points.map((p) => resolveSimConfig(c.source, p.overrides));
}
