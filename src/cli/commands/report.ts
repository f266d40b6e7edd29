import * as fs from 'node:fs';
import type { Command } from 'commander';
import { renderReport, reportPathFor } from '../../report/html.js';
import { ReportInputError, readResults } from '../../report/load.js';
import { UsageError } from '../../util/errors.js';

interface ReportOptions {
  output?: string;
  title?: string;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('make one self-contained HTML page with charts from results files (remapsim run --json, or fio --output-format=json)')
    .argument('<results...>', 'results files; several (or one holding {"runs": [...]}) are shown side by side')
    .option('-o, --output <file>', 'where to write the page (default: the first results file with .html for .json)')
    .option('--title <text>', 'page title (default: from the scenario and policies)')
    .addHelpText(
      'after',
      `
The page holds bandwidth and IOPS over time, latency percentiles and CDFs per
direction, remaps and spare use over time, the health score, a map of the
device (bad, pending and remapped sectors) and the oracle's findings. Scripts
and styles are inline: it opens from disk with no network.

Examples:
  remapsim run --json r.json && remapsim report r.json -o r.html
  remapsim run --compare-policies --json both.json && remapsim report both.json
  remapsim report safe.json v4.json -o compare.html`,
    )
    .action((files: string[], opts: ReportOptions) => {
      let html: string;
      let count: number;
      try {
        const runs = readResults(files);
        count = runs.length;
        html = renderReport(runs, { title: opts.title });
      } catch (err) {
        if (err instanceof ReportInputError) throw new UsageError(err.message);
        throw err;
      }
      const out = opts.output ?? reportPathFor(files[0]);
      try {
        fs.writeFileSync(out, html);
      } catch (err) {
        throw new UsageError(`--output: cannot write ${out} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      process.stdout.write(`wrote ${out} (${count} run${count > 1 ? 's' : ''}, ${Math.ceil(Buffer.byteLength(html) / 1024)} KiB)\n`);
    });
}
