/**
 * Which share of a campaign this process runs: `--shard i/N` (runs whose
 * number is i modulo N), or `--shard N` with i from the job engine that
 * started it: a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, from 0), a
 * Slurm job array (SLURM_ARRAY_TASK_ID, from SLURM_ARRAY_TASK_MIN or 0), GNU
 * parallel (PARALLEL_SEQ, from 1). Pure.
 */
import { SimInputError } from '../time.js';

export interface Shard {
  index: number;
  count: number;
  /** Where the index came from. */
  from: string;
}

const ENV_SOURCES: ReadonlyArray<{ name: string; base: (env: NodeJS.ProcessEnv) => number }> = [
  { name: 'JOB_COMPLETION_INDEX', base: () => 0 },
  { name: 'SLURM_ARRAY_TASK_ID', base: (env) => (env.SLURM_ARRAY_TASK_MIN !== undefined ? Number(env.SLURM_ARRAY_TASK_MIN) : 0) },
  { name: 'PARALLEL_SEQ', base: () => 1 },
];

function int(text: string, what: string): number {
  if (!/^\d+$/.test(text.trim())) throw new SimInputError(`${what}: '${text}' is not a whole number`);
  return Number(text);
}

export function parseShard(text: string, env: NodeJS.ProcessEnv = process.env): Shard {
  const m = /^\s*(?:(\d+)\s*\/\s*)?(\d+)\s*$/.exec(text);
  if (!m)
    throw new SimInputError(
      `--shard: '${text}' is not i/N (this process runs shard i of N, from 0) or N (i from JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or PARALLEL_SEQ)`,
    );
  const count = int(m[2]!, '--shard');
  if (count < 1 || count > 1_000_000) throw new SimInputError(`--shard: the number of shards must be from 1 to 1000000, got ${count}`);
  if (m[1] !== undefined) {
    const index = int(m[1], '--shard');
    if (index >= count) throw new SimInputError(`--shard: shard index ${index} is out of range 0..${count - 1}`);
    return { index, count, from: '--shard' };
  }
  for (const s of ENV_SOURCES) {
    const v = env[s.name];
    if (v === undefined || v === '') continue;
    const index = int(v, s.name) - s.base(env);
    if (!(index >= 0 && index < count)) throw new SimInputError(`${s.name}=${v} gives shard index ${index}, out of range 0..${count - 1} for --shard ${count}`);
    return { index, count, from: s.name };
  }
  throw new SimInputError(
    `--shard ${count}: no shard index: give --shard i/${count}, or run under a Kubernetes Indexed Job (JOB_COMPLETION_INDEX), a Slurm job array (SLURM_ARRAY_TASK_ID) or GNU parallel (PARALLEL_SEQ)`,
  );
}

/** Whether run i belongs to the shard. */
export function inShard(shard: Shard | undefined, run: number): boolean {
  return shard === undefined || run % shard.count === shard.index;
}

/** An output path with `{index}` replaced by the shard index. */
export function shardPath(template: string, shard: Shard | undefined): string {
  return template.replace(/\{index\}/g, String(shard?.index ?? 0));
}
