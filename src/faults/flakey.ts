/**
 * dm-flakey in userspace: a device that is reliable for <up interval> seconds,
 * then unreliable for <down interval> seconds, repeating from creation time.
 *
 * Semantics follow upstream drivers/md/dm-flakey.c after commit 75227ed6812c
 * "dm-flakey: Fix corrupt_bio_byte setup checks" (Linux 6.17; in 6.16.y
 * stable), target version 1.5.0:
 *
 * - Table: `<dev> <offset> <up> <down> [<num_features> [<feature args>]]`;
 *   up/down are seconds (u32, sum non-zero and without overflow);
 *   num_features 0..11. Features: error_reads, drop_writes, error_writes,
 *   `corrupt_bio_byte <Nth_byte> <r|w> <value> <flags>`,
 *   `random_read_corrupt <p>`, `random_write_corrupt <p>` with p in
 *   0..1000000000 (parts per billion). Arguments after the feature group are
 *   ignored, as in the kernel.
 * - With no feature (num_features absent, 0, or only random_* with p = 0)
 *   the target sets error_reads + error_writes: all I/O fails while down.
 * - While down: reads fail with EIO under error_reads, else are read and then
 *   corrupted (corrupt_bio_byte r: byte N-1 of the request set to <value>
 *   when the request flags match; random_read_corrupt: with probability p a
 *   random byte gets a random value). Everything that is not a read
 *   (writes, flushes, discards) completes with success and is thrown away
 *   under drop_writes, fails with EIO under error_writes, else goes through;
 *   writes with data are corrupted on a copy (the caller's buffer is left
 *   alone), at most 4 MiB (UIO_MAXIOV pages) per copy, the rest of the
 *   request being mapped again.
 * - Flags matching: (bi_opf & flags) == flags. The model's bi_opf is
 *   REQ_OP_READ (0) or REQ_OP_WRITE (1), plus REQ_FUA (1 << 17) for a write
 *   with `fua`; other request flags do not exist here.
 * - Time: whole seconds since construction; down when
 *   elapsed % (up + down) >= up.
 *
 * Differences between kernel versions (what a real target of that version
 * does differently from this model):
 * - 6.1 (Debian 12): no error_reads, random_read_corrupt or
 *   random_write_corrupt ("Unrecognised flakey feature requested");
 *   num_features at most 6. While down, reads fail unless corrupt_bio_byte,
 *   drop_writes or error_writes is given; with no feature writes fail too.
 *   corrupt_bio_byte w corrupts the caller's own pages in place. A bad down
 *   interval is reported as "Invalid up interval". The table line ends in a
 *   space, and with no feature it shows `0` features where newer kernels
 *   show `2 error_reads error_writes`. Conflicts refused:
 *   drop_writes/error_writes with corrupt_bio_byte w only.
 * - 6.12 (Debian 13), as released: error_reads and random_* exist (since
 *   6.5) and writes are corrupted on a clone, but a table with no
 *   <num_features> at all errors no I/O while down (fixed by 40ed054f39bc
 *   "dm-flakey: error all IOs when num_features is absent", in 6.15 and
 *   backported to 6.6.y/6.15.y stable in June 2025); read corruption
 *   looked at the bio in end_io without a saved iterator (changed by
 *   "dm-flakey: make corrupting read bios work", 2025; not checked here
 *   against a 6.12 source); duplicate corrupt_bio_byte/random_* features
 *   and the random_* and error_reads conflicts were not refused; a short
 *   corrupt_bio_byte says "requires parameters", not "requires 4
 *   parameters".
 * - 6.16 before 75227ed6812c refused error_reads unless corrupt_bio_byte w
 *   was given too ("error_reads is incompatible with ..."): the unset
 *   corrupt_bio_byte direction defaults to READ and was checked without
 *   checking that the feature is present.
 */
import { type BlockDevice, type IoStatus, type WriteFlags, checkIo, checkRequest, EIO, OK } from '../block/device.js';
import type { ControlTarget } from '../control/target.js';
import { type Clock, realClock } from '../util/clock.js';
import { Random } from '../util/random.js';
import { dmReadArg, scanU64 } from './dm-args.js';
import { PassThroughLayer } from '../block/pass-through.js';
import { KernelMessageError, KernelTableError, singleTargetLine } from './errors.js';

export const PROBABILITY_BASE = 1_000_000_000;
/** REQ_OP_WRITE and REQ_FUA as bits of bi_opf (include/linux/blk_types.h, 6.x). */
export const REQ_OP_READ = 0;
export const REQ_OP_WRITE = 1;
export const REQ_FUA = 1 << 17;
/** UIO_MAXIOV << PAGE_SHIFT: the largest write flakey clones in one piece. */
export const FLAKEY_MAX_CLONE_BYTES = 1024 * 4096;
const UINT_MAX = 0xffffffff;

export interface CorruptBioByte {
  /** 1-based index of the byte to replace in each matching request. */
  nthByte: number;
  direction: 'r' | 'w';
  /** Replacement byte 0..255. */
  value: number;
  /** Only requests whose bi_opf has all these bits set are corrupted (0: all). */
  flags: number;
}

/** The parsed feature set, after the kernel's defaulting (no feature -> error_reads + error_writes). */
export interface FlakeyFeatures {
  errorReads: boolean;
  dropWrites: boolean;
  errorWrites: boolean;
  corruptBioByte?: CorruptBioByte;
  /** Parts per billion, 0 = off. */
  randomReadCorrupt: number;
  randomWriteCorrupt: number;
}

export interface FlakeyConfig {
  devName: string;
  offset: number;
  upSeconds: number;
  downSeconds: number;
  features: FlakeyFeatures;
}

export interface FlakeyFeatureOptions {
  errorReads?: boolean;
  dropWrites?: boolean;
  errorWrites?: boolean;
  corruptBioByte?: CorruptBioByte;
  randomReadCorrupt?: number;
  randomWriteCorrupt?: number;
}

export interface FlakeyOptions extends FlakeyFeatureOptions {
  upSeconds: number;
  downSeconds: number;
  offset?: number;
  /** Target length in sectors (default: the rest of the inner device after `offset`). */
  sectors?: number;
  devName?: string;
  clock?: Clock;
  /** Randomness for random_*_corrupt (default: seeded with 1). */
  random?: Random;
  startNs?: number;
}

export interface FlakeyRuntime {
  sectors?: number;
  clock?: Clock;
  random?: Random;
  /** When the up/down intervals start (clock ns); default construction time. Replicas in other threads pass the primary's. */
  startNs?: number;
}

function fail(kernelText: string, detail?: string): never {
  throw new KernelTableError(kernelText, detail);
}

/** flakey_ctr + parse_features: target arguments -> configuration, with the kernel's checks, order and texts. */
export function parseFlakeyArgs(args: readonly string[]): FlakeyConfig {
  if (args.length < 4)
    fail('Invalid argument count', `flakey takes <dev> <offset> <up> <down> [<num_features> [<feature args>]], got ${args.length} arguments`);
  const q = [...args];
  const shift = (): string | undefined => q.shift();
  const devName = shift()!;
  const offsetArg = shift()!;
  const offset = scanU64(offsetArg);
  if (offset === undefined || offset > BigInt(Number.MAX_SAFE_INTEGER))
    fail('Invalid device sector', `offset must be a decimal sector number, got '${offsetArg}'`);
  const upArg = shift();
  const up = dmReadArg(upArg, 0, UINT_MAX);
  if (up === undefined) fail('Invalid up interval', `up interval must be 0..${UINT_MAX} seconds, got '${upArg}'`);
  const downArg = shift();
  const down = dmReadArg(downArg, 0, UINT_MAX);
  if (down === undefined) fail('Invalid down interval', `down interval must be 0..${UINT_MAX} seconds, got '${downArg}'`);
  if (up + down === 0) fail('Total (up + down) interval is zero');
  if (up + down > UINT_MAX) fail('Interval overflow', `up + down must fit in 32 bits, got ${up + down}`);

  let errorReads = false;
  let dropWrites = false;
  let errorWrites = false;
  let cbb: CorruptBioByte | undefined;
  let rrc = 0;
  let rwc = 0;

  let argc = 0;
  if (q.length > 0) {
    const nArg = shift();
    const n = dmReadArg(nArg, 0, 11);
    if (n === undefined || q.length < n)
      fail('Invalid number of feature args', `<num_features> must be 0..11 and no more than the ${q.length} arguments that follow, got '${nArg}'`);
    argc = n;
  }
  while (argc > 0) {
    const name = shift();
    argc--;
    if (name === undefined) fail('Insufficient feature arguments');
    const lname = name.toLowerCase();
    if (lname === 'error_reads') {
      if (errorReads) fail('Feature error_reads duplicated');
      errorReads = true;
    } else if (lname === 'drop_writes') {
      if (dropWrites) fail('Feature drop_writes duplicated');
      dropWrites = true;
      if (errorWrites) fail('Feature drop_writes conflicts with feature error_writes');
    } else if (lname === 'error_writes') {
      if (errorWrites) fail('Feature error_writes duplicated');
      errorWrites = true;
      if (dropWrites) fail('Feature error_writes conflicts with feature drop_writes');
    } else if (lname === 'corrupt_bio_byte') {
      if (cbb) fail('Feature corrupt_bio_byte duplicated');
      if (argc < 4) fail('Feature corrupt_bio_byte requires 4 parameters', 'corrupt_bio_byte <Nth_byte> <r|w> <value> <flags>');
      const nthArg = shift();
      const nth = dmReadArg(nthArg, 1, UINT_MAX);
      if (nth === undefined) fail('Invalid corrupt bio byte', `<Nth_byte> must be 1..${UINT_MAX}, got '${nthArg}'`);
      argc--;
      const dir = shift();
      const ldir = dir?.toLowerCase();
      if (ldir !== 'r' && ldir !== 'w') fail('Invalid corrupt bio direction (r or w)', `got '${dir}'`);
      argc--;
      const valueArg = shift();
      const value = dmReadArg(valueArg, 0, 255);
      if (value === undefined) fail('Invalid corrupt value to write into bio byte (0-255)', `got '${valueArg}'`);
      argc--;
      const flagsArg = shift();
      const flags = dmReadArg(flagsArg, 0, UINT_MAX);
      if (flags === undefined) fail('Invalid corrupt bio flags mask', `<flags> must be 0..${UINT_MAX}, got '${flagsArg}'`);
      argc--;
      cbb = { nthByte: nth, direction: ldir, value, flags };
    } else if (lname === 'random_read_corrupt' || lname === 'random_write_corrupt') {
      const isRead = lname === 'random_read_corrupt';
      if (isRead ? rrc : rwc) fail(`Feature ${lname} duplicated`);
      if (argc === 0) fail(`Feature ${lname} requires a parameter`);
      const pArg = shift();
      const p = dmReadArg(pArg, 0, PROBABILITY_BASE);
      if (p === undefined) fail('Invalid random corrupt argument', `probability must be 0..${PROBABILITY_BASE} (parts per billion), got '${pArg}'`);
      argc--;
      if (isRead) rrc = p;
      else rwc = p;
    } else {
      fail(
        'Unrecognised flakey feature requested',
        `'${name}' (known: error_reads, drop_writes, error_writes, corrupt_bio_byte, random_read_corrupt, random_write_corrupt)`,
      );
    }
  }

  const cbbWrite = cbb !== undefined && cbb.direction === 'w';
  const cbbRead = cbb !== undefined && cbb.direction === 'r';
  if (dropWrites && (cbbWrite || rwc)) fail('drop_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE flag set');
  if (errorWrites && (cbbWrite || rwc)) fail('error_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE flag set');
  if (errorReads && (cbbRead || rrc)) fail('error_reads is incompatible with random_read_corrupt or corrupt_bio_byte with the READ flag set');
  if (!cbb && !errorReads && !dropWrites && !errorWrites && !rrc && !rwc) {
    errorReads = true;
    errorWrites = true;
  }
  return {
    devName,
    offset: Number(offset),
    upSeconds: up,
    downSeconds: down,
    features: { errorReads, dropWrites, errorWrites, corruptBioByte: cbb, randomReadCorrupt: rrc, randomWriteCorrupt: rwc },
  };
}

/** The feature group of a table line (count first), in the order flakey_status prints it. */
export function flakeyFeatureArgs(f: FlakeyFeatures): string[] {
  const out: string[] = [];
  if (f.errorReads) out.push('error_reads');
  if (f.dropWrites) out.push('drop_writes');
  else if (f.errorWrites) out.push('error_writes');
  if (f.corruptBioByte) {
    const c = f.corruptBioByte;
    out.push('corrupt_bio_byte', String(c.nthByte), c.direction, String(c.value), String(c.flags >>> 0));
  }
  if (f.randomReadCorrupt > 0) out.push('random_read_corrupt', String(f.randomReadCorrupt));
  if (f.randomWriteCorrupt > 0) out.push('random_write_corrupt', String(f.randomWriteCorrupt));
  return [String(out.length), ...out];
}

function optionsToFeatureArgs(o: FlakeyFeatureOptions): string[] {
  const a: string[] = [];
  if (o.errorReads) a.push('error_reads');
  if (o.dropWrites) a.push('drop_writes');
  if (o.errorWrites) a.push('error_writes');
  if (o.corruptBioByte) {
    const c = o.corruptBioByte;
    a.push('corrupt_bio_byte', String(c.nthByte), String(c.direction), String(c.value), String(c.flags));
  }
  if (o.randomReadCorrupt !== undefined) a.push('random_read_corrupt', String(o.randomReadCorrupt));
  if (o.randomWriteCorrupt !== undefined) a.push('random_write_corrupt', String(o.randomWriteCorrupt));
  return [String(a.length), ...a];
}

export class FlakeyDevice extends PassThroughLayer implements ControlTarget {
  readonly targetType = 'flakey';
  readonly config: Readonly<FlakeyConfig>;
  /** Clock reading (ns) the intervals count from: the construction time. */
  readonly startNs: number;
  private readonly clock: Clock;
  private readonly random: Random;

  /** Typed construction; the options go through the same parser as a table line. */
  constructor(inner: BlockDevice, opts: FlakeyOptions);
  constructor(inner: BlockDevice, config: FlakeyConfig, runtime: FlakeyRuntime);
  constructor(inner: BlockDevice, optsOrConfig: FlakeyOptions | FlakeyConfig, runtime: FlakeyRuntime = {}) {
    let config: FlakeyConfig;
    let rt: FlakeyRuntime;
    if ('features' in optsOrConfig) {
      config = optsOrConfig;
      rt = runtime;
    } else {
      const o = optsOrConfig;
      config = parseFlakeyArgs([o.devName ?? inner.name, String(o.offset ?? 0), String(o.upSeconds), String(o.downSeconds), ...optionsToFeatureArgs(o)]);
      rt = { sectors: o.sectors, clock: o.clock, random: o.random, startNs: o.startNs };
    }
    const sectors = rt.sectors ?? inner.sectors - config.offset;
    if (!Number.isSafeInteger(sectors) || sectors <= 0 || config.offset + sectors > inner.sectors) {
      throw new KernelTableError('Device too small for target', `${inner.name}: start=${config.offset}, len=${sectors}, dev_size=${inner.sectors} sectors`);
    }
    super(inner, 'flakey', sectors);
    this.config = config;
    this.clock = rt.clock ?? realClock;
    this.random = rt.random ?? new Random(1);
    this.startNs = rt.startNs ?? this.clock.nowNs();
  }

  /** From the target arguments of a table line: `<dev> <offset> <up> <down> [<num_features> [<feature args>]]`. */
  static fromTable(inner: BlockDevice, args: readonly string[], runtime: FlakeyRuntime = {}): FlakeyDevice {
    return new FlakeyDevice(inner, parseFlakeyArgs(args), runtime);
  }

  /** From a whole table line `0 <len> flakey <args...>`. */
  static fromTableLine(inner: BlockDevice, line: string, runtime: Omit<FlakeyRuntime, 'sectors'> = {}): FlakeyDevice {
    const { length, args } = singleTargetLine(line, 'flakey');
    return FlakeyDevice.fromTable(inner, args, { ...runtime, sectors: length });
  }

  get features(): Readonly<FlakeyFeatures> {
    return this.config.features;
  }

  /** Whole seconds since creation, as the kernel computes them. */
  elapsedSeconds(): number {
    return Math.floor((this.clock.nowNs() - this.startNs) / 1e9);
  }

  isDown(): boolean {
    const c = this.config;
    return this.elapsedSeconds() % (c.upSeconds + c.downSeconds) >= c.upSeconds;
  }

  table(): string {
    return `0 ${this.sectors} flakey ${this.tableParams()}`;
  }

  /** dmsetup prints `<start> <len> <type> <params>`; flakey's status params are empty. */
  status(): string {
    return `0 ${this.sectors} flakey `;
  }

  tableParams(): string {
    const c = this.config;
    return [c.devName, String(c.offset), String(c.upSeconds), String(c.downSeconds), ...flakeyFeatureArgs(c.features)].join(' ');
  }

  message(args: string[]): string {
    throw new KernelMessageError(`flakey does not accept messages (got '${args.join(' ')}')`, 'Target type does not support messages');
  }

  override read(sector: number, buf: Uint8Array): IoStatus {
    const count = checkIo(this, sector, buf);
    if (!this.isDown()) return this.inner.read(this.config.offset + sector, buf);
    const f = this.config.features;
    if (f.errorReads) return EIO;
    const status = this.inner.read(this.config.offset + sector, buf);
    if (status !== OK || count === 0) return status;
    const cbb = f.corruptBioByte;
    if (cbb && cbb.direction === 'r' && (REQ_OP_READ & cbb.flags) === cbb.flags) corruptByte(buf, cbb.nthByte - 1, cbb.value);
    if (f.randomReadCorrupt && this.random.int(PROBABILITY_BASE) < f.randomReadCorrupt) this.corruptRandom(buf);
    return OK;
  }

  override write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    const count = checkIo(this, sector, buf);
    const opf = REQ_OP_WRITE | (flags?.fua ? REQ_FUA : 0);
    const base = this.config.offset + sector;
    let off = 0;
    let status: IoStatus = OK;
    // Each pass is one flakey_map() call; a corrupted clone takes at most 4 MiB and the rest is mapped again.
    do {
      const rest = buf.subarray(off);
      const s = base + (off >>> 9);
      if (!this.isDown()) return first(status, this.inner.write(s, rest, flags));
      const f = this.config.features;
      if (f.dropWrites) return status;
      if (f.errorWrites) return first(status, EIO);
      if (count === 0) return first(status, this.inner.write(s, rest, flags));
      const cbb = f.corruptBioByte;
      const fixed = cbb !== undefined && cbb.direction === 'w' && (opf & cbb.flags) === cbb.flags;
      const random = f.randomWriteCorrupt > 0 && this.random.int(PROBABILITY_BASE) < f.randomWriteCorrupt;
      if (!fixed && !random) return first(status, this.inner.write(s, rest, flags));
      const clone = rest.slice(0, Math.min(rest.length, FLAKEY_MAX_CLONE_BYTES));
      if (fixed) corruptByte(clone, cbb.nthByte - 1, cbb.value);
      if (random) this.corruptRandom(clone);
      status = first(status, this.inner.write(s, clone, flags));
      off += clone.length;
    } while (off < buf.length);
    return status;
  }

  override flush(): IoStatus {
    const drop = this.dataLessWrite();
    return drop ?? this.inner.flush();
  }

  override discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    const drop = this.dataLessWrite();
    return drop ?? this.inner.discard(this.config.offset + sector, count);
  }

  /** A non-read bio without data while down: dropped (OK), errored (EIO), or undefined to pass it on. */
  private dataLessWrite(): IoStatus | undefined {
    if (!this.isDown()) return undefined;
    if (this.config.features.dropWrites) return OK;
    if (this.config.features.errorWrites) return EIO;
    return undefined;
  }

  /** corrupt_bio_random: byte get_random_u32() % size gets get_random_u8(). */
  private corruptRandom(buf: Uint8Array): void {
    const at = this.random.nextU32() % buf.length;
    const value = this.random.nextU32() & 0xff;
    corruptByte(buf, at, value);
  }
}

function first(a: IoStatus, b: IoStatus): IoStatus {
  return a !== OK ? a : b;
}

/** corrupt_bio_common: the byte at `index` of the request gets `value`; an index past the end changes nothing. */
function corruptByte(buf: Uint8Array, index: number, value: number): void {
  if (index < buf.length) buf[index] = value;
}
