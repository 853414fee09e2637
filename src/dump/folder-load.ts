/**
 * `mupdated load` into a data folder (not a cluster): the dump's entries are
 * written in batches (load-batches.ts), then the loaded file is replaced by
 * a compact copy, so later commits do not wade through the load's freed
 * pages. The writing runs on a thread of its own (folder-load-thread.ts)
 * whose young generation is sized for it.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { CLUSTER_VIEW_KEY } from '../backup/folder-databases.js';
import { clusterBackupAdvice } from '../backup/hot-backup.js';
import { replaceDurably } from '../store/durable-replace.js';
import type { DirectoryOrder } from '../store/types.js';
import { LmdbDirectoryStore } from '../store/lmdb-store.js';
import { whilePrivate } from '../store/private-files.js';
import { loadInBatches, type LoadCounts } from './load-batches.js';
import { fromThreadError, type ThreadError } from './thread-error.js';

export interface FolderLoad extends LoadCounts {
  /** Entries of an older-format directory converted when it was opened (null: none). */
  converted: number | null;
}

/** What the load thread answers. */
export type FromFolderLoad = { type: 'done'; load: FolderLoad } | { type: 'failed'; error: ThreadError };

/**
 * The writer's young generation. A batch of 10,000 entries lives for a whole
 * transaction and V8's default (16 MiB semi-spaces) copies it from scavenge
 * to scavenge: a 2M-entry load took 10.1–10.7 s, 8.9 s with 64 MiB semi-spaces.
 */
const WRITER_YOUNG_GENERATION_MB = 192;

/** A data folder `mupdated load` must not write (a cluster node's view). */
export class FolderLoadRefused extends Error {
  override name = 'FolderLoadRefused';
}

/**
 * Loads the dump at `file` (`-`: standard input) into `dataDir`, on this
 * thread. All or nothing: the entries go into a scratch copy of the folder's
 * directory, which replaces it only once the whole dump has loaded, so a
 * dump that breaks halfway leaves the folder as it was.
 */
export async function loadIntoFolder(file: string, dataDir: string, order?: DirectoryOrder): Promise<FolderLoad> {
  const scratch = join(dataDir, 'load-in-progress');
  const compacted = join(dataDir, 'directory.mdb.compact');
  rmSync(scratch, { recursive: true, force: true });
  rmSync(compacted, { force: true });
  let converted: number | null = null;
  // Opening makes a new folder's (empty) directory, as a server would: a load that fails leaves that.
  const existing = LmdbDirectoryStore.open(dataDir, { order });
  try {
    // A node's view is rebuilt from etcd: entries loaded into it would be this node's alone.
    if (existing.getOwnMeta(CLUSTER_VIEW_KEY) !== undefined) {
      throw new FolderLoadRefused(clusterBackupAdvice(`${dataDir} is a cluster node's data folder; mupdated load would fork it from etcd`));
    }
    converted = existing.converted ? existing.converted.entries : null;
    mkdirSync(scratch, { mode: 0o700 });
    await existing.compactCopy(join(scratch, 'directory.mdb'));
  } finally {
    await existing.close();
  }
  try {
    const store = LmdbDirectoryStore.open(scratch, { order });
    let counts: LoadCounts;
    try {
      counts = await loadInBatches(file, (batch) => store.loadMany(batch));
      await store.compactCopy(compacted);
    } finally {
      await store.close();
    }
    replaceDurably(compacted, join(dataDir, 'directory.mdb'));
    return { ...counts, converted };
  } finally {
    rmSync(compacted, { force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** loadIntoFolder on a thread of its own; its failure comes back as the error it was (thread-error.ts). */
export function loadIntoFolderOnThread(file: string, dataDir: string, order?: DirectoryOrder): Promise<FolderLoad> {
  // The thread creates the folder's LMDB files: private like the server's (private-files.ts).
  return whilePrivate(() => runLoadThread(file, dataDir, order));
}

function runLoadThread(file: string, dataDir: string, order: DirectoryOrder | undefined): Promise<FolderLoad> {
  const worker = new Worker(new URL('./folder-load-thread.js', import.meta.url), {
    workerData: { file, dataDir, order },
    resourceLimits: { maxYoungGenerationSizeMb: WRITER_YOUNG_GENERATION_MB },
  });
  return new Promise<FolderLoad>((resolve, reject) => {
    worker.once('message', (msg: FromFolderLoad) => {
      if (msg.type === 'done') resolve(msg.load);
      else reject(fromThreadError(msg.error));
    });
    worker.once('error', reject);
    // After an answer this rejects a settled promise, which does nothing.
    worker.once('exit', (code) => reject(new Error(`the load stopped early (exit code ${code})`)));
  });
}
