/** A duplicate-mailbox claim as a conflict record: the first of its kind, or one more of an open one. Both stores build records here. */
import type { ConflictClaim, ConflictRecord } from './types.js';

/** The same claim again while its conflict is open: the latest details, counted once more. */
export function repeatedClaim(existing: ConflictRecord, claim: ConflictClaim, now: string): ConflictRecord {
  return {
    ...existing,
    ...claim,
    id: existing.id,
    status: 'open',
    firstSeen: existing.firstSeen,
    lastSeen: now,
    count: existing.count + 1,
  };
}

/** A claim not seen before (or seen only in closed conflicts): a new open record numbered `id`. */
export function firstClaim(claim: ConflictClaim, id: number, now: string): ConflictRecord {
  return { ...claim, id, status: 'open', firstSeen: now, lastSeen: now, count: 1 };
}
