/**
 * Where a regular file holds data and where it has holes, by SEEK_DATA and
 * SEEK_HOLE (lseek(2) through the project's libc binding), over a range.
 * It opens the file once more, read-only and without a lock: the writer's
 * claim (an open file description lock) stays with the writer's descriptor.
 */
import * as fs from 'node:fs';
import { ENXIO } from '../block/device.js';
import { libc, SEEK_DATA, SEEK_HOLE, SysError } from '../sys/libc.js';
import { pushRun, type Runs } from './extents.js';

export class FileAllocation {
  private fd: number;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** A reader for `path`, or undefined when it is not a regular file (a block device: no holes to tell). */
  static open(path: string): FileAllocation | undefined {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDONLY);
    } catch {
      return undefined;
    }
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd);
      return undefined;
    }
    return new FileAllocation(path, fd);
  }

  /**
   * The data runs of [from, to) in bytes of the file (clipped to the range),
   * at most `maxRuns` of them (then `end` says where the search stopped).
   * A file system that cannot tell shows everything as data. Throws a
   * SysError when lseek fails otherwise.
   */
  dataRuns(from: number, to: number, maxRuns: number): Runs {
    const sys = libc();
    const runs: Runs['runs'] = [];
    let at = from;
    while (at < to) {
      const data = sys.lseek(this.fd, at, SEEK_DATA);
      if (data === -ENXIO) break; // no data from here to the end of the file
      if (data < 0) throw new SysError('lseek(SEEK_DATA)', -data);
      if (data >= to) break;
      let hole = sys.lseek(this.fd, data, SEEK_HOLE);
      if (hole < 0) throw new SysError('lseek(SEEK_HOLE)', -hole);
      if (hole > to) hole = to;
      const last = runs[runs.length - 1];
      if (runs.length >= maxRuns && !(last && last[1] >= data)) return { runs, end: data };
      pushRun(runs, data, hole);
      at = hole;
    }
    return { runs, end: to };
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}
