/**
 * `mupdated client`: a MUPDATE client for people debugging a Murder (ours or
 * Cyrus's). Interactive on a terminal (history, completion, automatic tags,
 * readable rows, `watch`), line-by-line scripted otherwise.
 *
 * The protocol work is UpstreamConnection's; what is typed is parsed by
 * src/client/input.ts and what is shown is made by src/client/render.ts.
 */
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { clearLine, createInterface, cursorTo, type Interface } from 'node:readline';
import tty from 'node:tty';
import { showBytes } from '../admin/conflict-view.js';
import { ConfigError, DEFAULT_PORT, parseHostPort, type HostPort } from '../config.js';
import { isLoopbackHost } from '../resync/tls-policy.js';
import { describeProblem } from './client-problems.js';
import { tlsOptions, TlsFlagsError, type TlsFlags } from './tls-flags.js';
import {
  STATUS_WORDS, UpstreamConnection, UpstreamError, UpstreamTimeout, statusText,
  type CommandResult, type Response, type UpstreamOptions,
} from '../resync/upstream.js';
import {
  COMMAND_NAMES, InputError, bareArg, helpText, parseCommand, quoteArg, type ParsedCommand,
} from '../client/input.js';
import {
  colourWanted, paint, renderLine, renderRows, renderStats, renderStatus, renderWire, responseJson,
  statsFromList, statsJson, timestamp, type JsonObject, type Style,
} from '../client/render.js';

export interface ClientFlags extends TlsFlags {
  user?: string | undefined;
  'password-file'?: string | undefined;
  raw?: boolean | undefined;
  json?: boolean | undefined;
  timeout?: string | undefined;
}

export const CLIENT_USAGE = `usage: mupdated client [HOST[:PORT]] [--user NAME] [--password-file FILE] [--starttls [--tls-insecure]]
                       [--tls-ca FILE] [--plaintext] [--raw] [--json] [--timeout SECONDS]
  Talks MUPDATE to a master or slave (default 127.0.0.1:${DEFAULT_PORT}), logging in as NAME (SCRAM-SHA-256 or PLAIN)
  (default: your login name). Without --password-file it asks for the password (not echoed).
  On a terminal: a prompt with history (~/.mupdated_history, or $MUPDATED_HISTORY), Tab completion,
  and these commands (arguments typed plainly, quoted when they contain spaces; type help):
    find NAME | list [PREFIX] | stats [PREFIX] | activate NAME LOCATION "ID RIGHTS ..." |
    reserve NAME LOCATION | deactivate NAME LOCATION | delete NAME | noop |
    watch [--dump] [--count N] [HOST ...] | raw TAG COMMAND ... | help | quit
  Otherwise it reads the same commands from standard input, one per line.
  --starttls     require STARTTLS (the certificate and its name are checked); toward a server not on
                 loopback it is required anyway
  --tls-ca FILE  trust the CA certificate(s) in FILE (PEM) instead of the system's
  --tls-insecure do not check the server's certificate
  --plaintext    no TLS, even toward a server not on loopback (the password crosses in clear)
  --raw          also show every protocol line sent (C:) and received (S:)
  --json         one JSON object per response (byte strings escaped as \\t \\\\ \\xNN)
  --timeout S    how long to wait for the server (connect, login, each response line; default 30)
  Colour on a terminal unless NO_COLOR is set.
  Exit status with commands from standard input: 0 every command answered OK; 1 some command got
  NO or BAD or could not be parsed; 2 usage error or connection problem (refused, TLS failure,
  login refused, connection closed or timed out).
`;

class UsageError extends Error {}

/** The connection is unusable (refused, TLS, login, closed, timed out); the message says why. */
class ConnectionProblem extends Error {}

type Outcome = 'ok' | 'failed' | 'quit';

/** Where output goes; the interactive mode redraws its prompt around it. */
interface Output {
  /** A line for standard output. */
  line(text: string): void;
  /** A line for people about a problem or a state (stderr when scripted). */
  note(text: string): void;
}

// ---------------------------------------------------------------------------
// Password and history

function readPasswordFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').split(/\r?\n/)[0] ?? '';
  } catch (err) {
    throw new UsageError(`cannot read the password file: ${(err as Error).message}`);
  }
}

class Interrupted extends Error {}

/** Asks for a password on the terminal without echoing it. */
async function askPassword(prompt: string): Promise<string> {
  let input: tty.ReadStream;
  let output: NodeJS.WritableStream;
  const opened: Array<{ destroy(): void }> = [];
  if (process.stdin.isTTY) {
    input = process.stdin as tty.ReadStream;
    output = process.stderr.isTTY ? process.stderr : process.stdout;
  } else {
    let rfd: number;
    let wfd: number;
    try {
      rfd = openSync('/dev/tty', 'r');
    } catch {
      throw new UsageError('no password: give --password-file FILE (standard input is not a terminal and there is no terminal to ask on)');
    }
    try {
      wfd = openSync('/dev/tty', 'w');
    } catch {
      closeSync(rfd);
      throw new UsageError('no password: give --password-file FILE');
    }
    input = new tty.ReadStream(rfd);
    const w = new tty.WriteStream(wfd);
    output = w;
    opened.push(input, w);
  }
  output.write(prompt);
  input.setRawMode(true);
  input.resume();
  return new Promise<string>((resolve, reject) => {
    let pw = '';
    const finish = () => {
      input.removeListener('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      for (const s of opened) s.destroy();
    };
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(pw);
          return;
        }
        if (ch === '\x03' || (ch === '\x04' && pw === '')) {
          finish();
          reject(new Interrupted('no password given'));
          return;
        }
        if (ch === '\x7f' || ch === '\b') pw = [...pw].slice(0, -1).join('');
        else if (ch === '\x15') pw = '';
        else if (ch >= ' ') pw += ch;
      }
    };
    input.on('data', onData);
  });
}

function historyPath(): string {
  return process.env.MUPDATED_HISTORY || join(homedir(), '.mupdated_history');
}

const HISTORY_SIZE = 1000;

/** Newest first, as readline wants it. */
function loadHistory(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(-HISTORY_SIZE).reverse();
  } catch {
    return [];
  }
}

function saveHistory(path: string, history: string[]): void {
  try {
    writeFileSync(path, history.slice(0, HISTORY_SIZE).reverse().join('\n') + '\n', { mode: 0o600 });
  } catch { /* history is a convenience */ }
}

// ---------------------------------------------------------------------------
// The session: one main connection, and one more while watching

interface WatchHooks {
  begin(): void;
  end(): void;
}

class ClientSession {
  private conn: UpstreamConnection | null = null;
  private tagNo = 0;
  private watchNo = 0;
  private password: string | null = null;
  private cancelled = false;
  private stopWatch: (() => void) | null = null;
  private everConnected = false;
  /** Names, locations and servers seen so far, for completion. */
  private readonly names = new Map<string, Buffer>();
  private readonly locations = new Map<string, Buffer>();
  private readonly servers = new Map<string, Buffer>();

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
  private wireLogger(suffix: string): UpstreamOptions['onWire'] {
    if (!this.flags.raw) return undefined;
    const partial: Record<'C' | 'S', Buffer> = { C: Buffer.alloc(0), S: Buffer.alloc(0) };
    let hiding: string | null = null; // the mechanism whose client lines are hidden until the server's answer
    return (dir, bytes) => {
      let buf = Buffer.concat([partial[dir], bytes]);
      for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a)) {
        let line = buf.subarray(0, i);
        buf = buf.subarray(i + 1);
        if (line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
        const auth = /^\S+ AUTHENTICATE "?([\w-]+)"? .*\{\d+\+?\}$/i.exec(line.toString('latin1'));
        if (dir === 'C' && hiding) line = Buffer.from(`<${hiding} credentials hidden>`);
        else if (dir === 'C' && auth) hiding = auth[1]!.toUpperCase();
        else if (dir === 'S' && /^\S+ (OK|NO|BAD|BYE)\b/i.test(line.toString('latin1'))) hiding = null;
        if (this.flags.json) this.json({ wire: `${dir}${suffix}`, line: showBytes(line) });
        else this.out.line(renderWire(`${dir}${suffix}:`, line, this.style));
      }
      partial[dir] = buf;
    };
  }

  private options(suffix: string): UpstreamOptions {
    return {
      host: this.target.host, port: this.target.port, user: this.user, password: '',
      timeoutMs: this.timeoutMs,
      ...tlsOptions(this.flags, this.target.host, 'never'),
      onWire: this.wireLogger(suffix),
    };
  }

  /** Opens and logs in a connection (asks for the password once, after the banner). */
  async open(suffix = ''): Promise<UpstreamConnection> {
    const opts = this.options(suffix);
    let conn: UpstreamConnection;
    try {
      conn = await UpstreamConnection.open({ ...opts, noLogin: true });
    } catch (err) {
      throw new ConnectionProblem(describeProblem(err, this.where, this.user));
    }
    try {
      const auth = conn.mechanisms.join(' ');
      if (!conn.loginMechanism) {
        throw new ConnectionProblem(conn.capabilities.has('STARTTLS')
          ? `${this.where} offers no login without TLS: add --starttls`
          : `${this.where} offers no PLAIN or SCRAM-SHA-256 login (its mechanisms: ${auth || 'none'})`);
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
  private bannerSummary(conn: UpstreamConnection): string {
    const m = /^\* OK MUPDATE (.*?)\r?$/m.exec(conn.bannerText);
    return m ? m[1]! : '(no banner)';
  }

  async connect(): Promise<void> {
    const conn = await this.open();
    this.conn = conn;
    if (this.interactive) {
      const again = this.everConnected ? 're' : '';
      this.out.note(paint(this.style, 'dim', `${again}connected to ${this.where}${conn.secure ? ' (TLS)' : ''}: ` +
        `${this.bannerSummary(conn)}; logged in as ${this.user}`));
    }
    this.everConnected = true;
  }

  /** The main connection, reconnecting (interactive mode only) when it was lost. */
  private async main(): Promise<UpstreamConnection> {
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
  private async drainUnsolicited(conn: UpstreamConnection): Promise<void> {
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

  private remember(rows: Response[]): void {
    for (const r of rows) {
      if (!['MAILBOX', 'RESERVE', 'DELETE'].includes(r.word) || r.args.length === 0) continue;
      if (this.names.size < 10_000) this.names.set(r.args[0]!.toString('latin1'), r.args[0]!);
      const loc = r.args[1];
      if (loc && r.word !== 'DELETE') {
        if (this.locations.size < 1000) this.locations.set(loc.toString('latin1'), loc);
        const server = loc.subarray(0, loc.includes(0x21) ? loc.indexOf(0x21) : loc.length);
        if (this.servers.size < 1000) this.servers.set(server.toString('latin1'), server);
      }
    }
  }

  /** Prints responses: rows for people, or one JSON object each. */
  private showResponses(command: string | null, rows: Response[], prefix?: string): void {
    this.remember(rows);
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
    const msg = err instanceof Error ? err.message : String(err);
    if (err instanceof UpstreamTimeout) {
      return new ConnectionProblem(`no answer from ${this.where} to ${what} within ${this.timeoutMs / 1000} s; connection closed`);
    }
    if (/closed the connection/.test(msg)) return new ConnectionProblem(`${this.where} closed the connection (during ${what})`);
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
        this.remember(res.data);
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
    let outcome: Outcome = 'ok';
    try {
      for (;;) {
        let r: Response | null;
        try {
          r = await conn.next(this.timeoutMs);
        } catch (err) {
          if (err instanceof UpstreamTimeout) {
            this.showResponses('raw', rows);
            this.out.note(`(no answer tagged ${tag || '*'} within ${this.timeoutMs / 1000} s; later lines show before the next command)`);
            return 'failed';
          }
          throw err;
        }
        if (!r) throw new UpstreamError('the server closed the connection during raw');
        rows.push(r);
        if (r.tag === '+') {
          this.showResponses('raw', rows);
          this.out.note('(the server waits for the literal: send its bytes with raw)');
          return 'ok';
        }
        if (STATUS_WORDS.has(r.word) && (r.tag === tag || r.tag === '*')) {
          if (r.word !== 'OK') outcome = 'failed';
          break;
        }
      }
    } catch (err) {
      this.showResponses('raw', rows);
      throw this.broken(err, 'raw');
    }
    this.showResponses('raw', rows);
    const last = rows[rows.length - 1]!;
    if (last.word === 'BYE' || (last.word === 'OK' && /^\S+ LOGOUT\s*$/i.test(line))) {
      this.conn?.close();
      if (!this.interactive) throw new ConnectionProblem(`${this.where} closed the connection (after ${statusText(last) || last.word})`);
      this.out.note('(the connection is closed; the next command reconnects)');
    }
    return outcome;
  }

  private async watch(cmd: Extract<ParsedCommand, { kind: 'watch' }>, hooks?: WatchHooks): Promise<Outcome> {
    const conn = await this.open('[watch]');
    this.watchNo++;
    const tag = `W${String(this.watchNo).padStart(2, '0')}`;
    const STOP = Symbol('stop');
    let stop!: () => void;
    const stopped = new Promise<typeof STOP>((resolve) => { stop = () => resolve(STOP); });
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
        const closed = err instanceof Error && /closed the connection/.test(err.message);
        throw new ConnectionProblem(closed ? `${this.where} closed the connection (during UPDATE)` : describeProblem(err, this.where, this.user));
      }
      if (cmd.dump || res.status !== 'OK') this.showResponses('watch', res.data);
      if (res.status !== 'OK') return this.showResult('watch', { ...res, data: [] });
      this.remember(res.data);
      const what = cmd.hosts.length ? cmd.hosts.map((h) => quoteArg(h)).join(' ') : 'every server';
      if (this.flags.json) this.json({ command: 'watch', tag: res.tag, response: res.status, text: res.text, entries: res.data.length });
      else {
        this.out.note(paint(this.style, 'dim', `watching ${what} on ${this.where}: ${res.data.length} ` +
          `entr${res.data.length === 1 ? 'y' : 'ies'} now; changes appear below${this.interactive ? ' (Ctrl-C stops)' : ''}`));
      }
      let pending = conn.next();
      for (;;) {
        const r = await Promise.race([pending, stopped]).catch((err: Error) => err);
        if (r === STOP) break;
        if (r instanceof Error) throw new ConnectionProblem(describeProblem(r, this.where, this.user));
        if (r === null) throw new ConnectionProblem(`${this.where} closed the UPDATE stream`);
        const now = new Date();
        this.remember([r]);
        if (this.flags.json) this.json({ command: 'watch', time: now.toISOString(), ...responseJson(r) });
        else this.out.line(`${paint(this.style, 'dim', timestamp(now))}  ${renderLine(r, this.style)}`);
        if (r.word === 'BYE') throw new ConnectionProblem(`${this.where} ended the UPDATE stream (BYE ${statusText(r)})`);
        if (!STATUS_WORDS.has(r.word)) changes++;
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
    const first = /^(\s*)(\S*)$/.exec(line);
    if (first) {
      const w = first[2]!.toLowerCase();
      const hits = COMMAND_NAMES.filter((c) => c.startsWith(w)).map((c) => `${c} `);
      return [hits, first[2]!];
    }
    // Where the word being typed starts (a space inside quotes or after a backslash is part of it).
    let start = 0;
    let pos = -1;
    let inWord = false;
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (!inWord) {
        if (c === ' ' || c === '\t') continue;
        inWord = true;
        start = i;
        pos++;
        quoted = c === '"';
        continue;
      }
      if (c === '\\') i++;
      else if (quoted && c === '"') quoted = false;
      else if (!quoted && (c === ' ' || c === '\t')) inWord = false;
    }
    if (!inWord) {
      pos++;
      start = line.length;
    }
    const cmd = (/^\s*(\S+)/.exec(line)?.[1] ?? '').toLowerCase();
    const last = line.slice(start);
    // Typed with a leading quote: complete the quoted form; else the bare one (spaces as `\ `).
    const form = (b: Buffer) => (last.startsWith('"') ? quoteArg(b) : bareArg(b));
    let pool: string[] = [];
    if (['find', 'delete', 'activate', 'reserve', 'deactivate'].includes(cmd) && pos === 1) pool = [...this.names.values()].map(form);
    else if (['activate', 'reserve', 'deactivate'].includes(cmd) && pos === 2) pool = [...this.locations.values()].map(form);
    else if ((cmd === 'list' || cmd === 'stats') && pos === 1) {
      pool = [...this.servers.values()].map((s) => form(Buffer.concat([s, Buffer.from('!')])));
    } else if (cmd === 'watch') pool = [...this.servers.values()].map(form);
    else if (cmd === 'help' && pos === 1) pool = COMMAND_NAMES;
    const hits = pool.filter((p) => p.startsWith(last)).sort().slice(0, 200);
    return [hits.length === 1 && !hits[0]!.endsWith('!') && !hits[0]!.endsWith('!"') ? [`${hits[0]} `] : hits, last];
  }
}

// ---------------------------------------------------------------------------
// Modes

async function scripted(session: ClientSession, out: Output, json: boolean): Promise<number> {
  const rl = createInterface({ input: process.stdin, terminal: false, crlfDelay: Infinity });
  let code = 0;
  try {
    for await (const line of rl) {
      let cmd: ParsedCommand | null;
      try {
        cmd = parseCommand(line);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        if (json) out.line(JSON.stringify({ command: line.trim().split(/\s+/)[0]?.toLowerCase() ?? '', error: err.message }));
        else out.note(`error: ${err.message}`);
        code = 1;
        continue;
      }
      if (!cmd) continue;
      try {
        const outcome = await session.run(cmd);
        if (outcome === 'quit') break;
        if (outcome === 'failed') code = 1;
      } catch (err) {
        if (err instanceof ConnectionProblem) {
          out.note(`mupdated client: ${err.message}`);
          return 2;
        }
        throw err;
      }
    }
  } finally {
    rl.close();
    process.stdin.destroy();
  }
  await session.close();
  return code;
}

async function interactive(session: ClientSession, target: string, setOutput: (o: Output) => void): Promise<number> {
  const path = historyPath();
  const rl: Interface = createInterface({
    input: process.stdin, output: process.stdout, terminal: !!process.stdout.isTTY,
    history: loadHistory(path), historySize: HISTORY_SIZE, removeHistoryDuplicates: true,
    completer: (line: string) => session.complete(line),
    prompt: `${target}> `,
  });
  const promptText = `${target}> `;
  rl.on('history', (h: string[]) => saveHistory(path, h));
  let promptShown = false;
  let closed = false;
  rl.once('close', () => { closed = true; });
  const stdout = process.stdout;
  const print = (text: string) => {
    if (promptShown && !closed && rl.terminal) {
      cursorTo(stdout, 0);
      clearLine(stdout, 0);
      stdout.write(`${text}\n`);
      rl.prompt(true);
    } else stdout.write(`${text}\n`);
  };
  setOutput({ line: print, note: print });
  const showPrompt = () => {
    if (closed) return;
    promptShown = true;
    rl.prompt(true);
  };
  const hooks: WatchHooks = {
    begin: () => { rl.setPrompt(''); showPrompt(); },
    end: () => {
      // what was typed while watching was not run: drop it
      if (closed) return;
      if (rl.line !== '') {
        rl.write(null, { ctrl: true, name: 'e' });
        rl.write(null, { ctrl: true, name: 'u' });
      }
      promptShown = false;
      cursorTo(stdout, 0);
      clearLine(stdout, 0);
      rl.setPrompt(promptText);
    },
  };

  return new Promise<number>((resolve) => {
    const queue: string[] = [];
    let busy = false;
    let closing = false;
    let finished = false;
    const finish = async () => {
      if (finished) return;
      finished = true;
      promptShown = false; // (a prompt() on a closed interface would resume stdin and keep the process alive)
      await session.close();
      rl.close();
      resolve(0);
    };
    const pump = async () => {
      if (busy || finished) return;
      busy = true;
      promptShown = false;
      while (queue.length > 0 && !closing) {
        const line = queue.shift()!;
        let cmd: ParsedCommand | null = null;
        try {
          cmd = parseCommand(line);
        } catch (err) {
          print(paint(session.style, 'red', `error: ${(err as Error).message}`));
        }
        if (!cmd) continue;
        try {
          if ((await session.run(cmd, hooks)) === 'quit') closing = true;
        } catch (err) {
          if (err instanceof ConnectionProblem || err instanceof UsageError || err instanceof Interrupted) {
            print(paint(session.style, 'red', `error: ${err.message}`));
          } else {
            print(paint(session.style, 'red', `error: ${(err as Error).message ?? String(err)}`));
          }
        }
      }
      busy = false;
      if (closing) {
        await finish();
        return;
      }
      showPrompt();
    };
    rl.on('line', (line: string) => {
      if (session.watching) {
        print(paint(session.style, 'dim', '(watching: Ctrl-C returns to the prompt)'));
        return;
      }
      queue.push(line);
      void pump();
    });
    rl.on('SIGINT', () => {
      if (session.watching || busy) {
        stdout.write('^C\n');
        session.cancel();
        return;
      }
      if (closed) return;
      if (rl.line !== '') {
        rl.write(null, { ctrl: true, name: 'e' });
        stdout.write('^C\n');
        rl.write(null, { ctrl: true, name: 'u' });
        return;
      }
      print(paint(session.style, 'dim', '(type quit or press Ctrl-D to leave)'));
    });
    rl.on('close', () => {
      promptShown = false;
      if (finished) return;
      closing = true;
      if (session.watching) session.cancel();
      if (!busy) {
        stdout.write('\n');
        void finish();
      }
    });
    print(paint(session.style, 'dim', 'type help for the commands, Tab completes, Ctrl-D leaves'));
    showPrompt();
  });
}

export async function runClient(positionals: string[], flags: ClientFlags): Promise<number> {
  // Node warns (DEP0123) when TLS is started towards an IP address; that is no news to a person here.
  process.noDeprecation = true;
  const scriptedMode = !process.stdin.isTTY;
  const style: Style = { color: colourWanted(process.stdout.isTTY, process.env) };
  let current: Output = {
    line: (t) => process.stdout.write(`${t}\n`),
    note: (t) => (scriptedMode ? process.stderr : process.stdout).write(`${t}\n`),
  };
  const out: Output = { line: (t) => current.line(t), note: (t) => current.note(t) };
  try {
    if (positionals.length > 1) throw new UsageError(CLIENT_USAGE);
    let target: HostPort;
    try {
      target = parseHostPort(positionals[0] ?? `127.0.0.1:${DEFAULT_PORT}`, DEFAULT_PORT);
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(`${err.message} (give HOST:PORT, e.g. 127.0.0.1:${DEFAULT_PORT})`);
      throw err;
    }
    const timeout = flags.timeout === undefined ? 30 : Number(flags.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError('--timeout: a number of seconds > 0');
    if (flags['tls-insecure'] && !flags.starttls && isLoopbackHost(target.host)) {
      throw new UsageError('--tls-insecure goes with --starttls');
    }
    try {
      tlsOptions(flags, target.host, 'never');
    } catch (err) {
      if (err instanceof TlsFlagsError) throw new UsageError(err.message);
      throw err;
    }
    const file = flags['password-file'];
    const fixed = file !== undefined ? readPasswordFile(file) : null;
    const user = flags.user ?? userInfo().username;
    const passwordSource = async () => fixed ?? askPassword(`password for ${user} at ${positionals[0] ?? `127.0.0.1:${DEFAULT_PORT}`}: `);
    const session = new ClientSession(target, flags, style, out, !scriptedMode, timeout * 1000, passwordSource);
    await session.connect();
    if (scriptedMode) return await scripted(session, out, !!flags.json);
    return await interactive(session, session.where, (o) => { current = o; });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(err.message.endsWith('\n') ? err.message : `mupdated client: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ConnectionProblem || err instanceof Interrupted) {
      process.stderr.write(`mupdated client: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
