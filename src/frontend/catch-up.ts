/**
 * The start-up correction of a frontend's sqlite database: brings the file
 * to the slave's copy by difference, without stopping the slave.
 *
 * The file's `N` rows are read a page at a time (by rowid), as plain text
 * where they are ASCII (far cheaper than a Buffer per column; a row with
 * other bytes is read again as bytes); then the copy is walked in chunks,
 * each chunk's differing rows written in one transaction with statements
 * that already know whether the row exists. The event loop runs between
 * pages and chunks, so the slave serves, follows its master and writes
 * changes meanwhile: a name changed since the correction began is left to
 * the queue of changes (its state there is newer than the snapshot's).
 */
import type Database from 'better-sqlite3';
import type { DirectoryStore, Entry } from '../store/types.js';
import { rowKeyText, rowValue, rowValueParts, sameRowValue } from './cyrus-row.js';

/** Rows read per page; rows written per transaction at most. */
const ROWS_PER_PAGE = 1_000;
const ROWS_PER_TRANSACTION = 2_000;
/** Work done per turn of the event loop before others are let in (ms). */
const TURN_MS = 10;

const NOT_ASCII = /[^\x00-\x7f]/;

/** What the correction needs of the mirror. */
export interface CatchUpTarget {
  readonly db: Database.Database;
  readonly table: string;
  /** A change of this row key has been queued since the correction began. */
  changedSince(key: string): boolean;
  closed(): boolean;
  /** Rows whose write failed, for the queue's retrying writer. */
  requeue(rows: Array<[string, Entry | null]>): void;
  /** Counts the rows written and deleted and the transactions committed. */
  counted(written: number, deleted: number): void;
}

/** The correction stopped because the mirror was closed. */
export class CatchUpAborted extends Error {}

interface StoredRows {
  /** Row key -> value (latin1), for keys with exactly one row. */
  values: Map<string, string>;
  /** Keys with more than one row (all are replaced by one). */
  duplicates: Set<string>;
  rows: number;
}

/** Lets the event loop run once the current turn has used its time. */
class Turns {
  private started = performance.now();
  constructor(private readonly target: CatchUpTarget) {}
  get due(): boolean {
    return performance.now() - this.started >= TURN_MS;
  }
  async next(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.target.closed()) throw new CatchUpAborted();
    this.started = performance.now();
  }
}

async function readStoredRows(target: CatchUpTarget, turns: Turns): Promise<StoredRows> {
  const { db, table } = target;
  const page = db
    .prepare(`SELECT rowid, dbkey, data FROM ${table} WHERE rowid > ? AND substr(dbkey, 1, 1) = 'N' ORDER BY rowid LIMIT ${ROWS_PER_PAGE}`)
    .raw(true);
  const asBytes = db.prepare(`SELECT CAST(dbkey AS BLOB), CAST(data AS BLOB) FROM ${table} WHERE rowid = ?`).raw(true);
  const out: StoredRows = { values: new Map(), duplicates: new Set(), rows: 0 };
  let after = 0;
  for (;;) {
    const rows = page.all(after) as Array<[number, unknown, unknown]>;
    for (const [rowid, k, d] of rows) {
      let key: string;
      let value: string;
      if (typeof k === 'string' && (typeof d === 'string' || d === null) && !NOT_ASCII.test(k) && (d === null || !NOT_ASCII.test(d))) {
        key = k;
        value = d ?? '';
      } else {
        const [kb, db2] = asBytes.get(rowid) as [Buffer, Buffer | null];
        key = kb.toString('latin1');
        value = db2 ? db2.toString('latin1') : '';
      }
      out.rows++;
      if (out.values.has(key) || out.duplicates.has(key)) {
        out.values.delete(key);
        out.duplicates.add(key);
      } else out.values.set(key, value);
    }
    if (rows.length < ROWS_PER_PAGE) return out;
    after = rows[rows.length - 1][0];
    if (turns.due) await turns.next();
  }
}

type Fix = [key: string, entry: Entry | null, rowsNow: 0 | 1 | 2];

function writeFixes(target: CatchUpTarget, fixes: Fix[], statements: ReturnType<typeof prepare>): void {
  if (fixes.length === 0) return;
  const mtime = Math.floor(Date.now() / 1000);
  let written = 0;
  let deleted = 0;
  try {
    target.db.transaction(() => {
      for (const [key, entry, rowsNow] of fixes) {
        // (a change queued meanwhile, even in this turn, is newer than the snapshot)
        if (target.changedSince(key)) continue;
        const k = Buffer.from(key, 'latin1');
        if (!entry || rowsNow === 2) deleted += statements.remove.run(k).changes;
        if (!entry) continue;
        const value = rowValue(entry, mtime);
        if (rowsNow === 1) statements.update.run(value, k);
        else statements.insert.run(k, value);
        written++;
      }
    })();
  } catch {
    target.requeue(fixes.filter(([key]) => !target.changedSince(key)).map(([key, entry]) => [key, entry]));
    return;
  }
  target.counted(written, deleted);
}

function prepare(db: Database.Database, table: string) {
  return {
    // Both columns hold TEXT (as Cyrus binds them): a BLOB never equals Cyrus's text key.
    update: db.prepare<[Buffer, Buffer]>(`UPDATE ${table} SET data = CAST(? AS TEXT) WHERE dbkey = CAST(? AS TEXT)`),
    insert: db.prepare<[Buffer, Buffer]>(`INSERT INTO ${table} (dbkey, data) VALUES (CAST(? AS TEXT), CAST(? AS TEXT))`),
    remove: db.prepare<[Buffer]>(`DELETE FROM ${table} WHERE dbkey = CAST(? AS TEXT)`),
  };
}

/**
 * Rows of names the copy lacks are deleted, rows that differ (the mtime
 * aside) rewritten, missing rows added; rows that are right are not
 * touched. Resolves with the rows found and the rows changed.
 */
export async function catchUpByDifference(target: CatchUpTarget, store: DirectoryStore): Promise<{ changed: number; rows: number }> {
  const statements = prepare(target.db, target.table);
  const turns = new Turns(target);
  const stored = await readStoredRows(target, turns);
  let changed = 0;
  let fixes: Fix[] = [];
  /** Writes what differs so far, then lets others in if this turn has run long enough. */
  const flush = async (force: boolean) => {
    if (!force && !turns.due && fixes.length < ROWS_PER_TRANSACTION) return;
    writeFixes(target, fixes, statements);
    changed += fixes.length;
    fixes = [];
    if (turns.due) await turns.next();
  };
  const snapshot = store.snapshot();
  try {
    const entries = snapshot.entries();
    let inChunk = 0;
    for (let step = entries.next(); !step.done; step = entries.next()) {
      // (the clock is read every 256 entries)
      const entry = step.value;
      const key = rowKeyText(entry.name.toString('latin1'));
      const have = stored.values.get(key);
      const duplicate = have === undefined && stored.duplicates.has(key);
      stored.values.delete(key);
      stored.duplicates.delete(key);
      if (have === undefined || !sameRowValue(have, rowValueParts(entry))) {
        if (!target.changedSince(key)) fixes.push([key, entry, duplicate ? 2 : have === undefined ? 0 : 1]);
      }
      if ((++inChunk & 255) === 0 || fixes.length >= ROWS_PER_TRANSACTION) await flush(false);
    }
  } finally {
    try {
      snapshot.close();
    } catch {
      /* the store closed first, at shutdown */
    }
  }
  // Rows of names the copy does not hold.
  for (const key of [...stored.values.keys(), ...stored.duplicates]) {
    if (target.changedSince(key)) continue;
    fixes.push([key, null, 1]);
    await flush(false);
  }
  await flush(true);
  return { changed, rows: stored.rows };
}
