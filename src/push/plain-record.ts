/**
 * The push's reader for the plainest dump lines, straight from their bytes:
 * `"name": {...}` (or with a trailing comma) in printable ASCII without a
 * backslash, members whose values are strings, objects or arrays. That is
 * every line `ctl_mboxlist -d` writes for ordinary mailboxes. It gives what
 * the general path gives (DumpParser, recordFromDump, then the push's own
 * filter): the first of each member counts, a non-string name, server or
 * partition counts as absent, an ACL that is not an object as empty. For
 * anything else (an escape, a number, `x_raw`, a non-string mbtype or rights)
 * it declines, and the line goes the general way, errors included.
 */
import { BACKSLASH, DQUOTE as QUOTE, LBRACE, RBRACE, SP as SPACE, TAB } from '../mupdate/wire/bytes.js';
import { copyBytes, type PackedMailboxes } from './packed-mailboxes.js';

const COLON = 0x3a;
const COMMA = 0x2c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const BANG = 0x21;

/** What an object's members are: the record's own, an ACL's pairs, or stepped over. */
type ObjectKind = 0 | 1 | 2;
const RECORD: ObjectKind = 0;
const RIGHTS: ObjectKind = 1;
const SKIPPED: ObjectKind = 2;

/** Deeper nesting than this is left to the general reader (nothing Cyrus writes comes close). */
const MAX_DEPTH = 32;

/** A record without a partition is on the backend's `default` one. */
const DEFAULT_PARTITION = Buffer.from('default');

/** Declines the line: the general reader takes it. One instance, thrown without a stack. */
const DECLINE = new Error('not a plain line');

/** Where the fields of the record being read are, as [start, end) of the line's buffer; -1: absent. */
class Fields {
  seen = 0;
  nameStart = -1;
  nameEnd = -1;
  serverStart = -1;
  serverEnd = -1;
  partitionStart = -1;
  partitionEnd = -1;
  mbtypeStart = -1;
  mbtypeEnd = -1;
  /** The ACL's pairs as id start, id end, rights start, rights end. */
  acl: number[] = [];

  reset(): void {
    this.seen = 0;
    this.nameStart = this.serverStart = this.partitionStart = this.mbtypeStart = -1;
    this.acl.length = 0;
  }
}

const NAME = 1;
const SERVER = 2;
const PARTITION = 4;
const MBTYPE = 8;
const ACL = 16;

/** Reads one plain line into a backend's packed list. */
export class PlainRecordReader {
  private readonly fields = new Fields();
  private b: Buffer = Buffer.alloc(0);
  private i = 0;
  private end = 0;
  private readonly backend: Buffer;
  /** A backend name in ASCII only: the general path compares others as text, which this one does not. */
  private readonly usable: boolean;

  constructor(
    backend: string,
    private readonly out: PackedMailboxes,
  ) {
    this.backend = Buffer.from(backend, 'latin1');
    this.usable = /^[\x20-\x7e]*$/.test(backend);
  }

  /**
   * Takes the line in bytes [start, end) of `b` (without its line break) and
   * adds it to the list if it is one of the backend's active mailboxes. False:
   * the line is not plain, and nothing was added.
   */
  take(b: Buffer, start: number, end: number): boolean {
    if (!this.usable || end - start < 2 || b[start] !== QUOTE) return false;
    for (let k = start; k < end; k++) {
      const c = b[k];
      if (c < SPACE || c > 0x7e || c === BACKSLASH) return false;
    }
    this.b = b;
    this.i = start;
    this.end = end;
    const f = this.fields;
    f.reset();
    try {
      const keyStart = this.i + 1;
      const keyEnd = this.string();
      this.spaces();
      this.expect(COLON);
      this.spaces();
      if (b[this.i] !== LBRACE) throw DECLINE;
      this.object(0, RECORD);
      this.spaces();
      if (this.i !== end && !(b[this.i] === COMMA && this.i + 1 === end)) throw DECLINE;
      if ((f.seen & NAME) === 0 || f.nameStart < 0) {
        f.nameStart = keyStart;
        f.nameEnd = keyEnd;
      }
    } catch (err) {
      if (err === DECLINE) return false;
      throw err;
    }
    this.add();
    return true;
  }

  /** The record as the push keeps it, if it is an active mailbox of this backend: laid out in place in the list. */
  private add(): void {
    const b = this.b;
    const f = this.fields;
    // mbtype: `d` (deleted) and `i` (intermediate) are not directory entries; `z` is a reservation.
    for (let k = f.mbtypeStart; k >= 0 && k < f.mbtypeEnd; k++) if (b[k] === 0x64 || b[k] === 0x69 || b[k] === 0x7a) return;
    const hasServer = f.serverStart >= 0;
    const hasPartition = f.partitionStart >= 0;
    const partitionLength = hasPartition ? f.partitionEnd - f.partitionStart : DEFAULT_PARTITION.length;
    const locationLength = (hasServer ? f.serverEnd - f.serverStart : this.backend.length) + 1 + partitionLength;
    let aclLength = 0;
    for (let p = 0; p < f.acl.length; p += 4) aclLength += f.acl[p + 1] - f.acl[p] + f.acl[p + 3] - f.acl[p + 2] + 2;
    const s = this.out.room(f.nameEnd - f.nameStart + locationLength + aclLength);
    let at = copyBytes(b, f.nameStart, f.nameEnd, s, this.out.free);
    const nameEnd = at;
    if (hasServer) {
      // A record naming its server: the push keeps it only if that server is this backend.
      at = copyBytes(b, f.serverStart, f.serverEnd, s, at);
      if (hasPartition) {
        s[at++] = BANG;
        at = copyBytes(b, f.partitionStart, f.partitionEnd, s, at);
      }
      const backend = this.backend;
      if (at - nameEnd <= backend.length || s[nameEnd + backend.length] !== BANG) return;
      for (let k = 0; k < backend.length; k++) if (s[nameEnd + k] !== backend[k]) return;
    } else {
      at = copyBytes(this.backend, 0, this.backend.length, s, at);
      s[at++] = BANG;
      at = hasPartition
        ? copyBytes(b, f.partitionStart, f.partitionEnd, s, at)
        : copyBytes(DEFAULT_PARTITION, 0, DEFAULT_PARTITION.length, s, at);
    }
    const locationEnd = at;
    for (let p = 0; p < f.acl.length; p += 4) {
      at = copyBytes(b, f.acl[p], f.acl[p + 1], s, at);
      s[at++] = TAB;
      at = copyBytes(b, f.acl[p + 2], f.acl[p + 3], s, at);
      s[at++] = TAB;
    }
    this.out.addWritten(nameEnd, locationEnd, at);
  }

  private spaces(): void {
    const b = this.b;
    while (this.i < this.end && b[this.i] === SPACE) this.i++;
  }

  private expect(c: number): void {
    if (this.i >= this.end || this.b[this.i] !== c) throw DECLINE;
    this.i++;
  }

  /** A string at the cursor (its opening quote); answers where its text ends. */
  private string(): number {
    if (this.b[this.i] !== QUOTE) throw DECLINE;
    const close = this.b.indexOf(QUOTE, this.i + 1);
    if (close < 0 || close >= this.end) throw DECLINE;
    this.i = close + 1;
    return close;
  }

  /** An object at the cursor: a member's value is the record's (RECORD), an ACL's rights (RIGHTS), or stepped over. */
  private object(depth: number, kind: ObjectKind): void {
    if (depth > MAX_DEPTH) throw DECLINE;
    this.i++;
    this.spaces();
    if (this.b[this.i] === RBRACE) return void this.i++;
    for (;;) {
      this.spaces();
      const keyStart = this.i + 1;
      const keyEnd = this.string();
      this.spaces();
      this.expect(COLON);
      this.spaces();
      if (kind === RECORD) this.member(keyStart, keyEnd, depth);
      else if (kind === RIGHTS) this.fields.acl.push(keyStart, keyEnd, this.i + 1, this.string());
      else this.value(depth + 1);
      this.spaces();
      const c = this.b[this.i++];
      if (c === COMMA && this.i < this.end) continue;
      if (c === RBRACE) return;
      throw DECLINE;
    }
  }

  /** A member of the record: the first name, server, partition, mbtype and acl are kept. */
  private member(keyStart: number, keyEnd: number, depth: number): void {
    const bit = memberBit(this.b, keyStart, keyEnd);
    const f = this.fields;
    if (bit === -1) throw DECLINE; // x_raw: the general reader decodes it
    if (bit === 0 || (f.seen & bit) !== 0) return this.value(depth + 1);
    f.seen |= bit;
    const isString = this.b[this.i] === QUOTE;
    // The ACL: every pair, in order; rights that are not strings go to the general reader.
    if (bit === ACL) return this.b[this.i] === LBRACE ? this.object(depth + 1, RIGHTS) : this.value(depth + 1);
    if (!isString) {
      if (bit === MBTYPE) throw DECLINE;
      return this.value(depth + 1);
    }
    const start = this.i + 1;
    const end = this.string();
    if (bit === NAME) {
      f.nameStart = start;
      f.nameEnd = end;
    } else if (bit === SERVER) {
      f.serverStart = start;
      f.serverEnd = end;
    } else if (bit === PARTITION) {
      f.partitionStart = start;
      f.partitionEnd = end;
    } else {
      f.mbtypeStart = start;
      f.mbtypeEnd = end;
    }
  }

  /** Steps over a string, object or array; anything else (numbers, true, false, null) declines. */
  private value(depth: number): void {
    const c = this.b[this.i];
    if (c === QUOTE) return void this.string();
    if (c === LBRACE) return this.object(depth, SKIPPED);
    if (c !== LBRACKET || depth > MAX_DEPTH) throw DECLINE;
    this.i++;
    this.spaces();
    if (this.b[this.i] === RBRACKET) return void this.i++;
    for (;;) {
      this.spaces();
      this.value(depth + 1);
      this.spaces();
      const d = this.b[this.i++];
      if (d === COMMA && this.i < this.end) continue;
      if (d === RBRACKET) return;
      throw DECLINE;
    }
  }
}

const KEPT: Array<[Buffer, number]> = [
  [Buffer.from('name'), NAME],
  [Buffer.from('server'), SERVER],
  [Buffer.from('partition'), PARTITION],
  [Buffer.from('mbtype'), MBTYPE],
  [Buffer.from('acl'), ACL],
  [Buffer.from('x_raw'), -1],
];

/** Which kept member a key names (0: none kept; -1: x_raw). */
function memberBit(b: Buffer, start: number, end: number): number {
  const n = end - start;
  outer: for (const [word, bit] of KEPT) {
    if (word.length !== n) continue;
    for (let k = 0; k < n; k++) if (b[start + k] !== word[k]) continue outer;
    return bit;
  }
  return 0;
}
