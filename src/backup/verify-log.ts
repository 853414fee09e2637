/**
 * `mupdated verify`, the change log: every record is well formed, the
 * numbers run without a gap up to the directory's last change (a cluster
 * node's view takes the cluster's numbers, with gaps), and the directory
 * holds, for every name the log mentions, what the name's latest change left.
 * Also the conflict records and their claim index.
 */
import type { Transaction } from 'lmdb';
import { decodeRecord, sameEntry, type DecodedRecord } from '../store/codec.js';
import type { ConflictRecord, Entry } from '../store/types.js';
import type { DirectoryDatabases } from './folder-databases.js';
import { show, type Problems } from './problems.js';

export interface LogCounts {
  records: number;
  first: number | null;
  last: number | null;
}

export interface ConflictCounts {
  open: number;
  resolved: number;
  dismissed: number;
}

const DELETED = 0;
const RECORD_CODES = new Set([DELETED, 1, 2]);

/** The record if its lengths fit its bytes (codec.ts: `code | nameLen | name | locLen | location | acl`), else null. */
function wellFormed(raw: Buffer): DecodedRecord | null {
  if (raw.length < 9 || !RECORD_CODES.has(raw[0])) return null;
  const nameLen = raw.readUInt32BE(1);
  if (5 + nameLen + 4 > raw.length) return null;
  const locLen = raw.readUInt32BE(5 + nameLen);
  const end = 9 + nameLen + locLen;
  if (end > raw.length || (raw[0] === DELETED && end !== raw.length)) return null;
  return decodeRecord(raw);
}

export interface LogRules {
  /** The directory's last change (meta `seq`). */
  seq: number;
  /** A cluster node's view: numbers are the cluster's, with gaps. */
  gapsAllowed: boolean;
}

/** Checks the numbering and the records of the change log. */
export function checkLog(dbs: DirectoryDatabases, txn: Transaction, rules: LogRules, problems: Problems): LogCounts {
  const counts: LogCounts = { records: 0, first: null, last: null };
  if (!dbs.log) {
    if (rules.seq > 0) problems.add(`the directory is at change #${rules.seq} but has no change log`);
    return counts;
  }
  for (const { key, value } of dbs.log.getRange({ transaction: txn })) {
    if (!Number.isSafeInteger(key) || key < 1) {
      problems.add(`the change log has a record under ${JSON.stringify(key)}, which is not a change number`);
      continue;
    }
    if (!wellFormed(Buffer.from(value))) problems.add(`change #${key} in the change log is not a well-formed record`);
    if (counts.last !== null && key !== counts.last + 1 && !rules.gapsAllowed) {
      const missing = key - counts.last - 1;
      problems.add(
        `the change log has a gap: after change #${counts.last} comes #${key} ` + `(${missing} change${missing === 1 ? '' : 's'} missing)`,
      );
    }
    if (key > rules.seq) problems.add(`change #${key} in the change log is past the directory's last change #${rules.seq}`);
    counts.first ??= key;
    counts.last = key;
    counts.records++;
  }
  if (!rules.gapsAllowed) {
    if (counts.last === null && rules.seq > 0) problems.add(`the directory is at change #${rules.seq} but its change log is empty`);
    else if (counts.last !== null && counts.last < rules.seq) {
      problems.add(`the directory is at change #${rules.seq} but its change log ends at #${counts.last}`);
    }
  }
  return counts;
}

function describe(entry: Entry | null | undefined): string {
  if (!entry) return 'no entry';
  return `${entry.state} at ${show(entry.location)}`;
}

/**
 * For each name in the log, its latest record against the directory's entry
 * (read newest first; a name is compared once). `current` throws for an entry
 * that cannot be read (already reported by the entry checks).
 */
export function checkLogAgainstEntries(
  dbs: DirectoryDatabases,
  txn: Transaction,
  current: (name: Buffer) => Entry | undefined,
  problems: Problems,
): void {
  if (!dbs.log) return;
  const seen = new Set<string>();
  for (const { key, value } of dbs.log.getRange({ reverse: true, transaction: txn })) {
    const record = wellFormed(Buffer.from(value));
    if (!record) continue;
    const id = record.name.toString('latin1');
    if (seen.has(id)) continue;
    seen.add(id);
    let entry: Entry | undefined;
    try {
      entry = current(record.name);
    } catch {
      continue;
    }
    if (sameEntry(entry, record.entry)) continue;
    const what =
      entry && record.entry && entry.state === record.entry.state && entry.location.equals(record.entry.location)
        ? 'the same location with another ACL'
        : describe(entry);
    problems.add(
      `change #${key} left ${show(record.name)} ${record.entry ? describe(record.entry) : 'deleted'}, ` + `but the directory holds ${what}`,
    );
  }
}

/** Conflict records are keyed by their id and have a known status; every open claim points to a record. */
export function checkConflicts(dbs: DirectoryDatabases, txn: Transaction, problems: Problems): ConflictCounts {
  const counts: ConflictCounts = { open: 0, resolved: 0, dismissed: 0 };
  if (!dbs.conflicts) return counts;
  for (const { key, value } of dbs.conflicts.getRange({ transaction: txn })) {
    const record = value as Partial<ConflictRecord> | undefined;
    if (!record || record.id !== key) {
      problems.add(`conflict record #${key} does not carry its own id`);
      continue;
    }
    if (record.status === 'open' || record.status === 'resolved' || record.status === 'dismissed') counts[record.status]++;
    else problems.add(`conflict #${key} has an unknown status ${JSON.stringify(record.status)}`);
  }
  for (const { value } of dbs.openClaims?.getRange({ transaction: txn }) ?? []) {
    if (!dbs.conflicts.get(value, { transaction: txn })) problems.add(`an open claim refers to conflict #${value}, which does not exist`);
  }
  return counts;
}
