/**
 * A raw-socket test client: sends exact bytes, reads the server's bytes back
 * as protocol lines (a line ending in `{n+}` has its n literal bytes read as
 * the next "line", exactly like the transcripts show them).
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export class RawClient {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  ended = false;

  private constructor(public socket: Socket) {
    this.attach(socket);
  }

  private attach(socket: Socket): void {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** `localAddress` picks the client's own loopback address (127.0.0.2, ...), as another host would have. */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, ...(localAddress ? { localAddress } : {}) }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** Connects, reads the banner and sends a PLAIN login (tag A01): the client and the tagged answer line. */
  private static async attemptLogin(
    port: number,
    user: string,
    password: string,
    authzid: string,
  ): Promise<{ c: RawClient; line: string }> {
    const c = await RawClient.connect(port);
    await c.readBanner();
    const ir = Buffer.from(`${authzid}\0${user}\0${password}`).toString('base64');
    c.send(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n`);
    // A first login computes a scrypt hash (N=2^17, 128 MiB): seconds on a loaded machine.
    return { c, line: await c.readLine(30_000) };
  }

  /** Connects, reads the banner and logs in with PLAIN; throws unless the login succeeds. */
  static async login(port: number, user = 'mupdateadmin', password = 'secret', authzid = user): Promise<RawClient> {
    const { c, line } = await RawClient.attemptLogin(port, user, password, authzid);
    if (line !== 'A01 OK "Authenticated"') {
      c.close();
      throw new Error(`login failed: ${line}`);
    }
    return c;
  }

  /** One PLAIN login on a connection of its own: the tagged answer line (`A01 OK ...` or `A01 NO ...`). */
  static async tryLogin(port: number, user: string, password: string, authzid = user): Promise<string> {
    const { c, line } = await RawClient.attemptLogin(port, user, password, authzid);
    c.close();
    return line;
  }

  /** Bytes received but not yet read as lines (a capture started now must begin with them). */
  unread(): Buffer {
    return Buffer.from(this.buf);
  }

  send(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  private async waitData(deadline: number): Promise<boolean> {
    if (this.ended) return false;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.waiter = null;
        resolve();
      }, left);
      this.waiter = () => {
        clearTimeout(t);
        resolve();
      };
    });
    return true;
  }

  /** Pending literal byte count announced by the previous line. */
  private literalPending = -1;

  /**
   * Next protocol line as a latin1 string without its CRLF (literal bodies are
   * returned as their own "line", raw). Throws on timeout or close.
   */
  async readLine(timeoutMs = 5000): Promise<string> {
    const raw = await this.readLineRaw(timeoutMs);
    return raw.toString('latin1');
  }

  async readLineRaw(timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.literalPending >= 0) {
        const n = this.literalPending;
        if (this.buf.length >= n) {
          const body = this.buf.subarray(0, n);
          this.buf = this.buf.subarray(n);
          this.literalPending = -1;
          // the body is followed by ` {m+}` CRLF (next string) or CRLF (end)
          const rest = await this.readLineRaw(Math.max(1, deadline - Date.now()));
          return Buffer.concat([body, rest]);
        }
      } else {
        const lf = this.buf.indexOf(0x0a);
        if (lf >= 0) {
          let line = this.buf.subarray(0, lf);
          this.buf = this.buf.subarray(lf + 1);
          if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
          const m = /\{(\d+)\+\}$/.exec(line.toString('latin1'));
          if (m) this.literalPending = Number(m[1]);
          return Buffer.from(line);
        }
      }
      if (!(await this.waitData(deadline))) {
        throw new Error(
          this.ended
            ? `connection closed (unread: ${JSON.stringify(this.buf.toString('latin1'))})`
            : `timeout waiting for a line (unread: ${JSON.stringify(this.buf.toString('latin1'))})`,
        );
      }
    }
  }

  /** Reads lines until one starts with `<tag> OK|NO|BAD|BYE`; returns all of them. */
  async readUntilTagged(tag: string, timeoutMs = 10_000): Promise<string[]> {
    const lines: string[] = [];
    const re = new RegExp(`^${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (OK|NO|BAD|BYE) `);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = await this.readLine(Math.max(1, deadline - Date.now()));
      lines.push(line);
      if (re.test(line) && this.literalPending < 0) return lines;
    }
  }

  /** Connects (from `localAddress`, if given) and reads the banner up to its `* OK MUPDATE` line (at most 10 lines). */
  static async connectWithBanner(port: number, localAddress?: string): Promise<RawClient> {
    const c = await RawClient.connect(port, '127.0.0.1', localAddress);
    for (let i = 0; i < 10; i++) {
      const l = await c.readLine(30_000);
      if (l.startsWith('* OK MUPDATE ')) return c;
    }
    throw new Error('no banner');
  }

  async readBanner(): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const l = await this.readLine();
      lines.push(l);
      if (l.startsWith('* OK')) return lines;
    }
  }

  /** Resolves true if the server closes within the time, false otherwise. Unread data is kept. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) if (!(await this.waitData(deadline))) return this.ended;
    return true;
  }

  /** Everything received and not yet read. */
  takeBuffered(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  /** Expects nothing to arrive within ms. */
  async expectSilence(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.buf.length === 0 && !this.ended) if (!(await this.waitData(deadline))) break;
    return this.buf.length === 0;
  }

  /** Upgrades to TLS (after STARTTLS was answered OK). */
  async startTls(): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('end');
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.buf = Buffer.alloc(0);
    this.attach(secure);
  }

  close(): void {
    this.socket.destroy();
  }
}
