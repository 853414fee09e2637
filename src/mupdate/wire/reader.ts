/**
 * Incremental command reader: turns the client's byte stream into commands,
 * whatever way it is chunked (one byte per packet or many commands per packet).
 *
 * Grammar and error texts follow the Cyrus 3.6 server (spec 1.2-1.7, 3.0):
 * `tag SP word [SP string]* EOL`, where a string is a quoted string or a
 * `{n}` / `{n+}` literal and EOL is LF with an optional CR before it.
 * The reader yields one result at a time and parses nothing more until it is
 * asked again, so state changes made by one command (login, STARTTLS) apply
 * to the next one.
 */
import {
  ByteAccumulator, BACKSLASH, CR, DQUOTE, LBRACE, LF, PLUS, RBRACE, SP,
  asciiUpper, isWordDelimiter,
} from './bytes.js';
import type { WireLimits } from './limits.js';

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
  | { kind: 'fatal'; text: string };

export type SaslLineResult = { kind: 'line'; line: Buffer } | { kind: 'fatal'; text: string };

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

type Phase =
  | 'tag' | 'word' | 'wordCR' | 'argStart' | 'quoted' | 'quotedEscape'
  | 'litCount' | 'litClose' | 'litCR' | 'litLF' | 'litBody' | 'afterArg' | 'afterArgCR'
  | 'skip' | 'skipCount' | 'skipClose' | 'skipCR' | 'skipLF' | 'skipBody';

const MAX_COUNT = 2 ** 31 - 1;
/** Most bytes of a line's rest kept for the 'rest' policy. */
const REST_CAPTURE = 8192;

export class CommandReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  private phase: Phase = 'tag';
  private tag = new ByteAccumulator();
  private word = new ByteAccumulator();
  private str = new ByteAccumulator();
  private tagBytes: Buffer = Buffer.alloc(0);
  private wordText = '';
  private policy: ArgPolicy = { kind: 'args', min: 0, max: 0 };
  private args: Buffer[] = [];
  private strInvalid = false;
  private litCount = 0;
  private litDigits = 0;
  private litSync = false;
  private litRemaining = 0;
  private commandBytes = 0;
  /** The answer to give once the rest of the line has been skipped. */
  private pending: ReadResult | null = null;
  /** Collects the skipped rest of a line for the 'rest' policy. */
  private capture: ByteAccumulator | null = null;

  constructor(private readonly limits: WireLimits, private readonly hooks: ReaderHooks) {}

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

  /** True when no command is partly read. */
  get atCommandStart(): boolean {
    return this.phase === 'tag' && this.tag.length === 0;
  }

  /** Reads one raw line (SASL exchange). Null when the line is not complete yet. */
  readSaslLine(): SaslLineResult | null {
    const lf = this.buf.indexOf(LF, this.pos);
    const end = lf < 0 ? this.buf.length : lf;
    if (end - this.pos > this.limits.maxSaslLine) return { kind: 'fatal', text: 'SASL response too long' };
    if (lf < 0) return null;
    let line = this.buf.subarray(this.pos, lf);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    this.pos = lf + 1;
    return { kind: 'line', line: Buffer.from(line) };
  }

  /** Parses as far as the buffered bytes allow; null means more input is needed. */
  next(): ReadResult | null {
    while (this.pos < this.buf.length) {
      const result = this.step();
      if (result) {
        if (result.kind !== 'fatal') this.reset();
        return result;
      }
    }
    return null;
  }

  private reset(): void {
    this.capture = null;
    this.phase = 'tag';
    this.tag.clear();
    this.word.clear();
    this.str.clear();
    this.args = [];
    this.pending = null;
    this.commandBytes = 0;
    this.strInvalid = false;
  }

  /** Consumes n bytes of the current command, enforcing the per-command cap. */
  private consume(n: number): ReadResult | null {
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
  private scan(stop: (b: number) => boolean, room = Infinity): number {
    let i = this.pos;
    const buf = this.buf;
    const end = Math.min(buf.length, this.pos + room + 1);
    while (i < end && !stop(buf[i]!)) i++;
    return i;
  }

  /** Starts skipping the rest of the line at the current byte; `answer` is given afterwards. */
  private skipWith(answer: ReadResult): ReadResult | null {
    this.pending = answer;
    this.phase = 'skip';
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

  private step(): ReadResult | null {
    const b = this.buf[this.pos]!;
    switch (this.phase) {
      case 'tag': {
        const end = this.scan(isWordDelimiter);
        this.tag.append(this.buf.subarray(this.pos, end));
        const fatal = this.consume(end - this.pos);
        if (fatal) return fatal;
        if (this.tag.length > this.limits.maxTag) return { kind: 'fatal', text: 'Tag too long' };
        if (end >= this.buf.length) return null;
        const d = this.buf[end]!;
        this.tagBytes = this.tag.take();
        if (d === SP && this.tagBytes.length > 0) {
          this.phase = 'word';
          return this.consume(1);
        }
        return this.skipWith({ kind: 'bad', tag: null, text: TEXT.needCommand });
      }
      case 'word': {
        const end = this.scan(isWordDelimiter);
        this.word.append(this.buf.subarray(this.pos, end));
        const fatal = this.consume(end - this.pos);
        if (fatal) return fatal;
        if (this.word.length > this.limits.maxWord) return { kind: 'fatal', text: 'Command word too long' };
        if (end >= this.buf.length) return null;
        const wordBytes = this.word.take();
        if (wordBytes.length === 0) return this.skipWith(this.bad(TEXT.nullCommand));
        this.wordText = asciiUpper(wordBytes);
        this.policy = this.hooks.classify(this.wordText);
        if (this.policy.kind === 'reject') return this.skipWith(this.bad(this.policy.text));
        if (this.policy.kind === 'rest') {
          this.capture = new ByteAccumulator();
          return this.skipWith({ kind: 'command', tag: this.tagBytes, word: this.wordText, args: [] });
        }
        const d = this.buf[end]!;
        if (d === SP) {
          this.phase = 'argStart';
          return this.consume(1);
        }
        if (d === LF) {
          const fatal2 = this.consume(1);
          return fatal2 ?? this.endOfLine();
        }
        if (d === CR) {
          this.phase = 'wordCR';
          return this.consume(1);
        }
        return this.skipWith(this.trailingJunkError());
      }
      case 'wordCR':
        if (b === LF) {
          const fatal = this.consume(1);
          return fatal ?? this.endOfLine();
        }
        return this.skipWith(this.trailingJunkError());
      case 'argStart': {
        const policy = this.policy;
        if (policy.kind === 'args' && this.args.length >= policy.max) return this.skipWith(this.bad(TEXT.extra));
        if (b === DQUOTE) {
          this.phase = 'quoted';
          this.strInvalid = false;
          return this.consume(1);
        }
        if (b === LBRACE) {
          this.phase = 'litCount';
          this.litCount = 0;
          this.litDigits = 0;
          this.litSync = true;
          return this.consume(1);
        }
        return this.skipWith(this.notAStringError());
      }
      case 'quoted': {
        const room = Math.min(this.limits.maxString - this.str.length, this.limits.maxCommand - this.commandBytes);
        const end = this.scan((c) => c === DQUOTE || c === BACKSLASH || c === CR || c === LF || c === 0, room);
        this.str.append(this.buf.subarray(this.pos, end));
        const fatal = this.consume(end - this.pos);
        if (fatal) return fatal;
        if (this.str.length > this.limits.maxString) return { kind: 'fatal', text: 'Quoted string too long' };
        if (end >= this.buf.length) return null;
        const c = this.buf[end]!;
        if (!(c === DQUOTE || c === BACKSLASH || c === CR || c === LF || c === 0)) return null; // stopped at a cap
        if (c === DQUOTE) {
          this.consume(1);
          return this.finishString();
        }
        if (c === BACKSLASH) {
          this.phase = 'quotedEscape';
          return this.consume(1);
        }
        if (c === 0) {
          // Cyrus would silently cut the string here; we refuse it instead (spec 1.5).
          this.strInvalid = true;
          return this.consume(1);
        }
        return this.skipWith(this.notAStringError()); // CR or LF before the closing quote
      }
      case 'quotedEscape':
        if (b === CR || b === LF) return this.skipWith(this.notAStringError());
        if (b === 0) this.strInvalid = true;
        this.str.appendByte(b);
        this.phase = 'quoted';
        return this.consume(1);
      case 'litCount':
        if (b >= 0x30 && b <= 0x39) {
          this.litDigits++;
          // Saturate instead of overflowing; anything past MAX_COUNT is refused below.
          this.litCount = Math.min(this.litCount * 10 + (b - 0x30), MAX_COUNT + 1);
          return this.consume(1);
        }
        if (b === PLUS && this.litDigits > 0) {
          this.litSync = false;
          this.phase = 'litClose';
          return this.consume(1);
        }
        if (b === RBRACE && this.litDigits > 0) {
          this.phase = 'litClose';
          return null; // handled in litClose without consuming twice
        }
        return this.skipWith(this.notAStringError());
      case 'litClose': {
        if (b !== RBRACE) return this.skipWith(this.notAStringError());
        const fatal = this.consume(1);
        if (fatal) return fatal;
        if (this.litCount > this.limits.maxString) {
          if (!this.litSync) return { kind: 'fatal', text: 'Literal too large' };
          // No go-ahead was given, so no body follows: refuse and read on normally.
          return this.skipWith(this.bad('Literal too large'));
        }
        this.phase = 'litCR';
        return null;
      }
      case 'litCR':
        if (b === CR) {
          this.phase = 'litLF';
          return this.consume(1);
        }
        return this.skipWith(this.notAStringError());
      case 'litLF': {
        if (b !== LF) return this.skipWith(this.notAStringError());
        const fatal = this.consume(1);
        if (fatal) return fatal;
        if (this.litSync) this.hooks.continuation();
        this.litRemaining = this.litCount;
        this.strInvalid = false;
        this.phase = 'litBody';
        return this.litRemaining === 0 ? this.finishString() : null;
      }
      case 'litBody': {
        const n = Math.min(this.litRemaining, this.buf.length - this.pos);
        const body = this.buf.subarray(this.pos, this.pos + n);
        if (body.indexOf(0) >= 0) this.strInvalid = true;
        this.str.append(Buffer.from(body));
        this.litRemaining -= n;
        const fatal = this.consume(n);
        if (fatal) return fatal;
        return this.litRemaining === 0 ? this.finishString() : null;
      }
      case 'afterArg':
        if (b === SP) {
          this.phase = 'argStart';
          return this.consume(1);
        }
        if (b === LF) {
          const fatal = this.consume(1);
          return fatal ?? this.endOfLine();
        }
        if (b === CR) {
          this.phase = 'afterArgCR';
          return this.consume(1);
        }
        return this.skipWith(this.trailingJunkError());
      case 'afterArgCR':
        if (b === LF) {
          const fatal = this.consume(1);
          return fatal ?? this.endOfLine();
        }
        return this.skipWith(this.trailingJunkError());
      case 'skip': {
        const end = this.scan((c) => c === LF || c === LBRACE);
        const fatal = this.consume(end - this.pos);
        if (fatal) return fatal;
        if (end >= this.buf.length) return null;
        const fatal2 = this.consume(1);
        if (fatal2) return fatal2;
        if (this.buf[end] === LF) return this.finishSkip();
        this.phase = 'skipCount';
        this.litCount = 0;
        this.litDigits = 0;
        return null;
      }
      // While skipping, `{n+}` CRLF bodies are skipped whole so their bytes are never
      // read as commands; `{n}` gets no go-ahead, so no body follows it (spec 8.2).
      case 'skipCount':
        if (b >= 0x30 && b <= 0x39) {
          this.litDigits++;
          this.litCount = Math.min(this.litCount * 10 + (b - 0x30), MAX_COUNT + 1);
          return this.consume(1);
        }
        if (b === PLUS && this.litDigits > 0) {
          this.phase = 'skipClose';
          return this.consume(1);
        }
        this.phase = 'skip';
        return null;
      case 'skipClose':
        if (b === RBRACE) {
          this.phase = 'skipCR';
          return this.consume(1);
        }
        this.phase = 'skip';
        return null;
      case 'skipCR':
        if (b === CR) {
          this.phase = 'skipLF';
          return this.consume(1);
        }
        this.phase = 'skip';
        return null;
      case 'skipLF':
        if (b === LF) {
          if (this.litCount > this.limits.maxString) return { kind: 'fatal', text: 'Literal too large' };
          this.litRemaining = this.litCount;
          this.phase = this.litRemaining > 0 ? 'skipBody' : 'skip';
          return this.consume(1);
        }
        this.phase = 'skip';
        return null;
      case 'skipBody': {
        const n = Math.min(this.litRemaining, this.buf.length - this.pos);
        this.litRemaining -= n;
        if (this.litRemaining === 0) this.phase = 'skip';
        return this.consume(n);
      }
    }
  }

  private finishSkip(): ReadResult {
    const answer = this.pending ?? this.bad(TEXT.extra);
    if (this.capture && answer.kind === 'command') {
      let rest = this.capture.take();
      let start = 0;
      let end = rest.length;
      while (start < end && rest[start] === SP) start++;
      while (end > start && (rest[end - 1] === LF || rest[end - 1] === CR)) end--;
      rest = rest.subarray(start, end);
      answer.args = rest.length ? [rest] : [];
    }
    this.capture = null;
    return answer;
  }

  private finishString(): ReadResult | null {
    const value = this.str.take();
    if (this.strInvalid) return this.skipWith(this.notAStringError());
    const policy = this.policy;
    if (policy.kind === 'args' && policy.hosts && value.length === 0) {
      return this.skipWith(this.bad(TEXT.badlyFormed));
    }
    this.args.push(value);
    this.phase = 'afterArg';
    return null;
  }
}
