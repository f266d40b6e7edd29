/**
 * A model stack made ready to serve: the target from a table line, optional
 * dust layers under its main (and spare) device for fault injection, a
 * bad-sector list loaded into the main one, and the NBD server plus control
 * socket in front of it. `remapsim serve` is a thin shell around this.
 */
import type { BlockDevice } from '../block/device.js';
import { parseTableLine } from '../control/table-line.js';
import { TableError } from '../control/target.js';
import type { DustDevice } from '../faults/dust.js';
import { loadIntoDust, type SectorRange } from '../faults/badlist.js';
import { exclusiveOpener, type ModelTarget, openTarget } from '../stack/table.js';
import { openLayers } from '../stack/layers.js';
import { type ControlLayer, ControlServer, collectLayers } from '../nbd/control-socket.js';
import { EOPNOTSUPP, mappedReadsOf } from '../block/device.js';
import { formatBytes } from '../util/format-size.js';
import type { Engine } from '../engine/engine.js';
import { EngineExecutor } from '../nbd/engine-executor.js';
import { DeviceExecutor, type IoExecutor } from '../nbd/executor.js';
import { type ListenAddress, NbdServer, type NbdServerOptions } from '../nbd/server.js';
import { type SocketAccess, SocketSetupError, socketPathProblem } from '../nbd/unix-socket.js';
import { modelBlockStatus } from '../nbd/stack-extents.js';
import { IoMetrics, instrumentExecutor } from '../metrics/io-metrics.js';
import { ServedMetrics } from '../metrics/served-metrics.js';

export interface ModelStackOptions {
  /** The table line, e.g. `0 204800 remap /var/tmp/main.img /var/tmp/spare.img`. */
  table: string;
  /** Put a dust layer between the target and its main device (the table's first device). */
  dustMain?: boolean;
  /** Put a dust layer between the target and its spare device (the table's second device). */
  dustSpare?: boolean;
  /** Dust block size in bytes (default 512, so dust blocks are sectors). */
  dustBlockSize?: number;
  /** Sectors of the main device to list as bad in its dust layer (implies dustMain). */
  badSectors?: readonly number[] | readonly SectorRange[];
  /** Write failures each listed bad block gives before a write clears it (0..255, default 0). */
  wrFailCnt?: number;
  readOnly?: boolean;
  /** Overwrite foreign or unreadable metadata on a `remap` spare (formats an empty table). */
  force?: boolean;
  /** false: keep a `remap` target's table in memory only (no metadata store on the spare). */
  metadata?: boolean;
}

export interface ModelStack {
  target: ModelTarget;
  layers: ControlLayer[];
  dustMain?: DustDevice;
  dustSpare?: DustDevice;
  /** The top of the main device's layers, down to its file (block status looks there for holes and bad blocks; default: the target's `main`). */
  mainTop?: BlockDevice;
}

/**
 * Opens the stack. Dust layers start enabled (a fresh dm-dust table starts
 * in bypass): an `addbadblock` sent while a client runs takes effect at once;
 * `disable` turns them into pass-throughs.
 */
export function openModelStack(opts: ModelStackOptions): ModelStack {
  const line = parseTableLine(opts.table);
  const [mainPath, sparePath] = line.args;
  const wantMainDust = opts.dustMain === true || (opts.badSectors !== undefined && opts.badSectors.length > 0);
  if (wantMainDust && mainPath === undefined) throw new TableError(`${line.type}: the table line names no device to put a dust layer on`);
  if (opts.dustSpare && (sparePath === undefined || !['remap', 'dm-remap-v4'].includes(line.type))) {
    throw new TableError(`--dust-spare needs a remap or dm-remap-v4 table (main and spare devices), got '${line.type}'`);
  }
  const opener = exclusiveOpener(opts.readOnly);
  let dustMain: DustDevice | undefined;
  let dustSpare: DustDevice | undefined;
  let mainTop: BlockDevice | undefined;
  const blockSize = opts.dustBlockSize ?? 512;
  const open = (path: string): BlockDevice => {
    const dev = opener.open(path);
    if (path === mainPath) mainTop ??= dev;
    const isMain = path === mainPath && wantMainDust && !dustMain;
    const isSpare = !isMain && path === sparePath && opts.dustSpare === true && !dustSpare;
    if (!isMain && !isSpare) return dev;
    const dust = openLayers({ file: { path }, dust: { blockSize, devName: path } }, { file: dev }).dust!;
    if (isMain) dustMain = mainTop = dust;
    else dustSpare = dust;
    return dust;
  };
  let target: ModelTarget;
  try {
    target = openTarget(line, {
      openDevice: open,
      readOnly: opts.readOnly,
      safeMetadata: opts.metadata === false ? false : { force: opts.force === true },
      v4Metadata: opts.metadata !== false,
    });
  } catch (err) {
    for (const d of opener.opened) d.close();
    throw err;
  }
  try {
    if (dustMain && opts.badSectors && opts.badSectors.length > 0) loadIntoDust(dustMain, opts.badSectors, { wrFailCnt: opts.wrFailCnt ?? 0 });
  } catch (err) {
    target.close();
    throw err;
  }
  // a dust or flakey target is its own main: its layers start at the top
  return { target, layers: collectLayers(target), dustMain, dustSpare, mainTop: 'main' in target ? mainTop : target };
}

export interface ServeOptions extends NbdServerOptions {
  socket?: string;
  port?: number;
  host?: string;
  /** Control socket path (default `<socket>.ctl`; with only a TCP port, none unless given). */
  control?: string;
  /** Mode and group of both socket files (default 0600, the process's group). */
  socketAccess?: SocketAccess;
  /** Put the table line, with the backing files' paths, in the export's description (default: the policy and size only). */
  describePaths?: boolean;
  readOnly?: boolean;
  /**
   * Run the requests on this per-CPU engine (started over the stack's target
   * as its primary) instead of on the server's thread; stop() closes it
   * before the target.
   */
  engine?: Engine;
  /** Count and time every request for the metrics (default true; false: the I/O families are left out). */
  ioMetrics?: boolean;
}

export interface Serving {
  nbd: NbdServer;
  control: ControlServer | undefined;
  /** The stack's metrics (also served on the control socket, op "metrics"). */
  metrics: ServedMetrics;
  controlPath: string | undefined;
  addresses: ListenAddress[];
  /** Stops the listeners, finishes in-flight requests, flushes the target and closes it. Returns the flush status. */
  stop(graceMs?: number): Promise<number>;
}

/**
 * What NBD clients see as the export's description (nbdinfo, NBD_OPT_LIST):
 * `remapsim safe policy, 256 MiB`. The table line names host paths, which a
 * client has no business knowing unless the owner says so.
 */
export function exportDescription(target: ModelTarget, describePaths = false): string {
  if (describePaths) return `remapsim ${target.table()}`;
  const what = target.targetType === 'remap' ? 'safe policy' : target.targetType === 'dm-remap-v4' ? 'dm-remap-v4 policy' : `${target.targetType} target`;
  return `remapsim ${what}, ${formatBytes(target.sectors * 512).replace('.0 ', ' ')}`;
}

export async function serveModel(stack: ModelStack, opts: ServeOptions): Promise<Serving> {
  if (opts.socket === undefined && opts.port === undefined) throw new RangeError('serve needs a Unix socket path or a TCP port');
  const controlPath = opts.control ?? (opts.socket !== undefined ? `${opts.socket}.ctl` : undefined);
  for (const p of [opts.socket, controlPath]) {
    const problem = p === undefined ? undefined : socketPathProblem(p);
    if (problem) throw new SocketSetupError(`${p}: ${problem}`); // before any socket is created
  }
  const t = stack.target;
  let executor: IoExecutor;
  if (opts.engine) {
    let trim = false;
    try {
      trim = t.discard(0, 0) !== EOPNOTSUPP;
    } catch {
      // a layer that refuses the probe does not advertise TRIM
    }
    executor = new EngineExecutor(opts.engine, {
      name: t.name,
      sectors: t.sectors,
      logicalBlockSize: t.logicalBlockSize,
      readOnly: opts.readOnly,
      trim,
      mapped: mappedReadsOf(t),
    });
  } else executor = new DeviceExecutor(t, { readOnly: opts.readOnly });
  const io = opts.ioMetrics === false ? undefined : new IoMetrics();
  if (io) executor = instrumentExecutor(executor, io);
  const blockStatus = modelBlockStatus({ target: t, mainTop: stack.mainTop, blockSize: t.logicalBlockSize });
  const nbd = new NbdServer(executor, { description: exportDescription(t, opts.describePaths), blockStatus, ...opts });
  const metrics = new ServedMetrics({ layers: stack.layers, io, nbd: nbd.stats });
  const addresses: ListenAddress[] = [];
  let control: ControlServer | undefined;
  try {
    if (opts.socket !== undefined) addresses.push(await nbd.listenUnix(opts.socket, opts.socketAccess));
    if (opts.port !== undefined) addresses.push(await nbd.listenTcp(opts.port, opts.host));
    if (controlPath !== undefined) {
      control = new ControlServer(stack.layers, { metrics: () => metrics.openMetrics() });
      await control.listen(controlPath, opts.socketAccess);
    }
  } catch (err) {
    await nbd.close(0);
    await control?.close();
    blockStatus.close?.();
    throw err;
  }
  let stopped: Promise<number> | undefined;
  return {
    nbd,
    control,
    metrics,
    controlPath,
    addresses,
    stop(graceMs = 5000): Promise<number> {
      stopped ??= (async () => {
        await nbd.close(graceMs);
        await control?.close();
        blockStatus.close?.();
        await opts.engine?.close();
        const status = stack.target.flush();
        stack.target.close();
        return status;
      })();
      return stopped;
    },
  };
}
