/**
 * Interop with a real Cyrus 3.6 murder *backend* imapd (C23, C55; spec 7.0,
 * 7.1): imapd runs under its own master(8) with `mupdate_server` pointing at
 * mupdated, and is driven over IMAP by the small client below. Every mailbox
 * operation makes imapd open its own MUPDATE connection to mupdated; the
 * directory changes mupdated logged ("directory change" debug records) and its
 * FIND/LIST answers must be exactly what spec 7.0 lists.
 *
 * backend1 runs with `delete_mode: delayed` (the default), backend2 with
 * `delete_mode: immediate`.
 */
import test from 'ava';
import {
  asMasterEntries,
  CyrusBackend,
  cyrusAvailability,
  directoryChanges,
  logBarrier,
  masterEntries,
  mailboxEntry,
  masterFind,
  type CyrusImapd,
  type LocalMailbox,
  backendMissingReason,
} from './helpers/cyrus-backend.js';
import { interopTest } from './helpers/cyrus.js';
import { BACKEND_ADMINS, startMupdated, type RunningMupdated } from './helpers/server.js';
import { RawClient } from './helpers/raw-client.js';
import { showRun } from './helpers/run.js';

// ---------------------------------------------------------------------------
// a tiny IMAP client: LOGIN, then one command at a time

class Imap {
  private n = 0;

  private constructor(private raw: RawClient) {}

  static async login(port: number, user = 'cyrus', password = 'secret'): Promise<Imap> {
    const c = new Imap(await RawClient.connect(port));
    const banner = await c.raw.readLine(10_000);
    if (!banner.startsWith('* OK')) throw new Error(`IMAP banner: ${banner}`);
    const r = await c.command(`LOGIN ${quoted(user)} ${quoted(password)}`);
    if (!r.ok) throw new Error(`IMAP LOGIN failed: ${r.status}`);
    return c;
  }

  /** Sends `<tag> <text>` and reads up to the tagged reply. */
  async command(text: string, timeoutMs = 30_000): Promise<{ ok: boolean; status: string; untagged: string[] }> {
    const tag = `T${++this.n}`;
    this.raw.send(`${tag} ${text}\r\n`);
    const untagged: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const l = await this.raw.readLine(timeoutMs);
      if (l.startsWith(`${tag} `)) return { ok: l.startsWith(`${tag} OK`), status: l, untagged };
      untagged.push(l);
    }
    throw new Error('too many untagged lines');
  }

  async ok(text: string): Promise<void> {
    const r = await this.command(text);
    if (!r.ok) throw new Error(`IMAP ${text} -> ${r.status}`);
  }

  close(): void {
    this.raw.socket.end();
  }
}

function quoted(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

// ---------------------------------------------------------------------------

const avail = cyrusAvailability();

const interop = interopTest('serial', backendMissingReason());

let server: RunningMupdated;
let delayed: CyrusBackend; // backend1, delete_mode: delayed
let immediate: CyrusBackend; // backend2, delete_mode: immediate
let imapDelayed: CyrusImapd;
let imapImmediate: CyrusImapd;

test.before(async () => {
  if (!avail.available) return;
  server = await startMupdated({
    users: BACKEND_ADMINS,
  });
  delayed = await CyrusBackend.create({ mupdatePort: server.port, servername: 'backend1' });
  imapDelayed = await delayed.startImapd({ deleteMode: 'delayed' });
  immediate = await CyrusBackend.create({ mupdatePort: server.port, servername: 'backend2' });
  imapImmediate = await immediate.startImapd({ deleteMode: 'immediate' });
});

test.after.always(async () => {
  await delayed?.remove();
  await immediate?.remove();
  await server?.stop();
});

/** Runs fn; returns "CMD name location" for each directory change mupdated logged meanwhile. */
async function changesDuring(fn: () => Promise<void>): Promise<string[]> {
  const mark = server.logs.length;
  await fn();
  await logBarrier(server);
  return directoryChanges(server.logs.slice(mark)).map((c) => `${c.cmd} ${c.name}${c.location === undefined ? '' : ` ${c.location}`}`);
}

async function local(b: CyrusBackend, name: string): Promise<LocalMailbox> {
  const m = (await b.localList()).find((l) => l.name === name);
  if (!m) throw new Error(`${name} is not a mailbox on ${b.servername}`);
  return m;
}

async function imap(b: CyrusImapd, ...commands: string[]): Promise<void> {
  const c = await Imap.login(b.port);
  try {
    for (const cmd of commands) await c.ok(cmd);
  } finally {
    c.close();
  }
}

interop('C23 a real Cyrus backend imapd logs in to mupdated and completes RESERVE+ACTIVATE for an IMAP CREATE', async (t) => {
  const mark = server.logs.length;
  const changes = await changesDuring(() => imap(imapDelayed, 'CREATE user.c23'));
  t.deepEqual(changes, ['RESERVE user.c23 backend1!default', 'ACTIVATE user.c23 backend1!default']);
  t.true(
    server.logs.slice(mark).some((l) => /"user":"backend1".*"msg":"login"/.test(l)),
    'imapd authenticated as backend1',
  );
  const mine = await local(delayed, 'user.c23');
  t.is(mine.acl, 'c23\tlrswipkxtecdan\t');
  t.deepEqual(await masterFind(server.port, 'user.c23'), mailboxEntry('user.c23', 'backend1!default', mine.acl));
});

interop(
  'C55 CREATE (children and tricky names) leaves a MAILBOX at backend1!default with the backend ACL, each after RESERVE then ACTIVATE',
  async (t) => {
    const names = ['user.c55', 'user.c55.Sent', 'user.c55.Sent Items', 'user.c55-x', 'user.c55_x'];
    for (const name of names) {
      const changes = await changesDuring(() => imap(imapDelayed, `CREATE ${quoted(name)}`));
      t.deepEqual(changes, [`RESERVE ${name} backend1!default`, `ACTIVATE ${name} backend1!default`], name);
      const mine = await local(delayed, name);
      t.deepEqual(await masterFind(server.port, name), { kind: 'MAILBOX', name, location: 'backend1!default', acl: mine.acl }, name);
    }
    // a missing parent is created first, as a real mailbox with its own RESERVE+ACTIVATE (Cyrus 3.6)
    const nested = await changesDuring(() => imap(imapDelayed, 'CREATE user.c55.a.b'));
    t.deepEqual(nested, [
      'RESERVE user.c55.a backend1!default',
      'ACTIVATE user.c55.a backend1!default',
      'RESERVE user.c55.a.b backend1!default',
      'ACTIVATE user.c55.a.b backend1!default',
    ]);
    for (const name of ['user.c55.a', 'user.c55.a.b']) {
      const mine = await local(delayed, name);
      t.deepEqual(await masterFind(server.port, name), { kind: 'MAILBOX', name, location: 'backend1!default', acl: mine.acl }, name);
      names.push(name);
    }
    // the master lists backend1's entries in the backend's own order
    const backendOrder = (await delayed.localList()).filter((l) => names.includes(l.name)).map((l) => l.name);
    t.deepEqual(
      (await masterEntries(server.port, 'backend1!')).map((e) => e.name).filter((n) => names.includes(n)),
      backendOrder,
    );
  },
);

interop('C55 SETACL and DELETEACL each send one ACTIVATE with the new ACL', async (t) => {
  await imap(imapDelayed, 'CREATE user.c55acl');
  const set = await changesDuring(() => imap(imapDelayed, 'SETACL user.c55acl alice lrs'));
  t.deepEqual(set, ['ACTIVATE user.c55acl backend1!default']);
  const after = await local(delayed, 'user.c55acl');
  t.is(after.acl, 'c55acl\tlrswipkxtecdan\talice\tlrs\t');
  t.deepEqual(await masterFind(server.port, 'user.c55acl'), mailboxEntry('user.c55acl', 'backend1!default', after.acl));

  const del = await changesDuring(() => imap(imapDelayed, 'DELETEACL user.c55acl alice'));
  t.deepEqual(del, ['ACTIVATE user.c55acl backend1!default']);
  t.deepEqual(await masterFind(server.port, 'user.c55acl'), mailboxEntry('user.c55acl', 'backend1!default', 'c55acl\tlrswipkxtecdan\t'));
});

interop('C55 RENAME: DELETE old, RESERVE+ACTIVATE new at "backend1!" (empty partition, spec 7.0), children too', async (t) => {
  await imap(imapDelayed, 'CREATE user.c55r', 'CREATE user.c55r.old', 'CREATE user.c55r.tree', 'CREATE user.c55r.tree.sub');

  const one = await changesDuring(() => imap(imapDelayed, 'RENAME user.c55r.old user.c55r.new'));
  t.deepEqual(one, ['DELETE user.c55r.old', 'RESERVE user.c55r.new backend1!', 'ACTIVATE user.c55r.new backend1!']);
  t.is(await masterFind(server.port, 'user.c55r.old'), undefined, 'old name gone');
  const renamed = await local(delayed, 'user.c55r.new');
  t.is(renamed.location, 'backend1!default', 'the backend itself keeps it on its default partition');
  t.deepEqual(await masterFind(server.port, 'user.c55r.new'), mailboxEntry('user.c55r.new', 'backend1!', renamed.acl));

  const tree = await changesDuring(() => imap(imapDelayed, 'RENAME user.c55r.tree user.c55r.moved'));
  t.deepEqual(tree, [
    'DELETE user.c55r.tree',
    'RESERVE user.c55r.moved backend1!',
    'ACTIVATE user.c55r.moved backend1!',
    'DELETE user.c55r.tree.sub',
    'RESERVE user.c55r.moved.sub backend1!',
    'ACTIVATE user.c55r.moved.sub backend1!',
  ]);
  for (const gone of ['user.c55r.tree', 'user.c55r.tree.sub']) t.is(await masterFind(server.port, gone), undefined, gone);
  for (const name of ['user.c55r.moved', 'user.c55r.moved.sub']) {
    t.deepEqual(await masterFind(server.port, name), mailboxEntry(name, 'backend1!', (await local(delayed, name)).acl));
  }
});

interop('C55 DELETE with delete_mode delayed: DELETE name, then DELETED.<name>.<hex> RESERVEd and ACTIVATEd at "backend1!"', async (t) => {
  // an admin needs the x right to delete a user's mailbox
  await imap(imapDelayed, 'CREATE user.c55d', 'SETACL user.c55d cyrus x');
  const changes = await changesDuring(() => imap(imapDelayed, 'DELETE user.c55d'));
  const localNames = (await delayed.localList()).map((l) => l.name);
  t.false(localNames.includes('user.c55d'));
  const tomb = localNames.find((n) => /^DELETED\.user\.c55d\.[0-9A-F]{8}$/.test(n));
  t.truthy(tomb, `local DELETED.* mailbox: ${localNames.join(', ')}`);
  t.deepEqual(changes, ['DELETE user.c55d', `RESERVE ${tomb} backend1!`, `ACTIVATE ${tomb} backend1!`]);
  t.is(await masterFind(server.port, 'user.c55d'), undefined);
  t.deepEqual(await masterFind(server.port, tomb!), mailboxEntry(tomb!, 'backend1!', (await local(delayed, tomb!)).acl));
});

interop(
  'C55 DELETE with delete_mode immediate: Cyrus 3.6 sends nothing, the master entry dangles until the next ctl_mboxlist -m removes it',
  async (t) => {
    const created = await changesDuring(() => imap(imapImmediate, 'CREATE user.c55i', 'SETACL user.c55i cyrus x'));
    t.deepEqual(created, [
      'RESERVE user.c55i backend2!default',
      'ACTIVATE user.c55i backend2!default',
      'ACTIVATE user.c55i backend2!default',
    ]);
    const acl = (await local(immediate, 'user.c55i')).acl;

    const changes = await changesDuring(() => imap(imapImmediate, 'DELETE user.c55i'));
    t.false(
      (await immediate.localList()).some((l) => l.name.includes('c55i')),
      'gone from the backend, no DELETED.* copy',
    );
    // what really happens with Debian's 3.6.1 (spec 7.0): no MUPDATE command at all
    t.deepEqual(changes, []);
    t.deepEqual(await masterFind(server.port, 'user.c55i'), { kind: 'MAILBOX', name: 'user.c55i', location: 'backend2!default', acl });

    const mark = server.logs.length;
    const push = await immediate.push();
    await logBarrier(server);
    t.is(push.code, 0, showRun(push));
    t.is(push.stderr, '', showRun(push));
    t.deepEqual(
      directoryChanges(server.logs.slice(mark)).map((c) => `${c.cmd} ${c.name}`),
      ['DELETE user.c55i'],
    );
    t.is(await masterFind(server.port, 'user.c55i'), undefined);
    t.deepEqual(await masterEntries(server.port, 'backend2!'), asMasterEntries(await immediate.localList()));
  },
);

interop(
  'C55 after the IMAP operations, ctl_mboxlist -m re-activates the "backend1!" entries at backend1!default and the master equals the backend',
  async (t) => {
    const before = await masterEntries(server.port, 'backend1!');
    const emptyPartition = before.filter((e) => e.location === 'backend1!').map((e) => e.name);
    t.true(emptyPartition.includes('user.c55r.new'), emptyPartition.join(', '));
    t.true(
      emptyPartition.some((n) => n.startsWith('DELETED.user.c55d.')),
      emptyPartition.join(', '),
    );
    const localList = await delayed.localList();

    const mark = server.logs.length;
    const push = await delayed.push();
    await logBarrier(server);
    t.is(push.code, 0, showRun(push));
    t.is(push.stdout, '', showRun(push));
    t.is(push.stderr, '', showRun(push));
    const expected = localList.filter((l) => emptyPartition.includes(l.name)).map((l) => `ACTIVATE ${l.name} backend1!default`);
    t.deepEqual(
      directoryChanges(server.logs.slice(mark)).map((c) => `${c.cmd} ${c.name} ${c.location}`),
      expected,
    );
    t.deepEqual(await masterEntries(server.port, 'backend1!'), asMasterEntries(localList));

    // and the next push has nothing left to do
    const again = await delayed.push({ warn: true });
    t.is(again.code, 0, showRun(again));
    t.is(again.stdout, '', showRun(again));
  },
);
