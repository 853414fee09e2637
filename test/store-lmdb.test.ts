/** The store conformance suite (test/suites/store-conformance.ts) on the LMDB store, in a temp dir. */
import test from 'ava';
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
import type { BatchItem } from '../src/store/types.js';
import { removeDir, tempDir } from './helpers/server.js';
import { storeConformance } from './suites/store-conformance.js';

storeConformance('lmdb', (order) => {
  const dir = tempDir('store-lmdb-');
  const store = LmdbDirectoryStore.open(dir, { order });
  return Promise.resolve({
    store,
    async dispose() {
      await store.close();
      removeDir(dir);
    },
  });
});

test('after the change-log retention is lowered the log stays one unbroken run: a resume from before it gets a full dump, not a replay with a hole', async (t) => {
  const dir = tempDir('store-lmdb-retention-');
  t.teardown(() => removeDir(dir));
  const entry = (i: number): BatchItem => {
    const name = Buffer.from(`user.r${i}`);
    return { name, entry: { name, state: 'active', location: Buffer.from('b1!p'), acl: Buffer.alloc(0) } };
  };
  let store = LmdbDirectoryStore.open(dir, {});
  for (let i = 1; i <= 30; i++) await store.applyMany([entry(i)]);
  await store.close();
  store = LmdbDirectoryStore.open(dir, { changeLogRetention: 10 });
  try {
    for (let i = 31; i <= 35; i++) await store.applyMany([entry(i)]);
    const snapshot = store.snapshot();
    try {
      t.is(snapshot.seq, 35);
      t.is(snapshot.changesSince(5), null, 'changes 6 to 25 are no longer all there: a full dump');
      const kept = snapshot.changesSince(25);
      t.deepEqual(kept && [...kept].map((c) => c.seq), [26, 27, 28, 29, 30, 31, 32, 33, 34, 35]);
    } finally {
      snapshot.close();
    }
  } finally {
    await store.close();
  }
});
