/**
 * The shape every command module fills in, and the narrow view of its
 * connection a handler gets. A definition declares what the session checks
 * before running it (argument counts, login, streaming, master only); the
 * handler does the command's own work and answers through the context.
 * Gates and their order live in one place, the session's dispatch (spec 3.0).
 */
import type { Logger } from '../../log.js';
import type { Authenticator, Identity } from '../../sasl/authenticator.js';
import type { OfferedMechanisms } from '../../sasl/sasl-exchange.js';
import type { DirectoryStore } from '../../store/types.js';
import type { DumpSource } from '../dump-lines.js';
import type { StallWatch } from '../dump-stall.js';
import type { Role, SessionSettings } from '../session-settings.js';
import type { StreamSink, UpdateStream } from '../update-stream.js';
import type { StatusKeyword } from '../wire/encoder.js';

/** A parsed command: its tag and its string arguments (the word picked the definition). */
export interface CommandInput {
  tag: Buffer;
  args: Buffer[];
}

export type ConnectionState = 'noauth' | 'auth' | 'streaming';

/** Facts one command leaves for later commands of the same connection. */
export interface CommandMemory {
  /** Failed AUTHENTICATEs so far (too many close the connection). */
  failedLogins: number;
  /** Set when this session is a backend's startup push (`ctl_mboxlist -m`): that backend's server name. */
  pushServer: string | null;
}

/** What commands may read of their connection. */
export interface ConnectionFacts {
  state: ConnectionState;
  identity: Identity | null;
  tlsActive: boolean;
  /** Commands since login, this one included (pipelined writes are not counted). */
  commandsSinceLogin: number;
  /** The UPDATE stream of this connection, once it streams. */
  stream: UpdateStream | null;
  /** The connection is gone (or going): write nothing more. */
  closed: boolean;
}

/** A new connection: not logged in, no TLS, no stream. */
export function newConnectionFacts(): ConnectionFacts {
  return { state: 'noauth', identity: null, tlsActive: false, commandsSinceLogin: 0, stream: null, closed: false };
}

/** What a handler may see and do on its connection. */
export interface CommandContext {
  readonly peer: string;
  readonly log: Logger;
  readonly settings: Readonly<SessionSettings>;
  readonly role: Role;
  readonly store: DirectoryStore;
  readonly dumps: DumpSource;
  readonly auth: Authenticator;
  readonly memory: CommandMemory;

  /** The connection as it stands; only the session changes it. */
  readonly connection: Readonly<ConnectionFacts>;

  /** The connection's output, for dumps that write large chunks and wait for the socket. */
  readonly output: StreamSink;
  write(bytes: Buffer): void;
  /** A whole tagged answer (data lines and the status line), counted as `keyword`. */
  answer(bytes: Buffer, keyword: StatusKeyword): void;
  /** `tag KEYWORD "text"`. */
  reply(tag: Buffer | null, keyword: StatusKeyword, text: string): void;
  /** `tag BAD "text"`, counted against the connection's budget of bad commands. */
  bad(tag: Buffer | null, text: string): void;

  // ---- login ----
  offeredMechanisms(): OfferedMechanisms;
  /** Reads one SASL response line; null when the connection ended. */
  readSaslLine(): Promise<Buffer | null>;
  /**
   * Waits until a password may be checked (the address's failed-login
   * budget); `waiting` is called if it has to wait. False: the connection is gone.
   */
  waitForGuess(waiting: () => void): Promise<boolean>;
  /** The password was wrong: the address's failed login stays spent. */
  failedGuess(): void;
  /** The connection is logged in as `identity`. */
  loggedIn(identity: Identity): void;

  // ---- transitions the session carries out ----
  /** After STARTTLS's OK: the socket is wrapped in TLS (spec 3.12). */
  startTls(): void;
  /** The connection streams from now on (spec 3.9). */
  startStreaming(stream: UpdateStream): void;
  /** Tells the session which watch a running dump's output progress goes to (null: the dump ended). */
  watchDump(watch: StallWatch | null): void;
  /** Sends what is queued, then closes. */
  end(): void;
  /** `* BYE "text"` and close (without a word inside an UPDATE dump). */
  bye(text: string): void;
  /** Closes at once. */
  destroy(): void;
}

/** What the session does with a command word (commands/index.ts maps words to these). */
export interface CommandDefinition {
  word: string;
  /** String arguments accepted; `hosts`: UPDATE's host-list rules (no empty string, spec 3.9). */
  args: { min: number; max: number; hosts?: boolean };
  /** Before login it gets `BAD "Please login first"`, arguments unparsed (C15). */
  needsLogin: boolean;
  /** After login it gets `BAD "<this text>"` (AUTHENTICATE, STARTTLS). */
  refusedAfterLogin?: string;
  /** Legal on a streaming connection (only NOOP and LOGOUT, C42). */
  whileStreaming?: boolean;
  /** A directory write: a slave answers `BAD "read-only session"` (C50). */
  masterOnly?: boolean;
  /** Known only when the server has TLS configured (STARTTLS, C22). */
  needsTls?: boolean;
  run(cmd: CommandInput, ctx: CommandContext): Promise<void> | void;
  /**
   * A write that may start while this connection's earlier writes still
   * commit (they commit together). Resolves, once it is durably committed or
   * refused, to the function that writes its answer. Its first argument is
   * the name it touches.
   */
  beginWrite?(cmd: CommandInput, ctx: CommandContext): Promise<() => void>;
  /**
   * The whole answer of a read whose first argument names the only entry it
   * reads: while writes of other names commit, it is computed ahead and sent
   * in command order.
   */
  answerAhead?(cmd: CommandInput, ctx: CommandContext): Buffer;
}
