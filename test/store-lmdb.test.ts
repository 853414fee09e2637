/** The store conformance suite (test/suites/store-conformance.ts) on the LMDB store, in a temp dir. */
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
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
