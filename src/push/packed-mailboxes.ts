/**
 * A list of mailboxes (name, location, ACL, state) packed into a few large
 * buffers. A push holds a backend's whole dump and the master's whole LIST,
 * 100,000 entries or more each: as objects with a Buffer per field, that is
 * half a million objects the garbage collector copies again and again (a
 * third of a push's time, measured); packed, it is a handful. Entries are read
 * back as views into the buffers, and compared in place.
 */
import type { Entry, EntryState } from '../store/types.js';

/**
 * The buffers' size: when one is full the next begins, so the list grows
 * without copying what it holds. An entry larger than this gets one of its own.
 */
const SLAB = 1 << 20;

/** Per entry: its slab, where it starts in it, and where its name, location and ACL end. */
const STRIDE = 5;

/**
 * Copies bytes [start, end) of `from` into `to` at `at`; answers where they end. Names and
 * ACLs are a few dozen bytes, for which a loop costs a fraction of Buffer.copy's call (measured).
 */
export function copyBytes(from: Buffer, start: number, end: number, to: Buffer, at: number): number {
  if (end - start > 64) return at + from.copy(to, at, start, end);
  for (let k = start; k < end; k++) to[at++] = from[k];
  return at;
}

export class PackedMailboxes {
  private readonly slabs: Buffer[] = [];
  private slab = Buffer.alloc(0);
  private used = 0;
  private index = new Uint32Array(STRIDE * 1024);
  private reserved = new Uint8Array(1024);
  count = 0;

  static of(entries: ReadonlyArray<{ name: Buffer; location: Buffer; acl: Buffer; state?: EntryState }>): PackedMailboxes {
    const packed = new PackedMailboxes();
    for (const e of entries) packed.add(e.name, e.location, e.acl, e.state ?? 'active');
    return packed;
  }

  add(name: Buffer, location: Buffer, acl: Buffer, state: EntryState): void {
    this.makeRoom(name.length + location.length + acl.length);
    const start = this.used;
    const nameEnd = copyBytes(name, 0, name.length, this.slab, start);
    const locationEnd = copyBytes(location, 0, location.length, this.slab, nameEnd);
    this.record(start, nameEnd, locationEnd, copyBytes(acl, 0, acl.length, this.slab, locationEnd), state);
  }

  /**
   * Room for an entry of up to `size` bytes, for a reader that lays it out in
   * place: it writes name, location and ACL into the slab answered, from
   * `free`, then calls `addWritten`. An entry never added costs nothing: the
   * next one is written over it.
   */
  room(size: number): Buffer {
    this.makeRoom(size);
    return this.slab;
  }

  /** Where the entry `room` made space for begins in that slab. */
  get free(): number {
    return this.used;
  }

  /** Adds the active entry written at `free` whose name, location and ACL end at the offsets given. */
  addWritten(nameEnd: number, locationEnd: number, aclEnd: number): void {
    this.record(this.used, nameEnd, locationEnd, aclEnd, 'active');
  }

  /** Indexes the entry just copied into the current slab at [start, aclEnd). */
  private record(start: number, nameEnd: number, locationEnd: number, aclEnd: number, state: EntryState): void {
    const at = this.count * STRIDE;
    this.index[at] = this.slabs.length - 1;
    this.index[at + 1] = start;
    this.index[at + 2] = nameEnd;
    this.index[at + 3] = locationEnd;
    this.index[at + 4] = aclEnd;
    this.used = aclEnd;
    this.reserved[this.count++] = state === 'reserved' ? 1 : 0;
  }

  name(i: number): Buffer {
    const at = i * STRIDE;
    return this.slabs[this.index[at]].subarray(this.index[at + 1], this.index[at + 2]);
  }

  location(i: number): Buffer {
    const at = i * STRIDE;
    return this.slabs[this.index[at]].subarray(this.index[at + 2], this.index[at + 3]);
  }

  acl(i: number): Buffer {
    const at = i * STRIDE;
    return this.slabs[this.index[at]].subarray(this.index[at + 3], this.index[at + 4]);
  }

  state(i: number): EntryState {
    return this.reserved[i] === 1 ? 'reserved' : 'active';
  }

  entry(i: number): Entry {
    return { name: this.name(i), state: this.state(i), location: this.location(i), acl: this.acl(i) };
  }

  entries(): Entry[] {
    const out: Entry[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.entry(i));
    return out;
  }

  /** Byte order of entry i's name against entry j's of `other`, without a view of either. */
  compareName(i: number, other: PackedMailboxes, j: number): number {
    const a = i * STRIDE;
    const b = j * STRIDE;
    const ix = this.index;
    const jx = other.index;
    return this.slabs[ix[a]].compare(other.slabs[jx[b]], jx[b + 1], jx[b + 2], ix[a + 1], ix[a + 2]);
  }

  /** Whether entry i and entry j of `other` have the same location and ACL. */
  sameLocationAndAcl(i: number, other: PackedMailboxes, j: number): boolean {
    const a = i * STRIDE;
    const b = j * STRIDE;
    const ix = this.index;
    const jx = other.index;
    // Location and ACL lie side by side: one comparison covers both, once the split point matches.
    if (ix[a + 3] - ix[a + 2] !== jx[b + 3] - jx[b + 2]) return false;
    return this.slabs[ix[a]].compare(other.slabs[jx[b]], jx[b + 2], jx[b + 4], ix[a + 2], ix[a + 4]) === 0;
  }

  private makeRoom(size: number): void {
    if (this.used + size > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB, size));
      this.slabs.push(this.slab);
      this.used = 0;
    }
    if (this.count === this.reserved.length) {
      const index = new Uint32Array(this.index.length * 2);
      index.set(this.index);
      this.index = index;
      const reserved = new Uint8Array(this.reserved.length * 2);
      reserved.set(this.reserved);
      this.reserved = reserved;
    }
  }
}
