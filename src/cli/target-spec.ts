/**
 * Where `remapsim bench` runs its jobs, from a --target spec:
 *   file:PATH        a regular file (created sparse at the jobs' size when missing)
 *   dev:PATH         a block device (/dev/loopN, /dev/mapper/NAME)
 *   table:LINE       a model built from a table line ('0 409600 remap /a.img /b.img')
 *   scenario:FILE    a scenario's model (its devices, faults and policy; not its jobs)
 *   scenario:default the built-in scenario's model
 *   PATH             a file or block device, whichever it is
 */
import * as fs from 'node:fs';
import type { BlockDevice } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import type { ControlTarget } from '../control/target.js';
import { openTarget } from '../stack/table.js';
import { UsageError } from '../util/errors.js';
import { createSparseFile, growFile } from '../block/sparse-file.js';
import type { Clock } from '../util/clock.js';
import { DEFAULT_SCENARIO } from '../scenario/default.js';
import { type BuiltScenario, buildScenario } from '../scenario/build.js';
import { loadScenario } from '../scenario/load.js';
import { type RemapSummary, remapSummary } from '../scenario/run.js';
import { type Policy, validateScenario } from '../scenario/schema.js';
import type { PriorContent } from '../workload/oracle.js';

export interface OpenedTarget {
  device: BlockDevice & Partial<ControlTarget>;
  description: string;
  /** For a scenario's model: its fault growth and known-bad sectors. */
  built?: BuiltScenario;
  /** What the target held before: zeroes when this call created its backing files, else unknown (see OracleOptions.priorContent). */
  priorContent: PriorContent;
  close(): void;
  remapSummary?(): RemapSummary;
}

export interface TargetSpecOptions {
  /** Open files and devices with O_DIRECT. */
  direct?: boolean;
  /** Size to create a missing file with (bytes); the file must exist when undefined. */
  createBytes?: number;
  policy?: Policy;
  clock?: Clock;
  /** Files and devices only: open read-only (nothing is created either). */
  readOnly?: boolean;
  /** Files and devices only: O_DIRECT when the target is a block device (overrides `direct` there). */
  directForBlockDevices?: boolean;
}

export function openTargetSpec(spec: string, opts: TargetSpecOptions = {}): OpenedTarget {
  const colon = spec.indexOf(':');
  const kind = colon > 0 && !spec.startsWith('/') ? spec.slice(0, colon) : 'path';
  const rest = kind === 'path' ? spec : spec.slice(colon + 1);
  if (rest.length === 0) throw new UsageError(`--target: '${spec}' names nothing after '${kind}:'`);
  switch (kind) {
    case 'file':
    case 'dev':
    case 'path': {
      let created = false;
      if (!fs.existsSync(rest)) {
        if (kind === 'dev') throw new UsageError(`--target: ${rest}: no such device`);
        if (opts.readOnly) throw new UsageError(`--target: ${rest} does not exist`);
        if (opts.createBytes === undefined) throw new UsageError(`--target: ${rest} does not exist; give the jobs a size (--size) to create it`);
        createSparseFile(rest, opts.createBytes, '--target');
        created = true;
      }
      const st = fs.statSync(rest);
      if (kind === 'dev' && !st.isBlockDevice()) throw new UsageError(`--target: ${rest} is not a block device (use file:${rest})`);
      if (kind === 'file' && !st.isFile()) throw new UsageError(`--target: ${rest} is not a regular file (use dev:${rest})`);
      if (st.isFile() && !opts.readOnly && opts.createBytes !== undefined && st.size < opts.createBytes) growFile(rest, opts.createBytes, '--target');
      const direct = st.isBlockDevice() && opts.directForBlockDevices !== undefined ? opts.directForBlockDevices : opts.direct;
      const device = FileDevice.open(rest, { direct, readOnly: opts.readOnly, exclusive: !opts.readOnly });
      return {
        device,
        description: `${device.isBlockDevice ? 'block device' : 'file'} ${rest}`,
        priorContent: created ? 'zeroes' : 'unknown',
        close: () => device.close(),
      };
    }
    case 'table': {
      const device = openTarget(rest, { clock: opts.clock });
      return { device, description: `model: ${device.table()}`, priorContent: 'unknown', close: () => device.close() };
    }
    case 'scenario': {
      const scenario = rest === 'default' ? validateScenario(DEFAULT_SCENARIO, 'default scenario') : loadScenario(rest);
      const built = buildScenario(scenario, { policy: opts.policy, clock: opts.clock });
      const initialBad = built.mainDust?.listBadBlocks().length ?? 0;
      return {
        device: built.target,
        description: `model of scenario '${scenario.name}', policy ${built.policy}`,
        built,
        priorContent: built.priorContent,
        close: () => built.close(),
        remapSummary: () => remapSummary(built, initialBad),
      };
    }
    default:
      throw new UsageError(`--target: unknown kind '${kind}' in '${spec}' (file:PATH, dev:PATH, table:LINE, scenario:FILE, or a path)`);
  }
}
