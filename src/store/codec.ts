/** Binary records for entries and change-log items (compact, no JSON on the hot path). */
import { createHash } from 'node:crypto';
import { Scratch } from './scratch.js';
import type { Entry, EntryState } from './types.js';

const STATE_CODE: Record<EntryState, number> = { active: 1, reserved: 2 };
const DELETED = 0;

/** `code u8 | nameLen u32 | name | locLen u32 | location | acl` */
function encode(code: number, name: Buffer, location: Buffer, acl: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + name.length + location.length + acl.length);
  out[0] = code;
  out.writeUInt32BE(name.length, 1);
  name.copy(out, 5);
  let o = 5 + name.length;
  out.writeUInt32BE(location.length, o);
  o += 4;
  location.copy(out, o);
  acl.copy(out, o + location.length);
  return out;
}

export function encodeEntry(e: Entry): Buffer {
  return encode(STATE_CODE[e.state], e.name, e.location, e.state === 'reserved' ? Buffer.alloc(0) : e.acl);
}

/** A change-log record: the entry after the change, or a deletion of `name`. */
export function encodeLogRecord(name: Buffer, entry: Entry | null): Buffer {
  return entry ? encodeEntry(entry) : encode(DELETED, name, Buffer.alloc(0), Buffer.alloc(0));
}

export interface DecodedRecord {
  name: Buffer;
  entry: Entry | null;
}

export function decodeRecord(raw: Uint8Array): DecodedRecord {
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const code = buf[0];
  const nameLen = buf.readUInt32BE(1);
  // Copies: lmdb-js may hand out views of memory it reuses.
  const name = Buffer.from(buf.subarray(5, 5 + nameLen));
  let o = 5 + nameLen;
  const locLen = buf.readUInt32BE(o);
  o += 4;
  const location = Buffer.from(buf.subarray(o, o + locLen));
  const acl = Buffer.from(buf.subarray(o + locLen));
  if (code === DELETED) return { name, entry: null };
  const state: EntryState = code === STATE_CODE.reserved ? 'reserved' : 'active';
  return { name, entry: { name, state, location, acl } };
}

/** A reusable entry whose buffers point into records or caches (no copies): valid only as long as those are. */
export type EntryView = Entry;

const EMPTY = Buffer.alloc(0);

/** Flag in the first byte of a format-2 value: the location follows inline, not as an id. */
const INLINE_LOCATION = 0x80;

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/**
 * A format-2 entry value (the name is in the key): `flags u8 | location | acl`.
 * `flags` is the state code (1 active, 2 reserved), plus 0x80 when the
 * location is inline; the location is the varint id of an interned location
 * (`locationId` > 0), or inline as varint length then bytes. Reserved entries
 * store no ACL.
 */
export function encodeValue(state: EntryState, locationId: number, location: Buffer, acl: Buffer): Buffer {
  const a = state === 'reserved' ? EMPTY : acl;
  const code = STATE_CODE[state];
  if (locationId > 0) {
    const out = Buffer.allocUnsafe(1 + varintLength(locationId) + a.length);
    out[0] = code;
    a.copy(out, writeVarint(out, 1, locationId));
    return out;
  }
  const out = Buffer.allocUnsafe(1 + varintLength(location.length) + location.length + a.length);
  out[0] = code | INLINE_LOCATION;
  const o = writeVarint(out, 1, location.length);
  location.copy(out, o);
  a.copy(out, o + location.length);
  return out;
}

// Results of readHead (single-threaded: read at once by the caller).
let headValue = 0;
let headEnd = 0;

/** Reads the varint after the flags byte of `raw[0, end)` into headValue, and where it ends into headEnd. */
function readHead(raw: Uint8Array, end: number): void {
  let n = 0;
  let shift = 1;
  let o = 1;
  for (;;) {
    if (o >= end) throw new Error('corrupt directory value');
    const b = raw[o++];
    n += (b & 0x7f) * shift;
    if (b < 0x80) break;
    shift *= 128;
  }
  headValue = n;
  headEnd = o;
}

function stateOf(flags: number): EntryState {
  return (flags & 0x7f) === STATE_CODE.reserved ? 'reserved' : 'active';
}

/** An independent Entry from a format-2 value `raw[0, end)`; `location(id)` resolves interned locations. */
export function decodeValue(name: Buffer, raw: Uint8Array, end: number, location: (id: number) => Buffer): Entry {
  const flags = raw[0];
  readHead(raw, end);
  const o = headEnd;
  const inline = (flags & INLINE_LOCATION) !== 0;
  // Everything from `raw` first: resolving a location may read the database, which can reuse raw's memory.
  const acl = Buffer.from(raw.subarray(inline ? o + headValue : o, end));
  const loc = inline ? Buffer.from(raw.subarray(o, o + headValue)) : Buffer.from(location(headValue));
  return { name, state: stateOf(flags), location: loc, acl };
}

/**
 * Reads format-2 values into a view (all but its name) without allocating:
 * the ACL and an inline location are copied into scratch buffers, an
 * interned location is the cached one. Valid until the next read.
 */
export class ValueReader {
  /** The interned location id of the last value read; 0 when its location was inline. */
  locationId = 0;
  private readonly acl = new Scratch();
  private readonly inline = new Scratch();

  constructor(private readonly location: (id: number) => Buffer) {}

  read(raw: Uint8Array, end: number, view: EntryView): void {
    const flags = raw[0];
    readHead(raw, end);
    const o = headEnd;
    view.state = stateOf(flags);
    // Everything from `raw` first: resolving a location may read the database, which can reuse raw's memory.
    if (flags & INLINE_LOCATION) {
      this.locationId = 0;
      view.acl = this.acl.copy(raw, o + headValue, end);
      view.location = this.inline.copy(raw, o, o + headValue);
    } else {
      this.locationId = headValue;
      view.acl = this.acl.copy(raw, o, end);
      view.location = this.location(headValue);
    }
  }
}

export function sameEntry(a: Entry | undefined | null, b: Entry | undefined | null): boolean {
  if (!a || !b) return !a && !b;
  return a.state === b.state && a.name.equals(b.name) && a.location.equals(b.location) && a.acl.equals(b.acl);
}

/**
 * A short digest of one change (its log record). Master and slave compute it
 * from the same bytes, so a resuming slave can prove it holds the master's
 * change at that sequence number, not one of a restored older copy.
 */
export function changeDigest(record: Uint8Array): string {
  return createHash('sha256').update(record).digest('base64url').slice(0, 22);
}
