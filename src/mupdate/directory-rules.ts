/**
 * What each write command does to one entry (spec 3.3-3.6, 5.2). Pure
 * functions of the current entry, run inside the store's write transaction
 * so that check-then-write is atomic.
 */
import type { Decision, Entry } from '../store/types.js';

export type WriteOutcome =
  | { ok: true }
  | { ok: false; text: string };

const OK: WriteOutcome = { ok: true };
const EMPTY = Buffer.alloc(0);

export const WRITE_TEXT = {
  done: 'done',
  exists: 'mailbox already exists',
  missing: "mailbox doesn't exist",
  notActive: 'mailbox not currently active',
} as const;

function unchanged(current: Entry | undefined, next: Entry): boolean {
  return !!current && current.state === next.state && current.location.equals(next.location) &&
    current.acl.equals(next.acl);
}

/** Put `next` unless it equals the current entry (then nothing is written or streamed). */
function putIfChanged(current: Entry | undefined, next: Entry): Decision<WriteOutcome> {
  return unchanged(current, next) ? { kind: 'keep', result: OK } : { kind: 'put', entry: next, result: OK };
}

/** ACTIVATE: create or overwrite, whatever was there (Cyrus: last writer wins). */
export function activate(name: Buffer, location: Buffer, acl: Buffer) {
  return (current: Entry | undefined): Decision<WriteOutcome> =>
    putIfChanged(current, { name, state: 'active', location, acl });
}

/** RESERVE: new name, or the identical location (then downgraded to reserved). */
export function reserve(name: Buffer, location: Buffer) {
  return (current: Entry | undefined): Decision<WriteOutcome> => {
    if (current && !current.location.equals(location)) {
      return { kind: 'keep', result: { ok: false, text: WRITE_TEXT.exists } };
    }
    return putIfChanged(current, { name, state: 'reserved', location, acl: EMPTY });
  };
}

/** DEACTIVATE: an active entry becomes reserved at the given location (move source). */
export function deactivate(name: Buffer, location: Buffer) {
  return (current: Entry | undefined): Decision<WriteOutcome> => {
    if (!current) return { kind: 'keep', result: { ok: false, text: WRITE_TEXT.missing } };
    if (current.state !== 'active') return { kind: 'keep', result: { ok: false, text: WRITE_TEXT.notActive } };
    return { kind: 'put', entry: { name, state: 'reserved', location, acl: EMPTY }, result: OK };
  };
}

/** DELETE: removes any entry; a missing name is a NO (Cyrus crashes, spec 3.6). */
export function remove() {
  return (current: Entry | undefined): Decision<WriteOutcome> =>
    current ? { kind: 'delete', result: OK } : { kind: 'keep', result: { ok: false, text: WRITE_TEXT.missing } };
}
