/**
 * A loopback TCP proxy for fault injection between a MUPDATE client (a slave)
 * and its master. It forwards bytes both ways and records every protocol
 * line that passed through it (MUPDATE lines with `{n+}`/`{n}` literals
 * joined into one logical line), and can:
 *
 * - refuse connections (accept and close at once: the master looks down),
 * - cut, stall or hold a connection once N server->client bytes have passed
 *   (mid-dump faults), or send `* BYE` at the next line boundary after N bytes,
 * - delay every chunk in either direction,
 * - stall a direction at any time and release it,
 * - inject bytes toward the client at the next line boundary,
 * - point at another master port (a master restarted on port 0).
 *
 * Everything is real sockets on 127.0.0.1; nothing is simulated.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type Direction = 'C' | 'S';

/** One logical protocol line: CRLF-terminated, literals included (raw bytes as latin1, inner CRLFs kept). */
export interface WireLine {
  dir: Direction;
  text: string;
  tag: string;
  word: string;
  /** Offset (in that direction's byte stream) just after the line's final LF. */
  end: number;
  /** Date.now() when the proxy forwarded the line's last byte. */
  at: number;
  /** Bytes the proxy itself sent (inject, BYE), not the server. */
  injected?: boolean;
}

/** Splits a MUPDATE byte stream into logical lines, following literals. */
export class LineScanner {
  private partial: Buffer[] = [];
  private partialSegment: Buffer[] = [];
  private literalLeft = 0;
  private offset = 0;

  /** Feeds bytes; calls onLine for every completed logical line. */
  feed(chunk: Buffer, onLine: (text: string, end: number) => void): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.literalLeft > 0) {
        const n = Math.min(this.literalLeft, chunk.length - pos);
        this.partial.push(chunk.subarray(pos, pos + n));
        this.literalLeft -= n;
        pos += n;
        continue;
      }
      const lf = chunk.indexOf(0x0a, pos);
      if (lf < 0) {
        this.partialSegment.push(chunk.subarray(pos));
        this.partial.push(chunk.subarray(pos));
        pos = chunk.length;
        break;
      }
      const piece = chunk.subarray(pos, lf + 1);
      this.partialSegment.push(piece);
      this.partial.push(piece);
      const segment = Buffer.concat(this.partialSegment).toString('latin1');
      this.partialSegment = [];
      pos = lf + 1;
      const m = /\{(\d+)\+?\}\r?\n$/.exec(segment);
      if (m) {
        this.literalLeft = Number(m[1]);
        continue;
      }
      const text = Buffer.concat(this.partial)
        .toString('latin1')
        .replace(/\r?\n$/, '');
      this.partial = [];
      onLine(text, this.offset + pos);
    }
    this.offset += chunk.length;
  }

  /** Whether the bytes fed so far end exactly at a line boundary. */
  get atBoundary(): boolean {
    return this.partial.length === 0 && this.literalLeft === 0;
  }
}

function parseHead(text: string): { tag: string; word: string } {
  const m = /^(\S*) ?([^\s{]*)/.exec(text);
  return { tag: m?.[1] ?? '', word: (m?.[2] ?? '').toUpperCase() };
}

/** What to do when a connection has forwarded `atServerByte` server->client bytes. */
export interface ConnPlan {
  atServerByte: number;
  /**
   * cut: close both sides right there (mid-line);
   * stall: stop forwarding server->client bytes (the rest is kept, `resume()` releases it);
   * hold: like stall, for a test that then kills a process;
   * bye: at the next line boundary send `* BYE "fault injection"` and close.
   */
  action: 'cut' | 'stall' | 'hold' | 'bye';
  /** Fire at the first line boundary at or after atServerByte (always so for bye). */
  atLineEnd?: boolean;
  /** Put the proxy into refusing mode when the action fires (the test releases it). */
  thenRefuse?: boolean;
}

interface Chunk {
  buf: Buffer;
  due: number;
}

/** One direction of a proxied connection. */
class Pipe {
  private readonly queue: Chunk[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly scanner = new LineScanner();
  /** Line ends seen in the bytes received so far (absolute offsets, increasing). */
  private readonly boundaries: number[] = [0];
  private readonly pendingLines: Array<{ text: string; end: number }> = [];
  forwarded = 0;
  received = 0;
  stalled = false;
  delayMs = 0;
  sourceEnded = false;
  /** A trigger at a byte offset of this direction. */
  trigger: { at: number; atLineEnd: boolean; fire: () => 'stop' | 'continue' } | null = null;

  constructor(
    readonly dir: Direction,
    private readonly dest: () => Socket | null,
    private readonly onLine: (line: WireLine) => void,
    private readonly onDrained: () => void,
  ) {}

  push(buf: Buffer): void {
    this.received += buf.length;
    this.scanner.feed(buf, (text, end) => {
      this.boundaries.push(end);
      this.pendingLines.push({ text, end });
    });
    this.queue.push({ buf, due: Date.now() + this.delayMs });
    this.pump();
  }

  /** First line boundary at or after n among the bytes received; undefined when not received yet. */
  private boundaryFrom(n: number): number | undefined {
    let lo = 0;
    let hi = this.boundaries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.boundaries[mid] < n) lo = mid + 1;
      else hi = mid;
    }
    return this.boundaries[lo];
  }

  private write(buf: Buffer): void {
    if (buf.length === 0) return;
    const d = this.dest();
    if (!d || d.destroyed) return;
    d.write(buf);
    this.forwarded += buf.length;
    const now = Date.now();
    while (this.pendingLines.length && this.pendingLines[0].end <= this.forwarded) {
      const l = this.pendingLines.shift()!;
      this.onLine({ dir: this.dir, text: l.text, ...parseHead(l.text), end: l.end, at: now });
    }
  }

  /** Writes bytes that did not come from the source (not counted, not recorded as source lines). */
  writeExtra(buf: Buffer): void {
    const d = this.dest();
    if (d && !d.destroyed) d.write(buf);
  }

  pump(): void {
    if (this.timer) return;
    while (!this.stalled) {
      const t = this.trigger;
      const at = t ? (t.atLineEnd ? this.boundaryFrom(Math.max(t.at, this.forwarded)) : Math.max(t.at, this.forwarded)) : undefined;
      if (t && at === this.forwarded) {
        this.trigger = null;
        if (t.fire() === 'stop') return;
        continue;
      }
      const head = this.queue[0];
      if (!head) break;
      const wait = head.due - Date.now();
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.pump();
        }, wait);
        return;
      }
      let n = head.buf.length;
      if (at !== undefined && at < this.forwarded + n) n = at - this.forwarded;
      this.write(head.buf.subarray(0, n));
      if (n === head.buf.length) this.queue.shift();
      else head.buf = head.buf.subarray(n);
    }
    if (this.queue.length === 0 && this.sourceEnded) this.onDrained();
  }

  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
    this.pump();
  }

  clear(): void {
    this.queue.length = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Bytes received from the source but not forwarded yet. */
  get backlog(): number {
    return this.received - this.forwarded;
  }
}

export type CloseCause = 'client' | 'server' | 'proxy';

export class ProxyConn {
  readonly lines: WireLine[] = [];
  readonly opened = Date.now();
  upstream: Socket | null = null;
  /** Who closed first. */
  closedBy: CloseCause | null = null;
  closedAt: number | null = null;
  readonly c2s: Pipe;
  readonly s2c: Pipe;
  private lineWaiters: Array<() => void> = [];
  private readonly closedPromise: Promise<CloseCause>;
  private resolveClosed!: (c: CloseCause) => void;
  /** Set when a plan's action fired. */
  faultFired: string | null = null;
  private faultWaiters: Array<() => void> = [];

  constructor(
    readonly id: number,
    readonly client: Socket,
    readonly refused: boolean,
  ) {
    this.closedPromise = new Promise((r) => {
      this.resolveClosed = r;
    });
    this.c2s = new Pipe(
      'C',
      () => this.upstream,
      (l) => this.record(l),
      () => this.upstream?.end(),
    );
    this.s2c = new Pipe(
      'S',
      () => this.client,
      (l) => this.record(l),
      () => this.client.end(),
    );
  }

  /** Records bytes the proxy sent to the client itself, as one line. */
  recordInjected(buf: Buffer): void {
    const text = buf.toString('latin1').replace(/\r?\n$/, '');
    this.record({ dir: 'S', text, ...parseHead(text), end: this.s2c.forwarded, at: Date.now(), injected: true });
  }

  private record(l: WireLine): void {
    this.lines.push(l);
    for (const w of this.lineWaiters.splice(0)) w();
  }

  markClosed(by: CloseCause): void {
    if (this.closedBy) return;
    this.closedBy = by;
    this.closedAt = Date.now();
    this.resolveClosed(by);
    for (const w of this.lineWaiters.splice(0)) w();
    for (const w of this.faultWaiters.splice(0)) w();
  }

  get isClosed(): boolean {
    return this.closedBy !== null;
  }

  /** Resolves with who closed first. */
  closed(timeoutMs = 30_000): Promise<CloseCause> {
    return Promise.race([
      this.closedPromise,
      new Promise<CloseCause>((_, reject) => {
        const t = setTimeout(() => reject(new Error(`proxy connection #${this.id} still open after ${timeoutMs} ms`)), timeoutMs);
        void this.closedPromise.then(() => clearTimeout(t));
      }),
    ]);
  }

  markFault(what: string): void {
    this.faultFired = what;
    for (const w of this.faultWaiters.splice(0)) w();
  }

  /** Resolves once the plan's action fired (rejects if the connection closed first or on timeout). */
  async fault(timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.faultFired) {
      if (this.isClosed) throw new Error(`proxy connection #${this.id} closed by ${this.closedBy} before its fault fired`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fault of proxy connection #${this.id} did not fire within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.faultWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.faultFired;
  }

  /** Closes both sides at once (nothing queued is delivered). */
  cut(): void {
    this.s2c.clear();
    this.c2s.clear();
    this.markClosed('proxy');
    this.client.destroy();
    this.upstream?.destroy();
  }

  clientLines(): WireLine[] {
    return this.lines.filter((l) => l.dir === 'C');
  }

  /** The text of the first `count` lines the client sent. */
  firstClientTexts(count: number): string[] {
    return this.clientLines()
      .slice(0, count)
      .map((l) => l.text);
  }

  serverLines(): WireLine[] {
    return this.lines.filter((l) => l.dir === 'S');
  }

  /** Waits for a forwarded line (from index `from` of `lines`) matching; returns it and its index. */
  async waitForLine(dir: Direction, match: RegExp, timeoutMs = 20_000, from = 0): Promise<{ line: WireLine; index: number }> {
    const deadline = Date.now() + timeoutMs;
    for (let i = from; ;) {
      for (; i < this.lines.length; i++) {
        const l = this.lines[i];
        if (l.dir === dir && match.test(l.text)) return { line: l, index: i };
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.isClosed) {
        throw new Error(
          `no ${dir} line matching ${match} on proxy connection #${this.id} ` +
            `(${this.isClosed ? `closed by ${this.closedBy}` : 'timeout'}); last lines: ` +
            JSON.stringify(this.lines.slice(-8).map((l) => `${l.dir}: ${l.text.slice(0, 120)}`)),
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.lineWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Sends bytes to the client at the next line boundary of the server's stream (recorded as one injected line). */
  inject(bytes: string | Buffer): void {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    const previous = this.s2c.trigger;
    if (previous) throw new Error('a trigger is already pending on this connection');
    this.s2c.trigger = {
      at: this.s2c.forwarded,
      atLineEnd: true,
      fire: () => {
        this.s2c.writeExtra(buf);
        this.recordInjected(buf);
        return 'continue';
      },
    };
    this.s2c.pump();
  }
}

export interface FaultProxyOptions {
  /** Listen on this port (default: any free one). */
  listenPort?: number;
  /** Forward to host:port. */
  targetPort: number;
  targetHost?: string;
}

export class FaultProxy {
  readonly conns: ProxyConn[] = [];
  /** Accept and close new connections at once (the master looks down). */
  refusing = false;
  /** Delay applied to new connections' chunks, per direction (ms). */
  delayServerMs = 0;
  delayClientMs = 0;
  /** Consumed by the next connection that is not refused. */
  nextPlan: ConnPlan | null = null;
  targetPort: number;
  readonly targetHost: string;
  private connWaiters: Array<() => void> = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
    options: FaultProxyOptions,
  ) {
    this.targetPort = options.targetPort;
    this.targetHost = options.targetHost ?? '127.0.0.1';
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer({ noDelay: true });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : 0);
      });
    });
    const proxy = new FaultProxy(server, port, options);
    server.on('connection', (s) => proxy.accept(s));
    return proxy;
  }

  /** Connections that were forwarded (not refused). */
  get forwarded(): ProxyConn[] {
    return this.conns.filter((c) => !c.refused);
  }

  /** The newest forwarded connection. */
  get latest(): ProxyConn | undefined {
    const f = this.forwarded;
    return f[f.length - 1];
  }

  retarget(port: number): void {
    this.targetPort = port;
  }

  private accept(client: Socket): void {
    client.setNoDelay(true);
    const conn = new ProxyConn(this.conns.length, client, this.refusing);
    this.conns.push(conn);
    for (const w of this.connWaiters.splice(0)) w();
    client.on('error', () => {});
    if (conn.refused) {
      conn.markClosed('proxy');
      client.destroy();
      return;
    }
    conn.s2c.delayMs = this.delayServerMs;
    conn.c2s.delayMs = this.delayClientMs;
    const upstream = connect({ host: this.targetHost, port: this.targetPort });
    upstream.setNoDelay(true);
    conn.upstream = upstream;
    upstream.on('data', (d: Buffer) => conn.s2c.push(d));
    client.on('data', (d: Buffer) => conn.c2s.push(d));
    upstream.on('error', () => {
      conn.markClosed('server');
      client.destroy();
    });
    upstream.on('end', () => {
      conn.markClosed('server');
      conn.s2c.sourceEnded = true;
      conn.s2c.pump();
    });
    upstream.on('close', () => {
      conn.markClosed('server');
      conn.s2c.sourceEnded = true;
      conn.s2c.pump();
    });
    const clientGone = () => {
      conn.markClosed('client');
      upstream.destroy();
    };
    client.on('end', clientGone);
    client.on('close', clientGone);
    const plan = this.nextPlan;
    this.nextPlan = null;
    if (plan) this.arm(conn, plan);
  }

  /** Arms a plan on a connection (already open or just accepted). */
  arm(conn: ProxyConn, plan: ConnPlan): void {
    const atLineEnd = plan.action === 'bye' || !!plan.atLineEnd;
    conn.s2c.trigger = {
      at: plan.atServerByte,
      atLineEnd,
      fire: () => {
        if (plan.thenRefuse) this.refusing = true;
        conn.markFault(plan.action);
        switch (plan.action) {
          case 'cut':
            conn.cut();
            return 'stop';
          case 'stall':
          case 'hold':
            conn.s2c.stall();
            return 'stop';
          case 'bye':
            conn.s2c.writeExtra(Buffer.from('* BYE "fault injection"\r\n'));
            conn.recordInjected(Buffer.from('* BYE "fault injection"\r\n'));
            conn.s2c.clear();
            conn.markClosed('proxy');
            conn.client.end();
            conn.upstream?.destroy();
            return 'stop';
        }
      },
    };
    conn.s2c.pump();
  }

  /** Waits for connection number `index` (0-based over all accepted, refused included). */
  async waitForConnection(index: number, timeoutMs = 20_000): Promise<ProxyConn> {
    const deadline = Date.now() + timeoutMs;
    while (this.conns.length <= index) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`proxy connection #${index} did not arrive within ${timeoutMs} ms (have ${this.conns.length})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.connWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.conns[index];
  }

  /** Waits for the next forwarded (not refused) connection after those that exist now. */
  async nextForwarded(timeoutMs = 20_000): Promise<ProxyConn> {
    const deadline = Date.now() + timeoutMs;
    for (let i = this.conns.length; ; i++) {
      const c = await this.waitForConnection(i, Math.max(1, deadline - Date.now()));
      if (!c.refused) return c;
    }
  }

  /** Cuts every open connection. */
  cutAll(): void {
    for (const c of this.conns) if (!c.isClosed) c.cut();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * The data lines of a resume or dump answer on a connection: lines tagged
 * `tag` between the line matching `start` (exclusive) and `<tag> OK`
 * (exclusive), server to client.
 */
export function dataLinesBetween(
  conn: ProxyConn,
  tag: string,
  start: RegExp,
): { head: WireLine | undefined; data: WireLine[]; end: WireLine | undefined } {
  const s = conn.serverLines();
  const i = s.findIndex((l) => start.test(l.text));
  if (i < 0) return { head: undefined, data: [], end: undefined };
  const data: WireLine[] = [];
  for (let j = i + 1; j < s.length; j++) {
    const l = s[j];
    if (l.tag === tag && l.word === 'OK') return { head: s[i], data, end: l };
    data.push(l);
  }
  return { head: s[i], data, end: undefined };
}
