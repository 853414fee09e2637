/**
 * The client side of a MUPDATE connection, as the slave, `push` and `mupdated
 * client` use it: connect, read the banner, STARTTLS, log in (login.ts), send
 * commands and read responses. It reads responses leniently (Cyrus masters
 * send a few bare-word texts) but data lines strictly.
 */
import { connect, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from '../../log.js';
import { decodeBase64Strict } from '../../sasl/plain.js';
import { clientCommand } from '../wire/encoder.js';
import { CommandReader, type ReadResult, type SaslLineResult } from '../wire/reader.js';
import {
  BannerRefused,
  ConnectFailed,
  ConnectionClosed,
  MalformedResponseError,
  MupdateClientError,
  StartTlsRefused,
  StartTlsUnavailable,
  TimeoutError,
} from './errors.js';
import { logIn, loginMechanism, type Credentials, type LoginChannel, type SaslStep } from './login.js';
import { commandResult, isStatus, RESPONSE_LIMITS, RESPONSE_SHAPES, statusText, type CommandResult, type Response } from './responses.js';
import { defaultStartTls, type StartTlsMode } from './tls-policy.js';
import { DataLineStream } from './data-lines.js';
import { tlsHandshake } from './tls-handshake.js';

/** A banner (Cyrus's is about 200 bytes) past this size is refused. */
const MAX_BANNER_BYTES = 64 * 1024;

export interface ClientOptions extends Credentials {
  host: string;
  port: number;
  /** Timeout for connect, banner and login. */
  timeoutMs: number;
  /**
   * STARTTLS: `required`, `if-offered` or `never` (certificate and name checked unless insecure).
   * Unset: required toward a server not on loopback, if-offered on loopback (tls-policy.ts).
   */
  starttls?: StartTlsMode | undefined;
  tlsInsecure?: boolean | undefined;
  /** PEM certificates to trust instead of the system's (`--tls-ca`). */
  tlsCa?: Buffer | undefined;
  /** Skip AUTHENTICATE (a client that only looks at the banner). */
  noLogin?: boolean;
  /** Sees every byte sent (`C`) and received (`S`), for a raw wire view. */
  onWire?: (direction: 'C' | 'S', bytes: Buffer) => void;
}

export class MupdateConnection implements LoginChannel {
  private socket: Socket;
  private reader = this.newReader();
  private queue: Array<ReadResult | SaslLineResult | null> = [];
  /** While an AUTHENTICATE exchange runs, lines are raw SASL lines until a status line. */
  private saslMode = false;
  private waiter: (() => void) | null = null;
  private ended = false;
  /** Capability lines of the (last) banner: name -> its arguments. */
  capabilities = new Map<string, Buffer[]>();
  /** The banner as received (its `* OK MUPDATE` strings name the implementation and extensions). */
  bannerText = '';
  private bannerDone = false;
  /** While commandStreaming reads a large answer, its fast reader of plain data lines. */
  private fastData: DataLineStream | null = null;

  private constructor(
    socket: Socket,
    private readonly log?: Logger,
    private readonly onWire?: ClientOptions['onWire'],
  ) {
    this.socket = socket;
    this.attach(socket);
  }

  private newReader(): CommandReader {
    return new CommandReader(RESPONSE_LIMITS, {
      classify: (word) => RESPONSE_SHAPES[word] ?? { kind: 'rest' },
      continuation: () => {},
    });
  }

  private attach(socket: Socket): void {
    socket.on('data', (d: Buffer) => {
      this.onWire?.('S', d);
      if (!this.bannerDone) {
        this.bannerText = (this.bannerText + d.toString('latin1')).slice(0, 65536);
        if (/^\* OK/m.test(this.bannerText)) this.bannerDone = true;
      }
      const rest = this.fastData ? this.fastData.read(d) : d;
      if (rest) {
        this.fastData = null;
        this.reader.push(rest);
        this.parseBuffered();
      }
      this.wake();
    });
    const end = () => {
      if (this.ended) return;
      this.ended = true;
      this.queue.push(null);
      this.wake();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', (err) => {
      this.log?.debug({ err: err.message }, 'upstream socket error');
      end();
    });
  }

  private parseBuffered(): void {
    for (;;) {
      const r = this.saslMode ? this.readSaslItem() : this.reader.next();
      if (!r) return;
      this.queue.push(r);
      if (r.kind === 'fatal') return;
    }
  }

  /** A raw SASL line, or the status line that ends the exchange (then parsing goes back to normal). */
  private readSaslItem(): ReadResult | SaslLineResult | null {
    const r = this.reader.readSaslLine();
    if (r?.kind !== 'line') return r;
    const status = /^(\S+) (OK|NO|BAD|BYE)(?: (.*))?$/is.exec(r.line.toString('latin1'));
    if (!status) return r;
    this.saslMode = false;
    return {
      kind: 'command',
      tag: Buffer.from(status[1], 'latin1'),
      word: status[2].toUpperCase(),
      args: [Buffer.from(status[3] ?? '', 'latin1')],
    };
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  static async open(opts: ClientOptions, log?: Logger): Promise<MupdateConnection> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: opts.host, port: opts.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new TimeoutError('connect', `connect to ${opts.host}:${opts.port} timed out`));
      }, opts.timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.setNoDelay(true);
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new ConnectFailed(err.code, `cannot connect to ${opts.host}:${opts.port}: ${err.message}`));
      });
    });
    const conn = new MupdateConnection(socket, log, opts.onWire);
    try {
      await conn.readBanner(opts.timeoutMs);
      const mode = opts.starttls ?? defaultStartTls(opts.host);
      if (mode !== 'never' && conn.capabilities.has('STARTTLS')) await conn.startTls(opts);
      else if (mode === 'required') throw new StartTlsUnavailable('the server does not offer STARTTLS');
      if (!opts.noLogin) await logIn(conn, opts);
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  private async readBanner(timeoutMs: number): Promise<void> {
    this.capabilities.clear();
    // One deadline and a size cap for the whole banner: a server that keeps sending capability lines is given up on.
    const deadline = Date.now() + timeoutMs;
    for (let bytes = 0; bytes <= MAX_BANNER_BYTES;) {
      const r = await this.next(Math.max(1, deadline - Date.now()));
      if (!r) throw new ConnectionClosed('the server closed the connection before its banner');
      if (r.tag !== '*') throw new MupdateClientError(`unexpected banner line from the server (${r.tag} ${r.word})`);
      if (r.word === 'OK') return;
      if (r.word === 'BYE') throw new BannerRefused('the server refused the connection (BYE)');
      this.capabilities.set(r.word, r.args);
      bytes += r.args.reduce((n, a) => n + a.length + 1, r.word.length + 4);
    }
    throw new MupdateClientError(`the server's banner is longer than ${MAX_BANNER_BYTES} bytes`);
  }

  private async startTls(opts: ClientOptions): Promise<void> {
    this.write(Buffer.from('S01 STARTTLS\r\n'));
    const r = await this.next(opts.timeoutMs);
    if (!r || r.word !== 'OK') throw new StartTlsRefused('STARTTLS was refused');
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('end');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    const secure = await tlsHandshake(raw, opts, opts.timeoutMs);
    this.socket = secure;
    this.bannerText = '';
    this.bannerDone = false;
    this.reader = this.newReader();
    this.queue = [];
    this.ended = false;
    this.attach(secure);
    await this.readBanner(opts.timeoutMs);
  }

  /** The mechanisms of the banner's `* AUTH` line, upper-cased. */
  get mechanisms(): string[] {
    const text = (this.capabilities.get('AUTH') ?? []).map((a) => a.toString('latin1')).join(' ');
    return text.replace(/"/g, ' ').toUpperCase().split(/\s+/).filter(Boolean);
  }

  /** SCRAM-SHA-256 when the server offers it (the password never crosses the link), else PLAIN; null for neither. */
  get loginMechanism(): string | null {
    return loginMechanism(this.mechanisms);
  }

  /** Logs in on a connection opened with noLogin (`mupdated client` asks for the password after the banner). */
  async authenticate(creds: Credentials): Promise<void> {
    await logIn(this, creds);
  }

  private write(bytes: Buffer): void {
    if (this.ended) return;
    this.onWire?.('C', bytes);
    this.socket.write(bytes);
  }

  /** Sends bytes exactly as given (a raw protocol line). */
  sendRaw(bytes: Buffer): void {
    this.write(bytes);
  }

  send(tag: string, word: string, args: Buffer[] = []): void {
    this.write(clientCommand(tag, word, args));
  }

  /** The next queued item, waiting for it until the timeout. */
  private async take(timeoutMs?: number): Promise<ReadResult | SaslLineResult | null> {
    let deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    let lines = this.fastData?.lines;
    while (this.queue.length === 0) {
      // Lines the fast reader took count as responses: the timeout runs from the last one, as for queued ones.
      if (timeoutMs !== undefined && this.fastData && this.fastData.lines !== lines) {
        lines = this.fastData.lines;
        deadline = Date.now() + timeoutMs;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError('response', 'timed out waiting for the server');
      await new Promise<void>((resolve) => {
        const timer = Number.isFinite(left)
          ? setTimeout(() => {
              this.waiter = null;
              resolve();
            }, left)
          : null;
        this.waiter = () => {
          if (timer) clearTimeout(timer);
          resolve();
        };
      });
    }
    const r = this.queue.shift()!;
    if (r === null) this.queue.unshift(null); // stays at end of stream
    return r;
  }

  /** Next response; null at end of stream. Throws on timeout or unparseable input. */
  async next(timeoutMs?: number): Promise<Response | null> {
    return this.toResponse(await this.take(timeoutMs));
  }

  private toResponse(r: ReadResult | SaslLineResult | null): Response | null {
    if (r === null) return null;
    if (r.kind === 'fatal') throw new MupdateClientError(`unreadable response from the server: ${r.text}`);
    if (r.kind === 'line') throw new MupdateClientError('unexpected SASL line from the server');
    if (r.kind === 'bad') {
      throw new MalformedResponseError(r.text, r.tag);
    }
    return { tag: r.tag.toString('latin1'), word: r.word, args: r.args };
  }

  startSasl(): void {
    this.saslMode = true;
  }

  /** During AUTHENTICATE: a decoded challenge, or the status line that ends the exchange. */
  async nextSaslStep(timeoutMs: number): Promise<SaslStep> {
    const r = await this.take(timeoutMs);
    if (r?.kind === 'line') {
      const data = decodeBase64Strict(r.line);
      if (!data) throw new MupdateClientError('the server sent a challenge that is not base64');
      return { kind: 'challenge', data };
    }
    const response = this.toResponse(r);
    if (!response) throw new ConnectionClosed('the server closed the connection during login');
    if (!isStatus(response)) throw new MupdateClientError(`unexpected ${response.word} from the server during login`);
    return { kind: 'status', word: response.word, text: statusText(response) };
  }

  /** Whether a response has already arrived and waits to be read. */
  hasQueued(): boolean {
    return this.queue.length > 0 && this.queue[0] !== null;
  }

  /** The next waiting response without taking it (undefined if none or unparseable). */
  peek(): Response | undefined {
    const r = this.queue[0];
    if (!r || r.kind !== 'command') return undefined;
    return { tag: r.tag.toString('latin1'), word: r.word, args: r.args };
  }

  /** Sends a command and collects its data lines until the tagged (or any) OK/NO/BAD/BYE. */
  async command(tag: string, word: string, args: Buffer[], timeoutMs?: number): Promise<CommandResult> {
    this.send(tag, word, args);
    return this.collect(word, timeoutMs);
  }

  /** Sends a command with a large answer (a LIST), handing each data line to `onData` in order (data-lines.ts); `data` comes back empty. */
  async commandStreaming(
    tag: string,
    word: string,
    args: Buffer[],
    onData: (word: string, args: Buffer[]) => void,
    timeoutMs?: number,
  ): Promise<CommandResult> {
    if (this.queue.length === 0 && this.reader.buffered === 0 && this.reader.atCommandStart && !this.saslMode) {
      this.fastData = new DataLineStream(onData, RESPONSE_LIMITS);
    }
    this.send(tag, word, args);
    try {
      const result = await this.collect(word, timeoutMs);
      for (const r of result.data) onData(r.word, r.args);
      return { ...result, data: [] };
    } finally {
      const left = this.fastData?.unread();
      this.fastData = null;
      if (left) {
        this.reader.push(left);
        this.parseBuffered();
      }
    }
  }

  /** Reads data lines until a status line; the answer to a command already sent. */
  async collect(what: string, timeoutMs?: number): Promise<CommandResult> {
    const data: Response[] = [];
    const status = await this.collectUntil(data, isStatus, `the server closed the connection during ${what}`, timeoutMs);
    return commandResult(status, data);
  }

  /**
   * Reads responses into `rows` until `isLast` says one ends the answer, and returns that one
   * (not put in `rows`). What was read stays in `rows` when a timeout or a closed connection
   * (ConnectionClosed with the message `closed`) interrupts.
   */
  async collectUntil(rows: Response[], isLast: (r: Response) => boolean, closed: string, timeoutMs?: number): Promise<Response> {
    for (;;) {
      const r = await this.next(timeoutMs);
      if (!r) throw new ConnectionClosed(closed);
      if (isLast(r)) return r;
      rows.push(r);
    }
  }

  /** Sends LOGOUT without waiting long, then closes. */
  async logout(): Promise<void> {
    if (this.ended) return;
    this.send('Q01', 'LOGOUT');
    try {
      await this.next(2000);
    } catch {
      /* closing anyway */
    }
    this.close();
  }

  close(): void {
    this.socket.destroy();
  }

  /** Whether the connection runs over TLS. */
  get secure(): boolean {
    return this.socket instanceof TLSSocket;
  }

  get isEnded(): boolean {
    return this.ended;
  }
}
