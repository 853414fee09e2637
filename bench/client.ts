/**
 * A lean MUPDATE client for the benchmark, the same for both servers: raw
 * sockets, any number of commands in flight per connection (answers come in
 * order, spec 5.1), and a parser that only splits responses into the tag, the
 * keyword and the string arguments (`{n+}` literals or quoted strings). It
 * shares the machine's cores with the server under test, so it allocates
 * little: one callback per command, strings only for what is checked, and
 * for big listings a fast path that hands each data response of the usual
 * three-literal shape over as raw byte ranges (RawTripleHandler).
 *
 * It does not use src/mupdate/client on purpose: it measures the server's
 * code, so it shares none of it (and costs the server's cores as little).
 */
import { connect, type Socket } from 'node:net';

const LF = 0x0a;
const CR = 0x0d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const PLUS = 0x2b;
const SPACE = 0x20;

/** A data response (MAILBOX, RESERVE, DELETE): its string arguments in order. */
export interface DataResponse {
  tag: string;
  kind: string;
  args: string[];
}

/** A tagged or untagged status line (OK/NO/BAD/BYE) or any other plain line. */
export interface StatusResponse {
  tag: string;
  kind: string;
  /** The line after the keyword, e.g. `"done"` (quotes kept). */
  rest: string;
}

export class ProtocolError extends Error {}

/**
 * The fast path for big listings: a data response of exactly the shape both
 * servers send MAILBOX in, `TAG KIND {a+}` CRLF `<s1> {b+}` CRLF `<s2> {c+}`
 * CRLF `<s3>` CRLF (three literals, nothing else), handed over as the raw
 * bytes and the offsets of the keyword and of each string (`[start, end)` in
 * `buf`), so nothing is decoded or allocated for it. `buf` is never reused
 * by the connection, but only the bytes inside the given ranges are the
 * response's. Any other data response of the command goes to its onData.
 */
export type RawTripleHandler = (
  buf: Buffer,
  kindStart: number,
  kindEnd: number,
  s1: number,
  e1: number,
  s2: number,
  e2: number,
  s3: number,
  e3: number,
) => void;

interface Pending {
  tag: string;
  onData: ((d: DataResponse) => void) | null;
  onRaw: RawTripleHandler | null;
  resolve: (s: StatusResponse) => void;
  reject: (e: Error) => void;
}

/** parseTriple: the bytes are not a three-literal data response of the command (parse them generically). */
const NOT_TRIPLE = -2;
/** Literal lengths the fast path reads (more digits: generic parser). */
const MAX_LITERAL_DIGITS = 9;
/** How much of a new chunk is first joined to the leftover of the previous one (see feed). */
const JOIN_PREFIX = 1024;

const STATUS = new Set(['OK', 'NO', 'BAD', 'BYE']);

/** The quoted text of a status line (`"done"` -> done), or the raw rest. */
export function statusText(rest: string): string {
  if (rest.length >= 2 && rest[0] === '"' && rest[rest.length - 1] === '"') return rest.slice(1, -1).replace(/\\(.)/g, '$1');
  return rest;
}

/** A string argument as a `{n+}` literal (safe for any bytes: TABs in ACLs). */
export function literal(s: string): string {
  return `{${Buffer.byteLength(s, 'latin1')}+}\r\n${s}`;
}

export function plainInitialResponse(user: string, password: string): string {
  return Buffer.from(`\0${user}\0${password}`, 'latin1').toString('base64');
}

export class MupdateConn {
  private readonly socket: Socket;
  private rest: Buffer | null = null;
  private readonly pending: Pending[] = [];
  private head = 0;
  private tagSeq = 0;
  private bannerWaiter: { resolve: (lines: string[]) => void; reject: (e: Error) => void } | null = null;
  private readonly bannerLines: string[] = [];
  private error: Error | null = null;
  /** Called for data responses that belong to no pending command (an UPDATE stream). */
  onStream: ((d: DataResponse) => void) | null = null;
  /** Called for untagged lines after the banner (e.g. `* BYE`). */
  onUntagged: ((s: StatusResponse) => void) | null = null;
  /** Decode only the first argument of data responses (cheap counting of big dumps). */
  nameOnly = false;
  readonly closed: Promise<void>;
  private closedFlag = false;
  private out = '';
  private flushScheduled = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.feed(chunk);
      } catch (e) {
        // an answer we cannot make sense of fails every command on this connection
        this.error ??= e as Error;
        socket.destroy();
      }
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.closedFlag = true;
        this.fail(this.error ?? new ProtocolError('connection closed'));
        resolve();
      });
    });
    socket.on('error', (e) => {
      this.error ??= e;
    });
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  get inFlight(): number {
    return this.pending.length - this.head;
  }

  /** Connects and reads the banner (untagged lines up to `* OK`). */
  static open(port: number, host = '127.0.0.1', timeoutMs = 30_000): Promise<MupdateConn> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      const conn = new MupdateConn(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no banner from ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      conn.bannerWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve(conn);
        },
        reject: (e) => {
          clearTimeout(timer);
          socket.destroy();
          reject(e);
        },
      };
    });
  }

  /** Connects, reads the banner and logs in with PLAIN (initial response, empty authzid as Cyrus's tools send it). */
  static async login(port: number, user: string, password: string, host = '127.0.0.1'): Promise<MupdateConn> {
    const conn = await MupdateConn.open(port, host);
    try {
      const r = await conn.command(`AUTHENTICATE "PLAIN" "${plainInitialResponse(user, password)}"`);
      if (r.kind !== 'OK') throw new ProtocolError(`login as ${user} refused: ${r.kind} ${r.rest}`);
    } catch (e) {
      conn.destroy();
      throw e;
    }
    return conn;
  }

  get banner(): readonly string[] {
    return this.bannerLines;
  }

  /**
   * Sends `<tag> <text>` CRLF (text may contain `{n+}` literals) and resolves
   * with the tagged status line; data responses with that tag go to onData,
   * or, when onRaw is given, those of the three-literal shape to onRaw (see
   * RawTripleHandler) and only the others to onData.
   */
  command(text: string, onData: ((d: DataResponse) => void) | null = null, onRaw: RawTripleHandler | null = null): Promise<StatusResponse> {
    const tag = `T${++this.tagSeq}`;
    return new Promise((resolve, reject) => {
      if (this.closedFlag) {
        reject(this.error ?? new ProtocolError('connection closed'));
        return;
      }
      this.pending.push({ tag, onData: onData ?? (onRaw ? rawOnly : null), onRaw, resolve, reject });
      this.queueOut(`${tag} ${text}\r\n`);
    });
  }

  activate(name: string, location: string, acl: string): Promise<StatusResponse> {
    return this.command(`ACTIVATE "${name}" "${location}" ${literal(acl)}`);
  }

  /** FIND: resolves with the entry found (or null) and the status line. */
  async find(name: string): Promise<{ entry: DataResponse | null; status: StatusResponse }> {
    let entry: DataResponse | null = null;
    let extra = 0;
    const status = await this.command(`FIND "${name}"`, (d) => {
      if (entry) extra++;
      entry = d;
    });
    if (extra) throw new ProtocolError(`FIND ${name} returned ${extra + 1} entries`);
    return { entry, status };
  }

  /**
   * Commands issued in the same turn (e.g. by the continuations of answers
   * parsed from one chunk) leave in one write: one syscall instead of one per
   * command keeps the client cheap next to the server under test.
   */
  private queueOut(text: string): void {
    this.out += text;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      const out = this.out;
      this.out = '';
      if (!this.closedFlag) this.socket.write(out, 'latin1');
    });
  }

  /** LOGOUT and wait for the server to close. */
  async logout(timeoutMs = 10_000): Promise<StatusResponse> {
    const r = await this.command('LOGOUT');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise<void>((res) => {
        timer = setTimeout(res, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.destroy();
    return r;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private fail(e: Error): void {
    this.bannerWaiter?.reject(e);
    this.bannerWaiter = null;
    while (this.head < this.pending.length) {
      const p = this.pending[this.head];
      this.pending[this.head++] = undefined as unknown as Pending;
      p.reject(e);
    }
  }

  private feed(chunk: Buffer): void {
    let buf = chunk;
    let pos = 0;
    if (this.rest) {
      // The leftover is the start of one response cut by the chunk boundary:
      // finish it from the leftover and the first bytes of the chunk (a
      // response is ~100 bytes), then parse the chunk in place, instead of
      // copying every chunk behind its leftover.
      const rest = this.rest;
      this.rest = null;
      // (a long leftover is a long response: join all at once rather than copy it again and again)
      const first = rest.length > 4 * JOIN_PREFIX ? chunk.length : Math.min(JOIN_PREFIX, chunk.length);
      for (let take = first; ; take = Math.min(take * 4, chunk.length)) {
        const joined = Buffer.concat([rest, chunk.subarray(0, take)]);
        const next = this.parseOne(joined, 0);
        if (next >= rest.length) {
          // the leftover alone was incomplete, so the response ends inside the chunk
          pos = next - rest.length;
          break;
        }
        if (next >= 0) {
          // (cannot happen, see above; stay correct anyway) parse the whole join
          buf = Buffer.concat([rest, chunk]);
          pos = next;
          break;
        }
        if (take === chunk.length) {
          this.rest = joined;
          return;
        }
      }
    }
    const len = buf.length;
    while (pos < len) {
      const next = this.parseOne(buf, pos);
      if (next < 0) break;
      pos = next;
    }
    if (pos < len) this.rest = buf.subarray(pos);
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Parses one response starting at pos; returns the offset after it, or -1 if incomplete. */
  private parseOne(buf: Buffer, pos: number): number {
    const p = this.pending[this.head];
    if (p !== undefined && p.onRaw !== null && this.bannerWaiter === null) {
      const q = this.parseTriple(buf, pos, p);
      if (q !== NOT_TRIPLE) return q;
    }
    const lf = buf.indexOf(LF, pos);
    if (lf < 0) return -1;
    let end = lf;
    if (end > pos && buf[end - 1] === CR) end--;
    if (end > pos && buf[end - 1] === CLOSE_BRACE) {
      // tag KIND {n+} CRLF literal [ {m+} CRLF literal ...] CRLF
      const args: string[] = [];
      let open = buf.lastIndexOf(OPEN_BRACE, end - 1);
      if (open < pos) throw new ProtocolError('bad literal marker');
      const headText = buf.toString('latin1', pos, open);
      let q = lf + 1;
      let markerEnd = end - 1;
      for (let guard = 0; guard < 64; guard++) {
        if (buf[markerEnd - 1] === PLUS) markerEnd--;
        let n = 0;
        for (let i = open + 1; i < markerEnd; i++) n = n * 10 + (buf[i] - 48);
        if (q + n > buf.length) return -1;
        if (!this.nameOnly || args.length === 0) args.push(buf.toString('latin1', q, q + n));
        else args.push('');
        q += n;
        const lf2 = buf.indexOf(LF, q);
        if (lf2 < 0) return -1;
        let e2 = lf2;
        if (e2 > q && buf[e2 - 1] === CR) e2--;
        if (e2 === q) {
          q = lf2 + 1;
          break;
        }
        // continuation: ` {m+}` (another literal) or quoted/atom text up to the line end
        if (buf[e2 - 1] === CLOSE_BRACE && buf[q] === SPACE) {
          open = buf.lastIndexOf(OPEN_BRACE, e2 - 1);
          if (open < q) throw new ProtocolError('bad literal marker');
          if (open > q + 1) for (const a of splitArgs(buf.toString('latin1', q, open))) args.push(a);
          markerEnd = e2 - 1;
          q = lf2 + 1;
          continue;
        }
        for (const a of splitArgs(buf.toString('latin1', q, e2))) args.push(a);
        q = lf2 + 1;
        break;
      }
      const sp = headText.indexOf(' ');
      const tag = headText.slice(0, sp);
      const afterTag = headText.slice(sp + 1);
      const sp2 = afterTag.indexOf(' ');
      const kind = sp2 < 0 ? afterTag : afterTag.slice(0, sp2);
      if (sp2 >= 0 && sp2 + 1 < afterTag.length) args.unshift(...splitArgs(afterTag.slice(sp2 + 1)));
      this.deliverData({ tag, kind, args });
      return q;
    }
    const line = buf.toString('latin1', pos, end);
    const sp = line.indexOf(' ');
    const tag = sp < 0 ? line : line.slice(0, sp);
    const afterTag = sp < 0 ? '' : line.slice(sp + 1);
    const sp2 = afterTag.indexOf(' ');
    const kind = sp2 < 0 ? afterTag : afterTag.slice(0, sp2);
    const rest = sp2 < 0 ? '' : afterTag.slice(sp2 + 1);
    if (this.bannerWaiter) {
      this.bannerLines.push(line);
      if (tag === '*' && kind === 'OK') {
        const w = this.bannerWaiter;
        this.bannerWaiter = null;
        w.resolve(this.bannerLines);
      } else if (tag === '*' && kind === 'BYE') {
        const w = this.bannerWaiter;
        this.bannerWaiter = null;
        w.reject(new ProtocolError(`refused: ${line}`));
      }
      return lf + 1;
    }
    if (STATUS.has(kind) && tag !== '*') {
      const p = this.pending[this.head];
      if (!p) throw new ProtocolError(`unexpected status line ${JSON.stringify(line)}`);
      if (p.tag !== tag) throw new ProtocolError(`answer ${JSON.stringify(line)} while waiting for ${p.tag}`);
      this.pending[this.head++] = undefined as unknown as Pending;
      p.resolve({ tag, kind, rest });
      return lf + 1;
    }
    if (kind === 'MAILBOX' || kind === 'RESERVE' || kind === 'DELETE') {
      this.deliverData({ tag, kind, args: splitArgs(rest) });
      return lf + 1;
    }
    this.onUntagged?.({ tag, kind, rest });
    return lf + 1;
  }

  /**
   * The fast path of parseOne for a command with onRaw: a three-literal data
   * response with its tag (see RawTripleHandler) is handed to onRaw. Returns
   * the offset after it, -1 if the bytes so far fit the shape but end too
   * soon (no LF has been passed outside a literal, so the generic parser
   * could not finish the response either), or NOT_TRIPLE.
   */
  private parseTriple(buf: Buffer, pos: number, p: Pending): number {
    const len = buf.length;
    const tag = p.tag;
    let i = pos;
    for (let j = 0; j < tag.length; j++, i++) {
      if (i >= len) return -1;
      if (buf[i] !== tag.charCodeAt(j)) return NOT_TRIPLE;
    }
    if (i >= len) return -1;
    if (buf[i++] !== SPACE) return NOT_TRIPLE;
    const kindStart = i;
    for (;;) {
      if (i >= len) return -1;
      const c = buf[i];
      if (c === SPACE) break;
      if (c < 0x41 || c > 0x5a) return NOT_TRIPLE;
      i++;
    }
    const kindEnd = i;
    if (kindEnd === kindStart) return NOT_TRIPLE;
    // three literals: ` {n+}` CRLF bytes, each followed by SP, the last by CRLF
    const at = this.tripleBounds;
    let end = i;
    for (let k = 0; k < 3; k++) {
      const start = this.literalMarker(buf, end + 1);
      if (start < 0) return start;
      end = start + this.markerLength;
      if (end >= len) return -1;
      if (buf[end] !== (k < 2 ? SPACE : CR)) return NOT_TRIPLE;
      at[2 * k] = start;
      at[2 * k + 1] = end;
    }
    if (end + 1 >= len) return -1;
    if (buf[end + 1] !== LF) return NOT_TRIPLE;
    p.onRaw!(buf, kindStart, kindEnd, at[0], at[1], at[2], at[3], at[4], end);
    return end + 2;
  }

  /** The length parseTriple's last literalMarker read. */
  private markerLength = 0;
  /** Start and end of each of the three literals of the line being parsed (reused: no allocation per line). */
  private readonly tripleBounds = new Int32Array(6);

  /** `{n+}` CRLF at i: the offset after it (n in markerLength), -1 if it ends too soon, or NOT_TRIPLE. */
  private literalMarker(buf: Buffer, i: number): number {
    const len = buf.length;
    if (i >= len) return -1;
    if (buf[i++] !== OPEN_BRACE) return NOT_TRIPLE;
    let n = 0;
    const start = i;
    for (;;) {
      if (i >= len) return -1;
      const c = buf[i];
      if (c === PLUS) break;
      if (c < 0x30 || c > 0x39 || i - start >= MAX_LITERAL_DIGITS) return NOT_TRIPLE;
      n = n * 10 + (c - 0x30);
      i++;
    }
    if (i === start) return NOT_TRIPLE;
    if (i + 1 >= len) return -1;
    if (buf[i + 1] !== CLOSE_BRACE) return NOT_TRIPLE;
    if (i + 2 >= len) return -1;
    if (buf[i + 2] !== CR) return NOT_TRIPLE;
    if (i + 3 >= len) return -1;
    if (buf[i + 3] !== LF) return NOT_TRIPLE;
    this.markerLength = n;
    return i + 4;
  }

  private deliverData(d: DataResponse): void {
    const p = this.pending[this.head];
    if (p && p.tag === d.tag) {
      if (!p.onData) throw new ProtocolError(`unexpected ${d.kind} for ${p.tag}`);
      p.onData(d);
      return;
    }
    if (this.onStream) {
      this.onStream(d);
      return;
    }
    throw new ProtocolError(`data response ${d.tag} ${d.kind} matches no command`);
  }
}

/** The onData of a command given only onRaw: a data response of another shape is an error. */
function rawOnly(d: DataResponse): void {
  throw new ProtocolError(`unexpected ${d.kind} response ${JSON.stringify(d.args)}`);
}

/** Splits quoted strings and atoms (for lines that do not use literals). */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === ' ') {
      i++;
      continue;
    }
    if (text[i] === '"') {
      let s = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\') i++;
        s += text[i++];
      }
      i++;
      out.push(s);
    } else {
      const j = text.indexOf(' ', i);
      const e = j < 0 ? text.length : j;
      out.push(text.slice(i, e));
      i = e;
    }
  }
  return out;
}
