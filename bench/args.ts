/** Shared command-line handling for bench scripts: `--json`, `--quick`, and the flags a script adds. */
export interface BenchArgs {
  json: boolean;
  quick: boolean;
  /** The script's own flags that were given. */
  flags: Set<string>;
}

export function benchArgs(argv = process.argv.slice(2), extra: string[] = []): BenchArgs {
  const known = new Set(['--json', '--quick', ...extra]);
  for (const a of argv) {
    if (!known.has(a)) {
      process.stderr.write(`unknown argument '${a}' (allowed: ${[...known].join(', ')})\n`);
      process.exit(2);
    }
  }
  return { json: argv.includes('--json'), quick: argv.includes('--quick'), flags: new Set(argv.filter((a) => extra.includes(a))) };
}

/** Prints the machine-readable result as the last line of output. */
export function emitJson(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}
