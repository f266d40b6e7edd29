/**
 * The exposition of a served model: every layer's status line as metric
 * families (status-metrics.ts, as for a kernel device), the I/O the export's
 * clients made of the target (counts, bytes, errors, latency histograms),
 * and the NBD server's connection counts. Read on the event loop between
 * requests, like a `status` on the control socket: for a dm-remap-v4
 * target each scrape is the status call the module sees from a monitor.
 */
import type { ControlLayer } from '../nbd/control-socket.js';
import type { NbdServerStats } from '../nbd/server.js';
import { log } from '../util/log.js';
import { type MetricFamily, MetricSet, renderOpenMetrics } from './exposition.js';
import type { IoMetrics } from './io-metrics.js';
import { type LayerStatus, snapshotLayers, statusFamilies } from './status-metrics.js';

export interface ServedMetricsSource {
  layers: readonly ControlLayer[];
  /** I/O through the export, counted at the top layer. */
  io?: IoMetrics;
  nbd?: NbdServerStats;
}

function nbdFamilies(s: NbdServerStats): MetricFamily[] {
  const counter = (name: string, help: string, value: number): MetricFamily => ({ name, type: 'counter', help, points: [{ labels: {}, value }] });
  return [
    {
      name: 'remapsim_nbd_connections',
      type: 'gauge',
      help: 'NBD connections open now, in the handshake and in transmission.',
      points: [{ labels: {}, value: s.connections }],
    },
    counter('remapsim_nbd_connections_accepted', 'NBD connections accepted since the server started.', s.connectionsTotal),
    counter('remapsim_nbd_connections_refused', 'NBD connections closed at once because the server was full.', s.refused),
    counter('remapsim_nbd_handshake_timeouts', 'NBD connections closed for not finishing the handshake in time.', s.handshakeTimeouts),
    counter('remapsim_nbd_protocol_errors', 'NBD connections dropped for breaking the protocol.', s.protocolErrors),
    counter('remapsim_nbd_requests', 'NBD requests received, every command.', s.requests),
    counter('remapsim_nbd_request_errors', 'NBD requests answered with an error, refused or failed.', s.errors),
  ];
}

/** Collects the families of a served model; each layer's table line is read once (it does not change). */
export class ServedMetrics {
  private readonly tables = new Map<string, string>();

  constructor(private readonly src: ServedMetricsSource) {}

  private layerStatus(l: ControlLayer): LayerStatus[] {
    try {
      let table = this.tables.get(l.name);
      if (table === undefined) {
        table = l.target.table();
        this.tables.set(l.name, table);
      }
      const count = (l.target as { badBlockCount?: unknown }).badBlockCount;
      return snapshotLayers(l.name, { time: new Date(), status: l.target.status(), table, dustBadBlocks: typeof count === 'number' ? count : undefined });
    } catch (err) {
      log.warn(`metrics: the status of layer ${l.name} could not be read: ${(err as Error).message}`);
      return [];
    }
  }

  families(): MetricFamily[] {
    const set = new MetricSet();
    set.addAll(statusFamilies(this.src.layers.flatMap((l) => this.layerStatus(l))));
    if (this.src.io) set.addAll(this.src.io.families('target'));
    if (this.src.nbd) set.addAll(nbdFamilies(this.src.nbd));
    return set.list();
  }

  openMetrics(): string {
    return renderOpenMetrics(this.families());
  }
}
