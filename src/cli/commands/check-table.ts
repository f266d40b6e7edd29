import type { Command } from 'commander';
import { SECTOR_SIZE } from '../../block/device.js';
import { formatBytes } from '../../util/format-size.js';
import { parseTableLine } from '../../control/table-line.js';
import { openTarget } from '../../stack/table.js';
import { DmRemapV4Target } from '../../remap/v4-target.js';
import { SafeRemapTarget } from '../../remap/safe-target.js';
import { v4MinSpare } from '../../metadata/min-spare.js';

interface DeviceInfo {
  role: string;
  path: string;
  sectors: number;
  logicalBlockSize: number;
}

export function registerCheckTable(program: Command): void {
  program
    .command('check-table')
    .description('validate a device-mapper table line as the kernel would: devices opened (read-only), sizes and block sizes checked')
    .argument('<line>', "the table line, e.g. '0 409600 remap /var/tmp/main.img /var/tmp/spare.img'")
    .option('--json', 'print the resolved target as JSON')
    .addHelpText(
      'after',
      `
Target types: dm-remap-v4 <main> <spare>
              remap <main> <spare> [<#features> reserved_sectors <n> | no_discard_passdown]
              dust <dev> <offset> <blksz>
              flakey <dev> <offset> <up> <down> [<#features> <features...>]
Exit status: 0 valid, 2 refused (the reason is printed).`,
    )
    .action((lineText: string, opts: { json?: boolean }) => {
      const line = parseTableLine(lineText);
      const target = openTarget(line, { readOnly: true });
      try {
        const devices: DeviceInfo[] = [];
        const extra: Record<string, number> = {};
        if (target instanceof DmRemapV4Target || target instanceof SafeRemapTarget) {
          devices.push({ role: 'main', path: target.mainPath, sectors: target.main.sectors, logicalBlockSize: target.main.logicalBlockSize });
          devices.push({ role: 'spare', path: target.sparePath, sectors: target.spare.sectors, logicalBlockSize: target.spare.logicalBlockSize });
        }
        if (target instanceof DmRemapV4Target) {
          extra.minSpareSectors = v4MinSpare(target.main.sectors, target.main.logicalBlockSize);
          extra.remapCapacity = target.spareCapacity;
        }
        if (target instanceof SafeRemapTarget) {
          extra.spareDataBlocks = target.spareBlocksTotal;
          extra.reservedSectors = target.reservedSectors;
        }
        const result = {
          ok: true,
          type: line.type,
          table: target.table(),
          sectors: target.sectors,
          logicalBlockSize: target.logicalBlockSize,
          devices,
          ...extra,
          status: target.status(),
        };
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(result)}\n`);
          return;
        }
        const lines = [
          `valid ${line.type} target: ${target.sectors} sectors (${formatBytes(target.sectors * SECTOR_SIZE)}), ${target.logicalBlockSize}-byte logical blocks`,
        ];
        for (const d of devices)
          lines.push(`  ${d.role.padEnd(6)} ${d.path}: ${d.sectors} sectors (${formatBytes(d.sectors * SECTOR_SIZE)}), ${d.logicalBlockSize}-byte blocks`);
        if (extra.minSpareSectors !== undefined)
          lines.push(`  min_spare ${extra.minSpareSectors} sectors; room for ${extra.remapCapacity} remaps (spare_sectors/2)`);
        if (extra.spareDataBlocks !== undefined)
          lines.push(`  spare data area: ${extra.spareDataBlocks} blocks between two reserved areas of ${extra.reservedSectors} sectors`);
        lines.push(`  table:  ${target.table()}`, `  status: ${target.status()}`);
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        target.close();
      }
    });
}
