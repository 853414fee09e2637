/**
 * What each write command does to one entry (spec 3.3-3.6, 5.2, 7.0). Run
 * inside the store's write transaction, so check-then-write is atomic.
 *
 * Conflict rule (policy `queue`): an ACTIVATE naming server X for a mailbox
 * that is ACTIVE at another server Y would take Y's mailbox away; the entry
 * is kept, the claim is recorded for an operator and the writer gets a NO
 * naming the conflict; a claim an operator already decided against (the
 * losing backend pushing its copy again) is refused naming that decision
 * and counted on it (store/decisions.ts). An entry that is RESERVED (by RESERVE or DEACTIVATE)
 * is being created, renamed or moved: ACTIVATE completes it, whichever server
 * sends it. A RESERVE over another location is refused as in Cyrus
 * ("mailbox already exists", C27) and not queued: a refused RESERVE takes
 * nothing from anyone. Policy `cyrus` keeps Cyrus's last writer wins.
 */
import type { ConflictRecord, Decision, Entry, TxnTools } from '../store/types.js';
import { serverPart } from './location.js';

export type WriteOutcome = { ok: true } | { ok: false; text: string; conflictId?: number };

export type ConflictPolicy = 'queue' | 'cyrus';

/** Who is writing, for conflict records. */
export interface Writer {
  policy: ConflictPolicy;
  /** The authorized identity the session runs as. */
  user: string;
  /** The identity that proved the password (differs from `user` when an admin logged in for another). */
  authcid: string;
  peer: string;
}

const OK: WriteOutcome = { ok: true };
const EMPTY = Buffer.alloc(0);

export const WRITE_TEXT = {
  done: 'done',
  exists: 'mailbox already exists',
  missing: "mailbox doesn't exist",
  notActive: 'mailbox not currently active',
} as const;

type Decide = (current: Entry | undefined, txn: TxnTools) => Decision<WriteOutcome>;

function unchanged(current: Entry | undefined, next: Entry): boolean {
  return !!current && current.state === next.state && current.location.equals(next.location) && current.acl.equals(next.acl);
}

/** Put `next` unless it equals the current entry (then nothing is written or streamed). */
function putIfChanged(current: Entry | undefined, next: Entry): Decision<WriteOutcome> {
  return unchanged(current, next) ? { kind: 'keep', result: OK } : { kind: 'put', entry: next, result: OK };
}

/** True when a claim for `location` would take an active mailbox from another server. */
export function isDuplicateClaim(current: Entry | undefined, location: Buffer): current is Entry {
  return !!current && current.state === 'active' && serverPart(current.location) !== serverPart(location);
}

function queueConflict(
  current: Entry,
  claimed: { state: 'active'; location: Buffer; acl: Buffer },
  command: string,
  writer: Writer,
  txn: TxnTools,
): Decision<WriteOutcome> {
  const record = txn.recordConflict({
    name: current.name,
    current,
    claimed,
    command,
    user: writer.user,
    authcid: writer.authcid,
    peer: writer.peer,
  });
  const holder = serverPart(current.location);
  if (record.status === 'resolved') {
    return { kind: 'keep', result: { ok: false, text: decidedText(holder, record) } };
  }
  return {
    kind: 'keep',
    result: { ok: false, conflictId: record.id, text: `mailbox is active on ${holder}; conflict #${record.id} queued for an operator` },
  };
}

/** The NO for a claim a decision already settled: which decision, and that it is not queued again. */
function decidedText(holder: string, decision: ConflictRecord): string {
  return (
    `mailbox is active on ${holder}; conflict #${decision.id} was decided (keep ${decision.resolution?.keep ?? 'current'}), ` +
    `this copy is not used and the claim is not queued again (refused ${decision.refused ?? 1} time(s) since)`
  );
}

/** ACTIVATE: create or overwrite; a duplicate claim is queued under policy `queue`. */
export function activate(name: Buffer, location: Buffer, acl: Buffer, writer: Writer): Decide {
  return (current, txn) => {
    if (writer.policy === 'queue' && isDuplicateClaim(current, location)) {
      return queueConflict(current, { state: 'active', location, acl }, 'ACTIVATE', writer, txn);
    }
    return putIfChanged(current, { name, state: 'active', location, acl });
  };
}

/** RESERVE: new name, or the identical location (then downgraded to reserved). */
export function reserve(name: Buffer, location: Buffer): Decide {
  return (current) => {
    if (current && !current.location.equals(location)) {
      return { kind: 'keep', result: { ok: false, text: WRITE_TEXT.exists } };
    }
    return putIfChanged(current, { name, state: 'reserved', location, acl: EMPTY });
  };
}

/** DEACTIVATE: an active entry becomes reserved at the given location (move source). */
export function deactivate(name: Buffer, location: Buffer): Decide {
  return (current) => {
    if (!current) return { kind: 'keep', result: { ok: false, text: WRITE_TEXT.missing } };
    if (current.state !== 'active') return { kind: 'keep', result: { ok: false, text: WRITE_TEXT.notActive } };
    return { kind: 'put', entry: { name, state: 'reserved', location, acl: EMPTY }, result: OK };
  };
}

/** DELETE: removes any entry; a missing name is a NO (Cyrus crashes, spec 3.6). */
export function remove(): Decide {
  return (current) => (current ? { kind: 'delete', result: OK } : { kind: 'keep', result: { ok: false, text: WRITE_TEXT.missing } });
}
