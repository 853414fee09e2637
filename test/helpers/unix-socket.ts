/**
 * A one-shot exchange on a UNIX socket (a frontend's kick socket): connect,
 * optionally send, and read everything until the other side closes.
 */
import { connect } from 'node:net';

export interface UnixExchange {
  send?: Buffer | string;
  /** Shut our sending side after `send` (a request ended by half-close). */
  end?: boolean;
  /** How the answer's bytes are read (latin1 unless said). */
  encoding?: BufferEncoding;
  timeoutMs?: number;
  timeoutText?: string;
}

/** What the socket at `path` sent before closing; rejects with `timeoutText` after `timeoutMs`. */
export function readUntilClose(path: string, options: UnixExchange = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => {
      if (options.end) s.end(options.send ?? '');
      else if (options.send) s.write(options.send);
    });
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(options.timeoutText ?? `no answer on ${path}`));
    }, options.timeoutMs ?? 20_000);
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got).toString(options.encoding ?? 'latin1'));
    });
  });
}
