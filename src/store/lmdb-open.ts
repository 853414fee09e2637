/**
 * Opening an LMDB file of the data folder: created private (private-files.ts),
 * and a refusal by the file system said in words an operator can act on
 * (lmdb-js reports it with a numeric `code`, unlike Node's string codes).
 */
import { statSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import { open, type Key, type RootDatabase, type RootDatabaseOptions } from 'lmdb';
import { createPrivately } from './private-files.js';
import { StorageError } from './types.js';

const PERMISSION_CODES = new Set<unknown>([constants.errno.EACCES, constants.errno.EPERM, 'EACCES', 'EPERM']);

function permissionDenied(path: string): StorageError {
  return new StorageError(
    `cannot open ${path}: permission denied ` + `(run mupdated as the user that owns the data folder ${dirname(path)})`,
  );
}

/** Opens (creating if allowed) the LMDB file at `path`; permission problems become a StorageError. */
export function openLmdb<V, K extends Key>(path: string, options: RootDatabaseOptions): RootDatabase<V, K> {
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
