/**
 * SIGINT, SIGTERM and SIGHUP end `run` and `bench` the same orderly way. The
 * first one aborts the run's stop signal: the jobs end as if their time were
 * up, what was measured so far is reported, the target is flushed and
 * closed, and temporary work directories are removed; the exit status is
 * 128 + the signal's number (SIGHUP 129, SIGINT 130, SIGTERM 143), as a shell
 * reports a process a signal ended. A second signal ends the process at once
 * (temporary work directories still go, by the exit hook in workdir.ts).
 */
export const SIGNAL_EXIT: Readonly<Record<'SIGHUP' | 'SIGINT' | 'SIGTERM', number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

type StopSignal = keyof typeof SIGNAL_EXIT;

export class Interrupt {
  private readonly controller = new AbortController();
  /** The signal that stopped the run, once one came. */
  received: StopSignal | undefined;
  private readonly handlers = new Map<StopSignal, () => void>();

  constructor() {
    for (const sig of Object.keys(SIGNAL_EXIT) as StopSignal[]) {
      const h = (): void => {
        if (this.received !== undefined) process.exit(SIGNAL_EXIT[this.received]);
        this.received = sig;
        process.stderr.write(`remapsim: ${sig}: stopping; what ran so far follows (${sig === 'SIGINT' ? 'Ctrl-C' : 'a signal'} again ends at once)\n`);
        this.controller.abort(sig);
      };
      this.handlers.set(sig, h);
      process.on(sig, h);
    }
  }

  /** Aborted when a signal came. */
  get stop(): AbortSignal {
    return this.controller.signal;
  }

  /** The exit status for the signal that came, or undefined. */
  get exitCode(): number | undefined {
    return this.received === undefined ? undefined : SIGNAL_EXIT[this.received];
  }

  dispose(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.clear();
  }
}

/** Runs `fn` with the three signals caught; a signal that came sets the exit status. */
export async function withInterrupt(fn: (interrupt: Interrupt) => Promise<void>): Promise<void> {
  const interrupt = new Interrupt();
  try {
    await fn(interrupt);
  } finally {
    interrupt.dispose();
    if (interrupt.exitCode !== undefined) process.exitCode = interrupt.exitCode;
  }
}
