/** `promtool check metrics` (Debian's prometheus package) on an exposition, under a time limit. */
import { spawnSync } from 'node:child_process';

export function promtoolVersion(): string | undefined {
  const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? `${r.stdout}${r.stderr}`.split('\n')[0].trim() : undefined;
}

/** Its exit status and what it printed (problems found, one a line; nothing when clean). */
export function promtoolCheck(text: string): { code: number; output: string } {
  const r = spawnSync('timeout', ['-s', 'KILL', '30', 'promtool', 'check', 'metrics'], { input: text, encoding: 'utf8', maxBuffer: 1 << 20 });
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}`.trim() };
}
