/**
 * `remapsim status|table|message TARGET ...`: the dmsetup verbs, for a served
 * model (TARGET = its NBD socket path, or the control socket itself) and for a
 * kernel dm device (TARGET = its name) alike.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { MessageError } from '../../control/target.js';
import { DmControl, DmDeviceTarget } from '../../kernel/dm-control.js';
import { ControlConnectError, type ControlRequest, type ControlResponse, controlPathFor, controlRequest } from '../../nbd/control-socket.js';
import { UsageError } from '../../util/errors.js';
import { printMessageReply } from './dm.js';
import { addStatusViewOptions, parseStatusViewOptions, runStatusView, type StatusViewOptions, wantsStatusView } from '../status.js';
import { fieldRecord, parseStatusLine } from '../../status/parse.js';
import { kernelSource, servedSource } from '../../status/sources.js';

type Resolved = { kind: 'served'; control: string } | { kind: 'kernel'; name: string };

function isSocket(p: string): boolean {
  try {
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
}

/** A path (or an existing socket in the current directory) is a served model; anything else is a dm device name. */
export function resolveTarget(target: string): Resolved {
  if (target === '') throw new UsageError('TARGET must be a socket path or a device-mapper device name, got an empty string');
  const ctl = controlPathFor(target);
  if (isSocket(ctl)) return { kind: 'served', control: ctl };
  if (isSocket(target)) return { kind: 'served', control: target };
  if (target.includes('/')) {
    throw new UsageError(`${target}: no such socket, and no control socket ${ctl} (is remapsim serve running?)`);
  }
  return { kind: 'kernel', name: target };
}

interface VerbOptions extends StatusViewOptions {
  layer?: string;
  json?: boolean;
  all?: boolean;
}

async function ask(control: string, req: ControlRequest): Promise<Extract<ControlResponse, { ok: true }>> {
  let r: ControlResponse;
  try {
    r = await controlRequest(control, req);
  } catch (err) {
    if (err instanceof ControlConnectError) throw new UsageError(err.message);
    throw err;
  }
  if (!r.ok) {
    if (r.kind === 'MessageError' || r.kind === 'TableError') throw new MessageError(r.error, r.errno);
    throw new UsageError(r.error);
  }
  return r;
}

async function servedResult(control: string, op: 'status' | 'table', layer: string | undefined): Promise<{ layer: string; result: string }> {
  const r = await ask(control, { op, layer });
  if (!('result' in r)) throw new UsageError(`${control}: unexpected answer to '${op}'`);
  return { layer: r.layer, result: r.result };
}

async function servedLayers(control: string): Promise<string[]> {
  const r = await ask(control, { op: 'layers' });
  if (!('layers' in r)) throw new UsageError(`${control}: unexpected answer to 'layers'`);
  return r.layers.map((l) => l.name);
}

function kernelTarget(name: string, opts: VerbOptions): { target: DmDeviceTarget; close(): void } {
  if (opts.layer !== undefined || opts.all) {
    throw new UsageError(
      `--layer and --all address the layers of a served model; '${name}' is a device-mapper device (stack dm devices and name each one instead)`,
    );
  }
  const ctl = DmControl.open();
  try {
    return { target: new DmDeviceTarget(ctl, name), close: () => ctl.close() };
  } catch (err) {
    ctl.close();
    throw err;
  }
}

function printLines(opts: VerbOptions, rows: Array<{ layer?: string; line: string }>, parse: boolean): void {
  if (opts.json) {
    const out = rows.map((r) => {
      const lines = r.line.split('\n').filter((l) => l.trim() !== '');
      const parsed = parse ? lines.map((l) => fieldRecord(parseStatusLine(l))) : undefined;
      return { ...(r.layer !== undefined ? { layer: r.layer } : {}), line: r.line, ...(parsed ? { parsed: parsed.length === 1 ? parsed[0] : parsed } : {}) };
    });
    process.stdout.write(`${JSON.stringify(opts.all ? out : out[0])}\n`);
    return;
  }
  for (const r of rows) process.stdout.write(opts.all ? `${r.layer}: ${r.line}\n` : `${r.line}\n`);
}

async function statusOrTable(op: 'status' | 'table', targetArg: string, opts: VerbOptions): Promise<void> {
  const t = resolveTarget(targetArg);
  if (t.kind === 'kernel') {
    const k = kernelTarget(t.name, opts);
    try {
      printLines(opts, [{ line: op === 'status' ? k.target.status() : k.target.table() }], op === 'status');
    } finally {
      k.close();
    }
    return;
  }
  const names = opts.all ? await servedLayers(t.control) : [opts.layer];
  const rows: Array<{ layer?: string; line: string }> = [];
  for (const n of names) {
    const r = await servedResult(t.control, op, n);
    rows.push({ layer: r.layer, line: r.result });
  }
  printLines(opts, rows, op === 'status');
}

const TARGET_HELP = 'a served model (the socket path given to `remapsim serve --socket`, or its .ctl control socket) or a device-mapper device name';

/** `status --watch/--count/--format`: the named-field view of one target, sampled until Ctrl-C. */
async function statusView(targetArg: string, opts: VerbOptions): Promise<void> {
  if (opts.all || opts.json)
    throw new UsageError('--watch, --count and --format show one target: pick a layer with --layer instead of --all, and use --format json instead of --json');
  parseStatusViewOptions(opts); // bad options are refused before the target is looked at (exit 2, as `dm status`)
  const t = resolveTarget(targetArg);
  if (t.kind === 'kernel' && opts.layer !== undefined) {
    throw new UsageError(`--layer addresses the layers of a served model; '${t.name}' is a device-mapper device (stack dm devices and name each one instead)`);
  }
  const source =
    t.kind === 'kernel' ? kernelSource(t.name) : servedSource(t.control, { layer: opts.layer, label: opts.layer ? `${targetArg} ${opts.layer}` : targetArg });
  await runStatusView(source, opts);
}

export function registerTargetControl(program: Command): void {
  const status = program
    .command('status')
    .description('print the status line of a served model (or one of its layers) or of a kernel dm device, as dmsetup status does')
    .argument('<target>', TARGET_HELP)
    .option('--layer <name>', "a layer of the served stack (e.g. main.dust; default: the top, 'target')")
    .option('--all', 'every layer of the served stack, one line each')
    .option('--json', 'print JSON, with the status parsed into named fields where remapsim knows the target type')
    .addHelpText(
      'after',
      `
Examples:
  remapsim status /tmp/model.sock
  remapsim status /tmp/model.sock --layer main.dust
  remapsim status /tmp/model.sock --all --json
  remapsim status mydev            (a kernel device-mapper device)
  remapsim status mydev --watch 1                   (every field named, redrawn each second)
  remapsim status /tmp/model.sock --watch 2 --format csv > status.csv
  remapsim status mydev --watch 500ms --count 10 --format json

Exit status (the same as \`remapsim dm status\` for a kernel device): 0 ok,
2 bad arguments or no such device, 3 no device-mapper.`,
    );
  addStatusViewOptions(status).action((target: string, opts: VerbOptions) =>
    wantsStatusView(opts) ? statusView(target, opts) : statusOrTable('status', target, opts),
  );

  program
    .command('table')
    .description('print the table line of a served model (or one of its layers) or of a kernel dm device, as dmsetup table does')
    .argument('<target>', TARGET_HELP)
    .option('--layer <name>', "a layer of the served stack (default: the top, 'target')")
    .option('--all', 'every layer of the served stack, one line each')
    .option('--json', 'print JSON')
    .action((target: string, opts: VerbOptions) => statusOrTable('table', target, opts));

  program
    .command('message')
    .description('send a target message to a served model (or one of its layers) or to a kernel dm device, as dmsetup message <dev> 0 does')
    .argument('<target>', TARGET_HELP)
    .argument('<words...>', 'the message, e.g. addbadblock 123 1')
    .option('--layer <name>', "a layer of the served stack (e.g. main.dust; default: the top, 'target')")
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  remapsim message /tmp/model.sock --layer main.dust addbadblock 123 2
  remapsim message /tmp/model.sock --layer main.dust listbadblocks
  remapsim message /tmp/model.sock stats
  remapsim message mydev countbadblocks      (a kernel device-mapper device)

A kernel target that sends no reply (DM_DATA_OUT_FLAG not set; the dm-remap-v4
module never sets it) gets one line on stderr saying so ({"reply":null} with
--json), exit 0.
Exit status: 0 done, 2 the target refused the message or there is no such
device (the reason is printed), 3 no device-mapper.`,
    )
    .action(async (targetArg: string, words: string[], opts: VerbOptions) => {
      const t = resolveTarget(targetArg);
      if (t.kind === 'kernel') {
        const k = kernelTarget(t.name, opts);
        try {
          printMessageReply(k.target.messageReply(words), opts.json === true, 'message');
        } finally {
          k.close();
        }
        return;
      }
      const r = await ask(t.control, { op: 'message', args: words, layer: opts.layer });
      if (!('result' in r)) throw new UsageError(`${t.control}: unexpected answer to 'message'`);
      // the model answers every message it takes ('' when it has nothing to say)
      printMessageReply({ text: r.result, replied: true }, opts.json === true, 'message', { layer: r.layer });
    });
}
