/**
 * A health monitor on a remap target: the scanner wired to the policy, the
 * history of samples, the score, its trend and the spare-exhaustion
 * prediction, as one report (JSON results) and one line (the safe policy's
 * `health` message).
 *
 *   safe         the scanner reads the main device (below the target) and
 *                skips remapped and pending blocks; a weak block is moved to
 *                the spare while it still reads (SafeRemapTarget.migrateWeakBlock),
 *                a bad one is marked pending (markBlockPending), a transient
 *                one is only counted.
 *   dm-remap-v4  the module's "health scanner" reads nothing: every 300 s it
 *                recomputes a score from its I/O error counters. The monitor
 *                does the same and no more: at each 300 s mark it asks the
 *                target for its status, which runs that work when it is due
 *                (the model runs it lazily; the module from a timer), and it
 *                reports the module's own score beside ours.
 *
 * Foreground I/O: under the safe policy the monitor reads the target's own
 * I/O counters (which the engine's replicas share), so nothing has to be
 * wrapped and no I/O pays for it; the scanner's reads go to the main device
 * below the target and are not counted. Otherwise, or for a foreground the
 * target does not see, give a cumulative count as tick(nowNs, foregroundIos)
 * or route the I/O through wrap(device), a ForegroundTap. Failed foreground
 * reads reach the detection tracker through the tap (exact times) or, under
 * the safe policy, through the blocks they leave pending (seen at the next
 * tick, within 10 ms).
 */
import { type BlockDevice, type IoStatus, OK, type WriteFlags, SECTOR_SIZE } from '../block/device.js';
import { PassThroughLayer } from '../block/pass-through.js';
import type { SafeRemapTarget } from '../remap/safe-target.js';
import type { DmRemapV4Target } from '../remap/v4-target.js';
import { type Clock, realClock } from '../util/clock.js';
import type { BlockFinding, FindingKind, LatencyBucket } from './classify.js';
import { HealthScanner, type ScannerOptions, type ScannerStats, type ScanOrder } from './scanner.js';
import {
  DEFAULT_CONFIDENCE,
  DEFAULT_HORIZON_NS,
  type ExhaustionPrediction,
  finiteOrNull,
  type HealthSample,
  healthScore,
  predictExhaustion,
  SCORE_FORMULA,
  scoreTrend,
  type Trend,
} from '../remap/health-score.js';

/** Counts every foreground I/O and tells a listener about failed reads. */
export class ForegroundTap extends PassThroughLayer {
  ios = 0;

  constructor(
    inner: BlockDevice,
    private readonly onReadError?: (sector: number, sectors: number, status: IoStatus) => void,
  ) {
    super(inner);
  }

  override read(sector: number, buf: Uint8Array): IoStatus {
    this.ios++;
    const rc = this.inner.read(sector, buf);
    if (rc !== OK && this.onReadError) this.onReadError(sector, buf.length / SECTOR_SIZE, rc);
    return rc;
  }

  override write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    this.ios++;
    return this.inner.write(sector, buf, flags);
  }

  override flush(): IoStatus {
    this.ios++;
    return this.inner.flush();
  }

  override discard(sector: number, count: number): IoStatus {
    this.ios++;
    return this.inner.discard(sector, count);
  }
}

export interface DetectionSummary {
  /** Blocks that went bad during the run. */
  appeared: number;
  /** ... that the scanner found (as weak or bad) before any foreground read failed on them. */
  scannerFirst: number;
  /** ... that a foreground read failed on first. */
  foregroundFirst: number;
  /** ... that neither found by the end. */
  undiscovered: number;
  /** scannerFirst / (scannerFirst + foregroundFirst); null when neither found any. */
  foundBeforeForeground: number | null;
  /** Mean time from going bad (or, for a block found weak first, 0) to the first discovery, ns. */
  meanDetectionNs: number | null;
}

/**
 * Who found each bad block first: the scanner or a foreground read. Fed by
 * the fault processes (appeared), the scanner (found) and a ForegroundTap
 * (failed foreground reads). Blocks are `blockSectors`-sector units.
 */
export class DetectionTracker {
  private readonly appearedAt = new Map<number, number>();
  private readonly scannerAt = new Map<number, number>();
  private readonly foregroundAt = new Map<number, number>();

  constructor(readonly blockSectors: number) {}

  /** Sectors [sector, sector + count) went bad at `atNs`. */
  appeared(sector: number, count: number, atNs: number): void {
    this.each(sector, count, (b) => {
      if (!this.appearedAt.has(b)) this.appearedAt.set(b, atNs);
    });
  }

  scannerFound(sector: number, count: number, atNs: number): void {
    this.each(sector, count, (b) => {
      if (!this.scannerAt.has(b)) this.scannerAt.set(b, atNs);
    });
  }

  /** A foreground read of [sector, sector + count) failed at `atNs`. */
  foregroundFailed(sector: number, count: number, atNs: number): void {
    this.each(sector, count, (b) => {
      const t = this.appearedAt.get(b);
      if (t !== undefined && t <= atNs && !this.foregroundAt.has(b)) this.foregroundAt.set(b, atNs);
    });
  }

  private each(sector: number, count: number, fn: (block: number) => void): void {
    const lo = Math.floor(sector / this.blockSectors);
    const hi = Math.floor((sector + Math.max(1, count) - 1) / this.blockSectors);
    for (let b = lo; b <= hi; b++) fn(b);
  }

  summary(): DetectionSummary {
    let scannerFirst = 0;
    let foregroundFirst = 0;
    let undiscovered = 0;
    let sumNs = 0;
    for (const [b, t] of this.appearedAt) {
      const s = this.scannerAt.get(b);
      const f = this.foregroundAt.get(b);
      if (s !== undefined && (f === undefined || s <= f)) {
        scannerFirst++;
        sumNs += Math.max(0, s - t);
      } else if (f !== undefined) {
        foregroundFirst++;
        sumNs += Math.max(0, f - t);
      } else undiscovered++;
    }
    const found = scannerFirst + foregroundFirst;
    return {
      appeared: this.appearedAt.size,
      scannerFirst,
      foregroundFirst,
      undiscovered,
      foundBeforeForeground: found > 0 ? scannerFirst / found : null,
      meanDetectionNs: found > 0 ? sumNs / found : null,
    };
  }
}

export interface HealthMonitorOptions extends Omit<ScannerOptions, 'device' | 'skip' | 'onFinding' | 'foreground' | 'clock' | 'blockSectors'> {
  clock?: Clock;
  /** false: no scanner (the report still has the score and the prediction). Default true. */
  scan?: boolean;
  /** One history sample per this many ns (default 1 s). */
  sampleEveryNs?: number;
  /** Horizon of the score's exhaustion risk (default 30 days). */
  horizonNs?: number;
  /** Confidence of the prediction intervals (default 0.9). */
  confidence?: number;
  /** Prediction window (default: the whole kept history). */
  windowNs?: number;
  /** Samples kept (default 3600). */
  maxSamples?: number;
  /** Who-found-it-first accounting (the scenario's fault processes feed it). */
  tracker?: DetectionTracker;
}

export interface FindingView {
  kind: FindingKind;
  sector: number;
  sectors: number;
  latencyMs: number;
  attempts: number;
  atSeconds: number;
}

export interface HealthReport {
  policy: 'safe' | 'dm-remap-v4';
  score: number;
  scoreFormula: string;
  trend: Trend;
  spare: { total: number; used: number; pending: number; weakWaiting: number; remaining: number };
  prediction: {
    confidence: number;
    arrivals: number;
    windowSeconds: number;
    windowIos: number;
    dispersion: number;
    arrivalsPerSecond: { point: number; lo: number; hi: number };
    /** Seconds until the spare is used up; null = not within what the data shows. */
    exhaustionSeconds: { point: number | null; lo: number | null; hi: number | null };
    exhaustionIos: { point: number | null; lo: number | null; hi: number | null };
  };
  scanner: (ScannerStats & { enabled: true; order: ScanOrder; sliceBytes: number; slowMs: number; idleMs: number }) | { enabled: false; reason: string };
  actions: { weakMoved: number; weakWaiting: number; badPending: number; transient: number; unreadableOnMove: number };
  findings: FindingView[];
  latencyMap?: LatencyBucket[];
  /** The module's own health work (dm-remap-v4 only). */
  module?: { healthScore: number; scans: number; hotspots: number; consecutiveErrors: number };
  detection?: DetectionSummary;
  samples: number;
}

export interface HealthMonitor {
  readonly policy: 'safe' | 'dm-remap-v4';
  readonly scanner: HealthScanner | undefined;
  readonly tracker: DetectionTracker | undefined;
  /** Between foreground I/Os or from a timer. `foregroundIos`: a cumulative count, when the caller keeps one. */
  tick(nowNs: number, foregroundIos?: number): void;
  /** Optional: the device the foreground uses, counting its I/Os and telling the tracker about failed reads at once. */
  wrap(device: BlockDevice): ForegroundTap;
  report(): HealthReport;
  /** The score of the latest sample (cheap: for a timeline sampled once a second). */
  score(): number;
  /** One line, `key=value` pairs: the safe policy's `health` message. */
  line(): string;
  close(): void;
}

const KEEP_FINDINGS_IN_REPORT = 50;
/** Longest a monitor lets ticks pass without looking. */
const MAX_TICK_SKIP_NS = 10e6;

function fmtNum(x: number | null): string {
  if (x === null) return 'inf';
  if (x >= 100) return String(Math.round(x));
  return x.toPrecision(3);
}

function fmtInterval(i: { point: number | null; lo: number | null; hi: number | null }): string {
  return `${fmtNum(i.point)}[${fmtNum(i.lo)}..${fmtNum(i.hi)}]`;
}

/** The report as the one-line `health` reply. */
export function formatHealthLine(r: HealthReport): string {
  const parts = [
    `health_score=${r.score}`,
    `trend=${r.trend.direction}`,
    `trend_per_hour=${r.trend.perHour.toFixed(2)}`,
    `spare_used=${r.spare.used}`,
    `spare_total=${r.spare.total}`,
    `pending=${r.spare.pending}`,
    `weak_waiting=${r.spare.weakWaiting}`,
  ];
  if (r.scanner.enabled) {
    const s = r.scanner;
    parts.push(
      `scanner=on`,
      `passes=${s.passes}`,
      `progress=${Math.floor(s.progress * 100)}%`,
      `scanned_bytes=${s.bytesScanned}`,
      `found_bad=${s.found.bad}`,
      `found_weak=${s.found.weak}`,
      `found_transient=${s.found.transient}`,
      `weak_moved=${r.actions.weakMoved}`,
    );
  } else parts.push(`scanner=off`);
  if (r.module) parts.push(`module_health_score=${r.module.healthScore}`);
  parts.push(
    `arrivals=${r.prediction.arrivals}`,
    `exhaustion_s=${fmtInterval(r.prediction.exhaustionSeconds)}`,
    `exhaustion_ios=${fmtInterval(r.prediction.exhaustionIos)}`,
    `confidence=${r.prediction.confidence}`,
  );
  return parts.join(' ');
}

interface SpareState {
  total: number;
  used: number;
  pending: number;
  weakWaiting: number;
}

/** History, score and prediction: what both policies share. */
abstract class MonitorBase implements HealthMonitor {
  abstract readonly policy: 'safe' | 'dm-remap-v4';
  readonly clock: Clock;
  readonly tracker: DetectionTracker | undefined;
  scanner: HealthScanner | undefined;
  protected readonly samples: HealthSample[] = [];
  protected readonly sampleEveryNs: number;
  protected readonly horizonNs: number;
  protected readonly confidence: number;
  protected readonly windowNs: number | undefined;
  protected readonly maxSamples: number;
  private nextSampleNs: number | undefined;
  protected taps: ForegroundTap[] = [];
  protected givenForeground = 0;
  private nextWorkNs = -Infinity;

  constructor(opts: HealthMonitorOptions) {
    this.clock = opts.clock ?? realClock;
    this.tracker = opts.tracker;
    this.sampleEveryNs = opts.sampleEveryNs ?? 1e9;
    if (!(this.sampleEveryNs > 0)) throw new RangeError(`health sample interval must be > 0 ns, got ${this.sampleEveryNs}`);
    this.horizonNs = opts.horizonNs ?? DEFAULT_HORIZON_NS;
    if (!(this.horizonNs > 0)) throw new RangeError(`health horizon must be > 0 ns, got ${this.horizonNs}`);
    this.confidence = opts.confidence ?? DEFAULT_CONFIDENCE;
    if (!(this.confidence > 0 && this.confidence < 1)) throw new RangeError(`health confidence must be in (0, 1), got ${this.confidence}`);
    this.windowNs = opts.windowNs;
    this.maxSamples = opts.maxSamples ?? 3600;
  }

  protected abstract spare(): SpareState;
  protected abstract scanTick(nowNs: number): void;

  /** The target's own count of the I/Os it served, when it keeps one. */
  protected abstract targetIos(): number | undefined;

  /** Foreground I/Os so far: the target's count, or else what the taps counted plus what tick() was told. */
  foregroundIos(): number {
    const own = this.targetIos();
    if (own !== undefined) return own;
    let n = this.givenForeground;
    for (const t of this.taps) n += t.ios;
    return n;
  }

  wrap(device: BlockDevice): ForegroundTap {
    const tracker = this.tracker;
    const clock = this.clock;
    const tap = new ForegroundTap(device, tracker ? (s, n) => tracker.foregroundFailed(s, n, clock.nowNs()) : undefined);
    this.taps.push(tap);
    return tap;
  }

  /**
   * Cheap until there is work: the synchronous runner calls this between
   * every two I/Os (hundreds of thousands of times a second on a page-cached
   * file), so a tick before the next slice or sample is due only compares two
   * numbers. A wake-up is never later than 10 ms, so a change between a busy
   * and an idle foreground is seen within 10 ms.
   */
  tick(nowNs: number, foregroundIos?: number): void {
    if (foregroundIos !== undefined) this.givenForeground = foregroundIos;
    if (nowNs < this.nextWorkNs) return;
    this.scanTick(nowNs);
    if (this.nextSampleNs === undefined || nowNs >= this.nextSampleNs) {
      this.sample(nowNs);
      this.nextSampleNs = nowNs + this.sampleEveryNs;
    }
    this.nextWorkNs = Math.min(this.nextSampleNs, this.nextScanNs(), nowNs + MAX_TICK_SKIP_NS);
  }

  /** When the policy's own work is next due (a slice, the module's timer). */
  protected abstract nextScanNs(): number;

  private committed(s: SpareState): number {
    return s.used + s.pending + s.weakWaiting;
  }

  /** Records a sample at `nowNs` (tick does this every sampleEveryNs). */
  sample(nowNs: number): void {
    const s = this.spare();
    const sample: HealthSample = { tNs: nowNs, ios: this.foregroundIos(), committed: this.committed(s), score: 0 };
    const p = predictExhaustion([...this.samples, sample], s.total - this.committed(s), { confidence: this.confidence, windowNs: this.windowNs });
    sample.score = this.scoreOf(s, p);
    this.samples.push(sample);
    if (this.samples.length > this.maxSamples) this.samples.splice(0, this.samples.length - this.maxSamples);
  }

  protected scoreOf(s: SpareState, p: ExhaustionPrediction): number {
    return healthScore({
      spareTotal: s.total,
      spareUsed: s.used,
      pending: s.pending,
      weakWaiting: s.weakWaiting,
      exhaustionLoNs: p.arrivals > 0 ? p.timeNs.lo : Infinity,
      horizonNs: this.horizonNs,
    });
  }

  protected baseReport(): Omit<HealthReport, 'policy' | 'scanner' | 'actions' | 'findings'> {
    const now = this.clock.nowNs();
    const last = this.samples[this.samples.length - 1];
    if (!last || last.tNs < now) this.sample(now);
    const s = this.spare();
    const remaining = s.total - this.committed(s);
    const p = predictExhaustion(this.samples, remaining, { confidence: this.confidence, windowNs: this.windowNs });
    const sec = (x: number): number | null => finiteOrNull(x / 1e9);
    return {
      score: this.scoreOf(s, p),
      scoreFormula: SCORE_FORMULA,
      trend: scoreTrend(this.samples),
      spare: { ...s, remaining: Math.max(0, remaining) },
      prediction: {
        confidence: p.confidence,
        arrivals: p.arrivals,
        windowSeconds: p.windowNs / 1e9,
        windowIos: p.windowIos,
        dispersion: p.dispersion,
        arrivalsPerSecond: { point: p.ratePerSecond.point, lo: p.ratePerSecond.lo, hi: p.ratePerSecond.hi },
        exhaustionSeconds: { point: sec(p.timeNs.point), lo: sec(p.timeNs.lo), hi: sec(p.timeNs.hi) },
        exhaustionIos: { point: finiteOrNull(p.ios.point), lo: finiteOrNull(p.ios.lo), hi: finiteOrNull(p.ios.hi) },
      },
      detection: this.tracker?.summary(),
      samples: this.samples.length,
    };
  }

  score(): number {
    if (this.samples.length === 0) this.sample(this.clock.nowNs());
    return this.samples[this.samples.length - 1]!.score;
  }

  /** The samples so far (oldest first). */
  history(): readonly HealthSample[] {
    return this.samples;
  }

  abstract report(): HealthReport;

  line(): string {
    return formatHealthLine(this.report());
  }

  close(): void {
    // nothing held open: the devices belong to the target
  }
}

function findingViews(list: readonly BlockFinding[], originNs: number): FindingView[] {
  return list.slice(0, KEEP_FINDINGS_IN_REPORT).map((f) => ({
    kind: f.kind,
    sector: f.sector,
    sectors: f.sectors,
    latencyMs: f.latencyNs / 1e6,
    attempts: f.attempts,
    atSeconds: (f.atNs - originNs) / 1e9,
  }));
}

export class SafeHealthMonitor extends MonitorBase {
  readonly policy = 'safe' as const;
  private readonly weakWaiting = new Set<number>();
  /** Pending blocks already accounted for (by the scanner or as a foreground hit). */
  private readonly knownPending = new Set<number>();
  private lastPendingCount = 0;
  private readonly actions = { weakMoved: 0, badPending: 0, transient: 0, unreadableOnMove: 0 };
  private readonly originNs: number;

  constructor(
    readonly target: SafeRemapTarget,
    opts: HealthMonitorOptions = {},
  ) {
    super(opts);
    this.originNs = this.clock.nowNs();
    if (opts.scan !== false) {
      this.scanner = new HealthScanner({
        ...opts,
        device: target.main,
        clock: this.clock,
        blockSectors: target.unit,
        foreground: () => this.foregroundIos(),
        skip: {
          anyIn: (first, n) => target.pendingCount > 0 || target.remappedInRange(first, n),
          has: (b) => target.lookup(b) >= 0 || target.isPending(b),
        },
        onFinding: (f) => this.act(f),
      });
    }
    target.setHealthProvider({ line: () => this.line(), score: () => this.score() });
  }

  private act(f: BlockFinding): void {
    if (f.kind !== 'transient') this.tracker?.scannerFound(f.sector, f.sectors, f.atNs);
    if (f.blocks !== 1) {
      this.actions.transient++;
      return;
    }
    switch (f.kind) {
      case 'transient':
        this.actions.transient++;
        return;
      case 'bad':
        this.knownPending.add(f.block);
        if (this.target.markBlockPending(f.block)) this.actions.badPending++;
        this.weakWaiting.delete(f.block);
        return;
      case 'weak': {
        const r = this.target.migrateWeakBlock(f.block);
        if (r === 'remapped') {
          this.actions.weakMoved++;
          this.weakWaiting.delete(f.block);
        } else if (r === 'unreadable') {
          this.knownPending.add(f.block);
          this.actions.unreadableOnMove++;
          this.weakWaiting.delete(f.block);
        } else if (r === 'spare-full' || r === 'failed') {
          this.weakWaiting.add(f.block);
          this.scanner?.forget(f.block); // try again next pass
        }
        return;
      }
    }
  }

  protected scanTick(nowNs: number): void {
    this.scanner?.tick(nowNs);
    if (this.tracker) this.notePendingHits(nowNs);
  }

  /**
   * Blocks that became pending without the scanner are blocks a foreground
   * read failed on (the policy marks them). Telling the tracker here covers
   * the engine's worker threads, whose reads no ForegroundTap sees; in the
   * synchronous path the tap has told it already, at the exact time.
   */
  private notePendingHits(nowNs: number): void {
    const n = this.target.pendingCount;
    if (n === this.lastPendingCount) return;
    this.lastPendingCount = n;
    const unit = this.target.unit;
    for (const b of this.target.pendingBlocks()) {
      if (this.knownPending.has(b)) continue;
      this.knownPending.add(b);
      this.tracker!.foregroundFailed(b * unit, unit, nowNs);
    }
  }

  protected nextScanNs(): number {
    return this.scanner ? this.scanner.nextDueNs() : Infinity;
  }

  protected targetIos(): number {
    return this.target.ioCount;
  }

  protected spare(): SpareState {
    for (const b of this.weakWaiting) if (this.target.lookup(b) >= 0 || this.target.isPending(b)) this.weakWaiting.delete(b);
    return { total: this.target.spareBlocksTotal, used: this.target.spareBlocksUsed, pending: this.target.pendingCount, weakWaiting: this.weakWaiting.size };
  }

  report(): HealthReport {
    const base = this.baseReport();
    const sc = this.scanner;
    return {
      policy: 'safe',
      ...base,
      scanner: sc
        ? { enabled: true, ...sc.stats(), order: sc.order, sliceBytes: sc.sliceBytes, slowMs: sc.slowNs / 1e6, idleMs: sc.idleNs / 1e6 }
        : { enabled: false, reason: 'scanning is switched off' },
      actions: { ...this.actions, weakWaiting: this.weakWaiting.size },
      findings: sc ? findingViews(sc.findings, this.originNs) : [],
      latencyMap: sc?.map.entries(),
    };
  }

  override close(): void {
    this.target.setHealthProvider(undefined);
  }
}

const V4_HEALTH_INTERVAL_NS = 300e9;

export class V4HealthMonitor extends MonitorBase {
  readonly policy = 'dm-remap-v4' as const;
  private nextModuleNs: number;

  constructor(
    readonly target: DmRemapV4Target,
    opts: HealthMonitorOptions = {},
  ) {
    super(opts);
    this.nextModuleNs = this.clock.nowNs() + V4_HEALTH_INTERVAL_NS;
  }

  protected scanTick(nowNs: number): void {
    // the module's timer: its work reads nothing; the target runs it when due (a status call would also take its mutex)
    if (nowNs >= this.nextModuleNs) {
      this.target.runDueWork();
      while (this.nextModuleNs <= nowNs) this.nextModuleNs += V4_HEALTH_INTERVAL_NS;
    }
  }

  protected nextScanNs(): number {
    return this.nextModuleNs;
  }

  protected targetIos(): undefined {
    return undefined;
  }

  protected spare(): SpareState {
    const s = this.target.snapshot();
    return { total: s.spareCapacity, used: Math.min(s.nextSpareSector, s.spareCapacity), pending: 0, weakWaiting: 0 };
  }

  private moduleHealth(): HealthReport['module'] {
    const line = this.target.messageText(['health']); // the text the module formats (it never delivers it)
    const num = (k: string): number => Number(new RegExp(`${k}=(-?\\d+)`).exec(line)?.[1] ?? NaN);
    return { healthScore: num('health_score'), scans: num('scan_count'), hotspots: num('hotspot_sectors'), consecutiveErrors: num('consecutive_errors') };
  }

  report(): HealthReport {
    return {
      policy: 'dm-remap-v4',
      ...this.baseReport(),
      scanner: { enabled: false, reason: "dm-remap-v4's health scanner reads nothing: every 300 s it recomputes a score from its I/O counters" },
      actions: { weakMoved: 0, weakWaiting: 0, badPending: 0, transient: 0, unreadableOnMove: 0 },
      findings: [],
      module: this.moduleHealth(),
    };
  }
}

/** The monitor that fits the target's policy. */
export function attachHealthMonitor(target: SafeRemapTarget | DmRemapV4Target, opts: HealthMonitorOptions = {}): HealthMonitor {
  if (target.targetType === 'remap') return new SafeHealthMonitor(target as SafeRemapTarget, opts);
  return new V4HealthMonitor(target as DmRemapV4Target, opts);
}
