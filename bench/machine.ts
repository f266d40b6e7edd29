/** What a bench ran on, for its JSON: figures from different machines are read side by side. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface MachineInfo {
  cpu: string;
  cpus: number;
  kernel: string;
  node: string;
  fio: string | null;
  load: number;
}

export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux: what node says
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

export function machineInfo(): MachineInfo {
  const fio = spawnSync('fio', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return {
    cpu: cpuModel(),
    cpus: os.availableParallelism(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    fio: fio.status === 0 ? fio.stdout.trim() : null,
    load: Math.round(os.loadavg()[0] * 100) / 100,
  };
}
