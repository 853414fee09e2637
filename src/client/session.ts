/**
 * The session of `mupdated client`: one main connection (reconnected in the
 * interactive mode when lost), one more while watching, the commands typed
 * and how their answers are shown. The protocol work is MupdateConnection's;
 * what is typed is parsed by input.ts and what is shown is made by render.ts.
 */
import { userInfo } from 'node:os';
import { showBytes } from '../admin/conflict-view.js';
import type { HostPort } from '../host-port.js';
import { MupdateConnection, type ClientOptions } from '../mupdate/client/connection.js';
import { ConnectionClosed, TimeoutError } from '../mupdate/client/errors.js';
import { isStatus, statusText, type CommandResult, type Response } from '../mupdate/client/responses.js';
import { Completions } from './completion.js';
import { ConnectionProblem, Interrupted, UsageError } from './errors.js';
import { helpText, quoteArg, type ParsedCommand } from './input.js';
import { describeProblem } from './problems.js';
import {
  paint,
  renderLine,
  renderRows,
  renderStats,
  renderStatus,
  renderWire,
  responseJson,
  statsFromList,
  statsJson,
  timestamp,
  type JsonObject,
  type Style,
} from './render.js';
import { tlsOptions } from './tls-flags.js';
import { wireLines } from './wire-log.js';

export type { ClientFlags, Outcome, Output, WatchHooks } from './session-types.js';
import type { ClientFlags, Outcome, Output, WatchHooks } from './session-types.js';

export class ClientSession {
  private conn: MupdateConnection | null = null;
  private tagNo = 0;
  private watchNo = 0;
  private password: string | null = null;
  private cancelled = false;
  private stopWatch: (() => void) | null = null;
  private everConnected = false;
  /** Names, locations and servers seen so far, for completion. */
  private readonly seen = new Completions();

  constructor(
    readonly target: HostPort,
    private readonly flags: ClientFlags,
    readonly style: Style,
    private readonly out: Output,
    readonly interactive: boolean,
    private readonly timeoutMs: number,
    private readonly passwordSource: () => Promise<string>,
  ) {}

  get where(): string {
    return this.target.host.includes(':') ? `[${this.target.host}]:${this.target.port}` : `${this.target.host}:${this.target.port}`;
  }

  get user(): string {
    return this.flags.user ?? userInfo().username;
  }

  get watching(): boolean {
    return this.stopWatch !== null;
  }

  private json(obj: JsonObject): void {
    this.out.line(JSON.stringify(obj));
  }

  /** A wire logger for --raw: each protocol line with its direction (credentials hidden). */
  private wireLogger(suffix: string): ClientOptions['onWire'] {
    if (!this.flags.raw) return undefined;
    return wireLines((dir, line) => {
      if (this.flags.json) this.json({ wire: `${dir}${suffix}`, line: showBytes(line) });
      else this.out.line(renderWire(`${dir}${suffix}:`, line, this.style));
    });
  }

  private options(suffix: string): ClientOptions {
    return {
      host: this.target.host,
      port: this.target.port,
      user: this.user,
      password: '',
      timeoutMs: this.timeoutMs,
      ...tlsOptions(this.flags, this.target.host, 'never'),
      onWire: this.wireLogger(suffix),
    };
  }

  /** Opens and logs in a connection (asks for the password once, after the banner). */
  async open(suffix = ''): Promise<MupdateConnection> {
    const opts = this.options(suffix);
    let conn: MupdateConnection;
    try {
      conn = await MupdateConnection.open({ ...opts, noLogin: true });
    } catch (err) {
      throw new ConnectionProblem(describeProblem(err, this.where, this.user));
    }
    try {
      const auth = conn.mechanisms.join(' ');
      if (!conn.loginMechanism) {
        throw new ConnectionProblem(
          conn.capabilities.has('STARTTLS')
            ? `${this.where} offers no login without TLS: add --starttls`
            : `${this.where} offers no PLAIN or SCRAM-SHA-256 login (its mechanisms: ${auth || 'none'})`,
        );
      }
      if (this.password === null) this.password = await this.passwordSource();
      await conn.authenticate({ ...opts, password: this.password });
    } catch (err) {
      conn.close();
      if (err instanceof UsageError || err instanceof Interrupted || err instanceof ConnectionProblem) throw err;
      throw new ConnectionProblem(describeProblem(err, this.where, this.user));
    }
    return conn;
  }

  /** The banner's OK line, e.g. `"master" "mupdated" "0.1.0" "(master)"`. */
  private bannerSummary(conn: MupdateConnection): string {
    const m = /^\* OK MUPDATE (.*?)\r?$/m.exec(conn.bannerText);
    return m ? m[1] : '(no banner)';
  }

  async connect(): Promise<void> {
    const conn = await this.open();
    this.conn = conn;
    if (this.interactive) {
      const again = this.everConnected ? 're' : '';
      this.out.note(
        paint(
          this.style,
          'dim',
          `${again}connected to ${this.where}${conn.secure ? ' (TLS)' : ''}: ` + `${this.bannerSummary(conn)}; logged in as ${this.user}`,
        ),
      );
    }
    this.everConnected = true;
  }

  /** The main connection, reconnecting (interactive mode only) when it was lost. */
  private async main(): Promise<MupdateConnection> {
    if (this.conn && !this.conn.isEnded) {
      await this.drainUnsolicited(this.conn);
      if (!this.conn.isEnded) return this.conn;
    }
    if (this.conn && !this.interactive) throw new ConnectionProblem(`${this.where} closed the connection`);
    if (this.conn) this.out.note(paint(this.style, 'dim', `${this.where} had closed the connection; reconnecting`));
    this.conn?.close();
    this.conn = null;
    await this.connect();
    return this.conn!;
  }

  /** Shows what arrived while nothing was asked (a BYE, lines of a stream started with raw). */
  private async drainUnsolicited(conn: MupdateConnection): Promise<void> {
    while (conn.hasQueued()) {
      let r: Response | null;
      try {
        r = await conn.next(0);
      } catch (err) {
        conn.close();
        this.out.note(describeProblem(err, this.where, this.user));
        return;
      }
      if (!r) break;
      this.showResponses(null, [r], 'unsolicited');
      if (r.word === 'BYE') conn.close();
    }
  }

  private nextTag(): string {
    this.tagNo++;
    return `C${String(this.tagNo).padStart(2, '0')}`;
  }

  /** Prints responses: rows for people, or one JSON object each. */
  private showResponses(command: string | null, rows: Response[], prefix?: string): void {
    this.seen.remember(rows);
    if (this.flags.json) {
      for (const r of rows) this.json({ command, ...responseJson(r) });
      return;
    }
    const lines = renderRows(rows, this.style);
    for (const l of lines) this.out.line(prefix ? `${paint(this.style, 'dim', `(${prefix})`)} ${l}` : l);
  }

  private showResult(command: string, res: CommandResult): Outcome {
    const status: Response = { tag: res.tag, word: res.status, args: [Buffer.from(JSON.stringify(res.text))] };
    if (this.flags.json) {
      this.showResponses(command, res.data);
      this.json({ command, tag: res.tag, response: res.status, text: res.text });
    } else {
      this.showResponses(command, res.data);
      this.out.line(renderStatus(status.word, res.text, this.style));
    }
    if (res.status === 'BYE') {
      this.conn?.close();
      throw new ConnectionProblem(`${this.where} said BYE and closed the connection`);
    }
    return res.status === 'OK' ? 'ok' : 'failed';
  }

  /** Turns a broken command into a ConnectionProblem (and forgets the connection). */
  private broken(err: unknown, what: string): ConnectionProblem {
    this.conn?.close();
    this.conn = null;
    if (this.cancelled) {
      this.cancelled = false;
      return new ConnectionProblem(`${what} cancelled; the connection was closed (the next command reconnects)`);
    }
    if (err instanceof ConnectionProblem) return err;
    if (err instanceof TimeoutError) {
      return new ConnectionProblem(`no answer from ${this.where} to ${what} within ${this.timeoutMs / 1000} s; connection closed`);
    }
    if (err instanceof ConnectionClosed) return new ConnectionProblem(`${this.where} closed the connection (during ${what})`);
    return new ConnectionProblem(describeProblem(err, this.where, this.user));
  }

  /** Ctrl-C while a command waits: give up on it (closing the connection, as its answer would come later). */
  cancel(): void {
    if (this.stopWatch) {
      this.stopWatch();
      return;
    }
    if (this.conn) {
      this.cancelled = true;
      this.conn.close();
    }
  }

  async run(cmd: ParsedCommand, hooks?: WatchHooks): Promise<Outcome> {
    switch (cmd.kind) {
      case 'quit':
        return 'quit';
      case 'help':
        for (const l of helpText(cmd.topic).trimEnd().split('\n')) this.out.line(l);
        return 'ok';
      case 'protocol': {
        const conn = await this.main();
        const tag = this.nextTag();
        let res: CommandResult;
        try {
          res = await conn.command(tag, cmd.word, cmd.args, this.timeoutMs);
        } catch (err) {
          throw this.broken(err, cmd.word);
        }
        return this.showResult(cmd.name, res);
      }
      case 'stats': {
        const conn = await this.main();
        const tag = this.nextTag();
        let res: CommandResult;
        try {
          res = await conn.command(tag, 'LIST', cmd.prefix ? [cmd.prefix] : [], this.timeoutMs);
        } catch (err) {
          throw this.broken(err, 'LIST');
        }
        const rows = statsFromList(res.data);
        this.seen.remember(res.data);
        if (res.status !== 'OK') return this.showResult('stats', { ...res, data: [] });
        if (this.flags.json) for (const r of rows) this.json({ command: 'stats', tag, ...statsJson(r) });
        else for (const l of renderStats(rows, this.style)) this.out.line(l);
        return this.showResult('stats', { ...res, data: [] });
      }
      case 'raw':
        return this.raw(cmd.line);
      case 'watch':
        return this.watch(cmd, hooks);
    }
  }

  private async raw(line: string): Promise<Outcome> {
    const conn = await this.main();
    const tag = /^\S*/.exec(line)![0];
    conn.sendRaw(Buffer.from(`${line}\r\n`, 'utf8'));
    const rows: Response[] = [];
    // The answer ends with its tagged (or an untagged) status line, or with a request for a literal.
    const ends = (r: Response) => r.tag === '+' || (isStatus(r) && (r.tag === tag || r.tag === '*'));
    let last: Response;
    try {
      last = await conn.collectUntil(rows, ends, 'the server closed the connection during raw', this.timeoutMs);
    } catch (err) {
      this.showResponses('raw', rows);
      if (!(err instanceof TimeoutError)) throw this.broken(err, 'raw');
      this.out.note(`(no answer tagged ${tag || '*'} within ${this.timeoutMs / 1000} s; later lines show before the next command)`);
      return 'failed';
    }
    rows.push(last);
    this.showResponses('raw', rows);
    if (last.tag === '+') {
      this.out.note('(the server waits for the literal: send its bytes with raw)');
      return 'ok';
    }
    if (last.word === 'BYE' || (last.word === 'OK' && /^\S+ LOGOUT\s*$/i.test(line))) {
      this.conn?.close();
      if (!this.interactive) throw new ConnectionProblem(`${this.where} closed the connection (after ${statusText(last) || last.word})`);
      this.out.note('(the connection is closed; the next command reconnects)');
    }
    return last.word === 'OK' ? 'ok' : 'failed';
  }

  private async watch(cmd: Extract<ParsedCommand, { kind: 'watch' }>, hooks?: WatchHooks): Promise<Outcome> {
    const conn = await this.open('[watch]');
    this.watchNo++;
    const tag = `W${String(this.watchNo).padStart(2, '0')}`;
    const STOP = Symbol('stop');
    let stop!: () => void;
    const stopped = new Promise<typeof STOP>((resolve) => {
      stop = () => resolve(STOP);
    });
    this.stopWatch = stop;
    const onSignal = () => stop();
    if (!this.interactive) process.on('SIGINT', onSignal);
    let changes = 0;
    hooks?.begin();
    try {
      let res: CommandResult;
      try {
        conn.send(tag, 'UPDATE', cmd.hosts);
        const collected = conn.collect('UPDATE', this.timeoutMs);
        const first = await Promise.race([collected, stopped]);
        if (first === STOP) {
          collected.catch(() => {});
          return 'ok';
        }
        res = first;
      } catch (err) {
        throw new ConnectionProblem(
          err instanceof ConnectionClosed
            ? `${this.where} closed the connection (during UPDATE)`
            : describeProblem(err, this.where, this.user),
        );
      }
      if (cmd.dump || res.status !== 'OK') this.showResponses('watch', res.data);
      if (res.status !== 'OK') return this.showResult('watch', { ...res, data: [] });
      this.seen.remember(res.data);
      const what = cmd.hosts.length ? cmd.hosts.map((h) => quoteArg(h)).join(' ') : 'every server';
      if (this.flags.json) this.json({ command: 'watch', tag: res.tag, response: res.status, text: res.text, entries: res.data.length });
      else {
        this.out.note(
          paint(
            this.style,
            'dim',
            `watching ${what} on ${this.where}: ${res.data.length} ` +
              `entr${res.data.length === 1 ? 'y' : 'ies'} now; changes appear below${this.interactive ? ' (Ctrl-C stops)' : ''}`,
          ),
        );
      }
      let pending = conn.next();
      for (;;) {
        const r = await Promise.race([pending, stopped]).catch((err: Error) => err);
        if (r === STOP) break;
        if (r instanceof Error) throw new ConnectionProblem(describeProblem(r, this.where, this.user));
        if (r === null) throw new ConnectionProblem(`${this.where} closed the UPDATE stream`);
        const now = new Date();
        this.seen.remember([r]);
        if (this.flags.json) this.json({ command: 'watch', time: now.toISOString(), ...responseJson(r) });
        else this.out.line(`${paint(this.style, 'dim', timestamp(now))}  ${renderLine(r, this.style)}`);
        if (r.word === 'BYE') throw new ConnectionProblem(`${this.where} ended the UPDATE stream (BYE ${statusText(r)})`);
        if (!isStatus(r)) changes++;
        if (cmd.count !== null && changes >= cmd.count) break;
        pending = conn.next();
      }
      if (!this.flags.json) this.out.note(paint(this.style, 'dim', `stopped watching (${changes} change${changes === 1 ? '' : 's'})`));
      return 'ok';
    } finally {
      if (!this.interactive) process.removeListener('SIGINT', onSignal);
      this.stopWatch = null;
      conn.close();
      hooks?.end();
    }
  }

  async close(): Promise<void> {
    const conn = this.conn;
    this.conn = null;
    if (conn) await conn.logout();
  }

  /** Tab completion: command names first, then names, locations and servers seen so far. */
  complete(line: string): [string[], string] {
    return this.seen.complete(line);
  }
}
