/**
 * A one-shot exchange on a UNIX socket (a frontend's kick socket): connect,
 * optionally send, and read everything until the other side closes.
 */
import { connect } from 'node:net';

/** What the socket at `path` sent before closing (latin1); rejects with `timeoutText` after `timeoutMs`. */
export function readUntilClose(path: string, options: { send?: Buffer; timeoutMs?: number; timeoutText?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => {
      if (options.send) s.write(options.send);
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
      resolve(Buffer.concat(got).toString('latin1'));
    });
  });
}
