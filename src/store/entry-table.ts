/**
 * The entries and their by-server index: reading a name's entry and writing
 * a change to it (with its change-log record) inside the store's write
 * transactions (commits.ts).
 */
import { bucketOf } from './by-server.js';
import type { ChangeLog } from './change-log.js';
import { decodeValue, encodeValue, sameEntry } from './codec.js';
import type { Commits } from './commits.js';
import { asBuffer, type Databases, type FastGet } from './lmdb-databases.js';
import { MAX_NAME_BYTES, entryKey } from './order.js';
import type { BatchItem, Change, DirectoryOrder, Entry } from './types.js';

const APPEND = { append: true };

export class EntryTable {
  constructor(
    private readonly dbs: Databases,
    readonly order: DirectoryOrder,
    private readonly commits: Commits,
    private readonly log: ChangeLog,
  ) {}

  /** Resolves location ids: inside one of our write transactions without caching (it may not commit). */
  private readonly locate = (id: number): Buffer =>
    this.commits.interned ? this.dbs.locations.inWriteTxn(id) : this.dbs.locations.committed(id);

  /** A name's latest committed entry (or, inside a write transaction, its entry there). */
  find(name: Buffer): Entry | undefined {
    // A name too long to be a key cannot be in the directory.
    if (name.length > MAX_NAME_BYTES) return undefined;
    return this.currentInTxn(entryKey(name, this.order), name) ?? undefined;
  }

  /** The current entry of a key inside a write transaction. */
  currentInTxn(key: Buffer, name: Buffer): Entry | null {
    const raw = (this.dbs.entries as unknown as FastGet).getBinaryFast(key);
    return raw ? decodeValue(Buffer.from(name), raw, raw.length, this.locate) : null;
  }

  /**
   * Stores a name's new state (null: removes it) and keeps the by-server
   * index in step; `previous` must be what the key holds now. Must run inside
   * one of our write transactions. `append`: the key sorts after every key
   * in the directory (MDB_APPEND; a normal put if it does not).
   */
  putInTxn(key: Buffer, previous: Entry | null, next: Entry | null, append = false): void {
    const { entries, byServer, locations } = this.dbs;
    if (next) {
      const id = locations.intern(next.location, this.commits.interned!);
      const value = encodeValue(next.state, id, next.location, next.acl);
      // putSync answers false when the key does not sort last (lmdb-js types it void).
      if (!append || !(entries.putSync(key, value, APPEND) as unknown as boolean)) entries.putSync(key, value);
    } else {
      entries.removeSync(key);
    }
    const was = previous ? bucketOf(previous.location) : null;
    const now = next ? bucketOf(next.location) : null;
    if (was && now && was.equals(now)) return;
    if (was) byServer.removeSync(was, key);
    if (now) byServer.putSync(now, key);
  }

  /** Writes one change and its log record; must run inside one of our write transactions. */
  writeInTxn(key: Buffer, name: Buffer, previous: Entry | null, next: Entry | null): Change {
    this.putInTxn(key, previous, next);
    const seq = this.log.appendInTxn(name, next);
    return { seq, name, entry: next, previous };
  }

  /** A name's change to `next` unless it already holds that (null); inside a write transaction. */
  changeInTxn(name: Buffer, next: Entry | null): Change | null {
    const key = entryKey(name, this.order);
    const current = this.currentInTxn(key, name);
    return sameEntry(current, next) ? null : this.writeInTxn(key, name, current, next);
  }

  /** applyMany's writes, inside a write transaction. */
  applyInTxn(items: BatchItem[]): Change[] {
    const changes: Change[] = [];
    for (const { name, entry } of items) {
      const change = this.changeInTxn(name, entry);
      if (change) changes.push(change);
    }
    return changes;
  }

  isEmptyInTxn(): boolean {
    for (const _ of this.dbs.entries.getKeys({ limit: 1 })) return false;
    return true;
  }

  lastKeyInTxn(): Buffer | undefined {
    for (const key of this.dbs.entries.getKeys({ reverse: true, limit: 1 })) return asBuffer(key);
    return undefined;
  }
}
