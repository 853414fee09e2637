/**
 * Keeps a Cyrus frontend's mailboxes database (sqlite, `mboxlist_db: sql`)
 * equal to the slave's LMDB copy, in the rows a Cyrus slave would write
 * (see cyrus-row.ts). LMDB stays the slave's own state; this file follows
 * it: changes are queued as the store reports them (in commit order) and
 * written in one short transaction per batch. At start the file is brought
 * to the copy by difference (only rows that differ are touched; it is never
 * emptied). WAL mode, so Cyrus's lookups (which set no busy timeout) read
 * while we write.
 */
import Database from 'better-sqlite3';
import { chownSync, closeSync, existsSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import type { Change, DirectoryStore, Entry } from '../store/types.js';
import { catchUpByDifference } from './catch-up.js';
import { rowKeyText, rowValue, rowValueParts, sameRowValue } from './cyrus-row.js';

/** Cyrus's table for `mailboxes.db`, as its sql backend creates it. */
const TABLE = 'mailboxes_db';
/** Rows per write transaction: short enough that a writer of Cyrus's own waits little. */
const ROWS_PER_TRANSACTION = 5_000;
/** How long our writes wait for a lock another process holds. */
const BUSY_TIMEOUT_MS = 5_000;
const RETRY_DELAY_MS = 1_000;

export class FrontendDbError extends Error {}

export interface MirrorCounts {
  /** Rows written (inserted or replaced) since start. */
  written: number;
  /** Rows deleted since start. */
  deleted: number;
  /** Write transactions committed since start. */
  transactions: number;
}

export class SqliteMirror {
  /** Row key (latin1) -> the entry's latest state (null: remove the row), oldest change first. */
  private readonly pending = new Map<string, Entry | null>();
  private scheduled: NodeJS.Immediate | NodeJS.Timeout | null = null;
  private closed = false;
  /** While the start-up correction runs: row keys changed since it began (it leaves them to the queue). */
  private changedSinceCatchUp: Set<string> | null = null;
  readonly counts: MirrorCounts = { written: 0, deleted: 0, transactions: 0 };
  private readonly selectKey: Database.Statement<[Buffer], { data: Buffer }>;
  private readonly update: Database.Statement<[Buffer, Buffer]>;
  private readonly insert: Database.Statement<[Buffer, Buffer]>;
  private readonly remove: Database.Statement<[Buffer]>;

  private constructor(
    private readonly db: Database.Database,
    readonly file: string,
    private readonly log: Logger,
  ) {
    // Both columns hold TEXT (as Cyrus binds them): a BLOB never equals Cyrus's text key.
    this.selectKey = db.prepare(`SELECT CAST(data AS BLOB) AS data FROM ${TABLE} WHERE dbkey = CAST(? AS TEXT)`);
    this.update = db.prepare(`UPDATE ${TABLE} SET data = CAST(? AS TEXT) WHERE dbkey = CAST(? AS TEXT)`);
    this.insert = db.prepare(`INSERT INTO ${TABLE} (dbkey, data) VALUES (CAST(? AS TEXT), CAST(? AS TEXT))`);
    this.remove = db.prepare(`DELETE FROM ${TABLE} WHERE dbkey = CAST(? AS TEXT)`);
  }

  /**
   * Opens (or creates) the database file in WAL mode with Cyrus's table.
   * A new file is created 0600; when we run as root it is given to the owner
   * of its folder (the Cyrus user), and sqlite gives its -wal and -shm files
   * the same owner and mode.
   */
  static open(file: string, log: Logger): SqliteMirror {
    const created = !existsSync(file);
    if (created) {
      try {
        closeSync(openSync(file, 'wx', 0o600));
      } catch (err) {
        throw new FrontendDbError(`cannot create the frontend database ${file}: ${(err as Error).message}`);
      }
      if (process.getuid?.() === 0) {
        const folder = statSync(dirname(file));
        chownSync(file, folder.uid, folder.gid);
      }
    }
    let db: Database.Database;
    try {
      db = new Database(file, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
      if (String(mode).toLowerCase() !== 'wal') throw new FrontendDbError(`journal mode is ${mode}, not WAL`);
      db.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (dbkey BLOB NOT NULL, data BLOB)`);
      // Cyrus looks rows up by dbkey; without an index every lookup reads the whole table.
      db.exec(`CREATE INDEX IF NOT EXISTS mupdated_${TABLE}_dbkey ON ${TABLE} (dbkey)`);
    } catch (err) {
      if (err instanceof FrontendDbError) throw err;
      throw new FrontendDbError(`cannot open the frontend database ${file}: ${(err as Error).message}`);
    }
    log.info({ file, created }, 'frontend database open');
    return new SqliteMirror(db, file, log);
  }

  /**
   * Brings the file to the store's copy by difference (catch-up.ts): rows of
   * names the copy lacks are deleted, rows that differ (the mtime aside)
   * rewritten, missing rows added; rows that are already right are not
   * touched. Runs alongside the slave: call follow() first, so that every
   * change made meanwhile is queued and the correction leaves its name alone.
   */
  async catchUp(store: DirectoryStore): Promise<{ changed: number; rows: number }> {
    const changedSince = new Set<string>();
    this.changedSinceCatchUp = changedSince;
    const t0 = performance.now();
    try {
      const result = await catchUpByDifference(
        {
          db: this.db,
          table: TABLE,
          changedSince: (key) => changedSince.has(key),
          closed: () => this.closed,
          requeue: (rows) => {
            for (const [key, entry] of rows) if (!this.pending.has(key)) this.pending.set(key, entry);
            this.log.error({ file: this.file, backlog: this.pending.size }, 'cannot write the frontend database; retrying');
            this.schedule(RETRY_DELAY_MS);
          },
          counted: (written, deleted) => {
            this.counts.written += written;
            this.counts.deleted += deleted;
            this.counts.transactions++;
          },
        },
        store,
      );
      this.log.info({ ...result, ms: Math.round(performance.now() - t0) }, 'frontend database caught up with the local copy');
      return result;
    } finally {
      if (this.changedSinceCatchUp === changedSince) this.changedSinceCatchUp = null;
    }
  }

  /** Follows the store from now on: each reported change is queued, then written in the next batch. */
  follow(store: DirectoryStore): () => void {
    return store.subscribe((change) => this.enqueue(change));
  }

  private enqueue(change: Change): void {
    if (this.closed) return;
    const key = rowKeyText(change.name.toString('latin1'));
    this.changedSinceCatchUp?.add(key);
    // A later change of the same name replaces the earlier one: the batch writes final states.
    this.pending.delete(key);
    this.pending.set(key, change.entry);
    this.schedule(0);
  }

  /**
   * A background flush writes one transaction, then lets the event loop
   * serve others before the next (a whole directory arriving at once does
   * not stop the slave's own clients); a kick's flushNow writes all.
   */
  private schedule(delayMs: number): void {
    if (this.scheduled || this.closed) return;
    const step = () => {
      this.scheduled = null;
      if (this.writeBatch() && this.pending.size > 0) this.schedule(0);
    };
    this.scheduled = delayMs === 0 ? setImmediate(step) : setTimeout(step, delayMs);
  }

  /** Number of queued changes not yet in the file. */
  get backlog(): number {
    return this.pending.size;
  }

  /**
   * Writes every queued change now, in transactions of at most
   * ROWS_PER_TRANSACTION rows. Returns false when the file could not be
   * written (the changes stay queued and are retried).
   */
  flushNow(): boolean {
    while (this.pending.size > 0) if (!this.writeBatch()) return false;
    return true;
  }

  /** Writes the oldest queued changes (at most ROWS_PER_TRANSACTION) in one transaction. */
  private writeBatch(): boolean {
    if (this.closed) return false;
    const mtime = Math.floor(Date.now() / 1000);
    // Taken off the queue as they are read: iterating past deleted slots of a
    // Map again for every batch would make a million queued changes quadratic.
    const batch: Array<[string, Entry | null]> = [];
    for (const [key, entry] of this.pending) {
      batch.push([key, entry]);
      this.pending.delete(key);
      if (batch.length >= ROWS_PER_TRANSACTION) break;
    }
    try {
      // BEGIN IMMEDIATE: the write lock is taken (waiting out the busy timeout) before the first read.
      // A deferred transaction that reads first fails at once with SQLITE_BUSY when it must upgrade
      // while another process (a frontend's imapd) writes, without waiting.
      this.db
        .transaction(() => {
          for (const [key, entry] of batch) this.writeRow(Buffer.from(key, 'latin1'), entry, mtime);
        })
        .immediate();
    } catch (err) {
      // Back to the front of the queue, before any later change of the same names.
      const later = [...this.pending];
      this.pending.clear();
      for (const [key, entry] of batch) this.pending.set(key, entry);
      for (const [key, entry] of later) {
        this.pending.delete(key);
        this.pending.set(key, entry);
      }
      this.log.error(
        { err: (err as Error).message, file: this.file, backlog: this.pending.size },
        'cannot write the frontend database; retrying',
      );
      this.schedule(RETRY_DELAY_MS);
      return false;
    }
    this.counts.transactions++;
    return true;
  }

  private writeRow(key: Buffer, entry: Entry | null, mtime: number): void {
    if (!entry) {
      this.counts.deleted += this.remove.run(key).changes;
      return;
    }
    const existing = this.selectKey.all(key);
    if (existing.length === 1 && sameRowValue(existing[0].data?.toString('latin1') ?? '', rowValueParts(entry))) return;
    const value = rowValue(entry, mtime);
    if (existing.length > 1) this.remove.run(key);
    if (existing.length === 1) this.update.run(value, key);
    else this.insert.run(key, value);
    this.counts.written++;
  }

  /** Writes what is queued and closes the file (a WAL checkpoint happens on close). */
  close(): void {
    if (this.closed) return;
    this.flushNow();
    this.closed = true;
    if (this.scheduled) {
      clearTimeout(this.scheduled as NodeJS.Timeout);
      clearImmediate(this.scheduled as NodeJS.Immediate);
      this.scheduled = null;
    }
    this.db.close();
  }
}
