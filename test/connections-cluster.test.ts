/**
 * The tests of test/suites/connections.ts on a node of a real 3-member etcd
 * cluster: the same assertions as on a single master. Each server the tests
 * start is a node on a fresh etcd prefix (a directory of its own); a restart
 * on the same data folder keeps its prefix.
 */
import { useEtcdCluster } from './helpers/cluster-nodes.js';
import { connectionTests } from './suites/connections.js';

const shared = useEtcdCluster();
connectionTests((options) => shared.node(options));
