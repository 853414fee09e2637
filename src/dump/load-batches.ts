/**
 * Feeds the records of a `ctl_mboxlist -d` dump to a directory in batches, as
 * `mupdated load` does: the dump is read and parsed on a thread of its own
 * (parse-worker.ts) while this one writes.
 */
import { Worker } from 'node:worker_threads';
import type { BatchItem } from '../store/types.js';
import { unpackBatch } from './packed-batch.js';
import type { FromParser, ToParser } from './parse-protocol.js';
import { fromThreadError } from './thread-error.js';

export interface LoadCounts {
  /** Entries handed to the directory. */
  loaded: number;
  /** Of those, how many were new or changed (as `apply` counts them). */
  changed: number;
  /** Records with no entry (deleted or intermediate mailboxes), not loaded. */
  skipped: number;
}

/** How many entries go to the directory at once. */
export const LOAD_BATCH = 10_000;

/**
 * Reads the dump at `source` (a path, or `-` for standard input) on a thread
 * of its own and applies its entries `LOAD_BATCH` at a time while the next
 * batch is parsed; `apply` answers how many changed. One batch is applied at
 * a time, in dump order: the next is handed over once the previous committed.
 */
export async function loadInBatches(source: string, apply: (batch: BatchItem[]) => Promise<number>): Promise<LoadCounts> {
  const counts: LoadCounts = { loaded: 0, changed: 0, skipped: 0 };
  const worker = new Worker(new URL('./parse-worker.js', import.meta.url), { workerData: { source, batchSize: LOAD_BATCH } });
  const ack: ToParser = { type: 'ack' };
  // Batches are applied one after the other, in the order they came.
  let committing: Promise<void> = Promise.resolve();
  try {
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (msg: FromParser) => {
        if (msg.type === 'batch') {
          counts.skipped += msg.skipped;
          committing = committing.then(async () => {
            const items = unpackBatch(msg.data);
            counts.changed += await apply(items);
            counts.loaded += items.length;
            worker.postMessage(ack);
          });
          committing.catch(reject);
        } else if (msg.type === 'end') {
          counts.skipped += msg.skipped;
          committing.then(resolve, reject);
        } else {
          reject(fromThreadError(msg.error));
        }
      });
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`the dump parser stopped early (exit code ${code})`)));
    });
  } finally {
    // The caller closes the directory next: the batch under way ends first.
    await committing.catch(() => {});
    await worker.terminate();
  }
  return counts;
}
