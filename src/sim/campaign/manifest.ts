/**
 * Job files that spread a campaign over many machines on engines that exist
 * already: a Kubernetes Indexed Job (each pod runs the shard its
 * JOB_COMPLETION_INDEX names) or a Slurm job array (SLURM_ARRAY_TASK_ID).
 * Every shard writes its own results file; `remapsim campaign merge` joins
 * them. Pure: the text only.
 */
import * as path from 'node:path';

export interface ManifestOptions {
  /** The spec file, as the job will see it. */
  spec: string;
  shards: number;
  /** Where the shards write (a directory the job sees: a volume, a shared file system). */
  results: string;
  name: string;
  /** Kubernetes: the container image with remapsim installed. */
  image?: string;
  /** Worker processes per shard (default: the CPUs the shard is given). */
  jobs?: number;
  cpus?: number;
}

function jobName(name: string): string {
  const n = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `remapsim-${n || 'campaign'}`.slice(0, 52);
}

function runCommand(o: ManifestOptions): string[] {
  const out = path.posix.join(o.results, `${o.name}-shard-{index}.jsonl`);
  return [
    'remapsim',
    'campaign',
    'run',
    o.spec,
    '--shard',
    String(o.shards),
    '--out',
    out,
    ...(o.jobs !== undefined ? ['--jobs', String(o.jobs)] : []),
    '--quiet',
  ];
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

export function kubernetesManifest(o: ManifestOptions): string {
  const cpus = o.cpus ?? 2;
  const cmd = runCommand(o);
  return [
    '# remapsim campaign as a Kubernetes Indexed Job: one pod per shard, the shard index from JOB_COMPLETION_INDEX.',
    `# kubectl apply -f this.yaml; when it completes: remapsim campaign merge ${path.posix.join(o.results, `${o.name}-shard-*.jsonl`)} -o summary.json --report summary.html`,
    'apiVersion: batch/v1',
    'kind: Job',
    'metadata:',
    `  name: ${jobName(o.name)}`,
    'spec:',
    '  completionMode: Indexed',
    `  completions: ${o.shards}`,
    `  parallelism: ${o.shards}`,
    '  backoffLimit: 6',
    '  template:',
    '    spec:',
    '      restartPolicy: Never',
    '      containers:',
    '        - name: campaign',
    `          image: ${yamlString(o.image ?? 'remapsim:latest')}`,
    `          command: [${cmd.map(yamlString).join(', ')}]`,
    '          resources:',
    `            requests: { cpu: "${cpus}", memory: "${Math.max(1, cpus)}Gi" }`,
    `            limits: { cpu: "${cpus}", memory: "${Math.max(2, 2 * cpus)}Gi" }`,
    '          volumeMounts:',
    `            - { name: results, mountPath: ${yamlString(o.results)} }`,
    '      volumes:',
    '        - name: results',
    '          persistentVolumeClaim: { claimName: remapsim-results }   # a ReadWriteMany volume all pods share',
    '',
  ].join('\n');
}

export function slurmScript(o: ManifestOptions): string {
  const cpus = o.cpus ?? 2;
  const cmd = runCommand(o).map((a) => (/^[\w./{}:=-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  return [
    '#!/bin/bash',
    '# remapsim campaign as a Slurm job array: one task per shard, the shard index from SLURM_ARRAY_TASK_ID.',
    `# sbatch this.sh; when it completes: remapsim campaign merge ${path.posix.join(o.results, `${o.name}-shard-*.jsonl`)} -o summary.json --report summary.html`,
    `#SBATCH --job-name=${jobName(o.name)}`,
    `#SBATCH --array=0-${o.shards - 1}`,
    `#SBATCH --cpus-per-task=${cpus}`,
    '#SBATCH --output=%x-%a.log',
    'set -euo pipefail',
    `mkdir -p ${o.results}`,
    // a rerun of a failed task resumes its results file
    `${cmd.join(' ')}`,
    '',
  ].join('\n');
}
