/**
 * SIGHUP: reads the config again and applies what can change while running
 * (the TLS certificate and key, log_level, the limits) without dropping a
 * connection. A config or certificate that fails to load changes nothing:
 * the server goes on with what it had, and the log says why.
 */
import type { ServerConfig } from '../config.js';
import { effectiveLevel, type Logger } from '../log.js';
import type { MupdateServer } from '../mupdate/server.js';
import { loadTls, sessionSettings } from './server-settings.js';

/** Settings read only at start: a change to one of them is reported, not applied. */
const RESTART_ONLY: ReadonlyArray<[string, (c: ServerConfig) => unknown]> = [
  ['listen', (c) => c.listen],
  ['data', (c) => c.dataDir],
  ['admins', (c) => c.admins],
  ['allow_non_admins', (c) => c.allowNonAdmins],
  ['saslauthd_socket', (c) => c.saslauthdSocket],
  ['sasl_mech_list', (c) => c.saslMechanisms],
  ['auth_cache_seconds', (c) => c.authCacheTtlMs],
  ['directory_order', (c) => c.order],
  ['change_log_retention', (c) => c.changeLogRetention],
  ['dump_workers', (c) => c.dumpWorkers],
  ['dump_worker_idle', (c) => c.dumpWorkerIdleMs],
  ['etcd_*', (c) => c.etcd],
  ['mupdate_* and slave_*', (c) => c.upstream],
  ['frontend_db, kick_socket', (c) => c.frontend],
  ['log_format', (c) => c.logFormat],
];

export class Reloader {
  private server: MupdateServer | null = null;
  private current: ServerConfig | null = null;

  constructor(
    private readonly log: Logger,
    private readonly resolve: () => ServerConfig,
  ) {
    // Installed before anything opens: SIGHUP's default action would end the process.
    process.on('SIGHUP', () => this.reload());
  }

  /** From now on SIGHUP applies to this server, which runs with `config`. */
  attach(server: MupdateServer, config: ServerConfig): void {
    this.server = server;
    this.current = config;
  }

  reload(): void {
    if (!this.server || !this.current) {
      this.log.info('SIGHUP while starting: nothing to reload yet');
      return;
    }
    let next: ServerConfig;
    let tls: ReturnType<typeof loadTls>;
    try {
      next = this.resolve();
      tls = loadTls(next);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'reload failed; the old settings and certificate stay in use');
      return;
    }
    const previous = this.current;
    this.server.reconfigure({
      settings: sessionSettings(next),
      tls,
      maxConnections: next.maxConnections,
      admission: { maxPendingPerHost: next.maxConnectionsPerHost, failedLoginsPerMinute: next.maxFailedLoginsPerHost },
    });
    this.log.level = effectiveLevel(next.logLevel);
    const changed = RESTART_ONLY.filter(([, get]) => JSON.stringify(get(previous)) !== JSON.stringify(get(next))).map(([k]) => k);
    if (changed.length) this.log.warn({ settings: changed }, `reload: some changes need a restart: ${changed.join(', ')}`);
    // What is not applied stays as it runs, so the next reload compares against that.
    this.current = keepRestartOnly(previous, next);
    this.log.info({ tls: tls !== undefined, level: this.log.level }, 'reloaded: TLS certificate, log level and limits');
  }
}

/** `next`, with the restart-only settings as they run now. */
function keepRestartOnly(running: ServerConfig, next: ServerConfig): ServerConfig {
  return {
    ...next,
    listen: running.listen,
    dataDir: running.dataDir,
    admins: running.admins,
    allowNonAdmins: running.allowNonAdmins,
    saslauthdSocket: running.saslauthdSocket,
    saslMechanisms: running.saslMechanisms,
    authCacheTtlMs: running.authCacheTtlMs,
    order: running.order,
    changeLogRetention: running.changeLogRetention,
    dumpWorkers: running.dumpWorkers,
    dumpWorkerIdleMs: running.dumpWorkerIdleMs,
    etcd: running.etcd,
    upstream: running.upstream,
    frontend: running.frontend,
    logFormat: running.logFormat,
  };
}
