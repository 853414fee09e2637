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

// Everything is built as latin1 strings (one char per byte): far cheaper than
// many small Buffers when a whole directory of a million rows is compared.

/** The row key of a mailbox name (latin1 string of its wire form, e.g. `example.com!user.bob.Sent`). */
export function rowKeyText(name: string): string {
  const bang = name.indexOf('!');
  const mailbox = (bang < 0 ? name : name.slice(bang + 1)).replace(/[.^]/g, (c) => (c === '.' ? '\x1f' : '.'));
  return bang < 0 ? `N${mailbox}` : `N${name.slice(0, bang)}\x1d${mailbox}`;
}

/** The row key of a mailbox name. */
export function rowKey(name: Buffer): Buffer {
  return Buffer.from(rowKeyText(name.toString('latin1')), 'latin1');
}

// 8-bit bytes, CR, LF, `"`, `%`, `\\`: a literal. Controls, DEL, space, `{`, `(`, `)`, `*`: quoted.
const LITERAL = /[\x80-\xff\r\n"%\\]/;
const NOT_ATOM = /[\x00-\x20\x7f{()*]/;

function dlistText(s: string): string {
  if (s.length >= 1024 || LITERAL.test(s)) return `{${s.length}+}\r\n${s}`;
  if (s === '' || s === 'NIL' || NOT_ATOM.test(s)) return `"${s}"`;
  return s;
}

/** One dlist string value. */
export function dlistString(s: Buffer): Buffer {
  return Buffer.from(dlistText(s.toString('latin1')), 'latin1');
}

/** The MUPDATE ACL (`id TAB rights TAB` ...) as dlist key/value pairs. */
function aclText(acl: string): string {
  const fields = acl.split('\t');
  if (fields[fields.length - 1] === '') fields.pop();
  const pairs: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) pairs.push(`${dlistText(fields[i])} ${dlistText(fields[i + 1])}`);
  return pairs.join(' ');
}

/** The parts of a row value around its `M` (mtime) field, as latin1 strings. */
export interface RowValueParts {
  /** Everything up to and including `M `. */
  head: string;
  /** Everything after the mtime digits, starting with the space before `A`. */
  tail: string;
}

export function rowValueParts(entry: Entry): RowValueParts {
  const location = entry.location.toString('latin1');
  const bang = location.indexOf('!');
  const server = bang < 0 ? location : location.slice(0, bang);
  const type = entry.state === 'reserved' ? 'erz' : 'er';
  const partition = bang < 0 ? '' : ` P ${dlistText(location.slice(bang + 1))}`;
  const acl = entry.state === 'reserved' ? '' : aclText(entry.acl.toString('latin1'));
  return { head: `%(T ${type}${partition} S ${dlistText(server)} M `, tail: ` A %(${acl}))` };
}

/** The whole row value, written at `mtime` (Unix seconds). */
export function rowValue(entry: Entry, mtime: number): Buffer {
  const { head, tail } = rowValueParts(entry);
  return Buffer.from(`${head}${mtime}${tail}`, 'latin1');
}

/** Whether a stored value (latin1) says the same as `parts`, whatever its mtime. */
export function sameRowValue(stored: string, parts: RowValueParts): boolean {
  if (stored.length <= parts.head.length + parts.tail.length) return false;
  if (!stored.startsWith(parts.head) || !stored.endsWith(parts.tail)) return false;
  for (let i = parts.head.length; i < stored.length - parts.tail.length; i++) {
    const c = stored.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}
