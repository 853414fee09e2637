/**
 * One string argument (spec 1.5): a quoted string with backslash escapes, or
 * a `{n}` / `{n+}` literal. A `{n}` gets its `+ go ahead` only once its
 * count is known to be within the cap; a `{n+}` over the cap cannot be
 * refused politely (its bytes are on the way), so it is fatal. A NUL byte
 * makes the string invalid (Cyrus cuts the string there instead, spec 9.1).
 */
import { ByteAccumulator, BACKSLASH, CR, DQUOTE, LF, PLUS, RBRACE } from './bytes.js';
import type { Fatal, InputCursor } from './input-cursor.js';
import type { WireLimits } from './limits.js';
import { LiteralCount } from './literal-count.js';

export type StringStep =
  /** The string is complete; `invalid` when it held a NUL byte. */
  | { kind: 'string'; value: Buffer; invalid: boolean }
  /** Not a string at this position: the reader answers the BAD for it and skips the line. */
  | { kind: 'malformed' }
  /** A `{n}` over the cap: BAD, and no body follows since no go-ahead was sent. */
  | { kind: 'refused'; text: string }
  | Fatal;

type Phase = 'quoted' | 'quotedEscape' | 'litCount' | 'litClose' | 'litCR' | 'litLF' | 'litBody';

const MALFORMED: StringStep = { kind: 'malformed' };

function endsQuoted(c: number): boolean {
  return c === DQUOTE || c === BACKSLASH || c === CR || c === LF || c === 0;
}

export class StringToken {
  private phase: Phase = 'quoted';
  private str = new ByteAccumulator();
  private invalid = false;
  private readonly count = new LiteralCount();
  private litSync = false;
  private litRemaining = 0;

  constructor(
    private readonly input: InputCursor,
    private readonly limits: WireLimits,
    /** Sends `+ go ahead` for a synchronizing literal. */
    private readonly continuation: () => void,
  ) {}

  /** The opening `"` has been consumed. */
  beginQuoted(): void {
    this.phase = 'quoted';
    this.invalid = false;
  }

  /** The opening `{` has been consumed. */
  beginLiteral(): void {
    this.phase = 'litCount';
    this.count.reset();
    this.litSync = true;
  }

  reset(): void {
    this.str.clear();
    this.invalid = false;
  }

  /** Reads on at the cursor (which has at least one byte); null: not done yet. */
  step(): StringStep | null {
    const input = this.input;
    const b = input.buf[input.pos];
    switch (this.phase) {
      case 'quoted': {
        const room = Math.min(this.limits.maxString - this.str.length, this.limits.maxCommand - input.commandBytes);
        const end = input.gather(this.str, endsQuoted, room);
        if (typeof end !== 'number') return end;
        if (this.str.length > this.limits.maxString) return { kind: 'fatal', text: 'Quoted string too long' };
        if (end >= input.buf.length) return null;
        const c = input.buf[end];
        if (!endsQuoted(c)) return null; // stopped at a cap
        if (c === DQUOTE) {
          // A closing quote past the command cap is caught at the next byte consumed.
          input.consume(1);
          return this.finish();
        }
        if (c === BACKSLASH) {
          this.phase = 'quotedEscape';
          return input.consume(1);
        }
        if (c === 0) {
          // Cyrus would silently cut the string here; we refuse it instead (spec 1.5).
          this.invalid = true;
          return input.consume(1);
        }
        return MALFORMED; // CR or LF before the closing quote
      }
      case 'quotedEscape':
        if (b === CR || b === LF) return MALFORMED;
        if (b === 0) this.invalid = true;
        this.str.appendByte(b);
        this.phase = 'quoted';
        return input.consume(1);
      case 'litCount':
        // Saturates instead of overflowing; anything past MAX_COUNT is refused below.
        if (this.count.addDigit(b)) return input.consume(1);
        if (b === PLUS && this.count.digits > 0) {
          this.litSync = false;
          this.phase = 'litClose';
          return input.consume(1);
        }
        if (b === RBRACE && this.count.digits > 0) {
          this.phase = 'litClose';
          return null; // handled in litClose without consuming twice
        }
        return MALFORMED;
      case 'litClose': {
        if (b !== RBRACE) return MALFORMED;
        const fatal = input.consume(1);
        if (fatal) return fatal;
        // The body and the CRLF before it must also fit in what is left of the command's cap.
        const overString = this.count.value > this.limits.maxString;
        if (overString || input.commandBytes + 2 + this.count.value > this.limits.maxCommand) {
          const text = overString ? 'Literal too large' : 'Command too long';
          if (!this.litSync) return { kind: 'fatal', text };
          // No go-ahead was given, so no body follows: refuse and read on normally.
          return { kind: 'refused', text };
        }
        this.phase = 'litCR';
        return null;
      }
      case 'litCR':
        if (b === CR) {
          this.phase = 'litLF';
          return input.consume(1);
        }
        return MALFORMED;
      case 'litLF': {
        if (b !== LF) return MALFORMED;
        const fatal = input.consume(1);
        if (fatal) return fatal;
        if (this.litSync) this.continuation();
        this.litRemaining = this.count.value;
        this.invalid = false;
        this.phase = 'litBody';
        return this.litRemaining === 0 ? this.finish() : null;
      }
      case 'litBody': {
        const n = Math.min(this.litRemaining, input.buf.length - input.pos);
        const body = input.buf.subarray(input.pos, input.pos + n);
        if (body.indexOf(0) >= 0) this.invalid = true;
        this.str.append(Buffer.from(body));
        this.litRemaining -= n;
        const fatal = input.consume(n);
        if (fatal) return fatal;
        return this.litRemaining === 0 ? this.finish() : null;
      }
    }
  }

  private finish(): StringStep {
    return { kind: 'string', value: this.str.take(), invalid: this.invalid };
  }
}
