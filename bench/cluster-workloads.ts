/**
 * The cluster workloads of spec cluster.md section 6, run by `npm run bench
 * -- --cluster` against two nodes on a 3-member etcd (cluster-servers.ts).
 * Every acknowledged write is read back with FIND (after a NOOP, the
 * cluster's barrier); every loop is bounded in time and in count.
 */
import { Etcd3 } from 'etcd3';
import { MupdateConn } from './client.js';
import type { ClusterNode, ClusterUnderTest } from './cluster-servers.js';
import { closedLoop, cpuMs, expectOk, latencySummary, openMany, sleep, verifyWithFind, WrongAnswer, type Expected } from './measure.js';
import { ADMIN, PASSWORD } from './servers.js';
import type { Context, Measurement } from './workload-kit.js';

export interface ClusterContext extends Context {
  cluster: ClusterUnderTest;
  /** Changes written while a node is down, before it restarts (spec: 100k). */
  catchUpChanges: number;
}

function entry(prefix: string, c: number, i: number): { name: string; location: string; acl: string } {
  const owner = `${prefix}${c}`;
  return { name: `user.${owner}.m${i}`, location: 'benchc!default', acl: `${owner}\tlrswipkxtecdan\t` };
}

/** NOOP on a node: answered once its view holds everything committed before (cluster.md 4). */
async function barrier(node: ClusterNode): Promise<void> {
  const conn = await MupdateConn.login(node.port, ADMIN, PASSWORD);
  try {
    expectOk(await conn.command('NOOP'), 'Noop done', 'NOOP');
  } finally {
    conn.destroy();
  }
}

async function verifyOn(node: ClusterNode, expected: Map<string, Expected | null>, details: Record<string, unknown>): Promise<void> {
  await barrier(node);
  const v = await verifyWithFind(node.port, ADMIN, PASSWORD, expected);
  details.verified = v.checked;
  if (v.wrong) throw new WrongAnswer(`${v.wrong} of ${v.checked} entries read back wrong on a node: ${v.examples.join('; ')}`);
}

const nodePids = (ctx: ClusterContext) => ctx.cluster.nodes.flatMap((n) => n.pids());
const etcdPids = (ctx: ClusterContext) => ctx.cluster.etcd.members.flatMap((m) => (m.child?.pid ? [m.child.pid] : []));

/** Durable ACTIVATE, 16 connections (8 on each node) x 8 pipelined. */
export async function clusterActivate16x8(ctx: ClusterContext): Promise<Measurement> {
  const [a, b] = ctx.cluster.nodes;
  const clients = [...(await openMany(a.port, 8, ADMIN, PASSWORD)), ...(await openMany(b.port, 8, ADMIN, PASSWORD))];
  const expected = new Map<string, Expected | null>();
  try {
    const n0 = cpuMs(nodePids(ctx));
    const e0 = cpuMs(etcdPids(ctx));
    const result = await closedLoop(clients, 8, ctx.sizes.throughputMs, ctx.sizes.maxOps, async (conn, c, seq) => {
      const e = entry('cp', c, seq);
      expectOk(await conn.activate(e.name, e.location, e.acl), 'done', `ACTIVATE ${e.name}`);
      expected.set(e.name, e);
    });
    const details: Record<string, unknown> = {
      connections: 16,
      inFlight: 8,
      ops: result.ops,
      seconds: result.elapsedMs / 1000,
      nodesCpuMs: cpuMs(nodePids(ctx)) - n0,
      etcdCpuMs: cpuMs(etcdPids(ctx)) - e0,
    };
    await Promise.allSettled(clients.map((c) => c.logout()));
    await verifyOn(a, expected, details);
    return { value: result.perSecond, correct: true, details };
  } finally {
    for (const c of clients) c.destroy();
  }
}

/**
 * ACTIVATE 1 x 1 through node A, each latency recorded; then, in the same
 * run and for as long, a bare one-key etcd transaction (compare + put, what
 * every write needs at least) from this process. Value: the p50 ratio.
 */
export async function clusterActivateLatency(ctx: ClusterContext): Promise<Measurement> {
  const [a] = ctx.cluster.nodes;
  const conn = await MupdateConn.login(a.port, ADMIN, PASSWORD);
  const activate: number[] = [];
  const expected = new Map<string, Expected | null>();
  try {
    await closedLoop([conn], 1, ctx.sizes.throughputMs, ctx.sizes.maxOps, async (c, _i, seq) => {
      const e = entry('cl', 0, seq);
      const t = performance.now();
      expectOk(await c.activate(e.name, e.location, e.acl), 'done', `ACTIVATE ${e.name}`);
      activate.push(performance.now() - t);
      expected.set(e.name, e);
    });
  } finally {
    conn.destroy();
  }
  const client = new Etcd3({ hosts: ctx.cluster.etcd.endpoints });
  const txn: number[] = [];
  try {
    const key = Buffer.from('/bench-bare-txn/k');
    await closedLoop([client], 1, ctx.sizes.throughputMs, ctx.sizes.maxOps, async (cl, _i, seq) => {
      const t = performance.now();
      const r = await cl.kv.txn({
        compare: [{ key, target: 'Mod', result: 'Less', mod_revision: String(Number.MAX_SAFE_INTEGER) }],
        success: [{ request_put: { key, value: Buffer.from(String(seq)) } }],
      });
      if (!r.succeeded) throw new WrongAnswer('the bare etcd transaction did not succeed');
      txn.push(performance.now() - t);
    });
  } finally {
    client.close();
  }
  const act = latencySummary(activate);
  const bare = latencySummary(txn);
  const details: Record<string, unknown> = {
    activateP50: act.p50,
    activateP99: act.p99,
    activateN: act.n,
    txnP50: bare.p50,
    txnP99: bare.p99,
    txnN: bare.n,
  };
  await verifyOn(a, expected, details);
  return { value: act.p50 / bare.p50, correct: true, details };
}

/**
 * Writers on both nodes (4 connections each, 1 in flight) while the etcd
 * leader is SIGKILLed; the value is the longest time after the kill in
 * which no write was acknowledged (s). NOs meanwhile are counted; every OK
 * is read back. The member is restarted afterwards.
 */
export async function clusterLeaderKill(ctx: ClusterContext): Promise<Measurement> {
  const {
    etcd,
    nodes: [a, b],
  } = ctx.cluster;
  const clients = [...(await openMany(a.port, 4, ADMIN, PASSWORD)), ...(await openMany(b.port, 4, ADMIN, PASSWORD))];
  const expected = new Map<string, Expected | null>();
  const okAt: number[] = [];
  let refused = 0;
  let killAt = Infinity;
  let leader = -1;
  let stopAt = performance.now() + 20_000;
  let issued = 0;
  const writer = async (conn: MupdateConn, c: number) => {
    while (performance.now() < stopAt && issued < ctx.sizes.maxOps) {
      const e = entry('lk', c, issued++);
      const r = await conn.activate(e.name, e.location, e.acl);
      if (r.kind === 'OK') {
        okAt.push(performance.now());
        expected.set(e.name, e);
      } else {
        refused++;
        await sleep(20);
      }
    }
  };
  try {
    const loop = Promise.all(clients.map((conn, c) => writer(conn, c)));
    await sleep(1_500);
    leader = await etcd.leader();
    if (leader < 0) throw new Error('no etcd leader found');
    killAt = performance.now();
    stopAt = Math.min(stopAt, killAt + 6_000);
    await etcd.kill(leader, 'SIGKILL');
    await loop;
  } finally {
    await Promise.allSettled(clients.map((c) => c.logout()));
    for (const c of clients) c.destroy();
  }
  const after = okAt.filter((t) => t > killAt).sort((x, y) => x - y);
  let longest = after.length ? after[0] - killAt : Infinity;
  for (let i = 1; i < after.length; i++) longest = Math.max(longest, after[i] - after[i - 1]);
  etcd.restart(leader);
  await etcd.waitHealthy();
  // Why a long stretch happened, from the nodes' own logs.
  const count = (msg: string) => ctx.cluster.nodes.reduce((n, node) => n + node.logText().split(msg).length - 1, 0);
  const details: Record<string, unknown> = {
    writers: clients.length,
    acknowledged: okAt.length,
    acknowledgedAfterKill: after.length,
    refused,
    killedMember: leader,
    failedTxns: count('etcd transaction failed'),
    watchLost: count('lost the etcd watch'),
    okBeforeViewApplied: count('the view has not applied it yet'),
  };
  await verifyOn(b, expected, details);
  return { value: longest / 1000, correct: Number.isFinite(longest), details };
}

/**
 * Node B stops; `catchUpChanges` ACTIVATEs go through node A; B starts on
 * its old view. The value: seconds from B's spawn to its first NOOP answer
 * (its view then holds etcd's head). A sample of the changes is read back on B.
 */
export async function clusterRestartCatchUp(ctx: ClusterContext): Promise<Measurement> {
  const [a, b] = ctx.cluster.nodes;
  await b.stopKeepingData();
  const clients = await openMany(a.port, 16, ADMIN, PASSWORD);
  const expected = new Map<string, Expected | null>();
  let written = 0;
  try {
    const r = await closedLoop(clients, 8, 30 * 60_000, ctx.catchUpChanges, async (conn, c, seq) => {
      const e = entry('rc', c, seq);
      expectOk(await conn.activate(e.name, e.location, e.acl), 'done', `ACTIVATE ${e.name}`);
      if (seq % Math.max(1, Math.floor(ctx.catchUpChanges / 500)) === 0) expected.set(e.name, e);
    });
    written = r.ops;
  } finally {
    await Promise.allSettled(clients.map((c) => c.logout()));
    for (const c of clients) c.destroy();
  }
  const { spawnedAt } = await b.restart();
  const listening = performance.now();
  await barrier(b);
  const caughtUp = performance.now();
  const details: Record<string, unknown> = {
    changesWhileDown: written,
    listeningSeconds: (listening - spawnedAt) / 1000,
    afterListeningSeconds: (caughtUp - listening) / 1000,
  };
  await verifyOn(b, expected, details);
  return { value: (caughtUp - spawnedAt) / 1000, correct: true, details };
}
