#!/usr/bin/env node
import { buildProgram } from './program.js';
import { runCli } from './run-cli.js';

// `remapsim ... | head`: a closed pipe ends the output, not the process with a stack trace
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

await runCli(buildProgram(), process.argv);
