/** Binary records for entries and change-log items (compact, no JSON on the hot path). */
import { createHash } from 'node:crypto';
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
  const code = buf[0]!;
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

/** A reusable entry whose buffers point into one record (no copies): valid only as long as the record is. */
export type EntryView = Entry;

/** Fills `view` with subarrays of an entry record (deletion records never reach here). */
export function viewRecord(raw: Buffer, view: EntryView): void {
  const nameLen = raw.readUInt32BE(1);
  let o = 5 + nameLen;
  const locLen = raw.readUInt32BE(o);
  o += 4;
  view.state = raw[0] === STATE_CODE.reserved ? 'reserved' : 'active';
  view.name = raw.subarray(5, 5 + nameLen);
  view.location = raw.subarray(o, o + locLen);
  view.acl = raw.subarray(o + locLen);
}

export function decodeEntry(raw: Uint8Array): Entry {
  const { name, entry } = decodeRecord(raw);
  if (!entry) throw new Error(`corrupt directory record for ${name.toString('latin1')}`);
  return entry;
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
