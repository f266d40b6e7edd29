/**
 * /dev/mapper/control: what dmsetup does, through koffi's ioctl. The ioctl
 * function is handed in (default: libc().ioctlBuffer), so everything above the
 * syscall runs without a kernel; the codec is dm-ioctl-codec.ts.
 *
 * All calls are synchronous. waitEvent() blocks the calling thread until the
 * device's event counter moves past the given number: call it from a worker.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoText, libc, SysError } from '../sys/libc.js';
import { type ControlTarget, MessageError } from '../control/target.js';
import {
  type DmCmdName,
  DmCmd,
  DmCodecError,
  type DmIoctlHeader,
  type DmNameListEntry,
  type DmRequest,
  type DmTargetSpec,
  type DmTargetSpecReply,
  type DmTargetVersion,
  type DmVersion,
  DM_ACTIVE_PRESENT_FLAG,
  DM_BUFFER_FULL_FLAG,
  DM_DATA_OUT_FLAG,
  DM_DEFERRED_REMOVE,
  DM_INACTIVE_PRESENT_FLAG,
  DM_INTERNAL_SUSPEND_FLAG,
  DM_NOFLUSH_FLAG,
  DM_PERSISTENT_DEV_FLAG,
  DM_QUERY_INACTIVE_TABLE_FLAG,
  DM_READONLY_FLAG,
  DM_SECURE_DATA_FLAG,
  DM_SKIP_LOCKFS_FLAG,
  DM_STATUS_TABLE_FLAG,
  DM_SUSPEND_FLAG,
  DM_UUID_FLAG,
  decodeDmIoctl,
  decodeMessageReply,
  decodeNameList,
  decodeTargetDeps,
  decodeTargetSpecs,
  decodeTargetVersions,
  dmCmdName,
  dmIoctlRequest,
  dmNameProblem,
  encodeRename,
  encodeRequest,
  encodeTableLoad,
  encodeTargetMessage,
  formatTargetLine,
  newDecodeDev,
  newEncodeDev,
} from './dm-ioctl-codec.js';
import { explainBusyTable } from '../sys/holders.js';
import { EXIT_ENVIRONMENT, EXIT_USAGE, RemapsimError } from '../util/errors.js';
import { glibcMajorMinor } from '../sys/dev-t.js';
import { type NodeSys, nodeSys, S_IFBLK, S_IFCHR } from './mknod.js';

const ENOENT = 2;
const ENXIO = 6;
const EPERM = 1;
const EACCES = 13;
const EBUSY = 16;
const EEXIST = 17;
const ENODEV = 19;
const EINVAL = 22;
const ENOTTY = 25;

export const DM_CONTROL_PATH = '/dev/mapper/control';
export const DM_NOT_AVAILABLE = 'device-mapper is not available in this kernel';
/** The misc major; device-mapper's control node is 10:236 (MAPPER_CTRL_MINOR). */
const MISC_MAJOR = 10;

/** ioctl(fd, request, buf) that throws SysError (with errno) on failure: libc().ioctlBuffer. */
export type IoctlBufferFn = (fd: number, request: number, buf: Uint8Array) => number;

/** A device-mapper call that failed, as one line naming the device; `errno` as the kernel returned it. */
export class DmError extends RemapsimError {
  override readonly name: string = 'DmError';
  constructor(
    message: string,
    readonly errno: number,
    readonly command?: string,
    readonly device?: string,
  ) {
    super(message);
  }

  /**
   * The same for every command: a request the user got wrong is 2 (refused
   * before the kernel saw it, no such device or no table, a table or message
   * the target refused, a name in use, a table naming a device something
   * holds); the rest (not root, a device still open) is the environment, 3.
   */
  override get exitCode(): number {
    if (this.command === undefined) return EXIT_ENVIRONMENT;
    if (this.errno === ENXIO || this.errno === EINVAL) return EXIT_USAGE;
    if (this.errno === EBUSY && ['DM_DEV_CREATE', 'DM_DEV_RENAME', 'DM_TABLE_LOAD'].includes(this.command)) return EXIT_USAGE;
    return EXIT_ENVIRONMENT;
  }
}

/** A request refused before it reached the kernel (a name too long, a bad target spec). */
export class DmRequestError extends DmError {
  override readonly name = 'DmRequestError';
  override get exitCode(): number {
    return EXIT_USAGE;
  }
}

export class DmUnavailableError extends DmError {
  override readonly name = 'DmUnavailableError';
  override get exitCode(): number {
    return EXIT_ENVIRONMENT;
  }
  constructor(errno: number) {
    super(`${DM_NOT_AVAILABLE} (${errno === ENOENT ? 'no /dev/mapper/control' : `/dev/mapper/control: ${errnoText(errno)}`})`, errno);
  }
}

/** Makes and removes /dev/mapper/NAME (dmsetup's job when there is no udev). */
export interface DmNodes {
  ensure(name: string, major: number, minor: number): void;
  remove(name: string): void;
}

export interface DmControlOptions {
  /** The ioctl; default libc().ioctlBuffer. */
  ioctl?: IoctlBufferFn;
  /** An already open control fd (with `ioctl` this runs without a kernel); default: open `controlPath`. */
  fd?: number;
  controlPath?: string;
  /** Where to learn device-mapper's misc minor when the control node is missing. */
  procMiscPath?: string;
  /** Device nodes under /dev/mapper; null to leave them alone. Default: mknod under /dev/mapper. */
  nodes?: DmNodes | null;
  /** mknod for the control node itself (default: koffi). */
  nodeSys?: NodeSys;
  /** Synchronous sleep used between EBUSY retries (default: Atomics.wait). */
  sleep?: (ms: number) => void;
  /** First reply buffer for commands that return data (default 16 KiB, as libdevmapper). */
  initialBufferSize?: number;
  /** Give up doubling past this (default 32 MiB). */
  maxBufferSize?: number;
  /** Interface version sent in requests (default 4.0.0: every v4 kernel accepts it). */
  clientVersion?: DmVersion;
}

export interface DmDeviceInfo {
  name: string;
  uuid: string;
  major: number;
  minor: number;
  openCount: number;
  eventNr: number;
  /** Targets in the live table (or in the inactive one, when that was asked for). */
  targetCount: number;
  suspended: boolean;
  readOnly: boolean;
  activeTable: boolean;
  inactiveTable: boolean;
  deferredRemove: boolean;
  internalSuspend: boolean;
  flags: number;
}

export interface DmListedDevice {
  name: string;
  major: number;
  minor: number;
  eventNr?: number;
  uuid?: string;
}

/** A target's answer to a message: `replied` false when the kernel did not flag DM_DATA_OUT_FLAG (then `text` is ''). */
export interface DmMessageReply {
  text: string;
  replied: boolean;
}

export interface SuspendOptions {
  /** DM_NOFLUSH_FLAG: do not flush queued I/O (keep it for after the resume). */
  noflush?: boolean;
  /** DM_SKIP_LOCKFS_FLAG: do not freeze a filesystem on the device. */
  nolockfs?: boolean;
}

export interface RemoveOptions {
  /** DM_DEFERRED_REMOVE: if the device is open, remove it on last close instead of failing. */
  deferred?: boolean;
  /** EBUSY retries (default 5). */
  retries?: number;
  /** Pause between retries in ms (default 100). */
  retryDelayMs?: number;
}

function errnoOf(err: unknown): number | undefined {
  if (err instanceof SysError) return err.errno;
  const code = (err as NodeJS.ErrnoException | undefined)?.errno;
  return typeof code === 'number' ? Math.abs(code) : undefined;
}

function defaultSleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** device-mapper's minor in /proc/misc ("236 device-mapper"), or undefined when it is not registered. */
export function dmMiscMinor(procMisc: string): number | undefined {
  for (const line of procMisc.split('\n')) {
    const m = /^\s*(\d+)\s+device-mapper\s*$/.exec(line);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Escape a message argument so dm_split_args() keeps it as one word. */
function escapeArg(a: string): string {
  return a.replace(/[\\\s]/g, (c) => `\\${c}`);
}

export class DmControl {
  private fd: number;
  private readonly ownsFd: boolean;
  private readonly ioctl: IoctlBufferFn;
  private readonly nodes: DmNodes | null;
  private readonly sleep: (ms: number) => void;
  private readonly initialBufferSize: number;
  private readonly maxBufferSize: number;
  private readonly clientVersion: DmVersion;

  private constructor(fd: number, ownsFd: boolean, opts: DmControlOptions) {
    this.fd = fd;
    this.ownsFd = ownsFd;
    this.ioctl = opts.ioctl ?? ((f, r, b) => libc().ioctlBuffer(f, r, b));
    this.nodes = opts.nodes === undefined ? devMapperNodes() : opts.nodes;
    this.sleep = opts.sleep ?? defaultSleep;
    this.initialBufferSize = opts.initialBufferSize ?? 16 * 1024;
    this.maxBufferSize = opts.maxBufferSize ?? 32 * 1024 * 1024;
    this.clientVersion = opts.clientVersion ?? [4, 0, 0];
  }

  /**
   * Opens the control node. When it is missing but the kernel lists
   * device-mapper in /proc/misc (no udev, a bare devtmpfs), makes it first.
   * Throws DmUnavailableError when the kernel has no device-mapper.
   */
  static open(opts: DmControlOptions = {}): DmControl {
    if (opts.fd !== undefined) return new DmControl(opts.fd, false, opts);
    const controlPath = opts.controlPath ?? DM_CONTROL_PATH;
    const tryOpen = (): number => fs.openSync(controlPath, fs.constants.O_RDWR);
    let fd: number;
    try {
      fd = tryOpen();
    } catch (err) {
      const e = errnoOf(err) ?? 0;
      if (e === ENOENT) {
        fd = DmControl.makeControlNode(controlPath, opts, tryOpen);
      } else if (e === ENODEV || e === ENXIO) {
        throw new DmUnavailableError(e);
      } else if (e === EACCES || e === EPERM) {
        throw new DmError(`cannot open ${controlPath}: device-mapper needs root (CAP_SYS_ADMIN)`, e);
      } else {
        throw new DmError(`cannot open ${controlPath}: ${errnoText(e)}`, e);
      }
    }
    return new DmControl(fd, true, opts);
  }

  private static makeControlNode(controlPath: string, opts: DmControlOptions, tryOpen: () => number): number {
    let misc = '';
    try {
      misc = fs.readFileSync(opts.procMiscPath ?? '/proc/misc', 'utf8');
    } catch {
      throw new DmUnavailableError(ENOENT);
    }
    const minor = dmMiscMinor(misc);
    if (minor === undefined) throw new DmUnavailableError(ENOENT);
    try {
      fs.mkdirSync(path.dirname(controlPath), { recursive: true, mode: 0o755 });
      (opts.nodeSys ?? nodeSys()).mknod(controlPath, S_IFCHR | 0o600, MISC_MAJOR, minor);
    } catch (err) {
      const e = errnoOf(err) ?? 0;
      if (e !== EEXIST /* someone else made it */) throw new DmError(`cannot create ${controlPath} (char ${MISC_MAJOR}:${minor}): ${errnoText(e)}`, e);
    }
    try {
      return tryOpen();
    } catch (err) {
      const e = errnoOf(err) ?? 0;
      if (e === ENODEV || e === ENXIO || e === ENOENT) throw new DmUnavailableError(e);
      throw new DmError(`cannot open ${controlPath}: ${errnoText(e)}`, e);
    }
  }

  close(): void {
    if (this.fd >= 0 && this.ownsFd) fs.closeSync(this.fd);
    this.fd = -1;
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * One ioctl; with `reply`, doubles the buffer while the kernel says
   * DM_BUFFER_FULL_FLAG. Kernel errors become DmError with a clear line.
   */
  private call(cmd: DmCmdName, req: DmRequest, build: (req: DmRequest) => Buffer, reply: boolean, subject?: string): { header: DmIoctlHeader; buf: Buffer } {
    if (this.fd < 0) throw new DmError('the device-mapper control object is closed', 9);
    const nr = DmCmd[cmd];
    let size = reply ? this.initialBufferSize : 0;
    for (;;) {
      let buf: Buffer;
      try {
        buf = build({ ...req, version: this.clientVersion, bufferSize: size });
      } catch (err) {
        if (err instanceof DmCodecError) throw new DmRequestError(subject ? `'${subject}': ${err.message}` : err.message, EINVAL, dmCmdName(nr), subject);
        throw err;
      }
      try {
        this.ioctl(this.fd, dmIoctlRequest(nr), buf);
      } catch (err) {
        const e = errnoOf(err);
        if (e === undefined) throw err;
        throw new DmError(describeErrno(cmd, e, subject), e, dmCmdName(nr), subject);
      }
      const header = decodeDmIoctl(buf);
      if (reply && header.flags & DM_BUFFER_FULL_FLAG) {
        if (buf.length >= this.maxBufferSize) {
          throw new DmError(
            `${dmCmdName(nr)}${subject ? ` for '${subject}'` : ''}: the reply does not fit in ${this.maxBufferSize} bytes`,
            105,
            dmCmdName(nr),
            subject,
          );
        }
        size = Math.min(this.maxBufferSize, Math.max(buf.length * 2, this.initialBufferSize));
        continue;
      }
      return { header, buf };
    }
  }

  private simple(cmd: DmCmdName, name: string, flags = 0, eventNr = 0): DmIoctlHeader {
    checkName(name);
    return this.call(cmd, { name, flags, eventNr }, (r) => encodeRequest(r), false, name).header;
  }

  // ---------------------------------------------------------------- commands

  /** The kernel's ioctl interface version (DM_VERSION). */
  version(): DmVersion {
    return this.call('VERSION', {}, (r) => encodeRequest(r), false).header.version;
  }

  /** Every dm device with its number (and uuid and event number where the kernel reports them). */
  listDevices(): DmListedDevice[] {
    const { buf } = this.call('LIST_DEVICES', { flags: DM_UUID_FLAG }, (r) => encodeRequest(r), true);
    return decodeNameList(buf).map((e: DmNameListEntry) => {
      const d: DmListedDevice = { name: e.name, major: e.major, minor: e.minor };
      if (e.eventNr !== undefined) d.eventNr = e.eventNr;
      if (e.uuid !== undefined) d.uuid = e.uuid;
      return d;
    });
  }

  /** Loaded target types and their versions (DM_LIST_VERSIONS). */
  listTargets(): DmTargetVersion[] {
    return decodeTargetVersions(this.call('LIST_VERSIONS', {}, (r) => encodeRequest(r), true).buf);
  }

  /**
   * One target type's version, or undefined when it is not loaded (and could
   * not be auto-loaded). DM_GET_TARGET_VERSION where the kernel has it (4.41+),
   * else the full list.
   */
  targetVersion(type: string): DmTargetVersion | undefined {
    try {
      const { buf } = this.call('GET_TARGET_VERSION', { name: type }, (r) => encodeRequest(r), true, type);
      return decodeTargetVersions(buf)[0];
    } catch (err) {
      if (!(err instanceof DmError)) throw err;
      if (err.errno === EINVAL) return undefined;
      if (err.errno !== ENOTTY) throw err;
    }
    return this.listTargets().find((t) => t.name === type);
  }

  /** DM_DEV_CREATE: a device with no table, suspended. `minor` asks for a fixed minor. */
  create(name: string, opts: { uuid?: string; minor?: number } = {}): DmDeviceInfo {
    checkName(name);
    const req: DmRequest = { name, uuid: opts.uuid };
    if (opts.minor !== undefined) {
      req.flags = DM_PERSISTENT_DEV_FLAG;
      req.dev = newEncodeDev(0, opts.minor);
    }
    const info = toInfo(this.call('DEV_CREATE', req, (r) => encodeRequest(r), false, name).header);
    this.nodes?.ensure(info.name, info.major, info.minor);
    return info;
  }

  /**
   * DM_TABLE_LOAD into the inactive slot. `readOnly` opens the table's devices
   * read-only; `secure` asks the kernel to wipe its copy (keys in the table).
   */
  /**
   * DM_TABLE_LOAD into the inactive slot. A refusal with EBUSY is explained
   * (who holds which device) by reading every live table, which runs each
   * target's status function: `explainBusy: false` skips that, for a tester
   * that must not touch the targets it watches.
   */
  load(name: string, targets: readonly DmTargetSpec[], opts: { readOnly?: boolean; secure?: boolean; explainBusy?: boolean } = {}): DmDeviceInfo {
    checkName(name);
    let flags = 0;
    if (opts.readOnly) flags |= DM_READONLY_FLAG;
    if (opts.secure) flags |= DM_SECURE_DATA_FLAG;
    try {
      return toInfo(this.call('TABLE_LOAD', { name, flags }, (r) => encodeTableLoad(r, targets), false, name).header);
    } catch (err) {
      if (err instanceof DmError && !(err instanceof DmRequestError) && err.errno === EINVAL) throw this.explainLoadFailure(name, targets, err);
      if (err instanceof DmError && !(err instanceof DmRequestError) && err.errno === EBUSY && opts.explainBusy !== false) {
        throw new DmError(explainBusyTable(this, name, targets), EBUSY, err.command, name);
      }
      throw err;
    }
  }

  /** EINVAL from a table load: a target type that is not there, or the target refused its arguments. */
  private explainLoadFailure(name: string, targets: readonly DmTargetSpec[], err: DmError): DmError {
    const types = [...new Set(targets.map((t) => t.type))];
    for (const type of types) {
      let present: DmTargetVersion | undefined;
      try {
        present = this.targetVersion(type);
      } catch {
        return err;
      }
      if (!present) return new DmError(`target type '${type}' is not loaded`, EINVAL, err.command, name);
    }
    return new DmError(
      `device-mapper refused the table for '${name}' (EINVAL): a target rejected its arguments; the kernel log (dmesg) has its reason`,
      EINVAL,
      err.command,
      name,
    );
  }

  /** DM_DEV_SUSPEND with DM_SUSPEND_FLAG. */
  suspend(name: string, opts: SuspendOptions = {}): DmDeviceInfo {
    return toInfo(this.simple('DEV_SUSPEND', name, DM_SUSPEND_FLAG | suspendFlags(opts)));
  }

  /** DM_DEV_SUSPEND without DM_SUSPEND_FLAG: swaps in the inactive table if there is one, then resumes. */
  resume(name: string, opts: SuspendOptions = {}): DmDeviceInfo {
    const info = toInfo(this.simple('DEV_SUSPEND', name, suspendFlags(opts)));
    this.nodes?.ensure(info.name, info.major, info.minor);
    return info;
  }

  /**
   * DM_DEV_REMOVE. EBUSY (still open, often a udev probe or a just-closed
   * reader) is retried a few times; then it is "device 'x' is busy". With
   * `deferred`, an open device is left for the kernel to remove on last close.
   */
  remove(name: string, opts: RemoveOptions = {}): 'removed' | 'deferred' {
    const retries = opts.retries ?? 5;
    const delay = opts.retryDelayMs ?? 100;
    const flags = opts.deferred ? DM_DEFERRED_REMOVE : 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const h = this.simple('DEV_REMOVE', name, flags);
        // The kernel clears DM_DEFERRED_REMOVE when it removed the device, and leaves it set when it only scheduled that.
        if (opts.deferred && h.flags & DM_DEFERRED_REMOVE) return 'deferred';
        this.nodes?.remove(name);
        return 'removed';
      } catch (err) {
        if (err instanceof DmError && err.errno === EBUSY && attempt < retries) {
          this.sleep(delay);
          continue;
        }
        throw err;
      }
    }
  }

  /** DM_TABLE_CLEAR: drops the inactive table. */
  clear(name: string): DmDeviceInfo {
    return toInfo(this.simple('TABLE_CLEAR', name));
  }

  /** DM_DEV_STATUS. */
  info(name: string): DmDeviceInfo {
    return toInfo(this.simple('DEV_STATUS', name));
  }

  exists(name: string): boolean {
    try {
      this.info(name);
      return true;
    } catch (err) {
      if (err instanceof DmError && err.errno === ENXIO) return false;
      throw err;
    }
  }

  /** DM_DEV_RENAME; the /dev/mapper node follows. */
  rename(name: string, newName: string): DmDeviceInfo {
    checkName(name);
    checkName(newName);
    const info = toInfo(this.call('DEV_RENAME', { name }, (r) => encodeRename(r, newName), false, name).header);
    if (this.nodes) {
      this.nodes.remove(name);
      this.nodes.ensure(newName, info.major, info.minor);
    }
    return info;
  }

  /** Status lines of the live (or inactive) table: DM_TABLE_STATUS. */
  status(name: string, opts: { inactive?: boolean; noflush?: boolean } = {}): DmTargetSpecReply[] {
    let flags = 0;
    if (opts.inactive) flags |= DM_QUERY_INACTIVE_TABLE_FLAG;
    if (opts.noflush) flags |= DM_NOFLUSH_FLAG;
    return this.statusCall(name, flags);
  }

  /** Table lines of the live (or inactive) table: DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG. */
  table(name: string, opts: { inactive?: boolean; secure?: boolean } = {}): DmTargetSpecReply[] {
    let flags = DM_STATUS_TABLE_FLAG;
    if (opts.inactive) flags |= DM_QUERY_INACTIVE_TABLE_FLAG;
    if (opts.secure) flags |= DM_SECURE_DATA_FLAG;
    return this.statusCall(name, flags);
  }

  private statusCall(name: string, flags: number): DmTargetSpecReply[] {
    checkName(name);
    const { header, buf } = this.call('TABLE_STATUS', { name, flags }, (r) => encodeRequest(r), true, name);
    if (flags & DM_QUERY_INACTIVE_TABLE_FLAG && !(header.flags & DM_INACTIVE_PRESENT_FLAG)) return [];
    return decodeTargetSpecs(buf);
  }

  /** The devices the live table uses (DM_TABLE_DEPS). */
  deps(name: string, opts: { inactive?: boolean } = {}): Array<{ major: number; minor: number }> {
    checkName(name);
    const flags = opts.inactive ? DM_QUERY_INACTIVE_TABLE_FLAG : 0;
    const { buf } = this.call('TABLE_DEPS', { name, flags }, (r) => encodeRequest(r), true, name);
    return decodeTargetDeps(buf).map((d) => newDecodeDev(d));
  }

  /**
   * DM_TARGET_MSG to the target at `sector`: its reply text, '' for none (use
   * messageReply to tell no reply from an empty one).
   */
  message(name: string, sector: number, message: string, opts: { secure?: boolean } = {}): string {
    return this.messageReply(name, sector, message, opts).text;
  }

  /**
   * DM_TARGET_MSG to the target at `sector`. `replied` is the kernel's
   * DM_DATA_OUT_FLAG: a target whose handler returns 0 instead of 1 (the
   * dm-remap-v4 module does) sends no reply even when it wrote one. A reply
   * that does not fit is retried with a bigger buffer, which sends the
   * message again (as libdevmapper does); messages that answer are queries
   * in practice.
   */
  messageReply(name: string, sector: number, message: string, opts: { secure?: boolean } = {}): DmMessageReply {
    checkName(name);
    const flags = opts.secure ? DM_SECURE_DATA_FLAG : 0;
    const { header, buf } = this.call('TARGET_MSG', { name, flags }, (r) => encodeTargetMessage(r, sector, message), true, name);
    if (!(header.flags & DM_DATA_OUT_FLAG)) return { text: '', replied: false };
    return { text: decodeMessageReply(buf) ?? '', replied: true };
  }

  /**
   * DM_DEV_WAIT: blocks until the device's event number is no longer `eventNr`
   * (pass the one info() gave), then returns the new info and status lines.
   */
  waitEvent(name: string, eventNr: number, opts: { noflush?: boolean } = {}): { info: DmDeviceInfo; targets: DmTargetSpecReply[] } {
    checkName(name);
    const flags = opts.noflush ? DM_NOFLUSH_FLAG : 0;
    const { header, buf } = this.call('DEV_WAIT', { name, flags, eventNr }, (r) => encodeRequest(r), true, name);
    return { info: toInfo(header), targets: decodeTargetSpecs(buf) };
  }
}

function checkName(name: string): void {
  const problem = dmNameProblem(name);
  if (problem) throw new DmRequestError(problem, EINVAL, undefined, name);
}

function suspendFlags(o: SuspendOptions): number {
  return (o.noflush ? DM_NOFLUSH_FLAG : 0) | (o.nolockfs ? DM_SKIP_LOCKFS_FLAG : 0);
}

function toInfo(h: DmIoctlHeader): DmDeviceInfo {
  const { major, minor } = newDecodeDev(h.dev);
  return {
    name: h.name,
    uuid: h.uuid,
    major,
    minor,
    openCount: h.openCount,
    eventNr: h.eventNr,
    targetCount: h.targetCount,
    suspended: (h.flags & DM_SUSPEND_FLAG) !== 0,
    readOnly: (h.flags & DM_READONLY_FLAG) !== 0,
    activeTable: (h.flags & DM_ACTIVE_PRESENT_FLAG) !== 0,
    inactiveTable: (h.flags & DM_INACTIVE_PRESENT_FLAG) !== 0,
    deferredRemove: (h.flags & DM_DEFERRED_REMOVE) !== 0,
    internalSuspend: (h.flags & DM_INTERNAL_SUSPEND_FLAG) !== 0,
    flags: h.flags,
  };
}

function describeErrno(cmd: DmCmdName, errno: number, subject: string | undefined): string {
  const who = subject ?? '';
  const name = dmCmdName(DmCmd[cmd]);
  switch (errno) {
    case ENXIO:
      return `device '${who}' does not exist`;
    case EBUSY:
      if (cmd === 'DEV_CREATE') return `device '${who}' already exists (its name or uuid is in use)`;
      if (cmd === 'DEV_RENAME') return `cannot rename '${who}': the new name or uuid is in use`;
      return `device '${who}' is busy`;
    case EACCES:
    case EPERM:
      return `${name}: device-mapper needs root (CAP_SYS_ADMIN)`;
    case ENOTTY:
      return `${name}: this kernel's device-mapper does not know the command (interface too old)`;
    default:
      return `${name}${who ? ` for '${who}'` : ''} failed: ${errnoText(errno)}`;
  }
}

/**
 * /dev/mapper/NAME as a block node (dmsetup's layout without udev). A node
 * already there is kept when it (or the symlink udev makes) points at the right
 * device, replaced otherwise.
 */
export function devMapperNodes(dir = '/dev/mapper', sys?: NodeSys): DmNodes {
  return {
    ensure(name, major, minor) {
      const p = path.join(dir, name);
      try {
        const st = fs.statSync(p);
        if (st.isBlockDevice()) {
          const cur = glibcMajorMinor(st.rdev);
          if (cur.major === major && cur.minor === minor) return;
        }
        fs.rmSync(p, { force: true });
      } catch (err) {
        const e = errnoOf(err);
        if (e !== ENOENT) throw new DmError(`cannot inspect ${p}: ${errnoText(e ?? 0)}`, e ?? 0);
        fs.rmSync(p, { force: true }); // a dangling symlink
      }
      try {
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
        (sys ?? nodeSys()).mknod(p, S_IFBLK | 0o600, major, minor);
      } catch (err) {
        const e = errnoOf(err) ?? 0;
        if (e === EEXIST) return; // udev got there first
        throw new DmError(`cannot create ${p} (block ${major}:${minor}): ${errnoText(e)}`, e);
      }
    },
    remove(name) {
      const p = path.join(dir, name);
      try {
        const st = fs.lstatSync(p);
        if (st.isBlockDevice() || st.isSymbolicLink()) fs.unlinkSync(p);
      } catch (err) {
        if (errnoOf(err) !== ENOENT) throw err;
      }
    },
  };
}

/**
 * A kernel dm device as a ControlTarget, so the CLI speaks to it and to the
 * userspace model with the same verbs.
 */
export class DmDeviceTarget implements ControlTarget {
  readonly targetType: string;

  constructor(
    private readonly control: DmControl,
    readonly device: string,
  ) {
    const t = control.table(device);
    if (t.length === 0) throw new DmError(`device '${device}' has no active table`, ENXIO, 'DM_TABLE_STATUS', device);
    this.targetType = [...new Set(t.map((x) => x.type))].join(',');
  }

  table(): string {
    return this.control.table(this.device).map(formatTargetLine).join('\n');
  }

  status(): string {
    return this.control.status(this.device).map(formatTargetLine).join('\n');
  }

  /** `dmsetup message <dev> 0 <args...>`: each argument stays one word for the kernel's splitter. */
  message(args: string[]): string {
    return this.messageReply(args).text;
  }

  /** message(), telling a target that sent no reply from an empty one. */
  messageReply(args: string[]): DmMessageReply {
    try {
      return this.control.messageReply(this.device, 0, args.map(escapeArg).join(' '));
    } catch (err) {
      if (err instanceof DmError) throw new MessageError(err.message, err.errno);
      throw err;
    }
  }
}
