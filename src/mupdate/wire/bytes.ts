/** Growable byte buffer for tokens that may span several network chunks. */
export class ByteAccumulator {
  private chunks: Buffer[] = [];
  length = 0;

  append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  appendByte(byte: number): void {
    this.append(Buffer.of(byte));
  }

  take(): Buffer {
    const out = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.length);
    this.chunks = [];
    this.length = 0;
    return out;
  }

  clear(): void {
    this.chunks = [];
    this.length = 0;
  }
}

export const SP = 0x20;
export const TAB = 0x09;
export const CR = 0x0d;
export const LF = 0x0a;
export const DQUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const LBRACE = 0x7b;
export const RBRACE = 0x7d;
export const PLUS = 0x2b;

/** Bytes that end a tag or a command word (Cyrus's word reader). */
export function isWordDelimiter(b: number): boolean {
  return b === SP || b === TAB || b === CR || b === LF || b === 0x0b || b === 0x0c || b === 0x28 || b === 0x29 || b === DQUOTE;
}

/** ASCII-only upper-casing of a command word, so 8-bit bytes never match a command. */
export function asciiUpper(bytes: Buffer): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b >= 0x61 && b <= 0x7a ? b - 0x20 : b);
  return s;
}
