/**
 * One real 3-member etcd cluster per test file (started in test.before,
 * stopped after), and what tests make on it: cluster stores and mupdated
 * nodes, each fresh one on its own etcd prefix (its own directory), so
 * tests of one file can share the cluster and still run concurrently.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../../src/log.js';
import { EtcdDirectoryStore } from '../../src/store/etcd/etcd-store.js';
import type { DirectoryOrder } from '../../src/store/types.js';
import { EtcdCluster } from './etcd-cluster.js';
import { removeDir, startMupdated, type RunningMupdated, type StartOptions } from './server.js';

/** A fresh etcd prefix: a directory of its own on a shared cluster. */
export function freshPrefix(): string {
  return `/t-${randomUUID()}/`;
}

export interface SharedCluster {
  /** The cluster (available once the test.before hook ran). */
  readonly cluster: EtcdCluster;
  /**
   * Starts a node of the cluster. A fresh start (no dataDir) gets a directory
   * of its own (a new prefix); a restart on a dataDir keeps that node's
   * prefix; `prefix` joins an existing directory (another node of it).
   */
  node(options?: StartOptions & { prefix?: string }): Promise<RunningMupdated>;
  /** The prefix of the node started on `dataDir`. */
  prefixOf(dataDir: string): string;
}

/** Registers the hooks that start a 3-member etcd for this file and stop it afterwards. */
export function useEtcdCluster(): SharedCluster {
  let cluster: EtcdCluster | undefined;
  const prefixes = new Map<string, string>();
  const nodes: RunningMupdated[] = [];
  // Serial: the file's other hooks and tests wait for the cluster.
  test.serial.before(async () => {
    cluster = await EtcdCluster.start(3);
  });
  test.after.always(async () => {
    // Nodes first (stop() of a stopped node just returns): a node stopping while etcd goes away would wait for it.
    await Promise.all(nodes.map((n) => n.stop()));
    await cluster?.stop();
  });
  const shared: SharedCluster = {
    get cluster() {
      if (!cluster) throw new Error('the etcd cluster is not running (test.before has not run)');
      return cluster;
    },
    async node(options = {}) {
      const { prefix: joined, ...rest } = options;
      const prefix = joined ?? (rest.dataDir !== undefined ? prefixes.get(rest.dataDir) : undefined) ?? freshPrefix();
      const server = await startMupdated({
        ...rest,
        args: [...(rest.args ?? []), '--etcd', shared.cluster.etcdFlag, '--etcd-prefix', prefix],
      });
      prefixes.set(server.dataDir, prefix);
      nodes.push(server);
      // A node, not a single master: the directory it opened is the cluster's.
      await server.waitForLog(/cluster directory opened/, 1_000);
      return server;
    },
    prefixOf(dataDir) {
      const p = prefixes.get(dataDir);
      if (p === undefined) throw new Error(`no node was started on ${dataDir}`);
      return p;
    },
  };
  return shared;
}

/** Opens a cluster store in-process (view in `dataDir`), as a node does. */
export function openEtcdStore(cluster: EtcdCluster, prefix: string, dataDir: string, order: DirectoryOrder): Promise<EtcdDirectoryStore> {
  return EtcdDirectoryStore.open({ endpoints: cluster.endpoints, prefix, writeTimeoutMs: 5_000, dataDir, order }, createLogger('silent'));
}

export interface FileEtcd {
  /** The cluster (available once the test.before hook ran). */
  readonly etcd: EtcdCluster;
  /** Servers the file started: stopped and their folders removed afterwards. */
  readonly started: RunningMupdated[];
  /** Folders removed afterwards. */
  readonly folders: string[];
}

/**
 * Registers the hooks for a file that starts its own servers and tools
 * against one 3-member etcd: the cluster first, and afterwards the servers,
 * the folders, then the cluster.
 */
export function etcdForFile(): FileEtcd {
  let etcd: EtcdCluster | undefined;
  const started: RunningMupdated[] = [];
  const folders: string[] = [];
  test.before(async () => {
    etcd = await EtcdCluster.start(3);
  });
  test.after.always(async () => {
    for (const s of started) {
      await s.stop();
      removeDir(s.dataDir);
    }
    for (const f of folders) removeDir(f);
    await etcd?.stop();
  });
  return {
    get etcd() {
      if (!etcd) throw new Error('the etcd cluster is not running (test.before has not run)');
      return etcd;
    },
    started,
    folders,
  };
}
