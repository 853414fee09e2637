/**
 * The directory on LMDB. Writes are group-committed by lmdb-js (all
 * transactions queued in one event turn share one commit) and, with
 * `overlappingSync: false`, a commit resolves only once it is on disk.
 * Every change also appends to a change log, in the same transaction, under
 * a monotonically increasing sequence number.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { changeDigest, decodeEntry, decodeRecord, encodeEntry, encodeLogRecord, sameEntry, viewRecord, type EntryView } from './codec.js';
import { MAX_NAME_BYTES, storageKey } from './order.js';
import {
  ConflictRefusal, StorageError, type BatchItem, type Change, type ConflictClaim, type ConflictRecord, type ConflictStatus, type TxnTools, type ChangeListener, type Decision, type DirectoryOrder,
  type DirectoryStore, type Entry, type ScanFilter, type Snapshot,
} from './types.js';

export interface LmdbStoreOptions {
  /** Required order; undefined accepts whatever the folder was created with (tools). */
  order?: DirectoryOrder | undefined;
  /** Refuse to create a new directory (tools that should only read or change an existing one). */
  mustExist?: boolean;
  /** How many change-log records to keep (older ones are pruned as new ones arrive). */
  changeLogRetention?: number | undefined;
}

const FORMAT = 1;

/** Views of the values of a range, filtered; one view object is reused for every entry. */
function* scanEntries(range: Iterable<{ value: Buffer }>, filter: ScanFilter | undefined): Generator<Entry> {
  const view: EntryView = { name: EMPTY, state: 'active', location: EMPTY, acl: EMPTY };
  const prefix = filter?.locationPrefix;
  const servers = filter?.servers;
  for (const { value } of range) {
    viewRecord(Buffer.isBuffer(value) ? value : Buffer.from((value as Uint8Array).buffer, (value as Uint8Array).byteOffset, (value as Uint8Array).byteLength), view);
    if (prefix && (view.location.length < prefix.length || prefix.compare(view.location, 0, prefix.length) !== 0)) continue;
    if (servers && !servers.has(serverOf(view.location))) continue;
    yield view;
  }
}

const EMPTY = Buffer.alloc(0);

function serverOf(location: Buffer): string {
  const bang = location.indexOf(0x21);
  return location.toString('latin1', 0, bang < 0 ? location.length : bang);
}

export class LmdbDirectoryStore implements DirectoryStore {
  private readonly listeners = new Set<ChangeListener>();
  /** Committed changes wait here until every earlier sequence number has been emitted. */
  private readonly unemitted = new Map<number, Change>();
  private nextEmit: number;
  private closed = false;

  private constructor(
    private readonly root: RootDatabase,
    private readonly entriesDb: Database<Buffer, Buffer>,
    private readonly logDb: Database<Buffer, number>,
    private readonly metaDb: Database<unknown, string>,
    private readonly conflictsDb: Database<ConflictRecord, number>,
    /** Open conflicts by claim (name + claimed location), so a repeated claim updates one record. */
    private readonly openClaimsDb: Database<number, Buffer>,
    readonly order: DirectoryOrder,
    private readonly retention: number,
  ) {
    this.nextEmit = this.lastSeq + 1;
  }

  static open(dir: string, options: LmdbStoreOptions): LmdbDirectoryStore {
    if (options.mustExist && !existsSync(`${dir}/directory.mdb`)) {
      throw new StorageError(`no directory in ${dir} (is --data right?)`);
    }
    mkdirSync(dir, { recursive: true });
    const root = open({ path: `${dir}/directory.mdb`, overlappingSync: false, maxDbs: 8, compression: false });
    const entriesDb = root.openDB<Buffer, Buffer>({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' });
    const logDb = root.openDB<Buffer, number>({ name: 'changes', encoding: 'binary' });
    const metaDb = root.openDB<unknown, string>({ name: 'meta' });
    const conflictsDb = root.openDB<ConflictRecord, number>({ name: 'conflicts' });
    const openClaimsDb = root.openDB<number, Buffer>({ name: 'open-claims', keyEncoding: 'binary' });
    const stored = metaDb.get('order') as DirectoryOrder | undefined;
    const order = options.order ?? stored ?? 'cyrus';
    if (stored === undefined) {
      metaDb.putSync('order', order);
      metaDb.putSync('format', FORMAT);
    } else if (stored !== order) {
      void root.close();
      throw new StorageError(
        `the data folder ${dir} keeps its directory in '${stored}' order, but '${order}' is configured; ` +
        `export with 'mupdated dump' and load into a fresh folder to change it`);
    }
    if (metaDb.get('dbid') === undefined) metaDb.putSync('dbid', randomUUID());
    return new LmdbDirectoryStore(root, entriesDb, logDb, metaDb, conflictsDb, openClaimsDb, order, options.changeLogRetention ?? 1_000_000);
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

  find(name: Buffer): Entry | undefined {
    // A name too long to be a key cannot be in the directory.
    if (name.length > MAX_NAME_BYTES) return undefined;
    const raw = this.entriesDb.get(storageKey(name, this.order));
    return raw ? decodeEntry(raw) : undefined;
  }

  async mutate<R>(name: Buffer, decide: (current: Entry | undefined, txn: TxnTools) => Decision<R>): Promise<R> {
    if (this.closed) throw new StorageError('the directory is closed');
    const key = storageKey(name, this.order);
    let change: Change | null = null;
    let result: R;
    try {
      result = await this.root.transaction(() => {
        change = null;
        const raw = this.entriesDb.get(key);
        const current = raw ? decodeEntry(raw) : undefined;
        const decision = decide(current, { recordConflict: (claim) => this.recordConflictInTxn(claim) });
        if (decision.kind === 'keep') return decision.result;
        change = this.writeInTxn(key, name, current ?? null, decision.kind === 'put' ? decision.entry : null);
        return decision.result;
      });
    } catch (err) {
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
    let change: Change | null = null;
    let closed: ConflictRecord | undefined;
    let refusal: string | null = null;
    try {
      // Never throw inside the callback: it shares its commit with other writers.
      await this.root.transaction(() => {
        change = null;
        refusal = null;
        const record = this.conflictsDb.get(id);
        if (!record) return void (refusal = `no conflict #${id}`);
        if (record.status !== 'open') return void (refusal = `conflict #${id} is already ${record.status}`);
        if (keep === 'claimant') {
          const key = storageKey(record.name, this.order);
          const raw = this.entriesDb.get(key);
          const current = raw ? decodeEntry(raw) : null;
          const next: Entry = { name: record.name, ...record.claimed };
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

  /** Writes one change and its log record; must run inside a write transaction. */
  private writeInTxn(key: Buffer, name: Buffer, previous: Entry | null, next: Entry | null): Change {
    const seq = ((this.metaDb.get('seq') as number | undefined) ?? 0) + 1;
    if (next) this.entriesDb.putSync(key, encodeEntry(next));
    else this.entriesDb.removeSync(key);
    this.logDb.putSync(seq, encodeLogRecord(name, next));
    if (seq > this.retention) this.logDb.removeSync(seq - this.retention);
    this.metaDb.putSync('seq', seq);
    return { seq, name, entry: next, previous };
  }

  async applyMany(items: BatchItem[], meta: Record<string, unknown> = {}): Promise<number> {
    if (this.closed) throw new StorageError('the directory is closed');
    let changes: Change[] = [];
    try {
      await this.root.transaction(() => {
        changes = [];
        for (const { name, entry } of items) {
          const key = storageKey(name, this.order);
          const raw = this.entriesDb.get(key);
          const current = raw ? decodeEntry(raw) : null;
          if (sameEntry(current, entry)) continue;
          changes.push(this.writeInTxn(key, name, current, entry));
        }
        for (const [k, v] of Object.entries(meta)) this.metaDb.putSync(`user:${k}`, v);
      });
    } catch (err) {
      throw new StorageError(`could not store the changes: ${(err as Error).message}`);
    }
    for (const c of changes) this.emitInOrder(c);
    return changes.length;
  }

  private emitInOrder(change: Change): void {
    this.unemitted.set(change.seq, change);
    for (let c = this.unemitted.get(this.nextEmit); c; c = this.unemitted.get(this.nextEmit)) {
      this.unemitted.delete(this.nextEmit);
      this.nextEmit++;
      for (const listener of this.listeners) listener(c);
    }
  }

  snapshot(): Snapshot {
    const txn = this.root.useReadTransaction();
    const seq = (this.metaDb.get('seq', { transaction: txn }) as number | undefined) ?? 0;
    const { entriesDb, logDb, order } = this;
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
        if (first === undefined || first > after + 1) return null;
        return (function* () {
          for (const { key, value } of logDb.getRange({ start: after + 1, end: seq + 1, transaction: txn })) {
            const { name, entry } = decodeRecord(value);
            yield { seq: key, name, entry, previous: null };
          }
        })();
      },
      *entries() {
        for (const { value } of entriesDb.getRange({ transaction: txn })) yield decodeEntry(value);
      },
      scan(filter?: ScanFilter) {
        return scanEntries(entriesDb.getRange({ transaction: txn }), filter);
      },
      find(name: Buffer) {
        if (name.length > MAX_NAME_BYTES) return undefined;
        const raw = entriesDb.get(storageKey(name, order), { transaction: txn });
        return raw ? decodeEntry(raw) : undefined;
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.close();
  }
}
