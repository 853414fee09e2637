/**
 * Decided conflicts in a data folder written before mupdated indexed
 * decisions (issue 13.7): opening it for writing indexes them once, so the
 * losing backend's next claim is counted on its decision there too. The
 * older folder is made by removing the index from a current one (its
 * conflict records are what older versions wrote).
 */
import test from 'ava';
import { open } from 'lmdb';
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
import type { ConflictRecord, DirectoryStore } from '../src/store/types.js';
import { removeDir, tempDir } from './helpers/server.js';
import { active, B } from './helpers/store-entries.js';

function claim(store: DirectoryStore, name: string, location: string): Promise<ConflictRecord> {
  return store.mutate(B(name), (current, txn) => ({
    kind: 'keep',
    result: txn.recordConflict({
      name: B(name),
      current: current!,
      claimed: { state: 'active', location: B(location), acl: B('') },
      command: 'ACTIVATE',
      user: 'backend2',
      peer: '127.0.0.1',
    }),
  }));
}

/** Removes every claim and decision key and the index's meta flag, as a folder of an older version has them. */
async function forgetDecisionIndex(dir: string): Promise<number> {
  const root = open({ path: `${dir}/directory.mdb`, maxDbs: 12, compression: false });
  const claims = root.openDB<number, Buffer>({ name: 'open-claims', keyEncoding: 'binary' });
  const meta = root.openDB<unknown, string>({ name: 'meta' });
  const keys = [...claims.getKeys()];
  await root.transaction(() => {
    for (const k of keys) claims.removeSync(k);
    meta.removeSync('decisionsIndexed');
  });
  await root.close();
  return keys.length;
}

test('decisions made before the decision index existed are indexed at open: the losing claim is counted on its decision, not recorded anew', async (t) => {
  const dir = tempDir('store-decisions-');
  try {
    let store = LmdbDirectoryStore.open(dir, { order: 'cyrus' });
    await store.mutate(B('user.old'), () => ({ kind: 'put', entry: active('user.old', 'b1!p', 'o\tlr\t'), result: null }));
    const id = (await claim(store, 'user.old', 'b2!p')).id;
    await store.closeConflict(id, 'current', 'admin');
    await store.close();
    t.true((await forgetDecisionIndex(dir)) > 0, 'the index had the decision');

    store = LmdbDirectoryStore.open(dir, {});
    try {
      const again = await claim(store, 'user.old', 'b2!p');
      t.like(again, { id, status: 'resolved', refused: 1 });
      t.deepEqual(store.listConflicts('open'), []);
    } finally {
      await store.close();
    }
  } finally {
    removeDir(dir);
  }
});

test('a folder from before the open-conflict count is counted once when opened for writing', async (t) => {
  const dir = tempDir('store-open-count-');
  try {
    let store = LmdbDirectoryStore.open(dir, { order: 'cyrus' });
    for (const name of ['user.c1', 'user.c2', 'user.c3']) {
      await store.mutate(B(name), () => ({ kind: 'put', entry: active(name, 'b1!p', ''), result: null }));
    }
    const ids = [];
    for (const name of ['user.c1', 'user.c2', 'user.c3']) ids.push((await claim(store, name, 'b2!p')).id);
    await store.closeConflict(ids[0], 'none', 'admin');
    t.is(store.openConflictCount(), 2);
    await store.close();
    // As an older version left it: no count in meta.
    const root = open({ path: `${dir}/directory.mdb`, maxDbs: 12, compression: false });
    const meta = root.openDB<unknown, string>({ name: 'meta' });
    await root.transaction(() => meta.removeSync('openConflicts'));
    await root.close();

    store = LmdbDirectoryStore.open(dir, {});
    try {
      t.is(store.getOwnMeta('openConflicts'), 2, 'counted at open and kept in meta');
      t.is(store.openConflictCount(), 2);
      await store.closeConflict(ids[1], 'none', 'admin');
      t.is(store.openConflictCount(), 1);
    } finally {
      await store.close();
    }
  } finally {
    removeDir(dir);
  }
});
