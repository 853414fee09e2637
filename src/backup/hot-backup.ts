/**
 * `mupdated backup DEST`: a copy of a data folder taken while its server
 * runs and writes. Each LMDB file is copied by LMDB itself inside one read
 * transaction (compacted: no free pages), so the directory copy is the
 * directory as of one commit, its change log included; users.mdb is copied
 * the same way (its own commit: the two files are separate environments).
 * The copy is written into a hidden folder next to DEST, every file and the
 * folder are fsynced, it is verified, and only then renamed to DEST: DEST
 * either does not exist or holds a whole, durable copy.
 */
import {
  closeSync,
  copyFileSync,
  constants,
  existsSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { PRIVATE_FILE_MODE, PRIVATE_FOLDER_MODE } from '../store/private-files.js';
import { StorageError } from '../store/types.js';
import {
  CLUSTER_VIEW_KEY,
  DIRECTORY_FILE,
  FolderRefused,
  USERS_FILE,
  openDirectoryDatabases,
  openUsersDatabase,
} from './folder-databases.js';
import { verifyFolder, type FolderReport } from './verify-folder.js';

/**
 * A backup step that failed for a reason other than the folder itself (LMDB or
 * the file system said no): names the step and the file, keeps the cause.
 * Nothing is left behind: the partial copy is removed and DEST never made.
 */
export class BackupFailed extends Error {
  override name = 'BackupFailed';
  constructor(step: string, cause: Error) {
    super(
      `backup failed while ${step}: ${cause.message} (nothing was written to DEST; run it again, and if it fails the same way check the disk and the folder)`,
      { cause },
    );
  }
}

/** Runs one step; any other error becomes a BackupFailed naming `step`. */
async function step<T>(what: string, run: () => T | Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    // Those two already say what is wrong with the folder and what to do.
    if (err instanceof FolderRefused || err instanceof StorageError || !(err instanceof Error)) throw err;
    throw new BackupFailed(what, err);
  }
}

/** Plain files of a data folder that belong in a backup besides the LMDB files (the operator audit trail). */
const PLAIN_FILES = ['audit.log'];

export interface BackupResult {
  dest: string;
  /** The files the backup holds. */
  files: string[];
  /** verify's report on the copy. */
  report: FolderReport;
}

/** Says how to back up a cluster instead of a node's folder. */
export function clusterBackupAdvice(what: string): string {
  return (
    `${what}: in cluster mode the directory lives in etcd and a node's data folder is only its view, which the node ` +
    `rebuilds from etcd. Back up the cluster with 'mupdated dump --etcd URL > FILE' (restore: 'mupdated load FILE --etcd URL' ` +
    `into an empty prefix) or with an etcd snapshot ('etcdctl snapshot save FILE')`
  );
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Makes `path` private and durable: fchmod (files 0600, folders 0700) then fsync. */
function syncPrivately(path: string, folder: boolean): void {
  const fd = openSync(path, folder ? 'r' : 'r+');
  try {
    fchmodSync(fd, folder ? PRIVATE_FOLDER_MODE : PRIVATE_FILE_MODE);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncFolder(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Copies the LMDB files and plain files of `source` into the empty folder `into`; returns the file names. */
async function copyFiles(source: string, into: string): Promise<string[]> {
  const dbs = await step(`opening ${join(source, DIRECTORY_FILE)}`, () => openDirectoryDatabases(source));
  try {
    if (dbs.meta.get(CLUSTER_VIEW_KEY) !== undefined)
      throw new FolderRefused(clusterBackupAdvice(`${source} is a cluster node's data folder`));
    await step(`copying ${join(source, DIRECTORY_FILE)}`, () => dbs.root.backup(join(into, DIRECTORY_FILE), true));
  } finally {
    await dbs.root.close();
  }
  const files = [DIRECTORY_FILE];
  const users = await step(`opening ${join(source, USERS_FILE)}`, () => openUsersDatabase(source));
  if (users) {
    try {
      await step(`copying ${join(source, USERS_FILE)}`, () => users.backup(join(into, USERS_FILE), true));
    } finally {
      await users.close();
    }
    files.push(USERS_FILE);
  }
  for (const name of PLAIN_FILES) {
    if (!existsSync(join(source, name))) continue;
    await step(`copying ${join(source, name)}`, () => copyFileSync(join(source, name), join(into, name), constants.COPYFILE_EXCL));
    files.push(name);
  }
  return files;
}

/** Writes the backup of data folder `source` to the new folder `dest`. */
export async function backupFolder(source: string, dest: string): Promise<BackupResult> {
  const target = resolve(dest);
  if (exists(target))
    throw new FolderRefused(`${dest} already exists: a backup goes into a new folder (pick another name, or remove it first)`);
  const parent = dirname(target);
  // Everything this process creates is private from birth (LMDB creates the copies itself, 0666 less the umask).
  const umask = process.umask(0o077);
  const partial = join(parent, `.${basename(target)}.partial-${process.pid}`);
  try {
    mkdirSync(parent, { recursive: true, mode: PRIVATE_FOLDER_MODE });
    mkdirSync(partial, { mode: PRIVATE_FOLDER_MODE });
    let moved = false;
    try {
      const files = await copyFiles(source, partial);
      await step('syncing the copy to disk', () => {
        for (const name of files) syncPrivately(join(partial, name), false);
      });
      const report = await step('verifying the copy', () => verifyFolder(partial));
      // verify's read-only opening made lock files; they are not data (a server makes its own).
      for (const name of readdirSync(partial)) if (!files.includes(name)) rmSync(join(partial, name), { force: true });
      syncPrivately(partial, true);
      renameSync(partial, target);
      moved = true;
      fsyncFolder(parent);
      return { dest: target, files, report: { ...report, dir: target } };
    } finally {
      if (!moved) rmSync(partial, { recursive: true, force: true });
    }
  } finally {
    process.umask(umask);
  }
}
