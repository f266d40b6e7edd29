/**
 * `remapsim dm ...`: dmsetup's verbs over our own ioctl path (src/kernel/dm-control.ts),
 * with dmsetup's argument shapes and output formats, so a script written for
 * dmsetup reads our output unchanged. `--json` where a structure helps.
 *
 * The control node is opened before anything else is looked at, so a kernel
 * without device-mapper gets the same one line (exit 3) from every verb.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { DmControl, DmError, type DmDeviceInfo, type DmListedDevice, type DmMessageReply } from '../../kernel/dm-control.js';
import type { DmTargetSpec, DmTargetSpecReply } from '../../kernel/dm-ioctl-codec.js';
import { MAX_WATCH_S, MIN_WATCH_S, parseWatchOptions, untilStopped } from '../status.js';
import { everyInterval, inPlace, type ViewOutput } from '../../status/watch.js';
import { libc } from '../../sys/libc.js';
import { UsageError } from '../../util/errors.js';

const ENXIO = 6;
/** BLKRAGET: the block layer's read-ahead, in sectors. */
const BLKRAGET = 0x1263;

// ------------------------------------------------------------------ pure helpers (exported for tests)

/**
 * A table as dmsetup reads it (--table, a file or stdin): one target per
 * line, `<start> <length> <type> [params]`; blank lines and lines starting
 * with '#' are skipped, a '#' ends the parameters. Parameters are passed on
 * verbatim (the target splits them), only the outer blanks are trimmed.
 */
export function parseDmTable(text: string, source: string): DmTargetSpec[] {
  const out: DmTargetSpec[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${source} line ${i + 1}`;
    const m = /^(\S+)\s+(\S+)\s+(\S+)(?:\s+([\s\S]*))?$/.exec(line);
    if (!m) throw new UsageError(`${where}: expected '<start> <length> <target type> [parameters]', got '${line}'`);
    const start = sectorField(m[1], 'start', where);
    const length = sectorField(m[2], 'length', where);
    if (length === 0) throw new UsageError(`${where}: length must be at least 1 sector, got 0`);
    let params = m[4] ?? '';
    const hash = params.indexOf('#');
    if (hash >= 0) params = params.slice(0, hash);
    out.push({ start, length, type: m[3], params: params.trimEnd() });
  }
  return out;
}

function sectorField(text: string, field: string, where: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${where}: ${field} must be a whole number of 512-byte sectors, got '${text}'`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${where}: ${field} ${text} is out of range 0..${Number.MAX_SAFE_INTEGER}`);
  return n;
}

/** One `dmsetup table` / `dmsetup status` line: dmsetup prints "start length type " and then the parameters, so an empty parameter string leaves a trailing blank. */
export function dmsetupLine(t: DmTargetSpec): string {
  return `${t.start} ${t.length} ${t.type} ${t.params}`;
}

/** `dmsetup info NAME`, including the blank line that ends each device. */
export function formatDmInfo(info: DmDeviceInfo, readAhead: number | undefined): string {
  const lines = [
    `Name:              ${info.name}`,
    `State:             ${info.suspended ? 'SUSPENDED' : 'ACTIVE'}${info.readOnly ? ' (READ-ONLY)' : ''}${info.deferredRemove ? ' (DEFERRED REMOVE)' : ''}`,
  ];
  if (readAhead !== undefined) lines.push(`Read Ahead:        ${readAhead}`);
  if (!info.activeTable && !info.inactiveTable) lines.push('Tables present:    None');
  else
    lines.push(
      `Tables present:    ${info.activeTable ? 'LIVE' : ''}${info.activeTable && info.inactiveTable ? ' & ' : ''}${info.inactiveTable ? 'INACTIVE' : ''}`,
    );
  lines.push(
    `Open count:        ${info.openCount}`,
    `Event number:      ${info.eventNr}`,
    `Major, minor:      ${info.major}, ${info.minor}`,
    `Number of targets: ${info.targetCount}`,
  );
  if (info.uuid) lines.push(`UUID: ${info.uuid}`);
  return `${lines.join('\n')}\n\n`;
}

/** `dmsetup deps NAME`: "2 dependencies\t: (7, 0) (7, 1)". */
export function formatDmDeps(deps: ReadonlyArray<{ major: number; minor: number }>): string {
  return `${deps.length} dependencies\t:${deps.map((d) => ` (${d.major}, ${d.minor})`).join('')}`;
}

/** `dmsetup targets`: "linear           v1.4.0". */
export function formatDmTarget(t: { name: string; version: readonly number[] }): string {
  return `${t.name.padEnd(16)} v${t.version.join('.')}`;
}

/** What `dmsetup message` prints for a reply: as is when it ends in a newline, else with one added; nothing for none. */
export function formatMessageReply(reply: string): string {
  if (reply === '' || reply.endsWith('\n')) return reply;
  return `${reply}\n`;
}

/** The stderr line for a message the target sent no reply to (`who`: the command). */
export function noReplyLine(who: string): string {
  return `${who}: no reply (the target sent none: DM_DATA_OUT_FLAG not set)\n`;
}

/**
 * Prints a kernel target's reply: the text as dmsetup does, or {"reply": ...}
 * with --json; no reply at all is one line on stderr (null in JSON), not an
 * empty line.
 */
export function printMessageReply(reply: DmMessageReply, asJson: boolean, who: string, extra: Record<string, unknown> = {}): void {
  if (asJson) json({ ...extra, reply: reply.replied ? reply.text : null });
  else if (!reply.replied) process.stderr.write(noReplyLine(who));
  else out(formatMessageReply(reply.text));
}

/**
 * The read-ahead dmsetup shows (in sectors): the bdi's read_ahead_kb from
 * sysfs, else BLKRAGET on /dev/mapper/NAME; undefined when neither answers
 * (a device whose table was never loaded has no gendisk yet), and then
 * dmsetup leaves the line out.
 */
export function readAheadSectors(info: Pick<DmDeviceInfo, 'name' | 'major' | 'minor'>): number | undefined {
  try {
    const kb = Number.parseInt(fs.readFileSync(`/sys/dev/block/${info.major}:${info.minor}/bdi/read_ahead_kb`, 'utf8'), 10);
    if (Number.isFinite(kb)) return kb * 2;
  } catch {
    // no sysfs entry: try the node
  }
  let fd: number | undefined;
  try {
    fd = fs.openSync(`/dev/mapper/${info.name}`, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    return libc().ioctlGetU64(fd, BLKRAGET);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

// ------------------------------------------------------------------ plumbing

function out(text: string): void {
  process.stdout.write(text);
}

function json(value: unknown): void {
  out(`${JSON.stringify(value)}\n`);
}

/**
 * Runs `fn` with an open control object. What a failure exits with is
 * decided in one place for every command (DmError.exitCode in kernel/dm-control.ts): 2 for
 * a wrong request (no such device, a refused table or message, a name in
 * use, a table naming a held device), 3 for the environment (no
 * device-mapper, not root, a device still open).
 */
function withControl<T>(fn: (dm: DmControl) => T): T {
  const dm = DmControl.open();
  try {
    return fn(dm);
  } finally {
    dm.close();
  }
}

async function withControlAsync<T>(fn: (dm: DmControl) => Promise<T>): Promise<T> {
  const dm = DmControl.open();
  try {
    return await fn(dm);
  } finally {
    dm.close();
  }
}

interface TableSource {
  table?: string;
}

/** The table from --table, TABLEFILE or stdin (in that order of precedence, one of them only). */
function readTable(opts: TableSource, file: string | undefined): DmTargetSpec[] {
  if (opts.table !== undefined && file !== undefined) throw new UsageError('give the table either with --table or as TABLEFILE, not both');
  let text: string;
  let source: string;
  if (opts.table !== undefined) {
    text = opts.table;
    source = '--table';
  } else if (file !== undefined) {
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read table file ${file}: ${(err as Error).message}`);
    }
    source = file;
  } else {
    if (process.stdin.isTTY) throw new UsageError('no table given: use --table LINE, a TABLEFILE argument, or pipe the table on stdin (or --notable)');
    try {
      text = fs.readFileSync(0, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read the table from stdin: ${(err as Error).message}`);
    }
    source = 'stdin';
  }
  const targets = parseDmTable(text, source);
  if (targets.length === 0) throw new UsageError(`the table from ${source} has no target lines`);
  return targets;
}

/** Every device with its kernel order (sorted by name on current kernels), or the one named. */
function devicesFor(dm: DmControl, name: string | undefined): { names: string[]; multiple: boolean } {
  if (name !== undefined) return { names: [name], multiple: false };
  return { names: dm.listDevices().map((d) => d.name), multiple: true };
}

/** Runs `each` for every device; a device removed meanwhile is skipped, as dmsetup would not have listed it. */
function forEachDevice(names: string[], multiple: boolean, each: (name: string) => void): void {
  for (const n of names) {
    try {
      each(n);
    } catch (err) {
      if (multiple && err instanceof DmError && err.errno === ENXIO) continue;
      throw err;
    }
  }
}

function parseSector(text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`sector must be a whole number of 512-byte sectors, got '${text}'`);
  return Number(text);
}

function infoJson(info: DmDeviceInfo, readAhead: number | undefined): Record<string, unknown> {
  const { flags: _flags, ...rest } = info;
  return { ...rest, readAhead: readAhead ?? null };
}

type StatusKind = 'status' | 'table';

interface TargetsOptions {
  target?: string;
  inactive?: boolean;
  noflush?: boolean;
  json?: boolean;
}

interface DeviceTargets {
  name: string;
  targets: DmTargetSpecReply[];
}

/** The status (or table) lines of one device or of all (`multiple`). */
function collectTargets(dm: DmControl, kind: StatusKind, name: string | undefined, opts: TargetsOptions): { rows: DeviceTargets[]; multiple: boolean } {
  const { names, multiple } = devicesFor(dm, name);
  const rows: DeviceTargets[] = [];
  forEachDevice(names, multiple, (n) => {
    const targets = kind === 'status' ? dm.status(n, { inactive: opts.inactive, noflush: opts.noflush }) : dm.table(n, { inactive: opts.inactive });
    rows.push({ name: n, targets });
  });
  return { rows, multiple };
}

/** The --json value: one device's object, or the array of all. */
function targetsJson(rows: DeviceTargets[], multiple: boolean, opts: TargetsOptions): unknown {
  const objs = rows.map((r) => ({
    name: r.name,
    targets: r.targets
      .filter((t) => opts.target === undefined || t.type === opts.target)
      .map(({ start, length, type, params }) => ({ start, length, type, params })),
  }));
  return multiple ? objs : objs[0];
}

/** dmsetup's text: one line per target, prefixed "NAME: " when listing every device; 'No devices found' when there are none. */
function targetsText(rows: DeviceTargets[], multiple: boolean, opts: TargetsOptions): string[] {
  if (multiple && rows.length === 0) return ['No devices found'];
  const lines: string[] = [];
  for (const r of rows) {
    const prefix = multiple ? `${r.name}: ` : '';
    if (r.targets.length === 0) {
      if (opts.target === undefined) lines.push(prefix);
      continue;
    }
    for (const t of r.targets) {
      if (opts.target !== undefined && t.type !== opts.target) continue;
      lines.push(`${prefix}${dmsetupLine(t)}`);
    }
  }
  return lines;
}

function printTargets(dm: DmControl, kind: StatusKind, name: string | undefined, opts: TargetsOptions): void {
  const { rows, multiple } = collectTargets(dm, kind, name, opts);
  if (opts.json) json(targetsJson(rows, multiple, opts));
  else
    out(
      targetsText(rows, multiple, opts)
        .map((l) => `${l}\n`)
        .join(''),
    );
}

/**
 * `dm status --watch`: the status lines every interval, on the shared
 * schedule (src/status/watch.ts). Piped, each line carries the sample's
 * timestamp; --json prints one object per sample; a terminal redraws in place
 * under a header, as watch(1) does. Ctrl-C, SIGTERM or a closed pipe end it
 * with exit 0.
 */
async function watchDmStatus(
  dm: DmControl,
  name: string | undefined,
  opts: TargetsOptions & { intervalMs: number; count?: number },
  sink: ViewOutput & Partial<NodeJS.WritableStream> = process.stdout,
): Promise<number> {
  const { intervalMs, count } = opts;
  const tty = sink.isTTY === true && !opts.json;
  const every = `Every ${intervalMs / 1000}s: remapsim dm status${name === undefined ? '' : ` ${name}`}`;
  return untilStopped(sink, async (signal) => {
    const screen = tty ? inPlace(sink) : undefined;
    try {
      return await everyInterval({ intervalMs, count, signal }, () => {
        const time = new Date().toISOString();
        const { rows, multiple } = collectTargets(dm, 'status', name, opts);
        if (opts.json) sink.write(`${JSON.stringify({ time, status: targetsJson(rows, multiple, opts) })}\n`);
        else if (screen) screen.frame([`${every}    ${time}`, '', ...targetsText(rows, multiple, opts)]);
        else
          sink.write(
            targetsText(rows, multiple, opts)
              .map((l) => `${time} ${l}\n`)
              .join(''),
          );
      });
    } finally {
      screen?.end();
    }
  });
}

// ------------------------------------------------------------------ registration

export function registerDm(program: Command): void {
  const dm = program
    .command('dm')
    .description('drive kernel device-mapper devices like dmsetup (through our own ioctl path, no libdevmapper)')
    .enablePositionalOptions()
    .addHelpText(
      'after',
      `
Output formats follow dmsetup's. On a kernel without device-mapper every
command prints one line and exits 3. Exit status: 0 ok, 2 a wrong request
(bad table, unknown device, refused message, a name in use, a table naming
a device something holds: the line says who), 3 the environment (no
device-mapper, not root, a device still open when removed).

Examples:
  remapsim dm create bad0 --table '0 204800 dust /dev/loop0 0 512'
  remapsim dm message bad0 0 addbadblock 17
  remapsim dm status bad0 --watch 1
  remapsim dm remove --retry bad0`,
    );

  dm.command('create')
    .description('create a device, load its table and activate it (dmsetup create)')
    .argument('<name>', 'device name (/dev/mapper/NAME)')
    .argument('[tablefile]', 'file holding the table; default: --table, else stdin')
    .option('--table <lines>', "the table itself: '<start> <length> <type> <params>', lines separated by newlines")
    .option('-n, --notable', 'create the device without a table (it stays suspended)')
    .option('-r, --readonly', 'the table opens its devices read-only and the device refuses writes')
    .option('-u, --uuid <uuid>', 'device uuid')
    .option('--json', 'print the device info as JSON')
    .action((name: string, file: string | undefined, opts: TableSource & { notable?: boolean; readonly?: boolean; uuid?: string; json?: boolean }) => {
      withControl((ctl) => {
        if (opts.notable && (opts.table !== undefined || file !== undefined)) throw new UsageError('--notable cannot be combined with a table');
        const targets = opts.notable ? undefined : readTable(opts, file);
        let info = ctl.create(name, { uuid: opts.uuid });
        if (targets) {
          try {
            ctl.load(name, targets, { readOnly: opts.readonly });
            info = ctl.resume(name);
          } catch (err) {
            try {
              ctl.remove(name, { retries: 2 });
            } catch {
              // the original error is the one to report
            }
            throw err;
          }
        }
        if (opts.json) json(infoJson(info, undefined));
      });
    });

  dm.command('load')
    .alias('reload')
    .description('load a table into the inactive slot; `resume` makes it live (dmsetup load)')
    .argument('<name>', 'device name')
    .argument('[tablefile]', 'file holding the table; default: --table, else stdin')
    .option('--table <lines>', 'the table itself')
    .option('-r, --readonly', 'open the table devices read-only')
    .action((name: string, file: string | undefined, opts: TableSource & { readonly?: boolean }) => {
      withControl((ctl) => {
        const targets = readTable(opts, file);
        ctl.load(name, targets, { readOnly: opts.readonly });
      });
    });

  dm.command('suspend')
    .description('suspend a device: I/O is queued until resume (dmsetup suspend)')
    .argument('<name>', 'device name')
    .option('--noflush', 'do not flush queued I/O (keep it for after the resume)')
    .option('--nolockfs', 'do not freeze a filesystem on the device')
    .action((name: string, opts: { noflush?: boolean; nolockfs?: boolean }) => {
      withControl((ctl) => ctl.suspend(name, opts));
    });

  dm.command('resume')
    .description('make the inactive table live (if any) and resume I/O (dmsetup resume)')
    .argument('<name>', 'device name')
    .option('--noflush', 'do not flush queued I/O')
    .option('--nolockfs', 'do not thaw a filesystem (pairs with suspend --nolockfs)')
    .action((name: string, opts: { noflush?: boolean; nolockfs?: boolean }) => {
      withControl((ctl) => ctl.resume(name, opts));
    });

  dm.command('remove')
    .description('remove a device (dmsetup remove)')
    .argument('<name>', 'device name')
    .option('--retry', 'retry for about 5 s while the device is busy (EBUSY), as dmsetup --retry')
    .option('--deferred', 'if the device is open, remove it when its last user closes it')
    .action((name: string, opts: { retry?: boolean; deferred?: boolean }) => {
      withControl((ctl) => {
        const r = ctl.remove(name, { retries: opts.retry ? 25 : 0, retryDelayMs: 200, deferred: opts.deferred });
        if (r === 'deferred') process.stderr.write(`remapsim: ${name} is in use: it will be removed when its last user closes it\n`);
      });
    });

  dm.command('clear')
    .description('drop the inactive table (dmsetup clear)')
    .argument('<name>', 'device name')
    .action((name: string) => {
      withControl((ctl) => ctl.clear(name));
    });

  dm.command('status')
    .description("print the targets' status lines, of one device or all (dmsetup status)")
    .argument('[name]', 'device name; default: every device, each line prefixed with "NAME: "')
    .option('--target <type>', 'only lines of this target type')
    .option('--inactive', 'the inactive table instead of the live one')
    .option('--noflush', 'do not flush before collecting status (thin, cache)')
    .option('--json', 'print JSON (with --watch: one object per sample, with its time)')
    .option('--watch <seconds>', `print the status again every S seconds until Ctrl-C: 1, 0.5, 500ms, 2s (${MIN_WATCH_S} s to ${MAX_WATCH_S} s)`)
    .option('--count <n>', 'with --watch: stop after n samples')
    .addHelpText(
      'after',
      `
With --watch, piped output has one line per target and sample, prefixed with
the sample's time (ISO 8601, UTC); a terminal redraws in place. Ctrl-C or
SIGTERM ends it with exit 0.

Examples:
  remapsim dm status bad0
  remapsim dm status bad0 --watch 500ms --count 20 > bad0.log
  remapsim dm status --watch 2 --json | jq .status`,
    )
    .action(async (name: string | undefined, opts: TargetsOptions & { watch?: string; count?: string }) => {
      // bad options are refused before device-mapper is looked at (exit 2, not 3)
      const { intervalMs, count } = parseWatchOptions(opts);
      if (intervalMs === undefined) withControl((ctl) => printTargets(ctl, 'status', name, opts));
      else await withControlAsync((ctl) => watchDmStatus(ctl, name, { ...opts, intervalMs, count }));
    });

  dm.command('table')
    .description('print the table lines, of one device or all (dmsetup table)')
    .argument('[name]', 'device name; default: every device')
    .option('--target <type>', 'only lines of this target type')
    .option('--inactive', 'the inactive table instead of the live one')
    .option('--json', 'print JSON')
    .action((name: string | undefined, opts: { target?: string; inactive?: boolean; json?: boolean }) => {
      withControl((ctl) => printTargets(ctl, 'table', name, opts));
    });

  dm.command('info')
    .description('print the state of one device or all (dmsetup info)')
    .argument('[name]', 'device name; default: every device')
    .option('--json', 'print JSON')
    .action((name: string | undefined, opts: { json?: boolean }) => {
      withControl((ctl) => {
        const { names, multiple } = devicesFor(ctl, name);
        if (multiple && names.length === 0) {
          if (opts.json) json([]);
          else out('No devices found\n');
          return;
        }
        const rows: Array<{ info: DmDeviceInfo; readAhead: number | undefined }> = [];
        forEachDevice(names, multiple, (n) => {
          const info = ctl.info(n);
          rows.push({ info, readAhead: readAheadSectors(info) });
        });
        if (opts.json) {
          const objs = rows.map((r) => infoJson(r.info, r.readAhead));
          json(multiple ? objs : objs[0]);
          return;
        }
        out(rows.map((r) => formatDmInfo(r.info, r.readAhead)).join(''));
      });
    });

  dm.command('deps')
    .description('print the devices a table uses (dmsetup deps)')
    .argument('[name]', 'device name; default: every device')
    .option('--inactive', 'the inactive table instead of the live one')
    .option('--json', 'print JSON')
    .action((name: string | undefined, opts: { inactive?: boolean; json?: boolean }) => {
      withControl((ctl) => {
        const { names, multiple } = devicesFor(ctl, name);
        if (multiple && names.length === 0) {
          if (opts.json) json([]);
          else out('No devices found\n');
          return;
        }
        const rows: Array<{ name: string; deps: Array<{ major: number; minor: number }> }> = [];
        forEachDevice(names, multiple, (n) => rows.push({ name: n, deps: ctl.deps(n, { inactive: opts.inactive }) }));
        if (opts.json) {
          json(multiple ? rows : rows[0]);
          return;
        }
        out(rows.map((r) => `${multiple ? `${r.name}: ` : ''}${formatDmDeps(r.deps)}\n`).join(''));
      });
    });

  dm.command('message')
    .description('send a message to the target at SECTOR and print its reply (dmsetup message)')
    .argument('<name>', 'device name')
    .argument('<sector>', 'a sector inside the target to address (0 for single-target tables)')
    .argument('<message...>', 'the message words, passed on as given (options must come before NAME)')
    .option('--json', 'print {"reply": ...} as JSON (null: the target sent no reply)')
    .passThroughOptions()
    .addHelpText(
      'after',
      `
A target that sends no reply (the kernel did not set DM_DATA_OUT_FLAG; the
dm-remap-v4 module never does) gets one line on stderr saying so, exit 0.

Examples:
  remapsim dm message bad0 0 addbadblock 17
  remapsim dm message bad0 0 listbadblocks
  remapsim dm message --json bad0 0 countbadblocks`,
    )
    .action((name: string, sectorText: string, words: string[], opts: { json?: boolean }) => {
      withControl((ctl) => {
        const sector = parseSector(sectorText);
        printMessageReply(ctl.messageReply(name, sector, words.join(' ')), opts.json === true, 'dm message');
      });
    });

  dm.command('ls')
    .description('list devices: "NAME\\t(MAJOR:MINOR)" (dmsetup ls)')
    .option('--target <type>', 'only devices whose live table has a target of this type; printed "NAME\\t(MAJOR, MINOR)" as dmsetup does')
    .option('--json', 'print JSON')
    .action((opts: { target?: string; json?: boolean }) => {
      withControl((ctl) => {
        const devices = ctl.listDevices();
        let shown: DmListedDevice[] = devices;
        if (opts.target !== undefined) {
          shown = [];
          forEachDevice(
            devices.map((d) => d.name),
            true,
            (n) => {
              if (ctl.status(n).some((t) => t.type === opts.target)) shown.push(devices.find((d) => d.name === n)!);
            },
          );
        }
        if (opts.json) {
          json(shown);
          return;
        }
        if (devices.length === 0) {
          out('No devices found\n');
          return;
        }
        out(shown.map((d) => (opts.target === undefined ? `${d.name}\t(${d.major}:${d.minor})\n` : `${d.name}\t(${d.major}, ${d.minor})\n`)).join(''));
      });
    });

  dm.command('targets')
    .description('list the loaded target types and their versions (dmsetup targets)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      withControl((ctl) => {
        const targets = ctl.listTargets();
        if (opts.json) json(targets.map((t) => ({ name: t.name, version: t.version.join('.') })));
        else out(targets.map((t) => `${formatDmTarget(t)}\n`).join(''));
      });
    });

  dm.command('version')
    .description("print our version and the kernel driver's ioctl interface version (dmsetup version)")
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      withControl((ctl) => {
        const driver = ctl.version().join('.');
        // the program's own version (set by buildProgram from package.json)
        const library = `remapsim ${program.version() ?? 'unknown'}`;
        if (opts.json) json({ library, driver });
        else out(`Library version:   ${library}\nDriver version:    ${driver}\n`);
      });
    });
}
