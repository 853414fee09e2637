/**
 * The store conformance suite (test/suites/store-conformance.ts) on the etcd
 * store: a real 3-member etcd, each test on its own prefix, the LMDB view in
 * a temp dir, and a second store on the same prefix (another node) as peer.
 */
import { removeDir, tempDir } from './helpers/server.js';
import { freshPrefix, openEtcdStore, useEtcdCluster } from './helpers/cluster-nodes.js';
import { storeConformance } from './suites/store-conformance.js';

const shared = useEtcdCluster();

storeConformance('etcd', async (order) => {
  const prefix = freshPrefix();
  const dirs = [tempDir('store-etcd-'), tempDir('store-etcd-peer-')];
  const store = await openEtcdStore(shared.cluster, prefix, dirs[0], order);
  const peer = await openEtcdStore(shared.cluster, prefix, dirs[1], order);
  return {
    store,
    peer,
    async dispose() {
      await store.close();
      await peer.close();
      for (const d of dirs) removeDir(d);
    },
  };
});
