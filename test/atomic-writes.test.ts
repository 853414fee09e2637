/**
 * All-or-nothing writes (issue 11, finding 4), on real LMDB folders and real
 * processes; every failure is a real one (a key LMDB refuses, a decision or
 * a listener that throws), injected in the middle of a batch:
 *
 * - a write that fails leaves nothing of itself in the directory, the change
 *   log or the change stream, also when it shares a batched commit with
 *   other writes (lmdb-js's transaction() would commit what it wrote before
 *   the failure), and the writes committed with it still are streamed;
 * - a listener that throws after a commit does not turn the write into a
 *   failure nor stop the stream for the others;
 * - a slave skips a name from its master that no LMDB key can hold, with a
 *   warning, applies the rest and keeps its connection and its streams.
 */
import test from 'ava';
import { open } from 'lmdb';
import { Commits } from '../src/store/commits.js';
import { LocationTable } from '../src/store/locations.js';
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
import { MAX_NAME_BYTES } from '../src/store/order.js';
import { StorageError, type BatchItem, type Change, type DirectoryStore, type Entry } from '../src/store/types.js';
import { InvalidWrite } from '../src/store/validate.js';
import { login } from './helpers/directory.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { applyChanges, kickThroughSlave, listOf, startSlave } from './helpers/slave-tools.js';
import { openStream } from './helpers/wire-tools.js';

const dirs: string[] = [];
const cleanups: Array<() => Promise<unknown>> = [];
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c();
  for (const d of dirs) removeDir(d);
});

function folder(): string {
  const d = tempDir('atomic-writes-');
  dirs.push(d);
  return d;
}

const B = (s: string) => Buffer.from(s, 'latin1');
const active = (name: string, location = 'b1!default', acl = 'u\tlrs\t'): Entry => ({
  name: B(name),
  state: 'active',
  location: B(location),
  acl: B(acl),
});
const put = (name: string, location?: string): BatchItem => ({ name: B(name), entry: active(name, location) });
/** A name longer than any LMDB key (1978 bytes): LMDB itself refuses it. */
const TOO_LONG = `user.${'x'.repeat(2000)}`;
/** A name one byte over the limit a client's names get (MAX_NAME_BYTES). */
const OVER_LIMIT = `user.${'x'.repeat(MAX_NAME_BYTES - 4)}`;

function openStore(): { store: LmdbDirectoryStore; streamed: string[] } {
  const store = LmdbDirectoryStore.open(folder(), {});
  cleanups.push(() => store.close());
  const streamed: string[] = [];
  store.subscribe((c) => streamed.push(`${c.seq} ${c.name.toString('latin1')}`));
  return { store, streamed };
}

function names(store: DirectoryStore): string[] {
  const snap = store.snapshot();
  try {
    return [...snap.entries()].map((e) => e.name.toString('latin1'));
  } finally {
    snap.close();
  }
}

function logged(store: DirectoryStore): string[] {
  const snap = store.snapshot();
  try {
    return [...(snap.changesSince(0) ?? [])].map((c) => `${c.seq} ${c.name.toString('latin1')}`);
  } finally {
    snap.close();
  }
}

test('a batch with an unstorable name in its middle stores, logs and streams nothing of itself; the write sharing its commit does, and so do later ones', async (t) => {
  const { store, streamed } = openStore();
  await store.applyMany([put('user.before')]);
  // Two writes asked for in one turn share one batched commit (src/store/commits.ts).
  const failing = store.applyMany([put('user.a'), put('user.b'), put(TOO_LONG), put('user.c')]);
  const sharing = store.applyMany([put('user.sharing')]);
  const err = await t.throwsAsync(failing, { instanceOf: StorageError });
  t.is(await sharing, 1);
  t.is(await store.applyMany([put('user.after')]), 1);

  const expected = ['1 user.before', '2 user.sharing', '3 user.after'];
  t.deepEqual(streamed, expected);
  t.deepEqual(logged(store), expected);
  t.deepEqual(names(store), ['user.after', 'user.before', 'user.sharing']);
  for (const n of ['user.a', 'user.b', 'user.c']) t.is(store.find(B(n)), undefined, n);
  t.is(store.lastSeq, 3);
  // Refused by the checks before any write, saying which item.
  t.true(err instanceof InvalidWrite, err?.message);
  t.regex(err.message, /item 3 of 4/);
});

test('a decision that throws after recording a conflict, in a batched commit, leaves no conflict behind; the other write commits and streams', async (t) => {
  const { store, streamed } = openStore();
  await store.applyMany([put('user.held', 'b1!default')]);
  const failing = store.mutate(B('user.held'), (current, txn) => {
    txn.recordConflict({
      name: B('user.held'),
      current: current!,
      claimed: { state: 'active', location: B('b2!default'), acl: B('') },
      command: 'ACTIVATE',
      user: 'test',
      peer: 'test',
    });
    throw new Error('injected failure after the conflict was written');
  });
  const sharing = store.mutate(B('user.other'), () => ({ kind: 'put', entry: active('user.other'), result: 'stored' }));
  await t.throwsAsync(failing, { instanceOf: StorageError, message: /injected failure/ });
  t.is(await sharing, 'stored');
  t.deepEqual(store.listConflicts(), []);
  t.deepEqual(names(store), ['user.held', 'user.other']);
  t.deepEqual(logged(store), ['1 user.held', '2 user.other']);
  t.deepEqual(streamed, ['1 user.held', '2 user.other']);
});

test('Commits: a body whose write LMDB refuses part-way is rolled back alone, in a batched commit as in a synchronous one', async (t) => {
  const root = open({ path: `${folder()}/x.mdb`, overlappingSync: false, compression: false });
  cleanups.push(() => root.close());
  const db = root.openDB<Buffer, Buffer>({ name: 'd', keyEncoding: 'binary', encoding: 'binary' });
  const locations = new LocationTable(
    root.openDB<Buffer, number>({ name: 'l', keyEncoding: 'uint32', encoding: 'binary' }),
    root.openDB<Buffer, Buffer>({ name: 'r', keyEncoding: 'binary', encoding: 'binary' }),
  );
  const commits = new Commits(root, locations);
  const refusedKey = Buffer.alloc(4000, 0x61);
  const halfThenRefused = (key: string) => () => {
    db.putSync(B(key), B('v'));
    db.putSync(refusedKey, B('v'));
  };
  // Batched: two writes in one turn.
  const batchedFailing = commits.write(halfThenRefused('batched.half'));
  const batchedOther = commits.write(() => db.putSync(B('batched.other'), B('v')));
  await t.throwsAsync(batchedFailing, { message: /key size/i });
  await batchedOther;
  // Synchronous: a lone write after a quiet spell.
  await new Promise((r) => setTimeout(r, 50));
  await t.throwsAsync(commits.write(halfThenRefused('sync.half')), { message: /key size/i });
  t.is(db.get(B('batched.half')), undefined);
  t.deepEqual(db.get(B('batched.other')), B('v'));
  t.is(db.get(B('sync.half')), undefined);
  t.is(commits.interned, null);
});

test('a listener that throws: the committed write still resolves, the error is reported, the other listeners and later changes are told', async (t) => {
  const failures: string[] = [];
  const store = LmdbDirectoryStore.open(folder(), {
    onListenerError: (err: unknown, c: Change) => failures.push(`${c.seq} ${(err as Error).message}`),
  });
  cleanups.push(() => store.close());
  store.subscribe((c) => {
    if (c.name.toString('latin1').startsWith('user.boom')) throw new Error('listener bug');
  });
  const streamed: number[] = [];
  store.subscribe((c) => streamed.push(c.seq));
  const result = await store.mutate(B('user.boom'), () => ({ kind: 'put', entry: active('user.boom'), result: 'stored' }));
  t.is(result, 'stored');
  t.is(await store.applyMany([put('user.x'), put('user.boom2'), put('user.y')]), 3);
  t.is(await store.applyMany([put('user.z')]), 1);
  t.deepEqual(streamed, [1, 2, 3, 4, 5]);
  t.deepEqual(failures, ['1 listener bug', '3 listener bug']);
  t.deepEqual(names(store), ['user.boom', 'user.boom2', 'user.x', 'user.y', 'user.z']);
});

test('a name over the limit clients get, or with a NUL, is refused before anything is written, by mutate and loadMany as by applyMany', async (t) => {
  const { store, streamed } = openStore();
  t.is(OVER_LIMIT.length, MAX_NAME_BYTES + 1);
  await t.throwsAsync(
    store.mutate(B(OVER_LIMIT), () => ({ kind: 'put', entry: active(OVER_LIMIT), result: 1 })),
    { instanceOf: InvalidWrite },
  );
  await t.throwsAsync(store.loadMany([put('user.a'), put(OVER_LIMIT)]), { instanceOf: InvalidWrite });
  await t.throwsAsync(store.applyMany([put('user.a'), put(OVER_LIMIT)]), { instanceOf: InvalidWrite });
  await t.throwsAsync(store.applyMany([put('user.a'), { name: B('user.\0nul'), entry: active('user.\0nul') }]), {
    instanceOf: InvalidWrite,
  });
  await t.throwsAsync(store.applyMany([{ name: B('user.a'), entry: active('user.b') }]), {
    instanceOf: InvalidWrite,
    message: /another name/,
  });
  t.is(store.lastSeq, 0);
  t.deepEqual(names(store), []);
  t.deepEqual(streamed, []);
});

// ---- a slave given names it cannot store ----

let master: RunningMupdated | undefined;

test.serial(
  "a slave skips streamed names over the clients' limit or LMDB's, with a warning, applies the rest of its batch, keeps its connection and its UPDATE streams",
  async (t) => {
    master = await startMupdated();
    cleanups.push(async () => {
      await master!.stop('SIGKILL');
      removeDir(master!.dataDir);
    });
    await applyChanges(master.port, [['ACTIVATE', 'user.first', 'b1!default', 'u\tlrs\t']]);
    const proxy = await FaultProxy.start({ targetPort: master.port });
    const slave = await startSlave({ master: proxy.port, retryDelay: 1, config: { slave_resume: false } });
    cleanups.push(async () => {
      await slave.stop('SIGKILL');
      await proxy.close();
      removeDir(slave.dataDir);
    });
    const conn = await proxy.waitForConnection(0);
    await conn.waitForLine('S', /^U01 OK "streaming starts"$/, 30_000);
    const stream = await openStream(() => login(slave.port), 'S1');
    cleanups.push(() => Promise.resolve(stream.close()));

    // One chunk: the slave applies these lines as one batch; the middle ones are over the clients' limit, the second one over LMDB's.
    const line = (name: string) => `U01 MAILBOX {${name.length}+}\r\n${name} {10+}\r\nb1!default {0+}\r\n\r\n`;
    conn.inject(line('user.inj.a') + line(OVER_LIMIT) + line(TOO_LONG) + line('user.inj.b'));
    await applyChanges(master.port, [['ACTIVATE', 'user.later', 'b2!default', 'u\tlrs\t']]);
    t.is((await kickThroughSlave(slave.port)).status, 'K2 OK "Noop done"');

    const list = await listOf(slave.port);
    t.deepEqual(
      list.map((l) => l.split(' => ')[0]),
      ['"user.first"', '"user.inj.a"', '"user.inj.b"', '"user.later"'],
    );
    // The stream on the slave saw the injected names and the master's later change, in order.
    const seen: string[] = [];
    for (let i = 0; i < 100 && !seen.includes('user.later'); i++) {
      const l = await stream.readLine(10_000);
      const m = /^(user\.[a-z.]+) \{\d+\+\}$/.exec(l);
      if (m) seen.push(m[1]);
    }
    t.deepEqual(seen, ['user.inj.a', 'user.inj.b', 'user.later']);
    t.false(conn.isClosed, 'still the first connection');
    t.is(proxy.conns.length, 1);
    t.is(slave.logs.filter((l) => /connection to the master lost/.test(l)).length, 0);
    const skipped = slave.logs.filter((l) => /change from the master skipped/.test(l));
    t.is(skipped.length, 2);
    t.true(skipped[0].includes(`(${OVER_LIMIT.length} bytes)`) && skipped[1].includes(`(${TOO_LONG.length} bytes)`));
  },
);
