/**
 * `remapsim loop attach|detach|ls`: loop devices through our own ioctl path
 * (src/kernel/loop.ts), shaped like `losetup --find --show`, `losetup -d` and
 * `losetup --list`.
 */
import type { Command } from 'commander';
import { attachLoop, detachLoop, listLoops, loopDeviceInfo, type LoopDeviceInfo } from '../../kernel/loop.js';
import { UsageError } from '../../util/errors.js';

const UNITS: Record<string, number> = { '': 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tib: 1024 ** 4 };

/** "4096", "64K", "1MiB", "2g" -> bytes (binary units). */
export function parseByteSize(text: string, option: string): number {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new UsageError(`${option} must be a whole number of bytes, optionally with a K, M, G or T (binary) suffix, got '${text}'`);
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${option} ${text} is out of range 0..${Number.MAX_SAFE_INTEGER} bytes`);
  return n;
}

/** `losetup --list` columns: NAME SIZELIMIT OFFSET AUTOCLEAR RO BACK-FILE DIO LOG-SEC. */
export function formatLoopList(devices: readonly LoopDeviceInfo[]): string {
  if (devices.length === 0) return '';
  const head = ['NAME', 'SIZELIMIT', 'OFFSET', 'AUTOCLEAR', 'RO', 'BACK-FILE', 'DIO', 'LOG-SEC'];
  const right = [false, true, true, true, true, false, true, true];
  const rows = devices.map((d) => [
    d.device,
    String(d.sizeLimit),
    String(d.offset),
    d.autoclear ? '1' : '0',
    d.readOnly ? '1' : '0',
    d.backingFile,
    d.dio ? '1' : '0',
    String(d.logicalBlockSize),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]) : i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join(' ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

interface AttachOpts {
  readOnly?: boolean;
  directIo?: boolean;
  blockSize?: string;
  offset?: string;
  sizelimit?: string;
  autoclear?: boolean;
  partscan?: boolean;
  json?: boolean;
}

export function registerLoop(program: Command): void {
  const loop = program
    .command('loop')
    .description('attach, detach and list loop devices (like losetup, through our own ioctl path)')
    .addHelpText(
      'after',
      `
Examples:
  remapsim loop attach /var/tmp/main.img --block-size 4096 --direct-io
  remapsim loop ls
  remapsim loop detach /dev/loop3
Exit status: 0 ok, 2 a wrong request (no such file, bad option value, not
attached), 3 the environment (no loop driver, not root).`,
    );

  loop
    .command('attach')
    .description('attach FILE to the first free loop device and print its path (losetup --find --show)')
    .argument('<file>', 'backing file (or block device)')
    .option('-r, --read-only', 'read-only device (the file is opened read-only)')
    .option(
      '--direct-io',
      'direct I/O to the backing file; the kernel quietly goes without it where the file system or alignment does not allow it (see `loop ls`, column DIO)',
    )
    .option('-b, --block-size <bytes>', 'logical block size: a power of two, 512..65536 (the kernel may cap it at the page size)')
    .option('-o, --offset <bytes>', 'start this many bytes into the file (K, M, G suffixes allowed)')
    .option('--sizelimit <bytes>', 'expose at most this many bytes (0: up to the end of the file)')
    .option(
      '--autoclear',
      'the kernel detaches the device when its last user closes it; remapsim itself closes it on exit, so the device survives only if another process holds it open by then',
    )
    .option('-P, --partscan', 'scan the device for partitions')
    .option('--json', 'print the attached device as JSON (the `loop ls --json` fields)')
    .action((file: string, opts: AttachOpts) => {
      const blockSize = opts.blockSize === undefined ? undefined : parseByteSize(opts.blockSize, '--block-size');
      const offset = opts.offset === undefined ? undefined : parseByteSize(opts.offset, '--offset');
      const sizeLimit = opts.sizelimit === undefined ? undefined : parseByteSize(opts.sizelimit, '--sizelimit');
      const att = attachLoop(file, {
        readOnly: opts.readOnly,
        direct: opts.directIo,
        blockSize,
        offset,
        sizeLimit,
        autoclear: opts.autoclear,
        partscan: opts.partscan,
      });
      const info = loopDeviceInfo(att.number);
      // An autoclear attachment keeps the device open until release(), which closes it (and the kernel may detach it then);
      // any other attachment holds nothing open, and release() would detach it.
      if (opts.autoclear) att.release();
      if (opts.json) process.stdout.write(`${JSON.stringify(info ?? { device: att.device, number: att.number, backingFile: att.backingFile })}\n`);
      else process.stdout.write(`${att.device}\n`);
      if (opts.autoclear && loopDeviceInfo(att.number) === undefined) {
        process.stderr.write(
          `remapsim: note: ${att.device} was attached with --autoclear and nothing else held it open, so the kernel detached it again when remapsim closed it\n`,
        );
      }
    });

  loop
    .command('detach')
    .description('detach loop devices (losetup -d)')
    .argument('<devices...>', '/dev/loopN (or loopN, or N)')
    .action((devices: string[]) => {
      for (const d of devices) {
        const r = detachLoop(d);
        if (r === 'deferred') process.stderr.write(`remapsim: ${d} is in use: the kernel detaches it when its last user closes it\n`);
      }
    });

  loop
    .command('ls')
    .description('list attached loop devices (losetup --list)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const devices = listLoops();
      if (opts.json) process.stdout.write(`${JSON.stringify(devices)}\n`);
      else process.stdout.write(formatLoopList(devices));
    });
}
