/**
 * Puts a finished file in place of another so that a crash at any moment
 * leaves either the old file or the whole new one: the new file's data reach
 * the disk before the rename, and the rename itself before we report success.
 */
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { PRIVATE_FILE_MODE } from './private-files.js';

function fsyncPath(path: string, flags: string): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncs `from` (made 0600), renames it over `to`, then fsyncs the folder that holds the new name. */
export function replaceDurably(from: string, to: string): void {
  const fd = openSync(from, 'r+');
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(from, to);
  fsyncPath(dirname(to), 'r');
}
