/**
 * A batch of directory entries packed into one buffer, so that a thread
 * parsing a dump can hand it to the thread that writes it as one transferred
 * ArrayBuffer instead of thousands of cloned objects. Per entry: its state
 * (1 byte), then name, location and ACL, each as a 32-bit length and bytes.
 * Unpacked entries are views into the buffer: nothing is copied.
 */
import type { BatchItem, Entry, EntryState } from '../store/types.js';

const STATE_CODES: Record<EntryState, number> = { active: 1, reserved: 2 };
const STATES: Record<number, EntryState> = { 1: 'active', 2: 'reserved' };

/** Collects entries into one growing buffer. */
export class BatchPacker {
  private buffer = Buffer.allocUnsafeSlow(1 << 20);
  private used = 0;
  count = 0;

  add(entry: Entry): void {
    const size = 13 + entry.name.length + entry.location.length + entry.acl.length;
    if (this.used + size > this.buffer.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, this.used + size));
      this.buffer.copy(grown, 0, 0, this.used);
      this.buffer = grown;
    }
    const at = this.buffer.writeUInt8(STATE_CODES[entry.state], this.used);
    this.used = this.part(entry.acl, this.part(entry.location, this.part(entry.name, at)));
    this.count++;
  }

  /** Writes one length-prefixed part at `at`; answers where the next begins. */
  private part(bytes: Buffer, at: number): number {
    const start = this.buffer.writeUInt32LE(bytes.length, at);
    return start + bytes.copy(this.buffer, start);
  }

  /** The packed bytes so far, as an ArrayBuffer of their own; the packer starts over. */
  take(): ArrayBuffer {
    const out = new Uint8Array(this.used);
    out.set(this.buffer.subarray(0, this.used));
    this.used = 0;
    this.count = 0;
    return out.buffer;
  }
}

/** The entries of a packed batch, as BatchItems viewing the buffer. */
export function unpackBatch(data: ArrayBuffer): BatchItem[] {
  const b = Buffer.from(data);
  const items: BatchItem[] = [];
  let at = 0;
  const part = (): Buffer => {
    const length = b.readUInt32LE(at);
    const start = at + 4;
    at = start + length;
    return b.subarray(start, at);
  };
  while (at < b.length) {
    const state = STATES[b.readUInt8(at++)];
    if (!state) throw new Error(`packed batch: unknown state at byte ${at - 1}`);
    const name = part();
    const entry: Entry = { name, state, location: part(), acl: part() };
    items.push({ name, entry });
  }
  return items;
}
