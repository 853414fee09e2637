/**
 * The tests of test/suites/crash.ts on a node of a real 3-member etcd
 * cluster: the same assertions as on a single master. Each server the tests
 * start is a node on a fresh etcd prefix (a directory of its own); a restart
 * on the same data folder keeps its prefix.
 */
import { useEtcdCluster } from './helpers/cluster-nodes.js';
import { crashTests } from './suites/crash.js';

const shared = useEtcdCluster();
// A node's restart includes its catch-up with etcd: 5 storm rounds (unless CRASH_ROUNDS says) keep the file short.
crashTests((options) => shared.node(options), 5);
