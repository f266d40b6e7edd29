/**
 * dm-dust in userspace: a bad-block list in front of any BlockDevice, with the
 * kernel target's table line, messages, replies, errors and I/O behaviour.
 *
 * Read from drivers/md/dm-dust.c as of Linux 6.17 (identical in behaviour to
 * 5.9 and later, including 6.1 and 6.12; the message replies became result
 * text in 5.9, before that they were only logged). Facts that shape the code:
 *
 * - Table: `<dev> <offset> <blksz>`. blksz: decimal, >= 512, a power of two,
 *   at most min(target length, 2097152 sectors). Errors are the kernel's
 *   ti->error strings, all EINVAL.
 * - The device starts DISABLED ("bypass"): listed blocks fail nothing until
 *   the `enable` message. It starts verbose; `quiet` toggles.
 * - Block numbers count blksz-sized blocks of the UNDERLYING device: the
 *   mapped sector is `offset + target sector`, shifted by log2(sectors per
 *   block). Message range checks use the underlying device's size and accept
 *   block == size / sectors-per-block (the kernel compares with `>`).
 * - dm splits each bio at blksz boundaries counted from the target start;
 *   only the first sector of each piece is looked up.
 * - A read piece on a listed block fails with EIO. A write piece on a listed
 *   block with wr_fail_cnt > 0 decrements it and fails with EIO; with
 *   wr_fail_cnt == 0 it removes the block and goes through. All of this only
 *   while enabled; while disabled every I/O passes and the list is unchanged.
 * - Everything that is not a read takes the write path: discards (not split
 *   per block, so only their first block is looked up) and empty flushes,
 *   whose sector is the target start, so a flush looks up block
 *   `offset >> shift` and may fail or clear it.
 */
import { type BlockDevice, type IoStatus, type WriteFlags, checkIo, checkRequest, EIO, OK, SECTOR_SHIFT } from '../block/device.js';
import type { ControlTarget } from '../control/target.js';
import { log } from '../util/log.js';
import { RemapTable, type RemapTableShared } from '../block/remap-table.js';
import { kstrtouint, scanU32, scanU64 } from './dm-args.js';
import { PassThroughLayer } from '../block/pass-through.js';
import { type FaultLogSink, KernelMessageError, KernelTableError, singleTargetLine } from './errors.js';

/** DUST_MAX_BLKSZ_SECTORS in the kernel: 1 GiB. */
export const DUST_MAX_BLOCK_SECTORS = 2097152;

export interface DustOptions {
  /** Block size in bytes: a power of two, at least 512 (default 512). */
  blockSize?: number;
  /** First sector of the inner device that this device maps (default 0). */
  offset?: number;
  /** Length of the target in sectors (default: the rest of the inner device after `offset`). */
  sectors?: number;
  /** Device name printed in table and status lines (default: the inner device's name). */
  devName?: string;
  /** Receives the lines the kernel would log; default: the project logger at debug level. */
  log?: FaultLogSink;
  /** Another thread's dust state (its `shared`): both then see one bad-block list. */
  shared?: DustShared;
}

/** A dust layer's state in shared memory: the bad-block list (block -> write failures left) and its flags. */
export interface DustShared {
  table: RemapTableShared;
  flags: SharedArrayBuffer;
}

const FLAG_FAIL_READ = 0;
const FLAG_QUIET = 1;

const defaultSink: FaultLogSink = (level, line) => {
  if (level === 'error') log.debug({ target: 'dust', level: 'error' }, line);
  else log.debug({ target: 'dust' }, line);
};

export class DustDevice extends PassThroughLayer implements ControlTarget {
  readonly targetType = 'dust';
  readonly blockSize: number;
  readonly offset: number;
  readonly devName: string;
  readonly sectorsPerBlock: number;
  private readonly sink: FaultLogSink;
  /** block -> remaining write failures, shared with every thread that attaches */
  private readonly bad: RemapTable;
  private readonly flags: Int32Array;
  private readonly flagsSab: SharedArrayBuffer;

  constructor(inner: BlockDevice, opts: DustOptions = {}) {
    const blockSize = opts.blockSize ?? 512;
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new KernelTableError('Invalid device offset sector', `offset must be a whole number of sectors >= 0, got ${offset}`);
    }
    const sectors = opts.sectors ?? inner.sectors - offset;
    DustDevice.checkBlockSize(blockSize, sectors);
    DustDevice.checkArea(inner, offset, sectors);
    super(inner, 'dust', sectors);
    this.blockSize = blockSize;
    this.offset = offset;
    this.sectorsPerBlock = blockSize >>> SECTOR_SHIFT;
    this.devName = opts.devName ?? inner.name;
    this.sink = opts.log ?? defaultSink;
    // one table, closed with the device; its channel to other threads opens only when `shared` is asked for
    this.bad = new RemapTable(opts.shared?.table ?? { keySpace: Math.floor(inner.sectors / this.sectorsPerBlock) + 1 });
    this.flagsSab = opts.shared?.flags ?? new SharedArrayBuffer(8);
    this.flags = new Int32Array(this.flagsSab);
  }

  /** What another thread needs to see the same list and flags. */
  get shared(): DustShared {
    return { table: this.bad.shared, flags: this.flagsSab };
  }

  private get failReadOnBadBlock(): boolean {
    return this.flags[FLAG_FAIL_READ] !== 0;
  }

  private get quietMode(): boolean {
    return this.flags[FLAG_QUIET] !== 0;
  }

  /**
   * Builds the device from the target arguments of a table line,
   * `<dev> <offset> <blksz>`, with the kernel constructor's checks and error
   * texts. `dev` names `inner` in table() and status().
   */
  static fromTable(inner: BlockDevice, args: readonly string[], opts: { sectors?: number; log?: FaultLogSink } = {}): DustDevice {
    if (args.length !== 3) throw new KernelTableError('Invalid argument count', `dust takes <dev> <offset> <blksz>, got ${args.length} arguments`);
    const [dev, offsetArg, blkszArg] = args as [string, string, string];
    const blksz = kstrtouint(blkszArg);
    if (blksz === undefined || blksz === 0) {
      throw new KernelTableError('Invalid block size parameter', `blksz must be a decimal number of bytes, got '${blkszArg}'`);
    }
    const offset = scanU64(offsetArg);
    const offsetNum = offset !== undefined && offset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(offset) : undefined;
    const sectors = opts.sectors ?? inner.sectors - (offsetNum ?? 0);
    if (offsetNum !== undefined) DustDevice.checkArea(inner, offsetNum, sectors);
    DustDevice.checkBlockSize(blksz, sectors);
    if (offsetNum === undefined) throw new KernelTableError('Invalid device offset sector', `offset must be a decimal sector number, got '${offsetArg}'`);
    return new DustDevice(inner, { blockSize: blksz, offset: offsetNum, sectors, devName: dev, log: opts.log });
  }

  /** Builds the device from a whole table line `0 <len> dust <dev> <offset> <blksz>`. */
  static fromTableLine(inner: BlockDevice, line: string, opts: { log?: FaultLogSink } = {}): DustDevice {
    const { length, args } = singleTargetLine(line, 'dust');
    return DustDevice.fromTable(inner, args, { sectors: length, log: opts.log });
  }

  private static checkBlockSize(blksz: number, targetSectors: number): void {
    if (!Number.isSafeInteger(blksz) || blksz <= 0)
      throw new KernelTableError('Invalid block size parameter', `block size must be a positive integer, got ${blksz}`);
    if (blksz < 512) throw new KernelTableError('Block size must be at least 512', `got ${blksz}`);
    if ((blksz & (blksz - 1)) !== 0) throw new KernelTableError('Block size must be a power of 2', `got ${blksz}`);
    const maxSectors = Math.min(targetSectors, DUST_MAX_BLOCK_SECTORS);
    if (blksz / 512 > maxSectors) {
      throw new KernelTableError('Block size is too large', `${blksz} bytes is more than min(target length, 1 GiB) = ${maxSectors} sectors`);
    }
  }

  private static checkArea(inner: BlockDevice, offset: number, sectors: number): void {
    if (!Number.isSafeInteger(sectors) || sectors <= 0 || offset + sectors > inner.sectors) {
      throw new KernelTableError('Device too small for target', `${inner.name}: start=${offset}, len=${sectors}, dev_size=${inner.sectors} sectors`);
    }
  }

  get enabled(): boolean {
    return this.failReadOnBadBlock;
  }

  get quiet(): boolean {
    return this.quietMode;
  }

  get badBlockCount(): number {
    return this.bad.size;
  }

  /** Highest block number the messages accept: the underlying device's size in blocks (inclusive, as in the kernel). */
  get maxMessageBlock(): number {
    return Math.floor(this.inner.sectors / this.sectorsPerBlock);
  }

  // ---- control: the typed API (same effects, logs and errors as the messages)

  enable(): void {
    this.sink('info', 'enabling read failures on bad sectors');
    Atomics.store(this.flags, FLAG_FAIL_READ, 1);
  }

  disable(): void {
    this.sink('info', 'disabling read failures on bad sectors');
    Atomics.store(this.flags, FLAG_FAIL_READ, 0);
  }

  toggleQuiet(): void {
    Atomics.xor(this.flags, FLAG_QUIET, 1);
  }

  addBadBlock(block: number, wrFailCnt = 0): void {
    this.checkBlockArg(block);
    if (!Number.isInteger(wrFailCnt) || wrFailCnt < 0 || wrFailCnt > 255) {
      throw new KernelMessageError(`addbadblock: write fail count must be 0..255, got ${wrFailCnt}`, 'selected write fail count out of range');
    }
    this.addBlock(block, wrFailCnt);
  }

  removeBadBlock(block: number): void {
    this.checkBlockArg(block);
    this.removeBlock(block);
  }

  isBadBlock(block: number): boolean {
    return block >= 0 && block < this.bad.keySpace && this.bad.get(block) >= 0;
  }

  /** Remaining write failures of a listed block, or undefined when it is not listed. */
  writeFailCount(block: number): number | undefined {
    const v = block >= 0 && block < this.bad.keySpace ? this.bad.get(block) : -1;
    return v < 0 ? undefined : v;
  }

  listBadBlocks(): number[] {
    return Array.from(this.bad.snapshot().keys);
  }

  /** Empties the list; returns how many blocks it held. */
  clearBadBlocks(): number {
    const n = this.bad.size;
    this.bad.clear();
    return n;
  }

  private checkBlockArg(block: number): void {
    if (!Number.isSafeInteger(block) || block < 0) throw new KernelMessageError(`block must be a whole number >= 0, got ${block}`, undefined);
    if (block > this.maxMessageBlock) {
      throw new KernelMessageError(`block ${block} is out of range (0..${this.maxMessageBlock})`, 'selected block value out of range');
    }
  }

  private addBlock(block: number, wrFailCnt: number): void {
    if (this.isBadBlock(block)) {
      const line = `dust_add_block: block ${block} already in badblocklist`;
      if (!this.quietMode) this.sink('error', line);
      throw new KernelMessageError(`addbadblock: block ${block} already in badblocklist`, line);
    }
    this.bad.set(block, wrFailCnt);
    if (!this.quietMode) this.sink('info', `dust_add_block: badblock added at block ${block} with write fail count ${wrFailCnt}`);
  }

  private removeBlock(block: number): void {
    if (!this.isBadBlock(block)) {
      const line = `dust_remove_block: block ${block} not found in badblocklist`;
      if (!this.quietMode) this.sink('error', line);
      throw new KernelMessageError(`removebadblock: block ${block} not found in badblocklist`, line);
    }
    this.bad.delete(block);
    if (!this.quietMode) this.sink('info', `dust_remove_block: badblock removed at block ${block}`);
  }

  // ---- control: dmsetup verbs

  table(): string {
    return `0 ${this.sectors} dust ${this.tableParams()}`;
  }

  status(): string {
    return `0 ${this.sectors} dust ${this.statusParams()}`;
  }

  /** STATUSTYPE_TABLE: `<dev> <offset> <blksz>`. */
  tableParams(): string {
    return `${this.devName} ${this.offset} ${this.blockSize}`;
  }

  /** STATUSTYPE_INFO: `<dev> fail_read_on_bad_block|bypass verbose|quiet`. */
  statusParams(): string {
    return `${this.devName} ${this.failReadOnBadBlock ? 'fail_read_on_bad_block' : 'bypass'} ${this.quietMode ? 'quiet' : 'verbose'}`;
  }

  /**
   * A target message as `dmsetup message <dev> 0 <args...>` sends it. Returns
   * the result text the kernel hands back (empty for messages that only log);
   * throws KernelMessageError (errno EINVAL) where the kernel returns -EINVAL.
   */
  message(args: string[]): string {
    if (args.length === 0) throw new KernelMessageError('empty message', 'Empty message received.');
    const cmd = args[0]!.toLowerCase();
    if (args.length === 1) {
      switch (cmd) {
        case 'addbadblock':
        case 'removebadblock':
        case 'queryblock': {
          const line = `${args[0]} requires an additional argument`;
          this.sink('error', line);
          throw new KernelMessageError(`${cmd}: ${cmd === 'addbadblock' ? '<block> [wr_fail_cnt]' : '<block>'} argument is missing`, line);
        }
        case 'disable':
          this.disable();
          return '';
        case 'enable':
          this.enable();
          return '';
        case 'countbadblocks':
          return `countbadblocks: ${this.bad.size} badblock(s) found`;
        case 'clearbadblocks':
          return this.clearBadBlocks() === 0 ? 'dust_clear_badblocks: no badblocks found' : 'dust_clear_badblocks: badblocks cleared';
        case 'quiet':
          this.toggleQuiet();
          return '';
        case 'listbadblocks': {
          const blocks = this.listBadBlocks();
          return blocks.length === 0 ? 'No blocks in badblocklist' : blocks.map((b) => `${b}\n`).join('');
        }
        default:
          return this.unrecognized(args[0]!);
      }
    }
    if (args.length === 2) {
      const block = this.parseBlock(cmd, args[1]!);
      switch (cmd) {
        case 'addbadblock':
          this.addBlock(block, 0);
          return '';
        case 'removebadblock':
          this.removeBlock(block);
          return '';
        case 'queryblock':
          return `dust_query_block: block ${block} ${this.isBadBlock(block) ? 'found' : 'not found'} in badblocklist`;
        default:
          return this.unrecognized(args[0]!);
      }
    }
    if (args.length === 3) {
      const blockBig = scanU64(args[1]!);
      if (blockBig === undefined) throw new KernelMessageError(`${cmd}: block '${args[1]}' is not a decimal block number`, undefined);
      const cnt = scanU32(args[2]!);
      if (cnt === undefined) throw new KernelMessageError(`${cmd}: write fail count '${args[2]}' is not a decimal number`, undefined);
      if (cnt > 255) {
        const line = 'selected write fail count out of range';
        this.sink('error', line);
        throw new KernelMessageError(`${cmd}: write fail count ${args[2]} is out of range (0..255)`, line);
      }
      const block = this.rangeCheck(cmd, blockBig);
      if (cmd === 'addbadblock') {
        this.addBlock(block, cnt);
        return '';
      }
      return this.unrecognized(args[0]!);
    }
    const line = `invalid number of arguments '${args.length}'`;
    this.sink('error', line);
    throw new KernelMessageError(`dust messages take 1 to 3 arguments, got ${args.length}`, line);
  }

  private parseBlock(cmd: string, arg: string): number {
    const v = scanU64(arg);
    if (v === undefined) throw new KernelMessageError(`${cmd}: block '${arg}' is not a decimal block number`, undefined);
    return this.rangeCheck(cmd, v);
  }

  private rangeCheck(cmd: string, v: bigint): number {
    const max = this.maxMessageBlock;
    if (v > BigInt(max)) {
      const line = 'selected block value out of range';
      this.sink('error', line);
      throw new KernelMessageError(`${cmd}: block ${v} is out of range (0..${max})`, line);
    }
    return Number(v);
  }

  private unrecognized(name: string): never {
    const line = `unrecognized message '${name}' received`;
    this.sink('error', line);
    throw new KernelMessageError(`unrecognized dust message '${name}'`, line);
  }

  // ---- data path

  override read(sector: number, buf: Uint8Array): IoStatus {
    const count = checkIo(this, sector, buf);
    if (!this.failReadOnBadBlock || count === 0 || !this.anyBadIn(sector, count)) return this.inner.read(this.offset + sector, buf);
    let killed = false;
    const status = this.runPieces(
      sector,
      count,
      (p) => {
        if (!this.isBadBlock(this.blockOf(p))) return true;
        killed = true;
        return false;
      },
      (s, n, off) => this.inner.read(this.offset + s, buf.subarray(off, off + (n << SECTOR_SHIFT))),
    );
    return killed ? EIO : status;
  }

  override write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    const count = checkIo(this, sector, buf);
    if (!this.failReadOnBadBlock || count === 0 || !this.anyBadIn(sector, count)) return this.inner.write(this.offset + sector, buf, flags);
    let killed = false;
    const status = this.runPieces(
      sector,
      count,
      (p) => {
        if (this.mapWrite(this.blockOf(p))) return true;
        killed = true;
        return false;
      },
      (s, n, off) => this.inner.write(this.offset + s, buf.subarray(off, off + (n << SECTOR_SHIFT)), flags),
    );
    return killed && status === OK ? EIO : status;
  }

  override flush(): IoStatus {
    if (this.failReadOnBadBlock && this.bad.size > 0 && !this.mapWrite(this.blockOf(0))) return EIO;
    return this.inner.flush();
  }

  override discard(sector: number, count: number): IoStatus {
    checkRequest(this, sector, count);
    if (count > 0 && this.failReadOnBadBlock && this.bad.size > 0 && !this.mapWrite(this.blockOf(sector))) return EIO;
    return this.inner.discard(this.offset + sector, count);
  }

  override close(): void {
    this.bad.close();
    super.close();
  }

  /** __dust_map_write: true when the write goes through. */
  private mapWrite(block: number): boolean {
    if (!this.isBadBlock(block)) return true;
    let failed = false;
    let removed = false;
    // one read-modify-write under the list's lock, as the kernel holds its spinlock
    this.bad.update(block, (cnt) => {
      failed = cnt > 0;
      removed = cnt === 0;
      return cnt > 0 ? cnt - 1 : -1;
    });
    // The kernel divides the block number by sectors-per-block once more before printing it.
    if (removed && !this.quietMode) this.sink('info', `block ${Math.floor(block / this.sectorsPerBlock)} removed from badblocklist by write`);
    return !failed;
  }

  private blockOf(targetSector: number): number {
    return Math.floor((this.offset + targetSector) / this.sectorsPerBlock);
  }

  /**
   * Splits a request as dm splits a bio for this target (at multiples of the
   * block size counted from the target start), asks `pass` about each piece
   * in order, and sends each run of passing pieces to `io` in one call. A run
   * the inner device cannot take because it is not aligned to its logical
   * block size fails with EIO, as the kernel's block layer fails such a bio.
   */
  private runPieces(
    sector: number,
    count: number,
    pass: (pieceSector: number) => boolean,
    io: (sector: number, count: number, bufOff: number) => IoStatus,
  ): IoStatus {
    const spb = this.sectorsPerBlock;
    const lbs = this.inner.logicalBlockSize >>> SECTOR_SHIFT;
    const end = sector + count;
    let status: IoStatus = OK;
    let runStart = -1;
    const flushRun = (upTo: number): void => {
      if (runStart < 0) return;
      const n = upTo - runStart;
      const aligned = lbs <= 1 || ((this.offset + runStart) % lbs === 0 && n % lbs === 0);
      const s = aligned ? io(runStart, n, (runStart - sector) << SECTOR_SHIFT) : EIO;
      if (s !== OK && status === OK) status = s;
      runStart = -1;
    };
    let s = sector;
    while (s < end) {
      const next = Math.min(end, (Math.floor(s / spb) + 1) * spb);
      if (pass(s)) {
        if (runStart < 0) runStart = s;
      } else {
        flushRun(s);
      }
      s = next;
    }
    flushRun(end);
    return status;
  }

  /** Whether [sector, sector+count) of this target touches a listed block. */
  hasBadIn(sector: number, count: number): boolean {
    return count > 0 && this.anyBadIn(sector, count);
  }

  /** Whether any listed block lies among the blocks a request of this range looks up. */
  private anyBadIn(sector: number, count: number): boolean {
    const lo = this.blockOf(sector);
    return this.bad.anyInRange(lo, this.blockOf(sector + count - 1) - lo + 1);
  }
}
