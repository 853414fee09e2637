/**
 * A client that does not parse: it logs in, sends one LIST or UPDATE, and
 * only counts the bytes until the stream ends with the command's tagged OK
 * (nothing follows it: no writes run meanwhile). For timing listings so big
 * that parsing them would cost the shared cores more than the server's own
 * work; their content is checked by a separate, parsed listing.
 */
import { connect, type Socket } from 'node:net';
import { plainInitialResponse } from './client.js';
import { WrongAnswer } from './measure.js';

const TAIL = 96;

/** Resolves once `buf` (what has arrived so far) satisfies `done`, which may throw to fail. */
function readUntil(socket: Socket, done: (chunk: Buffer) => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      try {
        if (done(chunk)) finish(null);
      } catch (e) {
        finish(e as Error);
      }
    };
    const onClose = () => finish(new Error('connection closed'));
    const finish = (e: Error | null) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (e) reject(e);
      else resolve();
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** The last TAIL bytes seen, carried across chunks. */
class Tail {
  // (as if a line ended just before the first byte: an answer with no data lines still ends in CRLF tag OK)
  private bytes: Buffer = Buffer.from('\r\n', 'latin1');
  add(chunk: Buffer): string {
    const joined = chunk.length >= TAIL ? chunk.subarray(chunk.length - TAIL) : Buffer.concat([this.bytes, chunk]);
    this.bytes = joined.length > TAIL ? joined.subarray(joined.length - TAIL) : joined;
    return this.bytes.toString('latin1');
  }
}

export interface CountedListing {
  seconds: number;
  bytes: number;
  firstByteMs: number;
}

/** `command` (LIST or UPDATE) timed from its sending to its final `OK "<okText>"`, counting bytes only. */
export async function countedListing(
  port: number,
  user: string,
  password: string,
  command: 'LIST' | 'UPDATE',
  okText: string,
  timeoutMs: number,
): Promise<CountedListing> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  socket.on('error', () => {
    /* shows as the close readUntil waits for */
  });
  try {
    let banner = '';
    await readUntil(
      socket,
      (c) => {
        banner += c.toString('latin1');
        return /(^|\r\n)\* OK[^\r\n]*\r\n/.test(banner);
      },
      30_000,
    );
    let login = '';
    socket.write(`A AUTHENTICATE "PLAIN" "${plainInitialResponse(user, password)}"\r\n`);
    await readUntil(
      socket,
      (c) => {
        login += c.toString('latin1');
        if (/(^|\n)A (NO|BAD)/.test(login)) throw new WrongAnswer(`login refused: ${login.trim()}`);
        return /(^|\n)A OK[^\n]*\n/.test(login);
      },
      30_000,
    );
    const tail = new Tail();
    const ok = `\r\nB OK "${okText}"\r\n`;
    let bytes = 0;
    let firstByteMs = 0;
    const t0 = performance.now();
    socket.write(`B ${command}\r\n`);
    await readUntil(
      socket,
      (c) => {
        if (bytes === 0) firstByteMs = performance.now() - t0;
        bytes += c.length;
        const t = tail.add(c);
        if (t.endsWith(ok)) return true;
        if (/\r\nB (NO|BAD)[^\n]*\r\n$/.test(t)) throw new WrongAnswer(`${command} failed: ${t.slice(t.lastIndexOf('\r\nB ') + 2).trim()}`);
        return false;
      },
      timeoutMs,
    );
    return { seconds: (performance.now() - t0) / 1000, bytes, firstByteMs: Math.round(firstByteMs) };
  } finally {
    socket.destroy();
  }
}
