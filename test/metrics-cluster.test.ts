/**
 * Issue 13 point 2, cluster mode: a node's /metrics says whether etcd
 * answers and how far its local view is behind; both follow a real etcd
 * going away and coming back.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { command, login, q } from './helpers/directory.js';
import { EtcdCluster } from './helpers/etcd-cluster.js';
import { httpGet, metricsPort, sample } from './helpers/metrics-tools.js';
import { startMupdated, type RunningMupdated } from './helpers/server.js';
import { waitUntil } from './helpers/slave-tools.js';

let cluster: EtcdCluster | undefined;
let node: RunningMupdated | undefined;
test.after.always(async () => {
  await node?.stop();
  await cluster?.stop();
});

test.serial(
  'metrics: a cluster node exports etcd reachability and view lag; reachability drops to 0 while etcd is down and returns',
  async (t) => {
    cluster = await EtcdCluster.start(1);
    node = await startMupdated({
      args: ['--etcd', cluster.etcdFlag, '--etcd-prefix', `/t-${randomUUID()}/`, '--metrics-listen', '127.0.0.1:0'],
      config: { etcd_write_timeout: 1 },
    });
    const port = await metricsPort(node);
    const c = await login(node.port);
    t.regex((await command(c, 'A1', `ACTIVATE ${q('user.e1')} "b1!p" "e1 lrs"`)).status, /OK/);
    c.close();
    let body = (await httpGet(port, '/metrics')).body;
    t.is(sample(body, 'mupdated_etcd_reachable'), 1);
    t.is(sample(body, 'mupdated_etcd_view_lag_revisions'), 0, "the node's own committed write is in its view");

    await cluster.kill(0);
    await waitUntil(
      async () => sample((await httpGet(port, '/metrics')).body, 'mupdated_etcd_reachable') === 0,
      30_000,
      'etcd_reachable 0',
    );
    body = (await httpGet(port, '/metrics')).body;
    t.true(Number.isNaN(sample(body, 'mupdated_etcd_view_lag_revisions')), 'unknown (NaN) while etcd does not answer');
    // Writes are refused meanwhile: not ready.
    let ready = await httpGet(port, '/readyz');
    await waitUntil(async () => (ready = await httpGet(port, '/readyz')).status === 503, 10_000, '/readyz 503 while etcd does not answer');
    t.regex(ready.body, /etcd does not answer/);

    cluster.restart(0);
    await waitUntil(
      async () => sample((await httpGet(port, '/metrics')).body, 'mupdated_etcd_reachable') === 1,
      30_000,
      'etcd_reachable 1 again',
    );
    await waitUntil(async () => (await httpGet(port, '/readyz')).status === 200, 10_000, '/readyz 200 again');
  },
);

test.serial('an XRESUME whose client leaves while the node catches up with etcd leaves no stream behind', async (t) => {
  const etcd = await EtcdCluster.start(1);
  const n = await startMupdated({
    args: ['--etcd', etcd.etcdFlag, '--etcd-prefix', `/t-${randomUUID()}/`, '--metrics-listen', '127.0.0.1:0'],
    config: { etcd_write_timeout: 2 },
  });
  t.teardown(async () => {
    await n.stop();
    await etcd.stop();
  });
  const port = await metricsPort(n);
  const listeners = async () => sample((await httpGet(port, '/metrics')).body, 'mupdated_stream_listeners');
  t.is(await listeners(), 0);
  const clients = await Promise.all([login(n.port), login(n.port), login(n.port)]);
  // etcd stopped (not gone): the node's catch-up before the resume waits on it.
  process.kill(etcd.pid(0), 'SIGSTOP');
  try {
    for (const c of clients) c.send('X1 XRESUME "" "0"\r\n');
    await new Promise((r) => setTimeout(r, 300));
    // A reset, not a FIN: the server sees the connection gone at once, while the command still waits.
    for (const c of clients) c.socket.resetAndDestroy();
  } finally {
    process.kill(etcd.pid(0), 'SIGCONT');
  }
  // Past the node's catch-up deadline (etcd_write_timeout), with etcd answering again.
  await new Promise((r) => setTimeout(r, 3000));
  const c = await login(n.port);
  t.regex((await command(c, 'A1', `ACTIVATE ${q('user.after')} "b1!p" ""`)).status, /OK/);
  c.close();
  t.is(await listeners(), 0, 'no stream of a client that left');
});
