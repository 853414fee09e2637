/** `mupdated slave`: follows a master and serves its copy read-only. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_TIMER_SECONDS, parseMasterList } from '../config.js';
import { Follower } from '../resync/follower.js';
import { SlaveLag } from '../metrics/slave-lag.js';
import { readPasswordFile } from '../client/password.js';
import { startFrontend, resolveFrontend } from '../frontend/frontend.js';
import { UserDb } from '../sasl/user-db.js';
import { LmdbDirectoryStore } from '../store/lmdb-store.js';
import { securePrivateFolder } from '../store/private-files.js';
import {
  configuredLogger,
  logImapdConf,
  logNarrowed,
  resolveServerConfig,
  startServer,
  type ResolvedConfig,
  type ServerFlags,
} from './master.js';
import { Reloader } from './reload.js';
import { listenerErrorLog } from './open-directory.js';

export interface SlaveFlags extends ServerFlags {
  master?: string | undefined;
  user?: string | undefined;
  'password-file'?: string | undefined;
  'retry-delay'?: string | undefined;
  'tls-ca'?: string | undefined;
  'frontend-db'?: string | undefined;
  'kick-socket'?: string | undefined;
}

/** The slave's config: the files, then the server flags, then the slave's own flags. */
export function resolveSlaveConfig(flags: SlaveFlags): ResolvedConfig {
  const resolved = resolveServerConfig(flags, 'slave');
  const up = resolved.config.upstream;
  if (flags.master) up.server = flags.master;
  if (flags.user) up.authname = flags.user;
  if (flags['tls-ca']) up.tlsCa = flags['tls-ca'];
  if (flags['password-file']) up.password = readPasswordFile(flags['password-file']);
  if (flags['retry-delay'] !== undefined) {
    const n = Number(flags['retry-delay']);
    if (!(n >= 0 && n <= MAX_TIMER_SECONDS)) throw new Error(`--retry-delay: expected seconds from 0 to ${MAX_TIMER_SECONDS}`);
    up.retryDelaySeconds = n;
  }
  if (!up.server) throw new Error('slave needs --master HOST:PORT[,HOST:PORT...] (or mupdate_server in the config file)');
  const user = up.authname ?? up.username;
  if (!user) throw new Error('slave needs --user NAME (or mupdate_authname/mupdate_username)');
  if (up.password === undefined) throw new Error('slave needs --password-file FILE (or mupdate_password)');
  parseMasterList(up.server);
  return resolved;
}

export async function runSlave(flags: SlaveFlags): Promise<void> {
  const { config, imapd } = resolveSlaveConfig(flags);
  const up = config.upstream;
  const user = (up.authname ?? up.username)!;
  const masters = parseMasterList(up.server!);
  const log = configuredLogger(config);
  const reloader = new Reloader(log, () => resolveSlaveConfig(flags).config);
  logImapdConf(log, imapd);
  logNarrowed(log, securePrivateFolder(config.dataDir));
  const store = LmdbDirectoryStore.open(config.dataDir, {
    order: config.order,
    changeLogRetention: config.changeLogRetention,
    onListenerError: listenerErrorLog(log),
  });
  const users = UserDb.open(config.dataDir);
  const lag = new SlaveLag();
  const follower = new Follower({
    masters,
    upstream: {
      user,
      authzid: up.username ?? user,
      password: up.password!,
      starttls: up.starttls,
      tlsInsecure: up.tlsInsecure,
      tlsCa: up.tlsCa === undefined ? undefined : readFileSync(up.tlsCa),
    },
    retryDelaySeconds: up.retryDelaySeconds,
    connectTimeoutMs: up.connectTimeoutSeconds * 1000,
    dumpTimeoutMs: up.dumpTimeoutSeconds * 1000,
    resume: up.resume,
    store,
    log,
    statusFile: join(config.dataDir, 'status.json'),
    lag,
  });
  const frontendSettings = resolveFrontend(
    {
      db: flags['frontend-db'] ?? config.frontend.db,
      kickSocket: flags['kick-socket'] ?? config.frontend.kickSocket,
    },
    imapd,
    log,
  );
  const frontend = frontendSettings.db ? startFrontend(frontendSettings, store, follower, log) : null;
  const running = await startServer(
    config,
    log,
    {
      kind: 'slave',
      master: up.server!,
      syncWithMaster: () => follower.syncWithMaster(),
      ready: follower.ready,
      isReady: () => follower.isReady,
    },
    store,
    users,
    async () => {
      await follower.stop();
      await frontend?.close();
    },
    { follower, lag },
  );
  follower.start();
  reloader.attach(running.server, config);
}
