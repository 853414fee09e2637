/**
 * A decided conflict stays decided. Resolving a conflict keeps one copy of
 * the mailbox (`--keep current`: the holder's, `--keep claimant`: the
 * claimant's); the other backend still holds its copy, and re-sends its claim
 * whenever it pushes its list again (a restart's `ctl_mboxlist -m`). Such a
 * claim (same name, the losing location) is refused naming the decision and
 * counted on it, not queued as a new conflict, as long as the directory still
 * points where the decision left it (same server): once the mailbox has
 * moved since, the decision no longer describes the situation and a claim is
 * a new conflict again.
 */
import { serverOf } from './by-server.js';
import type { ConflictClaim, ConflictRecord } from './types.js';

/** The location the decision kept (null: not a decision, e.g. dismissed or open). */
export function keptLocation(record: ConflictRecord): Buffer | null {
  if (record.status !== 'resolved') return null;
  if (record.resolution?.keep === 'current') return record.current.location;
  if (record.resolution?.keep === 'claimant') return record.claimed.location;
  return null;
}

/** The location whose copy the decision left out: its backend still holds a copy the directory does not point to. */
export function staleCopy(record: ConflictRecord): Buffer | null {
  if (record.status !== 'resolved') return null;
  if (record.resolution?.keep === 'current') return record.claimed.location;
  if (record.resolution?.keep === 'claimant') return record.current.location;
  return null;
}

/** Whether `decision` still settles `claim` (see the module comment). */
export function decisionStands(decision: ConflictRecord, claim: ConflictClaim): boolean {
  const kept = keptLocation(decision);
  const stale = staleCopy(decision);
  return (
    kept !== null &&
    stale !== null &&
    decision.name.equals(claim.name) &&
    stale.equals(claim.claimed.location) &&
    serverOf(kept) === serverOf(claim.current.location)
  );
}

/** The decision with one more refused claim counted on it. */
export function countRefusal(decision: ConflictRecord, at: string): ConflictRecord {
  return { ...decision, refused: (decision.refused ?? 0) + 1, lastRefused: at };
}
