/**
 * A fast reader for the line `ctl_mboxlist -d` writes per mailbox:
 * `"name": {...}` or `"name": {...},`. It keeps only the members a record is
 * built from (the first of each, as OrderedObject.get finds them) and checks
 * the rest is JSON the general reader would accept. Anything it is not sure
 * of (two records on a line, a non-string rights value, an escape it cannot
 * vouch for) returns null, and the general reader decides, errors included.
 */
import { OrderedObject, type OrderedJson } from './ordered-json.js';

/** Thrown inside the scanner to give the line back to the general reader (one instance: no stack per line). */
class NotPlainLine extends Error {}
const NOT_PLAIN = new NotPlainLine('not a plain one-record line');

/** The top-level members recordFromDump reads, one bit each: only the first of each counts (OrderedObject.get). */
const MBTYPE = 8;
const ACL = 16;
const X_RAW = 32;
function recordKeyBit(key: string): number {
  switch (key) {
    case 'name':
      return 1;
    case 'server':
      return 2;
    case 'partition':
      return 4;
    case 'mbtype':
      return MBTYPE;
    case 'acl':
      return ACL;
    case 'x_raw':
      return X_RAW;
    default:
      return 0;
  }
}

/** The members of `x_raw` recordFromDump reads. */
function rawKeyBit(key: string): number {
  return key === 'name' ? 1 : key === 'location' ? 2 : key === 'acl' ? 4 : 0;
}

/** What JSON allows after a backslash, besides `u` and its four hex digits. */
function isSimpleEscape(c: number): boolean {
  return c === 0x22 || c === 0x5c || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

const LITERAL = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/;

class LineScanner {
  i = 0;
  constructor(readonly s: string) {}

  ws(): void {
    const s = this.s;
    let i = this.i;
    for (let c = s.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = s.charCodeAt(i)) i++;
    this.i = i;
  }

  expect(c: number): void {
    if (this.s.charCodeAt(this.i) !== c) throw NOT_PLAIN;
    this.i++;
  }

  /** A string at the cursor (its opening quote), checked as JSON.parse would; returned when `keep`. */
  str(keep: boolean): string {
    const s = this.s;
    const start = this.i;
    let j = start + 1;
    let escaped = false;
    for (;;) {
      const c = s.charCodeAt(j);
      if (c === 0x22) break;
      if (Number.isNaN(c) || c < 0x20) throw NOT_PLAIN;
      if (c === 0x5c) {
        escaped = true;
        const e = s.charCodeAt(j + 1);
        if (isSimpleEscape(e)) j += 2;
        else if (
          e === 0x75 &&
          isHex(s.charCodeAt(j + 2)) &&
          isHex(s.charCodeAt(j + 3)) &&
          isHex(s.charCodeAt(j + 4)) &&
          isHex(s.charCodeAt(j + 5))
        )
          j += 6;
        else throw NOT_PLAIN;
      } else j++;
    }
    this.i = j + 1;
    if (!keep) return '';
    return escaped ? (JSON.parse(s.slice(start, j + 1)) as string) : s.slice(start + 1, j);
  }

  /** Steps over any JSON value, accepting exactly what parseOrderedJson accepts without error. */
  skip(): void {
    this.ws();
    const c = this.s.charCodeAt(this.i);
    if (c === 0x22) return void this.str(false);
    if (c === 0x7b) return this.members(() => this.skip());
    if (c === 0x5b) {
      this.i++;
      this.ws();
      if (this.s.charCodeAt(this.i) === 0x5d) return void this.i++;
      for (;;) {
        this.skip();
        this.ws();
        const d = this.s.charCodeAt(this.i++);
        if (d === 0x2c) continue;
        if (d === 0x5d) return;
        throw NOT_PLAIN;
      }
    }
    const m = LITERAL.exec(this.s.slice(this.i, this.i + 64));
    if (!m) throw NOT_PLAIN;
    try {
      JSON.parse(m[0]);
    } catch {
      throw NOT_PLAIN;
    }
    this.i += m[0].length;
  }

  /** An object at the cursor: `member(key)` reads each member's value. */
  members(member: (key: string) => void): void {
    this.i++;
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x7d) return void this.i++;
    for (;;) {
      this.ws();
      if (this.s.charCodeAt(this.i) !== 0x22) throw NOT_PLAIN;
      const key = this.str(true);
      this.ws();
      this.expect(0x3a);
      member(key);
      this.ws();
      const d = this.s.charCodeAt(this.i++);
      if (d === 0x2c) continue;
      if (d === 0x7d) return;
      throw NOT_PLAIN;
    }
  }

  /** A string value kept as it is; any other value stands as null (recordFromDump ignores non-strings). */
  stringOrNull(): OrderedJson {
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x22) return this.str(true);
    this.skip();
    return null;
  }

  isAt(c: number): boolean {
    this.ws();
    return this.s.charCodeAt(this.i) === c;
  }

  /** The ACL object: every pair kept in order; rights other than strings go to the general reader. */
  acl(): OrderedJson {
    if (!this.isAt(0x7b)) {
      this.skip();
      return null;
    }
    const pairs: Array<[string, OrderedJson]> = [];
    this.members((id) => {
      if (!this.isAt(0x22)) throw NOT_PLAIN;
      pairs.push([id, this.str(true)]);
    });
    return new OrderedObject(pairs);
  }

  /** `x_raw`: the first of each member recordFromDump reads. */
  raw(): OrderedJson {
    if (!this.isAt(0x7b)) {
      this.skip();
      return null;
    }
    return this.firstMembers(rawKeyBit, () => this.stringOrNull());
  }

  /** An object at the cursor, keeping the first member of each key `keyBit` knows (read by `read`), skipping the rest. */
  firstMembers(keyBit: (key: string) => number, read: (bit: number) => OrderedJson): OrderedObject {
    const pairs: Array<[string, OrderedJson]> = [];
    let seen = 0;
    this.members((key) => {
      const bit = keyBit(key);
      if (bit === 0 || (seen & bit) !== 0) return this.skip();
      seen |= bit;
      pairs.push([key, read(bit)]);
    });
    return new OrderedObject(pairs);
  }

  /** `mbtype` as a string; jsonText of anything else differs from it, so that goes to the general reader. */
  mbtype(): string {
    if (!this.isAt(0x22)) throw NOT_PLAIN;
    return this.str(true);
  }

  /** The record object, reduced to the members a record is built from. */
  record(): OrderedObject {
    if (!this.isAt(0x7b)) throw NOT_PLAIN;
    return this.firstMembers(recordKeyBit, (bit) =>
      bit === MBTYPE ? this.mbtype() : bit === ACL ? this.acl() : bit === X_RAW ? this.raw() : this.stringOrNull(),
    );
  }
}

/**
 * One trimmed dump line holding exactly one member, `"key": {...}` with an
 * optional trailing comma: its key and the members a record is read from.
 * Null when the line is anything else.
 */
export function scanRecordLine(line: string): { key: string; record: OrderedObject } | null {
  if (line.charCodeAt(0) !== 0x22) return null;
  const scanner = new LineScanner(line);
  try {
    const key = scanner.str(true);
    scanner.ws();
    scanner.expect(0x3a);
    const record = scanner.record();
    scanner.ws();
    if (scanner.i === line.length) return { key, record };
    if (line.charCodeAt(scanner.i) === 0x2c && scanner.i + 1 === line.length) return { key, record };
    return null;
  } catch (err) {
    if (err === NOT_PLAIN) return null;
    throw err;
  }
}
