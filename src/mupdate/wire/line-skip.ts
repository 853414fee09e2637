/**
 * Skipping the rest of a refused command line (spec 8.2, C12). `{n+}` CRLF
 * bodies are skipped whole, so their bytes are never read as commands; a
 * `{n}` got no go-ahead, so no body follows it. A `{n+}` over the string cap
 * is fatal here too: its bytes cannot be refused.
 */
import { CR, LBRACE, LF, PLUS, RBRACE } from './bytes.js';
import type { Fatal, InputCursor } from './input-cursor.js';
import type { WireLimits } from './limits.js';
import { MAX_COUNT } from './string-token.js';

type Phase = 'skip' | 'skipCount' | 'skipClose' | 'skipCR' | 'skipLF' | 'skipBody';

/** The line's LF has been consumed. */
export const LINE_END = 'end';

export class LineSkipper {
  private phase: Phase = 'skip';
  private litCount = 0;
  private litDigits = 0;
  private litRemaining = 0;

  constructor(
    private readonly input: InputCursor,
    private readonly limits: WireLimits,
  ) {}

  /** Starts skipping at the cursor's byte. */
  begin(): void {
    this.phase = 'skip';
  }

  /** Skips on at the cursor (which has at least one byte); null: the line goes on. */
  step(): typeof LINE_END | Fatal | null {
    const input = this.input;
    const b = input.buf[input.pos];
    switch (this.phase) {
      case 'skip': {
        const end = input.scan((c) => c === LF || c === LBRACE);
        const fatal = input.consume(end - input.pos);
        if (fatal) return fatal;
        if (end >= input.buf.length) return null;
        const fatal2 = input.consume(1);
        if (fatal2) return fatal2;
        if (input.buf[end] === LF) return LINE_END;
        this.phase = 'skipCount';
        this.litCount = 0;
        this.litDigits = 0;
        return null;
      }
      case 'skipCount':
        if (b >= 0x30 && b <= 0x39) {
          this.litDigits++;
          this.litCount = Math.min(this.litCount * 10 + (b - 0x30), MAX_COUNT + 1);
          return input.consume(1);
        }
        if (b === PLUS && this.litDigits > 0) {
          this.phase = 'skipClose';
          return input.consume(1);
        }
        this.phase = 'skip';
        return null;
      case 'skipClose':
        if (b === RBRACE) {
          this.phase = 'skipCR';
          return input.consume(1);
        }
        this.phase = 'skip';
        return null;
      case 'skipCR':
        if (b === CR) {
          this.phase = 'skipLF';
          return input.consume(1);
        }
        this.phase = 'skip';
        return null;
      case 'skipLF':
        if (b === LF) {
          if (this.litCount > this.limits.maxString) return { kind: 'fatal', text: 'Literal too large' };
          this.litRemaining = this.litCount;
          this.phase = this.litRemaining > 0 ? 'skipBody' : 'skip';
          return input.consume(1);
        }
        this.phase = 'skip';
        return null;
      case 'skipBody': {
        const n = Math.min(this.litRemaining, input.buf.length - input.pos);
        this.litRemaining -= n;
        if (this.litRemaining === 0) this.phase = 'skip';
        return input.consume(n);
      }
    }
  }
}
