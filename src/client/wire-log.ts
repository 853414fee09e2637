/** The `--raw` view of `mupdated client`: the bytes of a connection cut into protocol lines, credentials hidden. */
import type { ClientOptions } from '../mupdate/client/connection.js';

/**
 * A wire watcher that hands each complete line (without its CRLF) to `show`
 * with its direction; the client lines of an AUTHENTICATE exchange are
 * replaced by `<MECHANISM credentials hidden>` until the server's answer.
 */
export function wireLines(show: (dir: 'C' | 'S', line: Buffer) => void): NonNullable<ClientOptions['onWire']> {
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
      else if (dir === 'C' && auth) hiding = auth[1].toUpperCase();
      else if (dir === 'S' && /^\S+ (OK|NO|BAD|BYE)\b/i.test(line.toString('latin1'))) hiding = null;
      show(dir, line);
    }
    partial[dir] = buf;
  };
}
