/**
 * The duplicate-mailbox conflict queue (README "Conflicts: no mailbox lost to
 * a duplicate", spec 5.2 and 7.0-7.3), without Cyrus programs:
 *
 * - the rule: an ACTIVATE naming server X for a mailbox ACTIVE at server Y is
 *   refused with a NO naming Y and the conflict, and recorded once (repeats
 *   count up); a RESERVE of a taken name is Cyrus's "mailbox already exists"
 *   and never queued; policy `cyrus` keeps last writer wins;
 * - the command sequences real backends send (CREATE, RENAME, delayed DELETE,
 *   XFER, SETACL, partition move), replayed over the wire as backend1 and
 *   backend2, raise no conflict;
 * - a push session (first command `LIST "<server>!"`) does not see, with FIND,
 *   a name another server holds;
 * - the operator CLI: list (table, --json, --all, --status), show, resolve
 *   --keep claimant|current, dismiss, the audit log, streaming of a
 *   resolution, errors, and direct access to the data folder when the server
 *   is stopped.
 *
 * One shared server; each test uses its own mailbox names and its own server
 * names in locations (so PARTIAL-UPDATE streams see only its own changes).
 * Tests that need a directory to themselves start their own server.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalEntries, listDirectory, type DirEntry } from './helpers/cyrus.js';
import {
  aclOf,
  answer,
  drainStream,
  exchange,
  mailboxLines,
  readStreamed,
  runCli,
  type CliResult,
  find,
  writeAs,
} from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { serversForFile } from './helpers/file-servers.js';
import { BACKEND_ADMINS, type RunningMupdated } from './helpers/server.js';
import { showRun } from './helpers/run.js';

const files = serversForFile();
let server: RunningMupdated;

test.before(async () => {
  server = await files.start({ users: BACKEND_ADMINS });
});

function ownServer(config: Record<string, string> = {}): Promise<RunningMupdated> {
  return files.start({ users: BACKEND_ADMINS, config });
}

interface ConflictJson {
  id: number;
  status: 'open' | 'resolved' | 'dismissed';
  name: string;
  current: { state: string; location: string; acl: string };
  claimed: { state: string; location: string; acl: string };
  command: string;
  user: string;
  peer: string;
  firstSeen: string;
  lastSeen: string;
  count: number;
  resolution?: { keep: string; at: string; by: string };
  staleCopy?: string;
  refused?: number;
  lastRefused?: string;
}

function conflictsCli(s: RunningMupdated, ...args: string[]): Promise<CliResult> {
  return runCli(['conflicts', ...args, '--data', s.dataDir]);
}

async function listJson(t: ExecutionContext, s: RunningMupdated, ...flags: string[]): Promise<ConflictJson[]> {
  const r = await conflictsCli(s, 'list', '--json', ...flags);
  t.is(r.code, 0, showRun(r));
  t.is(r.stderr, '', showRun(r));
  return JSON.parse(r.stdout) as ConflictJson[];
}

/** A PARTIAL-UPDATE stream for the given server names, dump read. */
async function streamFor(s: RunningMupdated, ...hosts: string[]): Promise<RawClient> {
  const c = await RawClient.login(s.port);
  c.send(`U1 UPDATE${hosts.map((h) => ` "${h}"`).join('')}\r\n`);
  const dump = await c.readUntilTagged('U1', 30_000);
  if (dump[dump.length - 1] !== 'U1 OK "streaming starts"') throw new Error(`UPDATE: ${JSON.stringify(dump)}`);
  return c;
}

/** The NO for a claim decision `id` already settled (issue 13.7). */
const decidedNo = (tag: string, holder: string, id: number, keep: string, refused: number) =>
  `${tag} NO "mailbox is active on ${holder}; conflict #${id} was decided (keep ${keep}), this copy is not used and the claim is not queued again (refused ${refused} time(s) since)"`;

async function showJson(t: ExecutionContext, s: RunningMupdated, id: number): Promise<ConflictJson> {
  const r = await conflictsCli(s, 'show', String(id), '--json');
  t.is(r.code, 0, showRun(r));
  return JSON.parse(r.stdout) as ConflictJson;
}

const CLAIM_RE = (holder: string) => new RegExp(`^X1 NO "mailbox is active on ${holder}; conflict #(\\d+) queued for an operator"$`);

/** Makes `name` active at holder!default (as backend1) and has backend2 claim it at claimant!default; returns the conflict id. */
async function makeConflict(
  t: ExecutionContext,
  s: RunningMupdated,
  name: string,
  holder: string,
  claimant: string,
  acls: { held: string; claimed: string },
): Promise<number> {
  t.is(await writeAs(s, 'backend1', 'ACTIVATE', name, `${holder}!default`, acls.held), 'X1 OK "done"');
  const refused = await writeAs(s, 'backend2', 'ACTIVATE', name, `${claimant}!default`, acls.claimed);
  const m = CLAIM_RE(holder).exec(refused);
  t.truthy(m, refused);
  return Number(m?.[1]);
}

function auditLines(s: RunningMupdated): Array<Record<string, unknown>> {
  const path = join(s.dataDir, 'audit.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** An open conflict that backend2's first refused ACTIVATE queued. */
const FIRST_ACTIVATE_BY_BACKEND2 = { status: 'open', command: 'ACTIVATE', user: 'backend2', count: 1 } as const;

/** A conflict record's side that holds or claims an active entry. */
const active = (location: string, acl: string) => ({ state: 'active', location, acl }) as const;

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// ---------------------------------------------------------------------------
// the rule

test('an ACTIVATE naming another server for an ACTIVE mailbox gets NO naming the holder and the conflict; the entry stays, nothing streams, repeats count up one record', async (t) => {
  const held = aclOf(['dup1', 'lrswipkxtecdan']);
  t.is(await writeAs(server, 'backend1', 'RESERVE', 'user.dup1', 'srv-dup-a!default'), 'X1 OK "done"');
  t.is(await writeAs(server, 'backend1', 'ACTIVATE', 'user.dup1', 'srv-dup-a!default', held), 'X1 OK "done"');
  const stream = await streamFor(server, 'srv-dup-a', 'srv-dup-b');

  const b2 = await RawClient.login(server.port, 'backend2');
  const claimAcl = aclOf(['dup1', 'lrs']);
  const first = await answer(b2, 'X1', 'ACTIVATE', 'user.dup1', 'srv-dup-b!default', claimAcl);
  const m = CLAIM_RE('srv-dup-a').exec(first);
  t.truthy(m, first);
  const id = Number(m?.[1]);

  t.deepEqual(await find(server, 'user.dup1'), mailboxLines('F1', 'user.dup1', 'srv-dup-a!default', held), 'the holder keeps the entry');
  t.deepEqual(await drainStream(stream, 'U1', 'N1'), [], 'a refused claim streams nothing');

  let records = (await listJson(t, server)).filter((r) => r.name === 'user.dup1');
  t.is(records.length, 1);
  const rec = records[0];
  t.like(rec, {
    ...FIRST_ACTIVATE_BY_BACKEND2,
    id,
    name: 'user.dup1',
    current: active('srv-dup-a!default', 'dup1\\tlrswipkxtecdan\\t'),
    claimed: active('srv-dup-b!default', 'dup1\\tlrs\\t'),
    peer: `127.0.0.1:${b2.socket.localPort}`,
  });
  t.regex(rec.firstSeen, ISO);
  t.is(rec.lastSeen, rec.firstSeen);
  t.is(rec.resolution, undefined);

  // the same claim again, twice (once with another ACL, from another connection): one record, counted
  t.is(
    await answer(b2, 'X2', 'ACTIVATE', 'user.dup1', 'srv-dup-b!default', claimAcl),
    `X2 NO "mailbox is active on srv-dup-a; conflict #${id} queued for an operator"`,
  );
  b2.close();
  const b2again = await RawClient.login(server.port, 'backend2');
  const newAcl = aclOf(['dup1', 'lrswipkxtecdan'], ['anyone', 'lr']);
  t.is(
    await answer(b2again, 'X3', 'ACTIVATE', 'user.dup1', 'srv-dup-b!default', newAcl),
    `X3 NO "mailbox is active on srv-dup-a; conflict #${id} queued for an operator"`,
  );
  records = (await listJson(t, server)).filter((r) => r.name === 'user.dup1');
  t.is(records.length, 1, 'repeats update the one record');
  t.like(records[0], {
    id,
    count: 3,
    firstSeen: rec.firstSeen,
    peer: `127.0.0.1:${b2again.socket.localPort}`,
    claimed: active('srv-dup-b!default', 'dup1\\tlrswipkxtecdan\\tanyone\\tlr\\t'),
  });
  t.true(records[0].lastSeen >= rec.firstSeen);
  b2again.close();

  t.deepEqual(await find(server, 'user.dup1'), mailboxLines('F1', 'user.dup1', 'srv-dup-a!default', held));
  t.deepEqual(await drainStream(stream, 'U1', 'N2'), []);
  stream.close();
});

test('C27 a RESERVE of a name held elsewhere (active or reserved, other server or partition) is "mailbox already exists" and is never queued', async (t) => {
  t.is(await writeAs(server, 'backend1', 'ACTIVATE', 'user.res1', 'srv-res-a!default', aclOf(['res1', 'lrs'])), 'X1 OK "done"');
  t.is(await writeAs(server, 'backend1', 'RESERVE', 'user.res2', 'srv-res-a!default'), 'X1 OK "done"');
  for (const [name, location] of [
    ['user.res1', 'srv-res-b!default'],
    ['user.res1', 'srv-res-a!ssd'],
    ['user.res2', 'srv-res-b!default'],
    ['user.res2', 'srv-res-a!'],
  ] as const) {
    t.is(await writeAs(server, 'backend2', 'RESERVE', name, location), 'X1 NO "mailbox already exists"', `${name} ${location}`);
  }
  t.deepEqual(await find(server, 'user.res1'), mailboxLines('F1', 'user.res1', 'srv-res-a!default', aclOf(['res1', 'lrs'])));
  t.deepEqual(await find(server, 'user.res2'), ['F1 RESERVE {9+}', 'user.res2 {17+}', 'srv-res-a!default', 'F1 OK "Search completed"']);
  t.deepEqual(
    (await listJson(t, server, '--all')).filter((r) => r.name.startsWith('user.res')),
    [],
    'nothing queued',
  );
});

test('a push session (first command LIST "<server>!") gets no FIND data for names another server holds, and its ACTIVATE of one is queued; other sessions see the entries', async (t) => {
  const acl1 = aclOf(['pf', 'lrswipkxtecdan']);
  t.is(await writeAs(server, 'backend1', 'ACTIVATE', 'user.pf1', 'srv-pf-a!default', acl1), 'X1 OK "done"');
  t.is(await writeAs(server, 'backend1', 'RESERVE', 'user.pf2', 'srv-pf-a!default'), 'X1 OK "done"');
  t.is(await writeAs(server, 'backend2', 'ACTIVATE', 'user.pf3', 'srv-pf-b!default', acl1), 'X1 OK "done"');

  const push = await RawClient.login(server.port, 'backend2');
  const list = await exchange(push, 'X0', 'LIST', 'srv-pf-b!');
  t.deepEqual(list, [...mailboxLines('X0', 'user.pf3', 'srv-pf-b!default', acl1).slice(0, -1), 'X0 OK "list complete"']);
  t.deepEqual(await exchange(push, 'X1', 'FIND', 'user.pf1'), ['X1 OK "Search completed"'], 'active at another server: hidden');
  t.deepEqual(await exchange(push, 'X2', 'FIND', 'user.pf2'), ['X2 OK "Search completed"'], 'reserved at another server: hidden');
  t.deepEqual(
    await exchange(push, 'X3', 'FIND', 'user.pf3'),
    mailboxLines('X3', 'user.pf3', 'srv-pf-b!default', acl1),
    'its own entry is shown',
  );
  const refused = await answer(push, 'X4', 'ACTIVATE', 'user.pf1', 'srv-pf-b!default', acl1);
  t.regex(refused, /^X4 NO "mailbox is active on srv-pf-a; conflict #\d+ queued for an operator"$/);
  push.send('Q01 LOGOUT\r\n');
  t.is(await push.readLine(), 'Q01 OK "bye-bye"');
  push.close();

  // a session that does not start with LIST "<server>!" sees everything: every FIND below shows user.pf1
  const sessions: Array<[steps: Array<[verb: 'FIND' | 'LIST', arg: string]>, why: string]> = [
    [
      [
        ['FIND', 'user.pf1'],
        ['LIST', 'srv-pf-b!'],
        ['FIND', 'user.pf1'],
      ],
      'a LIST that is not the first command does not make a push session',
    ],
    [
      [
        ['LIST', ''],
        ['FIND', 'user.pf1'],
      ],
      'LIST "" first is not a push session',
    ],
  ];
  for (const [steps, why] of sessions) {
    const c = await RawClient.login(server.port, 'backend2');
    for (const [i, [verb, arg]] of steps.entries()) {
      const lines = await exchange(c, `X${i + 1}`, verb, arg);
      if (verb === 'FIND') t.deepEqual(lines, mailboxLines(`X${i + 1}`, 'user.pf1', 'srv-pf-a!default', acl1), why);
    }
    c.close();
  }
  t.deepEqual(await find(server, 'user.pf1'), mailboxLines('F1', 'user.pf1', 'srv-pf-a!default', acl1));
});

test('conflict_policy cyrus: a duplicate ACTIVATE overwrites (last writer wins), nothing is queued, a push session sees the holder with FIND', async (t) => {
  const s = await ownServer({ conflict_policy: 'cyrus' });
  const acl = aclOf(['cy', 'lrswipkxtecdan']);
  t.is(await writeAs(s, 'backend1', 'ACTIVATE', 'user.cy', 'backend1!default', acl), 'X1 OK "done"');
  const push = await RawClient.login(s.port, 'backend2');
  await exchange(push, 'X0', 'LIST', 'backend2!');
  t.deepEqual(await exchange(push, 'X1', 'FIND', 'user.cy'), mailboxLines('X1', 'user.cy', 'backend1!default', acl));
  t.is(await answer(push, 'X2', 'ACTIVATE', 'user.cy', 'backend2!default', acl), 'X2 OK "done"');
  push.close();
  t.deepEqual(await find(s, 'user.cy'), mailboxLines('F1', 'user.cy', 'backend2!default', acl));
  t.deepEqual(await listJson(t, s, '--all'), []);
});

// ---------------------------------------------------------------------------
// what real backends send (spec 7.0-7.2)

type Step = [verb: string, ...args: string[]];

/** Runs the steps on one connection as `user`, each answered OK; LIST answers "list complete". */
async function session(t: ExecutionContext, s: RunningMupdated, user: string, label: string, steps: Step[]): Promise<void> {
  const c = await RawClient.login(s.port, user);
  try {
    let n = 0;
    for (const [verb, ...args] of steps) {
      const tag = `X${n++}`;
      const lines = await exchange(c, tag, verb, ...args);
      const want = verb === 'LIST' ? `${tag} OK "list complete"` : `${tag} OK "done"`;
      t.is(lines[lines.length - 1], want, `${label}: ${user} ${verb} ${args.slice(0, 2).join(' ')}`);
    }
    c.send('Q01 LOGOUT\r\n');
    t.is(await c.readLine(), 'Q01 OK "bye-bye"');
  } finally {
    c.close();
  }
}

test('the sequences real backends send (CREATE, SETACL, RENAME to "b1!", push re-activation, partition move, delayed DELETE, XFER b1->b2 and its retry and undo, expiry) raise no conflict; a genuine duplicate raises exactly one, counted', async (t) => {
  const s = await ownServer();
  const own = aclOf(['rp', 'lrswipkxtecdan']);
  const shared = aclOf(['rp', 'lrswipkxtecdan'], ['anyone', 'lrs']);
  const hex = '65F1A2B3';
  // CREATE (7.0): RESERVE then ACTIVATE, one connection per mailbox
  for (const name of ['user.rp', 'user.rp.Sent', 'user.rp.Old']) {
    await session(t, s, 'backend1', 'CREATE', [
      ['RESERVE', name, 'backend1!default'],
      ['ACTIVATE', name, 'backend1!default', own],
    ]);
  }
  await session(t, s, 'backend2', 'CREATE', [
    ['RESERVE', 'shared.rp2', 'backend2!default'],
    ['ACTIVATE', 'shared.rp2', 'backend2!default', shared],
  ]);
  // SETACL: ACTIVATE at the same location with the new ACL
  await session(t, s, 'backend1', 'SETACL', [['ACTIVATE', 'user.rp', 'backend1!default', shared]]);
  // RENAME: DELETE old, RESERVE new "b1!", ACTIVATE new "b1!" acl (empty partition, 7.0)
  await session(t, s, 'backend1', 'RENAME', [
    ['DELETE', 'user.rp.Old'],
    ['RESERVE', 'user.rp.Archive', 'backend1!'],
    ['ACTIVATE', 'user.rp.Archive', 'backend1!', own],
  ]);
  // the next startup push re-activates it at "!default" (a push session)
  await session(t, s, 'backend1', 'startup push', [
    ['LIST', 'backend1!'],
    ['ACTIVATE', 'user.rp.Archive', 'backend1!default', own],
  ]);
  // partition move: same name, new partition
  await session(t, s, 'backend1', 'partition move', [['ACTIVATE', 'user.rp.Sent', 'backend1!ssd', own]]);
  // delayed DELETE: DELETE n, RESERVE DELETED.n.<hex> "b1!", ACTIVATE it
  await session(t, s, 'backend1', 'delayed DELETE', [
    ['DELETE', 'user.rp.Sent'],
    ['RESERVE', `DELETED.user.rp.Sent.${hex}`, 'backend1!'],
    ['ACTIVATE', `DELETED.user.rp.Sent.${hex}`, 'backend1!', own],
  ]);
  // XFER b1 -> b2: DEACTIVATE each at the old location from b1 (one connection), then ACTIVATE each from b2
  await session(t, s, 'backend1', 'XFER source', [
    ['DEACTIVATE', 'user.rp', 'backend1!default'],
    ['DEACTIVATE', 'user.rp.Archive', 'backend1!default'],
  ]);
  await session(t, s, 'backend2', 'XFER destination', [
    ['ACTIVATE', 'user.rp', 'backend2!default', shared],
    ['ACTIVATE', 'user.rp.Archive', 'backend2!default', own],
  ]);
  // 7.2: the destination repeats its ACTIVATE once on a fresh connection
  await session(t, s, 'backend2', 'XFER destination retry', [['ACTIVATE', 'user.rp.Archive', 'backend2!default', own]]);
  // an XFER b2 -> b1 that fails after DEACTIVATE is undone by the source with ACTIVATE at its own location
  await session(t, s, 'backend2', 'XFER undo', [
    ['DEACTIVATE', 'user.rp.Archive', 'backend2!default'],
    ['ACTIVATE', 'user.rp.Archive', 'backend2!default', own],
  ]);
  // cyr_expire removes the delayed-delete mailbox; immediate DELETE on backend2; the freed name is created again by backend1
  await session(t, s, 'backend1', 'expire', [['DELETE', `DELETED.user.rp.Sent.${hex}`]]);
  await session(t, s, 'backend2', 'immediate DELETE', [['DELETE', 'shared.rp2']]);
  await session(t, s, 'backend1', 'CREATE again', [
    ['RESERVE', 'user.rp.Sent', 'backend1!default'],
    ['ACTIVATE', 'user.rp.Sent', 'backend1!default', own],
  ]);

  const expected: DirEntry[] = [
    { name: 'user.rp', state: 'ACTIVE', location: 'backend2!default', acl: shared },
    { name: 'user.rp.Archive', state: 'ACTIVE', location: 'backend2!default', acl: own },
    { name: 'user.rp.Sent', state: 'ACTIVE', location: 'backend1!default', acl: own },
  ];
  t.deepEqual(canonicalEntries(await listDirectory(s.port, { password: 'secret' })), canonicalEntries(expected));
  t.deepEqual(await listJson(t, s, '--all'), [], 'no false conflict');
  const table = await conflictsCli(s, 'list');
  t.is(table.code, 0, showRun(table));
  t.is(table.stdout, 'no conflicts\n', showRun(table));

  // a genuine duplicate: backend1 claims user.rp, which is active on backend2
  for (let i = 0; i < 3; i++) {
    const refused = await writeAs(s, 'backend1', 'ACTIVATE', 'user.rp', 'backend1!default', own);
    t.is(refused, 'X1 NO "mailbox is active on backend2; conflict #1 queued for an operator"');
  }
  const records = await listJson(t, s, '--all');
  t.is(records.length, 1, 'exactly one conflict');
  t.like(records[0], {
    id: 1,
    status: 'open',
    name: 'user.rp',
    count: 3,
    user: 'backend1',
    current: { state: 'active', location: 'backend2!default' },
    claimed: { state: 'active', location: 'backend1!default' },
  });
  t.deepEqual(canonicalEntries(await listDirectory(s.port)), canonicalEntries(expected), 'the directory is unchanged');
});

// ---------------------------------------------------------------------------
// the operator CLI

test('conflicts show (text and --json) and list (table, --json, --status) describe a conflict; 8-bit bytes and TABs are escaped', async (t) => {
  const name = 'user.k\xe4se';
  const held = aclOf(['k\xe4se', 'lrswipkxtecdan']);
  const id = await makeConflict(t, server, name, 'srv-show-a', 'srv-show-b', { held, claimed: '' });

  const json = await conflictsCli(server, 'show', String(id), '--json');
  t.is(json.code, 0, showRun(json));
  const rec = JSON.parse(json.stdout) as ConflictJson;
  t.like(rec, {
    ...FIRST_ACTIVATE_BY_BACKEND2,
    id,
    name: 'user.k\\xe4se',
    current: active('srv-show-a!default', 'k\\xe4se\\tlrswipkxtecdan\\t'),
    claimed: active('srv-show-b!default', ''),
  });
  t.deepEqual(
    (await listJson(t, server)).find((r) => r.id === id),
    rec,
    'list --json and show --json agree',
  );

  const text = await conflictsCli(server, 'show', `#${id}`);
  t.is(text.code, 0, showRun(text));
  const lines = text.stdout.split('\n');
  t.is(lines.pop(), '', 'ends with a newline');
  t.deepEqual(lines, [
    `conflict #${id} (open)`,
    '  mailbox:     user.k\\xe4se',
    '  held by:     srv-show-a!default (active), acl k\\xe4se\\tlrswipkxtecdan\\t',
    '  claimed by:  srv-show-b!default (ACTIVATE), acl (empty)',
    `  claimant:    backend2 from ${rec.peer}`,
    `  seen:        1 time(s), first ${rec.firstSeen}, last ${rec.lastSeen}`,
    `  resolve with: mupdated conflicts resolve ${id} --keep current|claimant  (or dismiss ${id})`,
  ]);

  const table = await conflictsCli(server, 'list');
  t.is(table.code, 0, showRun(table));
  const rows = table.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(/ {2,}/));
  t.deepEqual(rows[0], ['ID', 'STATUS', 'MAILBOX', 'HELD BY', 'CLAIMED BY', 'USER', 'SEEN', 'LAST SEEN']);
  t.deepEqual(
    rows.find((r) => r[0] === String(id)),
    [String(id), 'open', 'user.k\\xe4se', 'srv-show-a!default', 'srv-show-b!default', 'backend2', '1x', rec.lastSeen],
  );
  // the columns line up: every row's MAILBOX column starts where the header's does
  const header = table.stdout.split('\n')[0];
  const row = table.stdout.split('\n').find((l) => l.startsWith(`${id} `))!;
  t.is(row.indexOf('user.k\\xe4se'), header.indexOf('MAILBOX'));

  const resolved = await listJson(t, server, '--status', 'resolved');
  t.false(
    resolved.some((r) => r.id === id),
    'an open conflict is not listed as resolved',
  );
});

test('resolve --keep claimant while the server runs: the entry moves in one step, an UPDATE stream gets it at once, the decision is logged and audited, and the conflict is closed', async (t) => {
  const held = aclOf(['kc', 'lrswipkxtecdan']);
  const claimed = aclOf(['kc', 'lrswipkxtecdan'], ['anyone', 'lrs']);
  const stream = await streamFor(server, 'srv-kc-a', 'srv-kc-b');
  const id = await makeConflict(t, server, 'user.kc', 'srv-kc-a', 'srv-kc-b', { held, claimed });
  t.deepEqual(await drainStream(stream, 'U1', 'N1'), [{ name: 'user.kc', state: 'ACTIVE', location: 'srv-kc-a!default', acl: held }]);

  const r = await conflictsCli(server, 'resolve', String(id), '--keep', 'claimant');
  t.is(r.code, 0, showRun(r));
  t.regex(r.stdout, new RegExp(`^conflict #${id} \\(resolved\\)\n`));
  t.regex(r.stdout, /\n {2}resolution: {2}keep claimant, by \S+@cli at \d{4}-/);

  // streamed without a NOOP (pushed as soon as committed)
  t.deepEqual(await readStreamed(stream, 'U1', 10_000), { name: 'user.kc', state: 'ACTIVE', location: 'srv-kc-b!default', acl: claimed });
  t.deepEqual(await drainStream(stream, 'U1', 'N2'), [], 'exactly one change');
  stream.close();
  t.deepEqual(await find(server, 'user.kc'), mailboxLines('F1', 'user.kc', 'srv-kc-b!default', claimed));

  await server.waitForLog(new RegExp(`"msg":"conflict #${id} resolved: kept claimant"`));
  const audit = auditLines(server).filter((a) => a.conflict === id);
  t.is(audit.length, 1);
  t.like(audit[0], {
    op: 'resolve',
    keep: 'claimant',
    conflict: id,
    mailbox: 'user.kc',
    heldBy: 'srv-kc-a!default',
    claimedBy: 'srv-kc-b!default',
  });
  t.regex(String(audit[0].by), /@cli$/);
  t.is(statSync(join(server.dataDir, 'admin.sock')).mode & 0o777, 0o600, 'only the owner may talk to the admin socket');
  t.regex(String(audit[0].at), ISO);

  t.false(
    (await listJson(t, server)).some((c) => c.id === id),
    'no longer open',
  );
  const closed = (await listJson(t, server, '--status', 'resolved')).find((c) => c.id === id);
  t.like(closed, { status: 'resolved', resolution: { keep: 'claimant' } });

  const again = await conflictsCli(server, 'resolve', String(id), '--keep', 'current');
  t.is(again.code, 1, showRun(again));
  t.is(again.stderr, `mupdated conflicts: conflict #${id} is already resolved\n`);
  t.deepEqual(
    await find(server, 'user.kc'),
    mailboxLines('F1', 'user.kc', 'srv-kc-b!default', claimed),
    'a refused second decision changes nothing',
  );

  // the claimant now holds it; the former holder's claim was decided against (issue 13.7): refused naming the decision
  t.is(await writeAs(server, 'backend2', 'ACTIVATE', 'user.kc', 'srv-kc-b!default', claimed), 'X1 OK "done"');
  const reverse = await writeAs(server, 'backend1', 'ACTIVATE', 'user.kc', 'srv-kc-a!default', held);
  t.is(reverse, decidedNo('X1', 'srv-kc-b', id, 'claimant', 1));
  t.false(
    (await listJson(t, server)).some((c) => c.name === 'user.kc'),
    'no new conflict',
  );
  t.like(await showJson(t, server, id), { status: 'resolved', refused: 1, staleCopy: 'srv-kc-a!default' });
});

test('resolve --keep current closes the conflict keeping the entry (nothing streamed); the same claim later is refused naming the decision, not a new conflict', async (t) => {
  const held = aclOf(['kcur', 'lrswipkxtecdan']);
  const id = await makeConflict(t, server, 'user.kcur', 'srv-kcur-a', 'srv-kcur-b', { held, claimed: held });
  const stream = await streamFor(server, 'srv-kcur-a', 'srv-kcur-b');
  const r = await conflictsCli(server, 'resolve', String(id), '--keep', 'current');
  t.is(r.code, 0, showRun(r));
  t.regex(r.stdout, /\n {2}resolution: {2}keep current, by /);
  t.deepEqual(await drainStream(stream, 'U1', 'N1'), [], 'keeping the current entry changes nothing');
  stream.close();
  t.deepEqual(await find(server, 'user.kcur'), mailboxLines('F1', 'user.kcur', 'srv-kcur-a!default', held));
  await server.waitForLog(new RegExp(`"msg":"conflict #${id} resolved: kept current"`));
  t.like(
    auditLines(server).find((a) => a.conflict === id),
    { op: 'resolve', keep: 'current', mailbox: 'user.kcur' },
  );
  t.like(
    (await listJson(t, server, '--all')).find((c) => c.id === id),
    { status: 'resolved', resolution: { keep: 'current' } },
  );

  const again = await writeAs(server, 'backend2', 'ACTIVATE', 'user.kcur', 'srv-kcur-b!default', held);
  t.is(again, decidedNo('X1', 'srv-kcur-a', id, 'current', 1), 'a closed conflict is not reopened, and no new one is queued');
  t.false((await listJson(t, server)).some((c) => c.name === 'user.kcur'));
  t.like(await showJson(t, server, id), { status: 'resolved', refused: 1, count: 1 });
});

test("a decided conflict stays decided: the losing backend's same ACTIVATE gets NO naming the decision, counted on it, no new conflict, nothing streamed; show names the backend with the stale copy; a move since the decision ends it", async (t) => {
  const held = aclOf(['stay', 'lrswipkxtecdan']);
  const id = await makeConflict(t, server, 'user.stay', 'srv-stay-a', 'srv-stay-b', { held, claimed: held });
  const before = await showJson(t, server, id);
  t.is(before.staleCopy, undefined, 'an open conflict has no stale copy yet');
  t.is(before.refused, undefined);
  t.is((await conflictsCli(server, 'resolve', String(id), '--keep', 'current')).code, 0);
  const stream = await streamFor(server, 'srv-stay-a', 'srv-stay-b');

  // the losing backend restarts twice and pushes its copy again (another ACL too: same backend, same location)
  const b2 = await RawClient.login(server.port, 'backend2');
  t.is(await answer(b2, 'X1', 'ACTIVATE', 'user.stay', 'srv-stay-b!default', held), decidedNo('X1', 'srv-stay-a', id, 'current', 1));
  t.is(
    await answer(b2, 'X2', 'ACTIVATE', 'user.stay', 'srv-stay-b!default', aclOf(['stay', 'lr'])),
    decidedNo('X2', 'srv-stay-a', id, 'current', 2),
  );
  b2.close();
  t.deepEqual(await drainStream(stream, 'U1', 'N1'), [], 'a refused claim streams nothing');
  t.deepEqual(await find(server, 'user.stay'), mailboxLines('F1', 'user.stay', 'srv-stay-a!default', held));
  t.false(
    (await listJson(t, server, '--all')).some((c) => c.name === 'user.stay' && c.id !== id),
    'no new conflict, open or closed',
  );
  const after = await showJson(t, server, id);
  t.like(after, { status: 'resolved', count: 1, refused: 2, staleCopy: 'srv-stay-b!default' });
  t.regex(after.lastRefused ?? '', ISO);
  const text = await conflictsCli(server, 'show', String(id));
  t.is(text.code, 0, showRun(text));
  t.true(
    text.stdout.includes('\n  stale copy:  srv-stay-b still holds a copy (srv-stay-b!default) the directory does not point to;'),
    text.stdout,
  );
  t.true(text.stdout.includes(`\n  refused:     2 repeated claim(s) since the decision, last ${after.lastRefused}\n`), text.stdout);

  // another location of the same backend is another claim: queued as usual
  const other = await writeAs(server, 'backend2', 'ACTIVATE', 'user.stay', 'srv-stay-c!default', held);
  const m = CLAIM_RE('srv-stay-a').exec(other);
  t.truthy(m, other);
  t.not(Number(m?.[1]), id);
  t.is((await conflictsCli(server, 'dismiss', m![1])).code, 0);

  // the mailbox moves on (XFER to srv-stay-d): the decision no longer describes the directory, the old claim is a conflict again
  t.is(await writeAs(server, 'backend1', 'DEACTIVATE', 'user.stay', 'srv-stay-a!default'), 'X1 OK "done"');
  t.is(await writeAs(server, 'backend1', 'ACTIVATE', 'user.stay', 'srv-stay-d!default', held), 'X1 OK "done"');
  const later = await writeAs(server, 'backend2', 'ACTIVATE', 'user.stay', 'srv-stay-b!default', held);
  const n = CLAIM_RE('srv-stay-d').exec(later);
  t.truthy(n, later);
  t.like(await showJson(t, server, id), { refused: 2 }, 'not counted on the old decision');
  stream.close();
});

test('dismiss closes a conflict without a decision: directory unchanged, listed only with --all or --status dismissed, audited', async (t) => {
  const held = aclOf(['dis', 'lr']);
  const id = await makeConflict(t, server, 'user.dis', 'srv-dis-a', 'srv-dis-b', { held, claimed: held });
  const r = await conflictsCli(server, 'dismiss', String(id));
  t.is(r.code, 0, showRun(r));
  t.regex(r.stdout, new RegExp(`^conflict #${id} \\(dismissed\\)\n`));
  t.regex(r.stdout, /\n {2}resolution: {2}keep none, by /);
  t.deepEqual(await find(server, 'user.dis'), mailboxLines('F1', 'user.dis', 'srv-dis-a!default', held));
  t.false((await listJson(t, server)).some((c) => c.id === id));
  t.like(
    (await listJson(t, server, '--all')).find((c) => c.id === id),
    { status: 'dismissed', resolution: { keep: 'none' } },
  );
  t.like(
    (await listJson(t, server, '--status', 'dismissed')).find((c) => c.id === id),
    { status: 'dismissed' },
  );
  await server.waitForLog(new RegExp(`"msg":"conflict #${id} dismissed"`));
  t.like(
    auditLines(server).find((a) => a.conflict === id),
    { op: 'dismiss', keep: 'none', mailbox: 'user.dis' },
  );
  const twice = await conflictsCli(server, 'dismiss', String(id));
  t.is(twice.code, 1, showRun(twice));
  t.is(twice.stderr, `mupdated conflicts: conflict #${id} is already dismissed\n`);
});

test('conflicts CLI errors: unknown id, missing or bad --keep, bad id, unknown action, bad --status all fail with a message and change nothing', async (t) => {
  const acl = aclOf(['err', 'lrs']);
  const id = await makeConflict(t, server, 'user.err', 'srv-err-a', 'srv-err-b', { held: acl, claimed: acl });
  const show = async () => {
    const r = await conflictsCli(server, 'show', String(id), '--json');
    t.is(r.code, 0, showRun(r));
    return JSON.parse(r.stdout) as ConflictJson;
  };
  const before = await show();
  const cases: Array<[string[], RegExp]> = [
    [['show', '999999'], /no conflict #999999/],
    [['resolve', '999999', '--keep', 'claimant'], /no conflict #999999/],
    [['dismiss', '999999'], /no conflict #999999/],
    [['resolve', String(id)], /--keep current or --keep claimant/],
    [['resolve', String(id), '--keep', 'both'], /--keep current or --keep claimant/],
    [['show', 'abc'], /expected a conflict id, got 'abc'/],
    [['dismiss', '0'], /expected a conflict id, got '0'/],
    [['show', '0x1'], /expected a conflict id, got '0x1'/],
    [['dismiss', '1e0'], /expected a conflict id, got '1e0'/],
    [['show'], /expected a conflict id/],
    [['frobnicate', String(id)], /usage: mupdated conflicts/],
    [['list', '--status', 'weird'], /usage: mupdated conflicts/],
  ];
  for (const [args, message] of cases) {
    const r = await conflictsCli(server, ...args);
    t.is(r.code, 1, showRun(r));
    t.regex(r.stderr, message, showRun(r));
    t.is(r.stdout, '', showRun(r));
  }
  t.deepEqual(await show(), before, 'the conflict is untouched');
  t.deepEqual(await find(server, 'user.err'), mailboxLines('F1', 'user.err', 'srv-err-a!default', acl));
});

test('with the server stopped the CLI works on the data folder directly (list, show, resolve, dismiss, audit); the result is served after a restart, and a stale admin socket after SIGKILL does not matter', async (t) => {
  const s = await ownServer();
  const acl = aclOf(['off', 'lrswipkxtecdan']);
  const id1 = await makeConflict(t, s, 'user.off1', 'backend1', 'backend2', { held: acl, claimed: acl });
  const id2 = await makeConflict(t, s, 'user.off2', 'backend1', 'backend2', { held: acl, claimed: acl });
  const id3 = await makeConflict(t, s, 'user.off3', 'backend1', 'backend2', { held: acl, claimed: acl });
  t.deepEqual([id1, id2, id3], [1, 2, 3]);
  t.is(await s.stop(), 0);
  t.false(existsSync(join(s.dataDir, 'admin.sock')), 'a clean stop removes the admin socket');

  const open = await listJson(t, s);
  t.deepEqual(
    open.map((c) => [c.id, c.name, c.status]),
    [
      [1, 'user.off1', 'open'],
      [2, 'user.off2', 'open'],
      [3, 'user.off3', 'open'],
    ],
  );
  const show = await conflictsCli(s, 'show', '2');
  t.is(show.code, 0, showRun(show));
  t.regex(show.stdout, /^conflict #2 \(open\)\n {2}mailbox: {5}user\.off2\n/);
  const resolve = await conflictsCli(s, 'resolve', '1', '--keep', 'claimant');
  t.is(resolve.code, 0, showRun(resolve));
  const dismiss = await conflictsCli(s, 'dismiss', '2');
  t.is(dismiss.code, 0, showRun(dismiss));
  t.deepEqual(
    auditLines(s).map((a) => [a.conflict, a.op, a.keep]),
    [
      [1, 'resolve', 'claimant'],
      [2, 'dismiss', 'none'],
    ],
  );

  const restarted = await files.start({ dataDir: s.dataDir });
  t.deepEqual(
    await find(restarted, 'user.off1'),
    mailboxLines('F1', 'user.off1', 'backend2!default', acl),
    'the offline resolution is in the directory',
  );
  t.deepEqual(await find(restarted, 'user.off2'), mailboxLines('F1', 'user.off2', 'backend1!default', acl));
  const all = await listJson(t, restarted, '--all');
  t.deepEqual(
    all.map((c) => [c.id, c.status]),
    [
      [1, 'resolved'],
      [2, 'dismissed'],
      [3, 'open'],
    ],
  );

  // SIGKILL leaves admin.sock behind: the CLI must fall back to the folder, not fail
  t.is(await restarted.stop('SIGKILL'), -1);
  t.true(existsSync(join(s.dataDir, 'admin.sock')), 'the socket file is stale now');
  const r = await conflictsCli(s, 'resolve', '3', '--keep', 'current');
  t.is(r.code, 0, showRun(r));
  t.deepEqual(
    (await listJson(t, s, '--all')).map((c) => [c.id, c.status]),
    [
      [1, 'resolved'],
      [2, 'dismissed'],
      [3, 'resolved'],
    ],
  );
});
