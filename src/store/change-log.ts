/**
 * The change log: every change appends a record (encodeLogRecord) under a
 * monotonically increasing sequence number, in the same transaction as the
 * change itself. meta `seq` is the last number given out; the log keeps the
 * last `retention` records. A cluster view's log takes the cluster's numbers,
 * with gaps between them; meta `logFrom` then says where it is complete.
 */
import type { Database, Transaction } from 'lmdb';
import { changeDigest, decodeRecord, encodeLogRecord } from './codec.js';
import type { Change, Entry } from './types.js';

/** Old records removed with each change at most (enough to catch up after the retention was lowered). */
const PRUNE_PER_CHANGE = 64;

export class ChangeLog {
  constructor(
    private readonly logDb: Database<Buffer, number>,
    private readonly metaDb: Database<unknown, string>,
    private readonly retention: number,
  ) {}

  /** The last sequence number given out (0 for a new directory). */
  get lastSeq(): number {
    return (this.metaDb.get('seq') as number | undefined) ?? 0;
  }

  /** Logs the next change and returns its number; inside a write transaction. */
  appendInTxn(name: Buffer, next: Entry | null): number {
    const seq = this.lastSeq + 1;
    this.logDb.putSync(seq, encodeLogRecord(name, next));
    if (seq > this.retention) this.pruneBelowInTxn(seq - this.retention + 1);
    this.metaDb.putSync('seq', seq);
    return seq;
  }

  /**
   * Removes records older than `keepFrom`, oldest first and a bounded number
   * per change, so the log stays one unbroken run: after the retention was
   * lowered the surplus goes over the next changes, never from the middle.
   */
  private pruneBelowInTxn(keepFrom: number): void {
    for (const k of this.logDb.getKeys({ end: keepFrom, limit: PRUNE_PER_CHANGE })) this.logDb.removeSync(k);
  }

  /** Logs a change numbered by a cluster (gaps allowed); does not move `seq` (setSeqInTxn). */
  putNumberedInTxn(seq: number, name: Buffer, next: Entry | null): void {
    this.logDb.putSync(seq, encodeLogRecord(name, next));
  }

  setSeqInTxn(seq: number): void {
    this.metaDb.putSync('seq', seq);
  }

  /**
   * A bulk load's batch: the log becomes the batch's last change alone, at
   * `seq` (earlier numbers are gone, so clients behind get a full dump).
   */
  keepOnlyInTxn(seq: number, last: Change): void {
    this.clearInTxn();
    this.logDb.putSync(seq, encodeLogRecord(last.name, last.entry));
    this.metaDb.putSync('seq', seq);
  }

  /** After a rebuild at `seq`: the log holds only the last change (for its digest) and is complete from `seq` on. */
  cutInTxn(seq: number, last: Change | undefined): void {
    this.clearInTxn();
    if (last) this.logDb.putSync(seq, encodeLogRecord(last.name, last.entry));
    this.metaDb.putSync('seq', Math.max(seq, this.lastSeq));
    this.metaDb.putSync('logFrom', seq);
  }

  /** Keeps a gapped log (numbers not consecutive) to `retention` records, a few at a time. */
  pruneGappedInTxn(): void {
    let count = this.logDb.getCount();
    if (count <= this.retention) return;
    let from: number | undefined;
    for (const k of this.logDb.getKeys({ limit: Math.min(count - this.retention, 256) })) {
      this.logDb.removeSync(k);
      from = k;
      count--;
    }
    if (from !== undefined) this.metaDb.putSync('logFrom', from);
  }

  private clearInTxn(): void {
    const logged: number[] = [];
    for (const k of this.logDb.getKeys()) logged.push(k);
    for (const k of logged) this.logDb.removeSync(k);
  }

  /** The sequence number a read transaction sees. */
  seqIn(txn: Transaction): number {
    return (this.metaDb.get('seq', { transaction: txn }) as number | undefined) ?? 0;
  }

  /** Digest of the logged change `at` as a read transaction sees it; null when not in the log. */
  digestIn(txn: Transaction, at: number): string | null {
    const raw = this.logDb.get(at, { transaction: txn });
    return raw ? changeDigest(raw) : null;
  }

  /**
   * Changes in (after, seq] as a read transaction sees them; null when the
   * log no longer holds them all (also when a hole was left by an older
   * version's pruning after the retention was lowered: every record is counted).
   */
  changesIn(txn: Transaction, after: number, seq: number): IterableIterator<Change> | null {
    if (after >= seq) return [][Symbol.iterator]();
    let first: number | undefined;
    for (const key of this.logDb.getKeys({ limit: 1, transaction: txn })) first = key;
    // The log no longer reaches back far enough (pruned, or a copy loaded without history).
    // A cluster view's log has gaps (see applyExternal): it says itself where it is complete.
    const logFrom = this.metaDb.get('logFrom', { transaction: txn }) as number | undefined;
    if (logFrom !== undefined ? after < logFrom : first === undefined || first > after + 1) return null;
    const logDb = this.logDb;
    if (logFrom === undefined && logDb.getCount({ start: after + 1, end: seq + 1, transaction: txn }) !== seq - after) return null;
    return (function* () {
      for (const { key, value } of logDb.getRange({ start: after + 1, end: seq + 1, transaction: txn })) {
        const { name, entry } = decodeRecord(value);
        yield { seq: key, name, entry, previous: null };
      }
    })();
  }
}
