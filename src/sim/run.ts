/**
 * One simulated run: a scenario's target over drive-years in virtual time.
 *
 * Time jumps from event to event (event-queue.ts): faults arriving (the
 * real-time fault processes, stack.ts), the workload's I/Os on the grains
 * (request-sized pieces of the device) whose state matters, transient
 * errors, the scanner reaching a damaged slice, restarts of the target,
 * dm-bufio's write-back timer, health samples. A grain matters from the
 * moment a fault touches it (bad, weak, a transient error on it; and then,
 * remapped or pending, for good): from then on every I/O the workload makes
 * to it is drawn as a Poisson process at the grain's rate (its share of the
 * IOPS, following the load over the day, profile.ts) and runs through the
 * real policy code (SafeRemapTarget, DmRemapV4Target, over the real fault
 * layers) on stores that keep generations instead of bytes (stamp.ts), and
 * the oracle judges each read. Every other I/O reads or writes a healthy
 * block that is not remapped: it cannot change the outcome and is counted
 * in bulk.
 *
 * The target is built when the first such I/O comes (before, it has seen
 * nothing that could change it), as loaded at the last restart. Status
 * calls between two events cannot change the state a dm-remap-v4 target has
 * beyond which of its two mutex states it ends in (a call takes the free
 * mutex, or releases a held one and runs the work that waited): they are
 * applied at the next event, as many as change anything (at most 3).
 */
import { hdrEncode, LatencyRecorder } from './latency.js';
import { type BlockDevice, ENOSPC, OK, SECTOR_SIZE, withoutClose } from '../block/device.js';
import { sampleLatency } from '../faults/latency.js';
import { SliceClassifier, type BlockFinding } from '../health/classify.js';
import { DetectionTracker } from '../health/monitor.js';
import { type HealthSample, healthScore, predictExhaustion } from '../remap/health-score.js';
import { openSafeModel, openV4Model } from '../stack/models.js';
import { computeSafeLayout } from '../metadata/safe-format.js';
import { defaultLogBlocks } from '../metadata/safe-store.js';
import type { V4MetadataStore } from '../metadata/v4-store.js';
import { ReadBuffers } from '../metadata/spare-io.js';
import { type OpenedModel, ReloadingTarget, type RemapModel } from '../remap/reloading-target.js';
import { SafeRemapTarget } from '../remap/safe-target.js';
import { DmRemapV4Target } from '../remap/v4-target.js';
import { Random } from '../util/random.js';
import { Oracle, type ReadClass } from '../workload/oracle.js';
import { Access } from './access.js';
import type { SimConfig } from './config.js';
import { EventQueue, type SimEvent } from './event-queue.js';
import { DayProfile } from './profile.js';
import type { SimRunResult } from './result.js';
import { ScanSchedule, scanRateProfile } from './scan-schedule.js';
import { SlotOracle } from './slot-oracle.js';
import { expand, stampUnits } from './stamp.js';
import { RoleStack } from './stack.js';
import { fromSeconds, toSeconds, VirtualClock, type VTime } from './time.js';

/** Wall-clock seconds at virtual time 0, for the dm-remap-v4 metadata timestamps (fixed, so a run is the same anywhere). */
const EPOCH_SECONDS = 1_700_000_000;
const BUFIO_TIMER_NS = 30_000_000_000n;
/** Bulk I/O latencies are drawn this many times per direction and given the bulk count in shares. */
const BULK_LATENCY_DRAWS = 64;

interface Grain {
  index: number;
  slot: number;
  sector: number;
  /** I/Os per operational second. */
  rate: number;
  /** Its I/Os run one by one (else they are counted in bulk again). */
  followed: boolean;
  ev?: SimEvent<Ev>;
}

type Ev = { k: 'faults' } | { k: 'io'; g: Grain } | { k: 'transient' } | { k: 'scan'; slice: number } | { k: 'restart' } | { k: 'v4tick' } | { k: 'sample' };

interface World {
  reloading?: ReloadingTarget;
  single?: OpenedModel;
  classifier?: SliceClassifier;
}

/** Independent random streams of a run, so that changing one part (the policy, the spare) leaves the others' draws alone. */
function streams(seed: number): { faults: Random; spareFaults: Random; io: Random; transient: Random; latency: Random; layout: number; layers: number } {
  const root = new Random(seed);
  return {
    faults: root.fork(),
    spareFaults: root.fork(),
    io: root.fork(),
    transient: root.fork(),
    latency: root.fork(),
    layout: root.nextU32(),
    layers: root.nextU32(),
  };
}

/** One run. `readBuffers`: memory for the metadata reads, kept from run to run by a caller that makes many. */
export function simulateRun(cfg: SimConfig, seed: number, readBuffers = new ReadBuffers()): SimRunResult {
  const run = new SimRun(cfg, seed, readBuffers);
  try {
    return run.run();
  } finally {
    run.close();
  }
}

export class SimRun {
  private readonly clock = new VirtualClock();
  private readonly q = new EventQueue<Ev>();
  private readonly rnd: ReturnType<typeof streams>;
  private readonly load: DayProfile;
  private readonly access: Access;
  private readonly main: RoleStack;
  private readonly spare: RoleStack;
  private readonly sectorsPerGrain: number;
  private readonly grains = new Map<number, Grain>();
  private readonly bySlot: Grain[] = [];
  private readonly oracle: SlotOracle;
  private readonly tracker: DetectionTracker;
  private readonly scan: ScanSchedule | undefined;
  private readonly scanBlocks = new Map<number, Set<number>>();
  private readonly scanEvents = new Map<number, SimEvent<Ev>>();
  private readonly hist = new LatencyRecorder();
  private readonly ioBuf: Uint8Array;
  private world: World | undefined;
  private v4Store: V4MetadataStore | undefined;
  private v4Seq = 0n;
  private classifier: SliceClassifier | undefined;
  private v4TickEv: SimEvent<Ev> | undefined;
  private faultEv: SimEvent<Ev> | undefined;
  private lastStatusAt: VTime = 0n;
  private lastLoadAt: VTime = 0n;
  private restartsStopped: { at: VTime; why: string } | undefined;
  private restartsDone = 0;
  private initialLoading = false;
  private readonly silentSlots = new Set<number>();
  private readonly unreadableSlots = new Set<number>();
  private silentAt: VTime | undefined;
  private unreadableAt: VTime | undefined;
  private readBackLoss = false;
  private readonly errors = { read: 0, write: 0, enospc: 0 };
  private readonly readBack = Oracle.emptyTally();
  private simulatedReads = 0;
  private simulatedWrites = 0;
  private exhaustedAt: VTime | undefined;
  private readonly scanActs = { weakMoved: 0, badPending: 0 };
  /**
   * Weak blocks the scanner found when the spare had no room left ('spare-full': the safe spare's cursor never
   * moves back). The real monitor reads them again every pass to no effect; here they are read again only when
   * they fail (the bad list's onBad watches them anew). Counted in the health score, as the monitor does.
   */
  private readonly weakWaiting = new Set<number>();
  private readonly samples: HealthSample[] = [];
  private readonly health: SimRunResult['health'] = { t: [], score: [], used: [], pending: [] };
  private events = 0;
  private followed = 0;
  private committedSeen = false;
  private layoutBlocks: number | undefined;
  private transientCount = 0;
  private weakBlocks = 0;
  private spareBad = 0;

  constructor(
    private readonly cfg: SimConfig,
    seed: number,
    /** Memory for the metadata reads of each table load, handed from one load to the next. */
    private readonly readBuffers: ReadBuffers,
  ) {
    this.rnd = streams(seed);
    const w = cfg.workload;
    this.load = DayProfile.fromPeriods(w.idle, 'simulate.workload.idle');
    this.access = new Access(w.pattern, w.grains, this.rnd.layout);
    this.sectorsPerGrain = w.bs / SECTOR_SIZE;
    this.ioBuf = new Uint8Array(w.bs);
    const lbs = cfg.main.logicalBlockSize;
    this.main = new RoleStack({
      role: 'main',
      sectors: cfg.main.sectors,
      logicalBlockSize: lbs,
      faults: cfg.faults.main,
      clock: this.clock,
      random: this.rnd.faults,
      seed: this.rnd.layers,
      onBad: (b) => this.mainBlockBad(b),
    });
    this.spare = new RoleStack({
      role: 'spare',
      sectors: cfg.spare.sectors,
      logicalBlockSize: lbs,
      faults: cfg.faults.spare,
      clock: this.clock,
      random: this.rnd.spareFaults,
      seed: this.rnd.layers ^ 0x5a5a5a5a,
      onBad: () => this.spareBad++,
    });
    this.tracker = new DetectionTracker(this.main.sectorsPerBlock);
    this.oracle = new SlotOracle(w.bs, (slot) => this.knownBad(this.bySlot[slot]!));
    for (const p of this.main.weakProcs) {
      p.onEvent((e) => {
        if (e.kind !== 'weak') return;
        this.weakBlocks++;
        this.mainBlockTouched(e.block);
      });
    }
    const sc = cfg.scanner;
    if (sc && cfg.policy === 'safe') {
      const rate = scanRateProfile(this.load, { rateBytes: sc.rateBytes, busyFactor: sc.busyFactor, idleS: sc.idleS, iops: w.iops });
      this.scan = new ScanSchedule({
        deviceBytes: cfg.main.sectors * SECTOR_SIZE,
        sliceBytes: sc.sliceBytes,
        order: sc.order,
        staggerRegions: sc.staggerRegions,
        rate,
        every: sc.every,
      });
    }
  }

  // ---- the run

  run(): SimRunResult {
    const cfg = this.cfg;
    this.initialLoading = true;
    this.main.loadInitial();
    this.spare.loadInitial();
    this.initialLoading = false;
    this.scheduleFaults();
    this.scheduleTransient(0n);
    if (cfg.target.restartEvery !== undefined) this.q.push(cfg.target.restartEvery, { k: 'restart' });
    this.q.push(0n, { k: 'sample' });
    const horizon = cfg.horizon;
    for (;;) {
      const e = this.q.pop();
      if (!e || e.at > horizon) break;
      this.clock.now = e.at;
      this.events++;
      this.handle(e.payload);
    }
    this.clock.now = horizon;
    // the target's state in service at the horizon; the read-back after it judges the data (and under
    // dm-remap-v4 its failed reads would remap: not part of the drive's life)
    this.sample(true);
    const spare = { ...this.spareState(), exhaustedAt: this.exhaustedAt };
    this.finalPass();
    return this.result(spare);
  }

  close(): void {
    const w = this.world;
    try {
      if (w?.reloading) w.reloading.close();
      else if (w?.single) {
        w.single.target.close();
        w.single.closeStore?.();
      }
    } catch {
      // a dm-remap-v4 target whose remove would hang keeps its devices: closed below
    }
    this.main.close();
    this.spare.close();
  }

  private handle(p: Ev): void {
    switch (p.k) {
      case 'faults':
        this.faultEv = undefined;
        this.main.advance(Number(this.clock.now));
        this.spare.advance(Number(this.clock.now));
        this.scheduleFaults();
        return;
      case 'io':
        p.g.ev = undefined;
        if (this.rnd.io.next() < this.cfg.workload.readFraction) this.read(p.g, 'user');
        else this.write(p.g);
        if (!this.release(p.g)) this.scheduleIo(p.g);
        return;
      case 'transient':
        this.transientError();
        return;
      case 'scan':
        this.scanEvents.delete(p.slice);
        this.scanSlice(p.slice);
        return;
      case 'restart':
        this.restart();
        return;
      case 'v4tick':
        this.v4TickEv = undefined;
        if (this.world) {
          this.applyStatus();
          (this.model() as DmRemapV4Target).runDueWork();
          this.afterTargetOp();
        }
        return;
      case 'sample':
        this.sample(false);
        return;
    }
  }

  // ---- faults and the grains they touch

  private scheduleFaults(): void {
    const next = Math.min(this.main.nextFaultNs(), this.spare.nextFaultNs());
    if (!Number.isFinite(next) || this.faultEv) return;
    let at = BigInt(Math.ceil(next));
    if (at < this.clock.now) at = this.clock.now;
    if (at <= this.cfg.horizon) this.faultEv = this.q.push(at, { k: 'faults' });
  }

  /** A block of main was listed bad (a latent error, a weak block that failed, growth, the initial list). */
  private mainBlockBad(block: number): void {
    const spb = this.main.sectorsPerBlock;
    if (!this.initialLoading) this.tracker.appeared(block * spb, spb, Number(this.clock.now));
    this.mainBlockTouched(block);
  }

  /** A fault touched dust block `block` of main: its grains matter from now on, and the scanner will read it. */
  private mainBlockTouched(block: number): void {
    const spb = this.main.sectorsPerBlock;
    const first = block * spb;
    const w = this.cfg.workload;
    const g0 = Math.floor((first - w.regionSector) / this.sectorsPerGrain);
    const g1 = Math.floor((first + spb - 1 - w.regionSector) / this.sectorsPerGrain);
    for (let g = Math.max(0, g0); g <= Math.min(w.grains - 1, g1); g++) this.grain(g);
    this.watchForScan(first, spb);
  }

  private grain(index: number): Grain {
    let g = this.grains.get(index);
    if (g) {
      if (!g.followed) {
        g.followed = true;
        this.followed++;
        this.scheduleIo(g);
      }
      return g;
    }
    const slot = this.oracle.allocate();
    const sector = this.cfg.workload.regionSector + index * this.sectorsPerGrain;
    g = { index, slot, sector, rate: this.cfg.workload.iops * this.access.share(index), followed: true };
    this.followed++;
    this.grains.set(index, g);
    this.bySlot[slot] = g;
    // what the grain held before it mattered: an acknowledged write, made long ago, on main where it lives
    const gen = this.oracle.prepareWrite(slot);
    this.oracle.completeWrite(slot, OK);
    for (let p = 0; p < this.sectorsPerGrain; p++) {
      if (this.main.store.get(sector + p) === undefined) this.main.store.set(sector + p, { kind: 1, slot, gen, part: p });
    }
    this.scheduleIo(g);
    return g;
  }

  private scheduleIo(g: Grain): void {
    if (!(g.rate > 0)) return;
    const op = this.load.integral(this.clock.now) + this.rnd.io.exponential(g.rate);
    const at = this.load.inverse(op);
    if (at === undefined || at > this.cfg.horizon) return;
    g.ev = this.q.push(at > this.clock.now ? at : this.clock.now, { k: 'io', g });
  }

  private scheduleTransient(from: VTime): void {
    const t = this.cfg.faults.main.transient;
    if (!t) return;
    let at: VTime | undefined;
    if (t.ratePerSecond !== undefined) at = from + fromSeconds(this.rnd.transient.exponential(t.ratePerSecond));
    else {
      const perOp = t.probability! * this.cfg.workload.iops * this.cfg.workload.readFraction;
      if (!(perOp > 0)) return;
      at = this.load.inverse(this.load.integral(from) + this.rnd.transient.exponential(perOp));
    }
    if (at !== undefined && at <= this.cfg.horizon) this.q.push(at, { k: 'transient' });
  }

  /** A user read meets a transient error: it lands on a grain as the workload's reads do. */
  private transientError(): void {
    this.transientCount++;
    const g = this.grain(this.access.draw(this.rnd.transient));
    this.main.transient!.arm(g.sector, this.sectorsPerGrain);
    this.read(g, 'user');
    this.main.transient!.disarm();
    this.release(g);
    this.scheduleTransient(this.clock.now);
  }

  /**
   * Under the safe policy a grain whose blocks are healthy again on main (a
   * transient error retried, a bad block rewritten in place) with its data
   * intact is like any other: its I/Os go back to bulk. When no grain is left
   * and the target holds nothing (no remap, nothing pending, no spare block
   * used) it is dropped too, as if never built: restarts then cost nothing.
   * (A dm-remap-v4 target keeps what an error made of it until a restart, so
   * its grains stay followed.)
   */
  private release(g: Grain): boolean {
    const m = this.model();
    if (!(m instanceof SafeRemapTarget) || !g.followed) return false;
    const n = this.sectorsPerGrain;
    if (this.main.hasBadIn(g.sector, n) || !this.oracle.isAcked(g.slot) || this.silentSlots.has(g.slot) || this.unreadableSlots.has(g.slot)) return false;
    const weak = this.main.weak;
    const spb = this.main.sectorsPerBlock;
    if (weak && weak.weakCount > 0) for (let b = Math.floor(g.sector / spb); b * spb < g.sector + n; b++) if (weak.isWeak(b)) return false;
    const b0 = g.sector / m.unit;
    const nb = n / m.unit;
    if (m.remappedInRange(b0, nb)) return false;
    if (m.pendingCount > 0) for (let b = b0; b < b0 + nb; b++) if (m.isPending(b)) return false;
    g.followed = false;
    if (g.ev) g.ev.cancelled = true;
    g.ev = undefined;
    this.followed--;
    const s = m.stats();
    if (this.followed === 0 && this.scanEvents.size === 0 && s.remaps === 0 && s.pending === 0 && s.spareUsed === 0 && s.storeErrors === 0) this.dropTarget();
    return true;
  }

  private dropTarget(): void {
    const w = this.world!;
    if (w.reloading) w.reloading.close();
    else {
      w.single!.target.close();
      w.single!.closeStore?.();
    }
    this.world = undefined;
  }

  private knownBad(g: Grain | undefined): boolean {
    if (!g) return false;
    return this.main.hasBadIn(g.sector, this.sectorsPerGrain) || (this.main.transient?.failedRecently(g.sector, this.sectorsPerGrain) ?? false);
  }

  // ---- the target

  private model(): RemapModel | undefined {
    const w = this.world;
    return w?.reloading?.model ?? w?.single?.target;
  }

  private target(): BlockDevice {
    const w = this.materialize();
    return w.reloading ?? w.single!.target;
  }

  private openModel(under: (d: BlockDevice) => BlockDevice): OpenedModel {
    const cfg = this.cfg;
    const main = under(this.main.top);
    const spare = under(this.spare.top);
    if (cfg.policy === 'dm-remap-v4') {
      const m = openV4Model(main, spare, {
        mainPath: 'main',
        sparePath: 'spare',
        clock: this.clock,
        spareOverheadPercent: cfg.target.spareOverheadPercent,
        nowSeconds: () => EPOCH_SECONDS + toSeconds(this.clock.now),
        nextSequence: () => ++this.v4Seq,
        readBuffers: this.readBuffers,
      });
      this.v4Store = m.store;
      return { target: m.target, closeStore: () => m.store.close() };
    }
    if (cfg.target.restartEvery !== undefined) {
      // restarts replay the table from the spare: the real metadata store
      const m = openSafeModel(main, spare, { mainPath: 'main', sparePath: 'spare', readBuffers: this.readBuffers });
      return { target: m.target, closeStore: () => m.store.close() };
    }
    // no restart: the table never needs reading back, so its records stay in memory; the layout (and so the
    // spare's capacity) is the store's
    const l = safeLayout(cfg);
    return { target: new SafeRemapTarget({ main, spare, mainPath: 'main', sparePath: 'spare', reservedSectors: l.start, reservedEndSectors: l.end }) };
  }

  /**
   * The scanner's slice reader over main: it times reads by the virtual time the layers slept (a weak block is a
   * slow one). One per run: it keeps nothing between slices but its buffer, and every table loaded has the same unit.
   */
  private classifierFor(m: SafeRemapTarget): SliceClassifier {
    const sc = this.cfg.scanner!;
    this.classifier ??= new SliceClassifier(
      this.main.top,
      { clock: this.clock.inRequest, blockSectors: m.unit, slowNs: sc.slowNs, retries: sc.retries },
      sc.sliceBytes,
    );
    return this.classifier;
  }

  private materialize(): World {
    if (this.world) return this.world;
    const w: World = {};
    if (this.cfg.target.restartEvery !== undefined) w.reloading = new ReloadingTarget(() => this.openModel(withoutClose));
    else w.single = this.openModel(withoutClose); // the stacks outlive the target (see release())
    this.world = w;
    const m = this.model()!;
    const sc = this.cfg.scanner;
    if (sc && m instanceof SafeRemapTarget) w.classifier = this.classifierFor(m);
    // loaded at the last restart: the status calls since then happened to it
    this.lastStatusAt = this.lastLoadAt;
    this.applyStatus();
    if (m instanceof DmRemapV4Target) m.runDueWork();
    this.afterTargetOp();
    return w;
  }

  /** The status calls due since the last were applied (see the file comment). */
  private applyStatus(): void {
    const every = this.cfg.target.statusEvery;
    if (every === undefined) return;
    const now = this.clock.now;
    const k = Number(now / every - this.lastStatusAt / every);
    this.lastStatusAt = now;
    const m = this.model();
    if (k <= 0 || !(m instanceof DmRemapV4Target)) return; // the safe target's status changes nothing
    const calls = k <= 2 ? k : 2 + (k % 2);
    for (let i = 0; i < calls; i++) m.pollStatus();
  }

  private afterTargetOp(): void {
    const m = this.model();
    if (!m) return;
    if (this.exhaustedAt === undefined && this.spareState().free <= 0) this.exhaustedAt = this.clock.now;
    if (m instanceof DmRemapV4Target && this.v4Store?.pendingWriteback() !== undefined && !this.v4TickEv) {
      const at = this.clock.now + BUFIO_TIMER_NS + 1n;
      if (at <= this.cfg.horizon) this.v4TickEv = this.q.push(at, { k: 'v4tick' });
    }
  }

  private spareState(): { total: number; used: number; pending: number; remaps: number; free: number } {
    const m = this.model();
    if (!m) {
      this.layoutBlocks ??= this.cfg.policy === 'safe' ? safeLayout(this.cfg).blocks : Math.floor(this.cfg.spare.sectors / 2);
      const total = this.layoutBlocks;
      return { total, used: 0, pending: 0, remaps: 0, free: total };
    }
    if (m instanceof SafeRemapTarget) {
      const total = m.spareBlocksTotal;
      const used = m.spareBlocksUsed;
      return { total, used, pending: m.pendingCount, remaps: m.remapCount, free: total - used };
    }
    const s = (m as DmRemapV4Target).snapshot();
    const used = Math.min(s.nextSpareSector, s.spareCapacity);
    return { total: s.spareCapacity, used, pending: s.pending, remaps: s.remaps, free: s.spareCapacity - used };
  }

  private restart(): void {
    const every = this.cfg.target.restartEvery!;
    if (this.world?.reloading) {
      this.applyStatus();
      const outcome = this.world.reloading.reload();
      if (outcome !== 'ok') {
        this.restartsStopped = { at: this.clock.now, why: this.world.reloading.stopped ?? outcome };
        return;
      }
      this.lastStatusAt = this.clock.now; // the new table's load made its own status call
      if (this.v4TickEv) this.v4TickEv.cancelled = true;
      this.v4TickEv = undefined;
      const m = this.model();
      if (m instanceof DmRemapV4Target) m.runDueWork();
      if (this.world.classifier === undefined && this.cfg.scanner && m instanceof SafeRemapTarget) {
        this.world.classifier = this.classifierFor(m);
      }
      this.afterTargetOp();
    }
    this.restartsDone++;
    this.lastLoadAt = this.clock.now;
    const next = this.clock.now + every;
    if (next <= this.cfg.horizon) this.q.push(next, { k: 'restart' });
  }

  // ---- I/O through the target, judged

  private read(g: Grain, why: 'user' | 'readback'): ReadClass {
    const t = this.target();
    this.applyStatus();
    const buf = this.ioBuf;
    this.clock.takeSlept();
    const status = t.read(g.sector, buf);
    const ns = this.clock.takeSlept();
    const acked = this.oracle.isAcked(g.slot);
    // a transient error loses nothing (a retry reads the data); an error over a listed bad sector, or one nothing explains, does
    const transientOnly =
      status !== OK && (this.main.transient?.failedRecently(g.sector, this.sectorsPerGrain) ?? false) && !this.main.hasBadIn(g.sector, this.sectorsPerGrain);
    expand(buf, (slot, gen) => this.oracle.unitBytes(slot, gen));
    const cls = this.oracle.judge(g.slot, buf, status);
    this.main.transient?.clearRecent();
    if (why === 'readback') this.readBack[cls]++;
    else {
      this.simulatedReads++;
      this.hist.record(ns, 1);
      if (status !== OK) {
        this.errors.read++;
        this.tracker.foregroundFailed(g.sector, this.sectorsPerGrain, Number(this.clock.now));
      }
    }
    if (cls === 'lost' || cls === 'stale' || cls === 'corrupt') {
      this.silentSlots.add(g.slot);
      if (this.silentAt === undefined) {
        this.silentAt = this.clock.now;
        if (why === 'readback' && this.unreadableAt === undefined) this.readBackLoss = true;
      }
    } else if (status !== OK && acked && !transientOnly) {
      this.unreadableSlots.add(g.slot);
      if (this.unreadableAt === undefined) {
        this.unreadableAt = this.clock.now;
        if (why === 'readback' && this.silentAt === undefined) this.readBackLoss = true;
      }
    }
    this.afterTargetOp();
    return cls;
  }

  private write(g: Grain): void {
    const t = this.target();
    this.applyStatus();
    const gen = this.oracle.prepareWrite(g.slot);
    stampUnits(this.ioBuf, g.slot, [gen], this.sectorsPerGrain);
    this.clock.takeSlept();
    const status = t.write(g.sector, this.ioBuf);
    this.hist.record(this.clock.takeSlept(), 1);
    this.simulatedWrites++;
    this.oracle.completeWrite(g.slot, status);
    if (status !== OK) {
      this.errors.write++;
      if (status === ENOSPC) this.errors.enospc++;
    }
    this.afterTargetOp();
  }

  /** At the horizon: every followed unit read back once, as `remapsim run` does after its jobs. */
  private finalPass(): void {
    if (this.grains.size === 0) return;
    for (const g of this.bySlot) this.read(g, 'readback');
  }

  // ---- the scanner (safe policy; dm-remap-v4's reads nothing)

  /** The scanner will read sectors [sector, sector + count): its slice gets a visit. */
  private watchForScan(sector: number, count: number): void {
    if (!this.scan) return;
    const unit = this.cfg.main.logicalBlockSize / SECTOR_SIZE;
    const sliceBlocks = this.cfg.scanner!.sliceBytes / this.cfg.main.logicalBlockSize;
    for (let b = Math.floor(sector / unit); b <= Math.floor((sector + count - 1) / unit); b++) {
      const slice = Math.floor(b / sliceBlocks);
      let set = this.scanBlocks.get(slice);
      if (!set) {
        set = new Set();
        this.scanBlocks.set(slice, set);
      }
      set.add(b);
      this.scheduleScan(slice);
    }
  }

  private scheduleScan(slice: number): void {
    if (this.scanEvents.has(slice)) return;
    const { at } = this.scan!.nextVisit(slice, this.clock.now + 1n);
    if (at <= this.cfg.horizon) this.scanEvents.set(slice, this.q.push(at, { k: 'scan', slice }));
  }

  private scanSlice(slice: number): void {
    this.target();
    const m = this.model() as SafeRemapTarget;
    this.applyStatus();
    const classifier = this.world!.classifier!;
    const sliceBlocks = this.cfg.scanner!.sliceBytes / this.cfg.main.logicalBlockSize;
    const totalBlocks = this.cfg.main.sectors / m.unit;
    const first = slice * sliceBlocks;
    const n = Math.min(sliceBlocks, totalBlocks - first);
    this.clock.takeSlept();
    const r = classifier.scan(first, n, {
      anyIn: (f, k) => m.pendingCount > 0 || m.remappedInRange(f, k),
      has: (b) => m.lookup(b) >= 0 || m.isPending(b),
    });
    this.clock.takeSlept();
    for (const f of r.findings) this.act(m, f);
    // a block still damaged and neither moved nor pending is read again next pass
    const set = this.scanBlocks.get(slice)!;
    const weak = this.main.weak;
    const spb = this.main.sectorsPerBlock;
    for (const b of [...set]) {
      const dustBlock = Math.floor((b * m.unit) / spb);
      const damaged = this.main.isBadBlock(dustBlock) || (weak?.isWeak(dustBlock) ?? false);
      if (!damaged || m.lookup(b) >= 0 || m.isPending(b) || (this.weakWaiting.has(b) && !this.main.isBadBlock(dustBlock))) set.delete(b);
    }
    if (set.size > 0) this.scheduleScan(slice);
    else this.scanBlocks.delete(slice);
    this.afterTargetOp();
  }

  /** What the safe policy's health monitor does with a finding (src/health/monitor.ts, SafeHealthMonitor). */
  private act(m: SafeRemapTarget, f: BlockFinding): void {
    if (f.kind !== 'transient') this.tracker.scannerFound(f.sector, f.sectors, Number(this.clock.now));
    if (f.blocks !== 1 || f.kind === 'transient') return;
    if (f.kind === 'bad') {
      if (m.markBlockPending(f.block)) this.scanActs.badPending++;
      this.weakWaiting.delete(f.block);
      return;
    }
    const r = m.migrateWeakBlock(f.block);
    if (r === 'remapped') this.scanActs.weakMoved++;
    if (r === 'spare-full') this.weakWaiting.add(f.block);
    else this.weakWaiting.delete(f.block);
  }

  // ---- health over time

  private sample(last: boolean): void {
    const now = this.clock.now;
    const s = this.spareState();
    const m = this.model();
    if (m instanceof SafeRemapTarget) for (const b of this.weakWaiting) if (m.lookup(b) >= 0 || m.isPending(b)) this.weakWaiting.delete(b);
    const committed = s.used + s.pending + this.weakWaiting.size;
    const sample: HealthSample = { tNs: Number(now), ios: this.cfg.workload.iops * this.load.integral(now), committed, score: 0 };
    // as the health monitor scores it (MonitorBase.sample); with nothing committed yet there is no arrival to predict from
    if (committed > 0) this.committedSeen = true;
    let lo = Infinity;
    if (this.committedSeen) {
      const p = predictExhaustion([...this.samples, sample], s.total - committed, { confidence: this.cfg.scanner?.confidence ?? 0.9 });
      if (p.arrivals > 0) lo = p.timeNs.lo;
    }
    sample.score = healthScore({
      spareTotal: s.total,
      spareUsed: s.used,
      pending: s.pending,
      weakWaiting: this.weakWaiting.size,
      exhaustionLoNs: lo,
      horizonNs: this.cfg.scanner?.scoreHorizonNs ?? 30 * 86400e9,
    });
    this.samples.push(sample);
    const h = this.health;
    h.t.push(round6(toSeconds(now)));
    h.score.push(sample.score);
    h.used.push(s.used);
    h.pending.push(s.pending);
    if (last) return;
    const step = this.cfg.horizon / BigInt(this.cfg.samples);
    const next = now + (step > 0n ? step : 1n);
    if (next < this.cfg.horizon) this.q.push(next, { k: 'sample' });
  }

  // ---- the result

  private result(s: ReturnType<SimRun['spareState']> & { exhaustedAt: VTime | undefined }): SimRunResult {
    const cfg = this.cfg;
    const horizonS = toSeconds(cfg.horizon);
    const opSeconds = this.load.integral(cfg.horizon);
    const total = cfg.workload.iops * opSeconds;
    const reads = Math.round(total * cfg.workload.readFraction);
    const writes = Math.round(total) - reads;
    this.bulkLatency(Math.max(0, reads - this.simulatedReads), Math.max(0, writes - this.simulatedWrites));
    const d = this.tracker.summary();
    const sec = (t: VTime | undefined): number | null => (t === undefined ? null : round6(toSeconds(t)));
    const lossAt =
      this.silentAt === undefined
        ? this.unreadableAt
        : this.unreadableAt === undefined
          ? this.silentAt
          : this.silentAt < this.unreadableAt
            ? this.silentAt
            : this.unreadableAt;
    const oracle = this.oracle.counts();
    const progress = this.scan?.progressAt(cfg.horizon);
    return {
      policy: cfg.policy,
      horizonSeconds: round6(horizonS),
      loss: {
        at: sec(lossAt),
        silentAt: sec(this.silentAt),
        unreadableAt: sec(this.unreadableAt),
        atReadBack: lossAt !== undefined && this.readBackLoss,
        silentUnits: this.silentSlots.size,
        unreadableUnits: this.unreadableSlots.size,
      },
      errors: { ...this.errors },
      spare: { total: s.total, used: s.used, remaps: s.remaps, pending: s.pending, exhaustedAt: sec(s.exhaustedAt) },
      faults: { badBlocks: d.appeared, weakBlocks: this.weakBlocks, transientErrors: this.transientCount, spareBadBlocks: this.spareBad },
      detection: { appeared: d.appeared, scannerFirst: d.scannerFirst, userFirst: d.foregroundFirst, undiscovered: d.undiscovered },
      scanner: progress ? { passes: progress.passes, bytes: progress.bytes, ...this.scanActs } : null,
      restarts: { done: this.restartsDone, stoppedAt: sec(this.restartsStopped?.at), ...(this.restartsStopped ? { stopped: this.restartsStopped.why } : {}) },
      statusCalls: cfg.target.statusEvery === undefined ? 0 : Number(cfg.horizon / cfg.target.statusEvery),
      ios: { reads, writes, simulated: this.simulatedReads + this.simulatedWrites, bytesRead: reads * cfg.workload.bs, bytesWritten: writes * cfg.workload.bs },
      oracle,
      health: this.health,
      ...(this.hist.count > 0 ? { latency: hdrEncode(this.hist) } : {}),
      events: this.events,
    };
  }

  /** The I/Os counted in bulk, in the latency histogram: the healthy latency drawn, each draw standing for a share. */
  private bulkLatency(reads: number, writes: number): void {
    const lat = this.cfg.faults.main.latency;
    for (const [dist, n] of [
      [lat?.read, reads],
      [lat?.write, writes],
    ] as const) {
      if (!dist || n <= 0) continue;
      const base = Math.floor(n / BULK_LATENCY_DRAWS);
      let extra = n - base * BULK_LATENCY_DRAWS;
      for (let i = 0; i < BULK_LATENCY_DRAWS; i++) {
        const c = base + (extra > 0 ? 1 : 0);
        if (extra > 0) extra--;
        if (c > 0) this.hist.record(sampleLatency(dist, this.rnd.latency), c);
      }
    }
  }
}

/** The safe store's layout for this spare: its reserved areas and data blocks. */
function safeLayout(cfg: SimConfig): { start: number; end: number; blocks: number } {
  const unit = cfg.main.logicalBlockSize / SECTOR_SIZE;
  const l = computeSafeLayout({ spareSectors: cfg.spare.sectors, remapBlockSectors: unit, logBlocks: defaultLogBlocks(cfg.spare.sectors) });
  return { start: l.dataStartSector, end: cfg.spare.sectors - l.dataEndSector, blocks: Math.floor((l.dataEndSector - l.dataStartSector) / unit) };
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
