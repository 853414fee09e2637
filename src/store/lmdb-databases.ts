/**
 * Opening the directory's LMDB databases and checking the folder's format
 * and order (format conversion itself: format-migration.ts).
 *
 * Format 2 (meta `format`), databases:
 * - `entries2`: entryKey(name) (order.ts: the sort key, the name can be read
 *   back from it) -> encodeValue (codec.ts: state, location id or inline
 *   location, ACL);
 * - `locations`, `location-ids`: interned locations (locations.ts);
 * - `by-server` (dupsort): server part of the location (bucketOf) -> the
 *   entry keys of that server's entries, so a dump for one server reads
 *   only its entries, in directory order;
 * - `changes`: seq -> encodeLogRecord (unchanged from format 1: slaves
 *   compute change digests over these bytes), `meta`, `conflicts`,
 *   `open-claims`.
 * Format 1 (`entries`: storageKey(name) -> encodeEntry) is converted when a
 * folder is opened for writing.
 */
import type { Database, DatabaseOptions, Key, RootDatabase, Transaction } from 'lmdb';
import { randomUUID } from 'node:crypto';
import { LocationTable } from './locations.js';
import { StorageError, type ConflictRecord, type DirectoryOrder } from './types.js';

/** The storage format this code writes (meta `format`); older ones are converted at open, newer ones refused. */
export const FORMAT = 2;

/** The first key of any range (LMDB has no empty keys); scan handles would start at 0x05 by default. */
export const FIRST_KEY = Buffer.of(0);

/** openDB options; `create: false` (open only what exists) is missing from lmdb-js's types. */
export function dbOptions(name: string, o: object): DatabaseOptions & { name: string } {
  return { name, ...o };
}

export function asBuffer(raw: Uint8Array): Buffer {
  return Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

/**
 * lmdb-js's getBinaryFast (the value in its reusable buffer, valid until the
 * next read; `length` is the value's) takes get's options too; its types
 * leave them out.
 */
export interface FastGet {
  getBinaryFast(key: Uint8Array, options?: { transaction: Transaction }): Buffer | undefined;
}

/** Values as lmdb-js read them, in its reusable buffer (`length` set to the value's): no copy. For scan handles only. */
const RAW_VALUES = { encode: (v: Buffer) => v, decode: (b: Uint8Array) => b };

/**
 * Binary keys for scan handles: readKey gets keys in lmdb-js's key buffer
 * and returns a view of it, one per length and reused (valid until the next
 * read); writeKey also takes a value in lmdb-js's value buffer (whose
 * `length` is less than its memory's).
 */
function viewKeys(): {
  writeKey(key: Uint8Array, target: Uint8Array, start: number): number;
  readKey(src: Uint8Array, start: number, end: number): Uint8Array;
} {
  let source: Uint8Array | null = null;
  let views: Uint8Array[] = [];
  return {
    writeKey(key, target, start) {
      const n = key.length;
      if (n === key.byteLength) target.set(key, start);
      else for (let i = 0; i < n; i++) target[start + i] = key[i]!;
      return start + n;
    },
    readKey(src, start, end) {
      if (src !== source) {
        source = src;
        views = [];
      }
      if (start !== 32) return src.slice(start, end);
      return (views[end] ??= src.subarray(start, end));
    },
  };
}

export interface Databases {
  root: RootDatabase;
  entries: Database<Buffer, Buffer>;
  byServer: Database<Buffer, Buffer>;
  /** The same two databases for scans: keys and values as transient views (viewKeys, RAW_VALUES). */
  scanEntries: Database<Uint8Array, Uint8Array>;
  scanByServer: Database<Uint8Array, Uint8Array>;
  log: Database<Buffer, number>;
  meta: Database<unknown, string>;
  conflicts: Database<ConflictRecord, number>;
  /** Open conflicts by claim (name + claimed location), so a repeated claim updates one record. */
  openClaims: Database<number, Buffer>;
  locations: LocationTable;
}

/** The opened databases, the folder's order, and the format it is stored in (below FORMAT: to convert). */
export interface OpenedFolder {
  dbs: Databases;
  order: DirectoryOrder;
  format: number;
}

/**
 * Opens (read-only: only finds) the databases of the directory file `root`
 * in folder `dir`, refusing a format this code does not know, an order other
 * than the one asked for, and (read-only) a folder that would need
 * converting. A new directory gets its order, format and id here.
 */
export function openDatabases(root: RootDatabase, dir: string, wanted: DirectoryOrder | undefined, readOnly: boolean): OpenedFolder {
  // Read-only: open nothing that does not exist yet (creating a database is a write).
  const create = !readOnly;
  const missing = () => new StorageError(`no directory in ${dir} (is --data right?)`);
  const metaDb = root.openDB<unknown, string>(dbOptions('meta', { create }));
  if (!metaDb) throw missing();
  const stored = metaDb.get('order') as DirectoryOrder | undefined;
  const format = stored === undefined ? FORMAT : ((metaDb.get('format') as number | undefined) ?? 1);
  if (typeof format !== 'number' || !Number.isInteger(format) || format < 1 || format > FORMAT) {
    throw new StorageError(
      `the data folder ${dir} holds its directory in storage format ${String(format)}, which this version of mupdated ` +
        `does not know (it reads formats 1 to ${FORMAT}); use the newer mupdated that wrote it`,
    );
  }
  const order = wanted ?? stored ?? 'cyrus';
  if (stored === undefined && readOnly) throw missing();
  if (stored !== undefined && stored !== order) {
    throw new StorageError(
      `the data folder ${dir} keeps its directory in '${stored}' order, but '${order}' is configured; ` +
        `export with 'mupdated dump' and load into a fresh folder to change it`,
    );
  }
  if (format < FORMAT && readOnly) {
    throw new StorageError(
      `the data folder ${dir} holds its directory in storage format ${format}; it is converted to format ${FORMAT} ` +
        `when opened for writing (start the server on it first)`,
    );
  }
  const db = <K extends Key, V>(name: string, o: object): Database<V, K> => {
    const opened = root.openDB<V, K>(dbOptions(name, { create, ...o }));
    if (!opened) throw missing();
    return opened;
  };
  const dbs: Databases = {
    root,
    entries: db<Buffer, Buffer>('entries2', { keyEncoding: 'binary', encoding: 'binary' }),
    byServer: db<Buffer, Buffer>('by-server', { keyEncoding: 'binary', encoding: 'binary', dupSort: true }),
    scanEntries: db<Uint8Array, Uint8Array>('entries2', { keyEncoder: viewKeys(), encoder: RAW_VALUES }),
    scanByServer: db<Uint8Array, Uint8Array>('by-server', { keyEncoding: 'binary', encoder: RAW_VALUES, dupSort: true }),
    log: db<number, Buffer>('changes', { encoding: 'binary' }),
    meta: metaDb,
    conflicts: db<number, ConflictRecord>('conflicts', {}),
    openClaims: db<Buffer, number>('open-claims', { keyEncoding: 'binary' }),
    locations: new LocationTable(
      db<number, Buffer>('locations', { keyEncoding: 'uint32', encoding: 'binary' }),
      db<Buffer, Buffer>('location-ids', { keyEncoding: 'binary', encoding: 'binary' }),
    ),
  };
  if (stored === undefined) {
    root.transactionSync(() => {
      metaDb.putSync('order', order);
      metaDb.putSync('format', FORMAT);
      if (metaDb.get('dbid') === undefined) metaDb.putSync('dbid', randomUUID());
    });
  } else if (!readOnly && metaDb.get('dbid') === undefined) {
    metaDb.putSync('dbid', randomUUID());
  }
  dbs.locations.load();
  return { dbs, order, format };
}
