/**
 * Converting an older storage format at open (lmdb-databases.ts describes
 * the formats). Format 1 (`entries`: storageKey -> encodeEntry) becomes
 * format 2 in one transaction: entries, interned locations, the by-server
 * index, then `entries` is dropped and `format` set. Format-1 key order is
 * format-2 key order (entryKey), so the new keys are appended. The change
 * log, sequence number, directory id and conflicts stay as they are.
 */
import type { Database, RootDatabase } from 'lmdb';
import { decodeRecord } from './codec.js';
import type { Commits } from './commits.js';
import type { EntryTable } from './entry-table.js';
import { FORMAT, asBuffer, dbOptions } from './lmdb-databases.js';
import { entryKey } from './order.js';

/** Rewrites a format-1 directory as format 2; returns the number of entries. */
export function convertFormat1(root: RootDatabase, metaDb: Database<unknown, string>, commits: Commits, entries: EntryTable): number {
  const old = root.openDB<Buffer, Buffer>(dbOptions('entries', { keyEncoding: 'binary', encoding: 'binary', create: false }));
  let n = 0;
  commits.now(() => {
    if (old) {
      for (const { value } of old.getRange()) {
        const { name, entry } = decodeRecord(asBuffer(value));
        if (!entry) continue;
        entries.putInTxn(entryKey(name, entries.order), null, entry, true);
        n++;
      }
      old.dropSync();
    }
    metaDb.putSync('format', FORMAT);
  });
  return n;
}
