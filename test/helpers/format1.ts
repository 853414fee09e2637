/**
 * Writes a data folder the way the format-1 store did (meta `format` 1), straight
 * through lmdb, so conversion tests start from the old layout byte for byte:
 * `entries`: storageKey(name) -> `code u8 | nameLen u32 | name | locLen u32 |
 * location | acl` (encodeEntry, the same bytes as a change-log record),
 * `changes`: seq -> encodeLogRecord, `meta`: order, format, dbid, seq.
 */
import { open } from 'lmdb';
import { encodeEntry, encodeLogRecord } from '../../src/store/codec.js';
import { storageKey } from '../../src/store/order.js';
import type { DirectoryOrder, Entry } from '../../src/store/types.js';

export interface Format1Change {
  seq: number;
  name: Buffer;
  entry: Entry | null;
}

export interface Format1Folder {
  order: DirectoryOrder;
  dbid: string;
  entries: Entry[];
  /** The change log as it is kept (possibly pruned at the front). */
  log: Format1Change[];
  seq: number;
  /** Stored as is (meta `format`); 1 unless a test wants another. */
  format?: unknown;
}

export async function writeFormat1(dir: string, folder: Format1Folder): Promise<void> {
  const root = open({ path: `${dir}/directory.mdb`, overlappingSync: false, maxDbs: 8, compression: false });
  const entriesDb = root.openDB<Buffer, Buffer>({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' });
  const logDb = root.openDB<Buffer, number>({ name: 'changes', encoding: 'binary' });
  const metaDb = root.openDB<unknown, string>({ name: 'meta' });
  root.openDB({ name: 'conflicts' });
  root.openDB({ name: 'open-claims', keyEncoding: 'binary' });
  root.transactionSync(() => {
    metaDb.putSync('order', folder.order);
    metaDb.putSync('format', folder.format ?? 1);
    metaDb.putSync('dbid', folder.dbid);
    metaDb.putSync('seq', folder.seq);
    for (const e of folder.entries) entriesDb.putSync(storageKey(e.name, folder.order), encodeEntry(e));
    for (const c of folder.log) logDb.putSync(c.seq, encodeLogRecord(c.name, c.entry));
  });
  await root.close();
}

/** Reads meta `format` of a folder without the store (to see that nothing was written). */
export async function storedFormat(dir: string): Promise<unknown> {
  const root = open({ path: `${dir}/directory.mdb`, overlappingSync: false, maxDbs: 12, compression: false });
  const metaDb = root.openDB<unknown, string>({ name: 'meta' });
  const format = metaDb.get('format');
  await root.close();
  return format;
}
