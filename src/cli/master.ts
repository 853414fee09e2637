/** `mupdated master`: the authoritative directory. */
import { applySettings, defaultConfig, logFormat, parseHostPort, readConfigFile, type ServerConfig } from '../config.js';
import { applyImapdConf, type ImapdConfReport } from '../cyrus-conf/settings.js';
import { createLogger, type Logger } from '../log.js';
import { startAdminSocket, type AdminSocket } from '../admin/socket-server.js';
import { InThreadDumps, type DumpSource } from '../mupdate/dump-lines.js';
import { DumpPool } from '../mupdate/dump-pool.js';
import { MupdateServer } from '../mupdate/server.js';
import type { Role } from '../mupdate/session.js';
import { Authenticator } from '../sasl/authenticator.js';
import { UserDb } from '../sasl/user-db.js';
import { describeNarrowed, securePrivateFolder, type Narrowed } from '../store/private-files.js';
import type { DirectoryStore } from '../store/types.js';
import type { EtcdFlags } from './etcd-flags.js';
import { applyEtcdFlags, mirrorClusterUsers, openDirectory } from './open-directory.js';
import { Reloader } from './reload.js';
import { loadTls, sessionSettings } from './server-settings.js';
import { announceReadiness, startMetrics } from './observability.js';
import type { FollowedMaster } from './observability.js';
import type { MetricsListener } from '../metrics/http-server.js';
import { IdleTrim, type MappingRelease } from '../mupdate/idle-trim.js';

/** How long the server must be idle before its heap is trimmed (idle-trim.ts). */
const IDLE_TRIM_PERIOD_MS = 10_000;

export interface ServerFlags extends EtcdFlags {
  listen?: string | undefined;
  data?: string | undefined;
  servername?: string | undefined;
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  config?: string | undefined;
  'imapd-conf'?: string | undefined;
  'log-format'?: string | undefined;
  'metrics-listen'?: string | undefined;
}

export interface ResolvedConfig {
  config: ServerConfig;
  /** What the Cyrus imapd.conf gave and left out, when one was read. */
  imapd: ImapdConfReport | null;
}

/**
 * Config from defaults, then a Cyrus imapd.conf (`--imapd-conf`, or `imapd_conf`
 * in --config), then --config, then flags. `ignore`: file keys another mode reads.
 */
export function resolveServerConfig(flags: ServerFlags, role: 'master' | 'slave', ignore: readonly string[] = []): ResolvedConfig {
  const config = defaultConfig();
  const own = flags.config ? readConfigFile(flags.config) : new Map<string, string>();
  const imapdPath = flags['imapd-conf'] ?? own.get('imapd_conf');
  const imapd = imapdPath ? applyImapdConf(config, imapdPath, role) : null;
  applySettings(config, own, ignore);
  if (imapdPath) config.imapdConf = imapdPath;
  if (flags['log-format']) config.logFormat = logFormat('--log-format', flags['log-format']);
  if (flags.listen) config.listen = parseHostPort(flags.listen);
  if (flags.data) config.dataDir = flags.data;
  if (flags.servername) config.servername = flags.servername;
  if (flags['tls-cert']) config.tlsCert = flags['tls-cert'];
  if (flags['tls-key']) config.tlsKey = flags['tls-key'];
  if (flags['metrics-listen']) config.metricsListen = parseHostPort(flags['metrics-listen']);
  applyEtcdFlags(config, flags);
  if (!!config.tlsCert !== !!config.tlsKey) throw new Error('TLS needs both a certificate and a key');
  return { config, imapd };
}

/** Config from defaults, the files and the flags (see resolveServerConfig). */
export function resolveConfig(flags: ServerFlags, ignore: readonly string[] = []): ServerConfig {
  return resolveServerConfig(flags, 'master', ignore).config;
}

/** The logger the config asks for. */
export function configuredLogger(config: ServerConfig): Logger {
  return createLogger({ level: config.logLevel, format: config.logFormat });
}

/** Says once, at start, which Cyrus keys were left out and what was read differently. */
export function logImapdConf(log: Logger, report: ImapdConfReport | null): void {
  if (!report) return;
  log.info(
    { file: report.file, ignored: report.ignored },
    `imapd.conf read; ${report.ignored.length} of its keys mean nothing to mupdated and were ignored`,
  );
  for (const note of report.notes) log.warn({ file: report.file }, `imapd.conf: ${note}`);
}

export { loadTls, sessionSettings } from './server-settings.js';

export interface RunningServer {
  server: MupdateServer;
  store: DirectoryStore;
  users: UserDb;
  stop(): Promise<void>;
}

/** Opens the store and users, starts listening, and installs SIGTERM/SIGINT handling. */
export async function startServer(
  config: ServerConfig,
  log: Logger,
  role: Role,
  store: DirectoryStore,
  users: UserDb,
  beforeClose: () => Promise<void> = async () => {},
  slave?: FollowedMaster,
): Promise<RunningServer> {
  const auth = new Authenticator(users, {
    admins: config.admins,
    allowNonAdmins: config.allowNonAdmins,
    saslauthdSocket: config.saslauthdSocket,
    saslService: 'mupdate',
    realm: config.servername,
    cacheTtlMs: config.authCacheTtlMs,
    onRehash: (user, err) => {
      if (err) log.warn({ user, err: err.message }, 'could not replace an old password hash');
      else log.info({ user }, 'password hash replaced by one at the current scrypt cost');
    },
    mechanisms: config.saslMechanisms,
  });
  const pool = config.dumpWorkers > 0 ? new DumpPool(config.dataDir, config.dumpWorkers, log, config.dumpWorkerIdleMs) : null;
  const dumps = pool ?? new InThreadDumps(store);
  const server = new MupdateServer({
    settings: sessionSettings(config),
    store,
    auth,
    log,
    role,
    tls: loadTls(config),
    maxConnections: config.maxConnections,
    dumps,
    admission: { maxPendingPerHost: config.maxConnectionsPerHost, failedLoginsPerMinute: config.maxFailedLoginsPerHost },
  });
  if (users.list().length === 0 && config.admins.length === 0) {
    log.warn(`no users yet: create the first admin with 'mupdated user add NAME --admin --data ${config.dataDir}'`);
  }
  const scram = auth.scramAvailability();
  if (scram.offered) log.info('SCRAM-SHA-256 offered beside PLAIN');
  else log.warn(`SCRAM-SHA-256 not offered: ${scram.reason}`);
  const trim = new IdleTrim(
    IDLE_TRIM_PERIOD_MS,
    log,
    releaseMappingOf(store, dumps, () => void stop().then(() => process.exit(1))),
  );
  // A dump worker's heap, freed when it exits after its idle period, is given back at the next idle check.
  if (pool) pool.onWorkerExit = () => trim.threadExited();
  let admin: AdminSocket | null = null;
  let metrics: MetricsListener | null = null;
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      log.info('shutting down');
      await beforeClose();
      await server.close();
      await metrics?.close();
      await dumps.close();
      trim.stop();
      await admin?.close();
      await store.close();
      await users.close();
      log.info('stopped');
    })();
    return stopping;
  };
  // Handlers first: a SIGTERM right after start still shuts down cleanly.
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => void stop().then(() => process.exit(0)));
  }
  await server.listen(config.listen);
  // After listening: the worker's start runs beside the first connections, not before them.
  let dumpsWarm = false;
  const warmed = dumps.warm().then(() => void (dumpsWarm = true));
  admin = await startAdminSocket(config.dataDir, store, log);
  const observed = { server, store, role, slave, dumpsStarting: () => !dumpsWarm, stopping: () => stopping !== null };
  metrics = await startMetrics(config, log, observed);
  announceReadiness(log, observed, warmed);
  return { server, store, users, stop };
}

/**
 * The idle trim's unmapping of the directory file (LMDB stores only), once no
 * dump worker has it open. A store that could not reopen its file is closed:
 * the server stops so that systemd starts it again.
 */
function releaseMappingOf(store: DirectoryStore, dumps: DumpSource, fail: () => void): MappingRelease | undefined {
  if (!store.releaseMapping) return undefined;
  const release = store.releaseMapping.bind(store);
  return async () => {
    if (dumps.threadsOpen) return false;
    try {
      return await release();
    } catch (err) {
      fail();
      throw err;
    }
  };
}

/** Says which modes of the data folder were found wider than private and narrowed. */
export function logNarrowed(log: Logger, narrowed: Narrowed[]): void {
  for (const n of narrowed) log.warn({ path: n.path }, describeNarrowed(n));
}

export async function runMaster(flags: ServerFlags): Promise<void> {
  const { config, imapd } = resolveServerConfig(flags, 'master');
  const log = configuredLogger(config);
  const reloader = new Reloader(log, () => resolveServerConfig(flags, 'master').config);
  logImapdConf(log, imapd);
  logNarrowed(log, securePrivateFolder(config.dataDir));
  const store = await openDirectory(config, log);
  const users = UserDb.open(config.dataDir);
  const mirror = config.etcd.endpoints.length ? await mirrorClusterUsers(config, users, log) : null;
  const running = await startServer(config, log, { kind: 'master' }, store, users, async () => {
    await mirror?.close();
  });
  reloader.attach(running.server, config);
}
