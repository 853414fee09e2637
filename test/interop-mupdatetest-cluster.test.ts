/**
 * The real `mupdatetest` (test/suites/mupdatetest.ts) against every node of
 * a cluster: three nodes on one etcd prefix of a real 3-member etcd; every
 * test runs on each node, with the change from another client made through
 * the next node.
 */
import { useEtcdCluster } from './helpers/cluster-nodes.js';
import { mupdatetestTests } from './suites/mupdatetest.js';

const shared = useEtcdCluster();
mupdatetestTests(async () => {
  const first = await shared.node();
  const prefix = shared.prefixOf(first.dataDir);
  return [first, await shared.node({ prefix }), await shared.node({ prefix })];
});
