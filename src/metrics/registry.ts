/**
 * The Prometheus metrics of one server (names in the README, "Metrics"):
 * counters and histograms fed by the hooks (hooks.ts), gauges read from the
 * running server at scrape time through a ServerProbe.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { dumpsInProgress, liveStreams, type MetricsSink } from './hooks.js';

/** What the gauges read when Prometheus scrapes. */
export interface ServerProbe {
  role: 'master' | 'slave';
  connectionsByState(): Map<string, number>;
  openConflicts(): number;
  /** A slave's view of its master; absent on a master. */
  slave?: (() => { streaming: boolean; synced: boolean; lagChanges: number; lagSeconds: number }) | undefined;
  /** A cluster node's view of etcd; absent without etcd. */
  etcd?: (() => Promise<{ reachable: boolean; viewLagRevisions: number | null }>) | undefined;
}

const PREFIX = 'mupdated_';
const CONNECTION_STATES = ['noauth', 'auth', 'streaming', 'waiting_for_sync'] as const;

export interface ServerMetrics {
  registry: Registry;
  sink: MetricsSink;
}

export function createServerMetrics(probe: ServerProbe): ServerMetrics {
  const registry = new Registry();
  const registers = [registry];
  addProcessMetrics(registry);

  const commands = new Counter({
    name: `${PREFIX}commands_total`,
    help: 'Commands answered, by command and result (OK, NO, BAD).',
    labelNames: ['command', 'result'] as const,
    registers,
  });
  const commitSeconds = new Histogram({
    name: `${PREFIX}commit_duration_seconds`,
    help: 'Time from a write being asked for to its durable commit.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const commitBatch = new Histogram({
    name: `${PREFIX}commit_batch_size`,
    help: 'Writes decided together in one commit round.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    registers,
  });
  const streamDrops = new Counter({
    name: `${PREFIX}stream_drops_total`,
    help: 'UPDATE streams closed because their client fell too far behind.',
    registers,
  });
  const failedLogins = new Counter({
    name: `${PREFIX}failed_logins_total`,
    help: 'Logins refused on their credentials.',
    registers,
  });
  const unmaps = new Counter({
    name: `${PREFIX}directory_unmaps_total`,
    help: 'Times an idle server unmapped its directory file (the pages it had touched left its RSS).',
    registers,
  });
  const dumpSeconds = new Histogram({
    name: `${PREFIX}dump_duration_seconds`,
    help: 'Duration of whole-directory dumps, by command (LIST, UPDATE with XRESUME).',
    labelNames: ['command'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers,
  });

  new Gauge({
    name: `${PREFIX}connections`,
    help: 'Open client connections by state.',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const counts = probe.connectionsByState();
      for (const state of CONNECTION_STATES) this.set({ state }, counts.get(state) ?? 0);
    },
  });
  new Gauge({
    name: `${PREFIX}stream_listeners`,
    help: 'UPDATE streams open.',
    registers,
    collect() {
      this.set(liveStreams().count);
    },
  });
  new Gauge({
    name: `${PREFIX}stream_pending_bytes`,
    help: 'Bytes of changes queued for UPDATE streams, not yet written.',
    registers,
    collect() {
      this.set(liveStreams().pendingBytes);
    },
  });
  new Gauge({
    name: `${PREFIX}dumps_in_progress`,
    help: 'Whole-directory dumps (LIST, UPDATE, XRESUME) running.',
    registers,
    collect() {
      this.set(dumpsInProgress());
    },
  });
  new Gauge({
    name: `${PREFIX}open_conflicts`,
    help: 'Duplicate-mailbox claims waiting for an operator.',
    registers,
    collect() {
      this.set(probe.openConflicts());
    },
  });
  new Gauge({
    name: `${PREFIX}info`,
    help: 'Always 1; the role label says master or slave.',
    labelNames: ['role'] as const,
    registers,
    collect() {
      this.set({ role: probe.role }, 1);
    },
  });
  if (probe.slave) addSlaveGauges(registers, probe.slave);
  if (probe.etcd) addEtcdGauges(registers, probe.etcd);

  return {
    registry,
    sink: {
      commandAnswered: (command, result) => commands.inc({ command, result }),
      writeCommitted: (seconds) => commitSeconds.observe(seconds),
      commitBatch: (size) => commitBatch.observe(size),
      streamDropped: () => streamDrops.inc(),
      failedLogin: () => failedLogins.inc(),
      dumpFinished: (command, seconds) => dumpSeconds.observe({ command }, seconds),
      directoryUnmapped: () => unmaps.inc(),
    },
  };
}

/**
 * prom-client's process and Node metrics under their usual names (process_*,
 * nodejs_*), less the gauges named `_total`, which `promtool check metrics`
 * rejects (only counters may end so).
 */
function addProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const m of registry.getMetricsAsArray()) {
    if (m.name.endsWith('_total') && !(m instanceof Counter)) registry.removeSingleMetric(m.name);
  }
}

function addSlaveGauges(registers: Registry[], slave: NonNullable<ServerProbe['slave']>): void {
  new Gauge({
    name: `${PREFIX}slave_streaming`,
    help: "1 while the slave follows its master's UPDATE stream.",
    registers,
    collect() {
      this.set(slave().streaming ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}slave_synced`,
    help: '1 once the slave holds a complete copy (first sync done).',
    registers,
    collect() {
      this.set(slave().synced ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}slave_lag_changes`,
    help: 'Changes received from the master and not yet applied.',
    registers,
    collect() {
      this.set(slave().lagChanges);
    },
  });
  new Gauge({
    name: `${PREFIX}slave_lag_seconds`,
    help: 'Seconds since the slave last held everything its master had sent (0 when caught up).',
    registers,
    collect() {
      this.set(slave().lagSeconds);
    },
  });
}

function addEtcdGauges(registers: Registry[], etcd: NonNullable<ServerProbe['etcd']>): void {
  // One etcd round trip per scrape, shared by both gauges.
  let pending: Promise<{ reachable: boolean; viewLagRevisions: number | null }> | null = null;
  const read = () => {
    pending ??= etcd().finally(() => {
      setImmediate(() => {
        pending = null;
      });
    });
    return pending;
  };
  new Gauge({
    name: `${PREFIX}etcd_reachable`,
    help: "1 when etcd answered the last scrape's read in time.",
    registers,
    async collect() {
      this.set((await read()).reachable ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}etcd_view_lag_revisions`,
    help: 'etcd revisions of the directory the local view has not applied yet.',
    registers,
    async collect() {
      // NaN: unknown while etcd does not answer (comparisons with it are false, so no alert fires on it).
      this.set((await read()).viewLagRevisions ?? Number.NaN);
    },
  });
}
