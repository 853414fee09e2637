/** Feeds the records of a `ctl_mboxlist -d` dump to a directory in batches, as `mupdated load` does. */
import type { BatchItem } from '../store/types.js';
import { parseDump } from './cyrus-dump.js';

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

/** Reads the dump's lines and applies its entries `LOAD_BATCH` at a time; `apply` answers how many changed. */
export async function loadInBatches(lines: AsyncIterable<string>, apply: (batch: BatchItem[]) => Promise<number>): Promise<LoadCounts> {
  const counts: LoadCounts = { loaded: 0, changed: 0, skipped: 0 };
  let batch: BatchItem[] = [];
  const flush = async () => {
    counts.changed += await apply(batch);
    counts.loaded += batch.length;
    batch = [];
  };
  for await (const record of parseDump(lines)) {
    if (!record.entry) {
      counts.skipped++;
      continue;
    }
    batch.push({ name: record.name, entry: record.entry });
    if (batch.length >= LOAD_BATCH) await flush();
  }
  await flush();
  return counts;
}
