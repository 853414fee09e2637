/**
 * Client side of a MUPDATE connection, as the slave and the tools use it:
 * connect, read the banner, log in (SCRAM-SHA-256 when offered, else PLAIN), send commands and read
 * responses. It reads responses leniently (Cyrus masters send a few bare-word
 * texts) but data lines strictly.
 */
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import { randomBytes } from 'node:crypto';
import { buildPlainMessage, decodeBase64Strict } from '../sasl/plain.js';
import { SCRAM_MECHANISM, ScramClient, ScramError } from '../sasl/scram.js';
import { clientCommand } from '../mupdate/wire/encoder.js';
import { CommandReader, type ArgPolicy, type ReadResult, type SaslLineResult } from '../mupdate/wire/reader.js';
import { defaultStartTls, type StartTlsMode } from './tls-policy.js';

export interface UpstreamOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Authorization id; defaults to the user, as Cyrus clients send it. */
  authzid?: string | undefined;
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

export interface Response {
  tag: string;
  word: string;
  args: Buffer[];
}

const RESPONSE_SHAPES: Record<string, ArgPolicy> = {
  MAILBOX: { kind: 'args', min: 3, max: 4 },
  RESERVE: { kind: 'args', min: 2, max: 3 },
  DELETE: { kind: 'args', min: 1, max: 2 },
  XSYNC: { kind: 'args', min: 3, max: 4 },
  XRESUME: { kind: 'args', min: 1, max: 1 },
};

const RESPONSE_LIMITS = { maxTag: 256, maxWord: 256, maxString: 1 << 20, maxCommand: 4 << 20, maxSaslLine: 1 << 16 };

export class UpstreamError extends Error {}

/** No answer in time: while connecting, or while waiting for a response. */
export class UpstreamTimeout extends UpstreamError {
  constructor(readonly phase: 'connect' | 'response', message: string) {
    super(message);
  }
}

/** TLS is required but the server's banner does not offer STARTTLS. */
export class StartTlsUnavailable extends UpstreamError {}

/** The server refused the credentials. */
export class LoginRefused extends UpstreamError {}

export const STATUS_WORDS = new Set(['OK', 'NO', 'BAD', 'BYE']);

export interface CommandResult {
  status: string;
  text: string;
  tag: string;
  data: Response[];
}

/** The text of a status line's raw rest: a quoted string unquoted, bare words as they are. */
export function statusText(r: Response): string {
  const raw = r.args[0]?.toString('utf8') ?? '';
  const m = /^"((?:[^"\\]|\\.)*)"$/s.exec(raw);
  return m ? m[1]!.replace(/\\(.)/gs, '$1') : raw;
}

export class UpstreamConnection {
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

  private constructor(socket: Socket, private readonly log?: Logger, private readonly onWire?: UpstreamOptions['onWire']) {
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
      this.reader.push(d);
      this.parseBuffered();
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
    return { kind: 'command', tag: Buffer.from(status[1]!, 'latin1'), word: status[2]!.toUpperCase(), args: [Buffer.from(status[3] ?? '', 'latin1')] };
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  static async open(opts: UpstreamOptions, log?: Logger): Promise<UpstreamConnection> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: opts.host, port: opts.port });
      const timer = setTimeout(() => { s.destroy(); reject(new UpstreamTimeout('connect', `connect to ${opts.host}:${opts.port} timed out`)); }, opts.timeoutMs);
      s.once('connect', () => { clearTimeout(timer); s.setNoDelay(true); resolve(s); });
      s.once('error', (err) => { clearTimeout(timer); reject(new UpstreamError(`cannot connect to ${opts.host}:${opts.port}: ${err.message}`)); });
    });
    const conn = new UpstreamConnection(socket, log, opts.onWire);
    try {
      await conn.readBanner(opts.timeoutMs);
      const mode = opts.starttls ?? defaultStartTls(opts.host);
      if (mode !== 'never' && conn.capabilities.has('STARTTLS')) await conn.startTls(opts);
      else if (mode === 'required') throw new StartTlsUnavailable('the server does not offer STARTTLS');
      if (!opts.noLogin) await conn.login(opts);
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  private async readBanner(timeoutMs: number): Promise<void> {
    this.capabilities.clear();
    for (;;) {
      const r = await this.next(timeoutMs);
      if (!r) throw new UpstreamError('the server closed the connection before its banner');
      if (r.tag !== '*') throw new UpstreamError(`unexpected banner line from the server (${r.tag} ${r.word})`);
      if (r.word === 'OK') return;
      if (r.word === 'BYE') throw new UpstreamError('the server refused the connection (BYE)');
      this.capabilities.set(r.word, r.args);
    }
  }

  private async startTls(opts: UpstreamOptions): Promise<void> {
    this.write(Buffer.from('S01 STARTTLS\r\n'));
    const r = await this.next(opts.timeoutMs);
    if (!r || r.word !== 'OK') throw new UpstreamError('STARTTLS was refused');
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('end');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    // SNI takes host names only (an IP address there is deprecated).
    // `host` is the name the certificate must carry (a DNS name or an IP address in its altnames).
    const secure = tlsConnect({
      socket: raw, host: opts.host, rejectUnauthorized: !opts.tlsInsecure, ...(opts.tlsCa ? { ca: opts.tlsCa } : {}),
      ...(isIP(opts.host) === 0 ? { servername: opts.host } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', (err) => reject(new UpstreamError(`TLS failed: ${err.message}`)));
    });
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
    return [SCRAM_MECHANISM, 'PLAIN'].find((m) => this.mechanisms.includes(m)) ?? null;
  }

  private async login(opts: UpstreamOptions): Promise<void> {
    const authzid = opts.authzid ?? opts.user;
    if (this.loginMechanism === SCRAM_MECHANISM) return this.loginScram(opts, authzid);
    const message = buildPlainMessage(authzid, opts.user, opts.password);
    const ir = Buffer.from(message.toString('base64'));
    this.write(Buffer.concat([Buffer.from(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n`), ir, Buffer.from('\r\n')]));
    const r = await this.next(opts.timeoutMs);
    if (!r) throw new UpstreamError('the server closed the connection during login');
    if (r.word !== 'OK') throw new LoginRefused(`login as ${opts.user} refused by the server: ${statusText(r)}`);
  }

  private async loginScram(opts: UpstreamOptions, authzid: string): Promise<void> {
    const client = new ScramClient(opts.user, Buffer.from(opts.password, 'utf8'), authzid, randomBytes(18).toString('base64'));
    const line = (data: Buffer) => Buffer.from(`${data.toString('base64')}\r\n`);
    const ir = client.first().toString('base64');
    this.saslMode = true;
    this.write(Buffer.from(`A01 AUTHENTICATE "${SCRAM_MECHANISM}" {${ir.length}+}\r\n${ir}\r\n`));
    let step = 0;
    for (;;) {
      const challenge = await this.nextSaslLine(opts.timeoutMs);
      if (challenge.kind === 'status') {
        if (challenge.word === 'OK' && step === 2) return;
        if (challenge.word === 'OK') throw new UpstreamError('the server ended SCRAM without proving it knows the password');
        throw new LoginRefused(`login as ${opts.user} refused by the server: ${challenge.text}`);
      }
      try {
        if (step === 0) this.write(line(await client.final(challenge.data)));
        else if (step === 1 && client.verifyServer(challenge.data)) this.write(Buffer.from('\r\n'));
        else throw new ScramError('the server could not prove it knows the password');
      } catch (err) {
        this.write(Buffer.from('*\r\n'));
        throw err instanceof ScramError ? new UpstreamError(`SCRAM login failed: ${err.message}`) : err;
      }
      step++;
    }
  }

  /** Public for `mupdated client`: logs in on a connection opened with noLogin. */
  async authenticate(opts: UpstreamOptions): Promise<void> {
    await this.login(opts);
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
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new UpstreamTimeout('response', 'timed out waiting for the server');
      await new Promise<void>((resolve) => {
        const timer = Number.isFinite(left) ? setTimeout(() => { this.waiter = null; resolve(); }, left) : null;
        this.waiter = () => { if (timer) clearTimeout(timer); resolve(); };
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
    if (r.kind === 'fatal') throw new UpstreamError(`unreadable response from the server: ${r.text}`);
    if (r.kind === 'line') throw new UpstreamError('unexpected SASL line from the server');
    if (r.kind === 'bad') {
      throw new UpstreamError(`malformed response from the server: ${r.text}${r.tag ? ` (tag ${r.tag.toString('latin1')})` : ''}`);
    }
    return { tag: r.tag.toString('latin1'), word: r.word, args: r.args };
  }

  /** During AUTHENTICATE: a decoded challenge, or the status line that ends the exchange. */
  private async nextSaslLine(timeoutMs: number): Promise<{ kind: 'challenge'; data: Buffer } | { kind: 'status'; word: string; text: string }> {
    const r = await this.take(timeoutMs);
    if (r?.kind === 'line') {
      const data = decodeBase64Strict(r.line);
      if (!data) throw new UpstreamError('the server sent a challenge that is not base64');
      return { kind: 'challenge', data };
    }
    const response = this.toResponse(r);
    if (!response) throw new UpstreamError('the server closed the connection during login');
    if (!STATUS_WORDS.has(response.word)) throw new UpstreamError(`unexpected ${response.word} from the server during login`);
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

  /** Reads data lines until a status line; the answer to a command already sent. */
  async collect(what: string, timeoutMs?: number): Promise<CommandResult> {
    const data: Response[] = [];
    for (;;) {
      const r = await this.next(timeoutMs);
      if (!r) throw new UpstreamError(`the server closed the connection during ${what}`);
      if (STATUS_WORDS.has(r.word)) return { status: r.word, text: statusText(r), tag: r.tag, data };
      data.push(r);
    }
  }

  /** Sends LOGOUT without waiting long, then closes. */
  async logout(): Promise<void> {
    if (this.ended) return;
    this.send('Q01', 'LOGOUT');
    try {
      await this.next(2000);
    } catch { /* closing anyway */ }
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
