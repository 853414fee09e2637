/**
 * Interop with the real Cyrus 3.6 backend startup push, `ctl_mboxlist -m`
 * (spec 7.3, checklist C52–C54): a throw-away backend configdirectory whose
 * mailboxes.db is loaded from a JSON dump pushes its list to a real mupdated.
 * What mupdated did is read back from its debug log ("directory change"
 * records), from LIST/FIND, and from an UPDATE stream.
 *
 * Each test uses its own backend servername and mailbox owner, so tests do
 * not see each other's entries; they run serially to keep the log readable.
 */
import test, { type ExecutionContext } from 'ava';
import * as cyrus from './helpers/cyrus-backend.js';
import { interopTest } from './helpers/cyrus.js';
import { shuffled } from './helpers/prng.js';
import { RawClient } from './helpers/raw-client.js';
import { BACKEND_ADMINS, startMupdated, type RunningMupdated } from './helpers/server.js';
import { showRun, type ProgramResult } from './helpers/run.js';

const avail = cyrus.cyrusAvailability();

const interop = interopTest('serial', cyrus.backendMissingReason());

let server: RunningMupdated;
const backends: cyrus.CyrusBackend[] = [];

test.before(async () => {
  if (!avail.available) return;
  server = await startMupdated({
    users: BACKEND_ADMINS,
  });
});

test.after.always(async () => {
  for (const b of backends) await b.remove();
  await server?.stop();
});

async function backend(servername: string, user = 'backend1'): Promise<cyrus.CyrusBackend> {
  const b = await cyrus.CyrusBackend.create({ mupdatePort: server.port, servername, user });
  backends.push(b);
  return b;
}

/**
 * 20–50 mailboxes of owner `o` with the names that trip byte-order bugs
 * (children vs `-`, `_`, space and longer names), several ACL shapes
 * (multiple identifiers, negative rights, groups, empty ACL).
 */
function trickyMailboxes(o: string): cyrus.MailboxSpec[] {
  const own: [string, string] = [o, 'lrswipkxtecdan'];
  const names = [
    `user.${o}`,
    `user.${o}.Sent`,
    `user.${o}.Sent.2024`,
    `user.${o}.Sent Items`,
    `user.${o}.Drafts`,
    `user.${o}.Trash`,
    `user.${o}.Archive`,
    `user.${o}.Archive.2023`,
    `user.${o}.Archive.2023.Q1`,
    `user.${o}.a-b`,
    `user.${o}.a_b`,
    `user.${o}.a b`,
    `user.${o}.a.b`,
    `user.${o}.ab`,
    `user.${o}.a`,
    `user.${o}.&AMQ-rger`,
    `user.${o}.x+y`,
    `user.${o}.x~y`,
    `user.${o}-y`,
    `user.${o}-y.Sent`,
    `user.${o}_y`,
    `user.${o}_y.Sent`,
    `user.${o} y`,
    `user.${o} y.Sent`,
    `user.${o}y`,
    `user.${o}y.Sent`,
    `user.${o}0`,
    `user.${o}.Sent-old`,
    `user.${o}.Sent_old`,
    `user.${o}.Sent.a-b`,
    `user.${o}.Sent.a.b`,
    `shared-${o}`,
    `shared-${o}.folder`,
    `shared-${o}.folder.sub`,
    `shared-${o}.folder-x`,
    `shared-${o}.folder x`,
  ];
  return names.map((name, i): cyrus.MailboxSpec => {
    if (i % 11 === 3) return { name, acl: [own, ['alice', 'lrs'], ['group:staff', 'lrswipkxte'], ['-bob', 'w']] };
    if (i % 13 === 5) return { name, acl: [] };
    if (name.startsWith('shared'))
      return {
        name,
        acl: [
          ['anyone', 'lrs'],
          ['group:helpdesk', 'lrswipkxte'],
        ],
      };
    return { name, acl: [own] };
  });
}

/** Runs `fn` and returns the directory changes mupdated logged meanwhile that touch `servername` or its names. */
async function changesDuring<T>(
  servername: string,
  names: Set<string>,
  fn: () => Promise<T>,
): Promise<{ result: T; changes: string[]; refused: string[] }> {
  const mark = server.logs.length;
  const result = await fn();
  await cyrus.logBarrier(server);
  const lines = server.logs.slice(mark);
  const mine = (c: { name: string; location?: string }) => names.has(c.name) || (c.location ?? '').startsWith(`${servername}!`);
  const fmt = (c: { cmd: string; name: string; location?: string }) =>
    `${c.cmd} ${c.name}${c.location === undefined ? '' : ` ${c.location}`}`;
  return {
    result,
    changes: cyrus.directoryChanges(lines).filter(mine).map(fmt),
    refused: cyrus.directoryChanges(lines, { refused: true }).filter(mine).map(fmt),
  };
}

const NOT_US = 'mupdate said not us before it said us';

/** A ctl_mboxlist run that exited 0 and printed nothing, on stdout or stderr. */
function expectSilentSuccess(t: ExecutionContext, r: ProgramResult): void {
  t.is(r.code, 0, showRun(r));
  t.is(r.stdout, '', showRun(r));
  t.is(r.stderr, '', showRun(r));
}

interop(
  'C52 ctl_mboxlist -m on a backend whose mailboxes the master all has: exit 0, no ACTIVATE/DELETE, silent UPDATE stream',
  async (t) => {
    const b = await backend('backend-c52');
    const specs = trickyMailboxes('t52');
    await b.load(specs);
    const local = await b.localList();
    t.is(local.length, specs.length);
    // the master learns every entry (ACTIVATEd in a shuffled order, exactly the local location and ACL bytes)
    await cyrus.masterWrite(server.port, shuffled(cyrus.asMasterEntries(local), 52));
    t.deepEqual(
      await cyrus.masterEntries(server.port, 'backend-c52!'),
      cyrus.asMasterEntries(local),
      'mupdated lists them in the backend order',
    );

    // an UPDATE stream for this server, which must stay silent through the push
    const stream = await RawClient.login(server.port, 'backend2');
    stream.send('U01 UPDATE {11+}\r\nbackend-c52\r\n');
    const dump = await stream.readUntilTagged('U01', 30_000);
    t.is(dump[dump.length - 1], 'U01 OK "streaming starts"');

    const names = new Set(specs.map((s) => s.name));
    const { result: push, changes, refused } = await changesDuring('backend-c52', names, () => b.push());
    expectSilentSuccess(t, push);
    t.deepEqual(changes, [], 'no ACTIVATE/RESERVE/DELETE reached the directory');
    t.deepEqual(refused, []);

    stream.send('N1 NOOP\r\n');
    t.deepEqual(await stream.readUntilTagged('N1', 10_000), ['N1 OK "Noop done"'], 'nothing was streamed');
    stream.close();

    // -w agrees: nothing to do
    const warn = await b.push({ warn: true });
    t.is(warn.code, 0, showRun(warn));
    t.is(warn.stdout, '', showRun(warn));
    t.deepEqual(await cyrus.masterEntries(server.port, 'backend-c52!'), cyrus.asMasterEntries(local));
  },
);

interop(
  'C53 a local mailbox the master lacks: -w prints "Force Activate: <name>" and changes nothing; the push makes it ACTIVE at backend1!default',
  async (t) => {
    const b = await backend('backend1');
    const specs = trickyMailboxes('t53').slice(0, 25);
    await b.load(specs);
    const local = await b.localList();
    t.is(local.length, 25);
    const missing = [`user.t53.Sent.2024`, `user.t53 y`, `user.t53.a b`];
    for (const m of missing)
      t.true(
        local.some((l) => l.name === m),
        m,
      );
    await cyrus.masterWrite(server.port, cyrus.asMasterEntries(local.filter((l) => !missing.includes(l.name))));
    const before = await cyrus.masterEntries(server.port, 'backend1!');
    t.is(before.length, 22);

    const names = new Set(specs.map((s) => s.name));
    const { result: warn, changes: warnChanges } = await changesDuring('backend1', names, () => b.push({ warn: true }));
    t.is(warn.code, 0, showRun(warn));
    // one line per planned action, in the backend's own (mailboxes.db) order
    const expectedPlan = local
      .filter((l) => missing.includes(l.name))
      .map((l) => `Force Activate: ${l.name}\n`)
      .join('');
    t.is(warn.stdout, expectedPlan, showRun(warn));
    t.is(warn.stderr, '', showRun(warn));
    t.deepEqual(warnChanges, [], '-w changes nothing');
    t.deepEqual(await cyrus.masterEntries(server.port, 'backend1!'), before);
    for (const m of missing) t.is(await cyrus.masterFind(server.port, m), undefined, `${m} still unknown after -w`);

    const { result: push, changes } = await changesDuring('backend1', names, () => b.push());
    expectSilentSuccess(t, push);
    t.deepEqual(
      changes,
      local.filter((l) => missing.includes(l.name)).map((l) => `ACTIVATE ${l.name} backend1!default`),
    );
    for (const m of missing) {
      const want = local.find((l) => l.name === m)!;
      t.deepEqual(await cyrus.masterFind(server.port, m), { kind: 'MAILBOX', name: m, location: 'backend1!default', acl: want.acl });
    }
    t.deepEqual(await cyrus.masterEntries(server.port, 'backend1!'), cyrus.asMasterEntries(local), 'master now lists exactly the backend');
    t.deepEqual(await b.localList(), local, 'the backend kept all its mailboxes');
  },
);

interop(
  'C54 names like user.x.Sent, user.x-y, user.x_y, "user.x y" never give "mupdate said not us before it said us": first push and in-sync repush exit 0',
  async (t) => {
    const b = await backend('backend-c54');
    const specs = trickyMailboxes('x');
    t.true(specs.length >= 20 && specs.length <= 50);
    for (const n of ['user.x.Sent', 'user.x-y', 'user.x_y', 'user.x y'])
      t.true(
        specs.some((s) => s.name === n),
        n,
      );
    await b.load(specs);
    const local = await b.localList();
    t.is(local.length, specs.length);
    const names = new Set(specs.map((s) => s.name));

    const { result: first, changes } = await changesDuring('backend-c54', names, () => b.push());
    t.is(first.code, 0, showRun(first));
    t.false(first.stderr.includes(NOT_US), showRun(first));
    t.is(first.stderr, '', showRun(first));
    t.deepEqual(
      changes,
      local.map((l) => `ACTIVATE ${l.name} backend-c54!default`),
      'one ACTIVATE per mailbox, in backend order',
    );
    t.deepEqual(await cyrus.masterEntries(server.port, 'backend-c54!'), cyrus.asMasterEntries(local));

    // in sync: LIST order must pair up with the backend's order one by one
    const { result: again, changes: againChanges } = await changesDuring('backend-c54', names, () => b.push());
    t.is(again.code, 0, showRun(again));
    t.false(again.stderr.includes(NOT_US), showRun(again));
    t.is(again.stderr, '', showRun(again));
    t.is(again.stdout, '', showRun(again));
    t.deepEqual(againChanges, [], 'an in-sync repush changes nothing');

    const warn = await b.push({ warn: true });
    t.is(warn.code, 0, showRun(warn));
    t.is(warn.stdout, '', showRun(warn));
    t.false(warn.stderr.includes(NOT_US), showRun(warn));
  },
);

interop('ctl_mboxlist -m DELETEs master entries for the backend that it lacks ("Remove from MUPDATE" with -w)', async (t) => {
  const b = await backend('backend-del');
  const specs = trickyMailboxes('tdel').slice(0, 20);
  await b.load(specs);
  const local = await b.localList();
  const stale = [
    { kind: 'MAILBOX' as const, name: 'user.tdel.stale', location: 'backend-del!default', acl: 'tdel\tlrswipkxtecdan\t' },
    { kind: 'MAILBOX' as const, name: 'user.tdel.Sent.gone', location: 'backend-del!default', acl: '' },
    { kind: 'RESERVE' as const, name: 'user.tdel-reserved', location: 'backend-del!default', acl: '' },
  ];
  await cyrus.masterWrite(server.port, [...cyrus.asMasterEntries(local), ...stale]);
  const listed = (await cyrus.masterEntries(server.port, 'backend-del!')).map((e) => e.name);
  t.is(listed.length, 23);
  // ctl_mboxlist collects the names to remove by prepending to a list: it
  // prints and DELETEs them in the reverse of the master's LIST order
  const staleReversed = listed.filter((n) => stale.some((s) => s.name === n)).reverse();
  t.deepEqual(staleReversed, ['user.tdel-reserved', 'user.tdel.stale', 'user.tdel.Sent.gone']);

  const names = new Set([...specs.map((s) => s.name), ...stale.map((s) => s.name)]);
  const { result: warn, changes: warnChanges } = await changesDuring('backend-del', names, () => b.push({ warn: true }));
  t.is(warn.code, 0, showRun(warn));
  t.is(warn.stdout, staleReversed.map((n) => `Remove from MUPDATE: ${n}\n`).join(''), showRun(warn));
  t.deepEqual(warnChanges, []);

  const { result: push, changes } = await changesDuring('backend-del', names, () => b.push());
  expectSilentSuccess(t, push);
  t.deepEqual(
    changes,
    staleReversed.map((n) => `DELETE ${n}`),
  );
  for (const s of stale) t.is(await cyrus.masterFind(server.port, s.name), undefined, s.name);
  t.deepEqual(await cyrus.masterEntries(server.port, 'backend-del!'), cyrus.asMasterEntries(local));
});

interop(
  'conflict_policy cyrus: a name the master places on another server makes ctl_mboxlist -m delete its local copy; -a takes the name over (spec 7.3)',
  async (t) => {
    const cyrusLike = await startMupdated({
      users: BACKEND_ADMINS,
      config: { conflict_policy: 'cyrus' },
    });
    try {
      const b = await cyrus.CyrusBackend.create({ mupdatePort: cyrusLike.port, servername: 'backend-dup', user: 'backend1' });
      backends.push(b);
      const specs = ['user.tdup', 'user.tdup.Sent', 'user.tdup.keep', 'user.tdup.mine'].map((name): cyrus.MailboxSpec => ({ name }));
      await b.load(specs, { files: true });
      const elsewhere = { kind: 'MAILBOX' as const, name: 'user.tdup.Sent', location: 'backend2!default', acl: 'tdup\tlrs\t' };
      await cyrus.masterWrite(cyrusLike.port, [elsewhere]);

      const warn = await b.push({ warn: true });
      t.is(warn.code, 0, showRun(warn));
      t.is(
        warn.stdout,
        'Force Activate: user.tdup\nRemove Local Mailbox: user.tdup.Sent\nForce Activate: user.tdup.keep\nForce Activate: user.tdup.mine\n',
        showRun(warn),
      );

      const mark = cyrusLike.logs.length;
      const push = await b.push();
      await cyrus.logBarrier(cyrusLike);
      t.is(push.code, 0, showRun(push));
      t.is(push.stderr, '', showRun(push));
      t.deepEqual(
        cyrus.directoryChanges(cyrusLike.logs.slice(mark)).map((c) => `${c.cmd} ${c.name} ${c.location}`),
        [
          'ACTIVATE user.tdup backend-dup!default',
          'ACTIVATE user.tdup.keep backend-dup!default',
          'ACTIVATE user.tdup.mine backend-dup!default',
        ],
      );
      t.deepEqual(await cyrus.masterFind(cyrusLike.port, 'user.tdup.Sent'), elsewhere, 'the other server keeps the name');
      const after = (await b.localList()).map((l) => l.name);
      t.false(after.includes('user.tdup.Sent'), 'the backend deleted its own copy');
      t.true(
        after.some((n) => /^DELETED\.user\.tdup\.Sent\.[0-9A-F]{8}$/.test(n)),
        `delayed delete keeps it locally as DELETED.*: ${after.join(', ')}`,
      );

      // -a on a second backend that also has user.tdup.mine: the local list wins, last writer wins
      const b2 = await cyrus.CyrusBackend.create({ mupdatePort: cyrusLike.port, servername: 'backend-dup2', user: 'backend2' });
      backends.push(b2);
      await b2.load([{ name: 'user.tdup.mine', acl: [['tdup', 'lr']] }]);
      const mark2 = cyrusLike.logs.length;
      const auth = await b2.push({ authoritative: true });
      await cyrus.logBarrier(cyrusLike);
      t.is(auth.code, 0, showRun(auth));
      t.deepEqual(
        cyrus.directoryChanges(cyrusLike.logs.slice(mark2)).map((c) => `${c.cmd} ${c.name} ${c.location}`),
        ['ACTIVATE user.tdup.mine backend-dup2!default'],
      );
      t.deepEqual(
        await cyrus.masterFind(cyrusLike.port, 'user.tdup.mine'),
        cyrus.mailboxEntry('user.tdup.mine', 'backend-dup2!default', 'tdup\tlr\t'),
      );
    } finally {
      await cyrusLike.stop();
    }
  },
);

interop(
  'default conflict policy: ctl_mboxlist -m (with and without -a) keeps its local copy of a name held by another server, the claim is refused and the push still exits 0',
  async (t) => {
    const b = await backend('backend-q');
    const specs: cyrus.MailboxSpec[] = [{ name: 'user.tq' }, { name: 'user.tq.Sent' }, { name: 'user.tq.keep' }];
    await b.load(specs, { files: true });
    const elsewhere = { kind: 'MAILBOX' as const, name: 'user.tq.Sent', location: 'backend2!default', acl: 'tq\tlrs\t' };
    await cyrus.masterWrite(server.port, [elsewhere]);
    const names = new Set(specs.map((s) => s.name));

    for (const authoritative of [false, true]) {
      const { result: push, changes } = await changesDuring('backend-q', names, () => b.push({ authoritative }));
      t.is(push.code, 0, showRun(push));
      // a NO to ACTIVATE is "temporary failure storing '<name>' (update continuing)" for ctl_mboxlist (spec 7.3)
      t.regex(push.stderr, /temporary failure storing 'user\.tq\.Sent' \(update continuing\)/, showRun(push));
      t.false(push.stderr.includes(NOT_US), showRun(push));
      t.deepEqual(changes, authoritative ? [] : ['ACTIVATE user.tq backend-q!default', 'ACTIVATE user.tq.keep backend-q!default']);
      t.deepEqual(await cyrus.masterFind(server.port, 'user.tq.Sent'), elsewhere, 'the holder keeps the name');
      t.deepEqual(
        (await b.localList()).map((l) => l.name),
        ['user.tq', 'user.tq.Sent', 'user.tq.keep'],
        'the backend kept its copy',
      );
    }
  },
);
