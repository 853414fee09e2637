/**
 * Across the nodes of one cluster (a real 3-member etcd, nodes A and B on
 * one prefix): a write through node A is seen by FIND and LIST on node B, by
 * a mupdated slave following B and by a real Cyrus slave following B; a
 * real `ctl_mboxlist -m` pushing through B leaves the same directory as the
 * same push into a single master.
 *
 * Tests that need the Cyrus programs fail, never skip, when CI is set.
 */
import test from 'ava';
import { useEtcdCluster } from './helpers/cluster-nodes.js';
import { canonicalEntries, interopTest, startCyrusSlave, type CyrusServer, type DirEntry } from './helpers/cyrus.js';
import { asMasterEntries, CyrusBackend, masterEntries, masterWrite, type MailboxSpec, type MasterEntry } from './helpers/cyrus-backend.js';
import { command, dataLines, lit, login, status } from './helpers/directory.js';
import { BACKEND_ADMINS, removeDir, startMupdated, type RunningMupdated } from './helpers/server.js';
import { listOf, sleep, startSlave, waitInSync } from './helpers/slave-tools.js';

const shared = useEtcdCluster();
const interop = interopTest('serial');
let a: RunningMupdated;
let b: RunningMupdated;
const others: Array<{ stop(): Promise<unknown> }> = [];
const dirs: string[] = [];

test.before(async () => {
  a = await shared.node({ users: BACKEND_ADMINS });
  b = await shared.node({ users: BACKEND_ADMINS, prefix: shared.prefixOf(a.dataDir) });
});

test.after.always(async () => {
  for (const s of others) await s.stop();
  for (const d of dirs) removeDir(d);
});

/** FIND as the exact lines RawClient reads. */
async function find(port: number, name: string): Promise<string[]> {
  const c = await login(port);
  try {
    c.send(`F1 FIND ${lit(name)}\r\n`);
    return await c.readUntilTagged('F1', 30_000);
  } finally {
    c.close();
  }
}

/** Polls FIND on `port` (bounded) until it answers `want`; returns the last answer. */
async function findUntil(port: number, name: string, want: string[], timeoutMs = 5_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let got = await find(port, name);
  for (let i = 0; i < 200 && JSON.stringify(got) !== JSON.stringify(want) && Date.now() < deadline; i++) {
    await sleep(25);
    got = await find(port, name);
  }
  return got;
}

test('a write through node A is found on node B with the same bytes: ACTIVATE, RESERVE, DEACTIVATE, DELETE', async (t) => {
  const c = await login(a.port);
  const name = 'user.xn.\xe4 x';
  const acl = 'xn\tlrswipkxtecdan\tanyone\tp\t';
  t.is(await status(c, 'W1', `ACTIVATE ${lit(name)} "backend1!default" ${lit(acl)}`), 'W1 OK "done"');
  const active = [...dataLines('F1', 'MAILBOX', [name, 'backend1!default', acl]), 'F1 OK "Search completed"'];
  t.deepEqual(await find(a.port, name), active, 'node A reads its own write');
  t.deepEqual(await findUntil(b.port, name, active), active);
  t.is(await status(c, 'W2', 'RESERVE "user.xn.r" "backend2!ssd"'), 'W2 OK "done"');
  const reserved = [...dataLines('F1', 'RESERVE', ['user.xn.r', 'backend2!ssd']), 'F1 OK "Search completed"'];
  t.deepEqual(await findUntil(b.port, 'user.xn.r', reserved), reserved);
  t.is(await status(c, 'W3', `DEACTIVATE ${lit(name)} "backend2!moved"`), 'W3 OK "done"');
  const deactivated = [...dataLines('F1', 'RESERVE', [name, 'backend2!moved']), 'F1 OK "Search completed"'];
  t.deepEqual(await findUntil(b.port, name, deactivated), deactivated);
  t.is(await status(c, 'W4', 'DELETE "user.xn.r"'), 'W4 OK "done"');
  t.deepEqual(await findUntil(b.port, 'user.xn.r', ['F1 OK "Search completed"']), ['F1 OK "Search completed"']);
  // A name taken through A is refused through B as by one master.
  const other = await login(b.port);
  t.is(await status(other, 'W5', 'RESERVE "user.xn.\xe4 x" "backend3!default"'), 'W5 NO "mailbox already exists"');
  other.close();
  c.close();
  // The other tests of this file write through A meanwhile: B's LIST may lag A's by their last writes.
  const [onB, onA] = await listsOnceAgreed(b.port, a.port);
  t.deepEqual(onB, onA, 'LIST agrees on both nodes');
});

/** LIST on both nodes, again (bounded: 10 s) until they agree; the last pair. */
async function listsOnceAgreed(first: number, second: number): Promise<[string[], string[]]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pair: [string[], string[]] = [await listOf(first, 'backend'), await listOf(second, 'backend')];
    if (JSON.stringify(pair[0]) === JSON.stringify(pair[1]) || Date.now() > deadline) return pair;
    await sleep(100);
  }
}

test("a mupdated slave following node B gets a write made through node A, and its LIST equals node A's", async (t) => {
  const slave = await startSlave({ master: b.port });
  others.push(slave);
  dirs.push(slave.dataDir);
  const c = await login(a.port);
  for (let i = 0; i < 20; i++) t.is(await status(c, `S${i}`, `ACTIVATE "user.xs.${i}" "backend1!default" "s\tlrs\t"`), `S${i} OK "done"`);
  t.is(await status(c, 'S99', 'DELETE "user.xs.7"'), 'S99 OK "done"');
  c.close();
  const r = await waitInSync(slave.port, a.port, 30_000);
  t.deepEqual(r.slave, r.master);
  t.true(r.slave.some((l) => l.startsWith('"user.xs.19" =>')));
  t.false(r.slave.some((l) => l.startsWith('"user.xs.7" =>')));
});

let cyrusSlave: CyrusServer | undefined;
test.after.always(async () => {
  await cyrusSlave?.cleanup();
});

interop('C51 a real Cyrus slave following node B gets a write made through node A within 5 s', async (t) => {
  cyrusSlave = await startCyrusSlave({ masterPort: b.port, retryDelay: 2, startTimeoutMs: 60_000 });
  const entry: DirEntry = { name: 'user.xc.new mailbox', state: 'ACTIVE', location: 'backend2!default', acl: 'xc\tlrswipkxtecdan\t' };
  const c = await login(a.port);
  t.is(await status(c, 'C1', `ACTIVATE ${lit(entry.name)} ${lit(entry.location)} ${lit(entry.acl)}`), 'C1 OK "done"');
  t.is(await status(c, 'C2', 'RESERVE "user.xc.r" "backend1!default"'), 'C2 OK "done"');
  c.close();
  const acked = Date.now();
  let found: DirEntry | undefined;
  for (let i = 0; i < 100 && Date.now() - acked < 5_000 && !found; i++) {
    found = (await cyrusSlave.dump()).entries.find((e) => e.name === entry.name);
    if (!found) await sleep(100);
  }
  t.deepEqual(found, entry, "the new mailbox is in the Cyrus slave's mailboxes.db within 5 s of the OK on node A");
  // Its whole copy equals the directory (all names here are UTF-8, which ctl_mboxlist -d needs).
  const dump = await cyrusSlave.dump();
  const c2 = await login(a.port);
  const listed = await command(c2, 'L1', 'LIST');
  c2.close();
  const ours: DirEntry[] = listed.records.map((r) => ({
    name: r.args[0],
    state: r.kind === 'MAILBOX' ? 'ACTIVE' : 'RESERVED',
    location: r.args[1],
    acl: r.args[2] ?? '',
  }));
  t.deepEqual(canonicalEntries(dump.entries), canonicalEntries(ours.filter((e) => !/[\x80-\xff]/.test(e.name))));
});

/** A backend's mailboxes: children, `-`, `_` and spaces (the names that trip order bugs), several ACL shapes. */
function backendMailboxes(): MailboxSpec[] {
  const names = [
    'user.pu',
    'user.pu.Sent',
    'user.pu.Sent.2024',
    'user.pu.Sent Items',
    'user.pu.a-b',
    'user.pu.a_b',
    'user.pu.a b',
    'user.pu.a.b',
    'user.pu-y',
    'user.pu_y',
    'user.pu y',
    'user.puy',
    'shared-pu',
    'shared-pu.folder',
    'shared-pu.folder-x',
  ];
  return names.map((name, i): MailboxSpec =>
    i % 5 === 2
      ? {
          name,
          acl: [
            ['pu', 'lrswipkxtecdan'],
            ['-bob', 'w'],
            ['group:staff', 'lrs'],
          ],
        }
      : i % 7 === 3
        ? { name, acl: [] }
        : { name },
  );
}

/** What the directory held before the push: some of the backend's mailboxes, stale ones, and names on another server. */
function masterBefore(local: MasterEntry[]): MasterEntry[] {
  return [
    ...local.slice(0, 6),
    { kind: 'MAILBOX', name: 'user.pu.stale', location: 'backend-pu!default', acl: 'pu\tlrs\t' },
    { kind: 'RESERVE', name: 'user.pu.reserved', location: 'backend-pu!default', acl: '' },
    { kind: 'MAILBOX', name: 'user.pu.Sent Items', location: 'backend2!default', acl: 'other\tlrs\t' },
    { kind: 'MAILBOX', name: 'user.elsewhere', location: 'backend2!default', acl: '' },
  ];
}

/** Seeds the directory behind `seedPort`, pushes a backend's list through `pushPort`, returns the whole directory read at `readPort`. */
async function pushThrough(
  seedPort: number,
  pushPort: number,
  readPort: number,
): Promise<{ entries: MasterEntry[]; code: number | null; output: string }> {
  const backend = await CyrusBackend.create({ mupdatePort: pushPort, servername: 'backend-pu', user: 'backend1' });
  others.push({ stop: () => backend.remove() });
  await backend.load(backendMailboxes());
  await masterWrite(seedPort, masterBefore(asMasterEntries(await backend.localList())));
  const push = await backend.push();
  // The read goes to another node: wait (bounded) until it holds what the push wrote.
  const settled = Date.now() + 5_000;
  let entries = await masterEntries(readPort);
  for (let i = 0; i < 100 && Date.now() < settled; i++) {
    await sleep(50);
    const again = await masterEntries(readPort);
    if (JSON.stringify(again) === JSON.stringify(entries) && i > 2) break;
    entries = again;
  }
  return { entries, code: push.code, output: `${push.stdout}${push.stderr}` };
}

interop(
  'C52 C53 a real ctl_mboxlist -m pushing through node B leaves the same directory (read on node A) as the same push into a single master',
  async (t) => {
    const single = await startMupdated({ users: BACKEND_ADMINS });
    others.push(single);
    dirs.push(single.dataDir);
    const alone = await pushThrough(single.port, single.port, single.port);
    // A fresh directory on the cluster for the same push: seeded through A, pushed through B, read on A.
    const a2 = await shared.node({ users: BACKEND_ADMINS });
    const b2 = await shared.node({ users: BACKEND_ADMINS, prefix: shared.prefixOf(a2.dataDir) });
    const clustered = await pushThrough(a2.port, b2.port, a2.port);
    t.is(alone.code, 0, alone.output);
    t.is(clustered.code, 0, clustered.output);
    t.is(clustered.output, alone.output, 'the same output from ctl_mboxlist');
    t.true(
      alone.entries.some((e) => e.name === 'user.pu.a-b'),
      "the push added the backend's mailboxes",
    );
    t.false(
      alone.entries.some((e) => e.name === 'user.pu.stale'),
      'and removed its stale ones',
    );
    t.deepEqual(clustered.entries, alone.entries);
    t.deepEqual(await masterEntries(b2.port), alone.entries, 'node B lists the same');
  },
);
