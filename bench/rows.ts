/** The table's rows: which workload each comes from, how its figure is read, and the target. */
import { PER_USER, usersOf } from './dataset.js';
import { cluster, clusterSizes, human, sizes } from './options.js';
import type { ServerKind } from './servers.js';
import type { Measurement } from './workload-kit.js';

export type WorkloadId =
  | 'list'
  | 'list200k'
  | 'create'
  | 'resync'
  | 'memEnd'
  | 'scaleLoad'
  | 'scaleList'
  | 'scaleDump'
  | 'scaleMemory'
  | 'scaleRestart'
  | 'dump'
  | 'memory'
  | 'dumpWriter'
  | 'act1'
  | 'act16'
  | 'churn'
  | 'find'
  | 'mixed'
  | 'propagation'
  | 'push'
  | 'pushCtlToMupdated'
  | 'idle'
  | 'frontend'
  | 'clAct16'
  | 'clLatency'
  | 'clFind'
  | 'clPropagation'
  | 'clLeaderKill'
  | 'clCatchUp';

export interface Row {
  id: string;
  workload: WorkloadId;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  get: (m: Measurement) => number | null;
  /** ratio: mupdated vs Cyrus (in the better direction) at least this; max/min: mupdated's own value (all given must hold). */
  target?: { ratio?: number; max?: number; min?: number };
  /** Only measured on one side. */
  only?: ServerKind;
  /** Compared with Cyrus's figure of this workload (cluster rows). */
  cyrus?: WorkloadId;
}

export const value = (m: Measurement) => m.value;
export const detail = (key: string) => (m: Measurement) => (typeof m.details[key] === 'number' ? m.details[key] : null);
const N = human(sizes.entries);
export const pushCount = usersOf(sizes.entries, 0).length * PER_USER;

export const ROWS: Row[] = [
  {
    id: 'activate_1x1',
    workload: 'act1',
    label: 'durable ACTIVATE, 1 conn x 1 in flight',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 2 },
  },
  {
    id: 'create_1x1',
    workload: 'create',
    label: 'Murder CREATE: RESERVE, then ACTIVATE, 1 conn, sequential',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 2 },
  },
  {
    id: 'activate_16x8',
    workload: 'act16',
    label: 'durable ACTIVATE, 16 conns x 8 pipelined',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 25, min: 50_000 },
  },
  {
    id: 'churn_8',
    workload: 'churn',
    label: 'churn: connect+login+ACTIVATE+LOGOUT, 8 clients',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 1 },
  },
  {
    id: 'find_16x8',
    workload: 'find',
    label: 'FIND, 16 conns x 8 pipelined',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 2 },
  },
  {
    id: 'list_small',
    workload: 'list200k',
    label: `LIST of ${human(sizes.smallEntries)} entries (a second directory)`,
    unit: 's',
    better: 'lower',
    get: value,
    target: { ratio: 5 },
  },
  { id: 'list_all', workload: 'list', label: `LIST of ${N} entries`, unit: 's', better: 'lower', get: value, target: { ratio: 5 } },
  { id: 'dump_all', workload: 'dump', label: `full UPDATE dump of ${N}`, unit: 's', better: 'lower', get: value, target: { ratio: 5 } },
  {
    id: 'propagation_p50',
    workload: 'propagation',
    label: 'propagation to 10 listeners, p50',
    unit: 'ms',
    better: 'lower',
    get: detail('p50'),
  },
  {
    id: 'propagation_p99',
    workload: 'propagation',
    label: 'propagation to 10 listeners, p99',
    unit: 'ms',
    better: 'lower',
    get: value,
    target: { max: 2 },
  },
  {
    id: 'propagation_max',
    workload: 'propagation',
    label: 'propagation to 10 listeners, max',
    unit: 'ms',
    better: 'lower',
    get: detail('max'),
  },
  {
    id: 'activate_during_dumps_p50',
    workload: 'dumpWriter',
    label: `ACTIVATE while 4 clients dump ${N}, p50`,
    unit: 'ms',
    better: 'lower',
    get: detail('p50'),
  },
  {
    id: 'activate_during_dumps_p99',
    workload: 'dumpWriter',
    label: `ACTIVATE while 4 clients dump ${N}, p99`,
    unit: 'ms',
    better: 'lower',
    get: value,
    target: { max: 5 },
  },
  {
    id: 'activate_during_dumps_max',
    workload: 'dumpWriter',
    label: `ACTIVATE while 4 clients dump ${N}, max`,
    unit: 'ms',
    better: 'lower',
    get: detail('max'),
  },
  {
    id: 'dumps_during_writes',
    workload: 'dumpWriter',
    label: `  full dumps completed meanwhile`,
    unit: '',
    better: 'higher',
    get: detail('completedDumps'),
  },
  ...resyncRows(),
  {
    id: 'mixed_8',
    workload: 'mixed',
    label: 'mixed 90% FIND/9% ACTIVATE/1% DELETE, 8 conns',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 5 },
  },
  {
    id: 'idle_connections',
    workload: 'idle',
    label: `idle authenticated connections held (of ${sizes.idleConnections.toLocaleString('en-US')})`,
    unit: '',
    better: 'higher',
    get: value,
    target: { min: sizes.idleConnections },
  },
  { id: 'rss', workload: 'memory', label: `RSS with ${N} entries`, unit: 'MiB', better: 'lower', get: value, target: { ratio: 1 } },
  {
    id: 'anon_after_suite',
    workload: 'memEnd',
    label: `anonymous memory after the suite (${N}, ${sizes.churnedConnections.toLocaleString('en-US')} conns opened+closed)`,
    unit: 'MiB',
    better: 'lower',
    get: value,
    target: { max: 64 },
  },
  {
    id: 'rss_after_suite',
    workload: 'memEnd',
    label: '  RSS after the suite',
    unit: 'MiB',
    better: 'lower',
    get: detail('rssMiB'),
    target: { max: 150 },
  },
  {
    id: 'push',
    workload: 'push',
    label: `push of ${human(pushCount)} in-sync mailboxes (mupdated push / ctl_mboxlist -m)`,
    unit: 's',
    better: 'lower',
    get: value,
    target: { ratio: 20 },
  },
  {
    id: 'frontend_visible_p50',
    workload: 'frontend',
    label: "frontend: master's OK -> new mailbox in the frontend's sqlite, p50",
    unit: 'ms',
    better: 'lower',
    get: detail('visibleP50'),
  },
  {
    id: 'frontend_visible_p99',
    workload: 'frontend',
    label: "frontend: master's OK -> new mailbox in the frontend's sqlite, p99",
    unit: 'ms',
    better: 'lower',
    get: detail('visibleP99'),
    target: { ratio: 1 },
  },
  {
    id: 'frontend_resync',
    workload: 'frontend',
    label: `frontend: resync of ${N} into its sqlite after a reconnect`,
    unit: 's',
    better: 'lower',
    get: value,
    target: { ratio: 1 },
  },
  {
    id: 'frontend_lookup_failures',
    workload: 'frontend',
    label: '  frontend lookups failed or not found meanwhile',
    unit: '',
    better: 'lower',
    get: detail('lookupFailures'),
    target: { max: 0 },
  },
  {
    id: 'frontend_lookup_max',
    workload: 'frontend',
    label: '  slowest frontend lookup meanwhile',
    unit: 'ms',
    better: 'lower',
    get: detail('lookupMaxMs'),
  },
  {
    id: 'frontend_first_sync',
    workload: 'frontend',
    label: `  first sync of ${N} into an empty frontend sqlite`,
    unit: 's',
    better: 'lower',
    get: detail('firstSyncSeconds'),
  },
  ...(cluster ? clusterRows() : []),
  {
    id: 'push_ctl_mboxlist_to_mupdated',
    workload: 'pushCtlToMupdated',
    label: `  same push by ctl_mboxlist -m against mupdated`,
    unit: 's',
    better: 'lower',
    get: value,
    only: 'mupdated',
  },
];

function resyncRows(): Row[] {
  const clients = sizes.resyncClients;
  const writer = (id: string, key: string, what: string, max?: number): Row => ({
    id: `resync_writer_${id}`,
    workload: 'resync',
    label: `ACTIVATE while ${clients} clients resync ${N} at once, ${what}`,
    unit: 'ms',
    better: 'lower',
    get: detail(key),
    ...(max === undefined ? {} : { target: { max } }),
  });
  return [
    writer('p50', 'p50', 'p50'),
    writer('p99', 'p99', 'p99', 10),
    writer('max', 'max', 'max'),
    {
      id: 'resync_all_dumps',
      workload: 'resync',
      label: `  until all ${clients} full dumps of ${N} are done`,
      unit: 's',
      better: 'lower',
      get: value,
      target: { max: 20 },
    },
  ];
}

function clusterRows(): Row[] {
  const cl = (r: Omit<Row, 'better'> & { better?: Row['better'] }): Row => ({
    better: 'lower',
    only: 'mupdated',
    ...r,
    label: `cluster: ${r.label}`,
  });
  return [
    cl({
      id: 'cluster_activate_16x8',
      workload: 'clAct16',
      label: 'durable ACTIVATE through 2 nodes, 16 conns x 8',
      unit: '/s',
      better: 'higher',
      get: value,
      target: { ratio: 5 },
      cyrus: 'act16',
      only: undefined,
    }),
    cl({
      id: 'cluster_activate_1x1_p50',
      workload: 'clLatency',
      label: 'durable ACTIVATE 1x1 through a node, p50',
      unit: 'ms',
      get: detail('activateP50'),
    }),
    cl({
      id: 'cluster_etcd_txn_p50',
      workload: 'clLatency',
      label: '  bare one-key etcd txn, p50 (same run)',
      unit: 'ms',
      get: detail('txnP50'),
    }),
    cl({
      id: 'cluster_activate_vs_txn',
      workload: 'clLatency',
      label: '  ACTIVATE p50 / etcd txn p50',
      unit: 'x',
      get: value,
      target: { max: 1.2 },
    }),
    cl({
      id: 'cluster_find_16x8',
      workload: 'clFind',
      label: 'FIND on a node, 16 conns x 8',
      unit: '/s',
      better: 'higher',
      get: value,
      target: { ratio: 2 },
      cyrus: 'find',
      only: undefined,
    }),
    cl({
      id: 'cluster_propagation_p99',
      workload: 'clPropagation',
      label: 'propagation OK on A -> listener on B, p99',
      unit: 'ms',
      get: value,
      target: { max: 20 },
    }),
    cl({
      id: 'cluster_leader_kill',
      workload: 'clLeaderKill',
      label: 'write unavailability after the etcd leader is killed',
      unit: 's',
      get: value,
      target: { max: 3 },
    }),
    cl({
      id: 'cluster_catch_up',
      workload: 'clCatchUp',
      label: `node restart catch-up after ${human(clusterSizes.catchUp)} changes`,
      unit: 's',
      get: value,
      target: { max: 3 },
    }),
    cl({
      id: 'cluster_catch_up_after_listening',
      workload: 'clCatchUp',
      label: '  of which after the node listened',
      unit: 's',
      get: detail('afterListeningSeconds'),
    }),
  ];
}
