/**
 * The human report of a scenario run: fio's summary of the jobs, then what the
 * remap target did, what the oracle found, and the verdict.
 */
import type { ScenarioResult } from '../scenario/run.js';
import { formatSummary } from '../stats/summary.js';
import type { FioResult } from '../stats/fio-json.js';
import { type OracleReport, READ_CLASSES, type ReadClass } from '../workload/oracle.js';
import type { RunDurability } from '../workload/runner.js';

const CLASS_LABEL: Record<ReadClass, string> = {
  ok: 'ok',
  stale: 'stale (an older acknowledged version)',
  lost: 'lost (zeroes where acknowledged data was)',
  corrupt: 'corrupt',
  expectedError: 'expected errors (known-bad blocks)',
  unexpectedError: 'unexpected errors',
  unjudged: 'unjudged (after a failed write)',
  notWritten: 'not written by this run (earlier content unknown: not judged)',
};

export function durabilityLines(d: RunDurability, verify: OracleReport | undefined): string[] {
  const f = d.jobFlushes;
  const out = [`flushes: ${f.issued} by the jobs${f.failed > 0 ? ` (${f.failed} failed)` : ''}, final flush ${d.finalFlush}`];
  if (d.priorFlush !== 'OK') out.push(`note: the flush before the run returned ${d.priorFlush}: a writeback error from before this run (not counted)`);
  const lost = verify?.durability.writebackLost ?? 0;
  if (lost > 0) {
    out.push(
      `writeback: ${verify!.durability.failedFlushes} flush(es) failed: the kernel did not write buffered data back; the ${lost} units acknowledged since the last good flush are counted lost (the kernel does not say which pages failed)`,
    );
  } else if (d.finalFlush !== 'OK' || f.failed > 0) {
    out.push('writeback: a flush failed: the kernel did not write buffered data back (data acknowledged before it was lost)');
  }
  return out;
}

/** What the oracle did with units the run never wrote. */
export function verifyNotes(v: OracleReport): string[] {
  return [
    v.priorContent === 'unknown'
      ? `earlier content: unknown (the target existed before this run): ${v.reads.notWritten} reads of units this run did not write were not judged (notWritten)`
      : 'earlier content: zeroes (the run created the target): units it did not write are judged too',
  ];
}

/** fio's summary without our own blocks, which are printed in their own words below. */
export function fioSummaryOnly(fio: FioResult): string {
  const bare = { ...fio, jobs: fio.jobs.map((j) => ({ ...j, verify: undefined, remap: undefined })) } as FioResult;
  return formatSummary(bare);
}

export function formatRunReport(r: ScenarioResult): string {
  const out: string[] = [];
  const sc = r.scenario;
  out.push(`scenario '${sc.name}'${sc.description ? ` (${sc.description})` : ''}, policy ${r.policy}`);
  const dp = r.dataPath;
  out.push(
    dp.kind === 'engine'
      ? `data path: engine, ${dp.stats.queues.length} queue(s) on ${dp.stats.topology}, io ${[...new Set(dp.stats.queues.map((q) => q.io))].join('/')}`
      : `data path: one thread (${dp.why})`,
  );
  out.push(fioSummaryOnly(r.fio).trimEnd());
  const m = r.remap;
  const spare = `spare ${m.spareUsed}/${m.spareCapacity} ${r.policy === 'safe' ? 'blocks' : 'remap slots'}`;
  const pend = m.pending !== undefined ? `, ${m.pending} pending` : '';
  const full = m.enospc ? `, ${m.enospc} writes failed: spare full` : '';
  out.push(`remap: ${m.remaps} remaps, ${spare}${pend}${full}; main bad blocks ${m.initialBadBlocks} at start + ${m.grownBadBlocks} grown`);
  if (m.storeErrors) {
    out.push(
      `store errors: ${m.storeErrors} requests failed in the file system or backing file under a device, not on its medium (the last: ${m.lastStoreError}); nothing was remapped for them`,
    );
  }
  if (m.restarts !== undefined)
    out.push(`restarts: the table was loaded again ${m.restarts} time(s)${m.restartsStopped ? `; then stopped: ${m.restartsStopped}` : ''}`);
  out.push(`status: ${m.status}`);
  for (const src of r.knownBad) out.push(`known bad: ${src}`);
  out.push(...durabilityLines(r.durability, r.verify));
  if (r.verifyState) out.push(`verify state: ${r.verifyState.file} (${r.verifyState.saves} saves)`);
  if (r.verify) {
    const v = r.verify;
    out.push(
      `verify (${v.unitSize}-byte units, ${r.stopped ? 'the reads made before the run was stopped; no read-back at the end' : 'every written unit read back at the end'}):`,
    );
    for (const c of READ_CLASSES) {
      if (v.reads[c] === 0 && c !== 'ok') continue;
      const first = c !== 'ok' && v.first[c].length > 0 ? `   first sectors: ${v.first[c].slice(0, 8).join(' ')}${v.first[c].length > 8 ? ' ...' : ''}` : '';
      out.push(`  ${String(v.reads[c]).padStart(10)}  ${CLASS_LABEL[c]}${first}`);
    }
    const reasons = Object.entries(v.corruptReasons);
    if (reasons.length > 0) out.push(`  corrupt because: ${reasons.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    out.push(...verifyNotes(v).map((l) => `  ${l}`));
    out.push(
      r.stopped
        ? `verdict: none, the run was stopped (${r.findings} findings in the reads it made)`
        : r.findings === 0
          ? 'verdict: no acknowledged data lost, stale or corrupt; no unexpected errors'
          : `verdict: ${r.findings} units of acknowledged data lost, stale or corrupt, or unexpected errors`,
    );
  } else {
    out.push(
      r.durability.finalFlush !== 'OK'
        ? `verdict: the final flush failed (${r.durability.finalFlush}): buffered writes were lost (set verify=crc32c to see which)`
        : 'verdict: no job verified its data (set verify=crc32c to judge it)',
    );
  }
  return `${out.join('\n')}\n`;
}

/** Two or more runs of one scenario under different policies, side by side. */
export function formatComparison(results: readonly ScenarioResult[]): string {
  const rows: Array<[string, ...string[]]> = [['', ...results.map((r) => r.policy)]];
  for (const c of READ_CLASSES) rows.push([CLASS_LABEL[c].split(' (')[0], ...results.map((r) => String(r.verify?.reads[c] ?? '-'))]);
  rows.push(['remaps made', ...results.map((r) => String(r.remap.remaps))]);
  rows.push(['verdict', ...results.map((r) => (r.findings === 0 ? 'nothing lost' : `${r.findings} findings`))]);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w = results.map((_, i) => Math.max(...rows.map((r) => r[i + 1].length)));
  return `${rows.map((r) => [r[0].padEnd(w0), ...r.slice(1).map((c, i) => c.padStart(w[i]))].join('   ')).join('\n')}\n`;
}
