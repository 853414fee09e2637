/**
 * The directory on LMDB. Writes are group-committed by lmdb-js (all
 * transactions queued in one event turn share one commit) and, with
 * `overlappingSync: false`, a commit resolves only once it is on disk.
 * Every change also appends to a change log, in the same transaction, under
 * a monotonically increasing sequence number.
 *
 * Format 2 (meta `format`), databases:
 * - `entries2`: entryKey(name) (order.ts: the sort key, the name can be read
 *   back from it) -> encodeValue (codec.ts: state, location id or inline
 *   location, ACL);
 * - `locations`, `location-ids`: interned locations (locations.ts);
 * - `by-server` (dupsort): server part of the location (bucketOf) -> the
 *   entry keys of that server's entries, so a dump for one server reads
 *   only its entries, in directory order;
 * - `changes`: seq -> encodeLogRecord (unchanged from format 1: slaves
 *   compute change digests over these bytes), `meta`, `conflicts`,
 *   `open-claims`.
 * Format 1 (`entries`: storageKey(name) -> encodeEntry) is converted when a
 * folder is opened for writing.
 */
import type { Database, DatabaseOptions, Key, RootDatabase, Transaction } from 'lmdb';
import { createHash, randomUUID } from 'node:crypto';
import { lmdbFileExists, openLmdb } from './lmdb-open.js';
import { makePrivateFolder } from './private-files.js';
import { changeDigest, decodeRecord, decodeValue, encodeLogRecord, encodeValue, sameEntry, ValueReader, type EntryView } from './codec.js';
import { Commits } from './commits.js';
import { tellListeners, warnListenerFailure, type ListenerFailure } from './listeners.js';
import { LocationTable } from './locations.js';
import { KeyReader, MAX_NAME_BYTES, entryKey } from './order.js';
import {
  ConflictRefusal, StorageError, type BatchItem, type Change, type ConflictClaim, type ConflictRecord, type ConflictStatus, type TxnTools, type ChangeListener, type Decision, type DirectoryOrder,
  type DirectoryStore, type Entry, type ScanFilter, type Snapshot,
} from './types.js';
import { InvalidWrite, checkBatch, checkEntry, nameProblem } from './validate.js';

export interface LmdbStoreOptions {
  /** Required order; undefined accepts whatever the folder was created with (tools). */
  order?: DirectoryOrder | undefined;
  /** Refuse to create a new directory (tools that should only read or change an existing one). */
  mustExist?: boolean;
  /**
   * Never write, not even at open: no new directory (implies mustExist), no
   * conversion of an older format (refused with a StorageError instead), and
   * every write method rejects. For readers of a folder a server already has
   * open (dump worker threads).
   */
  readOnly?: boolean;
  /** How many change-log records to keep (older ones are pruned as new ones arrive). */
  changeLogRetention?: number | undefined;
  /** Where a change listener's error is reported (default: a process warning); the change stays committed. */
  onListenerError?: ListenerFailure | undefined;
}

/** The storage format this code writes (meta `format`); older ones are converted at open, newer ones refused. */
export const FORMAT = 2;
const EMPTY = Buffer.alloc(0);
const APPEND = { append: true };

/** openDB options; `create: false` (open only what exists) is missing from lmdb-js's types. */
function dbOptions(name: string, o: object): DatabaseOptions & { name: string } {
  return { name, ...o } as DatabaseOptions & { name: string };
}

function asBuffer(raw: Uint8Array): Buffer {
  return Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** A by-server key: the server part itself, or for an empty or long one 0x00 + its SHA-256 (no real server part starts with 0x00). */
function serverBucket(server: Buffer): Buffer {
  if (server.length > 0 && server.length <= 255 && server[0] !== 0) return server;
  return Buffer.concat([Buffer.of(0), createHash('sha256').update(server).digest()]);
}

/** The by-server key of an entry: its server part (spec 4.3), the bytes before the first `!` or all of the location. Exported for tests. */
export function bucketOf(location: Buffer): Buffer {
  const bang = location.indexOf(0x21);
  return serverBucket(bang < 0 ? location : location.subarray(0, bang));
}

/**
 * The one by-server bucket that holds every entry a filter can pass, if
 * there is one: a single server, or a location prefix with a `!` (its server
 * part is fixed). The filter itself is still applied to every entry read.
 */
function filterBucket(filter: ScanFilter | undefined): Buffer | null {
  if (filter?.servers?.size === 1) {
    for (const server of filter.servers) return serverBucket(Buffer.from(server, 'latin1'));
  }
  const prefix = filter?.locationPrefix;
  if (prefix) {
    const bang = prefix.indexOf(0x21);
    if (bang >= 0) return serverBucket(prefix.subarray(0, bang));
  }
  return null;
}

function serverOf(location: Buffer): string {
  const bang = location.indexOf(0x21);
  return location.toString('latin1', 0, bang < 0 ? location.length : bang);
}

function passes(view: EntryView, prefix: Buffer | undefined, servers: ReadonlySet<string> | undefined): boolean {
  if (prefix && (view.location.length < prefix.length || prefix.compare(view.location, 0, prefix.length) !== 0)) return false;
  return !servers || servers.has(serverOf(view.location));
}

/**
 * lmdb-js's getBinaryFast (the value in its reusable buffer, valid until the
 * next read; `length` is the value's) takes get's options too; its types
 * leave them out.
 */
interface FastGet {
  getBinaryFast(key: Uint8Array, options?: { transaction: Transaction }): Buffer | undefined;
}

/** The first key of any range (LMDB has no empty keys); scan handles would start at 0x05 by default. */
const FIRST_KEY = Buffer.of(0);

/** Values as lmdb-js read them, in its reusable buffer (`length` set to the value's): no copy. For scan handles only. */
const RAW_VALUES = { encode: (v: Buffer) => v, decode: (b: Uint8Array) => b };

/**
 * Binary keys for scan handles: readKey gets keys in lmdb-js's key buffer
 * and returns a view of it, one per length and reused (valid until the next
 * read); writeKey also takes a value in lmdb-js's value buffer (whose
 * `length` is less than its memory's).
 */
function viewKeys(): { writeKey(key: Uint8Array, target: Uint8Array, start: number): number; readKey(src: Uint8Array, start: number, end: number): Uint8Array } {
  let source: Uint8Array | null = null;
  let views: Uint8Array[] = [];
  return {
    writeKey(key, target, start) {
      const n = key.length;
      if (n === key.byteLength) target.set(key, start);
      else for (let i = 0; i < n; i++) target[start + i] = key[i]!;
      return start + n;
    },
    readKey(src, start, end) {
      if (src !== source) {
        source = src;
        views = [];
      }
      if (start !== 32) return src.slice(start, end);
      return (views[end] ??= src.subarray(start, end));
    },
  };
}

interface Databases {
  root: RootDatabase;
  entries: Database<Buffer, Buffer>;
  byServer: Database<Buffer, Buffer>;
  /** The same two databases for scans: keys and values as transient views (viewKeys, RAW_VALUES). */
  scanEntries: Database<Uint8Array, Uint8Array>;
  scanByServer: Database<Uint8Array, Uint8Array>;
  log: Database<Buffer, number>;
  meta: Database<unknown, string>;
  conflicts: Database<ConflictRecord, number>;
  /** Open conflicts by claim (name + claimed location), so a repeated claim updates one record. */
  openClaims: Database<number, Buffer>;
  locations: LocationTable;
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
  private readonly listeners = new Set<ChangeListener>();
  /** Committed changes wait here until every earlier sequence number has been emitted. */
  private readonly unemitted = new Map<number, Change>();
  private nextEmit: number;
  private closed = false;
  private readonly root: RootDatabase;
  private readonly entriesDb: Database<Buffer, Buffer>;
  private readonly byServerDb: Database<Buffer, Buffer>;
  private readonly scanEntriesDb: Database<Uint8Array, Uint8Array>;
  private readonly scanByServerDb: Database<Uint8Array, Uint8Array>;
  private readonly logDb: Database<Buffer, number>;
  private readonly metaDb: Database<unknown, string>;
  private readonly conflictsDb: Database<ConflictRecord, number>;
  private readonly openClaimsDb: Database<number, Buffer>;
  private readonly locations: LocationTable;
  /** Commit scheduling; `commits.interned` is set while one of this store's write bodies runs. */
  private readonly commits: Commits;
  /**
   * A load into an empty directory (loadMany): undefined before the first
   * batch, then the seq the last batch ended with, null when not (or no
   * longer) such a load.
   */
  private loadSeq: number | null | undefined = undefined;
  /** Set when open() converted the folder from an older format (for the caller to log). */
  converted: Conversion | null = null;

  private constructor(
    dbs: Databases, readonly order: DirectoryOrder, private readonly retention: number, private readonly readOnly: boolean,
    private readonly listenerFailed: ListenerFailure,
  ) {
    this.root = dbs.root;
    this.entriesDb = dbs.entries;
    this.byServerDb = dbs.byServer;
    this.scanEntriesDb = dbs.scanEntries;
    this.scanByServerDb = dbs.scanByServer;
    this.logDb = dbs.log;
    this.metaDb = dbs.meta;
    this.conflictsDb = dbs.conflicts;
    this.openClaimsDb = dbs.openClaims;
    this.locations = dbs.locations;
    this.commits = new Commits(dbs.root, dbs.locations);
    this.nextEmit = this.lastSeq + 1;
  }

  static open(dir: string, options: LmdbStoreOptions): LmdbDirectoryStore {
    const readOnly = options.readOnly === true;
    if ((options.mustExist || readOnly) && !lmdbFileExists(`${dir}/directory.mdb`)) {
      throw new StorageError(`no directory in ${dir} (is --data right?)`);
    }
    if (!readOnly) makePrivateFolder(dir);
    const root = openLmdb<unknown, Key>(`${dir}/directory.mdb`, { overlappingSync: false, maxDbs: 12, compression: false });
    try {
      return LmdbDirectoryStore.setUp(root, dir, options, readOnly);
    } catch (err) {
      void root.close();
      throw err;
    }
  }

  private static setUp(root: RootDatabase, dir: string, options: LmdbStoreOptions, readOnly: boolean): LmdbDirectoryStore {
    // Read-only: open nothing that does not exist yet (creating a database is a write).
    const create = !readOnly;
    const missing = () => new StorageError(`no directory in ${dir} (is --data right?)`);
    const metaDb = root.openDB<unknown, string>(dbOptions('meta', { create }));
    if (!metaDb) throw missing();
    const stored = metaDb.get('order') as DirectoryOrder | undefined;
    const format = stored === undefined ? FORMAT : ((metaDb.get('format') as number | undefined) ?? 1);
    if (typeof format !== 'number' || !Number.isInteger(format) || format < 1 || format > FORMAT) {
      throw new StorageError(
        `the data folder ${dir} holds its directory in storage format ${String(format)}, which this version of mupdated ` +
        `does not know (it reads formats 1 to ${FORMAT}); use the newer mupdated that wrote it`);
    }
    const order = options.order ?? stored ?? 'cyrus';
    if (stored === undefined && readOnly) throw missing();
    if (stored !== undefined && stored !== order) {
      throw new StorageError(
        `the data folder ${dir} keeps its directory in '${stored}' order, but '${order}' is configured; ` +
        `export with 'mupdated dump' and load into a fresh folder to change it`);
    }
    if (format < FORMAT && readOnly) {
      throw new StorageError(
        `the data folder ${dir} holds its directory in storage format ${format}; it is converted to format ${FORMAT} ` +
        `when opened for writing (start the server on it first)`);
    }
    const db = <K extends Key, V>(name: string, o: object): Database<V, K> => {
      const opened = root.openDB<V, K>(dbOptions(name, { create, ...o }));
      if (!opened) throw missing();
      return opened;
    };
    const dbs: Databases = {
      root,
      entries: db<Buffer, Buffer>('entries2', { keyEncoding: 'binary', encoding: 'binary' }),
      byServer: db<Buffer, Buffer>('by-server', { keyEncoding: 'binary', encoding: 'binary', dupSort: true }),
      scanEntries: db<Uint8Array, Uint8Array>('entries2', { keyEncoder: viewKeys(), encoder: RAW_VALUES }),
      scanByServer: db<Uint8Array, Uint8Array>('by-server', { keyEncoding: 'binary', encoder: RAW_VALUES, dupSort: true }),
      log: db<number, Buffer>('changes', { encoding: 'binary' }),
      meta: metaDb,
      conflicts: db<number, ConflictRecord>('conflicts', {}),
      openClaims: db<Buffer, number>('open-claims', { keyEncoding: 'binary' }),
      locations: new LocationTable(
        db<number, Buffer>('locations', { keyEncoding: 'uint32', encoding: 'binary' }),
        db<Buffer, Buffer>('location-ids', { keyEncoding: 'binary', encoding: 'binary' })),
    };
    if (stored === undefined) {
      root.transactionSync(() => {
        metaDb.putSync('order', order);
        metaDb.putSync('format', FORMAT);
        if (metaDb.get('dbid') === undefined) metaDb.putSync('dbid', randomUUID());
      });
    } else if (!readOnly && metaDb.get('dbid') === undefined) {
      metaDb.putSync('dbid', randomUUID());
    }
    dbs.locations.load();
    const store = new LmdbDirectoryStore(dbs, order, options.changeLogRetention ?? 1_000_000, readOnly,
      options.onListenerError ?? warnListenerFailure);
    if (format === 1) {
      try {
        store.converted = { from: 1, entries: store.convertFormat1() };
      } catch (err) {
        throw new StorageError(`could not convert the directory in ${dir} to storage format ${FORMAT} (it is unchanged): ${(err as Error).message}`);
      }
    }
    return store;
  }

  /**
   * Rewrites a format-1 directory (`entries`: storageKey -> encodeEntry) as
   * format 2, in one transaction: entries, interned locations, the by-server
   * index, then drops `entries` and sets `format`. Format-1 key order is
   * format-2 key order (entryKey), so the new keys are appended. The change
   * log, sequence number, directory id and conflicts stay as they are.
   * Returns the number of entries.
   */
  private convertFormat1(): number {
    const old = this.root.openDB<Buffer, Buffer>(dbOptions('entries', { keyEncoding: 'binary', encoding: 'binary', create: false }));
    let n = 0;
    this.commits.now(() => {
      if (old) {
        for (const { value } of old.getRange()) {
          const { name, entry } = decodeRecord(asBuffer(value));
          if (!entry) continue;
          this.putInTxn(entryKey(name, this.order), null, entry, true);
          n++;
        }
        old.dropSync();
      }
      this.metaDb.putSync('format', FORMAT);
    });
    return n;
  }

  get id(): string {
    return this.metaDb.get('dbid') as string;
  }

  getMeta(key: string): unknown {
    return this.metaDb.get(`user:${key}`);
  }

  get lastSeq(): number {
    return (this.metaDb.get('seq') as number | undefined) ?? 0;
  }

  /** Resolves location ids: inside one of our write transactions without caching (it may not commit). */
  private readonly locate = (id: number): Buffer =>
    this.commits.interned ? this.locations.inWriteTxn(id) : this.locations.committed(id);

  find(name: Buffer): Entry | undefined {
    // A name too long to be a key cannot be in the directory.
    if (name.length > MAX_NAME_BYTES) return undefined;
    const raw = (this.entriesDb as unknown as FastGet).getBinaryFast(entryKey(name, this.order));
    return raw ? decodeValue(Buffer.from(name), raw, raw.length, this.locate) : undefined;
  }

  /** The current entry of a key inside a write transaction. */
  private currentInTxn(key: Buffer, name: Buffer): Entry | null {
    const raw = (this.entriesDb as unknown as FastGet).getBinaryFast(key);
    return raw ? decodeValue(Buffer.from(name), raw, raw.length, this.locate) : null;
  }

  private writable(): void {
    if (this.closed) throw new StorageError('the directory is closed');
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
    let change: Change | null = null;
    let result: R;
    try {
      result = await this.write(() => {
        change = null;
        const current = this.currentInTxn(key, name);
        const decision = decide(current ?? undefined, { recordConflict: (claim) => this.recordConflictInTxn(claim) });
        if (decision.kind === 'keep') return decision.result;
        const next = decision.kind === 'put' ? decision.entry : null;
        // Refused here, the conflict a decision may have recorded is rolled back with the rest.
        checkEntry(name, next);
        change = this.writeInTxn(key, name, current, next);
        return decision.result;
      }, writer);
    } catch (err) {
      if (err instanceof InvalidWrite) throw err;
      throw new StorageError(`could not store the change: ${(err as Error).message}`);
    }
    if (change) this.emitInOrder(change);
    return result;
  }

  /** Name plus a digest of the claimed location: any location fits in a key. */
  private static claimKey(name: Buffer, location: Buffer): Buffer {
    return Buffer.concat([name, Buffer.of(0), createHash('sha256').update(location).digest()]);
  }

  private recordConflictInTxn(claim: ConflictClaim): ConflictRecord {
    const now = new Date().toISOString();
    const claimKey = LmdbDirectoryStore.claimKey(claim.name, claim.claimed.location);
    const existingId = this.openClaimsDb.get(claimKey);
    const existing = existingId === undefined ? undefined : this.conflictsDb.get(existingId);
    let record: ConflictRecord;
    if (existing && existing.status === 'open') {
      record = { ...existing, ...claim, id: existing.id, status: 'open', firstSeen: existing.firstSeen, lastSeen: now, count: existing.count + 1 };
    } else {
      const id = ((this.metaDb.get('conflictSeq') as number | undefined) ?? 0) + 1;
      this.metaDb.putSync('conflictSeq', id);
      record = { ...claim, id, status: 'open', firstSeen: now, lastSeen: now, count: 1 };
      this.openClaimsDb.putSync(claimKey, id);
    }
    this.conflictsDb.putSync(record.id, record);
    return record;
  }

  listConflicts(status?: ConflictStatus): ConflictRecord[] {
    const out: ConflictRecord[] = [];
    for (const { value } of this.conflictsDb.getRange()) if (!status || value.status === status) out.push(value);
    return out;
  }

  getConflict(id: number): ConflictRecord | undefined {
    return this.conflictsDb.get(id);
  }

  async closeConflict(id: number, keep: 'current' | 'claimant' | 'none', by: string): Promise<ConflictRecord> {
    this.writable();
    let change: Change | null = null;
    let closed: ConflictRecord | undefined;
    let refusal: string | null = null;
    try {
      // A refusal is an answer, not a storage failure: returned before anything is written.
      await this.write(() => {
        change = null;
        refusal = null;
        const record = this.conflictsDb.get(id);
        if (!record) return void (refusal = `no conflict #${id}`);
        if (record.status !== 'open') return void (refusal = `conflict #${id} is already ${record.status}`);
        if (keep === 'claimant') {
          const key = entryKey(record.name, this.order);
          const current = this.currentInTxn(key, record.name);
          const next: Entry = { name: record.name, ...record.claimed };
          checkEntry(record.name, next);
          if (!sameEntry(current, next)) change = this.writeInTxn(key, record.name, current, next);
        }
        closed = {
          ...record, status: keep === 'none' ? 'dismissed' : 'resolved',
          resolution: { keep, at: new Date().toISOString(), by },
        };
        this.conflictsDb.putSync(id, closed);
        this.openClaimsDb.removeSync(LmdbDirectoryStore.claimKey(record.name, record.claimed.location));
      });
    } catch (err) {
      throw new StorageError(`could not close conflict #${id}: ${(err as Error).message}`);
    }
    if (refusal) throw new ConflictRefusal(refusal);
    if (change) this.emitInOrder(change);
    return closed!;
  }

  /**
   * Stores a name's new state (null: removes it) and keeps the by-server
   * index in step; `previous` must be what the key holds now. Must run inside
   * one of our write transactions. `append`: the key sorts after every key
   * in the directory (MDB_APPEND; a normal put if it does not).
   */
  private putInTxn(key: Buffer, previous: Entry | null, next: Entry | null, append = false): void {
    if (next) {
      const id = this.locations.intern(next.location, this.commits.interned!);
      const value = encodeValue(next.state, id, next.location, next.acl);
      // putSync answers false when the key does not sort last (lmdb-js types it void).
      if (!append || !(this.entriesDb.putSync(key, value, APPEND) as unknown as boolean)) this.entriesDb.putSync(key, value);
    } else {
      this.entriesDb.removeSync(key);
    }
    const was = previous ? bucketOf(previous.location) : null;
    const now = next ? bucketOf(next.location) : null;
    if (was && now && was.equals(now)) return;
    if (was) this.byServerDb.removeSync(was, key);
    if (now) this.byServerDb.putSync(now, key);
  }

  /** Writes one change and its log record; must run inside one of our write transactions. */
  private writeInTxn(key: Buffer, name: Buffer, previous: Entry | null, next: Entry | null): Change {
    const seq = ((this.metaDb.get('seq') as number | undefined) ?? 0) + 1;
    this.putInTxn(key, previous, next);
    this.logDb.putSync(seq, encodeLogRecord(name, next));
    if (seq > this.retention) this.logDb.removeSync(seq - this.retention);
    this.metaDb.putSync('seq', seq);
    return { seq, name, entry: next, previous };
  }

  /** applyMany's writes, inside a write transaction. */
  private applyInTxn(items: BatchItem[]): Change[] {
    const changes: Change[] = [];
    for (const { name, entry } of items) {
      const key = entryKey(name, this.order);
      const current = this.currentInTxn(key, name);
      if (sameEntry(current, entry)) continue;
      changes.push(this.writeInTxn(key, name, current, entry));
    }
    return changes;
  }

  async applyMany(items: BatchItem[], meta: Record<string, unknown> = {}): Promise<number> {
    this.writable();
    checkBatch(items, meta);
    let changes: Change[] = [];
    try {
      await this.write(() => {
        changes = this.applyInTxn(items);
        for (const [k, v] of Object.entries(meta)) this.metaDb.putSync(`user:${k}`, v);
      });
    } catch (err) {
      throw new StorageError(`could not store the changes: ${(err as Error).message}`);
    }
    for (const c of changes) this.emitInOrder(c);
    return changes.length;
  }

  /**
   * One batch of `mupdated load`: the same changes as applyMany(items), but
   * when the load began in an empty directory (and nothing else has written
   * since its previous batch), stored compactly:
   * - names arriving in directory order after every stored name (a dump in
   *   this folder's order) are appended (MDB_APPEND: full pages, no search);
   * - changes are not logged one by one. Each change still takes its own
   *   sequence number, but the change log is cut to the batch's last change
   *   alone. The log stays a gapless run of real changes (its last one
   *   included, so a client that got the loaded directory as a full dump at
   *   that sequence number resumes from it); for any older sequence number
   *   changesSince() returns null, so clients behind get a full dump, which
   *   they would need anyway after a whole directory was loaded.
   * Otherwise (a directory that held entries) exactly applyMany.
   */
  async loadMany(items: BatchItem[]): Promise<number> {
    if (this.loadSeq === null) return this.applyMany(items);
    this.writable();
    checkBatch(items);
    let changes: Change[] = [];
    let loading = false;
    let endSeq = 0;
    try {
      await this.write(() => {
        const startSeq = (this.metaDb.get('seq') as number | undefined) ?? 0;
        loading = this.loadSeq === undefined ? this.isEmptyInTxn() : this.loadSeq === startSeq;
        endSeq = startSeq;
        if (!loading) {
          changes = this.applyInTxn(items);
          return;
        }
        changes = [];
        const keys = items.map((item) => entryKey(item.name, this.order));
        let append = true;
        let last = this.lastKeyInTxn();
        for (let i = 0; i < items.length && append; i++) {
          if (!items[i]!.entry) continue;
          if (last && Buffer.compare(keys[i]!, last) <= 0) append = false;
          last = keys[i]!;
        }
        let seq = startSeq;
        for (let i = 0; i < items.length; i++) {
          const { name, entry } = items[i]!;
          const key = keys[i]!;
          // Appended keys are all new; a deletion of a name that is not there changes nothing.
          const current = append ? null : this.currentInTxn(key, name);
          if (sameEntry(current, entry)) continue;
          this.putInTxn(key, current, entry, append);
          changes.push({ seq: ++seq, name, entry, previous: current });
        }
        if (seq === startSeq) return;
        const logged: number[] = [];
        for (const k of this.logDb.getKeys()) logged.push(k);
        for (const k of logged) this.logDb.removeSync(k);
        const lastChange = changes[changes.length - 1]!;
        this.logDb.putSync(seq, encodeLogRecord(lastChange.name, lastChange.entry));
        this.metaDb.putSync('seq', seq);
        endSeq = seq;
      });
    } catch (err) {
      throw new StorageError(`could not store the changes: ${(err as Error).message}`);
    }
    this.loadSeq = loading ? endSeq : null;
    for (const c of changes) this.emitInOrder(c);
    return changes.length;
  }

  private isEmptyInTxn(): boolean {
    for (const _ of this.entriesDb.getKeys({ limit: 1 })) return false;
    return true;
  }

  private lastKeyInTxn(): Buffer | undefined {
    for (const key of this.entriesDb.getKeys({ reverse: true, limit: 1 })) return asBuffer(key);
    return undefined;
  }

  private emitInOrder(change: Change): void {
    this.unemitted.set(change.seq, change);
    for (let c = this.unemitted.get(this.nextEmit); c; c = this.unemitted.get(this.nextEmit)) {
      this.unemitted.delete(this.nextEmit);
      this.nextEmit++;
      tellListeners(this.listeners, c, this.listenerFailed);
    }
  }

  /**
   * Entries of a read transaction that pass `filter`, in directory order, as
   * one reused view that allocates nothing per entry: the name read back
   * from the key (KeyReader), state, location and ACL from the value
   * (ValueReader), both read where lmdb-js put them (scan handles). With a
   * filter naming one server, the by-server index gives that server's keys
   * in key order, which is directory order, and each entry is fetched by
   * key; otherwise all entries are read in order. The filter is applied to
   * every entry, and decided once per interned location.
   */
  private *scanIn(txn: Transaction, filter: ScanFilter | undefined): Generator<Entry> {
    const view: EntryView = { name: EMPTY, state: 'active', location: EMPTY, acl: EMPTY };
    const names = new KeyReader(this.order);
    const locations = this.locations;
    const values = new ValueReader((id) => locations.committed(id, txn));
    const prefix = filter?.locationPrefix;
    const servers = filter?.servers;
    const all = !prefix && !servers;
    const passById: (boolean | undefined)[] = [];
    const pass = (): boolean => {
      if (all) return true;
      const id = values.locationId;
      return id === 0 ? passes(view, prefix, servers) : (passById[id] ??= passes(view, prefix, servers));
    };
    const bucket = filterBucket(filter);
    const options = { transaction: txn };
    if (bucket) {
      const entries = this.scanEntriesDb as unknown as FastGet;
      for (const key of this.scanByServerDb.getValues(bucket, options)) {
        // The key is in lmdb-js's value buffer, which the fetch reuses: read the name first.
        const name = names.name(key);
        const raw = entries.getBinaryFast(key, options);
        if (!raw) continue;
        values.read(raw, raw.length, view);
        if (!pass()) continue;
        view.name = name;
        yield view;
      }
      return;
    }
    for (const { key, value } of this.scanEntriesDb.getRange({ start: FIRST_KEY, transaction: txn })) {
      // The name first: a location not cached yet is read from the database, which reuses the key's memory.
      const name = names.name(key);
      values.read(value, value.length, view);
      if (!pass()) continue;
      view.name = name;
      yield view;
    }
  }

  snapshot(): Snapshot {
    // lmdb-js keeps one read transaction current until the end of the event turn; a
    // snapshot must hold every commit made before it was asked for, also commits of
    // another thread (dump workers) or made synchronously in this turn.
    this.root.resetReadTxn();
    const txn = this.root.useReadTransaction();
    const seq = (this.metaDb.get('seq', { transaction: txn }) as number | undefined) ?? 0;
    const { scanEntriesDb, logDb, metaDb, order, locations } = this;
    const fast = this.scanEntriesDb as unknown as FastGet;
    const locate = (id: number) => locations.committed(id, txn);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the snapshot's methods read through the store
    const store = this;
    let open = true;
    return {
      seq,
      changeDigest(at: number) {
        const raw = logDb.get(at, { transaction: txn });
        return raw ? changeDigest(raw) : null;
      },
      changesSince(after: number) {
        if (after >= seq) return [][Symbol.iterator]();
        let first: number | undefined;
        for (const key of logDb.getKeys({ limit: 1, transaction: txn })) first = key;
        // The log no longer reaches back far enough (pruned, or a copy loaded without history).
        // A cluster view's log has gaps (see applyExternal): it says itself where it is complete.
        const logFrom = metaDb.get('logFrom', { transaction: txn }) as number | undefined;
        if (logFrom !== undefined ? after < logFrom : first === undefined || first > after + 1) return null;
        return (function* () {
          for (const { key, value } of logDb.getRange({ start: after + 1, end: seq + 1, transaction: txn })) {
            const { name, entry } = decodeRecord(value);
            yield { seq: key, name, entry, previous: null };
          }
        })();
      },
      *entries() {
        const names = new KeyReader(order);
        for (const { key, value } of scanEntriesDb.getRange({ start: FIRST_KEY, transaction: txn })) {
          const name = Buffer.from(names.name(key));
          yield decodeValue(name, value, value.length, locate);
        }
      },
      scan(filter?: ScanFilter) {
        return store.scanIn(txn, filter);
      },
      find(name: Buffer) {
        if (name.length > MAX_NAME_BYTES) return undefined;
        const raw = fast.getBinaryFast(entryKey(name, order), { transaction: txn });
        return raw ? decodeValue(Buffer.from(name), raw, raw.length, locate) : undefined;
      },
      close() {
        if (open) txn.done();
        open = false;
      },
    };
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
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
          const current = this.currentInTxn(key, name);
          if (sameEntry(current, entry)) continue;
          this.putInTxn(key, current, entry);
          if (batch.rebuiltAt === undefined) this.logDb.putSync(seq, encodeLogRecord(name, entry));
          changes.push({ seq, name, entry, previous: current });
        }
        if (batch.rebuiltAt !== undefined) this.cutLogInTxn(batch.rebuiltAt, changes[changes.length - 1]);
        else if (changes.length) this.metaDb.putSync('seq', changes[changes.length - 1]!.seq);
        for (const record of batch.conflicts ?? []) this.conflictsDb.putSync(record.id, record);
        for (const [k, v] of Object.entries(batch.meta ?? {})) this.metaDb.putSync(k, v);
        for (const [k, v] of Object.entries(batch.userMeta ?? {})) this.metaDb.putSync(`user:${k}`, v);
        this.pruneGappedLogInTxn();
      });
    } catch (err) {
      throw new StorageError(`could not store the changes: ${(err as Error).message}`);
    }
    for (const c of changes) {
      this.nextEmit = c.seq;
      this.emitInOrder(c);
    }
  }

  /** After a rebuild at `seq`: the log holds only the last change (for its digest) and is complete from `seq` on. */
  private cutLogInTxn(seq: number, last: Change | undefined): void {
    const logged: number[] = [];
    for (const k of this.logDb.getKeys()) logged.push(k);
    for (const k of logged) this.logDb.removeSync(k);
    if (last) this.logDb.putSync(seq, encodeLogRecord(last.name, last.entry));
    this.metaDb.putSync('seq', Math.max(seq, this.lastSeq));
    this.metaDb.putSync('logFrom', seq);
  }

  /** Keeps a gapped log (numbers not consecutive) to `retention` records, a few at a time. */
  private pruneGappedLogInTxn(): void {
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
