/**
 * `mupdated slave --frontend-db FILE --kick-socket PATH` against a real
 * mupdated master (no Cyrus needed): the sqlite file follows the slave's
 * copy, a restart (even after SIGKILL) brings it back by difference without
 * rewriting rows that are right, kicks are answered `ok` and share flushes.
 * Row formats themselves are compared with a real Cyrus slave in
 * interop-frontend-rows.test.ts.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { readUntilClose } from './helpers/unix-socket.js';
import { join } from 'node:path';
import { dlistString, rowKey } from '../src/frontend/cyrus-row.js';
import { journalMode, readRows } from './helpers/cyrus-frontend.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { CLI, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { applyChanges, passwordFilePath, sleep, startSlave, waitUntil, type Cmd } from './helpers/slave-tools.js';

const acl = (id: string) => `${id}\tlrswipkxtecdan\t`;

let master: RunningMupdated | undefined;
/** Between slave and master: lets a test hold the master's answers back. */
let proxy: FaultProxy | undefined;
let slave: RunningMupdated | undefined;
let dir = '';
let db = '';
let sock = '';
let slaveData = '';

function kick(path: string, send?: Buffer): Promise<string> {
  return readUntilClose(path, { send, timeoutText: 'no answer to the kick' });
}

/** Names with a row, in the file. */
function rowNames(): string[] {
  return readRows(db)
    .map((r) => r.key)
    .sort();
}

function keyOf(name: string): string {
  return rowKey(Buffer.from(name, 'latin1')).toString('latin1');
}

async function startOurSlave(): Promise<RunningMupdated> {
  const s = await startSlave({
    master: proxy!.port,
    dataDir: slaveData,
    // the config-file keys, not the flags
    // every reconnect a full UPDATE, as from a Cyrus master
    config: { frontend_db: db, kick_socket: sock, slave_resume: false },
  });
  await s.waitForLog(/"msg":"kick socket listening"/);
  return s;
}

test.before(async () => {
  master = await startMupdated();
  proxy = await FaultProxy.start({ targetPort: master.port });
  dir = tempDir('mupdated-frontend-db-');
  db = join(dir, 'mailboxes.sqlite');
  sock = join(dir, 'mupdate.target');
  slaveData = tempDir('mupdated-frontend-slave-');
  const cmds: Cmd[] = Array.from({ length: 100 }, (_, i): Cmd => ['ACTIVATE', `user.u${i}`, 'backend1!default', acl(`u${i}`)]);
  await applyChanges(master.port, cmds);
  slave = await startOurSlave();
});

test.after.always(async () => {
  await slave?.stop();
  await master?.stop();
  await proxy?.close();
  if (master) removeDir(master.dataDir);
  removeDir(dir);
  removeDir(slaveData);
});

test.serial('the file is in WAL mode, 0600, with one TEXT row per entry', async (t) => {
  await waitUntil(() => readRows(db).length === 100, 10_000, '100 rows');
  t.is(journalMode(db), 'wal');
  t.is(statSync(db).mode & 0o777, 0o600);
  t.is(statSync(sock).mode & 0o777, 0o600);
  t.deepEqual(rowNames(), Array.from({ length: 100 }, (_, i) => keyOf(`user.u${i}`)).sort());
  t.true(readRows(db).every((r) => r.keyType === 'text' && r.valueType === 'text'));
});

test.serial('changes reach the file; a kick is answered "ok" once they are in it', async (t) => {
  await applyChanges(master!.port, [
    ['DELETE', 'user.u0'],
    ['RESERVE', 'user.new', 'backend2!default'],
    ['ACTIVATE', 'user.u1', 'backend1!default', acl('someone')],
  ]);
  t.is(await kick(sock), 'ok');
  const rows = new Map(readRows(db).map((r) => [r.key, r.value]));
  t.false(rows.has(keyOf('user.u0')));
  t.regex(rows.get(keyOf('user.new')) ?? '', /^%\(T erz P default S backend2 M \d+ A %\(\)\)$/);
  t.regex(rows.get(keyOf('user.u1')) ?? '', / A %\(someone lrswipkxtecdan\)\)$/);
});

test.serial(
  'a kick while another program holds the write lock waits for it; if the lock outlasts the busy timeout, the kicker gets no ok',
  async (t) => {
    t.timeout(60_000);
    const other = new Database(db);
    t.teardown(() => other.close());
    // Held for 1 s: the kick's write waits for the lock, then the row is in the file when the ok comes.
    other.exec('BEGIN IMMEDIATE');
    await applyChanges(master!.port, [['ACTIVATE', 'user.locked1', 'backend1!default', acl('locked1')]]);
    const release = setTimeout(() => other.exec('COMMIT'), 1000);
    t.is(await kick(sock), 'ok');
    clearTimeout(release);
    if (other.inTransaction) other.exec('COMMIT');
    t.true(rowNames().includes(keyOf('user.locked1')), 'the row is in the file once the kicker got ok');
    // Held past the busy timeout (5 s): no ok, and the row comes once the lock is gone.
    other.exec('BEGIN IMMEDIATE');
    await applyChanges(master!.port, [['ACTIVATE', 'user.locked2', 'backend1!default', acl('locked2')]]);
    try {
      t.is(await readUntilClose(sock, { timeoutMs: 40_000, timeoutText: 'no answer to the kick' }), '');
    } finally {
      other.exec('COMMIT');
    }
    await waitUntil(() => rowNames().includes(keyOf('user.locked2')), 10_000, 'the row written once the lock is gone');
    // The tests after this one count the rows.
    await applyChanges(master!.port, [
      ['DELETE', 'user.locked1'],
      ['DELETE', 'user.locked2'],
    ]);
    t.is(await kick(sock), 'ok');
    t.false(rowNames().some((k) => k === keyOf('user.locked1') || k === keyOf('user.locked2')));
  },
);

test.serial(
  'a kick while the slave is cut off from its master waits for the next sync, and its ok comes with the change in the file',
  async (t) => {
    const mark = slave!.logs.length;
    proxy!.refusing = true;
    proxy!.cutAll();
    await waitUntil(
      () => slave!.logs.slice(mark).some((l) => l.includes('"msg":"slave state"') && /"state":"(waiting|connecting)"/.test(l)),
      10_000,
      'the slave off its master',
    );
    await applyChanges(master!.port, [['ACTIVATE', 'user.kicked-offline', 'backend1!default', acl('offline')]]);
    let answer: string | null = null;
    const kicked = kick(sock).then((a) => (answer = a));
    await sleep(1500);
    t.is(answer, null, 'no answer while the slave cannot reach its master');
    proxy!.refusing = false;
    t.is(await kicked, 'ok');
    t.true(rowNames().includes(keyOf('user.kicked-offline')), 'the change is in the file when the ok comes');
    // The tests after this one count the rows.
    await applyChanges(master!.port, [['DELETE', 'user.kicked-offline']]);
    t.is(await kick(sock), 'ok');
  },
);

test.serial('many kicks at once share one flush, and what a kicker sends is ignored', async (t) => {
  const before = slave!.logs.length;
  const received = () => slave!.logs.slice(before).filter((l) => l.includes('"msg":"kick received"')).length;
  // the master's answers are held back while the kicks arrive: the first kick's NOOP waits
  const link = proxy!.latest!;
  link.s2c.stall();
  const answers = Promise.all(Array.from({ length: 50 }, (_, i) => kick(sock, i % 5 === 0 ? Buffer.alloc(100_000, 0x41) : undefined)));
  try {
    await waitUntil(() => received() === 50, 10_000, '50 kicks received');
  } finally {
    link.s2c.resume();
  }
  t.deepEqual(new Set(await answers), new Set(['ok']));
  const answered = slave!.logs
    .slice(before)
    .filter((l) => l.includes('"msg":"kick answered"'))
    .map((l) => JSON.parse(l) as { kicks: number; flushes: number });
  t.is(answered.length, 50);
  const flushes = Math.max(...answered.map((a) => a.flushes)) - Math.min(...answered.map((a) => a.flushes)) + 1;
  // the first kick's flush was in flight when the others came: they all share the one queued behind it
  t.is(flushes, 2);
});

test.serial(
  'a restart after SIGKILL brings the file back by difference: rows that are right are not rewritten, other rows are left alone',
  async (t) => {
    t.is(await slave!.stop('SIGKILL'), -1);
    slave = undefined;
    // meanwhile: the master changes, and someone damages the file
    await applyChanges(master!.port, [
      ['DELETE', 'user.u2'],
      ['ACTIVATE', 'user.added', 'backend3!default', acl('added')],
    ]);
    const w = new Database(db, { timeout: 5_000 });
    try {
      w.exec(`UPDATE mailboxes_db SET data = replace(data, ' M ', ' M 9') WHERE 1`); // mtimes become 9...: a marker
      w.prepare('DELETE FROM mailboxes_db WHERE dbkey = ?').run(keyOf('user.u3'));
      w.prepare('UPDATE mailboxes_db SET data = ? WHERE dbkey = ?').run('%(T er P x S y M 1 A %())', keyOf('user.u4'));
      w.prepare('INSERT INTO mailboxes_db (dbkey, data) VALUES (?, ?)').run(keyOf('user.bogus'), '%(T er P x S y M 1 A %())');
      w.prepare('INSERT INTO mailboxes_db (dbkey, data) VALUES (?, ?)').run('$RACL$not-ours', 'keep me');
    } finally {
      w.close();
    }
    slave = await startOurSlave();
    t.is(await kick(sock), 'ok');
    const rows = new Map(readRows(db).map((r) => [r.key, r.value]));
    t.false(rows.has(keyOf('user.u2')));
    t.false(rows.has(keyOf('user.bogus')));
    t.regex(rows.get(keyOf('user.added')) ?? '', /S backend3 M \d+ A %\(added /);
    t.regex(rows.get(keyOf('user.u3')) ?? '', /^%\(T er P default S backend1 M \d+ A %\(u3 /);
    t.regex(rows.get(keyOf('user.u4')) ?? '', /^%\(T er P default S backend1 M \d+ A %\(u4 /);
    t.is(rows.get('$RACL$not-ours'), 'keep me');
    // rows that were right keep the marker mtime: not rewritten
    const untouched = [...rows].filter(([k, v]) => k.startsWith('N') && / M 9\d+ A /.test(v)).map(([k]) => k);
    t.deepEqual(
      [...rows.keys()].filter((k) => k.startsWith('N') && !untouched.includes(k)).sort(),
      [keyOf('user.u3'), keyOf('user.u4'), keyOf('user.added')].sort(),
    );
    t.is(untouched.length, 97);
    t.is([...rows.keys()].filter((k) => k.startsWith('N')).length, 100);
  },
);

test.serial('a full resync after a reconnect rewrites only the rows that changed and never empties the file', async (t) => {
  const w = new Database(db, { timeout: 5_000 });
  try {
    w.exec(`UPDATE mailboxes_db SET data = replace(data, ' M ', ' M 8') WHERE substr(dbkey, 1, 1) = 'N'`);
  } finally {
    w.close();
  }
  const fullSyncs = () => slave!.logs.filter((l) => l.includes('"msg":"full sync applied"')).length;
  const before = fullSyncs();
  proxy!.refusing = true;
  proxy!.cutAll();
  await applyChanges(master!.port, [
    ['ACTIVATE', 'user.u5', 'backend1!default', acl('changed')],
    ['DELETE', 'user.u6'],
  ]);
  // a reader, as the frontend's lookups, watches the row count all along
  const reader = new Database(db, { readonly: true, timeout: 5_000 });
  const count = reader.prepare("SELECT count(*) AS n FROM mailboxes_db WHERE substr(dbkey, 1, 1) = 'N'");
  let least = Infinity;
  let reads = 0;
  const watch = setInterval(() => {
    least = Math.min(least, (count.get() as { n: number }).n);
    reads++;
  }, 2);
  try {
    proxy!.refusing = false;
    await waitUntil(() => fullSyncs() > before, 20_000, 'a full sync after the reconnect');
    t.is(await kick(sock), 'ok');
  } finally {
    clearInterval(watch);
    reader.close();
  }
  t.true(reads > 0);
  t.true(least >= 99, `the file held only ${least} rows at one point`);
  const rows = new Map(readRows(db).map((r) => [r.key, r.value]));
  t.false(rows.has(keyOf('user.u6')));
  t.regex(rows.get(keyOf('user.u5')) ?? '', / M [1-7]\d+ A %\(changed /);
  const rewritten = [...rows].filter(([k, v]) => k.startsWith('N') && !/ M 8\d+ A /.test(v)).map(([k]) => k);
  t.deepEqual(rewritten, [keyOf('user.u5')]);
});

test('a frontend database that cannot be opened, or a frontend imapd.conf without sql_database, stops the slave with a clear message', (t) => {
  const data = tempDir('mupdated-frontend-bad-');
  try {
    const run = (...extra: string[]) =>
      spawnSync(
        process.execPath,
        [
          CLI,
          'slave',
          '--master',
          '127.0.0.1:1',
          '--user',
          'x',
          '--password-file',
          passwordFilePath(),
          '--data',
          data,
          '--listen',
          '127.0.0.1:0',
          ...extra,
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
    const missing = run('--frontend-db', join(data, 'no-such-folder', 'mailboxes.sqlite'));
    t.is(missing.status, 1);
    t.regex(missing.stderr, /cannot create the frontend database .*no-such-folder/);
    const conf = join(data, 'imapd.conf');
    writeFileSync(conf, 'configdirectory: /var/lib/cyrus\n');
    const noSql = run('--imapd-conf', conf);
    t.is(noSql.status, 1);
    t.regex(noSql.stderr, /has no sql_database: give --frontend-db FILE/);
  } finally {
    removeDir(data);
  }
});

test('dlist strings: atoms plain, specials quoted, 8-bit and long values as literals (Cyrus lib/dlist.c rules)', (t) => {
  const s = (x: string) => dlistString(Buffer.from(x, 'latin1')).toString('latin1');
  t.is(s('default'), 'default');
  t.is(s(''), '""');
  t.is(s('NIL'), '"NIL"');
  t.is(s('a b'), '"a b"');
  t.is(s('a(b'), '"a(b"');
  t.is(s('p*'), '"p*"');
  t.is(s('{x}'), '"{x}"');
  t.is(s('p%c'), '{3+}\r\np%c');
  t.is(s('\xe4'), '{1+}\r\n\xe4');
  t.is(s('x'.repeat(1023)), 'x'.repeat(1023));
  t.is(s('x'.repeat(1024)), `{1024+}\r\n${'x'.repeat(1024)}`);
});
