/**
 * Encodes data lines (spec 1.6: `tag KEYWORD {n+}` CRLF `s1 {n+}` CRLF ...)
 * straight into large output chunks, for dumps of a whole directory: no
 * Buffer per line, one socket write per chunk. Byte for byte the same as
 * `dataLine` in encoder.ts.
 */
import type { DataKeyword } from './encoder.js';

const KEYWORD_BYTES: Record<DataKeyword, Buffer> = {
  MAILBOX: Buffer.from(' MAILBOX'),
  RESERVE: Buffer.from(' RESERVE'),
  DELETE: Buffer.from(' DELETE'),
  XSYNC: Buffer.from(' XSYNC'),
};

/** Largest bytes one literal marker ` {4294967295+}` CRLF takes. */
const MARKER_MAX = 16;

/** Where chunk memory comes from (a dump worker recycles its chunks' memory). */
export type ChunkAllocator = (size: number) => Buffer;

const allocateFresh: ChunkAllocator = (size) => Buffer.allocUnsafe(size);

export class ChunkEncoder {
  private buf: Buffer | null = null;
  private pos = 0;

  /** `emit` receives each full chunk; it owns the buffer from then on. */
  constructor(
    private readonly chunkSize: number,
    private readonly emit: (chunk: Buffer) => void,
    private readonly allocate: ChunkAllocator = allocateFresh,
  ) {}

  /** Bytes encoded but not yet emitted. */
  get pending(): number {
    return this.pos;
  }

  /** Appends one data line with the given strings. */
  line(tag: Buffer, keyword: DataKeyword, a: Buffer, b?: Buffer, c?: Buffer): void {
    const kw = KEYWORD_BYTES[keyword];
    const need = tag.length + kw.length + 2 + (MARKER_MAX + a.length) + (b ? MARKER_MAX + b.length : 0) + (c ? MARKER_MAX + c.length : 0);
    if (this.buf && this.pos + need > this.buf.length) this.flush();
    this.buf ??= this.allocate(Math.max(need, this.chunkSize));
    const out = this.buf;
    let o = this.pos;
    o += tag.copy(out, o);
    o += kw.copy(out, o);
    o = this.literal(out, o, a);
    if (b) o = this.literal(out, o, b);
    if (c) o = this.literal(out, o, c);
    out[o++] = 0x0d;
    out[o++] = 0x0a;
    this.pos = o;
  }

  private literal(out: Buffer, o: number, s: Buffer): number {
    out[o++] = 0x20;
    out[o++] = 0x7b;
    o = writeDecimal(out, o, s.length);
    out[o++] = 0x2b;
    out[o++] = 0x7d;
    out[o++] = 0x0d;
    out[o++] = 0x0a;
    return o + s.copy(out, o);
  }

  /** Emits what is encoded so far (if anything) and starts a new chunk. */
  flush(): void {
    if (this.pos === 0 || !this.buf) return;
    const chunk = this.buf.subarray(0, this.pos);
    this.buf = null;
    this.pos = 0;
    this.emit(chunk);
  }
}

function writeDecimal(out: Buffer, o: number, n: number): number {
  if (n < 10) {
    out[o] = 0x30 + n;
    return o + 1;
  }
  let digits = 0;
  for (let v = n; v > 0; v = Math.floor(v / 10)) digits++;
  let at = o + digits - 1;
  for (let v = n; v > 0; v = Math.floor(v / 10)) out[at--] = 0x30 + (v % 10);
  return o + digits;
}
