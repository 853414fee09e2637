/**
 * A Cyrus Murder frontend without a Cyrus `mupdate` slave (issue
 * "Frontends"): real Cyrus 3.6 programs on loopback — a frontend imapd
 * (proxy mode, `mboxlist_db: sql` on sqlite), two backend imapd and
 * mupdated as the MUPDATE master. The frontend's mailboxes database is
 * written by `mupdated slave --imapd-conf FRONTEND-IMAPD.CONF` (its
 * `sql_database`, and the kick socket at `<configdirectory>/socket/mupdate.target`),
 * run as the Cyrus user; the frontend's cyrus.conf has no `mupdate` service.
 * Everything a client does goes through the frontend with the real `imtest`.
 *
 * Backends are named `127.0.0.1:PORT`: a location's server part is all a
 * frontend knows about a backend, and two backends on one address need
 * their ports in it.
 */
import test, { type ExecutionContext } from 'ava';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rowKey, rowValueParts } from '../src/frontend/cyrus-row.js';
import {
  CyrusBackend,
  chownTree,
  cyrusAvailability,
  cyrusIds,
  masterEntries,
  type CyrusImapd,
  type MasterEntry,
  backendMissingReason,
} from './helpers/cyrus-backend.js';
import { interopTest } from './helpers/cyrus.js';
import { freePort } from './helpers/ports.js';
import { Imtest, journalMode, readRows, withoutMtime } from './helpers/cyrus-frontend.js';
import { BACKEND_ADMINS, addUser, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { applyChanges, sleep, slaveArgs, waitUntil, type Cmd } from './helpers/slave-tools.js';

const avail = cyrusAvailability();

const interop = interopTest('serial', backendMissingReason());

let master: RunningMupdated | undefined;
let slave: RunningMupdated | undefined;
const backends: CyrusBackend[] = [];
const imapds: CyrusImapd[] = [];
let frontend: CyrusBackend | undefined;
let frontendImapd: CyrusImapd | undefined;
let dbDir = '';
let dbFile = '';
let slaveDir = '';
const server: string[] = [];

/** The rows a Cyrus slave would write for these directory entries (mtime blanked). */
function expectedRows(entries: MasterEntry[]): Array<[string, string]> {
  return entries
    .map((e): [string, string] => {
      const entry = {
        name: Buffer.from(e.name, 'latin1'),
        state: e.kind === 'MAILBOX' ? ('active' as const) : ('reserved' as const),
        location: Buffer.from(e.location, 'latin1'),
        acl: Buffer.from(e.acl, 'latin1'),
      };
      const parts = rowValueParts(entry);
      return [rowKey(entry.name).toString('latin1'), `${parts.head}_${parts.tail}`];
    })
    .sort((a, b) => Buffer.compare(Buffer.from(a[0], 'latin1'), Buffer.from(b[0], 'latin1')));
}

function actualRows(): Array<[string, string]> {
  return readRows(dbFile).map((r) => [r.key, withoutMtime(r.value)]);
}

/** Waits until the frontend's database holds exactly the master's directory. */
async function rowsMatchMaster(t: ExecutionContext, timeoutMs = 20_000): Promise<void> {
  let want: Array<[string, string]> = [];
  let have: Array<[string, string]> = [];
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    want = expectedRows(await masterEntries(master!.port));
    have = actualRows();
    if (JSON.stringify(want) === JSON.stringify(have)) break;
    await sleep(100);
  }
  t.deepEqual(have, want);
}

test.before(async () => {
  if (!avail.available) return;
  const { uid, gid } = cyrusIds();
  master = await startMupdated({
    users: BACKEND_ADMINS,
  });
  for (const [i, login] of ['backend1', 'backend2'].entries()) {
    const port = await freePort();
    server[i] = `127.0.0.1:${port}`;
    const b = await CyrusBackend.create({ mupdatePort: master.port, servername: server[i], user: login });
    backends.push(b);
  }
  for (const b of backends) {
    const port = Number(b.servername.split(':')[1]);
    imapds.push(
      await b.startImapd({
        port,
        config: {
          // the frontend logs in to backends as `cyrus` for its clients; backends XFER to each other as `cyrus`
          proxyservers: 'cyrus',
          proxy_authname: 'cyrus',
          proxy_password: 'secret',
          // without it, moving a user answers "Operation is not supported on mailbox"
          allowusermoves: 'yes',
        },
      }),
    );
  }
  // The frontend's sqlite database lives in a folder of the Cyrus user's.
  dbDir = tempDir('cyrus-frontend-db-');
  chmodSync(dbDir, 0o750);
  chownSync(dbDir, uid, gid);
  dbFile = join(dbDir, 'mailboxes.sqlite');
  frontend = await CyrusBackend.create({
    mupdatePort: master.port,
    servername: 'frontend',
    user: 'mupdateadmin',
    config: { mboxlist_db: 'sql', sql_engine: 'sqlite', sql_database: dbFile },
  });
  // mupdated's slave, as the Cyrus user, with the defaults from the frontend's imapd.conf
  slaveDir = tempDir('mupdated-frontend-slave-');
  const passwordFile = join(slaveDir, 'master-password');
  writeFileSync(passwordFile, 'secret\n', { mode: 0o600 });
  addUser(slaveDir, { name: 'mupdateadmin', admin: true });
  chownTree(slaveDir);
  slave = await startMupdated({
    mode: 'slave',
    dataDir: slaveDir,
    runAs: { uid, gid },
    args: slaveArgs(master.port, passwordFile, 2, ['--imapd-conf', frontend.configPath]),
  });
  await slave.waitForLog(/"msg":"kick socket listening"/);
  frontendImapd = await frontend.startImapd({
    frontend: true,
    config: {
      serverlist: server.join(' '),
      proxy_authname: 'cyrus',
      proxy_password: 'secret',
      mupdate_retry_delay: '2',
      allowusermoves: 'yes',
    },
  });
});

test.after.always(async () => {
  await frontend?.remove();
  for (const b of backends) await b.remove();
  await slave?.stop();
  await master?.stop();
  if (slaveDir) removeDir(slaveDir);
  if (master) removeDir(master.dataDir);
  if (dbDir) removeDir(dbDir);
  void imapds;
});

/** Sends an IMAP command through the frontend and checks that it succeeds (its status line as the message). */
async function commandOk(t: ExecutionContext, c: Imtest, text: string, timeoutMs?: number): Promise<void> {
  const r = await c.command(text, timeoutMs);
  t.true(r.ok, r.status);
}

/** Where the master's entries put `name`. */
function locationIn(entries: MasterEntry[], name: string): string | undefined {
  return entries.find((e) => e.name === name)?.location;
}

interop('the frontend database is in WAL mode, owned by the Cyrus user, writable by nobody else', async (t) => {
  t.is(journalMode(dbFile), 'wal');
  const { statSync } = await import('node:fs');
  const { uid } = cyrusIds();
  const st = statSync(dbFile);
  t.is(st.uid, uid);
  t.is(st.mode & 0o022, 0, 'no group or other write');
  const sock = statSync(join(frontend!.confDir, 'socket', 'mupdate.target'));
  t.true(sock.isSocket());
  t.is(sock.uid, uid);
  t.is(sock.mode & 0o077, 0);
});

interop(
  'through the frontend with imtest: CREATE on both backends, LIST, SELECT, and a new mailbox is visible at once to the same client (kick)',
  async (t) => {
    const c = await Imtest.login(frontendImapd!.port);
    try {
      t.true((await c.command(`CREATE user.alice (SERVER ${server[0]} PARTITION default)`)).ok);
      t.true((await c.command(`CREATE user.bob (SERVER ${server[1]} PARTITION default)`)).ok);
      // an admin may create but not read users' mailboxes: give it the rights (children inherit them)
      for (const user of ['alice', 'bob']) t.true((await c.command(`SETACL user.${user} cyrus lrswipkxtecda`)).ok);
      // no server given: it goes where its parent is; visible at once to the same client
      for (const sub of ['Sent', 'Drafts', 'Trash']) {
        await commandOk(t, c, `CREATE user.alice.${sub}`);
        const selected = await c.command(`SELECT user.alice.${sub}`);
        t.true(selected.ok, `SELECT right after CREATE: ${selected.status}`);
      }
      await commandOk(t, c, 'CREATE user.bob.Sent');
      t.true((await c.command('SELECT user.bob.Sent')).ok);
      const list = await c.command('LIST "" "*"');
      t.true(list.ok);
      const names = list.untagged.filter((l) => l.startsWith('* LIST')).map((l) => l.replace(/^.* /, '').replace(/"/g, ''));
      t.deepEqual(names.sort(), ['user.alice', 'user.alice.Drafts', 'user.alice.Sent', 'user.alice.Trash', 'user.bob', 'user.bob.Sent']);
      await commandOk(t, c, 'SELECT user.alice');
      await commandOk(t, c, 'SELECT user.bob');
    } finally {
      c.close();
    }
    const entries = await masterEntries(master!.port);
    t.is(locationIn(entries, 'user.alice.Sent'), `${server[0]}!default`);
    t.is(locationIn(entries, 'user.bob.Sent'), `${server[1]}!default`);
    t.true(
      slave!.logs.some((l) => l.includes('"msg":"kick answered"')),
      'the frontend kicked the slave',
    );
    await rowsMatchMaster(t);
  },
);

interop('through the frontend: RENAME and DELETE show at once, and the rows follow', async (t) => {
  const c = await Imtest.login(frontendImapd!.port);
  try {
    await commandOk(t, c, 'RENAME user.alice.Drafts user.alice.Old');
    t.true((await c.command('SELECT user.alice.Old')).ok);
    t.false((await c.command('SELECT user.alice.Drafts')).ok);
    await commandOk(t, c, 'DELETE user.alice.Old');
    t.false((await c.command('SELECT user.alice.Old')).ok);
    const list = await c.command('LIST "" "user.alice*"');
    const names = list.untagged.filter((l) => l.startsWith('* LIST')).map((l) => l.replace(/^.* /, '').replace(/"/g, ''));
    t.deepEqual(names.sort(), ['user.alice', 'user.alice.Sent', 'user.alice.Trash']);
  } finally {
    c.close();
  }
  await rowsMatchMaster(t);
});

interop('through the frontend: a user moved between backends (XFER) is found on the new backend', async (t) => {
  const c = await Imtest.login(frontendImapd!.port);
  try {
    await commandOk(t, c, `RENAME user.bob user.bob ${server[0]}!default`, 60_000);
    await commandOk(t, c, 'SELECT user.bob');
  } finally {
    c.close();
  }
  t.is(locationIn(await masterEntries(master!.port), 'user.bob'), `${server[0]}!default`);
  await rowsMatchMaster(t);
});

interop("a backend's startup push (ctl_mboxlist -m) reaches the frontend's database", async (t) => {
  // a mailbox the master lost: the backend's push activates it again
  const before = await masterEntries(master!.port);
  const lost = before.find((e) => e.name === 'user.alice.Trash')!;
  await applyChanges(master!.port, [['DELETE', 'user.alice.Trash']]);
  await waitUntil(() => !actualRows().some(([k]) => k.endsWith('\x1fTrash') && k.includes('alice')), 10_000, 'the row removed');
  const r = await backends[0].push();
  t.is(r.code, 0, r.stdout + r.stderr);
  const after = await masterEntries(master!.port);
  t.deepEqual(
    after.find((e) => e.name === 'user.alice.Trash'),
    lost,
  );
  await rowsMatchMaster(t);
  const c = await Imtest.login(frontendImapd!.port);
  try {
    t.true((await c.command('SELECT user.alice.Trash')).ok);
  } finally {
    c.close();
  }
});

interop('frontend lookups while 10,000 changes are applied never see an error', async (t) => {
  const LOOKUP_LIMIT = 5_000;
  const cmds: Cmd[] = [];
  for (let i = 0; i < 5_000; i++) cmds.push(['ACTIVATE', `user.load${i}`, `${server[i % 2]}!default`, `load${i}\tlrswipkxtecdan\t`]);
  for (let i = 0; i < 5_000; i++) cmds.push(['DELETE', `user.load${i}`]);
  let writing = true;
  const writer = (async () => {
    try {
      for (let i = 0; i < cmds.length; i += 500) await applyChanges(master!.port, cmds.slice(i, i + 500));
    } finally {
      writing = false;
    }
  })();
  const c = await Imtest.login(frontendImapd!.port);
  let lookups = 0;
  const failures: string[] = [];
  try {
    const deadline = Date.now() + 120_000;
    while ((writing || lookups < 20) && lookups < LOOKUP_LIMIT && Date.now() < deadline) {
      const name = lookups % 2 === 0 ? 'user.alice' : 'user.bob';
      const r = await c.command(`SELECT ${name}`);
      if (!r.ok) failures.push(`SELECT ${name}: ${r.status}`);
      const l = await c.command('LIST "" "user.alice"');
      if (!l.ok || !l.untagged.some((x) => x.startsWith('* LIST'))) failures.push(`LIST: ${l.status} ${l.untagged.join(' | ')}`);
      lookups += 2;
    }
  } finally {
    c.close();
  }
  await writer;
  t.log(`${lookups} lookups through the frontend during ${cmds.length} changes`);
  t.deepEqual(failures, []);
  t.true(lookups >= 20);
  await rowsMatchMaster(t, 60_000);
});
