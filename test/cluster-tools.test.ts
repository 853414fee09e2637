/**
 * The operator tools on a cluster (spec cluster.md section 1, issue 12):
 * `user`, `conflicts`, `dump` and `load` with `--etcd` act on the directory
 * in etcd, from a process that is no node, whether or not a node runs.
 * Users live in etcd (`u/<name>`) and every node mirrors them into its own
 * users.mdb, so a login is checked locally.
 *
 * One real 3-member etcd for the file; every test has its own etcd prefix
 * (its own directory) and its own nodes. Serial: each test runs several
 * nodes and tool processes, enough for a 2-core machine.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { etcdForFile } from './helpers/cluster-nodes.js';
import { runCli, type CliResult, find, mailboxLines, writeAs } from './helpers/operator-tools.js';
import { populate } from './helpers/directory.js';
import { RawClient } from './helpers/raw-client.js';
import { BACKEND_ADMINS, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { showRun } from './helpers/run.js';

const scope = etcdForFile();
const { started, folders } = scope;

function etcdArgs(prefix: string): string[] {
  return ['--etcd', scope.etcd.etcdFlag, '--etcd-prefix', prefix];
}

async function node(prefix: string, o: { dataDir?: string } = {}): Promise<RunningMupdated> {
  const s = await startMupdated({ users: BACKEND_ADMINS, args: etcdArgs(prefix), ...(o.dataDir ? { dataDir: o.dataDir } : {}) });
  started.push(s);
  return s;
}

/** Two nodes on one prefix, started together (they race to bootstrap an empty prefix, as nodes may). */
function twoNodes(prefix: string): Promise<[RunningMupdated, RunningMupdated]> {
  return Promise.all([node(prefix), node(prefix)]);
}

/** A serial test on its own etcd prefix (its own directory) with two nodes running on it. */
function twoNodeTest(
  title: string,
  prefix: string,
  body: (t: ExecutionContext, a: RunningMupdated, b: RunningMupdated, prefix: string) => Promise<void>,
): void {
  test.serial(title, async (t) => {
    t.timeout(300_000);
    const [a, b] = await twoNodes(prefix);
    await body(t, a, b, prefix);
  });
}

function cli(prefix: string, args: string[], input?: string): Promise<CliResult> {
  return runCli([...args, ...etcdArgs(prefix)], input === undefined ? {} : { input });
}

/** Tries a PLAIN login; the tagged answer line. */
const tryLogin = (s: RunningMupdated, user: string, password: string) => RawClient.tryLogin(s.port, user, password);

/** Polls until the login answer matches (the mirror follows etcd by a watch); bounded. */
async function loginBecomes(s: RunningMupdated, user: string, password: string, ok: boolean, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await tryLogin(s, user, password);
    if ((last === 'A01 OK "Authenticated"') === ok) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

/** NOOP on a node: its answer comes once the node's view holds everything committed before (spec 4). */
async function barrier(s: RunningMupdated): Promise<void> {
  const c = await RawClient.login(s.port);
  try {
    c.send('N1 NOOP\r\n');
    const lines = await c.readUntilTagged('N1', 20_000);
    if (lines[lines.length - 1] !== 'N1 OK "Noop done"') throw new Error(`NOOP: ${JSON.stringify(lines)}`);
  } finally {
    c.close();
  }
}

/** After a barrier on each node, each FINDs `name` as exactly this entry. */
async function everyNodeFinds(t: ExecutionContext, nodes: RunningMupdated[], name: string, location: string, acl: string): Promise<void> {
  for (const s of nodes) {
    await barrier(s);
    t.deepEqual(await find(s, name), mailboxLines('F1', name, location, acl), `node ${s.port}`);
  }
}

/** A dump with its export time (mtime: when the dump ran) taken out. */
const timeless = (dump: string): string => dump.replace(/"mtime": "\d+"/g, '"mtime": "-"');

function mustSucceed(t: ExecutionContext, r: CliResult): void {
  t.is(r.code, 0, showRun(r));
}

twoNodeTest(
  'user add --etcd: the user logs in on two running nodes and on one started later; user remove --etcd: refused everywhere, local users stay',
  '/t-users/',
  async (t, a, b, prefix) => {
    t.not(await tryLogin(a, 'carol', 'pw-1'), 'A01 OK "Authenticated"');

    const add = await cli(prefix, ['user', 'add', 'carol', '--admin'], 'pw-1\n');
    mustSucceed(t, add);
    t.regex(add.stdout, /user carol saved in the cluster \(admin\)/);
    t.is(await loginBecomes(a, 'carol', 'pw-1', true), 'A01 OK "Authenticated"');
    t.is(await loginBecomes(b, 'carol', 'pw-1', true), 'A01 OK "Authenticated"');
    t.not(await tryLogin(b, 'carol', 'wrong'), 'A01 OK "Authenticated"', 'the password is checked');

    const list = await cli(prefix, ['user', 'list']);
    mustSucceed(t, list);
    t.is(list.stdout, 'carol\tadmin\n', "the cluster holds the user, not the nodes' local ones");

    // A node started after the add reads the users at start.
    const c = await node(prefix);
    t.is(await loginBecomes(c, 'carol', 'pw-1', true), 'A01 OK "Authenticated"');

    // A changed password reaches the nodes too.
    mustSucceed(t, await cli(prefix, ['user', 'add', 'carol', '--admin'], 'pw-2\n'));
    t.is(await loginBecomes(a, 'carol', 'pw-2', true), 'A01 OK "Authenticated"');

    mustSucceed(t, await cli(prefix, ['user', 'remove', 'carol']));
    for (const s of [a, b, c]) t.not(await loginBecomes(s, 'carol', 'pw-2', false), 'A01 OK "Authenticated"');
    for (const s of [a, b, c]) t.is(await tryLogin(s, 'mupdateadmin', 'secret'), 'A01 OK "Authenticated"', 'local users are not touched');

    const again = await cli(prefix, ['user', 'remove', 'carol']);
    t.is(again.code, 1, showRun(again));
    t.regex(again.stderr, /no user 'carol' in the cluster/);
  },
);

test.serial('a user removed with --etcd while a node was down is gone from that node when it starts again', async (t) => {
  t.timeout(300_000);
  const prefix = '/t-users-down/';
  mustSucceed(t, await cli(prefix, ['user', 'add', 'dave'], 'pw-d\n'));
  const a = await startMupdated({ users: BACKEND_ADMINS, args: etcdArgs(prefix), config: { allow_non_admins: true } });
  started.push(a);
  t.is(await loginBecomes(a, 'dave', 'pw-d', true), 'A01 OK "Authenticated"');
  await a.stop();
  mustSucceed(t, await cli(prefix, ['user', 'remove', 'dave']));
  const again = await startMupdated({ dataDir: a.dataDir, args: etcdArgs(prefix), config: { allow_non_admins: true } });
  started.push(again);
  t.not(await tryLogin(again, 'dave', 'pw-d'), 'A01 OK "Authenticated"');
  t.is(await tryLogin(again, 'mupdateadmin', 'secret'), 'A01 OK "Authenticated"');
});

twoNodeTest(
  'conflicts list, resolve and dismiss with --etcd act on the cluster; every node sees the outcome',
  '/t-conflicts/',
  async (t, a, b, prefix) => {
    t.is(await writeAs(a, 'backend1', 'ACTIVATE', 'user.c1', 'h1!default', 'u1\tlrs\t'), 'X1 OK "done"');
    t.regex(
      await writeAs(b, 'backend2', 'ACTIVATE', 'user.c1', 'h2!default', 'u2\tlrs\t'),
      /^X1 NO "mailbox is active on h1; conflict #\d+ queued/,
    );
    t.is(await writeAs(a, 'backend1', 'ACTIVATE', 'user.c2', 'h1!default', 'u1\tlrs\t'), 'X1 OK "done"');
    t.regex(
      await writeAs(a, 'backend2', 'ACTIVATE', 'user.c2', 'h2!default', 'u2\tlrs\t'),
      /^X1 NO "mailbox is active on h1; conflict #\d+ queued/,
    );

    const list = await cli(prefix, ['conflicts', 'list', '--json']);
    mustSucceed(t, list);
    const open = JSON.parse(list.stdout) as Array<{ id: number; name: string; status: string; claimed: { location: string } }>;
    t.deepEqual(
      open.map((c) => [c.name, c.status, c.claimed.location]),
      [
        ['user.c1', 'open', 'h2!default'],
        ['user.c2', 'open', 'h2!default'],
      ],
    );

    const table = await cli(prefix, ['conflicts', 'list']);
    mustSucceed(t, table);
    t.regex(table.stdout, /user\.c1/);

    const audit = tempDir('mupdated-audit-');
    folders.push(audit);
    const resolve = await cli(prefix, ['conflicts', 'resolve', String(open[0].id), '--keep', 'claimant', '--data', audit]);
    mustSucceed(t, resolve);
    mustSucceed(t, await cli(prefix, ['conflicts', 'dismiss', String(open[1].id)]));

    // Every node's view has the claimant's entry and the closed records.
    await everyNodeFinds(t, [a, b], 'user.c1', 'h2!default', 'u2\tlrs\t');
    const closed = await cli(prefix, ['conflicts', 'list', '--all', '--json']);
    mustSucceed(t, closed);
    t.deepEqual(
      (JSON.parse(closed.stdout) as Array<{ status: string }>).map((c) => c.status),
      ['resolved', 'dismissed'],
    );

    const twice = await cli(prefix, ['conflicts', 'resolve', String(open[0].id), '--keep', 'current']);
    t.is(twice.code, 1, showRun(twice));
    t.regex(twice.stderr, /already resolved/);
    t.regex(readFileSync(join(audit, 'audit.log'), 'utf8'), /"op":"resolve","keep":"claimant"/);
  },
);

twoNodeTest(
  "a decided conflict stays decided on every node: the losing backend's same claim, sent to either node, is refused naming the decision and counted on it in etcd",
  '/t-decided/',
  async (t, a, b, prefix) => {
    t.is(await writeAs(a, 'backend1', 'ACTIVATE', 'user.dd', 'h1!default', 'u1\tlrs\t'), 'X1 OK "done"');
    const first = await writeAs(b, 'backend2', 'ACTIVATE', 'user.dd', 'h2!default', 'u2\tlrs\t');
    const m = /^X1 NO "mailbox is active on h1; conflict #(\d+) queued/.exec(first);
    t.truthy(m, first);
    const id = Number(m![1]);
    mustSucceed(t, await cli(prefix, ['conflicts', 'resolve', String(id), '--keep', 'current']));

    const decided = (n: number) =>
      `X1 NO "mailbox is active on h1; conflict #${id} was decided (keep current), this copy is not used and the claim is not queued again (refused ${n} time(s) since)"`;
    // each node sees the decision and the count the other one made
    for (const [i, s] of [a, b, a].entries()) {
      await barrier(s);
      t.is(await writeAs(s, 'backend2', 'ACTIVATE', 'user.dd', 'h2!default', 'u2\tlrs\t'), decided(i + 1));
    }
    const all = await cli(prefix, ['conflicts', 'list', '--all', '--json']);
    mustSucceed(t, all);
    const records = JSON.parse(all.stdout) as Array<{ id: number; name: string; status: string; refused?: number; staleCopy?: string }>;
    t.deepEqual(
      records.map((r) => [r.id, r.name, r.status, r.refused, r.staleCopy]),
      [[id, 'user.dd', 'resolved', 3, 'h2!default']],
      'no new conflict',
    );
    const shown = await cli(prefix, ['conflicts', 'show', String(id)]);
    mustSucceed(t, shown);
    t.regex(shown.stdout, /\n {2}stale copy: {2}h2 still holds a copy \(h2!default\)/);
    t.regex(shown.stdout, /\n {2}refused: {5}3 repeated claim\(s\) since the decision, last /);
    await everyNodeFinds(t, [a, b], 'user.dd', 'h1!default', 'u1\tlrs\t');
  },
);

const entryOf = (i: number) => ({
  name: `user.d${String(i).padStart(4, '0')}`,
  location: `srv${i % 3}!p${i % 2}`,
  acl: `u${i}\tlrswipkxtecda\t`,
});

twoNodeTest("dump --etcd gives exactly the dump of a node's view", '/t-dump/', async (t, a, b, prefix) => {
  await populate(() => RawClient.login(a.port), 300, entryOf, 4);
  t.is(await writeAs(b, 'mupdateadmin', 'RESERVE', 'user.r1', 'srv9!p1'), 'X1 OK "done"');
  t.is(await writeAs(b, 'mupdateadmin', 'DELETE', 'user.d0007'), 'X1 OK "done"');
  await barrier(b);
  await b.stop();

  const fromEtcd = await cli(prefix, ['dump']);
  mustSucceed(t, fromEtcd);
  const fromNode = await runCli(['dump', '--data', b.dataDir]);
  mustSucceed(t, fromNode);
  t.regex(fromEtcd.stderr, /dumped 300 entries/);
  t.true(fromEtcd.stdout.length > 0);
  t.is(timeless(fromEtcd.stdout), timeless(fromNode.stdout));

  const none = await cli('/t-dump-nothing-here/', ['dump']);
  t.is(none.code, 1, showRun(none));
  t.regex(none.stderr, /no directory under the etcd prefix \/t-dump-nothing-here\//);
});

test.serial('load --etcd into an empty cluster: a running node and a node started later FIND every entry', async (t) => {
  t.timeout(300_000);
  // The dump to load comes from a single (LMDB) master.
  const single = await startMupdated({ users: BACKEND_ADMINS });
  started.push(single);
  await populate(() => RawClient.login(single.port), 250, entryOf, 4);
  await single.stop();
  const dumped = await runCli(['dump', '--data', single.dataDir]);
  mustSucceed(t, dumped);
  const dir = tempDir('mupdated-load-');
  folders.push(dir);
  const file = join(dir, 'dump.json');
  writeFileSync(file, dumped.stdout, 'latin1');

  const prefix = '/t-load/';
  const load = await cli(prefix, ['load', file]);
  mustSucceed(t, load);
  t.regex(load.stderr, /loaded 250 entries into the cluster \(250 new or changed/);

  const [a, b] = await twoNodes(prefix);
  for (const i of [0, 1, 77, 249]) {
    const e = entryOf(i);
    for (const s of [a, b]) {
      const lines = await find(s, e.name);
      t.is(lines[lines.length - 1], 'F1 OK "Search completed"');
      t.is(lines[1], `${e.name} {${e.location.length}+}`, `${e.name} on node ${s.port}`);
      t.is(lines[2], `${e.location} {${e.acl.length}+}`);
    }
  }
  const back = await cli(prefix, ['dump']);
  mustSucceed(t, back);
  t.is(timeless(back.stdout), timeless(dumped.stdout), 'dump --etcd gives back what was loaded');

  // Loading again changes nothing; a running node keeps serving.
  const again = await cli(prefix, ['load', file]);
  mustSucceed(t, again);
  t.regex(again.stderr, /\(0 new or changed/);
});
