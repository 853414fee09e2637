/**
 * The client's fast reader of plain data lines (mupdate/client/data-lines.ts)
 * against the general response reader alone: fed the same bytes in the same
 * chunks, the lines it takes and what the general reader reads after it must
 * be exactly what the general reader reads from all of them.
 */
import test from 'ava';
import fc from 'fast-check';
import { DataLineStream } from '../src/mupdate/client/data-lines.js';
import { RESPONSE_LIMITS, RESPONSE_SHAPES } from '../src/mupdate/client/responses.js';
import { CommandReader, type ReadResult } from '../src/mupdate/wire/reader.js';

const RUNS = 500;
fc.configureGlobal({ includeErrorInReport: true });

type Seen = string;

function reader(): CommandReader {
  return new CommandReader(RESPONSE_LIMITS, { classify: (word) => RESPONSE_SHAPES[word] ?? { kind: 'rest' }, continuation: () => {} });
}

function shown(r: ReadResult): Seen {
  if (r.kind === 'command') return `${r.word} ${r.args.map((a) => a.toString('hex')).join(' ')}`;
  return `${r.kind} ${r.text}`;
}

/** Everything the reader gives until it needs more; false once it has given a fatal. */
function drain(r: CommandReader, out: Seen[]): boolean {
  for (let x = r.next(); x; x = r.next()) {
    out.push(shown(x));
    if (x.kind === 'fatal') return false;
  }
  return true;
}

function generalRead(chunks: Buffer[]): Seen[] {
  const r = reader();
  const out: Seen[] = [];
  for (const c of chunks) {
    r.push(c);
    if (!drain(r, out)) break;
  }
  return out;
}

function fastRead(chunks: Buffer[]): Seen[] {
  const out: Seen[] = [];
  let r: CommandReader | null = null;
  const fast = new DataLineStream((word, args) => out.push(`${word} ${args.map((a) => a.toString('hex')).join(' ')}`), RESPONSE_LIMITS);
  for (const c of chunks) {
    if (!r) {
      const rest = fast.read(c);
      if (!rest) continue;
      r = reader();
      r.push(rest);
    } else r.push(c);
    if (!drain(r, out)) break;
  }
  return out;
}

const byte = fc.oneof(
  fc.integer({ min: 0x61, max: 0x7a }),
  fc.constantFrom(0x22, 0x5c, 0x20, 0x09, 0x0d, 0x0a, 0x00, 0x7b, 0x7d, 0x2b, 0x21, 0x28),
  fc.integer({ min: 0x80, max: 0xff }),
);
const raw = fc.array(byte, { maxLength: 8 }).map((a) => Buffer.from(a));

/** A string argument as a master might send it, or something that is not quite one. */
const argument = fc.oneof(
  raw.map((b) => Buffer.concat([Buffer.from(`{${b.length}+}\r\n`), b])),
  raw.map((b) => Buffer.concat([Buffer.from(`{${b.length}}\r\n`), b])),
  raw.map((b) => Buffer.concat([Buffer.from(`{00${b.length}+}\r\n`), b])),
  fc.string({ maxLength: 6 }).map((s) => Buffer.from(`"${s}"`, 'latin1')),
  raw.map((b) => Buffer.concat([Buffer.from('"'), b, Buffer.from('"')])),
  fc
    .constantFrom('atom', '{3+}\r\nab', '{x}\r\n', '{2+}\n', '"a\\"b"', '""', '{0+}\r\n', '{99999999999+}\r\n')
    .map((s) => Buffer.from(s, 'latin1')),
);

const line = fc
  .record({
    tag: fc.constantFrom('X0', '*', 'A1', '', 'a(b', 'T'.repeat(300)),
    word: fc.constantFrom('MAILBOX', 'RESERVE', 'mailbox', 'DELETE', 'OK', 'NO', 'BYE', 'XSYNC', 'MAILBOXX', ''),
    args: fc.array(argument, { maxLength: 5 }),
    sep: fc.constantFrom(' ', ' ', '  ', '\t'),
    eol: fc.constantFrom('\r\n', '\r\n', '\n', '\r', ' \r\n', ''),
  })
  .map(({ tag, word, args, sep, eol }) => {
    const parts: Buffer[] = [Buffer.from(`${tag} ${word}`, 'latin1')];
    for (const a of args) parts.push(Buffer.from(sep), a);
    parts.push(Buffer.from(eol));
    return Buffer.concat(parts);
  });

/** A line as a master sends it: literals or quoted strings (which may hold bytes a quoted string may not). */
const plainArg = fc.oneof(
  raw.map((a) => Buffer.concat([Buffer.from(`{${a.length}+}\r\n`), a])),
  raw.map((a) => Buffer.concat([Buffer.from('"'), a, Buffer.from('"')])),
);
const plainLine = fc
  .tuple(fc.constantFrom('MAILBOX', 'RESERVE'), fc.array(plainArg, { minLength: 2, maxLength: 4 }))
  .map(([word, args]) =>
    Buffer.concat([Buffer.from(`X0 ${word}`), ...args.map((a) => Buffer.concat([Buffer.from(' '), a])), Buffer.from('\r\n')]),
  );

const stream = fc
  .tuple(
    fc.array(fc.oneof({ weight: 3, arbitrary: plainLine }, { weight: 2, arbitrary: line }), { maxLength: 10 }),
    fc.integer({ min: 1, max: 40 }),
  )
  .map(([lines, size]) => {
    const all = Buffer.concat(lines);
    const chunks: Buffer[] = [];
    for (let i = 0; i < all.length; i += size) chunks.push(all.subarray(i, i + size));
    return chunks;
  });

test('the fast data-line reader and the general reader after it read what the general reader alone reads', (t) => {
  fc.assert(
    fc.property(stream, (chunks) => {
      t.deepEqual(fastRead(chunks), generalRead(chunks));
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test('the fast reader takes a LIST of plain lines whole, and stops at the status line', (t) => {
  const seen: string[] = [];
  const fast = new DataLineStream((word, args) => seen.push(`${word} ${args.map((a) => a.toString('latin1')).join('|')}`), RESPONSE_LIMITS);
  const bytes = Buffer.from(
    'X0 MAILBOX {3+}\r\nu.a {10+}\r\nb1!default "a\tlrs\t"\r\nX0 RESERVE "u.\xe9" {2+}\r\nb1\r\nX0 OK "done"\r\n',
    'latin1',
  );
  t.is(fast.read(bytes.subarray(0, 20)), null);
  const rest = fast.read(bytes.subarray(20));
  t.deepEqual(seen, ['MAILBOX u.a|b1!default|a\tlrs\t', 'RESERVE u.\xe9|b1']);
  t.is(rest?.toString('latin1'), 'X0 OK "done"\r\n');
});
