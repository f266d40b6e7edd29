/** Shared command-line handling for bench scripts: `--json` and `--quick`. */
export interface BenchArgs {
  json: boolean;
  quick: boolean;
}

export function benchArgs(argv = process.argv.slice(2)): BenchArgs {
  const known = new Set(['--json', '--quick']);
  for (const a of argv) {
    if (!known.has(a)) {
      process.stderr.write(`unknown argument '${a}' (allowed: --json, --quick)\n`);
      process.exit(2);
    }
  }
  return { json: argv.includes('--json'), quick: argv.includes('--quick') };
}

/** Prints the machine-readable result as the last line of output. */
export function emitJson(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}
