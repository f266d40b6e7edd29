/**
 * Where the status view reads from: a ControlTarget in this process (the
 * model), a served model's control socket, or a kernel dm device. Each
 * sample is the status text plus what the status line leaves out: the table
 * line (read once: flakey's intervals, dust's block size) and, for dust, the
 * bad-block count (`countbadblocks`, a read-only message).
 */
import type { ControlTarget } from '../control/target.js';
import { DmControl, DmDeviceTarget } from '../kernel/dm-control.js';
import { type ControlRequest, type ControlResponse, controlRequest } from '../nbd/control-socket.js';
import { parseDustCount } from './parse.js';

export interface StatusSnapshot {
  /** When the sample was taken. */
  time: Date;
  /** The status text: one line per target of the device. */
  status: string;
  /** The table text, when known. */
  table?: string;
  /** Bad blocks a dust target lists (from `countbadblocks`). */
  dustBadBlocks?: number;
}

export interface StatusSource {
  /** What the view calls the device. */
  readonly label: string;
  /** The layer the samples are of (a served model's `--layer`); metrics label them with it, else with `label`. */
  readonly layer?: string;
  read(): Promise<StatusSnapshot>;
  /** The whole OpenMetrics exposition, where the source keeps its own (a served model: every layer, its I/O and connections). */
  metrics?(): Promise<string>;
  close(): void;
}

export class StatusSourceError extends Error {
  override readonly name = 'StatusSourceError';
}

const typeOf = (line: string): string => line.trim().split(/\s+/)[2] ?? '';

/** Reads through a ControlTarget's verbs (the model in this process, or a kernel DmDeviceTarget). */
export function controlTargetSource(target: ControlTarget, label: string, opts: { now?: () => Date; close?: () => void } = {}): StatusSource {
  let table: string | undefined;
  return {
    label,
    async read() {
      table ??= target.table();
      const status = target.status();
      const snap: StatusSnapshot = { time: (opts.now ?? (() => new Date()))(), status, table };
      if (typeOf(status) === 'dust') {
        try {
          snap.dustBadBlocks = parseDustCount(target.message(['countbadblocks']));
        } catch {
          // older kernels log the count instead of returning it: leave it out
        }
      }
      return snap;
    },
    close: () => opts.close?.(),
  };
}

/** A kernel device-mapper device by name (needs /dev/mapper/control). */
export function kernelSource(name: string, opts: { now?: () => Date } = {}): StatusSource {
  const ctl = DmControl.open();
  try {
    return controlTargetSource(new DmDeviceTarget(ctl, name), name, { now: opts.now, close: () => ctl.close() });
  } catch (err) {
    ctl.close();
    throw err;
  }
}

/** A served model through its control socket; `layer` picks a layer of the stack (default the top). */
export function servedSource(controlPath: string, opts: { layer?: string; label?: string; now?: () => Date } = {}): StatusSource {
  const result = async (req: ControlRequest): Promise<string> => {
    const r: ControlResponse = await controlRequest(controlPath, req);
    if (!r.ok) throw new StatusSourceError(`${controlPath}: ${r.error}`);
    if (!('result' in r)) throw new StatusSourceError(`${controlPath}: unexpected answer to '${req.op}'`);
    return r.result;
  };
  let table: string | undefined;
  return {
    label: opts.label ?? (opts.layer ? `${controlPath} ${opts.layer}` : controlPath),
    layer: opts.layer,
    // one layer: its status line as metrics; the whole stack: the server's own exposition
    metrics: opts.layer === undefined ? () => result({ op: 'metrics' }) : undefined,
    async read() {
      table ??= await result({ op: 'table', layer: opts.layer });
      const status = await result({ op: 'status', layer: opts.layer });
      const snap: StatusSnapshot = { time: (opts.now ?? (() => new Date()))(), status, table };
      if (typeOf(status) === 'dust') {
        try {
          snap.dustBadBlocks = parseDustCount(await result({ op: 'message', layer: opts.layer, args: ['countbadblocks'] }));
        } catch {
          // a layer that refuses the message: no count
        }
      }
      return snap;
    },
    close: () => undefined,
  };
}
