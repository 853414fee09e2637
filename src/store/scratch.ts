/**
 * A reusable buffer for transient views (Snapshot.scan): bytes are copied
 * into it, and the view of each length is made once and reused, so reading
 * an entry allocates nothing. Copying a short field byte by byte is cheaper
 * than making a new Buffer view of it.
 */
export class Scratch {
  private buf: Buffer;
  private views: Buffer[] = [];

  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Room for `length` bytes (the contents are lost when it grows). */
  room(length: number): Buffer {
    if (length > this.buf.length) {
      this.buf = Buffer.allocUnsafe(Math.max(length, this.buf.length * 2));
      this.views = [];
    }
    return this.buf;
  }

  /** The first `length` bytes of the buffer room() returned. */
  view(length: number): Buffer {
    return (this.views[length] ??= this.buf.subarray(0, length));
  }

  /** A copy of `src[start, end)`, as a view valid until the next use of this scratch. */
  copy(src: Uint8Array, start: number, end: number): Buffer {
    const length = end - start;
    const buf = this.room(length);
    if (length <= 64) for (let i = 0; i < length; i++) buf[i] = src[start + i]!;
    else buf.set(src.subarray(start, end));
    return this.view(length);
  }
}
