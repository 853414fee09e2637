/**
 * What an operator's tools see of a running server: the metrics listener
 * (`metrics_listen`) and systemd's readiness notice. Both say "ready" only
 * when the server can do its job: a master once it listens and its dump
 * worker is up, a slave once its first sync is done too (and, for /readyz,
 * while it streams from its master).
 */
import type { ServerConfig } from '../config.js';
import type { Logger } from '../log.js';
import { installMetricsSink } from '../metrics/hooks.js';
import type { MetricsListener } from '../metrics/http-server.js';
import type { ServerProbe } from '../metrics/registry.js';
import type { MupdateServer } from '../mupdate/server.js';
import type { Role } from '../mupdate/session.js';
import type { Follower } from '../resync/follower.js';
import type { SlaveLag } from '../metrics/slave-lag.js';
import type { DirectoryStore } from '../store/types.js';
import { notifySystemdReady } from './systemd-notify.js';

export interface ObservedServer {
  server: MupdateServer;
  store: DirectoryStore;
  role: Role;
  /** A slave's link to its master. */
  slave?: FollowedMaster | undefined;
  /** True while the dump worker is still starting (a LIST or UPDATE would wait for it). */
  dumpsStarting?: () => boolean;
  /** True once the server is shutting down (it takes no new connections). */
  stopping?: () => boolean;
}

/** A slave's follower (its state) and how far behind its master it is. */
export interface FollowedMaster {
  follower: Follower;
  lag: SlaveLag;
}

/** Why the server cannot do its job now; null when it can. */
export function notReadyReason(o: ObservedServer): string | null {
  const follower = o.slave?.follower;
  if (o.stopping?.()) return 'shutting down';
  if (o.dumpsStarting?.()) return 'the dump worker is starting';
  if (!follower) return null;
  if (!follower.isReady) return 'the first sync with the master is not done';
  if (follower.status.state !== 'streaming') return `not streaming from the master (${follower.status.state})`;
  return null;
}

function probeOf(o: ObservedServer): ServerProbe {
  const slave = o.slave;
  const store = o.store;
  return {
    role: o.role.kind,
    connectionsByState: () => o.server.connectionsByState(),
    openConflicts: () => o.store.openConflictCount(),
    slave:
      slave &&
      (() => {
        const { follower, lag } = slave;
        const behind = lag.snapshot();
        return {
          streaming: follower.status.state === 'streaming',
          synced: follower.isReady,
          lagChanges: behind.changes,
          lagSeconds: behind.seconds,
        };
      }),
    etcd: store.health ? () => store.health!() : undefined,
  };
}

/**
 * A cluster node's readiness also needs etcd: without it every write is
 * refused. Asked at most once a second, so a probe loop does not become
 * load on etcd; a store without etcd is always ready here.
 */
function etcdReadiness(store: DirectoryStore): () => Promise<string | null> {
  let last: { at: number; reason: string | null } = { at: -Infinity, reason: null };
  let asking: Promise<string | null> | null = null;
  return () => {
    if (!store.health) return Promise.resolve(null);
    if (performance.now() - last.at < 1000) return Promise.resolve(last.reason);
    asking ??= store
      .health()
      .then(
        (h) => (h.reachable ? null : 'etcd does not answer (writes are refused)'),
        () => 'etcd does not answer (writes are refused)',
      )
      .then((reason) => {
        last = { at: performance.now(), reason };
        asking = null;
        return reason;
      });
    return asking;
  };
}

/** Starts the metrics listener when configured (null when not). */
export async function startMetrics(config: ServerConfig, log: Logger, o: ObservedServer): Promise<MetricsListener | null> {
  if (!config.metricsListen) return null;
  // prom-client is loaded only when metrics are asked for.
  const { createServerMetrics } = await import('../metrics/registry.js');
  const { startMetricsListener } = await import('../metrics/http-server.js');
  const metrics = createServerMetrics(probeOf(o));
  installMetricsSink(metrics.sink);
  const etcdReason = etcdReadiness(o.store);
  const listener = await startMetricsListener(config.metricsListen, metrics.registry, {
    notReadyReason: async () => notReadyReason(o) ?? (await etcdReason()),
  });
  log.info({ host: listener.address.host, port: listener.address.port }, 'metrics listening (/metrics, /healthz, /readyz)');
  return listener;
}

/**
 * Says the server is ready (a log line, and systemd's Type=notify) once it
 * can do its whole job at full speed: its dump worker is up (`dumpsWarm`),
 * and a slave has finished its first sync.
 */
export function announceReadiness(log: Logger, o: ObservedServer, dumpsWarm: Promise<void>): void {
  const synced = o.role.kind === 'slave' ? o.role.ready : Promise.resolve();
  void Promise.all([synced, dumpsWarm]).then(() => {
    log.info({ role: o.role.kind }, 'ready to serve');
    return notifySystemdReady(log);
  });
}
