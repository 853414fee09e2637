/**
 * A list of mailboxes (name, location, ACL, state) packed into one buffer.
 * A push holds a backend's whole dump and the master's whole LIST, 100,000
 * entries or more each: as objects with a Buffer per field, that is half a
 * million objects the garbage collector copies again and again (a third of
 * a push's time, measured); packed, it is a handful. Entries are read back
 * as views into the buffer, and compared in place.
 */
import type { Entry, EntryState } from '../store/types.js';

/** Per entry: where its name, location and ACL end (each starts where the one before ends). */
const ENDS = 3;

export class PackedMailboxes {
  private bytes = Buffer.allocUnsafeSlow(1 << 16);
  private used = 0;
  private ends = new Uint32Array(ENDS * 1024);
  private reserved = new Uint8Array(1024);
  count = 0;

  static of(entries: ReadonlyArray<{ name: Buffer; location: Buffer; acl: Buffer; state?: EntryState }>): PackedMailboxes {
    const packed = new PackedMailboxes();
    for (const e of entries) packed.add(e.name, e.location, e.acl, e.state ?? 'active');
    return packed;
  }

  add(name: Buffer, location: Buffer, acl: Buffer, state: EntryState): void {
    this.makeRoom(name.length + location.length + acl.length);
    const at = this.count * ENDS;
    let used = this.used;
    used += name.copy(this.bytes, used);
    this.ends[at] = used;
    used += location.copy(this.bytes, used);
    this.ends[at + 1] = used;
    used += acl.copy(this.bytes, used);
    this.ends[at + 2] = used;
    this.used = used;
    this.reserved[this.count++] = state === 'reserved' ? 1 : 0;
  }

  name(i: number): Buffer {
    return this.bytes.subarray(this.start(i), this.ends[i * ENDS]);
  }

  location(i: number): Buffer {
    return this.bytes.subarray(this.ends[i * ENDS], this.ends[i * ENDS + 1]);
  }

  acl(i: number): Buffer {
    return this.bytes.subarray(this.ends[i * ENDS + 1], this.ends[i * ENDS + 2]);
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
    return this.bytes.compare(other.bytes, other.start(j), other.ends[j * ENDS], this.start(i), this.ends[i * ENDS]);
  }

  /** Whether entry i and entry j of `other` have the same location and ACL. */
  sameLocationAndAcl(i: number, other: PackedMailboxes, j: number): boolean {
    // Location and ACL lie side by side: one comparison covers both, once the split point matches.
    const locationLength = this.ends[i * ENDS + 1] - this.ends[i * ENDS];
    if (locationLength !== other.ends[j * ENDS + 1] - other.ends[j * ENDS]) return false;
    return (
      this.bytes.compare(other.bytes, other.ends[j * ENDS], other.ends[j * ENDS + 2], this.ends[i * ENDS], this.ends[i * ENDS + 2]) === 0
    );
  }

  private start(i: number): number {
    return i === 0 ? 0 : this.ends[i * ENDS - 1];
  }

  private makeRoom(size: number): void {
    if (this.used + size > this.bytes.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.used + size));
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
    }
    if (this.count === this.reserved.length) {
      const ends = new Uint32Array(this.ends.length * 2);
      ends.set(this.ends);
      this.ends = ends;
      const reserved = new Uint8Array(this.reserved.length * 2);
      reserved.set(this.reserved);
      this.reserved = reserved;
    }
  }
}
