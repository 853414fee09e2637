/**
 * The operator's conflict queue: a claim that would take a name from the
 * server holding it is recorded (a repeat of the same open claim, same name
 * and claimed location, updates its record), listed, and closed by the
 * operator. `conflicts`: id -> record; `open-claims`: claim key -> id of
 * its open record; meta `conflictSeq`: the last id given out.
 */
import type { Database } from 'lmdb';
import { createHash } from 'node:crypto';
import type { EntryTable } from './entry-table.js';
import type { Change, ConflictClaim, ConflictRecord, ConflictStatus, Entry } from './types.js';
import { checkEntry } from './validate.js';

export type Keep = 'current' | 'claimant' | 'none';

/** What closing a conflict did inside its transaction: a refusal (nothing written), or the closed record and its change. */
export type Closing = { refusal: string } | { refusal: null; closed: ConflictRecord; change: Change | null };

/** Name plus a digest of the claimed location: any location fits in a key. */
function claimKey(name: Buffer, location: Buffer): Buffer {
  return Buffer.concat([name, Buffer.of(0), createHash('sha256').update(location).digest()]);
}

export class ConflictQueue {
  constructor(
    private readonly conflictsDb: Database<ConflictRecord, number>,
    private readonly openClaimsDb: Database<number, Buffer>,
    private readonly metaDb: Database<unknown, string>,
  ) {}

  /** Records a claim, or counts a repeat on its open record; inside a write transaction. */
  recordInTxn(claim: ConflictClaim): ConflictRecord {
    const now = new Date().toISOString();
    const key = claimKey(claim.name, claim.claimed.location);
    const existingId = this.openClaimsDb.get(key);
    const existing = existingId === undefined ? undefined : this.conflictsDb.get(existingId);
    let record: ConflictRecord;
    if (existing && existing.status === 'open') {
      record = { ...existing, ...claim, id: existing.id, status: 'open', firstSeen: existing.firstSeen, lastSeen: now, count: existing.count + 1 };
    } else {
      const id = ((this.metaDb.get('conflictSeq') as number | undefined) ?? 0) + 1;
      this.metaDb.putSync('conflictSeq', id);
      record = { ...claim, id, status: 'open', firstSeen: now, lastSeen: now, count: 1 };
      this.openClaimsDb.putSync(key, id);
    }
    this.conflictsDb.putSync(record.id, record);
    return record;
  }

  list(status?: ConflictStatus): ConflictRecord[] {
    const out: ConflictRecord[] = [];
    for (const { value } of this.conflictsDb.getRange()) if (!status || value.status === status) out.push(value);
    return out;
  }

  get(id: number): ConflictRecord | undefined {
    return this.conflictsDb.get(id);
  }

  /**
   * Closes open conflict `id` inside a write transaction: `claimant` puts
   * the claimed entry (through `entries`), `current` and `none` change
   * nothing in the directory. A refusal (unknown id, already closed) writes nothing.
   */
  closeInTxn(id: number, keep: Keep, by: string, entries: EntryTable): Closing {
    const record = this.conflictsDb.get(id);
    if (!record) return { refusal: `no conflict #${id}` };
    if (record.status !== 'open') return { refusal: `conflict #${id} is already ${record.status}` };
    let change: Change | null = null;
    if (keep === 'claimant') {
      const next: Entry = { name: record.name, ...record.claimed };
      checkEntry(record.name, next);
      change = entries.changeInTxn(record.name, next);
    }
    const closed: ConflictRecord = {
      ...record, status: keep === 'none' ? 'dismissed' : 'resolved',
      resolution: { keep, at: new Date().toISOString(), by },
    };
    this.conflictsDb.putSync(id, closed);
    this.openClaimsDb.removeSync(claimKey(record.name, record.claimed.location));
    return { refusal: null, closed, change };
  }

  /** A record as a cluster holds it (a cluster view's write). */
  putInTxn(record: ConflictRecord): void {
    this.conflictsDb.putSync(record.id, record);
  }
}
