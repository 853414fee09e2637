/**
 * Feeds the records of a `ctl_mboxlist -d` dump to a directory in batches, as
 * `mupdated load` does. The dump is read a chunk at a time (dump-reader.ts:
 * no await per line or record), and the next batch is parsed while the
 * previous one commits; batches still reach the directory one after the
 * other, in dump order. A dump file is parsed on a thread of its own
 * (parse-worker.ts), standard input on this one.
 */
import { Worker } from 'node:worker_threads';
import type { BatchItem } from '../store/types.js';
import { DumpFormatError, DumpParser, type DumpRecord } from './cyrus-dump.js';
import { LineSplitter } from './dump-reader.js';
import { unpackBatch } from './packed-batch.js';
import type { FromParser, ToParser } from './parse-protocol.js';

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
 * Reads the dump from `input` and applies its entries `LOAD_BATCH` at a time;
 * `apply` answers how many changed. One batch is applied at a time: the next
 * is handed over only once the previous one has committed.
 */
export async function loadInBatches(
  input: AsyncIterable<Buffer | string>,
  apply: (batch: BatchItem[]) => Promise<number>,
): Promise<LoadCounts> {
  const counts: LoadCounts = { loaded: 0, changed: 0, skipped: 0 };
  const parser = new DumpParser();
  const records: DumpRecord[] = [];
  let batch: BatchItem[] = [];
  const ready: BatchItem[][] = [];
  const lines = new LineSplitter((line) => {
    parser.line(line, records);
    for (const record of records) {
      if (!record.entry) {
        counts.skipped++;
        continue;
      }
      batch.push({ name: record.name, entry: record.entry });
      if (batch.length >= LOAD_BATCH) {
        ready.push(batch);
        batch = [];
      }
    }
    records.length = 0;
  });
  let committing: Promise<void> = Promise.resolve();
  const handOver = async () => {
    while (ready.length > 0) {
      const next = ready.shift()!;
      await committing;
      committing = apply(next).then((changed) => {
        counts.changed += changed;
        counts.loaded += next.length;
      });
      // Keeps a failed commit from counting as unhandled before it is awaited.
      committing.catch(() => {});
    }
  };
  try {
    for await (const chunk of input) {
      lines.push(chunk);
      await handOver();
    }
    lines.end();
    parser.end();
    if (batch.length > 0) ready.push(batch);
    await handOver();
    await committing;
  } catch (err) {
    // A dump found bad mid-way: the batch under way ends before the caller closes the directory.
    await committing.catch(() => {});
    throw err;
  }
  return counts;
}

/** The parse thread's failure as the error it was: a bad dump stays a DumpFormatError, a missing file keeps its code. */
function parserError(msg: Extract<FromParser, { type: 'error' }>): Error {
  if (msg.name === 'DumpFormatError') return new DumpFormatError(msg.message);
  const err: NodeJS.ErrnoException = new Error(msg.message);
  if (msg.code !== undefined) err.code = msg.code;
  return err;
}

/** As loadInBatches, for a dump file parsed on its own thread while this one writes. */
export async function loadFileInBatches(path: string, apply: (batch: BatchItem[]) => Promise<number>): Promise<LoadCounts> {
  const counts: LoadCounts = { loaded: 0, changed: 0, skipped: 0 };
  const worker = new Worker(new URL('./parse-worker.js', import.meta.url), { workerData: { path, batchSize: LOAD_BATCH } });
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
          reject(parserError(msg));
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
