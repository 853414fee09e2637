/**
 * One client connection: banner, the state machine of spec 3.0, and the
 * commands. Answers go out in command order. Consecutive writes are
 * pipelined (they commit together); any other command first waits for the
 * writes before it, and the reader parses a command only once the state it
 * depends on (login, STARTTLS, streaming) is settled.
 */
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Logger } from '../log.js';
import type { Authenticator, Identity } from '../sasl/authenticator.js';
import { bannerMechanisms, offeredMechanisms, runSaslExchange, type OfferedMechanisms, type SaslLineIo } from '../sasl/sasl-exchange.js';
import { StorageError, StorageUnavailable, type DirectoryStore, type Entry } from '../store/types.js';
import { serverPart } from './location.js';
import { MAX_NAME_BYTES } from '../store/order.js';
import * as rules from './directory-rules.js';
import type { DumpSource } from './dump-lines.js';
import { StallWatch, underStallWatch } from './dump-stall.js';
import { entryLine, UpdateStream, type ResumeRequest } from './update-stream.js';
import { GO_AHEAD, statusLine, untaggedLine, type StatusKeyword } from './wire/encoder.js';
import type { WireLimits } from './wire/limits.js';
import { CommandReader, type ArgPolicy, type ReadResult } from './wire/reader.js';
import { ANSWER_BACKLOG_BYTES, ConnectionOutput } from './output.js';
import { LoginGate, type Admission } from './admission.js';
import { upgradeToTls } from './tls-upgrade.js';
import { EXTENSIONS, IMPLEMENTATION, VERSION } from '../version.js';
import { CommandTally } from '../metrics/command-tally.js';
import { metricsHooks } from '../metrics/hooks.js';

export type Role =
  | { kind: 'master' }
  | {
      kind: 'slave';
      /** The configured master, shown in the banner as `mupdate://<master>`. */
      master: string;
      /** Resolves once the slave has flushed from its own master (NOOP fan-out, spec 3.10). */
      syncWithMaster(): Promise<void>;
      /** Resolves once the copy is complete; until then clients get no banner (spec 6.6, C65). */
      ready: Promise<void>;
      isReady(): boolean;
    };

export interface SessionSettings {
  servername: string;
  limits: WireLimits;
  idleTimeoutMs: number;
  /** Time a connection has from its banner to a successful login. */
  loginTimeoutMs: number;
  /** Largest command (and SASL line) accepted before login, in bytes. */
  maxCommandBeforeLogin: number;
  maxBadCommands: number;
  failedLoginPauseMs: number;
  maxFailedLogins: number;
  allowPlaintext: boolean;
  streamQueueLimit: number;
  streamQueueBytes: number;
  socketHighWater: number;
  /** A LIST or UPDATE dump whose reader takes nothing for this long is ended. */
  dumpStallTimeoutMs: number;
  conflictPolicy: rules.ConflictPolicy;
}

export interface SessionContext {
  settings: SessionSettings;
  store: DirectoryStore;
  auth: Authenticator;
  log: Logger;
  role: Role;
  tls?: SecureContext | undefined;
  /** Where whole-directory dumps (LIST, UPDATE) are made: worker threads or this thread. */
  dumps: DumpSource;
  /** Per-address limits; the server took a not-logged-in slot of `host` for this connection. */
  admission: Admission;
  /** Called once when the connection is gone. */
  ended(session: Session): void;
}

type State = 'noauth' | 'auth' | 'streaming';
type Command = Extract<ReadResult, { kind: 'command' }>;

interface CommandSpec {
  min: number;
  max: number;
  hosts?: boolean;
  needsLogin: boolean;
}

const COMMANDS: Record<string, CommandSpec> = {
  AUTHENTICATE: { min: 1, max: 2, needsLogin: false },
  LOGOUT: { min: 0, max: 0, needsLogin: false },
  STARTTLS: { min: 0, max: 0, needsLogin: false },
  NOOP: { min: 0, max: 0, needsLogin: true },
  FIND: { min: 1, max: 1, needsLogin: true },
  LIST: { min: 0, max: 1, needsLogin: true },
  UPDATE: { min: 0, max: 30, hosts: true, needsLogin: true },
  XRESUME: { min: 2, max: 3, needsLogin: true },
  ACTIVATE: { min: 3, max: 3, needsLogin: true },
  RESERVE: { min: 2, max: 2, needsLogin: true },
  DEACTIVATE: { min: 2, max: 2, needsLogin: true },
  DELETE: { min: 1, max: 1, needsLogin: true },
};

const WRITES = new Set(['ACTIVATE', 'RESERVE', 'DEACTIVATE', 'DELETE']);
/** Writes one connection may have committing at once before its reader waits. */
const MAX_PIPELINED_WRITES = 64;

const T = {
  unrecognized: 'Unrecognized command',
  pleaseLogin: 'Please login first',
  already: 'already authenticated',
  streaming: 'not legal when streaming',
  readOnly: 'read-only session',
} as const;

function isLoopback(address: string | undefined): boolean {
  return !!address && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
}

export class Session {
  private socket: Socket;
  private readonly reader: CommandReader;
  private readonly output: ConnectionOutput;
  /** The reader's limits: smaller until login (the reader keeps this object). */
  private readonly limits: WireLimits;
  /** This connection's slot among its address's not-logged-in ones, and its login deadline. */
  private readonly gate: LoginGate;
  private state: State = 'noauth';
  private identity: Identity | null = null;
  private tlsActive = false;
  private busy = false;
  /** No banner and no answers yet (a slave without a complete copy). */
  private gated = false;
  private isClosed = false;
  /** The client shut its sending side; the connection closes once what it sent is answered. */
  private inputEnded = false;
  private badCount = 0;
  private failedLogins = 0;
  private stream: UpdateStream | null = null;
  private commandsSinceLogin = 0;
  /** Answers of pipelined writes, in command order. */
  private writeChain: Promise<void> = Promise.resolve();
  private writesInFlight = 0;
  /** Bytes of answers computed ahead (FINDs between pipelined writes), waiting for their turn. */
  private heldAnswerBytes = 0;
  /** Names this connection's pipelined writes touch, with how many are pending for each. */
  private readonly pendingWriteNames = new Map<string, number>();
  /** Set when this session is a backend's startup push (`ctl_mboxlist -m`): that backend's server name. */
  private pushServer: string | null = null;
  /** Set while a command waits for more input (SASL lines). */
  private inputWaiter: (() => void) | null = null;
  /** The command being executed, so shutdown can let it finish. */
  private current: Promise<void> | null = null;
  /** Set while a LIST or UPDATE dump runs. */
  private dumpWatch: StallWatch | null = null;
  private readonly tally = new CommandTally();
  readonly peer: string;

  constructor(socket: Socket, private readonly ctx: SessionContext, host: string) {
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
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** For the connections-by-state gauge. */
  get phase(): 'waiting_for_sync' | State { return this.gated ? 'waiting_for_sync' : this.state; }
  /** A LIST or UPDATE dump is running. */
  get dumping(): boolean { return this.dumpWatch !== null; }

  get streaming(): boolean {
    return this.state === 'streaming';
  }

  write(bytes: Buffer): void {
    this.output.write(bytes);
  }

  start(): void {
    this.attach(this.socket);
    const role = this.ctx.role;
    if (role.kind === 'slave' && !role.isReady()) {
      // Never serve a copy that has not completed a full sync: a chained Cyrus slave would take it as the directory.
      this.gated = true;
      void role.ready.then(() => {
        if (this.isClosed) return;
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
    socket.on('end', () => { this.inputEnded = true; this.onData(Buffer.alloc(0)); });
    socket.setTimeout(this.ctx.settings.idleTimeoutMs, () => this.idleTimeout());
  }

  private offeredMechanisms(): OfferedMechanisms {
    const plainSafeHere = this.tlsActive || this.ctx.settings.allowPlaintext || isLoopback(this.socket.remoteAddress);
    return offeredMechanisms(this.ctx.auth, plainSafeHere, !!this.ctx.tls && !this.tlsActive);
  }

  private sendBanner(): void {
    const { role, settings, tls } = this.ctx;
    const lines: Buffer[] = [untaggedLine('AUTH', bannerMechanisms(this.offeredMechanisms()))];
    if (tls && !this.tlsActive) lines.push(untaggedLine('STARTTLS'));
    lines.push(untaggedLine('PARTIAL-UPDATE'));
    const roleText = role.kind === 'master' ? '(master)' : `mupdate://${role.master}`;
    // The version string names our extensions; nothing in Cyrus parses it (spec 2.1).
    lines.push(untaggedLine('OK MUPDATE', [settings.servername, IMPLEMENTATION, `${VERSION} ${EXTENSIONS}`, roleText]));
    this.write(Buffer.concat(lines));
    this.gate.startClock(this.ctx.settings.loginTimeoutMs, () => {
      this.ctx.log.info({ peer: this.peer }, 'login timeout');
      this.bye('no login in time');
    });
  }

  private onData(chunk: Buffer): void {
    if (this.isClosed) return;
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
    try {
      while (!this.isClosed) {
        // A client that does not read its answers gets no more of them: its input waits in the kernel.
        if (this.heldAnswerBytes > ANSWER_BACKLOG_BYTES) await this.writeChain;
        if (this.output.overBound) await this.output.drained();
        const result = this.reader.next();
        if (!result) break;
        if (result.kind !== 'fatal' && result.tag) this.tally.asked(result.kind === 'command' ? result.word : null);
        if (result.kind === 'command' && this.canPipeline(result)) {
          // Writes commit together (group commit); their answers keep command order.
          const answer = this.beginWrite(result.tag, result.word, result.args);
          const key = result.args[0]!.toString('latin1');
          this.writesInFlight++;
          this.pendingWriteNames.set(key, (this.pendingWriteNames.get(key) ?? 0) + 1);
          this.writeChain = this.writeChain.then(async () => {
            (await answer)();
            this.writesInFlight--;
            const left = this.pendingWriteNames.get(key)! - 1;
            if (left) this.pendingWriteNames.set(key, left);
            else this.pendingWriteNames.delete(key);
          });
          if (this.writesInFlight >= MAX_PIPELINED_WRITES) await this.writeChain;
          continue;
        }
        if (result.kind === 'command' && this.writesInFlight > 0 && this.canFindAhead(result)) {
          // A FIND of a name none of this connection's pending writes touches reads the
          // same entry before their commit as after it: answer now, in command order.
          this.commandsSinceLogin++;
          const answer = this.findAnswer(result.tag, result.args[0]!);
          this.heldAnswerBytes += answer.length;
          this.writeChain = this.writeChain.then(() => {
            this.heldAnswerBytes -= answer.length;
            this.tally.answered('OK');
            this.write(answer);
          });
          continue;
        }
        if (this.writesInFlight > 0) await this.writeChain;
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
      if (!this.isClosed && this.socket.isPaused() && this.reader.buffered <= this.limits.maxCommand * 2) this.socket.resume();
      if (this.inputEnded && !this.gated) void this.writeChain.then(() => this.end());
    }
  }

  /** Decides, once the command word is read, whether its arguments are parsed at all. */
  private classify(word: string): ArgPolicy {
    const spec = COMMANDS[word];
    if (!spec || (word === 'STARTTLS' && !this.ctx.tls)) return { kind: 'reject', text: T.unrecognized };
    if (spec.needsLogin && this.state === 'noauth') return { kind: 'reject', text: T.pleaseLogin };
    return { kind: 'args', min: spec.min, max: spec.max, ...(spec.hosts ? { hosts: true } : {}) };
  }

  private reply(tag: Buffer | null, keyword: StatusKeyword, text: string): void {
    if (tag) this.tally.answered(keyword);
    this.write(statusLine(tag, keyword, text));
  }

  private bad(tag: Buffer | null, text: string): void {
    this.reply(tag, 'BAD', text);
    if (++this.badCount >= this.ctx.settings.maxBadCommands) {
      this.ctx.log.warn({ peer: this.peer, bads: this.badCount }, 'too many bad commands, closing');
      this.bye('Too many bad commands');
    }
  }

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
    const { tag, word, args } = r;
    if (this.state !== 'noauth') this.commandsSinceLogin++;
    if (word === 'AUTHENTICATE') {
      if (this.state !== 'noauth') return this.bad(tag, T.already);
      return this.authenticate(tag, args);
    }
    if (word === 'LOGOUT') {
      this.reply(tag, 'OK', 'bye-bye');
      return this.end();
    }
    if (word === 'STARTTLS') return this.startTls(tag);
    if (word === 'NOOP') return this.noop(tag);
    if (this.state === 'streaming') return this.bad(tag, T.streaming);
    if (WRITES.has(word)) {
      if (this.ctx.role.kind === 'slave') return this.bad(tag, T.readOnly);
      return this.writeCommand(tag, word, args);
    }
    if (word === 'FIND') return this.find(tag, args[0]!);
    if (word === 'LIST') return this.list(tag, args[0]);
    if (word === 'UPDATE') return this.update(tag, args);
    if (word === 'XRESUME') return this.resume(tag, args);
  }

  // ---- authentication (spec 3.2) ----

  private async authenticate(tag: Buffer, args: Buffer[]): Promise<void> {
    const io: SaslLineIo = {
      challenge: (data: Buffer) => this.write(Buffer.from(`${data.toString('base64')}\r\n`)),
      response: () => this.readSaslLine(),
      beforeCheck: (user: string) => this.gate.waitForGuess(() => this.isClosed,
        () => this.ctx.log.warn({ peer: this.peer, user }, 'failed-login budget of this address spent, password check waits')),
      failedCheck: () => this.gate.failedLogin(),
    };
    const outcome = await runSaslExchange(args[0]!, args[1], io, this.ctx.auth, this.offeredMechanisms());
    if (this.isClosed || outcome.kind === 'gone') return;
    if (outcome.kind === 'canceled') return this.reply(tag, 'NO', 'Client canceled authentication');
    if (outcome.kind === 'refused') {
      if (outcome.user !== undefined) this.ctx.log.warn({ peer: this.peer, user: outcome.user, authzid: outcome.authzid }, 'login refused');
      return this.loginRefused(tag, outcome.text, outcome.credentialsAt);
    }
    const { identity, mechanism } = outcome;
    this.loggedIn(identity);
    this.ctx.log.info({ peer: this.peer, user: identity.name, authcid: identity.authcid, admin: identity.admin, mechanism }, 'login');
    this.reply(tag, 'OK', 'Authenticated');
  }

  /** The connection leaves the not-logged-in limits: its slot, its deadline, its small input cap. */
  private loggedIn(identity: Identity): void {
    this.identity = identity;
    this.state = 'auth';
    this.gate.leave();
    Object.assign(this.limits, this.ctx.settings.limits);
  }

  /** Reads one SASL response line; null when the connection ended. */
  private async readSaslLine(): Promise<Buffer | null> {
    for (;;) {
      if (this.isClosed) return null;
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

  /** A failed login: NO after the pause (credential failures), closing after too many. */
  private async loginRefused(tag: Buffer, text: string, credentialsAt: number | null): Promise<void> {
    const wait = credentialsAt === null ? 0 : credentialsAt + this.ctx.settings.failedLoginPauseMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    this.reply(tag, 'NO', text);
    if (++this.failedLogins >= this.ctx.settings.maxFailedLogins) this.bye('Too many failed logins');
  }

  // ---- STARTTLS (spec 3.12) ----

  private startTls(tag: Buffer): void {
    if (this.state !== 'noauth') return this.bad(tag, "Can't Starttls after authentication");
    if (this.tlsActive) return this.bad(tag, 'Already did a successful Starttls');
    this.reply(tag, 'OK', 'Begin TLS negotiation now');
    // The OK must leave in cleartext, before the socket is wrapped.
    this.output.flush();
    // Bytes pipelined after STARTTLS were sent in cleartext: never execute them.
    this.reader.discardBuffered();
    const secure = upgradeToTls(this.socket, this.ctx.tls!, {
      secured: () => {
        this.tlsActive = true;
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

  // ---- NOOP (spec 3.10, 5.4) ----

  private async noop(tag: Buffer): Promise<void> {
    if (this.state === 'streaming') {
      if (this.ctx.role.kind === 'slave') await this.ctx.role.syncWithMaster();
      else await this.ctx.store.sync?.();
      // Everything committed before this NOOP goes out before its OK, in slices that wait for the socket.
      await this.stream?.flush();
    }
    this.reply(tag, 'OK', 'Noop done');
  }

  // ---- directory commands ----

  private async writeCommand(tag: Buffer, word: string, args: Buffer[]): Promise<void> {
    (await this.beginWrite(tag, word, args))();
  }

  /** Whether a parsed command is a write that may run while earlier writes still commit. */
  private canPipeline(r: Command): boolean {
    return WRITES.has(r.word) && this.state === 'auth' && this.ctx.role.kind === 'master' &&
      !!this.identity?.admin;
  }

  /**
   * Starts a write. Resolves, once it is durably committed (or refused), to
   * the function that writes its answer; answers are written in command order.
   */
  private beginWrite(tag: Buffer, word: string, args: Buffer[]): Promise<() => void> {
    const identity = this.identity!;
    if (!identity.admin) return Promise.resolve(() => this.reply(tag, 'NO', 'permission denied: read-only identity'));
    const name = args[0]!;
    if (name.length > MAX_NAME_BYTES) {
      // Such a name cannot be stored, so it cannot exist either.
      const creates = word === 'ACTIVATE' || word === 'RESERVE';
      const text = creates ? `mailbox name longer than ${MAX_NAME_BYTES} bytes` : rules.WRITE_TEXT.missing;
      return Promise.resolve(() => this.reply(tag, 'NO', text));
    }
    const writer: rules.Writer = { policy: this.ctx.settings.conflictPolicy, user: identity.name, authcid: identity.authcid, peer: this.peer };
    const decide = word === 'ACTIVATE' ? rules.activate(name, args[1]!, args[2]!, writer)
      : word === 'RESERVE' ? rules.reserve(name, args[1]!)
        : word === 'DEACTIVATE' ? rules.deactivate(name, args[1]!)
          : rules.remove();
    const logFields = () => ({ peer: this.peer, user: identity.name, authcid: identity.authcid, cmd: word, name: name.toString('latin1'),
      location: args[1]?.toString('latin1') });
    return this.ctx.store.mutate(name, decide, this).then(
      (outcome) => () => {
        if (outcome.ok) {
          this.ctx.log.debug(logFields(), 'directory change');
          return this.reply(tag, 'OK', rules.WRITE_TEXT.done);
        }
        if (outcome.conflictId !== undefined) {
          this.ctx.log.warn({ ...logFields(), conflict: outcome.conflictId, pushFrom: this.pushServer },
            'duplicate mailbox claim queued as a conflict');
        } else {
          this.ctx.log.info({ ...logFields(), refused: outcome.text }, 'directory change refused');
        }
        this.reply(tag, 'NO', outcome.text);
      },
      (err: Error) => () => {
        this.ctx.log.error({ ...logFields(), err: err.message, storage: err instanceof StorageError }, 'write failed');
        // "directory unavailable: ..." (spec cluster.md 2) tells the operator what to look at.
        this.reply(tag, 'NO', err instanceof StorageUnavailable ? err.message : 'directory storage failure');
      },
    );
  }

  /** Whether a command is a FIND that may be answered while this connection's writes commit. */
  private canFindAhead(r: Command): boolean {
    return r.word === 'FIND' && this.state === 'auth' &&
      !this.pendingWriteNames.has(r.args[0]!.toString('latin1'));
  }

  private find(tag: Buffer, name: Buffer): void {
    this.tally.answered('OK');
    this.write(this.findAnswer(tag, name));
  }

  /** FIND's whole answer: the entry's line (if shown) and the OK. */
  private findAnswer(tag: Buffer, name: Buffer): Buffer {
    const entry = this.ctx.store.find(name);
    if (entry && this.hidesFromPush(entry)) {
      // ctl_mboxlist -m would delete its local copy on seeing another server here (spec 7.3);
      // with no data it sends ACTIVATE instead, which is then queued as a conflict.
      this.ctx.log.info({ peer: this.peer, name: name.toString('latin1'), pushFrom: this.pushServer,
        holder: entry.location.toString('latin1') }, 'FIND in a backend push: entry held by another server not shown');
    } else if (entry) {
      return Buffer.concat([entryLine(tag, entry), statusLine(tag, 'OK', 'Search completed')]);
    }
    return statusLine(tag, 'OK', 'Search completed');
  }

  /** In a push session under the queue policy, an entry held by another server is not shown to FIND. */
  private hidesFromPush(entry: Entry): boolean {
    return this.pushServer !== null && this.ctx.settings.conflictPolicy === 'queue' &&
      serverPart(entry.location) !== this.pushServer;
  }

  private async list(tag: Buffer, prefix: Buffer | undefined): Promise<void> {
    // A backend push (ctl_mboxlist -m) starts with LIST "<servername>!" (spec 7.3).
    if (this.commandsSinceLogin === 1 && prefix && prefix.length > 1 && prefix[prefix.length - 1] === 0x21) {
      this.pushServer = prefix.subarray(0, prefix.length - 1).toString('latin1');
      this.ctx.log.info({ peer: this.peer, server: this.pushServer }, 'backend push session');
    }
    const consumer = {
      begin: () => {},
      chunk: (chunk: Buffer, release: () => void): Promise<void> | void => {
        this.output.writeOwned(chunk, release);
        if (this.output.backlog > this.ctx.settings.socketHighWater) return this.output.drained();
      },
      isCancelled: () => this.isClosed,
    };
    try {
      await this.watchingDump('LIST', () => this.ctx.dumps.dump(tag, { locationPrefix: prefix }, consumer));
    } catch (err) {
      // A LIST cut short must not end in OK.
      this.ctx.log.error({ peer: this.peer, err: (err as Error).message }, 'LIST failed');
      return this.destroy();
    }
    if (this.isClosed) return;
    this.reply(tag, 'OK', 'list complete');
  }

  /** XRESUME "<dbid>" "<seq>" ["<digest>"]: UPDATE that sends only what changed after seq (mupdated extension, README). */
  private async resume(tag: Buffer, args: Buffer[]): Promise<void> {
    const after = Number(args[1]!.toString('latin1'));
    if (!Number.isSafeInteger(after) || after < 0) return this.bad(tag, 'Badly formed arguments');
    // A cluster node first catches up, so a slave that followed another node resumes here.
    await this.ctx.store.sync?.();
    return this.update(tag, [], { dbid: args[0]!.toString('latin1'), after, digest: args[2]?.toString('latin1') });
  }

  private async update(tag: Buffer, hostArgs: Buffer[], resume?: ResumeRequest): Promise<void> {
    const hosts = hostArgs.length ? new Set(hostArgs.map((h) => h.toString('latin1'))) : null;
    const stream = new UpdateStream(tag, hosts, this.output, {
      queueLimit: this.ctx.settings.streamQueueLimit,
      queueBytes: this.ctx.settings.streamQueueBytes,
      highWater: this.ctx.settings.socketHighWater,
    }, (pending) => this.streamOverflow(pending));
    this.stream = stream;
    this.state = 'streaming';
    this.ctx.log.info({ peer: this.peer, user: this.identity?.name, hosts: hosts ? [...hosts] : 'all' }, 'UPDATE stream starts');
    try {
      await this.watchingDump('UPDATE', () => stream.run(this.ctx.store, this.ctx.dumps, resume));
    } catch (err) {
      // A dump cut short must not end in OK: the client would take it as the whole directory.
      this.ctx.log.error({ peer: this.peer, err: (err as Error).message }, 'UPDATE dump failed');
      return this.destroy();
    }
    if (this.isClosed || stream.overflowed) return;
    this.reply(tag, 'OK', 'streaming starts');
    stream.goLive();
  }

  /** Runs a LIST or UPDATE dump under a StallWatch (dump-stall.ts). */
  private watchingDump(what: 'LIST' | 'UPDATE', dump: () => Promise<void>): Promise<void> {
    return underStallWatch(this.ctx.settings.dumpStallTimeoutMs, (w) => { this.dumpWatch = w; }, metricsHooks.timedDump(what, dump), (seconds) => {
      this.ctx.log.warn({ peer: this.peer, user: this.identity?.name, command: what, seconds }, 'dump stalled: the client read nothing, closing');
      // LIST gets * BYE; an UPDATE dump is closed without a word (spec 3.9, see bye()).
      this.bye(`${what} stalled: nothing read for ${seconds} s`);
    });
  }

  private streamOverflow(pending: { names: number; bytes: number }): void {
    this.ctx.log.warn({ peer: this.peer, user: this.identity?.name, pendingNames: pending.names, pendingBytes: pending.bytes,
      limits: { names: this.ctx.settings.streamQueueLimit, bytes: this.ctx.settings.streamQueueBytes } },
    'UPDATE stream fell too far behind, closing');
    this.bye('Stream backlog too large, please resync');
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
    if (this.isClosed) return;
    if (this.stream && !this.stream.live) return this.destroy();
    this.write(statusLine(null, 'BYE', text));
    this.end();
  }

  private end(): void {
    if (this.isClosed) return;
    // The queued answer (LOGOUT's OK, a BYE) goes out before the FIN.
    this.output.flush();
    this.socket.end();
    this.finish();
    // A client that never reads must not keep the socket forever.
    setTimeout(() => this.socket.destroy(), 10_000).unref();
  }

  destroy(): void {
    if (!this.isClosed) this.finish();
    this.socket.destroy();
  }

  private finish(): void {
    this.isClosed = true;
    this.gate.leave();
    this.stream?.stop();
    this.inputWaiter?.();
    this.inputWaiter = null;
    this.output.close();
    this.ctx.ended(this);
  }

  /** For shutdown: the command in progress, if any. */
  get inFlight(): Promise<void> | null {
    const current = this.current;
    return current ? Promise.all([this.writeChain, current]).then(() => {}) : this.writeChain;
  }
}
