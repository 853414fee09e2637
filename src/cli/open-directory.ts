/** Opens the directory a command works on: LMDB in --data, or with --etcd the cluster (through a view in --data). */
import type { EtcdConfig, ServerConfig } from '../config.js';
import type { Logger } from '../log.js';
import { parseEndpoints } from '../store/etcd/endpoints.js';
import type { ListenerFailure } from '../store/listeners.js';
import { LmdbDirectoryStore } from '../store/lmdb-store.js';
import type { DirectoryStore } from '../store/types.js';
import type { UserMirror, LocalUsers } from '../store/etcd/user-mirror.js';
import type { EtcdFlags } from './etcd-flags.js';

export function applyEtcdFlags(config: { etcd: EtcdConfig }, flags: EtcdFlags): void {
  if (flags.etcd) config.etcd.endpoints = parseEndpoints(flags.etcd);
  else config.etcd.endpoints = config.etcd.endpoints.length ? parseEndpoints(config.etcd.endpoints.join(',')) : [];
  if (flags['etcd-prefix']) config.etcd.prefix = flags['etcd-prefix'];
  if (flags['etcd-ca']) config.etcd.ca = flags['etcd-ca'];
  if (flags['etcd-cert']) config.etcd.cert = flags['etcd-cert'];
  if (flags['etcd-key']) config.etcd.key = flags['etcd-key'];
  if (!config.etcd.prefix.endsWith('/')) config.etcd.prefix += '/';
}

/** Reports a change listener's failure (the change itself is committed and still told to the other listeners). */
export function listenerErrorLog(log: Logger): ListenerFailure {
  return (err, change) =>
    log.error(
      { err: err instanceof Error ? err.message : String(err), seq: change.seq, name: change.name.toString('latin1') },
      'a directory change listener failed',
    );
}

export async function openDirectory(config: ServerConfig, log: Logger, o: { mustExist?: boolean } = {}): Promise<DirectoryStore> {
  if (config.etcd.endpoints.length) {
    const { EtcdDirectoryStore } = await import('../store/etcd/etcd-store.js');
    const store = await EtcdDirectoryStore.open(
      {
        ...config.etcd,
        dataDir: config.dataDir,
        order: config.order,
        changeLogRetention: config.changeLogRetention,
        mustExist: o.mustExist,
      },
      log,
    );
    log.info(
      { etcd: config.etcd.endpoints, prefix: config.etcd.prefix, dbid: store.id, revision: store.viewRevision, order: config.order },
      'cluster directory opened (etcd, local view in the data folder)',
    );
    return store;
  }
  const store = LmdbDirectoryStore.open(config.dataDir, {
    order: config.order,
    changeLogRetention: config.changeLogRetention,
    mustExist: o.mustExist,
    onListenerError: listenerErrorLog(log),
  });
  if (store.converted) log.info(`directory converted to format 2: ${store.converted.entries} entries`);
  log.info({ data: config.dataDir, lastChange: store.lastSeq, order: config.order }, 'directory opened');
  return store;
}

/**
 * A cluster node's users.mdb follows the cluster's login records in etcd.
 * Waits for the first full read at most the write timeout: with etcd away
 * the node starts on the users it has.
 */
export async function mirrorClusterUsers(config: ServerConfig, users: LocalUsers, log: Logger): Promise<UserMirror> {
  const { etcdClient } = await import('../store/etcd/connect.js');
  const { EtcdLayout } = await import('../store/etcd/layout.js');
  const { UserMirror } = await import('../store/etcd/user-mirror.js');
  const client = etcdClient(config.etcd);
  const mirror = new UserMirror(client, new EtcdLayout(config.etcd.prefix), users, config.dataDir, log, config.etcd.writeTimeoutMs, () =>
    client.close(),
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    mirror.ready,
    new Promise((r) => {
      timer = setTimeout(r, config.etcd.writeTimeoutMs);
    }),
  ]);
  clearTimeout(timer);
  return mirror;
}
