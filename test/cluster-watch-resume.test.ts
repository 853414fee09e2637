/**
 * A node whose etcd connection drops while its view is still catching up
 * (etcd streaming it the changes made while it was away) resumes the watch
 * just past the last change it received, not at etcd's head: every change
 * reaches the view, and a write decided on it sees them.
 */
import test from 'ava';
import { createLogger } from '../src/log.js';
import { UserDb } from '../src/sasl/user-db.js';
import { putClusterUser, removeClusterUser } from '../src/store/etcd/cluster-users.js';
import { etcdClient } from '../src/store/etcd/connect.js';
import { EtcdDirectoryStore } from '../src/store/etcd/etcd-store.js';
import { EtcdLayout } from '../src/store/etcd/layout.js';
import { UserMirror } from '../src/store/etcd/user-mirror.js';
import type { Entry } from '../src/store/types.js';
import { freshPrefix } from './helpers/cluster-nodes.js';
import { CutProxy } from './helpers/cut-proxy.js';
import { EtcdCluster } from './helpers/etcd-cluster.js';
import { removeDir, tempDir } from './helpers/server.js';

const entry = (name: string): Entry => ({
  name: Buffer.from(name),
  state: 'active',
  location: Buffer.from('be1!default'),
  acl: Buffer.from('anyone\tlrs\t'),
});

test('an etcd link cut in the middle of a catch-up loses no change: the watch resumes after the last one received', async (t) => {
  t.timeout(90_000);
  const etcd = await EtcdCluster.start(1);
  const proxy = await CutProxy.start(Number(new URL(etcd.endpoints[0]).port));
  const dirs = [tempDir('watch-resume-a-'), tempDir('watch-resume-b-')];
  const prefix = freshPrefix();
  const open = (endpoint: string, dataDir: string) =>
    EtcdDirectoryStore.open({ endpoints: [endpoint], prefix, writeTimeoutMs: 5_000, dataDir, order: 'cyrus' }, createLogger('silent'));
  const opened: EtcdDirectoryStore[] = [];
  t.teardown(async () => {
    for (const s of opened) await s.close().catch(() => {});
    await proxy.stop();
    await etcd.stop();
    for (const d of dirs) removeDir(d);
  });
  const viaProxy = `http://127.0.0.1:${proxy.port}`;
  // Node A sees the first entry, then is away while node B writes 3,000 more.
  let a = await open(viaProxy, dirs[0]);
  await a.applyMany([{ name: entry('user.a0').name, entry: entry('user.a0') }]);
  await a.close();
  const b = await open(etcd.endpoints[0], dirs[1]);
  opened.push(b);
  const names = Array.from({ length: 3000 }, (_, i) => `user.b${i}`);
  await b.applyMany(names.map((n) => ({ name: Buffer.from(n), entry: entry(n) })));
  // A comes back; its link to etcd is cut once etcd has sent it 64 KiB, most of the way into the catch-up.
  proxy.cutNextAfter(64 * 1024);
  a = await open(viaProxy, dirs[0]);
  opened.push(a);
  await b.applyMany([{ name: Buffer.from('user.later'), entry: entry('user.later') }]);
  const until = Date.now() + 30_000;
  while (!a.find(Buffer.from('user.later')) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  t.is(proxy.cuts, 1, 'the link was cut once');
  t.truthy(a.find(Buffer.from('user.later')), 'the change made after the cut arrived');
  const missing = names.filter((n) => !a.find(Buffer.from(n)));
  t.deepEqual(missing.slice(0, 5), [], `${missing.length} of node B's 3,000 changes never reached node A's view`);
  // A write decided on A's view sees B's entry.
  const decided = await a.mutate(Buffer.from('user.b5'), (current) =>
    current ? { kind: 'keep', result: 'exists' } : { kind: 'put', entry: entry('user.b5'), result: 'created' },
  );
  t.is(decided, 'exists');
});

test('a node that rebuilds its view numbers the differences past every change of that revision: a slave holding one of them is never sent an INCREMENTAL that skips the rest', async (t) => {
  t.timeout(60_000);
  const etcd = await EtcdCluster.start(1);
  const dirs = [tempDir('rebuild-seq-a-'), tempDir('rebuild-seq-b-')];
  const prefix = freshPrefix();
  const open = (dataDir: string) =>
    EtcdDirectoryStore.open({ endpoints: etcd.endpoints, prefix, writeTimeoutMs: 5_000, dataDir, order: 'cyrus' }, createLogger('silent'));
  const opened: EtcdDirectoryStore[] = [];
  t.teardown(async () => {
    for (const s of opened) await s.close().catch(() => {});
    await etcd.stop();
    for (const d of dirs) removeDir(d);
  });
  // One transaction, one revision: user.z is its change 0, user.a its change 1.
  const a = await open(dirs[0]);
  opened.push(a);
  await a.applyMany([
    { name: Buffer.from('user.z'), entry: entry('user.z') },
    { name: Buffer.from('user.a'), entry: entry('user.a') },
  ]);
  const atA = a.snapshot();
  // The revision's changes are numbered revision x 1000 + their index (layout.ts).
  const revisionStart = Math.floor(atA.seq / 1000) * 1000;
  const held = [...(atA.changesSince(revisionStart - 1) ?? [])].find((c) => c.name.toString() === 'user.z')!;
  t.is(held.seq, revisionStart, "user.z is the revision's first change");
  const digest = atA.changeDigest(held.seq);
  atA.close();
  // Node B starts on an empty folder: its view is built by a rebuild at that revision.
  const b = await open(dirs[1]);
  opened.push(b);
  const atB = b.snapshot();
  try {
    // What a slave that applied only user.z on A gets on B: a full dump, or a replay that has user.a.
    const sameHistory = atB.changeDigest(held.seq) === digest;
    const replay = sameHistory ? atB.changesSince(held.seq) : null;
    t.true(replay === null || [...replay].some((c) => c.name.toString() === 'user.a'), 'B would replay nothing and user.a would be lost');
  } finally {
    atB.close();
  }
});

test('the users mirror still follows user changes after etcd compacted past it and restarted (its watch cancelled by etcd)', async (t) => {
  t.timeout(90_000);
  const etcd = await EtcdCluster.start(1);
  const settings = { endpoints: etcd.endpoints, prefix: freshPrefix(), writeTimeoutMs: 3_000 };
  const layout = new EtcdLayout(settings.prefix);
  const dirs = [tempDir('mirror-source-'), tempDir('mirror-local-'), tempDir('mirror-state-')];
  const source = UserDb.open(dirs[0]);
  const local = UserDb.open(dirs[1]);
  const tool = etcdClient(settings);
  const mirrorClient = etcdClient(settings);
  const mirror = new UserMirror(mirrorClient, layout, local, dirs[2], createLogger('silent'), 3_000, () => mirrorClient.close());
  t.teardown(async () => {
    await mirror.close();
    tool.close();
    await source.close();
    await local.close();
    await etcd.stop();
    for (const d of dirs) removeDir(d);
  });
  const until = async (cond: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; !cond() && Date.now() < end;) await new Promise((r) => setTimeout(r, 100));
    return cond();
  };
  await mirror.ready;
  await source.set('alice', Buffer.from('pw-alice'), false);
  await putClusterUser(tool, layout, { ...source.get('alice')! }, 3_000);
  t.true(await until(() => local.get('alice') !== undefined, 10_000), 'alice mirrored');
  // History moves on and is compacted past the mirror's watch; then etcd restarts.
  for (let i = 0; i < 20; i++) await tool.put(`${settings.prefix}other/${i}`).value('v');
  const head = Number((await tool.kv.range({ key: Buffer.from(`${settings.prefix}other/0`) })).header.revision);
  await tool.kv.compact({ revision: String(head), physical: true });
  await etcd.kill(0);
  etcd.restart(0);
  await etcd.waitHealthy();
  let removed = false;
  for (const end = Date.now() + 20_000; !removed && Date.now() < end;) {
    removed = await removeClusterUser(tool, layout, 'alice', 3_000).catch(() => false);
    if (!removed) await new Promise((r) => setTimeout(r, 200));
  }
  t.true(removed, 'alice removed in etcd');
  t.true(await until(() => local.get('alice') === undefined, 20_000), 'the removal reached the mirror');
});
