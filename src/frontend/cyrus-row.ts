/**
 * A directory entry as the row a Cyrus 3.6 MUPDATE slave writes into a
 * frontend's mailboxes database (`mboxlist_db: sql`, table `mailboxes_db`):
 *
 * - key: `N`, then the internal name as Cyrus's database name: in the
 *   mailbox part every `.` becomes 0x1F and every `^` (a dot inside a
 *   name's part) becomes `.`; a domain, before `!`, is kept as it is and
 *   ends with 0x1D;
 * - value: a dlist `%(T er P partition S server M mtime A %(id rights ...))`,
 *   type `er` for an active remote entry, `erz` for a reservation; a location
 *   without `!` has no `P` at all, one ending in `!` has `P ""`.
 *
 * Strings (ACL identifiers included) follow Cyrus's dlist rules: a plain
 * atom as it is, an empty string, `NIL` or a string with atom specials
 * quoted, one with 8-bit bytes, CR, LF, `"`, `%` or `\`, or of 1024 bytes or
 * more, as a `{n+}` literal. (All of this as captured from a real Cyrus 3.6.1
 * slave writing sqlite.)
 */
import type { Entry } from '../store/types.js';

const HIERARCHY_SEPARATOR = 0x1f;
const DOMAIN_SEPARATOR = 0x1d;

/** The row key of a mailbox name (wire form, e.g. `example.com!user.bob.Sent`). */
export function rowKey(name: Buffer): Buffer {
  const bang = name.indexOf(0x21);
  const domain = bang < 0 ? null : name.subarray(0, bang);
  const mailbox = Buffer.from(bang < 0 ? name : name.subarray(bang + 1));
  for (let i = 0; i < mailbox.length; i++) {
    if (mailbox[i] === 0x2e) mailbox[i] = HIERARCHY_SEPARATOR;
    else if (mailbox[i] === 0x5e) mailbox[i] = 0x2e;
  }
  const parts: Buffer[] = [Buffer.from('N')];
  if (domain) parts.push(domain, Buffer.of(DOMAIN_SEPARATOR));
  parts.push(mailbox);
  return Buffer.concat(parts);
}

function needsLiteral(s: Buffer): boolean {
  if (s.length >= 1024) return true;
  for (const b of s) {
    if (b & 0x80 || b === 0x0d || b === 0x0a || b === 0x22 || b === 0x25 || b === 0x5c) return true;
  }
  return false;
}

function isAtom(s: Buffer): boolean {
  if (s.length === 0 || s.equals(NIL)) return false;
  for (const b of s) {
    if (b < 0x20 || b === 0x7f || b === 0x20 || b === 0x7b || b === 0x28 || b === 0x29 || b === 0x2a) return false;
  }
  return true;
}

const NIL = Buffer.from('NIL');

/** One dlist string value. */
export function dlistString(s: Buffer): Buffer {
  if (needsLiteral(s)) return Buffer.concat([Buffer.from(`{${s.length}+}\r\n`), s]);
  if (isAtom(s)) return s;
  return Buffer.concat([Buffer.from('"'), s, Buffer.from('"')]);
}

/** The MUPDATE ACL (`id TAB rights TAB` ...) as dlist key/value pairs. */
function aclPairs(acl: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const fields: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < acl.length; i++) {
    if (acl[i] === 0x09) {
      fields.push(acl.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < acl.length) fields.push(acl.subarray(start));
  for (let i = 0; i + 1 < fields.length; i += 2) {
    out.push(Buffer.concat([dlistString(fields[i]!), Buffer.from(' '), dlistString(fields[i + 1]!)]));
  }
  return out;
}

/** The parts of a row value around its `M` (mtime) field. */
export interface RowValueParts {
  /** Everything up to and including `M `. */
  head: Buffer;
  /** Everything after the mtime digits, starting with the space before `A`. */
  tail: Buffer;
}

export function rowValueParts(entry: Entry): RowValueParts {
  const bang = entry.location.indexOf(0x21);
  const server = bang < 0 ? entry.location : entry.location.subarray(0, bang);
  const type = entry.state === 'reserved' ? 'erz' : 'er';
  const partition = bang < 0 ? [] : [Buffer.from(' P '), dlistString(entry.location.subarray(bang + 1))];
  const head = Buffer.concat([
    Buffer.from(`%(T ${type}`), ...partition, Buffer.from(' S '), dlistString(server), Buffer.from(' M '),
  ]);
  const pairs = entry.state === 'reserved' ? [] : aclPairs(entry.acl);
  const acl: Buffer[] = [];
  pairs.forEach((p, i) => acl.push(i === 0 ? p : Buffer.concat([Buffer.from(' '), p])));
  const tail = Buffer.concat([Buffer.from(' A %('), ...acl, Buffer.from('))')]);
  return { head, tail };
}

/** The whole row value, written at `mtime` (Unix seconds). */
export function rowValue(entry: Entry, mtime: number): Buffer {
  const { head, tail } = rowValueParts(entry);
  return Buffer.concat([head, Buffer.from(String(mtime)), tail]);
}

/** Whether a stored value says the same as `parts`, whatever its mtime. */
export function sameRowValue(stored: Buffer, parts: RowValueParts): boolean {
  if (stored.length <= parts.head.length + parts.tail.length) return false;
  if (!stored.subarray(0, parts.head.length).equals(parts.head)) return false;
  if (!stored.subarray(stored.length - parts.tail.length).equals(parts.tail)) return false;
  const digits = stored.subarray(parts.head.length, stored.length - parts.tail.length);
  for (const b of digits) if (b < 0x30 || b > 0x39) return false;
  return true;
}
