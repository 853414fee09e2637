/**
 * The directory on LMDB: the DirectoryStore of a single master or slave, and
 * the local view of a cluster node (store/etcd). Writes are group-committed
 * (commits.ts); with `overlappingSync: false` a commit resolves only once it
 * is on disk. Every change also appends to the change log (change-log.ts), in
 * the same transaction. This class wires the parts, each in its own module:
 * opening and the storage format (lmdb-databases.ts, format-migration.ts),
 * entries and the by-server index (entry-table.ts), the conflict queue
 * (conflict-queue.ts), bulk load (bulk-load.ts), snapshots (lmdb-snapshot.ts)
 * and listeners told in order (listeners.ts).
 */
import type { Key, RootDatabase } from 'lmdb';
import { BulkLoad, type LoadedBatch } from './bulk-load.js';
import { ChangeLog } from './change-log.js';
import { sameEntry } from './codec.js';
import { Commits } from './commits.js';
import { ConflictQueue, type Closing } from './conflict-queue.js';
import { EntryTable } from './entry-table.js';
import { convertFormat1 } from './format-migration.js';
import { lmdbFileExists, openLmdb } from './lmdb-open.js';
import { openDatabases, FORMAT, type Databases } from './lmdb-databases.js';
import { openSnapshot } from './lmdb-snapshot.js';
import { OrderedEmitter, warnListenerFailure, type ListenerFailure } from './listeners.js';
import { entryKey } from './order.js';
import { makePrivateFolder } from './private-files.js';
import {
  ConflictRefusal,
  StorageError,
  type BatchItem,
  type Change,
  type ChangeListener,
  type ConflictClaim,
  type ConflictRecord,
  type ConflictStatus,
  type Decision,
  type DirectoryOrder,
  type DirectoryStore,
  type Entry,
  type Snapshot,
  type TxnTools,
} from './types.js';
import { InvalidWrite, checkBatch, checkEntry, nameProblem } from './validate.js';

export { bucketOf } from './by-server.js';
export { FORMAT } from './lmdb-databases.js';

export interface LmdbStoreOptions {
  /** Required order; undefined accepts whatever the folder was created with (tools). */
  order?: DirectoryOrder | undefined;
  /** Refuse to create a new directory (tools that should only read or change an existing one). */
  mustExist?: boolean;
  /**
   * Never write, not even at open: no new directory (implies mustExist), no format
   * conversion (a StorageError instead), every write method rejects. For readers of
   * a folder a server already has open (dump worker threads).
   */
  readOnly?: boolean;
  /** How many change-log records to keep (older ones are pruned as new ones arrive). */
  changeLogRetention?: number | undefined;
  /** Where a change listener's error is reported (default: a process warning); the change stays committed. */
  onListenerError?: ListenerFailure | undefined;
}

/**
 * A batch of a cluster view (store/etcd): the cluster numbers the changes,
 * and the view's change log takes those numbers, with gaps between them.
 */
export interface ExternalBatch {
  changes: Array<{ seq: number; name: Buffer; entry: Entry | null }>;
  /** A rebuild from a whole copy of the cluster at this number: the log is cut there (XRESUME from before it gets FULL). */
  rebuiltAt?: number;
  conflicts?: ConflictRecord[];
  /** The store's own meta keys (dbid, the view's revision). */
  meta?: Record<string, unknown>;
  userMeta?: Record<string, unknown>;
}

/** What open() converted: the format the folder was in and how many entries it held. */
export interface Conversion {
  from: number;
  entries: number;
}

export class LmdbDirectoryStore implements DirectoryStore {
  private closed = false;
  /** While releaseMapping() closes and reopens the file (never across an I/O event: see there). */
  private reopening = false;
  private openSnapshots = 0;
  // The parts on the open file, set by wire() (again when releaseMapping reopens it).
  private root!: RootDatabase;
  private dbs!: Databases;
  private metaDb!: Databases['meta'];
  /** Commit scheduling; `commits.interned` is set while one of this store's write bodies runs. */
  private commits!: Commits;
  private log!: ChangeLog;
  private entries!: EntryTable;
  private conflicts!: ConflictQueue;
  private bulk!: BulkLoad;
  private readonly emitter: OrderedEmitter;
  /** Set when open() converted the folder from an older format (for the caller to log). */
  converted: Conversion | null = null;

  private constructor(
    private readonly dir: string,
    dbs: Databases,
    readonly order: DirectoryOrder,
    private readonly retention: number,
    private readonly readOnly: boolean,
    listenerFailed: ListenerFailure,
  ) {
    this.wire(dbs);
    this.emitter = new OrderedEmitter(this.lastSeq + 1, listenerFailed);
  }

  private wire(dbs: Databases): void {
    this.dbs = dbs;
    this.root = dbs.root;
    this.metaDb = dbs.meta;
    this.commits = new Commits(dbs.root, dbs.locations);
    this.log = new ChangeLog(dbs.log, dbs.meta, this.retention);
    this.entries = new EntryTable(dbs, this.order, this.commits, this.log);
    this.conflicts = new ConflictQueue(dbs.conflicts, dbs.openClaims, dbs.meta);
    this.bulk = new BulkLoad(this.entries, this.log);
  }

  private static openRoot(dir: string): RootDatabase {
    return openLmdb<unknown, Key>(`${dir}/directory.mdb`, { overlappingSync: false, maxDbs: 12, compression: false });
  }

  static open(dir: string, options: LmdbStoreOptions): LmdbDirectoryStore {
    const readOnly = options.readOnly === true;
    if ((options.mustExist || readOnly) && !lmdbFileExists(`${dir}/directory.mdb`)) {
      throw new StorageError(`no directory in ${dir} (is --data right?)`);
    }
    if (!readOnly) makePrivateFolder(dir);
    const root = LmdbDirectoryStore.openRoot(dir);
    try {
      const { dbs, order, format } = openDatabases(root, dir, options.order, readOnly);
      const store = new LmdbDirectoryStore(
        dir,
        dbs,
        order,
        options.changeLogRetention ?? 1_000_000,
        readOnly,
        options.onListenerError ?? warnListenerFailure,
      );
      if (format === 1) store.convertFormat1(dir);
      if (!readOnly && store.conflicts.behind) store.commits.now(() => store.conflicts.catchUpInTxn());
      return store;
    } catch (err) {
      void root.close();
      throw err;
    }
  }

  /**
   * Closes the directory file and opens it again, which unmaps it: every page
   * a LIST, dump or write touched stops counting in the process's RSS (the
   * kernel's page cache keeps them, to take back when it needs the memory).
   * For an idle server (idle-trim.ts). False, with nothing done, while a
   * snapshot is open or a write is under way. The file is unmapped only once
   * no other thread of the process has it open (dump workers).
   *
   * Nothing else can run meanwhile: with no write pending, lmdb-js's close
   * settles within promise jobs, before any socket or timer event, and the
   * reopening is synchronous.
   */
  async releaseMapping(): Promise<boolean> {
    if (this.closed || this.reopening || this.openSnapshots > 0 || !this.commits.idle) return false;
    this.reopening = true;
    try {
      await this.root.close();
      const root = LmdbDirectoryStore.openRoot(this.dir);
      try {
        this.wire(openDatabases(root, this.dir, this.order, this.readOnly).dbs);
      } catch (err) {
        void root.close();
        throw err;
      }
    } catch (err) {
      this.closed = true;
      throw new StorageError(`could not reopen the directory file in ${this.dir}: ${(err as Error).message}`);
    } finally {
      this.reopening = false;
    }
    return true;
  }

  private convertFormat1(dir: string): void {
    try {
      this.converted = { from: 1, entries: convertFormat1(this.root, this.metaDb, this.commits, this.entries) };
    } catch (err) {
      throw new StorageError(
        `could not convert the directory in ${dir} to storage format ${FORMAT} (it is unchanged): ${(err as Error).message}`,
      );
    }
  }

  get id(): string {
    return this.metaDb.get('dbid') as string;
  }

  getMeta(key: string): unknown {
    return this.metaDb.get(`user:${key}`);
  }

  get lastSeq(): number {
    return this.log.lastSeq;
  }

  find(name: Buffer): Entry | undefined {
    return this.entries.find(name);
  }

  /** Reads and writes fail cleanly, rather than on a closed lmdb-js handle. */
  private usable(): void {
    if (this.closed) throw new StorageError('the directory is closed');
    if (this.reopening) throw new StorageError('the directory file is being reopened; try again');
  }

  private writable(): void {
    this.usable();
    if (this.readOnly) throw new StorageError('the directory was opened read-only');
  }

  /** Runs `body` in a durable write transaction, all or nothing (commits.ts). */
  private write<T>(body: () => T, writer?: object): Promise<T> {
    return this.commits.write(body, writer);
  }

  async mutate<R>(name: Buffer, decide: (current: Entry | undefined, txn: TxnTools) => Decision<R>, writer?: object): Promise<R> {
    this.writable();
    const problem = nameProblem(name);
    if (problem) throw new InvalidWrite(`cannot store this name: ${problem}`);
    const key = entryKey(name, this.order);
    const tools: TxnTools = { recordConflict: (claim) => this.conflicts.recordInTxn(claim) };
    let change: Change | null = null;
    let result: R;
    try {
      result = await this.write(() => {
        change = null;
        const current = this.entries.currentInTxn(key, name);
        const decision = decide(current ?? undefined, tools);
        if (decision.kind === 'keep') return decision.result;
        const next = decision.kind === 'put' ? decision.entry : null;
        // Refused here, the conflict a decision may have recorded is rolled back with the rest.
        checkEntry(name, next);
        change = this.entries.writeInTxn(key, name, current, next);
        return decision.result;
      }, writer);
    } catch (err) {
      if (err instanceof InvalidWrite) throw err;
      throw new StorageError(`could not store the change: ${(err as Error).message}`);
    }
    if (change) this.emitter.emit(change);
    return result;
  }

  listConflicts(status?: ConflictStatus): ConflictRecord[] {
    return this.conflicts.list(status);
  }

  openConflictCount(): number {
    return this.conflicts.openCount;
  }

  getConflict(id: number): ConflictRecord | undefined {
    return this.conflicts.get(id);
  }

  async closeConflict(id: number, keep: 'current' | 'claimant' | 'none', by: string): Promise<ConflictRecord> {
    this.writable();
    let closing: Closing | undefined;
    try {
      // A refusal is an answer, not a storage failure: returned before anything is written.
      await this.write(() => {
        closing = this.conflicts.closeInTxn(id, keep, by, this.entries);
      });
    } catch (err) {
      throw new StorageError(`could not close conflict #${id}: ${(err as Error).message}`);
    }
    const done = closing!;
    if (done.refusal !== null) throw new ConflictRefusal(done.refusal);
    if (done.change) this.emitter.emit(done.change);
    return done.closed;
  }

  async applyMany(items: BatchItem[], meta: Record<string, unknown> = {}): Promise<number> {
    this.writable();
    checkBatch(items, meta);
    let changes: Change[] = [];
    try {
      await this.write(() => {
        changes = this.entries.applyInTxn(items);
        for (const [k, v] of Object.entries(meta)) this.metaDb.putSync(`user:${k}`, v);
      });
    } catch (err) {
      throw new StorageError(`could not store the changes: ${(err as Error).message}`);
    }
    for (const c of changes) this.emitter.emit(c);
    return changes.length;
  }

  /**
   * One batch of `mupdated load`: the same changes as applyMany(items), but
   * stored compactly while the load is one into an empty directory (bulk-load.ts).
   */
  async loadMany(items: BatchItem[]): Promise<number> {
    if (!this.bulk.compact) return this.applyMany(items);
    this.writable();
    checkBatch(items);
    let batch: LoadedBatch | undefined;
    try {
      await this.write(() => {
        batch = this.bulk.batchInTxn(items);
      });
    } catch (err) {
      throw new StorageError(`could not store the changes: ${(err as Error).message}`);
    }
    const done = batch!;
    this.bulk.committed(done);
    for (const c of done.changes) this.emitter.emit(c);
    return done.changes.length;
  }

  snapshot(): Snapshot {
    this.usable();
    const snapshot = openSnapshot(this.dbs, this.order, this.log);
    this.openSnapshots++;
    let open = true;
    const close = snapshot.close.bind(snapshot);
    snapshot.close = () => {
      if (open) this.openSnapshots--;
      open = false;
      close();
    };
    return snapshot;
  }

  subscribe(listener: ChangeListener): () => void {
    return this.emitter.subscribe(listener);
  }

  /**
   * Writes a compacted copy of the directory file to `path` (no free pages).
   * A bulk load leaves thousands of freed pages behind, and LMDB then spends
   * milliseconds of every later commit reclaiming them.
   */
  async compactCopy(path: string): Promise<void> {
    await this.root.backup(path, true);
  }

  /**
   * A cluster view's write (see ExternalBatch): changes numbered by the
   * cluster, conflict records and meta keys as the cluster holds them, in
   * one durable transaction; listeners are told in batch order.
   */
  async applyExternal(batch: ExternalBatch): Promise<void> {
    this.writable();
    const changes: Change[] = [];
    try {
      await this.write(() => {
        changes.length = 0;
        for (const { seq, name, entry } of batch.changes) {
          const key = entryKey(name, this.order);
          const current = this.entries.currentInTxn(key, name);
          if (sameEntry(current, entry)) continue;
          this.entries.putInTxn(key, current, entry);
          if (batch.rebuiltAt === undefined) this.log.putNumberedInTxn(seq, name, entry);
          changes.push({ seq, name, entry, previous: current });
        }
        if (batch.rebuiltAt !== undefined) this.log.cutInTxn(batch.rebuiltAt, changes[changes.length - 1]);
        else if (changes.length) this.log.setSeqInTxn(changes[changes.length - 1].seq);
        for (const record of batch.conflicts ?? []) this.conflicts.putInTxn(record);
        for (const [k, v] of Object.entries(batch.meta ?? {})) this.metaDb.putSync(k, v);
        for (const [k, v] of Object.entries(batch.userMeta ?? {})) this.metaDb.putSync(`user:${k}`, v);
        this.log.pruneGappedInTxn();
      });
    } catch (err) {
      throw new StorageError(`could not store the changes: ${(err as Error).message}`);
    }
    for (const c of changes) this.emitter.emitNumbered(c);
  }

  /** The decision that still settles `claim` (decisions.ts); for a cluster store deciding on its view. */
  findDecision(claim: ConflictClaim): ConflictRecord | undefined {
    return this.conflicts.decisionFor(claim);
  }

  /** A meta key of this store's own (not the user: space); for a cluster view's bookkeeping. */
  getOwnMeta(key: string): unknown {
    return this.metaDb.get(key);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.close();
  }
}
