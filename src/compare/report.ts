/** A differential run's report as text: what differed, what the kernel did wrong, and how to reproduce it. */
import type { ComparisonReport, Finding } from './run.js';

export function formatComparison(r: ComparisonReport, opts: { maxLines?: number } = {}): string {
  const max = opts.maxLines ?? 40;
  const c = r.counts;
  const lines = [
    `compared scenario '${r.scenario}' (seed ${r.seed}): ${r.stepsRun} of ${r.steps} steps on dm-dust + dm-remap-v4, model and kernel`,
    `  reads ${c.reads}, writes ${c.writes}; I/O errors: model ${c.errorsModel}, kernel ${c.errorsKernel}; ${c.statusCalls} status calls, ${c.checkpoints} checkpoints, ${c.grownBadSectors} bad sectors grown`,
    `  settling: ${r.settle.count} waits, longest ${r.settle.maxMs} ms, ${r.settle.totalMs} ms in all${r.settle.incomplete > 0 ? `, ${r.settle.incomplete} did not settle` : ''}`,
  ];
  if (r.wedged) lines.push(`  the kernel side ended at step ${r.wedged.step}: ${r.wedged.kind}${r.wedged.call ? ` in ${r.wedged.call}` : ''}`);
  lines.push(
    r.differenceCount === 0
      ? '  no differences'
      : `  ${r.differenceCount} differences${r.differenceCount > r.differences.length ? ` (first ${r.differences.length})` : ''}:`,
  );
  for (const d of r.differences.slice(0, max)) lines.push(`    step ${d.step} (${d.what}): ${d.field}: model ${d.model}, kernel ${d.kernel}`);
  if (r.differences.length > max) lines.push(`    ... ${r.differences.length - max} more in --json`);
  for (const f of r.findings) lines.push(...formatFinding(f));
  if (r.teardown) {
    if (r.teardown.leftBehind.length === 0) lines.push('  torn down');
    else lines.push('  left behind:', ...r.teardown.leftBehind.map((x) => `    ${x}`));
  }
  return `${lines.join('\n')}\n`;
}

export function formatFinding(f: Finding): string[] {
  return [
    `  finding (${f.kind}${f.predicted ? ', predicted by the model' : ', NOT predicted by the model'}): step ${f.step} (${f.what}): ${f.detail}`,
    `    reproduce: ${f.reproduction.command}`,
    ...f.reproduction.steps.slice(-8).map((s) => `      ${s}`),
    ...f.log
      .filter((l) => /dm-remap|Oops|BUG|WARNING|blocked for|RIP|kthread|Call Trace/.test(l))
      .slice(0, 12)
      .map((l) => `    kernel: ${l}`),
  ];
}
