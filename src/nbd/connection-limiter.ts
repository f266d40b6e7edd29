/**
 * Who gets a connection to the NBD server, and for how long a handshake may
 * take. The policy:
 *
 * - At most `maxConnections` connections are open, those still in the
 *   handshake and those in transmission together. A connection arriving when
 *   the server is full is closed at once (before the greeting); its client
 *   may retry.
 * - A connection that has not reached transmission `handshakeTimeoutMs`
 *   after it was accepted is closed, however much or little it sent (a
 *   client dribbling a byte at a time gains nothing).
 * - Connections in transmission are never closed for these reasons: an
 *   honest client that got in keeps being served while half-open ones fill
 *   the server.
 *
 * So clients that connect and never finish the handshake keep the server full
 * for at most `handshakeTimeoutMs` after they stop arriving.
 */
import { log } from '../util/log.js';

export interface ConnectionLimits {
  /** Connections open at once (handshake and transmission); one more is closed at once. Default 64. */
  maxConnections?: number;
  /** Milliseconds from accept to transmission before a connection is closed. Default 10,000. */
  handshakeTimeoutMs?: number;
}

export const DEFAULT_MAX_CONNECTIONS = 64;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const MAX_HANDSHAKE_TIMEOUT_MS = 3_600_000;

export interface ConnectionLimiterStats {
  /** Connections closed at once because the server was full. */
  refused: number;
  /** Connections closed because their handshake took too long. */
  handshakeTimeouts: number;
}

/** One admitted connection's place. */
export interface ConnectionSlot {
  /** The handshake is done: the deadline no longer applies. */
  transmitting(): void;
  /** The connection closed: its place is free. */
  release(): void;
}

/** Log a refusal at most this often (a flood of refusals is one line a second). */
const REFUSAL_LOG_INTERVAL_MS = 1000;

export class ConnectionLimiter {
  readonly maxConnections: number;
  readonly handshakeTimeoutMs: number;
  private open = 0;
  private inHandshake = 0;
  private lastRefusalLog = 0;

  /** `stats` is counted into (the server's own stats object, say). */
  constructor(
    limits: ConnectionLimits = {},
    readonly stats: ConnectionLimiterStats = { refused: 0, handshakeTimeouts: 0 },
  ) {
    this.maxConnections = intLimit('maxConnections', limits.maxConnections, DEFAULT_MAX_CONNECTIONS, 1, 65536);
    this.handshakeTimeoutMs = intLimit('handshakeTimeoutMs', limits.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS, 1, MAX_HANDSHAKE_TIMEOUT_MS);
  }

  /** Connections open now, and how many of them are still in the handshake. */
  get counts(): { open: number; inHandshake: number } {
    return { open: this.open, inHandshake: this.inHandshake };
  }

  /**
   * A place for a new connection, or undefined when the server is full (the
   * caller closes it at once). `onTimeout` runs when the handshake deadline
   * passes; it must close the connection (and then release the slot).
   */
  admit(onTimeout: () => void): ConnectionSlot | undefined {
    if (this.open >= this.maxConnections) {
      this.stats.refused++;
      const now = Date.now();
      if (now - this.lastRefusalLog >= REFUSAL_LOG_INTERVAL_MS) {
        this.lastRefusalLog = now;
        log.warn(
          `nbd: connection refused, ${this.open} open (the limit), ${this.inHandshake} of them in the handshake; ` +
            `those are closed ${this.handshakeTimeoutMs} ms after they connected unless they finish it (${this.stats.refused} refused so far)`,
        );
      }
      return undefined;
    }
    this.open++;
    this.inHandshake++;
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      timer = undefined;
      this.stats.handshakeTimeouts++;
      log.info(`nbd: handshake not finished within ${this.handshakeTimeoutMs} ms; closing the connection`);
      onTimeout();
    }, this.handshakeTimeoutMs);
    let handshaking = true;
    let released = false;
    const leaveHandshake = (): void => {
      if (!handshaking) return;
      handshaking = false;
      this.inHandshake--;
      if (timer) clearTimeout(timer);
      timer = undefined;
    };
    return {
      transmitting: leaveHandshake,
      release: () => {
        if (released) return;
        released = true;
        leaveHandshake();
        this.open--;
      },
    };
  }
}

function intLimit(field: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${field} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}
