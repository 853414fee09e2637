/**
 * Byte-level helpers for wire tests: a raw capture of everything a RawClient
 * receives (so lines can be compared with their CRLF, byte for byte), a
 * literal-aware splitter for server output, and UPDATE stream helpers.
 */
import type { RawClient } from './raw-client.js';

/** Records every byte the client's (current) socket receives from now on. */
export class RawCapture {
  private chunks: Buffer[] = [];
  private mark = 0;

  constructor(client: RawClient) {
    // Bytes already received (after the last line read) belong to the capture too,
    // or it would start in the middle of a unit.
    this.chunks.push(client.unread());
    client.socket.on('data', (d: Buffer) => this.chunks.push(Buffer.from(d)));
  }

  /** Everything received since the capture started. */
  all(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Everything received since the previous call of take() (or the start). */
  take(): Buffer {
    const all = this.all();
    const out = all.subarray(this.mark);
    this.mark = all.length;
    return Buffer.from(out);
  }
}

/** latin1 view of bytes, for comparing with string literals such as '\x00\xff'. */
export function l1(b: Buffer): string {
  return b.toString('latin1');
}

/** One quoted string as mupdated sends it: `"` then escaped-or-plain bytes, no CR/LF. */
const QUOTED = String.raw`"(?:[^"\\\r\n]|\\[^\r\n])*"`;

/** A complete status line (any tag, or `*`), with exactly one quoted string then CRLF. */
export const STATUS_LINE = new RegExp(`^[^ ]* (?:OK|NO|BAD|BYE) ${QUOTED}\\r\\n$`, 's');
/** `* BYE "<text>"` CRLF. */
export const BYE_LINE = new RegExp(`^\\* BYE ${QUOTED}\\r\\n$`, 's');

/**
 * Splits server output into protocol units: each unit is a line with its CRLF,
 * where a line ending in `{n+}` CRLF continues with the n literal bytes and the
 * rest of the line (so a MAILBOX response with its three literals is one unit).
 * Returns the units and the trailing bytes that do not yet form a whole unit.
 */
export function splitServerUnits(buf: Buffer): { units: Buffer[]; rest: Buffer } {
  const units: Buffer[] = [];
  let start = 0;
  let pos = 0;
  for (;;) {
    const lf = buf.indexOf(0x0a, pos);
    if (lf < 0) break;
    const head = buf.subarray(pos, lf + 1).toString('latin1');
    const m = /\{(\d+)\+\}\r\n$/.exec(head);
    if (m) {
      const n = Number(m[1]);
      if (lf + 1 + n > buf.length) break;
      pos = lf + 1 + n;
      continue;
    }
    units.push(buf.subarray(start, lf + 1));
    start = pos = lf + 1;
  }
  return { units, rest: buf.subarray(start) };
}

/** Logs in and starts a full UPDATE with the given tag; returns after `OK "streaming starts"`. */
export async function openStream(login: () => Promise<RawClient>, tag = 'U01'): Promise<RawClient> {
  const s = await login();
  s.send(`${tag} UPDATE\r\n`);
  const lines = await s.readUntilTagged(tag, 30_000);
  const last = lines[lines.length - 1];
  if (last !== `${tag} OK "streaming starts"`) throw new Error(`UPDATE failed: ${last}`);
  return s;
}

/**
 * Reads the stream until `<tag> MAILBOX {n+}` / `<name> {..+}` appears (other
 * changes are skipped); returns the MAILBOX line's location and ACL lines.
 * Throws if it does not arrive in time or the stream ends.
 */
export async function waitStreamedMailbox(s: RawClient, tag: string, name: string, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let prev = '';
  for (let i = 0; i < 100_000; i++) {
    const line = await s.readLine(Math.max(1, deadline - Date.now()));
    if (prev === `${tag} MAILBOX {${Buffer.byteLength(name, 'latin1')}+}` && line.startsWith(`${name} {`)) {
      const loc = await s.readLine(Math.max(1, deadline - Date.now()));
      const acl = await s.readLine(Math.max(1, deadline - Date.now()));
      return [line, loc, acl];
    }
    prev = line;
  }
  throw new Error('too many stream lines');
}

/**
 * Parses one server data unit `tag SP KEYWORD (SP {n+} CRLF <n bytes>)* CRLF`
 * strictly; null when it is not exactly that shape.
 */
export function parseDataUnit(buf: Buffer): { tag: Buffer; keyword: string; strings: Buffer[] } | null {
  const sp = buf.indexOf(0x20);
  if (sp <= 0) return null;
  let pos = sp + 1;
  let end = pos;
  while (end < buf.length && buf[end] !== 0x20 && buf[end] !== 0x0d) end++;
  const keyword = buf.toString('latin1', pos, end);
  pos = end;
  const strings: Buffer[] = [];
  while (buf[pos] === 0x20) {
    const m = /^ \{(0|[1-9]\d*)\+\}\r\n/.exec(buf.toString('latin1', pos, pos + 24));
    if (!m) return null;
    pos += m[0].length;
    const n = Number(m[1]);
    if (pos + n > buf.length) return null;
    strings.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  if (pos + 2 !== buf.length || buf[pos] !== 0x0d || buf[pos + 1] !== 0x0a) return null;
  return { tag: buf.subarray(0, sp), keyword, strings };
}
