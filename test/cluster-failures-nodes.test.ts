/**
 * Cluster failure scenarios 4, 6 and 7 (spec cluster.md section 5) on a real
 * 3-member etcd cluster with mupdated nodes as child processes: a slave
 * failing over between nodes with an incremental resume, a node restarting
 * after etcd compacted the history it had, and two nodes racing for the same
 * names.
 */
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { EtcdLayout, decodeConflict, decodeEntryValue, prefixEnd } from '../src/store/etcd/layout.js';
import type { ConflictRecord } from '../src/store/types.js';
import { EtcdCluster } from './helpers/etcd-cluster.js';
import { freePort } from './helpers/ports.js';
import { directoryOf, killNode, openStream, startNode } from './helpers/cluster-storm.js';
import { apply, lit, login, modelOf, readResponse, sorted, type Model } from './helpers/directory.js';
import { dataLinesBetween, FaultProxy } from './helpers/fault-proxy.js';
import { applyChanges, readStatus, startSlave, waitUntil, type Cmd } from './helpers/slave-tools.js';
import { removeDir, type RunningMupdated } from './helpers/server.js';

const ACL = 'owner\tlrswipkxtecdan\t';

async function startCluster(t: ExecutionContext): Promise<{ cluster: EtcdCluster; etcd: Etcd3; cleanup: Array<() => Promise<unknown>> }> {
  const cluster = await EtcdCluster.start(3);
  const etcd = new Etcd3({ hosts: cluster.endpoints });
  const cleanup: Array<() => Promise<unknown>> = [];
  t.teardown(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
    etcd.close();
    await cluster.stop();
  });
  return { cluster, etcd, cleanup };
}

function track(cleanup: Array<() => Promise<unknown>>, node: RunningMupdated): RunningMupdated {
  cleanup.push(async () => {
    await node.stop();
    removeDir(node.dataDir);
  });
  return node;
}

/** The directory as etcd holds it (name -> `MAILBOX loc acl` / `RESERVE loc`), read directly. */
async function etcdDirectory(etcd: Etcd3): Promise<Map<string, string>> {
  const layout = new EtcdLayout('/mupdated/');
  const res = await etcd.kv.range({ key: layout.entries, range_end: prefixEnd(layout.entries) });
  const out = new Map<string, string>();
  for (const kv of res.kvs) {
    const what = layout.classify(kv.key);
    const e = decodeEntryValue(kv.value);
    if (what.kind !== 'entry' || !e) continue;
    const name = what.name.toString('latin1');
    out.set(
      name,
      e.state === 'active'
        ? `MAILBOX ${e.location.toString('latin1')} ${e.acl.toString('latin1')}`
        : `RESERVE ${e.location.toString('latin1')}`,
    );
  }
  return new Map([...out].sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'))));
}

async function etcdConflicts(etcd: Etcd3): Promise<ConflictRecord[]> {
  const layout = new EtcdLayout('/mupdated/');
  const res = await etcd.kv.range({ key: layout.conflicts, range_end: prefixEnd(layout.conflicts) });
  return res.kvs.map((kv) => decodeConflict(kv.value));
}

function modelText(model: Model): Map<string, string> {
  return new Map(sorted(model).map(([n, e]) => [n, e.kind === 'MAILBOX' ? `MAILBOX ${e.location} ${e.acl}` : `RESERVE ${e.location}`]));
}

const activate = (name: string, acl = ACL): Cmd => ['ACTIVATE', name, 'backend1!default', acl];

test.serial('a slave given --master A,B switches to B when A dies, by an INCREMENTAL resume: only the missed changes travel', async (t) => {
  const { cluster, cleanup } = await startCluster(t);
  const [a, b] = (await Promise.all([startNode(cluster), startNode(cluster)])).map((n) => track(cleanup, n)) as [
    RunningMupdated,
    RunningMupdated,
  ];
  // B is reached through a proxy that counts the lines it forwards, and refuses while the missed changes are written.
  const proxy = await FaultProxy.start({ targetPort: b.port });
  cleanup.push(() => proxy.close());
  const slave = track(cleanup, await startSlave({ master: `127.0.0.1:${a.port},127.0.0.1:${proxy.port}`, retryDelay: 1 }));

  await applyChanges(
    a.port,
    Array.from({ length: 30 }, (_, i) => activate(`user.fo.n${i}`)),
  );
  await waitUntil(async () => (await directoryOf(slave.port)).size === 30, 30_000, 'the slave to follow A');
  t.is(readStatus(slave.dataDir)?.master, `127.0.0.1:${a.port}`);
  t.is(proxy.conns.length, 0, 'the slave used the first master of its list');

  proxy.refusing = true;
  await killNode(a);
  const missed: Cmd[] = [
    ...Array.from({ length: 20 }, (_, i) => activate(`user.fo.m${i}`)),
    ...Array.from({ length: 5 }, (_, i): Cmd => ['DELETE', `user.fo.n${i}`]),
    ...Array.from({ length: 5 }, (_, i): Cmd => ['RESERVE', `user.fo.r${i}`, 'backend2!default']),
  ];
  await applyChanges(b.port, missed);
  await proxy.waitForConnection(0, 30_000);
  proxy.refusing = false;
  const conn = await proxy.nextForwarded(30_000);
  await waitUntil(
    async () => JSON.stringify([...(await directoryOf(slave.port))]) === JSON.stringify([...(await directoryOf(b.port))]),
    30_000,
    'the slave to follow B',
  );

  const resume = dataLinesBetween(conn, 'U01', /^U01 XSYNC /);
  t.regex(resume.head?.text ?? '', /^U01 XSYNC \{11\+\}\r\nINCREMENTAL /, 'B resumed the slave incrementally');
  t.truthy(resume.end, 'the resume ended with U01 OK');
  t.is(
    resume.data.length,
    missed.length,
    `the data lines of the resume: ${resume.data.map((l) => l.text.replace(/\r\n/g, ' ')).join(' | ')}`,
  );
  const status = readStatus(slave.dataDir)!;
  t.is(status.master, `127.0.0.1:${proxy.port}`);
  t.is(status.lastSyncKind, 'incremental');
  t.is(status.lastResumeRecords, missed.length);
});

test.serial(
  'compaction past a stopped node: it restarts, rebuilds its view equal to etcd, and its listeners (XRESUME from before, and new) converge',
  async (t) => {
    const { cluster, etcd, cleanup } = await startCluster(t);
    const port = await freePort();
    const listen = ['--listen', `127.0.0.1:${port}`];
    let a = await startNode(cluster, { args: listen });
    const b = track(cleanup, await startNode(cluster));
    cleanup.push(async () => {
      await a.stop();
      removeDir(a.dataDir);
    });
    // A slave follows A only: when A is back it resumes with XRESUME from the change it had.
    const slave = track(cleanup, await startSlave({ master: port, retryDelay: 1 }));
    await applyChanges(
      b.port,
      Array.from({ length: 60 }, (_, i) => activate(`user.cp.n${i}`)),
    );
    await waitUntil(async () => (await directoryOf(slave.port)).size === 60, 30_000, 'the slave to follow A');
    const seqBefore = readStatus(slave.dataDir)?.upstreamSeq;
    t.true(typeof seqBefore === 'number' && seqBefore > 0);

    await a.stop();
    await applyChanges(b.port, [
      ...Array.from({ length: 30 }, (_, i) => activate(`user.cp.m${i}`)),
      ...Array.from({ length: 20 }, (_, i): Cmd => ['DELETE', `user.cp.n${i}`]),
      ...Array.from({ length: 10 }, (_, i) => activate(`user.cp.n${20 + i}`, `${ACL}anyone\tlr\t`)),
    ]);
    // One at a time: several revisions past A's, so the compaction below removes history A needs.
    await applyChanges(
      b.port,
      Array.from({ length: 5 }, (_, i) => activate(`user.cp.s${i}`)),
      false,
    );
    const head = Number((await etcd.kv.range({ key: Buffer.from('/mupdated/m/head') })).header.revision);
    await etcd.kv.compact({ revision: String(head), physical: true });

    const restartedAt = new Date().toISOString();
    a = await startNode(cluster, { dataDir: a.dataDir, args: listen });
    // A listener that connects at once: it may see the old view's dump, then the rebuild's differences as changes.
    const { client: fresh, dump } = await openStream(port);
    t.teardown(() => fresh.close());
    const freshModel = modelOf(dump);
    await a.waitForLog(/cluster view rebuilt from etcd/, 30_000);
    t.truthy(
      a.logs.find((l) => /cluster view rebuilt from etcd/.test(l) && /watch cancelled/.test(l)),
      'the rebuild was caused by the compaction',
    );

    await applyChanges(
      b.port,
      Array.from({ length: 10 }, (_, i) => activate(`user.cp.after${i}`)),
    );
    const want = await etcdDirectory(etcd);
    t.deepEqual([...(await directoryOf(port))], [...want], "A's view equals etcd");
    t.deepEqual([...(await directoryOf(b.port))], [...want], 'B equals etcd');

    // The fresh listener: its dump plus every change streamed since equals etcd once a NOOP is answered.
    fresh.send('N1 NOOP\r\n');
    const streamed = await readResponse(fresh, 'U1', 'N1', 30_000);
    t.is(streamed.status, 'N1 OK "Noop done"');
    t.deepEqual([...modelText(apply(freshModel, streamed.records))], [...want], 'the listener that connected at the restart');
    await waitUntil(
      async () => JSON.stringify([...(await directoryOf(slave.port))]) === JSON.stringify([...want]),
      30_000,
      'the slave to converge',
    );
    const status = readStatus(slave.dataDir)!;
    t.true((status.lastFullSync ?? '') > restartedAt, "the slave's XRESUME from before the compaction was answered FULL");
    t.true((status.upstreamSeq ?? 0) > seqBefore!);
  },
);

// ---------------------------------------------------------------------------
// Two nodes racing

type RaceOp = { client: 'a' | 'b'; verb: 'RESERVE' | 'ACTIVATE' };

/** What a single master answers to one interleaving of the two clients' RESERVE+ACTIVATE, and the entry it leaves. */
function singleMaster(order: RaceOp[]): string {
  let cur: { state: 'active' | 'reserved'; server: string } | undefined;
  const answers: Record<string, string> = {};
  for (const op of order) {
    const server = `backend${op.client}`;
    if (op.verb === 'RESERVE') {
      if (cur && cur.server !== server) answers[`R${op.client}`] = 'exists';
      else {
        cur = { state: 'reserved', server };
        answers[`R${op.client}`] = 'OK';
      }
    } else if (cur && cur.state === 'active' && cur.server !== server) {
      answers[`A${op.client}`] = 'conflict';
    } else {
      cur = { state: 'active', server };
      answers[`A${op.client}`] = 'OK';
    }
  }
  return `Ra=${answers.Ra} Aa=${answers.Aa} Rb=${answers.Rb} Ab=${answers.Ab} final=${cur ? `${cur.state}@${cur.server}` : 'absent'}`;
}

/** Every outcome a single master allows: all interleavings that keep each client's own order. */
function allowedRaceOutcomes(): Set<string> {
  const a: RaceOp[] = [
    { client: 'a', verb: 'RESERVE' },
    { client: 'a', verb: 'ACTIVATE' },
  ];
  const b: RaceOp[] = [
    { client: 'b', verb: 'RESERVE' },
    { client: 'b', verb: 'ACTIVATE' },
  ];
  const out = new Set<string>();
  const walk = (i: number, j: number, acc: RaceOp[]): void => {
    if (i === a.length && j === b.length) out.add(singleMaster(acc));
    if (i < a.length) walk(i + 1, j, [...acc, a[i]]);
    if (j < b.length) walk(i, j + 1, [...acc, b[j]]);
  };
  walk(0, 0, []);
  return out;
}

function answerKind(line: string): { kind: string; conflict?: number } {
  if (/^\S+ OK "done"$/.test(line)) return { kind: 'OK' };
  if (/^\S+ NO "mailbox already exists"$/.test(line)) return { kind: 'exists' };
  const m = /^\S+ NO "mailbox is active on \S+; conflict #(\d+) queued for an operator"$/.exec(line);
  if (m) return { kind: 'conflict', conflict: Number(m[1]) };
  return { kind: line };
}

test.serial('two nodes racing for the same names: exactly the outcomes a single master allows, every conflict recorded once', async (t) => {
  const { cluster, etcd, cleanup } = await startCluster(t);
  const nodes = (await Promise.all([startNode(cluster), startNode(cluster)])).map((n) => track(cleanup, n));
  const ROUNDS = Number(process.env.RACE_ROUNDS ?? 500);
  const BATCH = 10;
  const allowed = allowedRaceOutcomes();
  const clients = await Promise.all(nodes.map((n) => login(n.port)));
  t.teardown(() => clients.forEach((c) => c.close()));
  const answers: Array<Record<'a' | 'b', [string, string]>> = [];
  for (let from = 0; from < ROUNDS; from += BATCH) {
    const rounds = Array.from({ length: Math.min(BATCH, ROUNDS - from) }, (_, k) => from + k);
    const per = await Promise.all(
      (['a', 'b'] as const).map(async (who, k) => {
        const c = clients[k];
        const loc = `backend${who}!default`;
        c.send(
          rounds
            .map(
              (i) =>
                `R${i} RESERVE ${lit(`user.race.n${i}`)} ${lit(loc)}\r\nA${i} ACTIVATE ${lit(`user.race.n${i}`)} ${lit(loc)} ${lit(`${who}\tlrs\t`)}\r\n`,
            )
            .join(''),
        );
        const lines: string[] = [];
        for (let n = 0; n < rounds.length * 2; n++) lines.push(await c.readLine(60_000));
        return lines;
      }),
    );
    rounds.forEach((i, k) => (answers[i] = { a: [per[0][2 * k], per[0][2 * k + 1]], b: [per[1][2 * k], per[1][2 * k + 1]] }));
  }
  const dirs = await Promise.all(nodes.map((n) => directoryOf(n.port)));
  t.deepEqual([...dirs[0]], [...dirs[1]], 'both nodes hold the same directory');
  t.deepEqual(
    [...dirs[0]].filter(([n]) => n.startsWith('user.race.')),
    [...(await etcdDirectory(etcd))].filter(([n]) => n.startsWith('user.race.')),
  );

  const bad: string[] = [];
  const seen = new Map<string, number>();
  const conflictIds = new Map<number, { name: string; claimant: string }>();
  for (let i = 0; i < ROUNDS; i++) {
    const name = `user.race.n${i}`;
    const r = answers[i];
    const [ra, aa, rb, ab] = [r.a[0], r.a[1], r.b[0], r.b[1]].map(answerKind) as [
      ReturnType<typeof answerKind>,
      ReturnType<typeof answerKind>,
      ReturnType<typeof answerKind>,
      ReturnType<typeof answerKind>,
    ];
    if (!r.a[0].startsWith(`R${i} `) || !r.a[1].startsWith(`A${i} `) || !r.b[0].startsWith(`R${i} `) || !r.b[1].startsWith(`A${i} `))
      bad.push(`round ${i}: answers out of order ${JSON.stringify(r)}`);
    const entry = dirs[0].get(name);
    const final =
      entry === undefined
        ? 'absent'
        : entry.replace(
            /^(MAILBOX|RESERVE) backend(\w)!default.*$/,
            (_, k: string, s: string) => `${k === 'MAILBOX' ? 'active' : 'reserved'}@backend${s}`,
          );
    const outcome = `Ra=${ra.kind} Aa=${aa.kind} Rb=${rb.kind} Ab=${ab.kind} final=${final}`;
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
    if (!allowed.has(outcome)) bad.push(`round ${i}: ${outcome}`);
    for (const [x, who] of [
      [aa, 'a'],
      [ab, 'b'],
    ] as const) {
      if (x.conflict === undefined) continue;
      if (conflictIds.has(x.conflict)) bad.push(`conflict #${x.conflict} answered twice`);
      conflictIds.set(x.conflict, { name, claimant: `backend${who}!default` });
    }
  }
  t.deepEqual(bad, []);
  t.log(`${ROUNDS} rounds; outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
  t.true(seen.size >= 2, 'the nodes really raced (more than one interleaving was seen)');

  // Every conflict answered is recorded once in etcd, as claimed, and no record lacks an answer.
  const records = (await etcdConflicts(etcd)).filter((c) => c.name.toString('latin1').startsWith('user.race.'));
  t.is(records.length, conflictIds.size);
  for (const rec of records) {
    const said = conflictIds.get(rec.id);
    t.truthy(said, `conflict #${rec.id} has an answer`);
    t.is(rec.name.toString('latin1'), said?.name ?? '(none)');
    t.is(rec.claimed.location.toString('latin1'), said?.claimant ?? '(none)');
    t.is(rec.count, 1);
  }
  t.is(new Set(records.map((r) => r.name.toString('latin1'))).size, records.length, 'one record per name');
});
