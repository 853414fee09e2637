/**
 * The digits of a literal's `{n}` / `{n+}` count (spec 1.5), read one byte at
 * a time by the string tokenizer and by the line skipper alike. The count
 * saturates instead of overflowing; anything past MAX_COUNT is refused by
 * the caller.
 */

/** Literal counts saturate here; anything past it is refused. */
export const MAX_COUNT = 2 ** 31 - 1;

export class LiteralCount {
  /** The count so far, at most MAX_COUNT + 1. */
  value = 0;
  /** How many digits were read. */
  digits = 0;

  /** A new count starts (after its `{`). */
  reset(): void {
    this.value = 0;
    this.digits = 0;
  }

  /** Adds `b` when it is an ASCII digit; false (and nothing changed) otherwise. */
  addDigit(b: number): boolean {
    if (b < 0x30 || b > 0x39) return false;
    this.digits++;
    this.value = Math.min(this.value * 10 + (b - 0x30), MAX_COUNT + 1);
    return true;
  }
}
