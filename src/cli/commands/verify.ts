import type { Command } from 'commander';
import { FileDevice } from '../../block/file-device.js';
import { openTargetSpec } from '../target-spec.js';
import { loadScenario } from '../../scenario/load.js';
import { Oracle, READ_CLASSES } from '../../workload/oracle.js';
import { makeUnitPattern } from '../../workload/unit-pattern.js';
import { loadVerifyState } from '../../workload/verify-state-file.js';
import { EXIT_FINDINGS, EXIT_OK, UsageError } from '../../util/errors.js';
import { addKnownBadOptions, type KnownBadCliOptions, resolveKnownBad } from '../known-bad-options.js';

interface VerifyOptions extends KnownBadCliOptions {
  state: string;
  target: string;
  json?: boolean;
  direct?: boolean;
}

const LABEL: Record<string, string> = {
  ok: 'ok (a generation from the newest durable one on)',
  stale: 'stale (an older generation than the newest durable one)',
  lost: 'lost (zeroes where durable data was, or a write the kernel failed to write back)',
  corrupt: 'corrupt',
  expectedError: 'expected read errors (known-bad sectors)',
  unexpectedError: 'unexpected read errors',
  unjudged: 'unjudged (the last write failed)',
};

export function registerVerify(program: Command): void {
  const cmd = program
    .command('verify')
    .description("check a file or device against an oracle state saved by 'bench --verify-state' or 'run --verify-state' (after a crash, a kill or a reboot)")
    .requiredOption('--state <file>', 'the verify-state file the run saved')
    .requiredOption('--target <spec>', 'what the run wrote to: file:PATH, dev:PATH, a path, or table:LINE (a model over files, reopened as after a crash)')
    .option('--json', 'print the result as JSON')
    .option('--direct', 'O_DIRECT reads, past the page cache (default for block devices)')
    .option('--no-direct', 'buffered reads (default for regular files)');
  addKnownBadOptions(cmd).addHelpText(
    'after',
    `
Reads back every unit the state says the run wrote and judges it by the rules
after a crash: a unit may hold any generation from the newest one known
durable (acknowledged before a flush that completed) on; a newer one was
written after the state was saved. Classes: ok, stale (an older intact
generation than the newest durable), lost (zeroes where durable data was, or
a unit whose writeback the run saw fail and that did not make it), corrupt
(another unit's data, foreign bytes, a bad checksum), read errors (expected
over --stack-state / --known-bad sectors), unjudged (the last write failed).
Where nothing was durable yet, what the unit held before the run is fine too.
Nothing is written.

Exit status: 0 every unit is acceptable; 1 findings (stale, lost, corrupt,
unexpected read errors); 2 bad input (a state file that is damaged, truncated
or not one, a target of another size).

Examples:
  remapsim bench --rw randwrite --bs 4k --size 64M --verify crc32c --fsync 32 --runtime 60 --time_based \\
      --target dev:/dev/loop3 --verify-state /var/tmp/v.state      # killed, or the machine rebooted
  remapsim verify --state /var/tmp/v.state --target dev:/dev/loop3
  remapsim verify --state /var/tmp/v.state --target /var/tmp/t.img --json`,
  );
  cmd.action((opts: VerifyOptions) => {
    const state = loadVerifyState(opts.state);
    if (/^scenario:/.test(opts.target)) {
      const file = opts.target.slice('scenario:'.length);
      const sc = file === 'default' ? undefined : loadScenario(file);
      if (sc?.devices.main.path === undefined || sc.devices.spare.path === undefined) {
        throw new UsageError(
          "--target: a scenario's model is built anew on new files; give one whose devices.main.path and devices.spare.path name the files the run wrote, or the files themselves (file:PATH, table:'0 <sectors> remap <main> <spare>')",
        );
      }
    }
    const target = openTargetSpec(opts.target, { readOnly: true, directForBlockDevices: opts.direct ?? true, direct: opts.direct ?? false });
    try {
      const device = target.device;
      const end = state.baseSector + (state.units * state.unitSize) / 512;
      if (device.sectors !== state.target.sectors) {
        throw new UsageError(
          `--target: ${target.description} has ${device.sectors} sectors; the state was saved for ${state.target.description} of ${state.target.sectors} sectors (region ends at sector ${end})`,
        );
      }
      if (state.unitSize % device.logicalBlockSize !== 0) {
        throw new UsageError(
          `--target: ${target.description} has ${device.logicalBlockSize}-byte logical blocks; the state's ${state.unitSize}-byte units are not whole blocks`,
        );
      }
      const knownBad = resolveKnownBad(opts, {
        path: device instanceof FileDevice ? device.name : undefined,
        sectors: device.sectors,
        description: target.description,
      });
      const oracle = Oracle.restore({
        pattern: makeUnitPattern({
          unitSize: state.unitSize,
          runId: state.runId,
          seed: state.seed,
          algorithm: state.algorithm,
          baseOffsetBytes: state.baseSector * 512,
        }),
        units: state.units,
        baseSector: state.baseSector,
        saved: state.saved,
        isKnownBad: target.built ? (s, n) => target.built!.isKnownBad(s, n) : undefined,
        knownBad: knownBad.set,
        priorContent: state.priorContent,
      });
      oracle.finalPass(device);
      const r = oracle.report();
      const durable = countDurable(state.saved.durable);
      const info = {
        state: {
          file: opts.state,
          runId: state.runId,
          unitSize: state.unitSize,
          baseSector: state.baseSector,
          units: state.units,
          savedAt: new Date(state.savedAtMs).toISOString(),
          complete: state.complete,
          flushes: state.flushes,
          failedFlushes: state.failedFlushes,
          target: state.target.description,
          written: state.saved.unit.length,
          durable,
        },
        target: target.description,
        direct: device instanceof FileDevice ? device.direct : false,
        reads: Object.fromEntries(READ_CLASSES.filter((c) => c !== 'notWritten').map((c) => [c, r.reads[c]])),
        first: Object.fromEntries(READ_CLASSES.filter((c) => c !== 'notWritten' && c !== 'ok').map((c) => [c, r.first[c]])),
        corruptReasons: r.corruptReasons,
        knownBad: knownBad.sources,
        findings: r.findings,
      };
      if (opts.json) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      else {
        const out: string[] = [];
        out.push(
          `state: ${opts.state}: run ${state.runId.toString(16).padStart(8, '0')}, ${state.units} units of ${state.unitSize} bytes from sector ${state.baseSector}, saved ${info.state.savedAt} ${state.complete ? 'at the end of the run' : 'mid-run (the run did not end after it)'}`,
        );
        out.push(
          `  ${state.saved.unit.length} units written, ${durable} with a durable generation; ${state.flushes} flushes completed (${state.failedFlushes} failed)`,
        );
        out.push(`target: ${target.description} (${info.direct ? 'direct I/O' : 'buffered I/O'})`);
        for (const src of knownBad.sources) out.push(`known bad: ${src}`);
        out.push(`checked ${state.saved.unit.length} units:`);
        for (const c of READ_CLASSES) {
          if (c === 'notWritten' || (c !== 'ok' && r.reads[c] === 0)) continue;
          const first =
            c !== 'ok' && r.first[c].length > 0 ? `   first sectors: ${r.first[c].slice(0, 8).join(' ')}${r.first[c].length > 8 ? ' ...' : ''}` : '';
          out.push(`  ${String(r.reads[c]).padStart(10)}  ${LABEL[c]}${first}`);
        }
        const reasons = Object.entries(r.corruptReasons);
        if (reasons.length > 0) out.push(`  corrupt because: ${reasons.map(([k, n]) => `${k} ${n}`).join(', ')}`);
        out.push(
          r.findings === 0
            ? 'verdict: every unit holds data the run may have left'
            : `verdict: ${r.findings} units lost, stale or corrupt, or unreadable without cause`,
        );
        process.stdout.write(`${out.join('\n')}\n`);
      }
      process.exitCode = r.findings > 0 ? EXIT_FINDINGS : EXIT_OK;
    } finally {
      target.close();
    }
  });
}

function countDurable(durable: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < durable.length; i++) if (durable[i] > 0) n++;
  return n;
}
