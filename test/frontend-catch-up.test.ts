/**
 * The start-up correction of a frontend's sqlite database (catch-up.ts) on a
 * real LMDB store and a real sqlite file: it runs alongside the slave (the
 * event loop turns while it works, and a change the store makes meanwhile is
 * not undone by the snapshot's older state), it reads rows with 8-bit
 * bytes and duplicate keys exactly, and on a slave's first start it waits
 * for the first sync rather than empty a file converted from Cyrus.
 */
import test from 'ava';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { rowKeyText, rowValue } from '../src/frontend/cyrus-row.js';
import { SqliteMirror } from '../src/frontend/sqlite-mirror.js';
import { createLogger } from '../src/log.js';
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
import { readRows } from './helpers/cyrus-frontend.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { removeDir, startMupdated, tempDir } from './helpers/server.js';
import { applyChanges, sleep, startSlave, waitUntil, type Cmd } from './helpers/slave-tools.js';
import { active, B } from './helpers/store-entries.js';

const ENTRIES = 20_000;
const log = createLogger('silent');
const nameOf = (i: number) => `user.c${String(i).padStart(6, '0')}`;
const keyOf = (name: string) => rowKeyText(name);

async function storeWith(dir: string, names: string[]): Promise<LmdbDirectoryStore> {
  const store = LmdbDirectoryStore.open(join(dir, 'data'), {});
  await store.applyMany(names.map((n) => ({ name: B(n), entry: active(n, 'backend1!default', `${n.slice(5)}\tlrs\t`) })));
  return store;
}

test('the correction lets the event loop run, and a change made meanwhile is not undone by the older snapshot', async (t) => {
  const dir = tempDir('mupdated-catch-up-');
  const store = await storeWith(
    dir,
    Array.from({ length: ENTRIES }, (_, i) => nameOf(i)),
  );
  const file = join(dir, 'mailboxes.sqlite');
  const mirror = SqliteMirror.open(file, log);
  try {
    const unsubscribe = mirror.follow(store);
    let turns = 0;
    let changed: Promise<unknown> = Promise.resolve();
    let changing = false;
    let done = false;
    // Once the correction has written its first rows (it walks the snapshot), the store changes.
    const watch = () => {
      turns++;
      if (!changing && mirror.counts.transactions > 0) {
        changing = true;
        changed = store.applyMany([
          { name: B(nameOf(0)), entry: active(nameOf(0), 'backend2!default', 'changed\tlrs\t') },
          { name: B(nameOf(ENTRIES - 1)), entry: null },
        ]);
      }
      if (!done && turns < 100_000) setImmediate(watch);
    };
    setImmediate(watch);
    const result = await mirror.catchUp(store);
    done = true;
    const turnsDuring = turns;
    await changed;
    t.true(mirror.flushNow());
    unsubscribe();
    t.true(turnsDuring > 1, `the event loop turned ${turnsDuring} times during the correction`);
    t.true(changing, 'the store changed during the correction');
    t.is(result.rows, 0);
    const rows = new Map(readRows(file).map((r) => [r.key, r.value]));
    t.is(rows.size, ENTRIES - 1);
    t.regex(rows.get(keyOf(nameOf(0))) ?? '', /^%\(T er P default S backend2 M \d+ A %\(changed lrs\)\)$/);
    t.false(rows.has(keyOf(nameOf(ENTRIES - 1))));
    t.regex(rows.get(keyOf(nameOf(1))) ?? '', /^%\(T er P default S backend1 M \d+ A %\(c000001 lrs\)\)$/);
  } finally {
    mirror.close();
    await store.close();
    removeDir(dir);
  }
});

test('rows with 8-bit bytes are compared byte for byte, and a key with two rows is left with one', async (t) => {
  const dir = tempDir('mupdated-catch-up-');
  const eight = 'user.\xe4\xff';
  const names = [eight, 'user.plain', 'user.twice'];
  const store = await storeWith(dir, names);
  const file = join(dir, 'mailboxes.sqlite');
  SqliteMirror.open(file, log).close();
  const w = new Database(file);
  try {
    const insert = w.prepare('INSERT INTO mailboxes_db (dbkey, data) VALUES (CAST(? AS TEXT), CAST(? AS TEXT))');
    for (const n of names) {
      const entry = store.find(B(n))!;
      // right rows, with a marker mtime: they must not be rewritten
      insert.run(B(keyOf(n)), rowValue(entry, 9_000_000_001));
    }
    insert.run(B(keyOf('user.twice')), B('%(T er P x S y M 1 A %())'));
    // a row whose 8-bit key differs from the 8-bit name in one byte only
    insert.run(B(keyOf('user.\xe4\xfe')), B('%(T er P x S y M 1 A %())'));
  } finally {
    w.close();
  }
  const mirror = SqliteMirror.open(file, log);
  try {
    const result = await mirror.catchUp(store);
    t.is(result.rows, 5);
    const rows = readRows(file);
    t.deepEqual(rows.map((r) => r.key).sort(), names.map(keyOf).sort());
    const byKey = new Map(rows.map((r) => [r.key, r.value]));
    t.regex(byKey.get(keyOf(eight)) ?? '', / M 9000000001 A /);
    t.regex(byKey.get(keyOf('user.plain')) ?? '', / M 9000000001 A /);
    t.regex(byKey.get(keyOf('user.twice')) ?? '', /^%\(T er P default S backend1 M \d+ A %\(twice lrs\)\)$/);
    t.true(rows.every((r) => r.keyType === 'text' && r.valueType === 'text'));
  } finally {
    mirror.close();
    await store.close();
    removeDir(dir);
  }
});

test('a first start keeps the rows of a file converted from Cyrus until the first sync, then removes only what the master lacks', async (t) => {
  const names = Array.from({ length: 10 }, (_, i) => `user.k${i}`);
  const master = await startMupdated();
  const proxy = await FaultProxy.start({ targetPort: master.port });
  const dir = tempDir('mupdated-catch-up-');
  const file = join(dir, 'mailboxes.sqlite');
  let slave: Awaited<ReturnType<typeof startSlave>> | undefined;
  try {
    await applyChanges(
      master.port,
      names.map((n): Cmd => ['ACTIVATE', n, 'backend1!default', `${n.slice(5)}\tlrs\t`]),
    );
    SqliteMirror.open(file, log).close();
    const w = new Database(file);
    try {
      const insert = w.prepare('INSERT INTO mailboxes_db (dbkey, data) VALUES (CAST(? AS TEXT), CAST(? AS TEXT))');
      // as converted from Cyrus's slave's database: right rows (marker mtime 1), and one the master lacks
      for (const n of [...names, 'user.gone']) insert.run(B(keyOf(n)), rowValue(active(n, 'backend1!default', `${n.slice(5)}\tlrs\t`), 1));
    } finally {
      w.close();
    }
    // the master cannot be reached yet: the slave's copy stays empty
    proxy.refusing = true;
    slave = await startSlave({ master: proxy.port, args: ['--frontend-db', file] });
    await slave.waitForLog(/"msg":"frontend database open"/);
    await sleep(500);
    t.is(readRows(file).length, 11, 'the rows are kept while the copy is empty');
    proxy.refusing = false;
    await waitUntil(() => readRows(file).length === 10, 20_000, 'the row the master lacks removed');
    const rows = readRows(file);
    t.deepEqual(rows.map((r) => r.key).sort(), names.map(keyOf).sort());
    t.true(
      rows.every((r) => / M 1 A /.test(r.value)),
      'rows that were right are not rewritten',
    );
  } finally {
    await slave?.stop();
    await proxy.close();
    await master.stop();
    removeDir(master.dataDir);
    removeDir(dir);
  }
});
