/**
 * The control socket beside a served model: what `dmsetup status|table|message`
 * is to a kernel dm device. One JSON object a line each way:
 *
 *   -> {"op":"status"|"table"|"message"|"layers"|"metrics", "args":["addbadblock","123"], "layer":"main.dust"}
 *   <- {"ok":true, "layer":"main.dust", "targetType":"dust", "result":"..."}
 *   <- {"ok":true, "layers":[{"name":"target","targetType":"remap"}, ...]}      (op "layers")
 *   <- {"ok":true, "layer":"target", "targetType":"remap", "result":"# TYPE ...# EOF\n"}   (op "metrics": the OpenMetrics exposition of the whole stack)
 *   <- {"ok":false, "error":"one line", "errno":22, "kind":"MessageError"}
 *
 * `layer` defaults to the top of the stack ("target"). The served stack's
 * layers are named by role and type: "target" for the top, "main.dust" for a
 * dust layer under the main device, "spare.flakey" under the spare,
 * "inner.flakey" under a top-level dust or flakey target.
 *
 * Commands run on the event loop between NBD requests, so a message (adding a
 * bad block, say) lands between two requests, never inside one.
 *
 * Bounds: a line longer than `maxLine` bytes gets one error line and the
 * connection is closed (its bytes are dropped as they come, never kept); a
 * client that does not read its answers is not read from until it does; at
 * most `maxConnections` connections are open, and one idle for `idleTimeoutMs`
 * is closed. So a connection holds at most `maxLine` bytes of a request, one
 * socket read, and 64 KiB of answers. The socket file is 0600 unless asked
 * otherwise (unix-socket.ts).
 */
import * as net from 'node:net';
import * as fs from 'node:fs';
import { z } from 'zod';
import { type BlockDevice, EINVAL, EIO, EOPNOTSUPP } from '../block/device.js';
import { type ControlTarget, MessageError, TableError } from '../control/target.js';
import { log } from '../util/log.js';
import { listenUnixSocket, type SocketAccess } from './unix-socket.js';

export interface ControlLayer {
  name: string;
  target: ControlTarget;
}

export const ROOT_LAYER = 'target';
/** Longest request line accepted (bytes, the newline not counted). */
export const MAX_CONTROL_LINE = 64 * 1024;
/** Answer bytes waiting for a client before its connection is no longer read. */
const MAX_ANSWER_BACKLOG = 64 * 1024;
/**
 * After a line over the limit: how long, and for how many more bytes (read and
 * dropped), the connection lingers so the client can read its error line
 * before a reset, before it is cut.
 */
const OVERFLOW_LINGER_MS = 1000;
const OVERFLOW_LINGER_BYTES = 1024 * 1024;
const ENODEV = 19;

export interface ControlServerOptions {
  /** Longest request line in bytes; a longer one closes the connection. Default 64 KiB. */
  maxLine?: number;
  /** Connections open at once; one more is closed at once. Default 32. */
  maxConnections?: number;
  /** A connection that sends nothing for this long is closed. Default 30 s. */
  idleTimeoutMs?: number;
  /** The OpenMetrics exposition of the stack, for op "metrics" (refused without it). */
  metrics?: () => string;
}

function isControlTarget(x: unknown): x is ControlTarget {
  const t = x as Partial<ControlTarget> | undefined;
  return !!t && typeof t.table === 'function' && typeof t.status === 'function' && typeof t.message === 'function' && typeof t.targetType === 'string';
}

function child(x: unknown, key: 'main' | 'spare' | 'inner'): BlockDevice | undefined {
  const v = (x as Record<string, unknown>)[key];
  return v && typeof v === 'object' && typeof (v as BlockDevice).read === 'function' ? (v as BlockDevice) : undefined;
}

/**
 * The control targets of a stack: the top, then the layers under its main and
 * spare devices (or under its inner device), found through their `main`,
 * `spare` and `inner` properties.
 */
export function collectLayers(root: ControlTarget): ControlLayer[] {
  const out: ControlLayer[] = [{ name: ROOT_LAYER, target: root }];
  const used = new Set<string>([ROOT_LAYER]);
  const walk = (role: string, dev: BlockDevice | undefined): void => {
    for (let d = dev; d; d = child(d, 'inner')) {
      if (!isControlTarget(d)) continue;
      let name = `${role}.${d.targetType}`;
      for (let i = 2; used.has(name); i++) name = `${role}.${d.targetType}#${i}`;
      used.add(name);
      out.push({ name, target: d });
    }
  };
  const main = child(root, 'main');
  const spare = child(root, 'spare');
  if (main || spare) {
    walk('main', main);
    walk('spare', spare);
  } else {
    walk('inner', child(root, 'inner'));
  }
  return out;
}

const requestSchema = z.object({
  op: z.enum(['status', 'table', 'message', 'layers', 'metrics']),
  args: z.array(z.string()).optional(),
  layer: z.string().optional(),
});
export type ControlRequest = z.infer<typeof requestSchema>;

export type ControlResponse =
  | { ok: true; layer: string; targetType: string; result: string }
  | { ok: true; layers: Array<{ name: string; targetType: string }> }
  | { ok: false; error: string; errno?: number; kind: string };

/** Answers one request (pure apart from what the targets and `metrics` do). */
export function handleControlRequest(layers: readonly ControlLayer[], raw: unknown, metrics?: () => string): ControlResponse {
  const parsed = requestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    return {
      ok: false,
      kind: 'RequestError',
      error: `bad control request: ${where}${issue?.message ?? 'invalid'} (expected {"op":"status"|"table"|"message"|"layers"|"metrics","args":[...],"layer":"..."})`,
    };
  }
  const req = parsed.data;
  if (req.op === 'layers') return { ok: true, layers: layers.map((l) => ({ name: l.name, targetType: l.target.targetType })) };
  if (req.op === 'metrics') {
    if (!metrics) return { ok: false, kind: 'RequestError', errno: EOPNOTSUPP, error: 'this server keeps no metrics' };
    try {
      return { ok: true, layer: ROOT_LAYER, targetType: layers[0]?.target.targetType ?? '', result: metrics() };
    } catch (err) {
      log.error({ err }, 'control metrics threw');
      return { ok: false, kind: 'InternalError', errno: EIO, error: `metrics failed: ${(err as Error).message}` };
    }
  }
  const name = req.layer ?? ROOT_LAYER;
  const layer = layers.find((l) => l.name === name);
  if (!layer) return { ok: false, kind: 'RequestError', errno: ENODEV, error: `no layer '${name}' (layers: ${layers.map((l) => l.name).join(', ')})` };
  try {
    let result: string;
    if (req.op === 'status') result = layer.target.status();
    else if (req.op === 'table') result = layer.target.table();
    else {
      if (!req.args || req.args.length === 0) return { ok: false, kind: 'MessageError', errno: EINVAL, error: 'message: no message words given' };
      result = layer.target.message(req.args);
    }
    return { ok: true, layer: layer.name, targetType: layer.target.targetType, result };
  } catch (err) {
    if (err instanceof MessageError || err instanceof TableError) return { ok: false, kind: err.name, errno: err.errno, error: err.message };
    log.error({ err }, `control ${req.op} on ${name} threw`);
    return { ok: false, kind: 'InternalError', errno: EIO, error: `${req.op} on layer '${name}' failed: ${(err as Error).message}` };
  }
}

export class ControlServer {
  private server: net.Server | undefined;
  private path: string | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly maxLine: number;
  private readonly maxConnections: number;
  private readonly idleTimeoutMs: number;
  private readonly metrics: (() => string) | undefined;

  constructor(
    readonly layers: readonly ControlLayer[],
    opts: ControlServerOptions = {},
  ) {
    this.maxLine = opts.maxLine ?? MAX_CONTROL_LINE;
    this.maxConnections = opts.maxConnections ?? 32;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
    this.metrics = opts.metrics;
  }

  /** Listens on `path`, created 0600 unless `access` says otherwise. */
  async listen(path: string, access?: SocketAccess): Promise<void> {
    const srv = net.createServer((sock) => this.accept(sock));
    await listenUnixSocket(srv, path, access);
    srv.on('error', (err) => log.error({ err }, 'control socket error'));
    this.server = srv;
    this.path = path;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    if (this.path) fs.rmSync(this.path, { force: true });
    this.server = undefined;
    this.path = undefined;
  }

  private accept(sock: net.Socket): void {
    if (this.sockets.size >= this.maxConnections) {
      log.warn(`control socket: ${this.sockets.size} connections open (the limit); closing a new one`);
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setTimeout(this.idleTimeoutMs, () => sock.destroy());
    new LineReader(sock, this.maxLine, (line) => this.answer(sock, this.handleLine(line)));
  }

  private handleLine(line: string): ControlResponse {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return { ok: false, kind: 'RequestError', error: 'bad control request: not a JSON object on one line' };
    }
    return handleControlRequest(this.layers, raw, this.metrics);
  }

  private answer(sock: net.Socket, r: ControlResponse): void {
    if (sock.writable) sock.write(`${JSON.stringify(r)}\n`);
  }
}

/**
 * Splits what a client sends into lines, within bounds: the bytes of the line
 * being received are kept up to `maxLine`; past that the client gets one error
 * line and the connection ends. Lines are handed on only while the client
 * reads its answers (fewer than MAX_ANSWER_BACKLOG bytes wait); otherwise the
 * rest of the read is held and the socket paused until it drains.
 */
class LineReader {
  /** Bytes of the line being received, copied out of the reads they came in. */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** The part of the last read not looked at yet (the socket is paused while there is one). */
  private held: Buffer | undefined;
  private overflowed = false;
  private dropped = 0;

  constructor(
    private readonly sock: net.Socket,
    private readonly maxLine: number,
    private readonly onLine: (line: string) => void,
  ) {
    sock.on('data', (chunk: Buffer) => {
      if (this.overflowed) {
        this.dropped += chunk.length;
        if (this.dropped > OVERFLOW_LINGER_BYTES) this.sock.destroy();
        return;
      }
      this.held = this.held ? Buffer.concat([this.held, chunk]) : chunk;
      this.run();
    });
    sock.on('drain', () => {
      if (this.held && !this.overflowed) this.run();
    });
  }

  private run(): void {
    while (this.held) {
      if (this.sock.writableLength >= MAX_ANSWER_BACKLOG) {
        this.sock.pause();
        return;
      }
      const chunk = this.held;
      const nl = chunk.indexOf(0x0a);
      const part = nl < 0 ? chunk : chunk.subarray(0, nl);
      if (this.partialBytes + part.length > this.maxLine) {
        this.overflow();
        return;
      }
      if (nl < 0) {
        this.partial.push(Buffer.from(part)); // a copy: the read it came in is not kept alive
        this.partialBytes += part.length;
        this.held = undefined;
        break;
      }
      this.held = nl + 1 < chunk.length ? chunk.subarray(nl + 1) : undefined;
      const line = this.partialBytes === 0 ? part : Buffer.concat([...this.partial, part]);
      this.partial = [];
      this.partialBytes = 0;
      const text = line.toString('utf8').trim();
      if (text !== '') this.onLine(text);
    }
    if (this.sock.isPaused()) this.sock.resume();
  }

  private overflow(): void {
    this.overflowed = true;
    this.partial = [];
    this.partialBytes = 0;
    this.held = undefined;
    const r: ControlResponse = {
      ok: false,
      kind: 'RequestError',
      error: `bad control request: line longer than ${this.maxLine} bytes; closing the connection`,
    };
    // Reading goes on (and drops what comes) so the client sees the answer and an end rather than a reset, for a while.
    this.sock.resume();
    this.sock.end(`${JSON.stringify(r)}\n`);
    setTimeout(() => this.sock.destroy(), OVERFLOW_LINGER_MS).unref();
  }
}

export class ControlConnectError extends Error {
  override readonly name = 'ControlConnectError';
}

/** Sends one request to a control socket and returns its answer. */
export function controlRequest(path: string, req: ControlRequest, timeoutMs = 10_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(path);
    let buf = '';
    let settled = false;
    const finish = (err: Error | undefined, r?: ControlResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(r!);
    };
    const timer = setTimeout(() => finish(new ControlConnectError(`${path}: no answer from the control socket within ${timeoutMs} ms`)), timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (t: string) => {
      buf += t;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        finish(undefined, JSON.parse(buf.slice(0, nl)) as ControlResponse);
      } catch {
        finish(new ControlConnectError(`${path}: the control socket answered something that is not JSON`));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? 'no such socket' : err.code === 'ECONNREFUSED' ? 'nobody is listening (is remapsim serve running?)' : err.message;
      finish(new ControlConnectError(`cannot reach the control socket ${path}: ${why}`));
    });
    sock.on('end', () => finish(new ControlConnectError(`${path}: the control socket closed without answering`)));
  });
}

/** The control socket that goes with an NBD socket path. */
export function controlPathFor(nbdSocket: string): string {
  return `${nbdSocket}.ctl`;
}
