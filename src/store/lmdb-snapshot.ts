/**
 * Consistent read views of the directory (Snapshot): one LMDB read
 * transaction, its sequence number, its change log, and scans that read
 * entries where lmdb-js put them.
 */
import type { Transaction } from 'lmdb';
import { filterBucket, passes } from './by-server.js';
import type { ChangeLog } from './change-log.js';
import { ValueReader, decodeValue, type EntryView } from './codec.js';
import { FIRST_KEY, type Databases, type FastGet } from './lmdb-databases.js';
import { KeyReader, MAX_NAME_BYTES, entryKey } from './order.js';
import type { DirectoryOrder, Entry, ScanFilter, Snapshot } from './types.js';

const EMPTY = Buffer.alloc(0);

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
function* scanIn(dbs: Databases, order: DirectoryOrder, txn: Transaction, filter: ScanFilter | undefined): Generator<Entry> {
  const view: EntryView = { name: EMPTY, state: 'active', location: EMPTY, acl: EMPTY };
  const names = new KeyReader(order);
  const locations = dbs.locations;
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
    const entries = dbs.scanEntries as unknown as FastGet;
    for (const key of dbs.scanByServer.getValues(bucket, options)) {
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
  for (const { key, value } of dbs.scanEntries.getRange({ start: FIRST_KEY, transaction: txn })) {
    // The name first: a location not cached yet is read from the database, which reuses the key's memory.
    const name = names.name(key);
    values.read(value, value.length, view);
    if (!pass()) continue;
    view.name = name;
    yield view;
  }
}

/** A snapshot holding every commit made before the call. */
export function openSnapshot(dbs: Databases, order: DirectoryOrder, log: ChangeLog): Snapshot {
  // lmdb-js keeps one read transaction current until the end of the event turn; a
  // snapshot must hold every commit made before it was asked for, also commits of
  // another thread (dump workers) or made synchronously in this turn.
  dbs.root.resetReadTxn();
  const txn = dbs.root.useReadTransaction();
  const seq = log.seqIn(txn);
  const { scanEntries, locations } = dbs;
  const fast = scanEntries as unknown as FastGet;
  const locate = (id: number) => locations.committed(id, txn);
  let open = true;
  return {
    seq,
    changeDigest(at: number) {
      return log.digestIn(txn, at);
    },
    changesSince(after: number) {
      return log.changesIn(txn, after, seq);
    },
    *entries() {
      const names = new KeyReader(order);
      for (const { key, value } of scanEntries.getRange({ start: FIRST_KEY, transaction: txn })) {
        const name = Buffer.from(names.name(key));
        yield decodeValue(name, value, value.length, locate);
      }
    },
    scan(filter?: ScanFilter) {
      return scanIn(dbs, order, txn, filter);
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
