/**
 * The fast reading of `ctl_mboxlist -d` dumps (record-line.ts, dump-reader.ts)
 * against the general one (parseOrderedJson through parseDump over readline):
 * same records, same errors, on random dumps with quotes, backslashes, 8-bit
 * bytes, ACLs with tabs, duplicate members, odd JSON and broken lines.
 */
import test from 'ava';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import { DumpParser, dumpLine, parseDump, type DumpRecord } from '../src/dump/cyrus-dump.js';
import { LineSplitter, readDump } from '../src/dump/dump-reader.js';
import { scanRecordLine } from '../src/dump/record-line.js';
import { OrderedObject } from '../src/dump/ordered-json.js';
import type { Entry } from '../src/store/types.js';
import { readLocal } from '../src/push/local-dump.js';
import { PackedMailboxes } from '../src/push/packed-mailboxes.js';
import { PlainRecordReader } from '../src/push/plain-record.js';

const RUNS = 300;
fc.configureGlobal({ includeErrorInReport: true });

interface Outcome {
  records: Array<{ name: string; entry: string; hasServer: boolean; partition: string | undefined }>;
  error: string | null;
}

function shown(r: DumpRecord): Outcome['records'][number] {
  const e = r.entry;
  return {
    name: r.name.toString('hex'),
    entry: e ? `${e.state} ${e.name.toString('hex')} ${e.location.toString('hex')} ${e.acl.toString('hex')}` : 'null',
    hasServer: r.hasServer,
    partition: r.partition,
  };
}

function failure(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** The reading before the fast path: readline lines, the general JSON reader for every record. */
async function generalRead(bytes: Buffer, chunk: number): Promise<Outcome> {
  const records: Outcome['records'] = [];
  try {
    const parser = new DumpParser(false);
    const out: DumpRecord[] = [];
    for await (const line of createInterface({ input: Readable.from(chunks(bytes, chunk)), crlfDelay: Infinity })) {
      parser.line(line, out);
      for (const r of out) records.push(shown(r));
      out.length = 0;
    }
    parser.end();
    return { records, error: null };
  } catch (err) {
    return { records, error: failure(err) };
  }
}

async function fastRead(bytes: Buffer, chunk: number): Promise<Outcome> {
  const records: Outcome['records'] = [];
  try {
    await readDump(Readable.from(chunks(bytes, chunk)), (r) => records.push(shown(r)));
    return { records, error: null };
  } catch (err) {
    return { records, error: failure(err) };
  }
}

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

// ---- random dumps ----

const nameByte = fc.oneof(
  fc.constantFrom(0x22, 0x5c, 0x2e, 0x20, 0x09, 0x7b, 0x7d, 0x2c, 0x3a, 0x21, 0x2f),
  fc.integer({ min: 0x61, max: 0x7a }),
  fc.integer({ min: 0x80, max: 0xff }),
  fc.integer({ min: 0x00, max: 0x1f }),
);
const bytes = (max: number) => fc.array(nameByte, { maxLength: max }).map((a) => Buffer.from(a));
const utf8Text = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('user.a', 'é', '"q"', 'a\\b', 'x\ty', '', '\u2028'));

const entry: fc.Arbitrary<Entry> = fc.record({
  name: fc.oneof(
    bytes(12),
    utf8Text.map((s) => Buffer.from(s, 'utf8')),
  ),
  state: fc.constantFrom<Entry['state']>('active', 'reserved'),
  location: fc.oneof(
    fc.constantFrom('backend1!default', 'backend1', 'b2!p', '!', 'backend1!').map((s) => Buffer.from(s)),
    bytes(10),
  ),
  acl: fc.oneof(
    fc.constantFrom('', 'anyone\tlrs\t', 'alice\tlrswipkxtecdan\t1000\tlr\t', 'a\tb\ta\tc\t', 'x\t').map((s) => Buffer.from(s)),
    bytes(10),
  ),
});

/** A JSON value for a member the reader does not use (and sometimes for one it does). */
const jsonValue: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('1', '-0', '0.5e3', 'true', 'false', 'null', '"s"', '"\\u00e9\\n"', '[]', '{}', '01', '"\\x"', '1.', 'tru'),
    fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)),
    fc.array(tie('value'), { maxLength: 3 }).map((a) => `[${a.join(', ')}]`),
    fc
      .array(fc.tuple(fc.constantFrom('a', 'name', 'acl', 'location', 'x'), tie('value')), { maxLength: 3 })
      .map((ps) => `{${ps.map(([k, v]) => `${JSON.stringify(k)}: ${v}`).join(', ')}}`),
  ),
})).value;

/** One record line as ctl_mboxlist writes it, or mupdated's dumpLine, then maybe altered. */
const recordLine = fc.oneof(
  fc.tuple(entry, fc.integer({ min: 0, max: 2 ** 31 })).map(([e, mtime]) => dumpLine(e, mtime)),
  fc
    .record({
      key: utf8Text,
      members: fc.array(
        fc.tuple(
          fc.constantFrom('name', 'server', 'partition', 'mbtype', 'acl', 'x_raw', 'uniqueid', 'name_history', 'n\\u0061me', 'mtime'),
          fc.oneof(jsonValue, fc.constantFrom('"e"', '"d"', '"rz"', '{"alice": "lr", "1000": "lrs"}', '{"a": 1}', '{"name": "eA=="}')),
        ),
        { maxLength: 8 },
      ),
    })
    .map(({ key, members }) => `${JSON.stringify(key)}: {${members.map(([k, v]) => `"${k}": ${v}`).join(', ')}}`),
);

const alteredLine = fc
  .tuple(recordLine, fc.nat(), fc.constantFrom('', ' ', '}', ',', ' ,', '\t', 'x', '"', '\\', '{'))
  .map(([line, at, insert]) => {
    const i = at % (line.length + 1);
    return line.slice(0, i) + insert + line.slice(i);
  });

const dumpBytes = fc
  .record({
    lines: fc.array(fc.oneof({ weight: 6, arbitrary: recordLine }, { weight: 1, arbitrary: alteredLine }), { maxLength: 12 }),
    eol: fc.constantFrom('\n', '\r\n', '\r'),
    closing: fc.constantFrom('\n}\n', '}', '\n}', '\n', '\n}\nx', ''),
    opening: fc.constantFrom('{\n', '{', '\n{\n', '{ '),
    latin1: fc.boolean(),
  })
  .map(({ lines, eol, closing, opening, latin1 }) => {
    const text = opening + lines.join(`,${eol}`) + closing;
    // Latin-1: names and values as 8-bit bytes that are not UTF-8, as a broken tool might write them.
    return Buffer.from(text, latin1 ? 'latin1' : 'utf8');
  });

test('fast dump reading gives the same records and errors as the general reader', async (t) => {
  await fc.assert(
    fc.asyncProperty(dumpBytes, fc.integer({ min: 1, max: 64 }), async (bytes, chunk) => {
      t.deepEqual(await fastRead(bytes, chunk), await generalRead(bytes, chunk));
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test('parseDump still reads a dump written by writeDump back to the same entries', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(entry, { maxLength: 10 }), async (entries) => {
      const text = `{\n${entries.map((e) => dumpLine(e, 1)).join(',\n')}\n}\n`;
      const records: DumpRecord[] = [];
      for await (const r of parseDump(Readable.from(text.split('\n')))) records.push(r);
      t.deepEqual(
        records.map((r) => shown(r)),
        (await generalRead(Buffer.from(text), 7)).records,
      );
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

test('the fast scanner takes the lines ctl_mboxlist writes and leaves unusual ones to the general reader', (t) => {
  const cyrusLine =
    '"user.a^b": {"name": "user.a^b", "mtime": "1", "uidvalidity": "2", "mbtype": "e", "partition": "default", ' +
    '"acl": {"a\\"b": "lrs", "1000": "lr"}, "uniqueid": "u", "name_history": [{"name": "old", "mtime": 3}]},';
  const scanned = scanRecordLine(cyrusLine);
  t.truthy(scanned);
  t.is(scanned?.key, 'user.a^b');
  t.deepEqual(
    scanned?.record.get('acl'),
    new OrderedObject([
      ['a"b', 'lrs'],
      ['1000', 'lr'],
    ]),
  );
  t.is(scanRecordLine('"a": {"mbtype": "e"}, "b": {"mbtype": "e"}'), null);
  t.is(scanRecordLine('"a": {"acl": {"x": 1}}'), null);
  t.is(scanRecordLine('"a": {"mtime": 01}'), null);
  t.is(scanRecordLine('"a": {"mbtype": "e"}}'), null);
});

test('the line splitter gives the lines of the whole input decoded at once and split as readline splits, for any bytes in any chunks (line breaks of every kind, UTF-8 split across chunks, invalid UTF-8)', (t) => {
  const piece = fc.constantFrom(
    [0x61],
    [0x7b, 0x22],
    [0x0a],
    [0x0d],
    [0x0d, 0x0a],
    [0xc3, 0xa9],
    [0xe2, 0x82, 0xac],
    [0xf0, 0x9f, 0x98, 0x80],
    [0xe2, 0x82],
    [0xff],
    [0x80],
    [0x20, 0x09],
  );
  const input = fc.array(piece, { maxLength: 40 }).map((ps) => Buffer.from(ps.flat()));
  fc.assert(
    fc.property(input, fc.integer({ min: 1, max: 16 }), (bytes, size) => {
      // readline's breaks (crlfDelay Infinity); unlike readline, an unfinished UTF-8 sequence at the
      // very end gives U+FFFD instead of vanishing, as it did before the splitter read bytes.
      const expected = bytes.toString('utf8').split(/\r\n|\n|\r/);
      if (expected[expected.length - 1] === '') expected.pop();
      const got: string[] = [];
      const splitter = new LineSplitter((line) => got.push(line));
      for (const c of chunks(bytes, size)) splitter.push(c);
      splitter.end();
      t.deepEqual(got, expected);
    }),
    { numRuns: RUNS * 3 },
  );
  t.pass();
});

// ---- the push's byte-level reading of plain lines (push/plain-record.ts) ----

/** Lines of printable ASCII as Cyrus writes them, with the variations the byte reader must judge as the text reader does. */
const plainishLine = fc
  .record({
    key: fc.constantFrom('user.a', 'user.b.Sent', 'shared', '', 'a!b', 'x y'),
    members: fc.array(
      fc.tuple(
        fc.constantFrom('name', 'server', 'partition', 'mbtype', 'acl', 'x_raw', 'uniqueid', 'name_history', 'mtime', 'acl '),
        fc.constantFrom(
          '"e"',
          '"d"',
          '"rz"',
          '"ei"',
          '"default"',
          '"p2"',
          '"backend1"',
          '"b2"',
          '"backend1!x"',
          '"user.c"',
          '""',
          '{"alice": "lr", "1000": "lrs"}',
          '{"a": "b", "a": "c"}',
          '{}',
          '[]',
          '[{"name": "x"}, []]',
          '{"a": {"b": ["c"]}}',
          '1',
          'null',
          '"x!y"',
          '{"alice": 1}',
          '["lr"]',
          '{ "b" : "lr" , "c":"l" }',
          '{"name": "eA=="}',
        ),
      ),
      { maxLength: 9 },
    ),
    separator: fc.constantFrom(', ', ',', ' , '),
    after: fc.constantFrom('', ' ', '  '),
  })
  .map(
    ({ key, members, separator, after }) => `${JSON.stringify(key)}: {${members.map(([k, v]) => `"${k}": ${v}`).join(separator)}}${after}`,
  );

const pushDumpBytes = fc
  .record({
    lines: fc.array(
      fc.oneof({ weight: 6, arbitrary: plainishLine }, { weight: 1, arbitrary: recordLine }, { weight: 1, arbitrary: alteredLine }),
      {
        maxLength: 12,
      },
    ),
    eol: fc.constantFrom('\n', '\r\n', '\r'),
    closing: fc.constantFrom('\n}\n', '}', '\n', ''),
  })
  .map(({ lines, eol, closing }) => Buffer.from(`{${eol}${lines.join(`,${eol}`)}${closing}`, 'utf8'));

async function pushRead(
  bytes: Buffer,
  chunk: number,
  backend: string,
  plainLines: boolean,
): Promise<{ entries: string[]; error: string | null }> {
  try {
    const packed = await readLocal(Readable.from(chunks(bytes, chunk)), backend, plainLines);
    return {
      entries: packed.entries().map((e) => `${e.state} ${e.name.toString('hex')} ${e.location.toString('hex')} ${e.acl.toString('hex')}`),
      error: null,
    };
  } catch (err) {
    return { entries: [], error: failure(err) };
  }
}

test("the push's byte reading of plain lines keeps the mailboxes the text reading keeps, and fails the same way", async (t) => {
  let plainTaken = 0;
  await fc.assert(
    fc.asyncProperty(
      pushDumpBytes,
      fc.integer({ min: 1, max: 64 }),
      fc.constantFrom('backend1', 'b2', 'bä'),
      async (bytes, chunk, backend) => {
        const fast = await pushRead(bytes, chunk, backend, true);
        t.deepEqual(fast, await pushRead(bytes, chunk, backend, false));
        plainTaken += fast.entries.length;
      },
    ),
    { numRuns: RUNS * 2 },
  );
  // Not vacuous: the runs kept mailboxes.
  t.true(plainTaken > RUNS);
});

test('the byte reader takes the lines ctl_mboxlist writes and declines the unusual ones without adding anything', (t) => {
  const out = new PackedMailboxes();
  const reader = new PlainRecordReader('backend1', out);
  const take = (line: string) => reader.take(Buffer.from(`${line}\n`, 'latin1'), 0, line.length);
  const cyrusLine =
    '"user.a^b": {"name": "user.a^b", "mtime": "1", "uidvalidity": "2", "mbtype": "e", "partition": "p2", ' +
    '"acl": {"a": "lrs", "1000": "lr"}, "uniqueid": "u", "name_history": [{"name": "old", "partition": "x"}]},';
  t.true(take(cyrusLine));
  t.true(take('"user.c": {"mbtype": "e", "server": "backend1", "partition": "default"}'));
  // Taken but not kept: a reservation, and another server's mailbox.
  t.true(take('"user.r": {"mbtype": "ez", "partition": "default"}'));
  t.true(take('"user.o": {"mbtype": "e", "server": "backend10", "partition": "default"}'));
  t.deepEqual(
    out.entries().map((e) => `${e.name.toString('latin1')}|${e.location.toString('latin1')}|${e.acl.toString('latin1')}`),
    ['user.a^b|backend1!p2|a\tlrs\t1000\tlr\t', 'user.c|backend1!default|'],
  );
  for (const line of [
    '"a": {"mtime": 1}',
    '"a\\"b": {}',
    '"a": {"x_raw": {}}',
    '"a": {"mbtype": "e"} x',
    '  "a": {}',
    '"a": {"acl": {"x": 1}}',
  ]) {
    t.false(take(line), line);
  }
  t.is(out.count, 2);
  t.false(new PlainRecordReader('bä', new PackedMailboxes()).take(Buffer.from('"a": {}'), 0, 7));
});
