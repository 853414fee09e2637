/**
 * Interned locations (format 2). A directory has few distinct locations
 * (`server!partition`), so an entry stores a small id instead of the bytes:
 * `locations` maps id -> location, `location-ids` location -> id (the
 * location bytes are the key: only locations of at most 255 bytes are
 * interned, so no digest is needed). Both are cached in memory.
 *
 * Ids are never reused and never deleted, even when no entry uses them any
 * more: deleting would need a reference count updated with every entry
 * write, and a reused id would change the meaning of entries that readers
 * (dump workers, old snapshots) still hold. That is bounded because
 * locations are client-controlled only up to a cap: at most
 * MAX_INTERNED_LOCATIONS ids of at most MAX_INTERNED_LOCATION_BYTES bytes
 * each (under 30 MB on disk and in memory in the worst case, a few hundred
 * bytes in practice). Any other location is stored inline in its entry.
 *
 * The cache holds only committed ids: ids interned inside a write
 * transaction become known once it has committed (a failed commit leaves
 * nothing behind). The databases are the truth; a miss reads them.
 */
import type { Database, Transaction } from 'lmdb';
import { StorageError } from './types.js';

export const MAX_INTERNED_LOCATION_BYTES = 255;
export const MAX_INTERNED_LOCATIONS = 100_000;

/** Locations one write transaction interned (latin1 location -> id), for the cache after its commit. */
export type Interned = Map<string, number>;

function idBytes(id: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(id, 0);
  return b;
}

export class LocationTable {
  private readonly byId: (Buffer | undefined)[] = [];
  private readonly ids = new Map<string, number>();

  constructor(
    private readonly forward: Database<Buffer, number>,
    private readonly reverse: Database<Buffer, Buffer>,
  ) {}

  /** Reads every committed location into the cache (at open). */
  load(transaction?: Transaction): void {
    for (const { key, value } of this.forward.getRange(transaction ? { transaction } : {})) this.remember(key, Buffer.from(value));
  }

  get size(): number {
    return this.ids.size;
  }

  private remember(id: number, location: Buffer): Buffer {
    this.byId[id] = location;
    this.ids.set(location.toString('latin1'), id);
    return location;
  }

  /**
   * The location of an id in committed data (a snapshot's read transaction,
   * or the latest commit outside any write transaction); cached.
   */
  committed(id: number, transaction?: Transaction): Buffer {
    const hit = this.byId[id];
    if (hit) return hit;
    const raw = this.forward.get(id, transaction ? { transaction } : undefined);
    if (!raw) throw new StorageError(`the directory refers to an unknown location #${id}`);
    return this.remember(id, Buffer.from(raw));
  }

  /** The location of an id as the current write transaction sees it; not cached (the transaction may not commit). */
  inWriteTxn(id: number): Buffer {
    const hit = this.byId[id];
    if (hit) return hit;
    const raw = this.forward.get(id);
    if (!raw) throw new StorageError(`the directory refers to an unknown location #${id}`);
    return Buffer.from(raw);
  }

  /**
   * Inside a write transaction: the id of `location`, interning it when it
   * qualifies (recorded in `interned`); 0 when it is to be stored inline.
   */
  intern(location: Buffer, interned: Interned): number {
    if (location.length === 0 || location.length > MAX_INTERNED_LOCATION_BYTES) return 0;
    const k = location.toString('latin1');
    const known = this.ids.get(k) ?? interned.get(k);
    if (known !== undefined) return known;
    const stored = this.reverse.get(location);
    if (stored) {
      // Interned by an earlier transaction of the same commit (or not yet cached).
      const id = stored.readUInt32BE(0);
      interned.set(k, id);
      return id;
    }
    let last = 0;
    for (const key of this.forward.getKeys({ reverse: true, limit: 1 })) last = key;
    if (last >= MAX_INTERNED_LOCATIONS) return 0;
    const id = last + 1;
    this.forward.putSync(id, Buffer.from(location));
    this.reverse.putSync(location, idBytes(id));
    interned.set(k, id);
    return id;
  }

  /** Makes what a transaction interned known, once it has committed. */
  commit(interned: Interned): void {
    for (const [k, id] of interned) if (!this.byId[id]) this.remember(id, Buffer.from(k, 'latin1'));
  }
}
