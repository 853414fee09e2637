/**
 * `mupdated load` into an empty directory, stored compactly:
 * - names arriving in directory order after every stored name (a dump in
 *   this folder's order) are appended (MDB_APPEND: full pages, no search);
 * - changes are not logged one by one. Each change still takes its own
 *   sequence number, but the change log is cut to the batch's last change
 *   alone. The log stays a gapless run of real changes (its last one
 *   included, so a client that got the loaded directory as a full dump at
 *   that sequence number resumes from it); for any older sequence number
 *   changesSince() returns null, so clients behind get a full dump, which
 *   they would need anyway after a whole directory was loaded.
 * A directory that held entries, or that anything else wrote to since the
 * previous batch, gets plain applyMany batches.
 */
import type { ChangeLog } from './change-log.js';
import { sameEntry } from './codec.js';
import type { EntryTable } from './entry-table.js';
import { entryKey } from './order.js';
import type { BatchItem, Change } from './types.js';

/** One batch's outcome, from inside its transaction. */
export interface LoadedBatch {
  changes: Change[];
  /** Whether the batch was stored compactly (the load is still one into an empty directory). */
  loading: boolean;
  /** The last sequence number after the batch. */
  endSeq: number;
}

export class BulkLoad {
  /**
   * Undefined before the first batch, then the seq the last batch ended
   * with, null when not (or no longer) a load into an empty directory.
   */
  private loadSeq: number | null | undefined = undefined;

  constructor(
    private readonly entries: EntryTable,
    private readonly log: ChangeLog,
  ) {}

  /** False once batches are plain applyMany ones. */
  get compact(): boolean {
    return this.loadSeq !== null;
  }

  /** One batch's writes, inside its write transaction. */
  batchInTxn(items: BatchItem[]): LoadedBatch {
    const { entries, log } = this;
    const startSeq = log.lastSeq;
    const loading = this.loadSeq === undefined ? entries.isEmptyInTxn() : this.loadSeq === startSeq;
    if (!loading) return { changes: entries.applyInTxn(items), loading, endSeq: startSeq };
    const changes: Change[] = [];
    const keys = items.map((item) => entryKey(item.name, entries.order));
    let append = true;
    let last = entries.lastKeyInTxn();
    for (let i = 0; i < items.length && append; i++) {
      if (!items[i].entry) continue;
      if (last && Buffer.compare(keys[i], last) <= 0) append = false;
      last = keys[i]!;
    }
    let seq = startSeq;
    for (let i = 0; i < items.length; i++) {
      const { name, entry } = items[i];
      const key = keys[i];
      // Appended keys are all new; a deletion of a name that is not there changes nothing.
      const current = append ? null : entries.currentInTxn(key, name);
      if (sameEntry(current, entry)) continue;
      entries.putInTxn(key, current, entry, append);
      changes.push({ seq: ++seq, name, entry, previous: current });
    }
    if (seq !== startSeq) log.keepOnlyInTxn(seq, changes[changes.length - 1]);
    return { changes, loading, endSeq: seq };
  }

  /** After the batch committed. */
  committed(batch: LoadedBatch): void {
    this.loadSeq = batch.loading ? batch.endSeq : null;
  }
}
