/**
 * The only writer of protocol bytes. Shapes follow what Cyrus clients parse
 * (spec 1.6, 1.8): data strings as `{n+}` literals, every OK/NO/BAD/BYE text
 * as exactly one quoted string.
 */
export type StatusKeyword = 'OK' | 'NO' | 'BAD' | 'BYE';
export type DataKeyword = 'MAILBOX' | 'RESERVE' | 'DELETE' | 'XSYNC';

const CRLF = Buffer.from('\r\n');
const UNTAGGED = Buffer.from('*');

export const GO_AHEAD = Buffer.from('+ go ahead\r\n');

/** A quoted string; `"` and `\` are escaped, line breaks are never emitted. */
export function quoted(text: string | Buffer): Buffer {
  const raw = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const out: number[] = [0x22];
  for (const b of raw) {
    if (b === 0x0d || b === 0x0a || b === 0) {
      out.push(0x20);
      continue;
    }
    if (b === 0x22 || b === 0x5c) out.push(0x5c);
    out.push(b);
  }
  out.push(0x22);
  return Buffer.from(out);
}

/** ` KEYWORD "text"` CRLF for the fixed texts, built once: most answers are one of a handful. */
const statusTails = new Map<string, Buffer>();
const MAX_CACHED_TAILS = 256;

function statusTail(keyword: StatusKeyword, text: string): Buffer {
  const key = `${keyword} ${text}`;
  let tail = statusTails.get(key);
  if (!tail) {
    tail = Buffer.concat([Buffer.from(` ${keyword} `), quoted(text), CRLF]);
    // Texts naming a mailbox or a conflict vary; only the first few hundred distinct ones are kept.
    if (statusTails.size < MAX_CACHED_TAILS) statusTails.set(key, tail);
  }
  return tail;
}

/** `tag KEYWORD "text"` CRLF; tag null means untagged (`*`). */
export function statusLine(tag: Buffer | null, keyword: StatusKeyword, text: string): Buffer {
  const head = tag ?? UNTAGGED;
  const tail = statusTail(keyword, text);
  const out = Buffer.allocUnsafe(head.length + tail.length);
  head.copy(out, 0);
  tail.copy(out, head.length);
  return out;
}

/** Untagged `* NAME [args]` line for the banner; args are sent as quoted strings. */
export function untaggedLine(name: string, args: string[] = []): Buffer {
  const parts: Buffer[] = [Buffer.from(`* ${name}`)];
  for (const a of args) parts.push(Buffer.from(' '), quoted(a));
  parts.push(CRLF);
  return Buffer.concat(parts);
}

/** `tag KEYWORD {n+}` CRLF `s1 {n+}` CRLF `s2` ... CRLF: data strings as non-synchronizing literals. */
export function dataLine(tag: Buffer, keyword: DataKeyword, strings: Buffer[]): Buffer {
  let size = tag.length + keyword.length + 3;
  for (const s of strings) size += s.length + 16;
  const out = Buffer.allocUnsafe(size);
  let o = tag.copy(out, 0);
  o += out.write(` ${keyword}`, o, 'latin1');
  for (const s of strings) {
    o += out.write(` {${s.length}+}\r\n`, o, 'latin1');
    o += s.copy(out, o);
  }
  o += out.write('\r\n', o, 'latin1');
  return out.subarray(0, o);
}

/** A client-side string argument: quoted when that is safe, else a `{n+}` literal. */
export function clientString(value: Buffer): Buffer {
  const safe = value.length < 1024 && !value.some((b) => b < 0x20 || b === 0x22 || b === 0x5c || b >= 0x7f);
  if (safe) return Buffer.concat([Buffer.from('"'), value, Buffer.from('"')]);
  return Buffer.concat([Buffer.from(`{${value.length}+}\r\n`), value]);
}

/** A whole client command line: `tag WORD arg...` CRLF. */
export function clientCommand(tag: string, word: string, args: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`${tag} ${word}`)];
  for (const a of args) parts.push(Buffer.from(' '), clientString(a));
  parts.push(CRLF);
  return Buffer.concat(parts);
}
