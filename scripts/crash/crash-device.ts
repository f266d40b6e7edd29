/**
 * A device that "crashes" at its n-th write: nothing from that write on
 * reaches the inner device, except (torn) a prefix of the n-th write itself,
 * as a power cut in the middle of a write leaves it. What a crash does is the
 * caller's: the crash child kills its own process with SIGKILL; in-process
 * tests throw CrashStop to abandon the run and reopen the inner device.
 */
import { type BlockDevice, type IoStatus, type WriteFlags, SECTOR_SIZE } from '../../src/block/device.js';
import { PassThroughLayer } from '../../src/block/pass-through.js';

export class CrashStop extends Error {
  override readonly name = 'CrashStop';
}

export interface CrashPointOptions {
  /** 1-based index of the write at which the crash happens (undefined: never). */
  crashAtWrite?: number;
  /** Let the first half of the crashing write (whole sectors) through. */
  torn?: boolean;
  /** Called at the crash; must not return normally (throw or kill the process). */
  onCrash: (info: { write: number; sector: number; sectors: number }) => never;
}

export class CrashPointDevice extends PassThroughLayer {
  writes = 0;
  flushes = 0;

  constructor(
    inner: BlockDevice,
    private readonly opts: CrashPointOptions,
  ) {
    super(inner);
  }

  override write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    this.writes++;
    if (this.writes === this.opts.crashAtWrite) {
      const sectors = buf.length / SECTOR_SIZE;
      const lbs = this.logicalBlockSize / SECTOR_SIZE;
      const keep = this.opts.torn ? Math.floor(sectors / 2 / lbs) * lbs : 0;
      if (keep > 0) this.inner.write(sector, buf.subarray(0, keep * SECTOR_SIZE));
      this.opts.onCrash({ write: this.writes, sector, sectors });
    }
    return this.inner.write(sector, buf, flags);
  }

  override flush(): IoStatus {
    this.flushes++;
    return this.inner.flush();
  }
}

/** Counts what reaches a device (for protocol tests and commit-cost numbers). */
export class CountingDevice extends PassThroughLayer {
  writes = 0;
  fuaWrites = 0;
  flushes = 0;
  readonly log: string[] = [];

  override write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    this.writes++;
    if (flags?.fua) this.fuaWrites++;
    this.log.push(`${flags?.fua ? 'W+FUA' : 'W'} ${sector}+${buf.length / SECTOR_SIZE}`);
    return this.inner.write(sector, buf, flags);
  }

  override flush(): IoStatus {
    this.flushes++;
    this.log.push('F');
    return this.inner.flush();
  }
}

/** Fails writes (and optionally reads) that touch [first, end) with `errno`, after `after` successful ones. */
export class FailingDevice extends PassThroughLayer {
  failWrites = false;
  failFlushes = false;

  constructor(
    inner: BlockDevice,
    private readonly range: { first: number; end: number },
    private readonly errno = 5,
  ) {
    super(inner);
  }

  override write(sector: number, buf: Uint8Array, flags?: WriteFlags): IoStatus {
    const end = sector + buf.length / SECTOR_SIZE;
    if (this.failWrites && sector < this.range.end && end > this.range.first) return this.errno;
    return this.inner.write(sector, buf, flags);
  }

  override flush(): IoStatus {
    return this.failFlushes ? this.errno : this.inner.flush();
  }
}
