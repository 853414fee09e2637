/**
 * Opening an LMDB file of the data folder: created private (private-files.ts),
 * a refusal by the file system said in words an operator can act on
 * (lmdb-js reports it with a numeric `code`, unlike Node's string codes), and
 * a file that is not an LMDB database refused before lmdb-js sees it:
 * lmdb-js 3.5 crashes the process (SIGSEGV, no message) when LMDB refuses a
 * file's header (seen with junk, truncated and empty files).
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import { open, type Key, type RootDatabase, type RootDatabaseOptions } from 'lmdb';
import { absorbLmdbCommitRejections } from './lmdb-commit-failures.js';
import { createPrivately } from './private-files.js';
import { StorageError } from './types.js';

const PERMISSION_CODES = new Set<unknown>([constants.errno.EACCES, constants.errno.EPERM, 'EACCES', 'EPERM']);

function permissionDenied(path: string): StorageError {
  return new StorageError(
    `cannot open ${path}: permission denied ` + `(run mupdated as the user that owns the data folder ${dirname(path)})`,
  );
}

/** LMDB's first meta page as lmdb-js 3 writes it: its page header holds a txnid, so the meta starts at byte 24, not 16. */
const META_PAGE_FLAGS_AT = 18;
const P_META = 0x08;
const MAGIC_AT = 24;
const LMDB_MAGIC = 0xbeefc0de;
const VERSION_AT = 28;
const LMDB_DATA_VERSION = 2;
const HEADER_BYTES = 32;

/** What is wrong with the header of the LMDB file at `path`, or null when it is one lmdb-js can open (or absent). */
function headerProblem(path: string, readOnly: boolean): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null; // missing (LMDB creates it) or unreadable (lmdb-js reports that itself)
  }
  try {
    if (!fstatSync(fd).isFile()) return 'it is not a file (a folder?)';
    const header = Buffer.alloc(HEADER_BYTES);
    const got = readSync(fd, header, 0, HEADER_BYTES, 0);
    // An empty file is what LMDB leaves when its very first open was cut short: a writer starts it afresh.
    if (got === 0) return readOnly ? 'it is empty (0 bytes)' : null;
    if (got < HEADER_BYTES) return `it holds only ${got} bytes`;
    if ((header.readUInt16LE(META_PAGE_FLAGS_AT) & P_META) === 0 || header.readUInt32LE(MAGIC_AT) !== LMDB_MAGIC)
      return 'its first page is not an LMDB meta page';
    const version = header.readUInt32LE(VERSION_AT) & 0xffff;
    if (version !== LMDB_DATA_VERSION) return `it has LMDB data format ${version}, this build reads ${LMDB_DATA_VERSION}`;
    return null;
  } finally {
    closeSync(fd);
  }
}

function existsAsNonFile(path: string): boolean {
  try {
    return !statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Opens (creating if allowed) the LMDB file at `path`; permission problems and damaged files become a StorageError. */
export function openLmdb<V, K extends Key>(path: string, options: RootDatabaseOptions): RootDatabase<V, K> {
  const problem = headerProblem(path, !!options.readOnly);
  if (problem) {
    throw new StorageError(
      `cannot open ${path}: ${problem}, so it is no database mupdated can read (damaged, or another file); ` +
        `move it aside and restore it from a backup ('mupdated backup' makes them; a cluster node rebuilds its view from etcd when its folder is empty)`,
    );
  }
  // The lock file holds no data, but LMDB refusing it crashes lmdb-js the same way.
  const lock = `${path}-lock`;
  if (existsAsNonFile(lock)) {
    throw new StorageError(
      `cannot open ${path}: its lock file ${lock} is not a file; move it aside (it holds no data: LMDB makes a new one)`,
    );
  }
  absorbLmdbCommitRejections();
  try {
    return createPrivately(() => open<V, K>({ ...options, path }));
  } catch (err) {
    if (PERMISSION_CODES.has((err as { code?: unknown }).code)) throw permissionDenied(path);
    throw err;
  }
}

/** Whether the file exists; a folder we may not look into is a StorageError, not "missing". */
export function lmdbFileExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (PERMISSION_CODES.has(code)) throw permissionDenied(path);
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}
