/**
 * remapsim inspect | repair | export | import: the remap metadata on a spare,
 * in either format (remapsim's safe format or the dm-remap-v4 module's),
 * detected automatically.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import type { BlockDevice } from '../../block/device.js';
import { FileDevice } from '../../block/file-device.js';
import { V4_COPY_SECTORS, chooseBestCopy } from '../../metadata/dm-remap-v4.js';
import { MetadataFormatError } from '../../metadata/errors.js';
import {
  type Inspection,
  type SafeInspection,
  type V4Inspection,
  inspectSafe,
  inspectSpare,
  inspectV4,
  inspectionClean,
  type BlockState,
} from '../../metadata/inspect.js';
import { deviceIdentity, safeFingerprint } from '../../stack/models.js';
import { describeContent, probeSpare } from '../../metadata/probe.js';
import type { DeviceFingerprint } from '../../metadata/safe-format.js';
import { MetadataIoError, SafeMetadataStore } from '../../metadata/safe-store.js';
import { describeRepairAction, imageFingerprint, readSafeImage, replayImage } from '../../metadata/safe-image.js';
import {
  type SafeTableJson,
  type V4TableJson,
  parseTableJson,
  safeJsonToState,
  safeTableToJson,
  v4JsonToMetadata,
  v4TableToJson,
} from '../../metadata/table-json.js';
import { readV4Copies, v4CopySectors, writeV4Copies } from '../../metadata/v4-store.js';
import { EXIT_FINDINGS, UsageError } from '../../util/errors.js';
import { noteWriterHolding } from '../writer-note.js';

const SHOWN_ENTRIES = 20;

interface MainOpts {
  main?: string;
  identity?: string;
}

/** The fingerprint of --main (with --identity, or the device's own identity), or undefined. */
function mainFingerprint(opts: MainOpts): DeviceFingerprint | undefined {
  if (opts.main === undefined) {
    if (opts.identity !== undefined) throw new UsageError('--identity needs --main <path>');
    return undefined;
  }
  const dev = FileDevice.open(opts.main, { readOnly: true, direct: 'block' });
  try {
    return safeFingerprint(dev, opts.identity ?? deviceIdentity(opts.main));
  } finally {
    dev.close();
  }
}

/**
 * A block device is opened with O_DIRECT: the kernel target writes its
 * metadata with bios straight to the device, which the device's page cache
 * does not see, so a buffered read of /dev/loopN (or of a dm device) while a
 * table holds it open can return stale or blank copies. A writer (repair
 * --write, import) claims the spare as a served model does, so it is refused
 * while one runs; a reader says when one does.
 */
function withSpare<T>(path: string, readOnly: boolean, fn: (spare: FileDevice) => T): T {
  const spare = FileDevice.open(path, { readOnly, direct: 'block', exclusive: !readOnly });
  if (readOnly) {
    noteWriterHolding(
      spare,
      'its metadata may change while this reads it: what follows may be older than the table it serves, and a copy it is writing may show as torn or stale',
    );
  }
  try {
    return fn(spare);
  } catch (err) {
    if (err instanceof MetadataIoError) throw new UsageError(err.message, EXIT_FINDINGS);
    throw err;
  } finally {
    spare.close();
  }
}

function blockState(s: BlockState): string {
  switch (s.state) {
    case 'valid':
      return s.seq !== undefined ? `valid, sequence ${s.seq}, ${s.records} record${s.records === 1 ? '' : 's'}` : `valid, ${s.entries} entries`;
    case 'blank':
      return 'blank';
    default:
      return `${s.state}: ${s.why}`;
  }
}

function list<T>(items: T[], all: boolean, fmt: (t: T) => string): string[] {
  const shown = all ? items : items.slice(0, SHOWN_ENTRIES);
  const lines = shown.map((t) => `    ${fmt(t)}`);
  if (shown.length < items.length) lines.push(`    ... ${items.length - shown.length} more (--all shows them)`);
  return lines;
}

function humanSafe(i: SafeInspection, all: boolean): string[] {
  const lines = [`${i.spare}: remapsim safe-policy metadata (spare of ${i.spareSectors} sectors)`];
  if (i.fingerprint)
    lines.push(
      `  main device: ${i.fingerprint.mainSectors} sectors, ${i.fingerprint.logicalBlockSize}-byte blocks, identity ${JSON.stringify(i.fingerprint.identity)}`,
    );
  const l = i.layout;
  if (l) {
    lines.push(
      `  layout: remap blocks of ${l.remapBlockSectors} sector${l.remapBlockSectors > 1 ? 's' : ''}; metadata areas of ${l.areaBlocks} 4 KiB blocks at both ends; data sectors ${l.dataStartSector}..${l.dataEndSector - 1}; log ${l.logBlocks} blocks; checkpoint slots of ${l.checkpointSlotBlocks} blocks`,
    );
  }
  for (const sb of i.superblocks) {
    lines.push(
      sb.valid
        ? `  superblock ${sb.area} (sector ${sb.sector}): valid, generation ${sb.generation}, checkpoint epoch ${sb.checkpointEpoch} in slot ${sb.checkpointSlot} with ${sb.checkpointEntries} entries, log from sequence ${sb.logStartSeq}, volume ${sb.volumeId}`
        : `  superblock ${sb.area} (sector ${sb.sector}): invalid: ${sb.problem}`,
    );
  }
  for (const c of i.checkpoint) lines.push(`  checkpoint block ${c.index}: A ${blockState(c.A)}; B ${blockState(c.B)}`);
  const old = (b: BlockState) => b.state === 'stale' || b.state === 'blank';
  const current = i.log.filter((s) => !old(s.A) || !old(s.B));
  if (current.length === 0 && i.replay) lines.push('  log: empty');
  for (const s of current)
    lines.push(`  log slot ${s.slot}: A ${blockState(s.A)}; B ${blockState(s.B)}${i.replay && s.slot === i.replay.nextLogSlot ? '  <- tail (ignored)' : ''}`);
  if (current.length < i.log.length)
    lines.push(`  log: ${i.log.length - current.length} more slots hold blocks of earlier checkpoints (stale, ignored; --json lists them)`);
  if (i.error) lines.push(`  no usable state: ${i.error}`);
  if (i.state && i.replay) {
    const r = i.replay;
    lines.push(
      `  state: ${i.state.remaps} remaps, allocation cursor at spare block ${i.state.cursor} (from superblock ${r.from}, generation ${r.generation}; ${r.appliedLogBlocks} log blocks with ${r.appliedRecords} records applied${r.tornTail ? '; a torn tail ignored' : ''}${r.fellBack ? '; FELL BACK to the previous checkpoint' : ''}${r.lostLogSlots.length ? `; log slots ${r.lostLogSlots.join(', ')} LOST` : ''})`,
    );
  }
  if (i.problems.length > 0) {
    lines.push('  damaged or stale copies:');
    for (const p of i.problems) lines.push(`    ${p.region} ${p.region === 'superblock' ? '' : `${p.index} `}in area ${p.area}: ${p.problem}`);
  }
  lines.push(
    i.repair.length === 0
      ? i.error
        ? '  repair: nothing can be repaired from these copies'
        : '  repair: nothing to repair'
      : `  repair would: ${i.repair.join('; ')}`,
  );
  if (i.state && i.state.entries.length > 0) {
    lines.push('  remaps (main block -> spare block):');
    lines.push(...list(i.state.entries, all, (e) => `${e.main} -> ${e.spare}`));
  }
  return lines;
}

function humanV4(i: V4Inspection, all: boolean): string[] {
  const lines = [`${i.spare}: dm-remap-v4 metadata (spare of ${i.spareSectors} sectors)`];
  for (const c of i.copies) {
    lines.push(
      c.valid
        ? `  copy ${c.index} (sector ${c.sector}): valid, sequence ${c.sequence}, timestamp ${c.timestamp}${c.time ? ` (${c.time})` : ''}, ${c.activeRemaps} remaps, main ${c.mainSectors} / spare ${c.spareSectors} sectors, health ${c.healthScore}`
        : `  copy ${c.index} (sector ${c.sector}): invalid (${c.reason}): ${c.message}${c.sequence !== undefined ? `; sequence ${c.sequence}, timestamp ${c.timestamp}` : ''}`,
    );
  }
  if (i.best === null) lines.push('  no valid copy: the module writes an empty table over all five on its next load (all remaps lost)');
  else lines.push(`  the module loads copy ${i.best}; ${i.repair.length === 0 ? 'all copies agree' : `copies to rewrite: ${i.repair.join(', ')}`}`);
  for (const r of i.remapsInCopies)
    lines.push(
      `  warning: remap of sector ${r.originalSector} lives at spare sector ${r.spareSector}, inside copy ${r.copy}: each table write overwrites its data`,
    );
  if (i.best !== null) {
    const best = i.copies[i.best];
    const entries = best.entries ?? [];
    if (entries.length > 0) {
      lines.push(`  remaps of copy ${i.best} (sector -> spare sector):`);
      lines.push(...list(entries, all, (e) => `${e.originalSector} -> ${e.spareSector}`));
    }
    const differing = i.copies.filter((c) => c.valid && c.index !== i.best && JSON.stringify(c.entries) !== JSON.stringify(best.entries));
    for (const c of differing)
      lines.push(`  copy ${c.index} holds a different table (${c.activeRemaps} remaps, sequence ${c.sequence}); --json shows every copy's entries`);
  }
  return lines;
}

function printInspection(i: Inspection, json: boolean, all: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(i, null, 2)}\n`);
    return;
  }
  const lines = i.format === 'remapsim-safe' ? humanSafe(i, all) : i.format === 'dm-remap-v4' ? humanV4(i, all) : [`${i.spare}: ${i.content}`];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerMetadata(program: Command): void {
  program
    .command('inspect')
    .description(
      'show the remap metadata on a spare: every copy (valid or why not), sequence numbers, timestamps, entries; remapsim or dm-remap-v4 format, detected',
    )
    .argument('<spare>', 'spare device or image file (opened read-only)')
    .option('--json', 'print the report as JSON')
    .option('--all', 'list every remap (the human report shows the first 20)')
    .option('--main <path>', 'check the metadata against this main device (remapsim format)')
    .option('--identity <id>', "the main device's identity in its fingerprint (default: read from the device)")
    .addHelpText('after', '\nExit status: 0 the metadata is whole, 1 copies are damaged or stale (see repair) or there is no metadata, 2 bad input.')
    .action((sparePath: string, opts: { json?: boolean; all?: boolean } & MainOpts) => {
      const fingerprint = mainFingerprint(opts);
      const i = withSpare(sparePath, true, (spare) => inspectSpare(spare, { fingerprint }));
      printInspection(i, opts.json ?? false, opts.all ?? false);
      if (!inspectionClean(i)) process.exitCode = EXIT_FINDINGS;
    });

  program
    .command('repair')
    .description('rewrite damaged or stale metadata copies from good ones (a dry run unless --write)')
    .argument('<spare>', 'spare device or image file')
    .option('--write', 'apply the repairs (default: only say what would be written)')
    .option('--json', 'print the plan (and what was done) as JSON')
    .option('--main <path>', 'check the metadata against this main device (remapsim format)')
    .option('--identity <id>', "the main device's identity in its fingerprint (default: read from the device)")
    .addHelpText('after', '\nExit status: 0 nothing to repair or repaired, 1 repairs needed (dry run) or impossible, 2 bad input.')
    .action((sparePath: string, opts: { write?: boolean; json?: boolean } & MainOpts) => {
      const fingerprint = mainFingerprint(opts);
      const write = opts.write ?? false;
      withSpare(sparePath, !write, (spare) => {
        const content = probeSpare(spare);
        if (content.kind === 'safe' || content.kind === 'safe-damaged') repairSafe(spare, fingerprint, write, opts.json ?? false);
        else if (content.kind === 'dm-remap-v4' || content.kind === 'dm-remap-v4-damaged') repairV4(spare, write, opts.json ?? false);
        else throw new UsageError(`${spare.name}: nothing to repair: the spare holds ${describeContent(content)}`, EXIT_FINDINGS);
      });
    });

  program
    .command('export')
    .description('write the remap table of a spare as JSON (the state recovery would load)')
    .argument('<spare>', 'spare device or image file (opened read-only)')
    .option('-o, --output <file>', 'write to this file instead of standard output')
    .action((sparePath: string, opts: { output?: string }) => {
      const table = withSpare(sparePath, true, (spare) => exportTable(spare));
      const text = `${JSON.stringify(table, null, 2)}\n`;
      if (opts.output === undefined) process.stdout.write(text);
      else {
        try {
          fs.writeFileSync(opts.output, text);
        } catch (e) {
          throw new UsageError(`cannot write ${opts.output}: ${(e as Error).message}`);
        }
      }
    });

  program
    .command('import')
    .description('write a remap table exported as JSON to a spare, in the format the JSON names')
    .argument('<spare>', 'spare device or image file')
    .argument('<file>', "JSON from 'remapsim export'")
    .option('--force', 'overwrite foreign or unreadable metadata (or metadata of another main device)')
    .option('--main <path>', 'remapsim format: check the table against this main device')
    .option('--identity <id>', 'remapsim format: the identity to record (default: the one in the JSON, or read from --main)')
    .addHelpText(
      'after',
      `
A spare that already holds metadata of the same format (and, for the remapsim
format, of the same main device) gets the imported table as its new state,
atomically. Anything else on the spare is refused unless --force.`,
    )
    .action((sparePath: string, file: string, opts: { force?: boolean } & MainOpts) => {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
      }
      const table = parseTableJson(text);
      const message = withSpare(sparePath, false, (spare) =>
        table.format === 'remapsim-safe' ? importSafe(spare, table, opts) : importV4(spare, table, opts.force ?? false),
      );
      process.stdout.write(`${message}\n`);
    });
}

function repairSafe(spare: FileDevice, fingerprint: DeviceFingerprint | undefined, write: boolean, json: boolean): void {
  const before = inspectSafe(spare, fingerprint);
  if (before.error) throw new UsageError(`${spare.name}: cannot repair: ${before.error}`, EXIT_FINDINGS);
  if (before.repair.length === 0 || !write) {
    if (json)
      process.stdout.write(
        `${JSON.stringify({ format: before.format, spare: spare.name, written: false, repair: before.repair, problems: before.problems }, null, 2)}\n`,
      );
    else if (before.repair.length === 0) process.stdout.write(`${spare.name}: nothing to repair\n`);
    else process.stdout.write(`${spare.name}: would ${before.repair.join('; ')} (dry run; --write applies it)\n`);
    if (before.repair.length > 0) process.exitCode = EXIT_FINDINGS;
    return;
  }
  const store = SafeMetadataStore.open(spare, { fingerprint: fingerprint ?? imageFingerprint(readSafeImage(spare)) });
  const done = store.recovery?.actions.map(describeRepairAction) ?? [];
  const after = inspectSafe(spare, fingerprint);
  if (json)
    process.stdout.write(`${JSON.stringify({ format: before.format, spare: spare.name, written: true, repair: done, remaining: after.repair }, null, 2)}\n`);
  else process.stdout.write(`${spare.name}: repaired: ${done.join('; ')}\n`);
  if (after.repair.length > 0) process.exitCode = EXIT_FINDINGS;
}

function repairV4(spare: FileDevice, write: boolean, json: boolean): void {
  const i = inspectV4(spare);
  const choice = chooseBestCopy(readV4Copies(spare), Math.floor(Date.now() / 1000));
  if (!choice.best) throw new UsageError(`${spare.name}: cannot repair: no valid dm-remap-v4 copy to repair from`, EXIT_FINDINGS);
  const clobbered = i.remapsInCopies.filter((r) => i.repair.includes(r.copy));
  if (i.repair.length === 0 || !write) {
    if (json)
      process.stdout.write(
        `${JSON.stringify({ format: i.format, spare: spare.name, written: false, from: i.best, rewrite: i.repair, remapsOverwritten: clobbered }, null, 2)}\n`,
      );
    else if (i.repair.length === 0) process.stdout.write(`${spare.name}: nothing to repair (all five copies hold sequence ${choice.best.metadata.sequence})\n`);
    else {
      process.stdout.write(
        `${spare.name}: would rewrite copies ${i.repair.join(', ')} from copy ${i.best} (sequence ${choice.best.metadata.sequence}) (dry run; --write applies it)\n`,
      );
      for (const r of clobbered)
        process.stdout.write(
          `  warning: this overwrites the data of the remap of sector ${r.originalSector} (spare sector ${r.spareSector}, inside copy ${r.copy})\n`,
        );
    }
    if (i.repair.length > 0) process.exitCode = EXIT_FINDINGS;
    return;
  }
  const w = writeV4Copies(spare, choice.best.metadata, i.repair);
  if (json)
    process.stdout.write(
      `${JSON.stringify({ format: i.format, spare: spare.name, written: true, from: i.best, rewritten: w.written, failed: w.failed, remapsOverwritten: clobbered }, null, 2)}\n`,
    );
  else
    process.stdout.write(
      `${spare.name}: rewrote copies ${w.written.join(', ') || 'none'} from copy ${i.best}${w.failed.length ? `; FAILED: ${w.failed.join(', ')}` : ''}\n`,
    );
  if (w.failed.length > 0) process.exitCode = EXIT_FINDINGS;
}

function exportTable(spare: BlockDevice): SafeTableJson | V4TableJson {
  const content = probeSpare(spare);
  if (content.kind === 'safe' || content.kind === 'safe-damaged') {
    const image = readSafeImage(spare);
    const r = replayImage(image);
    const sb = r.superblock;
    return safeTableToJson({ spareSectors: spare.sectors, remapBlockSectors: sb.layout.remapBlockSectors, fingerprint: sb.fingerprint, state: r.state });
  }
  if (content.kind === 'dm-remap-v4') return v4TableToJson(content.choice.best!.metadata);
  throw new UsageError(`${spare.name}: nothing to export: the spare holds ${describeContent(content)}`, EXIT_FINDINGS);
}

function sameFingerprint(a: DeviceFingerprint, b: DeviceFingerprint): boolean {
  return a.mainSectors === b.mainSectors && a.logicalBlockSize === b.logicalBlockSize && a.identity === b.identity;
}

function importSafe(spare: FileDevice, table: SafeTableJson, opts: { force?: boolean } & MainOpts): string {
  const { remaps, cursor } = safeJsonToState(table);
  const fingerprint: DeviceFingerprint = { ...table.fingerprint };
  if (opts.main !== undefined) {
    const dev = mainFingerprint({ main: opts.main, identity: opts.identity ?? table.fingerprint.identity });
    if (dev && (dev.mainSectors !== fingerprint.mainSectors || dev.logicalBlockSize !== fingerprint.logicalBlockSize)) {
      throw new UsageError(
        `the table was exported for a main device of ${fingerprint.mainSectors} sectors with ${fingerprint.logicalBlockSize}-byte blocks; ${opts.main} has ${dev.mainSectors} sectors with ${dev.logicalBlockSize}-byte blocks`,
      );
    }
  }
  if (opts.identity !== undefined) fingerprint.identity = opts.identity;
  const content = probeSpare(spare);
  if (
    content.kind === 'safe' &&
    sameFingerprint(content.superblock.fingerprint, fingerprint) &&
    content.superblock.layout.remapBlockSectors === table.remapBlockSectors
  ) {
    const store = SafeMetadataStore.open(spare, { fingerprint });
    const rc = store.replaceTable(remaps, cursor);
    if (rc !== 0) throw new UsageError(`${spare.name}: writing the imported table failed (errno ${rc})`, EXIT_FINDINGS);
    return `${spare.name}: imported ${remaps.length} remaps as a new checkpoint (generation ${store.superblock.generation})`;
  }
  if (content.kind !== 'blank' && !opts.force) {
    const what =
      content.kind === 'safe'
        ? `remapsim metadata of another main device or geometry (${content.superblock.fingerprint.mainSectors} sectors, identity ${JSON.stringify(content.superblock.fingerprint.identity)})`
        : describeContent(content);
    throw new MetadataFormatError('foreign-device', `${spare.name}: refusing to import: the spare holds ${what}; use --force to overwrite it`);
  }
  const store = SafeMetadataStore.format(spare, { fingerprint, remapBlockSectors: table.remapBlockSectors, force: opts.force, initial: { remaps, cursor } });
  return `${spare.name}: formatted and imported ${remaps.length} remaps (generation ${store.superblock.generation})`;
}

function importV4(spare: FileDevice, table: V4TableJson, force: boolean): string {
  const content = probeSpare(spare);
  if (content.kind !== 'dm-remap-v4' && content.kind !== 'blank' && !force) {
    throw new MetadataFormatError(
      'foreign-device',
      `${spare.name}: refusing to import: the spare holds ${describeContent(content)}; use --force to overwrite it`,
    );
  }
  const meta = v4JsonToMetadata(table);
  const current = content.kind === 'dm-remap-v4' ? content.choice.best!.metadata.sequence : 0n;
  // a sequence above every copy on the spare, so the module loads the imported table
  meta.sequence = (meta.sequence > current ? meta.sequence : current) + 1n;
  meta.timestamp = BigInt(Math.floor(Date.now() / 1000));
  const w = writeV4Copies(spare, meta);
  const span = v4CopySectors(spare.logicalBlockSize);
  const inside = meta.entries.filter((e) => V4_COPY_SECTORS.some((s) => e.spareSector >= BigInt(s) && e.spareSector < BigInt(s + span)));
  const warn = inside.length > 0 ? `; warning: ${inside.length} remaps live inside the copy areas, whose data the table overwrites` : '';
  if (w.failed.length > 0)
    throw new UsageError(`${spare.name}: writing copies ${w.failed.join(', ')} failed (written: ${w.written.join(', ') || 'none'})`, EXIT_FINDINGS);
  return `${spare.name}: imported ${meta.entries.length} remaps into all five dm-remap-v4 copies (sequence ${meta.sequence})${warn}`;
}
