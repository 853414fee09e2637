/**
 * The operator's conflict queue: a claim that would take a name from the
 * server holding it is recorded (a repeat of the same open claim, same name
 * and claimed location, updates its record), listed, and closed by the
 * operator; a claim already decided against is counted on its decision
 * instead (decisions.ts). `conflicts`: id -> record; `open-claims`: claim
 * key -> id of its open record, and decision key -> id of the decision that
 * left that claim out; meta `conflictSeq`: the last id given out, meta
 * `decisionsIndexed`: decisions made before that index existed are in it.
 */
import type { Database } from 'lmdb';
import { createHash } from 'node:crypto';
import { countRefusal, decisionStands, keptLocation, staleCopy } from './decisions.js';
import { firstClaim, repeatedClaim } from './conflict-records.js';
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

/**
 * The decision key of a claim: like its claim key with a 0x01 before the
 * digest (names hold no NUL, so the two kinds of key never meet).
 */
function decisionKey(name: Buffer, location: Buffer): Buffer {
  return Buffer.concat([name, Buffer.of(0, 1), createHash('sha256').update(location).digest()]);
}

/** Meta key of the open-conflict count. */
const OPEN_COUNT = 'openConflicts';

export class ConflictQueue {
  constructor(
    private readonly conflictsDb: Database<ConflictRecord, number>,
    private readonly openClaimsDb: Database<number, Buffer>,
    private readonly metaDb: Database<unknown, string>,
  ) {}

  /** Records a claim, or counts a repeat on its open record or on the decision that settled it; inside a write transaction. */
  recordInTxn(claim: ConflictClaim): ConflictRecord {
    const now = new Date().toISOString();
    const decision = this.decisionFor(claim);
    if (decision) {
      const counted = countRefusal(decision, now);
      this.conflictsDb.putSync(counted.id, counted);
      return counted;
    }
    const key = claimKey(claim.name, claim.claimed.location);
    const existingId = this.openClaimsDb.get(key);
    const existing = existingId === undefined ? undefined : this.conflictsDb.get(existingId);
    let record: ConflictRecord;
    if (existing && existing.status === 'open') {
      record = repeatedClaim(existing, claim, now);
    } else {
      const id = ((this.metaDb.get('conflictSeq') as number | undefined) ?? 0) + 1;
      this.metaDb.putSync('conflictSeq', id);
      record = firstClaim(claim, id, now);
      this.openClaimsDb.putSync(key, id);
      this.countOpenInTxn(1);
    }
    this.conflictsDb.putSync(record.id, record);
    return record;
  }

  list(status?: ConflictStatus): ConflictRecord[] {
    const out: ConflictRecord[] = [];
    for (const { value } of this.conflictsDb.getRange()) if (!status || value.status === status) out.push(value);
    return out;
  }

  /**
   * Open conflicts, without reading the records (a metrics scrape asks on
   * every scrape, and records carry ACLs of up to 128 KiB): kept in meta in
   * the same transactions as the records (a folder from before the count is
   * counted once when opened: catchUpInTxn). A read-only store of an older
   * folder counts the records.
   */
  get openCount(): number {
    return (this.metaDb.get(OPEN_COUNT) as number | undefined) ?? this.list('open').length;
  }

  /** Before the records change: moves the open count by `delta`. */
  private countOpenInTxn(delta: number): void {
    if (delta !== 0) this.metaDb.putSync(OPEN_COUNT, this.openCount + delta);
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
      ...record,
      status: keep === 'none' ? 'dismissed' : 'resolved',
      resolution: { keep, at: new Date().toISOString(), by },
    };
    this.countOpenInTxn(-1);
    this.conflictsDb.putSync(id, closed);
    this.openClaimsDb.removeSync(claimKey(record.name, record.claimed.location));
    this.indexDecisionInTxn(closed);
    return { refusal: null, closed, change };
  }

  /** A record as a cluster holds it (a cluster view's write). */
  putInTxn(record: ConflictRecord): void {
    const wasOpen = this.conflictsDb.get(record.id)?.status === 'open';
    this.countOpenInTxn(Number(record.status === 'open') - Number(wasOpen));
    this.conflictsDb.putSync(record.id, record);
    this.indexDecisionInTxn(record);
  }

  /** The decision that still settles `claim`, if any (decisions.ts). */
  decisionFor(claim: ConflictClaim): ConflictRecord | undefined {
    const id = this.openClaimsDb.get(decisionKey(claim.name, claim.claimed.location));
    const decision = id === undefined ? undefined : this.conflictsDb.get(id);
    return decision && decisionStands(decision, claim) ? decision : undefined;
  }

  /**
   * Points the left-out copy's claim at a decision; the kept copy's claim
   * is no longer decided against (an older decision that left it out no
   * longer stands).
   */
  private indexDecisionInTxn(record: ConflictRecord): void {
    const stale = staleCopy(record);
    const kept = keptLocation(record);
    if (!stale || !kept) return;
    this.openClaimsDb.putSync(decisionKey(record.name, stale), record.id);
    this.openClaimsDb.removeSync(decisionKey(record.name, kept));
  }

  /** Whether a folder from before the decision index or the open count still needs them (catchUpInTxn). */
  get behind(): boolean {
    return this.metaDb.get('decisionsIndexed') === undefined || this.metaDb.get(OPEN_COUNT) === undefined;
  }

  /** Indexes every decision in the order they were numbered, and counts the open ones; once per folder, inside a write transaction. */
  catchUpInTxn(): void {
    let open = 0;
    for (const { value } of this.conflictsDb.getRange()) {
      if (value.status === 'open') open++;
      this.indexDecisionInTxn(value);
    }
    this.metaDb.putSync('decisionsIndexed', true);
    this.metaDb.putSync(OPEN_COUNT, open);
  }
}
