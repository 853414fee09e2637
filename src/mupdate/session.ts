/**
 * One client connection: banner, the state machine of spec 3.0, dispatch to the command modules
 * (commands/), and close. Answers go out in command order. Consecutive writes are pipelined (they
 * commit together); any other command first waits for the writes before it, and the reader parses
 * a command only once the state it depends on (login, STARTTLS, streaming) is settled.
 */
import type { Socket } from 'node:net';
import type { Identity } from '../sasl/authenticator.js';
import type { OfferedMechanisms } from '../sasl/sasl-exchange.js';
import type { StallWatch } from './dump-stall.js';
import { GO_AHEAD, statusLine, type StatusKeyword } from './wire/encoder.js';
import type { WireLimits } from './wire/limits.js';
import { CommandReader, type ArgPolicy, type ReadResult } from './wire/reader.js';
import { ConnectionOutput } from './output.js';
import { LoginGate } from './admission.js';
import { upgradeToTls } from './tls-upgrade.js';
import { bannerBytes, mechanismsHere } from './banner.js';
import { WritePipeline } from './write-pipeline.js';
import { SESSION_TEXTS as T, type SessionDeps } from './session-settings.js';
import {
  COMMANDS,
  newConnectionFacts,
  type CommandContext,
  type CommandMemory,
  type ConnectionFacts,
  type ConnectionState,
} from './commands/index.js';
import { CommandTally } from '../metrics/command-tally.js';

export type { Role, SessionSettings } from './session-settings.js';

/** What the server gives each connection (session-settings.ts). */
export type SessionContext = SessionDeps<Session>;

type Command = Extract<ReadResult, { kind: 'command' }>;

export class Session {
  private socket: Socket;
  private readonly reader: CommandReader;
  private readonly output: ConnectionOutput;
  /** The reader's limits: smaller until login (the reader keeps this object). */
  private readonly limits: WireLimits;
  /** This connection's slot among its address's not-logged-in ones, and its login deadline. */
  private readonly gate: LoginGate;
  /** State, identity, TLS, stream: what commands may read (commands/types.ts); only the session changes it. */
  private readonly conn: ConnectionFacts = newConnectionFacts();
  private busy = false;
  /** No banner and no answers yet (a slave without a complete copy). */
  private gated = false;
  private readonly tally = new CommandTally();
  /** The client shut its sending side; the connection closes once what it sent is answered. */
  private inputEnded = false;
  private badCount = 0;
  private readonly pipeline = new WritePipeline();
  private readonly memory: CommandMemory = { failedLogins: 0, pushServer: null };
  /** What command handlers see of this connection. */
  private readonly commandContext: CommandContext;
  /** Set while a command waits for more input (SASL lines). */
  private inputWaiter: (() => void) | null = null;
  /** The command being executed, so shutdown can let it finish. */
  private current: Promise<void> | null = null;
  /** Set while a LIST or UPDATE dump runs. */
  private dumpWatch: StallWatch | null = null;
  readonly peer: string;

  constructor(
    socket: Socket,
    private readonly ctx: SessionContext,
    host: string,
  ) {
    this.socket = socket;
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.output = new ConnectionOutput(socket);
    this.output.onProgress = () => this.dumpWatch?.progress();
    this.gate = new LoginGate(ctx.admission, host);
    const before = ctx.settings.maxCommandBeforeLogin;
    this.limits = { ...ctx.settings.limits, maxCommand: before, maxSaslLine: Math.min(before, ctx.settings.limits.maxSaslLine) };
    this.reader = new CommandReader(this.limits, {
      classify: (word) => this.classify(word),
      continuation: () => this.write(GO_AHEAD),
    });
    this.commandContext = this.makeCommandContext();
  }

  /** For the connections-by-state gauge. */
  get phase(): 'waiting_for_sync' | ConnectionState {
    return this.gated ? 'waiting_for_sync' : this.conn.state;
  }

  /** A LIST or UPDATE dump is running. */
  get dumping(): boolean {
    return this.dumpWatch !== null;
  }

  private write(bytes: Buffer): void {
    this.output.write(bytes);
  }

  start(): void {
    this.attach(this.socket);
    const role = this.ctx.role;
    if (role.kind === 'slave' && !role.isReady()) {
      // Never serve a copy that has not completed a full sync: a chained Cyrus slave would take it as the directory.
      this.gated = true;
      void role.ready.then(() => {
        if (this.conn.closed) return;
        this.gated = false;
        this.sendBanner();
        void this.pump();
      });
      return;
    }
    this.sendBanner();
  }

  private attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.output.useSocket(socket);
    socket.on('error', (err) => {
      this.ctx.log.debug({ peer: this.peer, err: err.message }, 'connection error');
      this.destroy();
    });
    socket.on('close', () => this.destroy());
    // The client sent its last command (`printf ... | nc`): answer what it sent, then close.
    socket.on('end', () => {
      this.inputEnded = true;
      this.onData(Buffer.alloc(0));
    });
    socket.setTimeout(this.ctx.settings.idleTimeoutMs, () => this.idleTimeout());
  }

  private offeredMechanisms(): OfferedMechanisms {
    return mechanismsHere(this.ctx, this.conn.tlsActive, this.socket.remoteAddress);
  }

  private sendBanner(): void {
    const { role, settings, tls } = this.ctx;
    this.write(bannerBytes(settings.servername, role, this.offeredMechanisms(), !!tls && !this.conn.tlsActive));
    this.gate.startClock(this.ctx.settings.loginTimeoutMs, () => {
      this.ctx.log.info({ peer: this.peer }, 'login timeout');
      this.bye('no login in time');
    });
  }

  private onData(chunk: Buffer): void {
    if (this.conn.closed) return;
    this.reader.push(chunk);
    // Backpressure: a client that pipelines faster than we answer is paused.
    if (this.reader.buffered > this.limits.maxCommand * 2) this.socket.pause();
    if (this.gated) return;
    if (this.inputWaiter) {
      const w = this.inputWaiter;
      this.inputWaiter = null;
      w();
    } else {
      void this.pump();
    }
  }

  private waitForInput(): Promise<void> {
    return new Promise((resolve) => {
      this.inputWaiter = resolve;
    });
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    const pipeline = this.pipeline;
    try {
      while (!this.conn.closed) {
        // A client that does not read its answers gets no more of them: its input waits in the kernel.
        if (pipeline.answersBacklogged) await pipeline.settled;
        if (this.output.overBound) await this.output.drained();
        const result = this.reader.next();
        if (!result) break;
        if (result.kind !== 'fatal' && result.tag) this.tally.asked(result.kind === 'command' ? result.word : null);
        const command = result.kind === 'command' ? COMMANDS.get(result.word) : undefined;
        if (command?.beginWrite && this.canPipeline()) {
          // Writes commit together (group commit); their answers keep command order.
          pipeline.addWrite((result as Command).args[0].toString('latin1'), command.beginWrite(result as Command, this.commandContext));
          if (pipeline.full) await pipeline.settled;
          continue;
        }
        if (command?.answerAhead && pipeline.busy && this.canAnswerAhead(result as Command)) {
          // A read of a name none of this connection's pending writes touches sees the
          // same entry before their commit as after it: answer now, in command order.
          this.conn.commandsSinceLogin++;
          pipeline.addAnswer(command.answerAhead(result as Command, this.commandContext), (bytes) => this.answer(bytes, 'OK'));
          continue;
        }
        if (pipeline.busy) await pipeline.settled;
        // Most commands (FIND, NOOP, a BAD) finish at once: no promise, no turn.
        const running = this.handle(result);
        if (running) {
          this.current = running;
          await running;
          this.current = null;
        }
      }
    } catch (err) {
      this.ctx.log.error({ peer: this.peer, err: (err as Error).stack }, 'session failed');
      this.destroy();
    } finally {
      this.busy = false;
      if (!this.conn.closed && this.socket.isPaused() && this.reader.buffered <= this.limits.maxCommand * 2) this.socket.resume();
      if (this.inputEnded && !this.gated) void pipeline.settled.then(() => this.end());
    }
  }

  /** Whether a write may run while earlier writes still commit: a logged-in admin on the master, not streaming. */
  private canPipeline(): boolean {
    return this.conn.state === 'auth' && this.ctx.role.kind === 'master' && !!this.conn.identity?.admin;
  }

  /** Whether a read may be answered while this connection's writes commit: it reads no name they touch. */
  private canAnswerAhead(r: Command): boolean {
    return this.conn.state === 'auth' && !this.pipeline.touches(r.args[0].toString('latin1'));
  }

  /** Decides, once the command word is read, whether its arguments are parsed at all. */
  private classify(word: string): ArgPolicy {
    const command = COMMANDS.get(word);
    if (!command || (command.needsTls && !this.ctx.tls)) return { kind: 'reject', text: T.unrecognized };
    if (command.needsLogin && this.conn.state === 'noauth') return { kind: 'reject', text: T.pleaseLogin };
    const { min, max, hosts } = command.args;
    return { kind: 'args', min, max, ...(hosts ? { hosts: true } : {}) };
  }

  private reply(tag: Buffer | null, keyword: StatusKeyword, text: string): void {
    if (tag) this.tally.answered(keyword);
    this.write(statusLine(tag, keyword, text));
  }

  /** A whole tagged answer computed elsewhere (FIND), counted like a reply. */
  private answer(bytes: Buffer, keyword: StatusKeyword): void {
    this.tally.answered(keyword);
    this.write(bytes);
  }

  private bad(tag: Buffer | null, text: string): void {
    this.reply(tag, 'BAD', text);
    if (++this.badCount >= this.ctx.settings.maxBadCommands) {
      this.ctx.log.warn({ peer: this.peer, bads: this.badCount }, 'too many bad commands, closing');
      this.bye('Too many bad commands');
    }
  }

  /** The gates of spec 3.0, in order, then the command's own handler. */
  private handle(r: ReadResult): Promise<void> | void {
    if (r.kind === 'fatal') {
      this.ctx.log.warn({ peer: this.peer, reason: r.text }, 'client input over a limit, closing');
      this.bye(r.text);
      return;
    }
    if (r.kind === 'bad') {
      this.bad(r.tag, r.text);
      return;
    }
    // The reader yields only words classify() accepted.
    const command = COMMANDS.get(r.word)!;
    const { tag } = r;
    if (this.conn.state !== 'noauth') this.conn.commandsSinceLogin++;
    if (command.refusedAfterLogin !== undefined && this.conn.state !== 'noauth') return this.bad(tag, command.refusedAfterLogin);
    if (this.conn.state === 'streaming' && !command.whileStreaming) return this.bad(tag, T.streaming);
    if (command.masterOnly && this.ctx.role.kind === 'slave') return this.bad(tag, T.readOnly);
    return command.run({ tag, args: r.args }, this.commandContext);
  }

  private makeCommandContext(): CommandContext {
    const { ctx } = this;
    return {
      peer: this.peer,
      log: ctx.log,
      settings: ctx.settings,
      role: ctx.role,
      store: ctx.store,
      dumps: ctx.dumps,
      auth: ctx.auth,
      memory: this.memory,
      connection: this.conn,
      output: this.output,
      write: (bytes) => this.write(bytes),
      reply: (tag, keyword, text) => this.reply(tag, keyword, text),
      answer: (bytes, keyword) => this.answer(bytes, keyword),
      bad: (tag, text) => this.bad(tag, text),
      offeredMechanisms: () => this.offeredMechanisms(),
      readSaslLine: () => this.readSaslLine(),
      waitForGuess: (waiting) => this.gate.waitForGuess(() => this.conn.closed, waiting),
      failedGuess: () => this.gate.failedLogin(),
      loggedIn: (identity) => this.loggedIn(identity),
      startTls: () => this.startTls(),
      // A connection already gone would never stop a stream it is handed: stopped here.
      startStreaming: (stream) => (this.conn.closed ? stream.stop() : void Object.assign(this.conn, { stream, state: 'streaming' })),
      watchDump: (watch) => void (this.dumpWatch = watch),
      end: () => this.end(),
      bye: (text) => this.bye(text),
      destroy: () => this.destroy(),
    };
  }

  // ---- login (spec 3.2) and STARTTLS (spec 3.12): the connection's side ----

  /** The connection leaves the not-logged-in limits: its slot, its deadline, its small input cap. */
  private loggedIn(identity: Identity): void {
    this.conn.identity = identity;
    this.conn.state = 'auth';
    this.gate.leave();
    Object.assign(this.limits, this.ctx.settings.limits);
  }

  /** Reads one SASL response line; null when the connection ended. */
  private async readSaslLine(): Promise<Buffer | null> {
    for (;;) {
      if (this.conn.closed) return null;
      const r = this.reader.readSaslLine();
      if (r?.kind === 'line') return r.line;
      if (r?.kind === 'fatal') {
        this.bye(r.text);
        return null;
      }
      if (this.inputEnded) return null;
      await this.waitForInput();
    }
  }

  /** After STARTTLS's OK is queued: swaps the socket for a TLS one. */
  private startTls(): void {
    // The OK must leave in cleartext, before the socket is wrapped.
    this.output.flush();
    // Bytes pipelined after STARTTLS were sent in cleartext: never execute them.
    this.reader.discardBuffered();
    const secure = upgradeToTls(this.socket, this.ctx.tls!, {
      secured: () => {
        this.conn.tlsActive = true;
        this.ctx.log.info({ peer: this.peer }, 'TLS established');
        this.attach(secure);
        this.sendBanner();
      },
      failed: (err) => {
        this.ctx.log.info({ peer: this.peer, err: err.message }, 'TLS handshake failed, closing');
        this.destroy();
      },
      gone: () => this.destroy(),
    });
    this.socket = secure;
    this.output.useSocket(secure);
  }

  // ---- ending ----

  private idleTimeout(): void {
    this.ctx.log.info({ peer: this.peer }, 'idle timeout');
    this.bye('idle for too long');
  }

  /**
   * `* BYE "text"` and close. Never inside an UPDATE dump: a Cyrus slave would
   * take the partial dump as the whole directory (spec 3.9), so there we close
   * without a word.
   */
  bye(text: string): void {
    if (this.conn.closed) return;
    if (this.conn.stream && !this.conn.stream.live) return this.destroy();
    this.write(statusLine(null, 'BYE', text));
    this.end();
  }

  private end(): void {
    if (this.conn.closed) return;
    // The queued answer (LOGOUT's OK, a BYE) goes out before the FIN.
    this.output.flush();
    this.socket.end();
    this.finish();
    // A client that never reads must not keep the socket forever.
    setTimeout(() => this.socket.destroy(), 10_000).unref();
  }

  destroy(): void {
    if (!this.conn.closed) this.finish();
    this.socket.destroy();
  }

  private finish(): void {
    this.conn.closed = true;
    this.gate.leave();
    this.conn.stream?.stop();
    this.inputWaiter?.();
    this.inputWaiter = null;
    this.output.close();
    this.ctx.ended(this);
  }

  /** For shutdown: the command in progress, if any. */
  get inFlight(): Promise<void> | null {
    const current = this.current;
    const settled = this.pipeline.settled;
    return current ? Promise.all([settled, current]).then(() => {}) : settled;
  }
}
