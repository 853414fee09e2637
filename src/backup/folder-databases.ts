/**
 * The LMDB databases of a data folder, opened read-only for the backup tools
 * (a server may be writing the folder from another process meanwhile: LMDB
 * readers in other processes see whole commits only). The names and
 * encodings are those the directory store (store/lmdb-store.ts) and the user
 * database (sasl/user-db.ts) create; nothing here writes.
 */
import type { Database, DatabaseOptions, Key, RootDatabase } from 'lmdb';
import { join } from 'node:path';
import { lmdbFileExists, openLmdb } from '../store/lmdb-open.js';
import type { ConflictRecord } from '../store/types.js';

export const DIRECTORY_FILE = 'directory.mdb';
export const USERS_FILE = 'users.mdb';

/** The options the server opens directory.mdb with, read-only. */
const DIRECTORY_OPTIONS = { overlappingSync: false, maxDbs: 12, compression: false, readOnly: true } as const;
const USERS_OPTIONS = { overlappingSync: false, readOnly: true } as const;

/** A folder that is not what a tool can work on: said in words, exit 1. */
export class FolderRefused extends Error {}

/** The format-2 databases of directory.mdb (undefined: the folder does not have it). */
export interface DirectoryDatabases {
  root: RootDatabase;
  meta: Database<unknown, string>;
  entries?: Database<Buffer, Buffer> | undefined;
  byServer?: Database<Buffer, Buffer> | undefined;
  /** Format 1's entries (storage key -> log-record encoding). */
  formatOneEntries?: Database<Buffer, Buffer> | undefined;
  log?: Database<Buffer, number> | undefined;
  conflicts?: Database<ConflictRecord, number> | undefined;
  openClaims?: Database<number, Buffer> | undefined;
  locations?: Database<Buffer, number> | undefined;
  locationIds?: Database<Buffer, Buffer> | undefined;
}

/**
 * Values as bytes, with the writeKey lmdb-js needs to look a value up among
 * a key's duplicates (doesExist(key, value)); 'binary' encoding lacks it.
 */
const DUPLICATE_BYTES = {
  encode: (value: Buffer): Buffer => value,
  // lmdb-js hands values in a reused buffer whose `length` it set to the value's: copy that many bytes.
  decode: (bytes: Uint8Array): Buffer => Buffer.from(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)),
  writeKey(value: Uint8Array, target: Uint8Array, start: number): number {
    target.set(value, start);
    return start + value.length;
  },
};

/** openDB of an existing database only (`create: false` is missing from lmdb-js's types). */
function existing<V, K extends Key>(root: RootDatabase, name: string, o: object): Database<V, K> | undefined {
  return root.openDB<V, K>({ name, create: false, ...o } as DatabaseOptions & { name: string }) ?? undefined;
}

/** Opens `dir`/directory.mdb read-only; a FolderRefused when it is not there. */
export function openDirectoryDatabases(dir: string): DirectoryDatabases {
  const path = join(dir, DIRECTORY_FILE);
  if (!lmdbFileExists(path)) throw new FolderRefused(`no directory in ${dir} (${DIRECTORY_FILE} is missing: is --data right?)`);
  const root = openLmdb<unknown, Key>(path, DIRECTORY_OPTIONS);
  const meta = existing<unknown, string>(root, 'meta', {});
  if (!meta) {
    void root.close();
    throw new FolderRefused(`${path} holds no directory (no meta database)`);
  }
  return {
    root,
    meta,
    entries: existing(root, 'entries2', { keyEncoding: 'binary', encoding: 'binary' }),
    byServer: existing(root, 'by-server', { keyEncoding: 'binary', encoder: DUPLICATE_BYTES, dupSort: true }),
    formatOneEntries: existing(root, 'entries', { keyEncoding: 'binary', encoding: 'binary' }),
    log: existing(root, 'changes', { encoding: 'binary' }),
    conflicts: existing(root, 'conflicts', {}),
    openClaims: existing(root, 'open-claims', { keyEncoding: 'binary' }),
    locations: existing(root, 'locations', { keyEncoding: 'uint32', encoding: 'binary' }),
    locationIds: existing(root, 'location-ids', { keyEncoding: 'binary', encoding: 'binary' }),
  };
}

/** Opens `dir`/users.mdb read-only, or null when the folder has no users yet. */
export function openUsersDatabase(dir: string): RootDatabase<Record<string, unknown>, string> | null {
  const path = join(dir, USERS_FILE);
  if (!lmdbFileExists(path)) return null;
  return openLmdb<Record<string, unknown>, string>(path, USERS_OPTIONS);
}

/** The meta key a cluster node's view keeps (store/etcd): such a folder is a cache of etcd, not the directory. */
export const CLUSTER_VIEW_KEY = 'viewRevision';
