/**
 * The tests of test/suites/abuse.ts and test/suites/protocol-fuzz.ts on a node of a real 3-member etcd
 * cluster: the same assertions as on a single master (the fuzzing also on a
 * second node of the same directory, which must end with the same entries). Each server the tests
 * start is a node on a fresh etcd prefix (a directory of its own); a restart
 * on the same data folder keeps its prefix.
 */
import { useEtcdCluster } from './helpers/cluster-nodes.js';
import { abuseTests } from './suites/abuse.js';
import { protocolFuzzTests } from './suites/protocol-fuzz.js';

const shared = useEtcdCluster();
abuseTests((options) => shared.node(options));
protocolFuzzTests(
  (options) => shared.node(options),
  (first) => shared.node({ prefix: shared.prefixOf(first.dataDir) }),
);
