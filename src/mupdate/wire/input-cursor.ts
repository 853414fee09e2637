/**
 * The reader's input: bytes received but not yet parsed, and the byte count
 * of the command being read, checked against its cap on every byte consumed
 * (spec 1.7). The tokenizers (string-token.ts, line-skip.ts) and the command
 * reader all advance through this one cursor.
 */
import { ByteAccumulator, CR, LF } from './bytes.js';
import type { WireLimits } from './limits.js';

/** Over a limit: the connection gets `* BYE "text"` and is closed. */
export type Fatal = { kind: 'fatal'; text: string };

export type SaslLineResult = { kind: 'line'; line: Buffer } | Fatal;

/** Most bytes of a line's rest kept when the rest is captured (the reader's 'rest' policy). */
const REST_CAPTURE = 8192;

export class InputCursor {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  /** Bytes of the current command consumed so far. */
  commandBytes = 0;
  /** Collects what is consumed, when the reader wants a line's raw rest. */
  private capture: ByteAccumulator | null = null;

  constructor(private readonly limits: WireLimits) {}

  /** Bytes received but not yet parsed. */
  get buffered(): number {
    return this.buf.length - this.pos;
  }

  push(chunk: Buffer): void {
    if (this.pos >= this.buf.length) {
      this.buf = chunk;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
    }
    this.pos = 0;
  }

  /** Drops everything received but not parsed (bytes pipelined after STARTTLS). */
  discardBuffered(): void {
    this.buf = Buffer.alloc(0);
    this.pos = 0;
  }

  /** A new command starts: its byte count restarts and nothing is captured. */
  startCommand(): void {
    this.capture = null;
    this.commandBytes = 0;
  }

  /** From now on the consumed bytes are kept, up to REST_CAPTURE. */
  startCapture(): void {
    this.capture = new ByteAccumulator();
  }

  /** What was captured (null when nothing was asked for); capturing stops. */
  takeCapture(): Buffer | null {
    const captured = this.capture ? this.capture.take() : null;
    this.capture = null;
    return captured;
  }

  /** Consumes n bytes of the current command, enforcing the per-command cap. */
  consume(n: number): Fatal | null {
    if (this.capture && this.capture.length < REST_CAPTURE) this.capture.append(Buffer.from(this.buf.subarray(this.pos, this.pos + n)));
    this.pos += n;
    this.commandBytes += n;
    return this.commandBytes > this.limits.maxCommand ? { kind: 'fatal', text: 'Command too long' } : null;
  }

  /**
   * Index of the first byte from pos on that matches, or the end of the
   * buffer; never more than `room` + 1 bytes on, so a limit is noticed at the
   * byte that crosses it whatever the chunking.
   */
  scan(stop: (b: number) => boolean, room = Infinity): number {
    let i = this.pos;
    const buf = this.buf;
    const end = Math.min(buf.length, this.pos + room + 1);
    while (i < end && !stop(buf[i])) i++;
    return i;
  }

  /**
   * Appends the bytes from pos up to the first `stop` byte (at most `room` + 1
   * on, as scan) to `into` and consumes them: the index it stopped at, or
   * Fatal when the command grew past its cap.
   */
  gather(into: ByteAccumulator, stop: (b: number) => boolean, room = Infinity): number | Fatal {
    const end = this.scan(stop, room);
    into.append(this.buf.subarray(this.pos, end));
    return this.consume(end - this.pos) ?? end;
  }

  /** Reads one raw line (SASL exchange), without its CR LF. Null when the line is not complete yet. */
  readRawLine(): SaslLineResult | null {
    const lf = this.buf.indexOf(LF, this.pos);
    const end = lf < 0 ? this.buf.length : lf;
    if (end - this.pos > this.limits.maxSaslLine) return { kind: 'fatal', text: 'SASL response too long' };
    if (lf < 0) return null;
    let line = this.buf.subarray(this.pos, lf);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    this.pos = lf + 1;
    return { kind: 'line', line: Buffer.from(line) };
  }
}
