/** `mupdated dump` and `mupdated load FILE`: the directory as Cyrus 3.6 `ctl_mboxlist -d` JSON. */
import { connect } from 'node:net';
import { adminSocketPath } from '../admin/socket-server.js';
import { LmdbDirectoryStore } from '../store/lmdb-store.js';
import { writeDump } from '../dump/cyrus-dump.js';
import { loadInBatches, type LoadCounts } from '../dump/load-batches.js';
import { loadIntoFolderOnThread } from '../dump/folder-load.js';
import { isCluster, openClusterDirectory, toolConfig, type ToolFlags } from './cluster-tool.js';

/** Standard output failed (a full disk, a reader gone): the dump is not complete. */
class DumpOutputError extends Error {
  override name = 'DumpOutputError';
}

/** The first error standard output reported; set by a listener, so a failed write is an error, not a crash. */
let stdoutFailure: Error | null = null;

function outputFailed(err: Error): DumpOutputError {
  return new DumpOutputError(`the dump is not complete: writing it failed (${err.message})`);
}

function writeStdout(chunk: string): Promise<void> | void {
  if (stdoutFailure) throw outputFailed(stdoutFailure);
  if (process.stdout.write(chunk)) return;
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      process.stdout.off('drain', onDrain);
      reject(outputFailed(err));
    };
    const onDrain = () => {
      process.stdout.off('error', onError);
      resolve();
    };
    process.stdout.once('drain', onDrain);
    process.stdout.once('error', onError);
  });
}

/** Resolves once everything written so far has left (or rejects with why it could not). */
function stdoutFlushed(): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write('', (err) => (err ? reject(outputFailed(err)) : resolve())));
}

export async function runDump(flags: ToolFlags): Promise<number> {
  const config = toolConfig(flags);
  // A cluster's directory is read at one etcd revision into a view of the tool's own.
  const dir = isCluster(config)
    ? await openClusterDirectory(config, { mustExist: true })
    : (() => {
        const store = LmdbDirectoryStore.open(config.dataDir, { mustExist: true });
        return { store, close: () => store.close() };
      })();
  process.stdout.on('error', (err: Error) => {
    stdoutFailure ??= err;
  });
  const snapshot = dir.store.snapshot();
  try {
    const n = await writeDump(snapshot.entries(), writeStdout);
    await stdoutFlushed();
    process.stderr.write(`dumped ${n} entries\n`);
  } finally {
    snapshot.close();
    await dir.close();
  }
  return 0;
}

/** True when a server is running on the data folder (its admin socket answers). */
function serverRunning(dataDir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(adminSocketPath(dataDir));
    sock.on('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

/**
 * Loads into the cluster: etcd transactions like any write, so running nodes
 * and their listeners see the entries as they land. An empty prefix is
 * set up, as the first node would.
 */
async function loadIntoCluster(file: string, flags: ToolFlags): Promise<number> {
  const dir = await openClusterDirectory(toolConfig(flags), { mustExist: false });
  let counts: LoadCounts;
  try {
    counts = await loadInBatches(file, (batch) => dir.store.applyMany(batch));
  } finally {
    await dir.close();
  }
  const { loaded, changed, skipped } = counts;
  process.stderr.write(`loaded ${loaded} entries into the cluster (${changed} new or changed, ${skipped} deleted/intermediate skipped)\n`);
  return 0;
}

export async function runLoad(file: string | undefined, flags: ToolFlags): Promise<number> {
  if (!file) throw new Error('usage: mupdated load FILE|- [--data DIR | --etcd URL[,URL...]]');
  const config = toolConfig(flags);
  if (isCluster(config)) return loadIntoCluster(file, flags);
  const dataDir = config.dataDir;
  if (await serverRunning(dataDir)) {
    throw new Error(`a server is running on ${dataDir}; stop it before loading (its clients would not see the loaded entries)`);
  }
  // With a config file, the order the master started from it would require; without one, the folder's own.
  const load = await loadIntoFolderOnThread(file, dataDir, flags.config ? config.order : undefined);
  if (load.converted !== null) process.stderr.write(`directory converted to format 2: ${load.converted} entries\n`);
  const { loaded, changed, skipped } = load;
  process.stderr.write(`loaded ${loaded} entries (${changed} new or changed, ${skipped} deleted/intermediate skipped)\n`);
  return 0;
}
