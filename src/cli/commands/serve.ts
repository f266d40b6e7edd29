import * as fs from 'node:fs';
import type { Command } from 'commander';
import { SECTOR_SIZE } from '../../block/device.js';
import { formatBytes } from '../../util/format-size.js';
import { BadListError, parseBadSectorFile, type SectorRange } from '../../faults/badlist.js';
import { type ModelStack, openModelStack, serveModel } from '../../serve/served-model.js';
import { controlPathFor, ROOT_LAYER } from '../../nbd/control-socket.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, MAX_HANDSHAKE_TIMEOUT_MS } from '../../nbd/connection-limiter.js';
import { formatMode, parseSocketMode, resolveGroup, type SocketAccess, SocketSetupError, socketPathProblem } from '../../nbd/unix-socket.js';
import type { ControlTarget } from '../../control/target.js';
import { DEFAULT_SCENARIO } from '../../scenario/default.js';
import { type BuiltScenario, buildScenario } from '../../scenario/build.js';
import { loadScenario } from '../../scenario/load.js';
import { POLICIES, type Policy, validateScenario } from '../../scenario/schema.js';
import { realClock } from '../../util/clock.js';
import { UsageError } from '../../util/errors.js';
import { addEngineOptions, type EngineCliOptions, parseEngineOptions } from '../engine-options.js';
import { Engine } from '../../engine/engine.js';
import { SafeRemapTarget } from '../../remap/safe-target.js';
import { registerTargetControl } from './target-control.js';
import type { MetricFamily } from '../../metrics/exposition.js';
import { isLoopbackHost, type MetricsAddress, type MetricsEndpoint, parseMetricsAddress, startMetricsEndpoint } from '../../metrics/http-endpoint.js';

interface ServeOptions extends EngineCliOptions {
  table?: string;
  policy?: string;
  socket?: string;
  port?: string;
  host: string;
  control?: string;
  dust?: boolean;
  dustSpare?: boolean;
  dustBlockSize: string;
  badSectors?: string;
  wrFailCnt: string;
  exportName: string;
  readOnly?: boolean;
  maxBlockSize?: string;
  force?: boolean;
  metadata: boolean;
  socketMode: string;
  socketGroup?: string;
  handshakeTimeout: string;
  maxConnections: string;
  describePaths?: boolean;
  metrics?: string;
  metricsAllowRemote?: boolean;
}

/** The signals that stop `serve`, all in the same orderly way. */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function intArg(option: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${option} must be a whole number in [${min}, ${max}], got '${text}'`);
  }
  return Number(text);
}

/**
 * Catches the stop signals from now until dispose(): the first one resolves
 * `signal`; repeats change nothing (stopping is bounded by its grace time),
 * and none of them kills the process half-way through.
 */
function catchStopSignals(): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let resolve!: (s: NodeJS.Signals) => void;
  const signal = new Promise<NodeJS.Signals>((r) => (resolve = r));
  const on = (s: NodeJS.Signals): void => resolve(s);
  for (const s of STOP_SIGNALS) process.on(s, on);
  return { signal, dispose: () => STOP_SIGNALS.forEach((s) => process.off(s, on)) };
}

/** A time in ms: seconds (`10`, `0.5`) or with a unit (`500ms`, `2s`, `1m`), within [minMs, maxMs]. */
function durationArg(option: string, text: string, minMs: number, maxMs: number): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m)?$/i.exec(text.trim());
  const ms = m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm'] : NaN;
  if (!(ms >= minMs && ms <= maxMs)) {
    throw new UsageError(
      `${option} must be a time from ${minMs / 1000} s to ${maxMs / 1000} s: seconds (10, 0.5) or with a unit (500ms, 2s, 1m), got '${text}'`,
    );
  }
  return Math.round(ms);
}

/** --socket-mode and --socket-group. */
function socketAccessArgs(o: ServeOptions): SocketAccess {
  const mode = parseSocketMode(o.socketMode);
  if (mode === undefined) {
    throw new UsageError(
      `--socket-mode must be an octal mode from 0600 to 0777 that keeps the owner's read and write (0660: the group too), got '${o.socketMode}'`,
    );
  }
  if (o.socketGroup === undefined) return { mode };
  const group = resolveGroup(o.socketGroup);
  if (group === undefined) throw new UsageError(`--socket-group: no group '${o.socketGroup}' (a group name or a numeric gid)`);
  return { mode, group };
}

/** Refuses socket paths that cannot work, before anything is created. */
function checkSocketPaths(o: ServeOptions): void {
  const paths: Array<[string, string]> = [];
  if (o.socket !== undefined) paths.push(['--socket', o.socket]);
  if (o.control !== undefined) paths.push(['--control', o.control]);
  else if (o.socket !== undefined) paths.push(['--socket', controlPathFor(o.socket)]);
  for (const [option, p] of paths) {
    const problem = socketPathProblem(p);
    if (!problem) continue;
    const which = o.control === undefined && p !== o.socket ? ` (its control socket; --control PATH puts it elsewhere)` : '';
    throw new UsageError(`${option}: '${p}'${which}: ${problem}`);
  }
}

/** --metrics [host:]port, refused when the host is reachable from elsewhere unless --metrics-allow-remote. */
function metricsAddressArg(text: string, allowRemote: boolean): MetricsAddress {
  let a: MetricsAddress;
  try {
    a = parseMetricsAddress(text);
  } catch (err) {
    throw new UsageError(`--metrics: ${(err as Error).message}`);
  }
  if (!allowRemote && !isLoopbackHost(a.host)) {
    throw new UsageError(
      `--metrics ${text}: ${a.host} is not a loopback address, so other machines could read the metrics; add --metrics-allow-remote to mean it`,
    );
  }
  return a;
}

async function metricsEndpointArg(text: string, a: MetricsAddress, collect: () => MetricFamily[]): Promise<MetricsEndpoint> {
  try {
    return await startMetricsEndpoint(a, collect);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'EADDRINUSE'
        ? 'the port is in use'
        : e.code === 'EADDRNOTAVAIL'
          ? 'no such local address'
          : e.code === 'EACCES'
            ? 'permission denied'
            : e.code === 'ENOTFOUND'
              ? 'unknown host'
              : e.message;
    throw new UsageError(`--metrics ${text}: cannot listen: ${why}`);
  }
}

/** A plain list (one sector a line) or a GNU ddrescue mapfile (parseBadSectorFile tells them apart). */
export function readBadSectors(file: string): SectorRange[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--bad-sectors: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseBadSectorFile(text);
  } catch (err) {
    if (err instanceof BadListError) throw new UsageError(`--bad-sectors ${file}: ${err.message}`);
    throw err;
  }
}

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description('serve a model target as an NBD export (Unix socket and/or TCP port) with a control socket beside it, until SIGINT, SIGTERM or SIGHUP')
    .argument('[scenario]', "a scenario file to serve (its devices, faults and growth, and policy; not its jobs), or 'default' (the default without --table)")
    .option('--table <line>', "serve the target of a table line instead of a scenario, e.g. '0 204800 remap /var/tmp/main.img /var/tmp/spare.img'")
    .option('--policy <policy>', "with a scenario: safe or dm-remap-v4 (default: the scenario's)")
    .option('--socket <path>', 'listen on this Unix socket (control socket: <path>.ctl)')
    .option('--port <n>', 'listen on this TCP port (0: any free port)')
    .option('--host <addr>', 'TCP address to listen on', '127.0.0.1')
    .option('--control <path>', 'control socket path (default <socket>.ctl; none for --port alone unless given)')
    .option('--socket-mode <mode>', 'permissions of both socket files, octal, 0600 to 0777 (0660: the --socket-group may connect too)', '0600')
    .option('--socket-group <group>', 'give both socket files to this group (a name or a gid); with --socket-mode 0660 its members may connect')
    .option(
      '--handshake-timeout <seconds>',
      `close a connection that has not finished the NBD handshake this long after connecting (0.1 s to ${MAX_HANDSHAKE_TIMEOUT_MS / 1000} s; 500ms, 2s, 1m)`,
      String(DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000),
    )
    .option(
      '--max-connections <n>',
      'NBD connections open at once, in the handshake and in transmission together (1 to 65536); one more is closed at once',
      String(DEFAULT_MAX_CONNECTIONS),
    )
    .option('--describe-paths', "put the table line, with the backing files' paths, in the export description clients see (default: policy and size only)")
    .option('--metrics <[host:]port>', 'serve OpenMetrics at http://HOST:PORT/metrics (host 127.0.0.1 unless given; port 0: any free one)')
    .option('--metrics-allow-remote', 'let --metrics listen on an address other machines can reach')
    .option('--dust', "put a dust layer (layer 'main.dust') under the main device, for fault injection while clients run")
    .option('--dust-spare', "put a dust layer (layer 'spare.dust') under the spare device")
    .option('--dust-block-size <bytes>', 'dust block size (a power of two >= 512)', '512')
    .option('--bad-sectors <file>', 'list these main-device sectors as bad in main.dust (implies --dust): one sector a line, or a ddrescue mapfile')
    .option('--wr-fail-cnt <n>', 'writes each --bad-sectors block fails before a write clears it (0..255)', '0')
    .option('--export-name <name>', "the export's name ('' is the default export)", '')
    .option('--read-only', 'export read-only')
    .option('--max-block-size <bytes>', 'largest READ/WRITE accepted (advertised maximum block size)')
    .option('--force', 'overwrite foreign or unreadable metadata on the spare (formats an empty remap table)')
    .option('--no-metadata', "keep the remap table in memory only (nothing read from or written to the spare's metadata area)");
  addEngineOptions(cmd, 'a scenario under the safe policy; other targets are served on one thread', { force: false, engine: 'sync' })
    .addHelpText(
      'after',
      `
Dust layers start enabled: 'addbadblock' takes effect at once ('disable' bypasses them).
The sockets are created 0600 whatever the umask: only their owner (and root)
can connect. Share them with a group on purpose: --socket-mode 0660
--socket-group disk. (A --port has no such check: any local user can connect.)
Connections: at most --max-connections (64) at once, more are closed at once;
one that has not finished its handshake --handshake-timeout (10 s) after it
connected is closed, so clients that connect and stall keep others out for at
most that long; connections in transmission are never cut. Clients see the
export as 'remapsim safe policy, 256 MiB' (--describe-paths: the table line).
SIGINT, SIGTERM and SIGHUP stop it the same way: the requests received are
answered (connections cut after 5 s), the target flushed and closed, the
sockets removed; exit 0 (1 if the final flush failed).
Requests run on the server's thread by default. With --engine workers, a
scenario under the safe policy is served through the per-CPU engine: requests
run on worker threads in parallel and complete out of order. (On a 2-CPU
machine the hand-off between threads costs more than it gains: 4 KiB random
reads at iodepth 16 ran at ~35k IOPS through 2 workers, ~80k on one thread.)

Examples:
  remapsim serve default --socket /tmp/model.sock      # the built-in scenario's model, bad sectors growing
  remapsim serve --socket /tmp/model.sock --dust \\
      --table '0 204800 remap /var/tmp/main.img /var/tmp/spare.img'
  nbdinfo 'nbd+unix:///?socket=/tmp/model.sock'
  fio --name=v --ioengine=nbd --uri='nbd+unix:///?socket=/tmp/model.sock' --rw=randrw --bs=4k --verify=crc32c
  remapsim message /tmp/model.sock --layer main.dust addbadblock 1234 2
  remapsim status /tmp/model.sock --json
  nbdinfo --map=remapsim:health 'nbd+unix:///?socket=/tmp/model.sock'   # 1 remapped, 2 pending, 4 bad
  remapsim serve default --socket /tmp/model.sock --metrics 127.0.0.1:9100   # OpenMetrics at /metrics
  remapsim serve default --socket /run/remapsim/m.sock --socket-mode 0660 --socket-group disk \\
      --max-connections 16 --handshake-timeout 5s`,
    )
    .action(async (scenarioFile: string | undefined, o: ServeOptions) => {
      if (o.socket === undefined && o.port === undefined) throw new UsageError('serve needs --socket <path> or --port <n> (or both)');
      if (scenarioFile !== undefined && o.table !== undefined)
        throw new UsageError(`serve takes a scenario or --table <line>, not both: got scenario '${scenarioFile}' and --table '${o.table}'`);
      if (scenarioFile === undefined && o.table === undefined) scenarioFile = 'default'; // as run: no scenario means the built-in one
      const port = o.port === undefined ? undefined : intArg('--port', o.port, 0, 65535);
      checkSocketPaths(o);
      const socketAccess = socketAccessArgs(o);
      const handshakeTimeoutMs = durationArg('--handshake-timeout', o.handshakeTimeout, 100, MAX_HANDSHAKE_TIMEOUT_MS);
      const maxConnections = intArg('--max-connections', o.maxConnections, 1, 65536);
      const dustBlockSize = intArg('--dust-block-size', o.dustBlockSize, 512, 1 << 30);
      const wrFailCnt = intArg('--wr-fail-cnt', o.wrFailCnt, 0, 255);
      const maxBlockSize = o.maxBlockSize === undefined ? undefined : intArg('--max-block-size', o.maxBlockSize, 512, 0x7fffffff);
      const badSectors = o.badSectors === undefined ? undefined : readBadSectors(o.badSectors);
      const engineOptions = parseEngineOptions({ ...o, force: false }); // serve's --force is about metadata
      const metricsAddress = o.metrics === undefined ? undefined : metricsAddressArg(o.metrics, o.metricsAllowRemote === true);
      // the metrics port first: a port in use is refused before the model is opened
      let collect: () => MetricFamily[] = () => {
        throw new Error('the model is still starting');
      };
      const endpoint = metricsAddress && (await metricsEndpointArg(o.metrics!, metricsAddress, () => collect()));
      const stop = catchStopSignals(); // from here on: a signal during startup stops the server once it is up
      try {
        let built: BuiltScenario | undefined;
        let growth: NodeJS.Timeout | undefined;
        if (scenarioFile !== undefined) {
          if (o.policy !== undefined && !(POLICIES as readonly string[]).includes(o.policy))
            throw new UsageError(`--policy: unknown policy '${o.policy}' (allowed: ${POLICIES.join(', ')})`);
          const scenario = scenarioFile === 'default' ? validateScenario(DEFAULT_SCENARIO, 'default scenario') : loadScenario(scenarioFile);
          built = buildScenario(scenario, { policy: o.policy as Policy | undefined });
          const b = built;
          growth = setInterval(() => b.advanceFaults(realClock.nowNs()), 10); // bad sectors keep appearing while clients run
        }
        const stack: ModelStack = built
          ? {
              target: built.target,
              layers: [...built.layers]
                .filter(([, l]) => typeof l.message === 'function')
                .map(([name, l]) => ({ name: name === 'target' ? ROOT_LAYER : name, target: l as ControlTarget })),
              dustMain: built.mainDust,
              dustSpare: built.spareDust,
              mainTop: built.layers.get('main.dust') ?? built.layers.get('main.file'),
            }
          : openModelStack({
              table: o.table!,
              dustMain: o.dust === true,
              dustSpare: o.dustSpare === true,
              dustBlockSize,
              badSectors,
              wrFailCnt,
              readOnly: o.readOnly === true,
              force: o.force === true,
              metadata: o.metadata,
            });
        let serving: Awaited<ReturnType<typeof serveModel>>;
        let engine: Engine | undefined;
        let dataPath = "the server's thread (--engine workers: the per-CPU engine)";
        try {
          const engineDevice = built?.engineDevice();
          if (engineOptions && engineDevice && built!.target instanceof SafeRemapTarget) {
            engine = await Engine.start({ device: engineDevice, primary: built!.target, ...engineOptions });
            const st = engine.stats();
            dataPath = `per-CPU engine, ${st.queues.length} queue(s) (${[...new Set(st.queues.map((q) => q.io))].join(', ')} I/O), ${st.topology}`;
          } else if (engineOptions) {
            dataPath = `one thread (${built ? `the ${built.policy} policy runs on one thread` : '--table targets run on one thread'})`;
          }
          serving = await serveModel(stack, {
            engine,
            socket: o.socket,
            port,
            host: o.host,
            control: o.control,
            socketAccess,
            describePaths: o.describePaths === true,
            handshakeTimeoutMs,
            maxConnections,
            exportName: o.exportName,
            readOnly: o.readOnly === true,
            maxBlockSize,
          });
        } catch (err) {
          if (growth) clearInterval(growth);
          await engine?.close();
          if (built) built.close();
          else stack.target.close();
          const e = err as NodeJS.ErrnoException;
          if (err instanceof RangeError || err instanceof SocketSetupError || e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'ENOENT') {
            throw new UsageError(`cannot listen: ${e.message}`);
          }
          throw err;
        }
        const t = stack.target;
        const out: string[] = [`serving ${t.table()}  (${formatBytes(t.sectors * SECTOR_SIZE)}, ${t.logicalBlockSize}-byte logical blocks)`];
        for (const a of serving.addresses) {
          out.push(`  ${a.kind === 'unix' ? 'nbd socket' : 'nbd tcp   '}: ${a.address}`);
          out.push(`  connect   : nbdinfo '${a.uri}'`);
        }
        if (serving.controlPath !== undefined) {
          const target = o.socket ?? serving.controlPath;
          out.push(`  control   : ${serving.controlPath}   (remapsim status ${target}; remapsim message ${target} --layer <layer> <words...>)`);
        }
        if (o.socket !== undefined || serving.controlPath !== undefined) {
          const group = socketAccess.group === undefined ? '' : `, group ${socketAccess.group}`;
          out.push(
            `  access    : sockets ${formatMode(socketAccess.mode ?? 0o600)}${group}; at most ${maxConnections} connections, handshake within ${handshakeTimeoutMs / 1000} s`,
          );
        }
        out.push(`  data path : ${dataPath}`);
        if (endpoint) {
          const m = serving.metrics;
          collect = () => m.families();
          out.push(`  metrics   : ${endpoint.url}   (OpenMetrics; text/plain 0.0.4 to clients that ask for it)`);
        }
        out.push(`  layers    : ${stack.layers.map((l) => `${l.name} (${l.target.targetType})`).join(', ')}`);
        out.push('Stop with Ctrl-C, SIGTERM or SIGHUP: clients are finished, the target is flushed and closed, the sockets removed.');
        process.stdout.write(`${out.join('\n')}\n`);

        const signal = await stop.signal;
        const st = serving.nbd.stats;
        if (growth) clearInterval(growth);
        await endpoint?.close();
        const status = await serving.stop();
        built?.close(); // the scenario's store and its temporary files
        const refusals = st.refused + st.handshakeTimeouts > 0 ? `, ${st.refused} refused (server full), ${st.handshakeTimeouts} handshake timeout(s)` : '';
        process.stdout.write(
          `${signal}: stopped after ${st.connectionsTotal} connection(s), ${st.requests} request(s)${refusals}; flush ${status === 0 ? 'OK' : `failed (errno ${status})`}; target closed\n`,
        );
        if (status !== 0) process.exitCode = 1;
      } catch (err) {
        await endpoint?.close(); // startup failed: nothing listens any more
        throw err;
      } finally {
        stop.dispose();
      }
    });
  registerTargetControl(program);
}
