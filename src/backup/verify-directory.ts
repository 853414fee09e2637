/**
 * `mupdated verify`, the entries of a format-2 directory: every key is the
 * key of the name it gives back, every value decodes and names a known
 * location, the interned-location tables are each other's inverse, and the
 * by-server index holds exactly one pair for each entry, under its server.
 * All reads in one read transaction: a server may be writing meanwhile.
 */
import type { Transaction } from 'lmdb';
import { decodeValue } from '../store/codec.js';
import { bucketOf } from '../store/lmdb-store.js';
import { KeyReader, entryKey } from '../store/order.js';
import type { DirectoryOrder, Entry } from '../store/types.js';
import type { DirectoryDatabases } from './folder-databases.js';
import { show, type Problems } from './problems.js';

export interface EntryCounts {
  entries: number;
  active: number;
  reserved: number;
  locations: number;
  indexPairs: number;
}

/** The state codes a value's first byte may carry (codec.ts), the inline-location flag aside. */
const STATE_CODES = new Set([1, 2]);

class UnknownLocation extends Error {}

/** Reads one format-2 entry by name or key, resolving interned locations from a table read at the start. */
export class EntryLookup {
  constructor(
    private readonly dbs: DirectoryDatabases,
    private readonly txn: Transaction,
    private readonly order: DirectoryOrder,
    private readonly locations: Map<number, Buffer>,
  ) {}

  /** The entry stored under `key` (undefined: none); throws UnknownLocation for a dangling id. */
  decode(name: Buffer, raw: Buffer): Entry {
    return decodeValue(name, raw, raw.length, (id) => {
      const location = this.locations.get(id);
      if (!location) throw new UnknownLocation(`refers to location #${id}, which the location table does not have`);
      return location;
    });
  }

  byKey(key: Buffer, name: Buffer): Entry | undefined {
    const raw = this.dbs.entries?.get(key, { transaction: this.txn });
    return raw ? this.decode(name, Buffer.from(raw)) : undefined;
  }

  byName(name: Buffer): Entry | undefined {
    return this.byKey(entryKey(name, this.order), name);
  }
}

/** Reads the location table, checking it against its reverse (location -> id). */
export function readLocations(dbs: DirectoryDatabases, txn: Transaction, problems: Problems): Map<number, Buffer> {
  const byId = new Map<number, Buffer>();
  if (!dbs.locations || !dbs.locationIds) {
    problems.add('the location tables (locations, location-ids) are missing');
    return byId;
  }
  for (const { key, value } of dbs.locations.getRange({ transaction: txn })) {
    const location = Buffer.from(value);
    byId.set(key, location);
    const back = dbs.locationIds.get(location, { transaction: txn });
    if (!back || back.length !== 4 || Buffer.from(back).readUInt32BE(0) !== key) {
      problems.add(`location #${key} (${show(location)}) is not found under its bytes in location-ids`);
    }
  }
  let reverse = 0;
  for (const _ of dbs.locationIds.getKeys({ transaction: txn })) reverse++;
  if (reverse !== byId.size) problems.add(`location-ids holds ${reverse} locations but locations holds ${byId.size}`);
  return byId;
}

/** What the checks below read from and report into. */
interface Walk {
  dbs: DirectoryDatabases;
  txn: Transaction;
  order: DirectoryOrder;
  lookup: EntryLookup;
  problems: Problems;
  counts: EntryCounts;
}

/** Every entry: key, value, location, and its pair in the by-server index. */
function checkEntries({ dbs, txn, order, lookup, problems, counts }: Walk): void {
  const names = new KeyReader(order);
  for (const { key, value } of dbs.entries!.getRange({ transaction: txn })) {
    const k = Buffer.from(key);
    const name = Buffer.from(names.name(k));
    if (!entryKey(name, order).equals(k)) {
      problems.add(`entry key ${k.toString('hex')} is not the key of the name it reads back as (${show(name)})`);
      continue;
    }
    const raw = Buffer.from(value);
    if (raw.length === 0 || !STATE_CODES.has(raw[0] & 0x7f)) {
      problems.add(`entry ${show(name)} has no valid state (first byte ${raw.length ? raw[0] : 'missing'})`);
      continue;
    }
    let entry: Entry;
    try {
      entry = lookup.decode(name, raw);
    } catch (err) {
      problems.add(`entry ${show(name)} cannot be read: ${(err as Error).message}`);
      continue;
    }
    counts.entries++;
    if (entry.state === 'active') counts.active++;
    else counts.reserved++;
    if (!dbs.byServer!.doesExist(bucketOf(entry.location), k, { transaction: txn })) {
      problems.add(`entry ${show(name)} (at ${show(entry.location)}) is missing from the by-server index`);
    }
  }
}

/** Every by-server pair: an entry exists under the key, and its location's server is the pair's. */
function checkIndex({ dbs, txn, order, lookup, problems, counts }: Walk): void {
  const names = new KeyReader(order);
  for (const { key: bucket, value } of dbs.byServer!.getRange({ transaction: txn })) {
    counts.indexPairs++;
    const k = Buffer.from(value);
    const name = Buffer.from(names.name(k));
    let entry: Entry | undefined;
    try {
      entry = lookup.byKey(k, name);
    } catch {
      continue; // said by checkEntries
    }
    if (!entry) {
      problems.add(`the by-server index lists ${show(name)} under ${show(bucket)}, but the directory has no such entry`);
    } else if (!bucketOf(entry.location).equals(Buffer.from(bucket))) {
      problems.add(`the by-server index lists ${show(name)} under ${show(bucket)}, but its location is ${show(entry.location)}`);
    }
  }
}

/** Checks the entries, locations and by-server index of a format-2 directory; returns their counts. */
export function checkDirectory(
  dbs: DirectoryDatabases,
  txn: Transaction,
  order: DirectoryOrder,
  problems: Problems,
): {
  counts: EntryCounts;
  lookup: EntryLookup;
} {
  const locations = readLocations(dbs, txn, problems);
  const lookup = new EntryLookup(dbs, txn, order, locations);
  const counts: EntryCounts = { entries: 0, active: 0, reserved: 0, locations: locations.size, indexPairs: 0 };
  if (!dbs.entries || !dbs.byServer) {
    problems.add('the entries or by-server databases are missing');
    return { counts, lookup };
  }
  const walk: Walk = { dbs, txn, order, lookup, problems, counts };
  checkEntries(walk);
  checkIndex(walk);
  return { counts, lookup };
}
