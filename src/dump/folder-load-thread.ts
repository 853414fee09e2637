/** The thread that runs `mupdated load` into a data folder (folder-load.ts) and answers once. */
import { parentPort, workerData } from 'node:worker_threads';
import { loadIntoFolder, type FromFolderLoad } from './folder-load.js';
import { toThreadError } from './thread-error.js';
import type { DirectoryOrder } from '../store/types.js';

const { file, dataDir, order } = workerData as { file: string; dataDir: string; order?: DirectoryOrder };
const answer = (msg: FromFolderLoad) => parentPort!.postMessage(msg);

loadIntoFolder(file, dataDir, order).then(
  (load) => answer({ type: 'done', load }),
  (err: unknown) => answer({ type: 'failed', error: toThreadError(err) }),
);
