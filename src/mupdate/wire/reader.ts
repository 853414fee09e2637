/**
 * Incremental command reader: turns the client's byte stream into commands,
 * whatever way it is chunked (one byte per packet or many commands per packet).
 * This module assembles the command line (tag, word, arguments, the BAD for
 * each malformed position); string-token.ts reads one string argument,
 * line-skip.ts skips a refused line, input-cursor.ts holds the bytes and the
 * per-command cap.
 *
 * Grammar and error texts follow the Cyrus 3.6 server (spec 1.2-1.7, 3.0):
 * `tag SP word [SP string]* EOL`, where a string is a quoted string or a
 * `{n}` / `{n+}` literal and EOL is LF with an optional CR before it.
 * The reader yields one result at a time and parses nothing more until it is
 * asked again, so state changes made by one command (login, STARTTLS) apply
 * to the next one.
 */
import { ByteAccumulator, CR, DQUOTE, LBRACE, LF, SP, asciiUpper, isWordDelimiter } from './bytes.js';
import { InputCursor, type Fatal, type SaslLineResult } from './input-cursor.js';
import type { WireLimits } from './limits.js';
import { LINE_END, LineSkipper } from './line-skip.js';
import { StringToken, type StringStep } from './string-token.js';

export type { SaslLineResult } from './input-cursor.js';

/** What the session wants done with a command once its word is known. */
export type ArgPolicy =
  /** Parse min..max string arguments. `hosts`: UPDATE's host-list rules. */
  | { kind: 'args'; min: number; max: number; hosts?: boolean }
  /** Answer `tag BAD text` without parsing the arguments (rest of line skipped). */
  | { kind: 'reject'; text: string }
  /** Yield the command with the raw rest of its line as one argument (lenient reading of responses). */
  | { kind: 'rest' };

export type ReadResult =
  | { kind: 'command'; tag: Buffer; word: string; args: Buffer[] }
  /** Answer `tag BAD "text"` (untagged when tag is null); the line is consumed. */
  | { kind: 'bad'; tag: Buffer | null; text: string }
  /** Over a limit: answer `* BYE "text"` and close the connection. */
  | Fatal;

export interface ReaderHooks {
  classify(word: string): ArgPolicy;
  /** Called when a synchronizing literal's `+ go ahead` must be sent. */
  continuation(): void;
}

export const TEXT = {
  needCommand: 'Need command',
  nullCommand: 'Null command',
  missing: 'Missing arguments',
  extra: 'Extra arguments',
  badlyFormed: 'Badly formed arguments',
} as const;

/** Where in the command line the reader is; a string argument or a skipped rest is read by its own tokenizer. */
type Phase = 'tag' | 'word' | 'wordCR' | 'argStart' | 'string' | 'afterArg' | 'afterArgCR' | 'skip';

export class CommandReader {
  private readonly input: InputCursor;
  private readonly token: StringToken;
  private readonly skipper: LineSkipper;

  private phase: Phase = 'tag';
  private tag = new ByteAccumulator();
  private word = new ByteAccumulator();
  private tagBytes: Buffer = Buffer.alloc(0);
  private wordText = '';
  private policy: ArgPolicy = { kind: 'args', min: 0, max: 0 };
  private args: Buffer[] = [];
  /** The answer to give once the rest of the line has been skipped. */
  private pending: ReadResult | null = null;

  constructor(
    private readonly limits: WireLimits,
    private readonly hooks: ReaderHooks,
  ) {
    this.input = new InputCursor(limits);
    this.token = new StringToken(this.input, limits, () => hooks.continuation());
    this.skipper = new LineSkipper(this.input, limits);
  }

  /** Bytes received but not yet parsed. */
  get buffered(): number {
    return this.input.buffered;
  }

  push(chunk: Buffer): void {
    this.input.push(chunk);
  }

  /** Drops everything received but not parsed (bytes pipelined after STARTTLS). */
  discardBuffered(): void {
    this.input.discardBuffered();
  }

  /** True when no command is partly read. */
  get atCommandStart(): boolean {
    return this.phase === 'tag' && this.tag.length === 0;
  }

  /** Reads one raw line (SASL exchange). Null when the line is not complete yet. */
  readSaslLine(): SaslLineResult | null {
    return this.input.readRawLine();
  }

  /** Parses as far as the buffered bytes allow; null means more input is needed. */
  next(): ReadResult | null {
    while (this.input.buffered > 0) {
      const result = this.step();
      if (result) {
        if (result.kind !== 'fatal') this.reset();
        return result;
      }
    }
    return null;
  }

  private reset(): void {
    this.input.startCommand();
    this.phase = 'tag';
    this.tag.clear();
    this.word.clear();
    this.token.reset();
    this.args = [];
    this.pending = null;
  }

  /** Starts skipping the rest of the line at the current byte; `answer` is given afterwards. */
  private skipWith(answer: ReadResult): ReadResult | null {
    this.pending = answer;
    this.phase = 'skip';
    this.skipper.begin();
    return null;
  }

  /** The command line ended; emit the pending answer, or the command itself. */
  private endOfLine(): ReadResult {
    if (this.pending) return this.pending;
    const policy = this.policy;
    if (policy.kind === 'args' && this.args.length < policy.min) return this.bad(TEXT.missing);
    return { kind: 'command', tag: this.tagBytes, word: this.wordText, args: this.args };
  }

  private bad(text: string): ReadResult {
    return { kind: 'bad', tag: this.tagBytes, text };
  }

  /** The error for something that is not a valid string at the current argument position. */
  private notAStringError(): ReadResult {
    const policy = this.policy;
    if (policy.kind !== 'args') return this.bad(TEXT.extra);
    if (policy.hosts) return this.bad(TEXT.badlyFormed);
    return this.bad(this.args.length < policy.min - 1 ? TEXT.missing : TEXT.extra);
  }

  /** Something other than SP or EOL after an argument (or the command word). */
  private trailingJunkError(): ReadResult {
    const policy = this.policy;
    if (policy.kind !== 'args') return this.bad(TEXT.extra);
    if (this.args.length === 0 && this.phase !== 'afterArg' && this.phase !== 'afterArgCR') {
      return this.bad(policy.max > 0 ? TEXT.missing : TEXT.extra);
    }
    return this.bad(this.args.length < policy.min ? TEXT.missing : TEXT.extra);
  }

  /** The byte `b` after a command word or an argument: SP (another argument), a line end, or junk. */
  private afterToken(b: number, crPhase: 'wordCR' | 'afterArgCR'): ReadResult | null {
    if (b === SP) {
      this.phase = 'argStart';
      return this.input.consume(1);
    }
    if (b === LF) return this.input.consume(1) ?? this.endOfLine();
    if (b === CR) {
      this.phase = crPhase;
      return this.input.consume(1);
    }
    return this.skipWith(this.trailingJunkError());
  }

  /** The byte after a CR: only LF ends the line. */
  private lineEndLF(b: number): ReadResult | null {
    if (b === LF) return this.input.consume(1) ?? this.endOfLine();
    return this.skipWith(this.trailingJunkError());
  }

  private step(): ReadResult | null {
    const input = this.input;
    const b = input.buf[input.pos];
    switch (this.phase) {
      case 'tag': {
        const end = input.gather(this.tag, isWordDelimiter);
        if (typeof end !== 'number') return end;
        if (this.tag.length > this.limits.maxTag) return { kind: 'fatal', text: 'Tag too long' };
        if (end >= input.buf.length) return null;
        const d = input.buf[end];
        this.tagBytes = this.tag.take();
        if (d === SP && this.tagBytes.length > 0) {
          this.phase = 'word';
          return input.consume(1);
        }
        return this.skipWith({ kind: 'bad', tag: null, text: TEXT.needCommand });
      }
      case 'word': {
        const end = input.gather(this.word, isWordDelimiter);
        if (typeof end !== 'number') return end;
        if (this.word.length > this.limits.maxWord) return { kind: 'fatal', text: 'Command word too long' };
        if (end >= input.buf.length) return null;
        const wordBytes = this.word.take();
        if (wordBytes.length === 0) return this.skipWith(this.bad(TEXT.nullCommand));
        this.wordText = asciiUpper(wordBytes);
        this.policy = this.hooks.classify(this.wordText);
        if (this.policy.kind === 'reject') return this.skipWith(this.bad(this.policy.text));
        if (this.policy.kind === 'rest') {
          input.startCapture();
          return this.skipWith({ kind: 'command', tag: this.tagBytes, word: this.wordText, args: [] });
        }
        return this.afterToken(input.buf[end], 'wordCR');
      }
      case 'wordCR':
        return this.lineEndLF(b);
      case 'argStart': {
        const policy = this.policy;
        if (policy.kind === 'args' && this.args.length >= policy.max) return this.skipWith(this.bad(TEXT.extra));
        if (b === DQUOTE) {
          this.phase = 'string';
          this.token.beginQuoted();
          return input.consume(1);
        }
        if (b === LBRACE) {
          this.phase = 'string';
          this.token.beginLiteral();
          return input.consume(1);
        }
        return this.skipWith(this.notAStringError());
      }
      case 'string': {
        const got = this.token.step();
        return got === null ? null : this.stringStep(got);
      }
      case 'afterArg':
        return this.afterToken(b, 'afterArgCR');
      case 'afterArgCR':
        return this.lineEndLF(b);
      case 'skip': {
        const skipped = this.skipper.step();
        return skipped === LINE_END ? this.finishSkip() : skipped;
      }
    }
  }

  /** What a string argument's tokenizer reported. */
  private stringStep(got: StringStep): ReadResult | null {
    switch (got.kind) {
      case 'fatal':
        return got;
      case 'malformed':
        return this.skipWith(this.notAStringError());
      case 'refused':
        return this.skipWith(this.bad(got.text));
      case 'string':
        if (got.invalid) return this.skipWith(this.notAStringError());
        if (this.policy.kind === 'args' && this.policy.hosts && got.value.length === 0) {
          return this.skipWith(this.bad(TEXT.badlyFormed));
        }
        this.args.push(got.value);
        this.phase = 'afterArg';
        return null;
    }
  }

  private finishSkip(): ReadResult {
    const answer = this.pending ?? this.bad(TEXT.extra);
    const captured = this.input.takeCapture();
    if (captured && answer.kind === 'command') {
      let start = 0;
      let end = captured.length;
      while (start < end && captured[start] === SP) start++;
      while (end > start && (captured[end - 1] === LF || captured[end - 1] === CR)) end--;
      const rest = captured.subarray(start, end);
      answer.args = rest.length ? [rest] : [];
    }
    return answer;
  }
}
