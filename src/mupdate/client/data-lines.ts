/**
 * A fast reader for the plainest data lines a master sends in bulk (a LIST's
 * `tag MAILBOX s1 s2 s3` and `tag RESERVE s1 s2`, strings as literals or
 * quoted without escapes), straight from the received bytes. It takes only
 * lines the general reader (wire/reader.ts) would read to the same word and
 * strings; for anything else it stops, and the general reader goes on from there.
 */
import { CR, DQUOTE, LBRACE, LF, PLUS, RBRACE, SP, isWordDelimiter } from '../wire/bytes.js';
import type { WireLimits } from '../wire/limits.js';
import { RESPONSE_SHAPES } from './responses.js';

export interface DataLine {
  word: string;
  args: Buffer[];
  /** Where the next line starts. */
  end: number;
}

/** The line is not complete in the buffer yet. */
export const MORE = 'more';

const BACKSLASH = 0x5c;
const WORDS = new Map(['MAILBOX', 'RESERVE'].map((w) => [w, Buffer.from(w, 'latin1')]));

function wordAt(buf: Buffer, start: number, end: number): string | null {
  for (const [word, bytes] of WORDS) if (end - start === bytes.length && buf.compare(bytes, 0, bytes.length, start, end) === 0) return word;
  return null;
}

/** One string argument at `p`: [start, end, next] of its bytes, MORE, or null when the general reader should see it. */
function stringAt(buf: Buffer, p: number, limits: WireLimits): [number, number, number] | typeof MORE | null {
  const c = buf[p];
  if (c === DQUOTE) {
    for (let q = p + 1; q < buf.length; q++) {
      const b = buf[q];
      if (b === DQUOTE) return q - p - 1 > limits.maxString ? null : [p + 1, q, q + 1];
      if (b === BACKSLASH || b === CR || b === LF || b === 0) return null;
    }
    return buf.length - p > limits.maxString ? null : MORE;
  }
  if (c !== LBRACE) return null;
  let q = p + 1;
  let count = 0;
  while (q < buf.length && buf[q] >= 0x30 && buf[q] <= 0x39 && q - p <= 10) count = count * 10 + (buf[q++] - 0x30);
  if (q === p + 1 || q - p > 10) return q >= buf.length ? MORE : null;
  if (buf[q] === PLUS) q++;
  if (q + 3 > buf.length) return MORE;
  if (buf[q] !== RBRACE || buf[q + 1] !== CR || buf[q + 2] !== LF || count > limits.maxString) return null;
  const start = q + 3;
  if (start + count > buf.length) return MORE;
  for (let i = start; i < start + count; i++) if (buf[i] === 0) return null;
  return [start, start + count, start + count];
}

/** The data line starting at `pos`, MORE if it is not all there, null if the general reader should read it. */
export function scanDataLine(buf: Buffer, pos: number, limits: WireLimits): DataLine | typeof MORE | null {
  let p = pos;
  while (p < buf.length && !isWordDelimiter(buf[p])) p++;
  if (p >= buf.length) return p - pos > limits.maxTag ? null : MORE;
  if (p === pos || p - pos > limits.maxTag || buf[p] !== SP) return null;
  const wordStart = ++p;
  while (p < buf.length && !isWordDelimiter(buf[p])) p++;
  if (p >= buf.length) return p - wordStart > 16 ? null : MORE;
  const word = wordAt(buf, wordStart, p);
  if (word === null || buf[p] !== SP) return null;
  const shape = RESPONSE_SHAPES[word];
  if (shape?.kind !== 'args') return null;
  const args: Buffer[] = [];
  for (;;) {
    if (++p >= buf.length) return MORE;
    if (args.length >= shape.max) return null;
    const s = stringAt(buf, p, limits);
    if (s === null || s === MORE) return s;
    args.push(buf.subarray(s[0], s[1]));
    p = s[2];
    if (p >= buf.length) return MORE;
    if (p - pos + 2 >= limits.maxCommand) return null;
    if (buf[p] === SP) continue;
    if (buf[p] === CR) {
      if (p + 1 >= buf.length) return MORE;
      if (buf[p + 1] !== LF) return null;
      p++;
    } else if (buf[p] !== LF) return null;
    return args.length >= shape.min ? { word, args, end: p + 1 } : null;
  }
}

/** A partial line the fast reader keeps waiting for; longer ones go to the general reader. */
const PENDING_MAX = 1 << 16;
/** How many new bytes are tried first to complete a waiting line. */
const JOIN_AHEAD = 4096;

/** Reads the plain data lines at the start of an answer, as its bytes arrive. */
export class DataLineStream {
  private pending: Buffer | null = null;
  /** How many lines were taken so far. */
  lines = 0;

  constructor(
    private readonly onData: (word: string, args: Buffer[]) => void,
    private readonly limits: WireLimits,
  ) {}

  /** Null while every byte so far was read here; else the bytes the general reader must read from now on. */
  read(d: Buffer): Buffer | null {
    let buf = d;
    let pos = 0;
    const pending = this.pending;
    this.pending = null;
    if (pending) {
      // The waiting line is completed from the start of the new bytes: joining it to all of
      // them would copy every chunk once more. Anything else goes the long way, through the join.
      const joined = Buffer.concat([pending, d.subarray(0, JOIN_AHEAD)]);
      const line = scanDataLine(joined, 0, this.limits);
      if (line !== null && line !== MORE) {
        this.onData(line.word, line.args);
        this.lines++;
        pos = line.end - pending.length;
      } else buf = Buffer.concat([pending, d]);
    }
    for (;;) {
      const line = scanDataLine(buf, pos, this.limits);
      if (line === MORE && buf.length - pos <= PENDING_MAX) {
        if (pos < buf.length) this.pending = buf.subarray(pos);
        return null;
      }
      if (line === MORE || line === null) return buf.subarray(pos);
      this.onData(line.word, line.args);
      this.lines++;
      pos = line.end;
    }
  }

  /** The start of a line not all received yet. */
  unread(): Buffer | null {
    return this.pending;
  }
}
