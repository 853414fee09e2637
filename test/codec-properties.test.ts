/**
 * Property tests of the wire codec itself (spec 1.2-1.7, 1.6, 3.0): encoder and
 * CommandReader, driven directly with a classify hook that behaves like the
 * session's (same command table, login state, STARTTLS unknown without TLS).
 */
import assert from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import { CommandReader, type ArgPolicy, type ReadResult } from '../src/mupdate/wire/reader.js';
import { clientCommand, dataLine, statusLine, type DataKeyword } from '../src/mupdate/wire/encoder.js';
import { DEFAULT_LIMITS, type WireLimits } from '../src/mupdate/wire/limits.js';
import { ChunkEncoder } from '../src/mupdate/wire/chunk-encoder.js';
import { parseDataUnit, splitServerUnits } from './helpers/wire-tools.js';
import { LINE_ENDS, STRING_SYNTAX } from './helpers/wire-pieces.js';

const RUNS = 300;
fc.configureGlobal({ includeErrorInReport: true });

// ---- a session-like classify hook ----

interface Spec {
  min: number;
  max: number;
  hosts?: boolean;
  needsLogin: boolean;
}
const COMMANDS: Record<string, Spec> = {
  AUTHENTICATE: { min: 1, max: 2, needsLogin: false },
  LOGOUT: { min: 0, max: 0, needsLogin: false },
  STARTTLS: { min: 0, max: 0, needsLogin: false },
  NOOP: { min: 0, max: 0, needsLogin: true },
  FIND: { min: 1, max: 1, needsLogin: true },
  LIST: { min: 0, max: 1, needsLogin: true },
  UPDATE: { min: 0, max: 30, hosts: true, needsLogin: true },
  ACTIVATE: { min: 3, max: 3, needsLogin: true },
  RESERVE: { min: 2, max: 2, needsLogin: true },
  DEACTIVATE: { min: 2, max: 2, needsLogin: true },
  DELETE: { min: 1, max: 1, needsLogin: true },
};
const WORDS = Object.keys(COMMANDS).filter((w) => w !== 'STARTTLS');

type State = 'noauth' | 'auth';

function classifyFor(state: () => State): (word: string) => ArgPolicy {
  return (word) => {
    const spec = COMMANDS[word];
    if (!spec || word === 'STARTTLS') return { kind: 'reject', text: 'Unrecognized command' };
    if (spec.needsLogin && state() === 'noauth') return { kind: 'reject', text: 'Please login first' };
    return { kind: 'args', min: spec.min, max: spec.max, ...(spec.hosts ? { hosts: true } : {}) };
  };
}

/** A ReadResult or a continuation, as plain data (Buffers as hex) so runs can be compared. */
type Event =
  | { kind: 'continuation' }
  | { kind: 'command'; tag: string; word: string; args: string[] }
  | { kind: 'bad'; tag: string | null; text: string }
  | { kind: 'fatal'; text: string };

function plain(r: ReadResult): Event {
  switch (r.kind) {
    case 'command':
      return { kind: 'command', tag: r.tag.toString('hex'), word: r.word, args: r.args.map((a) => a.toString('hex')) };
    case 'bad':
      return { kind: 'bad', tag: r.tag === null ? null : r.tag.toString('hex'), text: r.text };
    case 'fatal':
      return { kind: 'fatal', text: r.text };
  }
}

interface Run {
  events: Event[];
  results: ReadResult[];
  fatal: boolean;
  leftover: number;
}

/**
 * Feeds chunks to a reader the way the session does (push, then next() until
 * null), stopping at the first fatal (the session closes there). A successful
 * AUTHENTICATE is emulated: any AUTHENTICATE command logs in.
 */
function drive(chunks: Buffer[], limits: WireLimits, initial: State = 'noauth'): Run {
  let state: State = initial;
  const events: Event[] = [];
  const results: ReadResult[] = [];
  const reader = new CommandReader(limits, {
    classify: classifyFor(() => state),
    continuation: () => events.push({ kind: 'continuation' }),
  });
  for (const chunk of chunks) {
    reader.push(chunk);
    for (;;) {
      const r = reader.next();
      if (!r) break;
      results.push(r);
      events.push(plain(r));
      if (r.kind === 'fatal') return { events, results, fatal: true, leftover: reader.buffered };
      if (r.kind === 'command' && r.word === 'AUTHENTICATE') state = 'auth';
    }
  }
  return { events, results, fatal: false, leftover: reader.buffered };
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

function bytewise(buf: Buffer): Buffer[] {
  return Array.from({ length: buf.length }, (_, i) => buf.subarray(i, i + 1));
}

// ---- generators ----

const SMALL_LIMITS: WireLimits = { maxTag: 8, maxWord: 12, maxString: 40, maxCommand: 300, maxSaslLine: 64 };

const noNul = (a: Uint8Array) => Buffer.from(a.map((b) => (b === 0 ? 0x30 : b)));
/** Bytes that clientString would send quoted, ASCII with specials that force a literal, or anything but NUL (large ones too). */
const argArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .string({ unit: fc.constantFrom(...'abcXYZ019.!_-+*{}() '.split('')), maxLength: 40 })
      .map((s) => Buffer.from(s, 'latin1')),
  },
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 60 }).map(noNul) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 3000 }).map(noNul) },
);
const tagArb = fc
  .string({ unit: fc.constantFrom(...'AZaz09.*+-_!{}'.split(''), 'ä', '\x7f'), minLength: 1, maxLength: 40 })
  .filter((s) => Buffer.byteLength(s, 'utf8') <= 64);
const randomCase = (word: string) =>
  fc
    .array(fc.boolean(), { minLength: word.length, maxLength: word.length })
    .map((flags) => [...word].map((ch, i) => (flags[i] ? ch.toLowerCase() : ch)).join(''));

/** A well-formed command for the `auth` state, with its expected parse. */
const commandArb = fc.constantFrom(...WORDS).chain((word) => {
  const spec = COMMANDS[word];
  const args = fc.array(spec.hosts ? argArb.filter((a) => a.length > 0) : argArb, {
    minLength: spec.min,
    maxLength: Math.min(spec.max, 5),
  });
  return fc.record({ tag: tagArb, word: randomCase(word), upper: fc.constant(word), args });
});

/** Protocol-ish fragments: commands, sync literals, and the bytes the grammar cares about. */
const fragmentArb: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: commandArb.map((c) => clientCommand(c.tag, c.word, c.args)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(tagArb, fc.uint8Array({ maxLength: 50 }))
      .map(([tag, body]) => Buffer.concat([Buffer.from(`${tag} FIND {${body.length}}\r\n`), Buffer.from(body), Buffer.from('\r\n')])),
  },
  {
    weight: 4,
    arbitrary: fc
      .constantFrom(
        ...LINE_ENDS,
        ' ',
        '  ',
        ...STRING_SYNTAX,
        '{5+}\r\n',
        '{3}\r\n',
        '{0}\r\n',
        '{0+}\r\n',
        '{41}\r\n',
        '{99999999999+}\r\n',
        '{2147483648}\r\n',
        '(',
        ')',
        '\x00',
        '\t',
        'A01 ',
        'X1 ',
        'FIND ',
        'find',
        'NOOP',
        'AUTHENTICATE "PLAIN" ',
        'A01 AUTHENTICATE "PLAIN" "x"\r\n',
        'UPDATE ',
        'UPDATE ""',
        'ACTIVATE ',
        'LOGOUT',
        'STARTTLS',
        '"x"',
        '""',
        '"a\\"b"',
        'NIL',
        'abcdefghijklmnopqrstuvwxyz0123456789',
        '\xff\xfe',
      )
      .map((s) => Buffer.from(s, 'latin1')),
  },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 30 }).map((a) => Buffer.from(a)) },
);
const streamArb = fc.array(fragmentArb, { maxLength: 25 }).map((parts) => Buffer.concat(parts));
const limitsArb = fc.constantFrom(DEFAULT_LIMITS, SMALL_LIMITS);

// ---- (a) round trips ----

test('codec: clientCommand with any NUL-free arguments parses back to the same tag, word and arguments', (t) => {
  fc.assert(
    fc.property(commandArb, (c) => {
      const bytes = clientCommand(c.tag, c.word, c.args);
      const run = drive([bytes], DEFAULT_LIMITS, 'auth');
      assert.deepStrictEqual(run.events, [
        {
          kind: 'command',
          tag: Buffer.from(c.tag, 'utf8').toString('hex'),
          word: c.upper,
          args: c.args.map((a) => a.toString('hex')),
        },
      ]);
      assert.equal(run.leftover, 0);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test('codec: several clientCommands pipelined in one buffer parse back in order', (t) => {
  fc.assert(
    fc.property(fc.array(commandArb, { minLength: 1, maxLength: 8 }), (cmds) => {
      const run = drive([Buffer.concat(cmds.map((c) => clientCommand(c.tag, c.word, c.args)))], DEFAULT_LIMITS, 'auth');
      assert.deepStrictEqual(
        run.events.map((e) => (e.kind === 'command' ? [e.word, e.args.length] : e.kind)),
        cmds.map((c) => [c.upper, c.args.length]),
      );
    }),
    { numRuns: 100 },
  );
  t.pass();
});

/** A strict reader for server data lines: `tag SP KEYWORD (SP {n+} CRLF <n bytes>)* CRLF`, one after another. */
function parseDataLines(buf: Buffer): Array<{ tag: Buffer; keyword: string; strings: Buffer[] }> {
  const { units, rest } = splitServerUnits(buf);
  if (rest.length) throw new Error(`trailing bytes that are no whole line: ${JSON.stringify(rest.toString('latin1'))}`);
  return units.map((u) => {
    const parsed = parseDataUnit(u);
    if (!parsed) throw new Error(`not a data line: ${JSON.stringify(u.toString('latin1'))}`);
    return parsed;
  });
}

type Keyword = Extract<DataKeyword, 'MAILBOX' | 'RESERVE' | 'DELETE'>;
const ARITY: Record<Keyword, number> = { MAILBOX: 3, RESERVE: 2, DELETE: 1 };
const serverTagArb = fc
  .uint8Array({ minLength: 1, maxLength: 64 })
  .map((a) => Buffer.from(a.map((b) => (b === 0x20 || b === 0x0d || b === 0x0a ? 0x41 : b))));
const dataLineArb = fc.constantFrom<Keyword>('MAILBOX', 'RESERVE', 'DELETE').chain((keyword) =>
  fc.record({
    tag: serverTagArb,
    keyword: fc.constant(keyword),
    strings: fc.array(
      fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 3000 })).map((a) => Buffer.from(a)),
      { minLength: ARITY[keyword], maxLength: ARITY[keyword] },
    ),
  }),
);

test('codec: dataLine with any bytes (NUL, CR, LF, braces included) parses back as {n+} literals (C14)', (t) => {
  fc.assert(
    fc.property(fc.array(dataLineArb, { minLength: 1, maxLength: 6 }), (lines) => {
      const bytes = Buffer.concat(lines.map((l) => dataLine(l.tag, l.keyword, l.strings)));
      const parsed = parseDataLines(bytes);
      assert.equal(parsed.length, lines.length);
      parsed.forEach((p, i) => {
        assert.ok(p.tag.equals(lines[i].tag));
        assert.equal(p.keyword, lines[i].keyword);
        assert.deepStrictEqual(
          p.strings.map((s) => s.toString('hex')),
          lines[i].strings.map((s) => s.toString('hex')),
        );
      });
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test('codec: statusLine always carries exactly one quoted string and CRLF, whatever the text (C14)', (t) => {
  const textArb = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.string({ unit: fc.constantFrom('"', '\\', '\r', '\n', '\0', 'a', ' ', 'ä'), maxLength: 30 }),
  );
  fc.assert(
    fc.property(fc.option(serverTagArb), fc.constantFrom('OK', 'NO', 'BAD', 'BYE' as const), textArb, (tag, kw, text) => {
      const line = statusLine(tag, kw, text);
      const head = Buffer.concat([tag ?? Buffer.from('*'), Buffer.from(` ${kw} "`)]);
      assert.ok(line.subarray(0, head.length).equals(head));
      assert.equal(line.toString('latin1', line.length - 3), '"\r\n');
      // unquote: the body has no bare quote, no CR/LF, and unescapes to the text with CR/LF/NUL as spaces
      const body = line.subarray(head.length, line.length - 3);
      const out: number[] = [];
      for (let i = 0; i < body.length; i++) {
        const b = body[i];
        assert.ok(!(b === 0x0d || b === 0x0a || b === 0x22 || b === 0), 'no CR, LF, NUL or bare quote inside');
        if (b === 0x5c) {
          const nx = body[++i];
          assert.ok(nx === 0x22 || nx === 0x5c, 'only " and \\ are escaped');
          out.push(nx);
        } else out.push(b);
      }
      assert.deepStrictEqual(
        Buffer.from(out),
        Buffer.from(Buffer.from(text, 'utf8').map((b) => (b === 0x0d || b === 0x0a || b === 0 ? 0x20 : b))),
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

// ---- (b) chunking does not matter ----

/**
 * A fixed example that crosses the string cap before the command cap (byte order)
 * but reaches both within one chunk: both runs must give the same fatal result.
 */
const CAP_RACE = Buffer.from(
  `A UPDATE ${Array(5)
    .fill(`"${'h'.repeat(40)}"`)
    .join(' ')} "${'q'.repeat(80)}"\r\n`,
);

test('reader: results and continuations do not depend on how the byte stream is chunked', (t) => {
  fc.assert(
    fc.property(streamArb, fc.array(fc.nat(), { maxLength: 20 }), limitsArb, (bytes, cuts, limits) => {
      const whole = drive([bytes], limits);
      const split = drive(splitAt(bytes, cuts), limits);
      const single = drive(bytewise(bytes), limits);
      assert.deepStrictEqual(split.events, whole.events);
      assert.deepStrictEqual(single.events, whole.events);
    }),
    { numRuns: RUNS, examples: [[Buffer.concat([Buffer.from('A01 AUTHENTICATE "x"\r\n'), CAP_RACE]), [], SMALL_LIMITS]] },
  );
  t.pass();
});

test('reader: a {n} literal gets exactly one continuation, before its body is needed, whatever the chunking', (t) => {
  fc.assert(
    fc.property(tagArb, fc.uint8Array({ maxLength: 200 }).map(noNul), fc.array(fc.nat(), { maxLength: 10 }), (tag, body, cuts) => {
      const head = Buffer.from(`${tag} AUTHENTICATE {${body.length}}\r\n`);
      // without the body: the continuation is due, no result yet
      const partial = drive(splitAt(head, cuts), DEFAULT_LIMITS);
      assert.deepStrictEqual(partial.events, [{ kind: 'continuation' }]);
      const full = drive(splitAt(Buffer.concat([head, body, Buffer.from('\r\n')]), cuts), DEFAULT_LIMITS);
      assert.deepStrictEqual(full.events, [
        { kind: 'continuation' },
        { kind: 'command', tag: Buffer.from(tag).toString('hex'), word: 'AUTHENTICATE', args: [body.toString('hex')] },
      ]);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

// ---- (c) arbitrary bytes: typed results only, limits respected ----

const KNOWN_BAD = new Set([
  'Need command',
  'Null command',
  'Missing arguments',
  'Extra arguments',
  'Badly formed arguments',
  'Unrecognized command',
  'Please login first',
]);

function checkTyped(run: Run, limits: WireLimits): void {
  let state: State = 'noauth';
  for (const r of run.results) {
    if (r.kind === 'command') {
      const spec = COMMANDS[r.word];
      assert.ok(spec, `known word ${r.word}`);
      if (!spec) continue;
      assert.ok(!(r.word === 'STARTTLS'));
      assert.ok(!(spec.needsLogin && state === 'noauth'), 'login check applied');
      assert.ok(r.args.length >= spec.min && r.args.length <= spec.max, 'arity respected');
      assert.ok(r.tag.length >= 1 && r.tag.length <= limits.maxTag, 'tag within cap');
      assert.ok(r.word.length <= limits.maxWord, 'word within cap');
      for (const a of r.args) {
        assert.ok(a.length <= limits.maxString, 'arg within maxString');
        assert.equal(a.indexOf(0), -1, 'no NUL in an argument');
        if (spec.hosts) assert.ok(a.length > 0, 'no empty UPDATE host');
      }
      assert.ok(r.tag.length + r.word.length + r.args.reduce((s, a) => s + a.length, 0) <= limits.maxCommand, 'command within cap');
      if (r.word === 'AUTHENTICATE') state = 'auth';
    } else if (r.kind === 'bad') {
      assert.equal(r.tag === null, r.text === 'Need command', 'untagged exactly for Need command');
      if (r.tag) assert.ok(r.tag.length >= 1 && r.tag.length <= limits.maxTag);
      assert.ok(KNOWN_BAD.has(r.text) || (/^[ -~]+$/.test(r.text) && r.text.length > 0), r.text);
    } else {
      assert.equal(r.kind, 'fatal');
      assert.ok(r.text.length > 0 && /^[ -~]+$/.test(r.text));
    }
  }
  if (!run.fatal) assert.equal(run.leftover, 0, 'null from next() only when every byte was used');
}

test('reader: random bytes give only command/bad/fatal results, never an exception, within the limits', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 10 }), limitsArb, (a, cuts, limits) => {
      const run = drive(splitAt(Buffer.from(a), cuts), limits);
      checkTyped(run, limits);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test('reader: protocol-like junk gives only command/bad/fatal results, never an exception, within the limits', (t) => {
  fc.assert(
    fc.property(streamArb, fc.array(fc.nat(), { maxLength: 10 }), limitsArb, (bytes, cuts, limits) => {
      const run = drive(splitAt(bytes, cuts), limits);
      checkTyped(run, limits);
    }),
    { numRuns: RUNS * 2 },
  );
  t.pass();
});

test('reader: over-limit tokens are fatal, a refused {n} is a BAD and the next line is read (C13)', (t) => {
  fc.assert(
    fc.property(limitsArb, fc.integer({ min: 1, max: 1000 }), (limits, extra) => {
      const over = limits.maxString + extra;
      assert.equal(drive([Buffer.from(`A AUTHENTICATE {${over}+}\r\n`)], limits).events.at(-1)?.kind, 'fatal');
      assert.equal(drive([Buffer.from(`A AUTHENTICATE "${'q'.repeat(over)}"\r\n`)], limits).events.at(-1)?.kind, 'fatal');
      assert.equal(drive([Buffer.from(`${'T'.repeat(limits.maxTag + extra)} NOOP\r\n`)], limits).events.at(-1)?.kind, 'fatal');
      assert.equal(drive([Buffer.from(`T ${'W'.repeat(limits.maxWord + extra)}\r\n`)], limits).events.at(-1)?.kind, 'fatal');
      const refused = drive([Buffer.from(`A AUTHENTICATE {${over}}\r\nB LOGOUT\r\n`)], limits);
      assert.deepStrictEqual(
        refused.events.map((e) => e.kind),
        ['bad', 'command'],
      );
      const ok = drive([Buffer.from(`A AUTHENTICATE {${limits.maxString}+}\r\n${'x'.repeat(limits.maxString)}\r\n`)], limits);
      assert.deepStrictEqual(
        ok.events.map((e) => e.kind),
        ['command'],
      );
    }),
    { numRuns: 50 },
  );
  t.pass();
});

// ---- the dump encoder (chunk-encoder.ts) ----

test('codec: ChunkEncoder writes exactly the bytes of dataLine, whatever the chunk size', (t) => {
  const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
  const line = fc.record({
    tag: fc.stringMatching(/^[A-Za-z0-9]{1,10}$/).map((s) => Buffer.from(s)),
    keyword: fc.constantFrom<DataKeyword>('MAILBOX', 'RESERVE', 'DELETE'),
    strings: fc.array(bytes, { minLength: 1, maxLength: 3 }),
  });
  fc.assert(
    fc.property(fc.array(line, { maxLength: 40 }), fc.integer({ min: 1, max: 2048 }), (lines, chunkSize) => {
      const chunks: Buffer[] = [];
      const encoder = new ChunkEncoder(chunkSize, (c) => chunks.push(Buffer.from(c)));
      for (const l of lines) encoder.line(l.tag, l.keyword, l.strings[0], l.strings[1], l.strings[2]);
      encoder.flush();
      const expected = Buffer.concat(lines.map((l) => dataLine(l.tag, l.keyword, l.strings)));
      assert.deepEqual(Buffer.concat(chunks), expected);
      // chunks stay within the chunk size, or within the room one oversized line needed
      const longest = Math.max(0, ...lines.map((l) => dataLine(l.tag, l.keyword, l.strings).length));
      for (const c of chunks) assert.ok(c.length <= Math.max(chunkSize, longest + 64), `chunk of ${c.length} bytes`);
    }),
    { numRuns: RUNS },
  );
  t.pass();
});
