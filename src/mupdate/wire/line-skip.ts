/**
 * Skipping the rest of a refused command line (spec 8.2, C12). `{n+}` CRLF
 * bodies are skipped whole, so their bytes are never read as commands; a
 * `{n}` got no go-ahead, so no body follows it. A `{n+}` over the string cap
 * is fatal here too: its bytes cannot be refused.
 */
import { CR, LBRACE, LF, PLUS, RBRACE } from './bytes.js';
import type { Fatal, InputCursor } from './input-cursor.js';
import type { WireLimits } from './limits.js';
import { LiteralCount } from './literal-count.js';

type Phase = 'skip' | 'skipCount' | 'skipClose' | 'skipCR' | 'skipLF' | 'skipBody';

/** The line's LF has been consumed. */
export const LINE_END = 'end';

export class LineSkipper {
  private phase: Phase = 'skip';
  private readonly count = new LiteralCount();
  private litRemaining = 0;

  constructor(
    private readonly input: InputCursor,
    private readonly limits: WireLimits,
  ) {}

  /** The cursor's byte is the expected one: it is consumed and `next` reads on. */
  private advance(next: Phase): Fatal | null {
    this.phase = next;
    return this.input.consume(1);
  }

  /** What followed the `{` is not a `{n+}` CRLF: plain skipping goes on at this same byte. */
  private notALiteral(): null {
    this.phase = 'skip';
    return null;
  }

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
        this.count.reset();
        return null;
      }
      case 'skipCount':
        if (this.count.addDigit(b)) return input.consume(1);
        return b === PLUS && this.count.digits > 0 ? this.advance('skipClose') : this.notALiteral();
      case 'skipClose':
        return b === RBRACE ? this.advance('skipCR') : this.notALiteral();
      case 'skipCR':
        return b === CR ? this.advance('skipLF') : this.notALiteral();
      case 'skipLF':
        if (b !== LF) return this.notALiteral();
        if (this.count.value > this.limits.maxString) return { kind: 'fatal', text: 'Literal too large' };
        this.litRemaining = this.count.value;
        return this.advance(this.litRemaining > 0 ? 'skipBody' : 'skip');
      case 'skipBody': {
        const n = Math.min(this.litRemaining, input.buf.length - input.pos);
        this.litRemaining -= n;
        if (this.litRemaining === 0) this.phase = 'skip';
        return input.consume(n);
      }
    }
  }
}
