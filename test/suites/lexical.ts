/**
 * Lexical syntax and framing (spec 1.2-1.8, 2.1, 3.0, 8.4; checklist C1, C3-C14,
 * C60, C61), over real loopback sockets against a real mupdated child.
 * Lines the spec gives as exact are compared byte for byte, CRLF included.
 */
import test, { type ExecutionContext } from 'ava';
import { RawClient } from '../helpers/raw-client.js';
import { type RunningMupdated } from '../helpers/server.js';
import {
  BYE_LINE,
  RawCapture,
  STATUS_LINE,
  l1,
  openStream,
  parseDataUnit,
  splitServerUnits,
  waitStreamedMailbox,
} from '../helpers/wire-tools.js';
import type { ServerFactory } from '../helpers/server-factory.js';

const SERVERNAME = 'lexical-master';
const PLAIN_IR = Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64'); // 44 bytes
const CAP = 131072;

/** Sends bytes, reads up to the tagged answer of lastTag, returns every byte received meanwhile (latin1). */
async function exchange(c: RawClient, cap: RawCapture, send: string | Buffer, lastTag: string): Promise<string> {
  c.send(send);
  await c.readUntilTagged(lastTag);
  return l1(cap.take());
}

/** Runs exchanges in turn on one connection, checking each answer: `[send, lastTag, expected, message?]`. */
async function expectExchanges(
  t: ExecutionContext,
  c: RawClient,
  cap: RawCapture,
  steps: Array<[send: string | Buffer, lastTag: string, expected: string, message?: string]>,
): Promise<void> {
  for (const [send, lastTag, expected, message] of steps) t.is(await exchange(c, cap, send, lastTag), expected, message);
}

/** `tag MAILBOX` response bytes as mupdated must send them ({n+} literals). */
function mailboxBytes(tag: string, name: string, location: string, acl: string): string {
  const n = (s: string) => Buffer.byteLength(s, 'latin1');
  return `${tag} MAILBOX {${n(name)}+}\r\n${name} {${n(location)}+}\r\n${location} {${n(acl)}+}\r\n${acl}\r\n`;
}

// ---- C4 ----

const NEED = '* BAD "Need command"\r\n';

// ---- C11 ----

function c11Pipeline(k: string): { send: string; expect: string } {
  const name = `user.lex-c11${k}`;
  const send = [
    `P1 NOOP`,
    `P2 ACTIVATE "${name}" "backend1!default" "c11\tlrs\t"`,
    `P3 FIND "${name}"`,
    'P4 FOO',
    `P5 RESERVE "${name}r" "c11${k}host!default"`,
    `P6 LIST "c11${k}host!"`,
    `P7 DELETE "${name}"`,
    `P8 FIND "${name}"`,
    `P9 DELETE "${name}"`,
    `P10 NOOP`,
  ]
    .map((l) => `${l}\r\n`)
    .join('');
  const expect = [
    'P1 OK "Noop done"\r\n',
    'P2 OK "done"\r\n',
    mailboxBytes('P3', name, 'backend1!default', 'c11\tlrs\t'),
    'P3 OK "Search completed"\r\n',
    'P4 BAD "Unrecognized command"\r\n',
    'P5 OK "done"\r\n',
    `P6 RESERVE {${name.length + 1}+}\r\n${name}r {${`c11${k}host!default`.length}+}\r\nc11${k}host!default\r\n`,
    'P6 OK "list complete"\r\n',
    'P7 OK "done"\r\n',
    'P8 OK "Search completed"\r\n',
    'P9 NO "mailbox doesn\'t exist"\r\n',
    'P10 OK "Noop done"\r\n',
  ].join('');
  return { send, expect };
}

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
export function lexicalTests(start: ServerFactory): void {
  let server: RunningMupdated;
  test.before(async () => {
    server = await start({ config: { servername: SERVERNAME } });
  });
  test.after.always(async () => {
    await server?.stop();
  });

  const login = () => RawClient.login(server.port);

  /** Logged-in client with a raw capture that starts after the login. */
  async function loggedIn(): Promise<{ c: RawClient; cap: RawCapture }> {
    const c = await login();
    return { c, cap: new RawCapture(c) };
  }

  /** Not logged in: banner read, raw capture starts after it. */
  async function fresh(): Promise<{ c: RawClient; cap: RawCapture }> {
    const c = await RawClient.connect(server.port);
    const cap = new RawCapture(c);
    await c.readBanner();
    cap.take();
    return { c, cap };
  }

  async function serverStillServes(t: ExecutionContext): Promise<void> {
    t.is(server.child.exitCode, null, 'server process still running');
    const c = await login();
    c.send('Z1 FIND "user.lex-nothing"\r\n');
    t.deepEqual(await c.readUntilTagged('Z1'), ['Z1 OK "Search completed"']);
    c.close();
  }

  // ---- C1 ----

  test('C1 banner: * AUTH (quoted mechs), * PARTIAL-UPDATE, * OK MUPDATE "<servername>" ... "(master)", in order, CRLF, nothing else', async (t) => {
    const c = await RawClient.connect(server.port);
    const cap = new RawCapture(c);
    const lines = await c.readBanner();
    t.true(await c.expectSilence(300), 'nothing after the banner');
    const banner = l1(cap.take());
    t.regex(
      banner,
      /^\* AUTH(?: "[A-Z0-9_-]+")*\r\n(?:\* COMPRESS "DEFLATE"\r\n)?\* PARTIAL-UPDATE\r\n\* OK MUPDATE "lexical-master" "[^"\\\r\n]*" "[^"\\\r\n]*" "\(master\)"\r\n$/,
    );
    t.false(banner.includes('* STARTTLS'), 'no STARTTLS without TLS configured');
    // PLAIN is what every Cyrus client uses; over loopback it must be offered.
    t.true(/^\* AUTH .*"PLAIN"/.test(lines[0]), lines[0]);
    t.is(lines[lines.length - 1].split('"').length, 9, 'OK MUPDATE carries exactly four quoted strings');
    // * COMPRESS "DEFLATE" only if COMPRESS is implemented.
    c.send('Z01 COMPRESS "LZ4"\r\n');
    const z = await c.readLine();
    if (banner.includes('* COMPRESS "DEFLATE"')) t.is(z, 'Z01 NO "Unknown COMPRESS algorithm: LZ4"');
    else t.is(z, 'Z01 BAD "Unrecognized command"');
    c.close();
  });

  test('C1 every connection gets the same banner before sending anything, and LOGOUT before login works', async (t) => {
    const a = await RawClient.connect(server.port);
    const b = await RawClient.connect(server.port);
    const ba = await a.readBanner();
    const bb = await b.readBanner();
    t.deepEqual(ba, bb);
    a.send('Q01 LOGOUT\r\n');
    t.is(await a.readLine(), 'Q01 OK "bye-bye"');
    t.true(await a.waitClosed());
    b.close();
  });

  // ---- C3 ----

  test('C3 command words are case-insensitive (find, Delete, nOoP, aCtIvAtE, ...)', async (t) => {
    const pre = await fresh();
    await expectExchanges(t, pre.c, pre.cap, [
      [
        'e13 find "user.x"\r\ne12 Delete "user.x"\r\ne09 nOoP\r\n',
        'e09',
        'e13 BAD "Please login first"\r\ne12 BAD "Please login first"\r\ne09 BAD "Please login first"\r\n',
      ],
      [`a01 authenticate "plain" {44+}\r\n${PLAIN_IR}\r\n`, 'a01', 'a01 OK "Authenticated"\r\n'],
    ]);
    const { c, cap } = pre;
    await expectExchanges(t, c, cap, [
      ['x03 nOoP\r\n', 'x03', 'x03 OK "Noop done"\r\n'],
      ['a1 aCtIvAtE "user.lex-c3" "backend1!default" ""\r\n', 'a1', 'a1 OK "done"\r\n'],
      ['f1 find "user.lex-c3"\r\n', 'f1', `${mailboxBytes('f1', 'user.lex-c3', 'backend1!default', '')}f1 OK "Search completed"\r\n`],
      ['r1 Reserve "user.lex-c3r" "c3host!default"\r\n', 'r1', 'r1 OK "done"\r\n'],
      ['l1 lIsT "c3host!"\r\n', 'l1', 'l1 RESERVE {12+}\r\nuser.lex-c3r {14+}\r\nc3host!default\r\nl1 OK "list complete"\r\n'],
      ['d1 Delete "user.lex-c3"\r\n', 'd1', 'd1 OK "done"\r\n'],
      ['f2 FiNd "user.lex-c3"\r\n', 'f2', 'f2 OK "Search completed"\r\n'],
      ['q01 LoGoUt\r\n', 'q01', 'q01 OK "bye-bye"\r\n'],
    ]);
    t.true(await c.waitClosed());
  });

  test('C4 a tag not followed by SP (empty line, tag alone, control byte, paren, quote) gets exactly * BAD "Need command"; the connection stays usable', async (t) => {
    const probes = [
      '\r\n',
      '\n',
      'X01\r\n',
      'X02\tNOOP\r\n',
      'X03(NOOP)\r\n',
      'X04"x" NOOP\r\n',
      'X05\x0bNOOP\r\n',
      '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n',
    ];
    // before login, one at a time
    const pre = await fresh();
    for (const p of probes) {
      pre.c.send(p);
      t.is(await pre.c.readLine(), '* BAD "Need command"', JSON.stringify(p));
    }
    t.is(l1(pre.cap.take()), NEED.repeat(probes.length));
    pre.c.close();
    // after login, all pipelined in one packet
    const { c, cap } = await loggedIn();
    t.is(await exchange(c, cap, `${probes.join('')}X06 NOOP\r\n`, 'X06'), `${NEED.repeat(probes.length)}X06 OK "Noop done"\r\n`);
    c.close();
  });

  // ---- C5 ----

  test('C5 "T1 " CRLF (empty command word) gets exactly T1 BAD "Null command"', async (t) => {
    const pre = await fresh();
    t.is(await exchange(pre.c, pre.cap, 'T0 \r\n', 'T0'), 'T0 BAD "Null command"\r\n');
    pre.c.close();
    const { c, cap } = await loggedIn();
    t.is(
      await exchange(c, cap, 'T1 \r\nT2  NOOP\r\nT3 \nT4 (x)\r\nT5 NOOP\r\n', 'T5'),
      'T1 BAD "Null command"\r\nT2 BAD "Null command"\r\nT3 BAD "Null command"\r\nT4 BAD "Null command"\r\nT5 OK "Noop done"\r\n',
    );
    c.close();
  });

  // ---- C6 ----

  test('C6 {n} gets exactly "+ go ahead" before its data is read (also {0}); {n+} gets none', async (t) => {
    // AUTHENTICATE with a synchronizing literal [live 05]
    const pre = await fresh();
    pre.c.send('A01 AUTHENTICATE "PLAIN" {44}\r\n');
    t.is(await pre.c.readLine(), '+ go ahead');
    t.true(await pre.c.expectSilence(200));
    t.is(l1(pre.cap.take()), '+ go ahead\r\n');
    t.is(await exchange(pre.c, pre.cap, `${PLAIN_IR}\r\n`, 'A01'), 'A01 OK "Authenticated"\r\n');
    const { c, cap } = pre;

    c.send('X1 FIND {16}\r\n');
    t.is(await c.readLine(), '+ go ahead');
    t.true(await c.expectSilence(200), 'the command waits for its literal');
    t.is(await exchange(c, cap, 'user.lex-c6-none\r\n', 'X1'), '+ go ahead\r\nX1 OK "Search completed"\r\n');

    c.send('X2 FIND {0}\r\n');
    t.is(await c.readLine(), '+ go ahead');
    t.is(await exchange(c, cap, '\r\n', 'X2'), '+ go ahead\r\nX2 OK "Search completed"\r\n');

    c.send('X3 ACTIVATE {11}\r\n');
    t.is(await c.readLine(), '+ go ahead');
    c.send('user.lex-c6 {16}\r\n');
    t.is(await c.readLine(), '+ go ahead');
    c.send('backend1!default {7}\r\n');
    t.is(await c.readLine(), '+ go ahead');
    t.is(await exchange(c, cap, 'c6\tlrs\t\r\n', 'X3'), '+ go ahead\r\n+ go ahead\r\n+ go ahead\r\nX3 OK "done"\r\n');

    // {n+}: no continuation, data follows at once
    await expectExchanges(t, c, cap, [
      [
        'X4 FIND {11+}\r\nuser.lex-c6\r\n',
        'X4',
        `${mailboxBytes('X4', 'user.lex-c6', 'backend1!default', 'c6\tlrs\t')}X4 OK "Search completed"\r\n`,
      ],
      ['X5 ACTIVATE {12+}\r\nuser.lex-c6b {16+}\r\nbackend1!default {0+}\r\n\r\n', 'X5', 'X5 OK "done"\r\n'],
      ['X6 FIND {0+}\r\n\r\n', 'X6', 'X6 OK "Search completed"\r\n'],
    ]);
    // After } the server needs CRLF: with a bare LF no go-ahead, BAD, and the would-be data is a new line.
    t.is(
      await exchange(c, cap, 'T5 FIND {4}\nabcd\r\nT6 NOOP\r\n', 'T6'),
      'T5 BAD "Extra arguments"\r\n* BAD "Need command"\r\nT6 OK "Noop done"\r\n',
    );
    c.close();
  });

  // ---- C7 ----

  test('C7 quoted strings: backslash escapes any byte; CR/LF before the closing quote and NUL inside are syntax errors', async (t) => {
    const { c, cap } = await loggedIn();
    await expectExchanges(t, c, cap, [
      ['X1 ACTIVATE "user.lex-c7" "backend1!default" "q\\"x\\\\y\tlrs\t"\r\n', 'X1', 'X1 OK "done"\r\n'],
      [
        'X2 FIND "user.lex-c7"\r\n',
        'X2',
        `${mailboxBytes('X2', 'user.lex-c7', 'backend1!default', 'q"x\\y\tlrs\t')}X2 OK "Search completed"\r\n`,
      ],
    ]);
    // a backslash before an ordinary byte just yields that byte
    t.is(
      await exchange(c, cap, 'X3 FIND "\\u\\ser.lex\\-c7"\r\n', 'X3'),
      `${mailboxBytes('X3', 'user.lex-c7', 'backend1!default', 'q"x\\y\tlrs\t')}X3 OK "Search completed"\r\n`,
    );
    // CR or LF before the closing quote
    await expectExchanges(t, c, cap, [
      [
        'X4 FIND "user.lex-c7\r\nX5 FIND "user.lex-c7\nX6 FIND "user\rlex-c7"\r\nX7 NOOP\r\n',
        'X7',
        'X4 BAD "Extra arguments"\r\nX5 BAD "Extra arguments"\r\nX6 BAD "Extra arguments"\r\nX7 OK "Noop done"\r\n',
      ],
      ['X8 ACTIVATE "user.lex-c7x\r\nX9 FIND "user.lex-c7x"\r\n', 'X9', 'X8 BAD "Missing arguments"\r\nX9 OK "Search completed"\r\n'],
    ]);
    // NUL inside a quoted string (plain or escaped) is a syntax error; nothing is cut and stored
    await expectExchanges(t, c, cap, [
      ['Y1 FIND "user.\x00bob"\r\nY2 FIND "user.lex-c7\\\x00"\r\n', 'Y2', 'Y1 BAD "Extra arguments"\r\nY2 BAD "Extra arguments"\r\n'],
      [
        'Y3 ACTIVATE "user.lex-c7n\x00cut" "backend1!default" ""\r\nY4 ACTIVATE "user.lex-c7m" "backend1!\x00" ""\r\n',
        'Y4',
        'Y3 BAD "Missing arguments"\r\nY4 BAD "Missing arguments"\r\n',
      ],
      [
        'Y5 FIND "user.lex-c7n"\r\nY6 FIND "user.lex-c7m"\r\nY7 NOOP\r\n',
        'Y7',
        'Y5 OK "Search completed"\r\nY6 OK "Search completed"\r\nY7 OK "Noop done"\r\n',
      ],
    ]);
    c.close();
  });

  // ---- C8 ----

  test('C8 atoms, NIL and lists are not strings: FIND user.a, AUTHENTICATE PLAIN -> Extra arguments; ACTIVATE a b c -> Missing arguments', async (t) => {
    const pre = await fresh();
    t.is(
      await exchange(pre.c, pre.cap, 'T1 AUTHENTICATE PLAIN\r\nT2 AUTHENTICATE\r\n', 'T2'),
      'T1 BAD "Extra arguments"\r\nT2 BAD "Missing arguments"\r\n',
    );
    pre.c.close();
    const { c, cap } = await loggedIn();
    t.is(
      await exchange(
        c,
        cap,
        [
          'T1 FIND user.a',
          'T2 ACTIVATE a b c',
          'T3 FIND NIL',
          'T4 ACTIVATE ("user.q") "backend1!default" ""',
          'T5 FIND(x)',
          'T6 NOOP(x)',
          'T7 ACTIVATE "a""b" "c"',
          'T8 FIND "user.bob"extra',
          'T9 FIND  "user.bob"',
          'T10 FIND ',
          'T11 FIND',
          'T12 ACTIVATE "user.lex-c8" "backend1!default" acl',
          'T13 FIND "user.lex-c8"',
        ]
          .map((l) => `${l}\r\n`)
          .join(''),
        'T13',
      ),
      [
        'T1 BAD "Extra arguments"',
        'T2 BAD "Missing arguments"',
        'T3 BAD "Extra arguments"',
        'T4 BAD "Missing arguments"',
        'T5 BAD "Missing arguments"',
        'T6 BAD "Extra arguments"',
        'T7 BAD "Missing arguments"',
        'T8 BAD "Extra arguments"',
        'T9 BAD "Extra arguments"',
        'T10 BAD "Extra arguments"',
        'T11 BAD "Missing arguments"',
        'T12 BAD "Extra arguments"',
        'T13 OK "Search completed"',
      ]
        .map((l) => `${l}\r\n`)
        .join(''),
    );
    c.close();
  });

  // ---- C9 ----

  test('C9 a literal containing NUL is rejected with BAD (the count is honoured) and the connection stays usable', async (t) => {
    const { c, cap } = await loggedIn();
    await expectExchanges(t, c, cap, [
      ['X04 FIND {7+}\r\nuser\x00.l\r\nX05 NOOP\r\n', 'X05', 'X04 BAD "Extra arguments"\r\nX05 OK "Noop done"\r\n'],
      [
        'X06 ACTIVATE {12+}\r\nuser.lex\x00c9 {16+}\r\nbackend1!default {0+}\r\n\r\nX07 NOOP\r\n',
        'X07',
        'X06 BAD "Missing arguments"\r\nX07 OK "Noop done"\r\n',
      ],
      ['X08 ACTIVATE "user.lex-c9" "backend1!default" {4+}\r\na\x00b\t\r\n', 'X08', 'X08 BAD "Extra arguments"\r\n'],
    ]);
    c.send('X09 FIND {3}\r\n');
    t.is(await c.readLine(), '+ go ahead');
    await expectExchanges(t, c, cap, [
      ['a\x00b\r\n', 'X09', '+ go ahead\r\nX09 BAD "Extra arguments"\r\n'],
      ['X10 FIND "user.lex-c9"\r\nX11 FIND "user.lex"\r\n', 'X11', 'X10 OK "Search completed"\r\nX11 OK "Search completed"\r\n'],
    ]);
    c.close();
  });

  // ---- C10 ----

  test('C10 a bare LF ends a command; a lone CR does not (X03 NOOP CR X04 ... gets only X03 BAD "Extra arguments")', async (t) => {
    const { c, cap } = await loggedIn();
    c.send('X01 NOOP');
    t.true(await c.expectSilence(300), 'no answer before the line end');
    await expectExchanges(t, c, cap, [
      ['\r\n', 'X01', 'X01 OK "Noop done"\r\n'],
      ['X02 NOOP\n', 'X02', 'X02 OK "Noop done"\r\n'],
      ['X03 NOOP\rX04 NOOP\r\nX05 FIND "user.lex-c10"\n', 'X05', 'X03 BAD "Extra arguments"\r\nX05 OK "Search completed"\r\n'],
    ]);
    // the command after a lone CR is never executed, even a write
    await expectExchanges(t, c, cap, [
      [
        'X06 NOOP\rX07 ACTIVATE "user.lex-c10" "backend1!default" ""\r\nX08 FIND "user.lex-c10"\r\n',
        'X08',
        'X06 BAD "Extra arguments"\r\nX08 OK "Search completed"\r\n',
      ],
      [
        'X09 ACTIVATE "user.lex-c10" "backend1!default" ""\nX10 FIND "user.lex-c10"\n',
        'X10',
        `X09 OK "done"\r\n${mailboxBytes('X10', 'user.lex-c10', 'backend1!default', '')}X10 OK "Search completed"\r\n`,
      ],
    ]);
    c.close();
  });

  test('C11 pipelined commands in one packet are answered in order', async (t) => {
    const { c, cap } = await loggedIn();
    const { send, expect } = c11Pipeline('a');
    t.is(await exchange(c, cap, send, 'P10'), expect);
    c.close();
  });

  test('C11 pipelined commands sent one byte per write are answered in order', async (t) => {
    const { c, cap } = await loggedIn();
    c.socket.setNoDelay(true);
    const { send, expect } = c11Pipeline('b');
    const bytes = Buffer.from(send, 'latin1');
    for (let i = 0; i < bytes.length; i++) c.send(bytes.subarray(i, i + 1));
    await c.readUntilTagged('P10', 20_000);
    t.is(l1(cap.take()), expect);
    c.close();
  });

  // ---- C12 ----

  test('C12 after a BAD, the {n+} literal bodies of that command are skipped, never read as commands', async (t) => {
    const del = 'X9 DELETE "user.lex-c12"\r\n';
    const lit = (s: string) => `{${Buffer.byteLength(s, 'latin1')}+}\r\n${s}`;
    // before login: the arguments are not parsed, but the literal bodies are still skipped
    const pre = await fresh();
    t.is(
      await exchange(pre.c, pre.cap, `E1 FIND ${lit('E9 LOGOUT\r\n')}\r\nE2 NOOP\r\n`, 'E2'),
      'E1 BAD "Please login first"\r\nE2 BAD "Please login first"\r\n',
    );
    t.false(pre.c.ended, 'E9 LOGOUT was not executed');
    pre.c.close();

    const { c, cap } = await loggedIn();
    t.is(await exchange(c, cap, 'X0 ACTIVATE "user.lex-c12" "backend1!default" "c12\tlrs\t"\r\n', 'X0'), 'X0 OK "done"\r\n');
    const nested = 'X9 DELETE {12+}\r\nuser.lex-c12\r\n';
    t.is(
      await exchange(
        c,
        cap,
        [
          `X1 FOO ${lit(del)}\r\n`,
          `X2 FIND "a" ${lit(del)}\r\n`,
          `X3 ACTIVATE x ${lit(del)} ${lit(del)}\r\n`,
          `X4 FIND "user.lex-c12"extra ${lit(nested)}\r\n`,
          `X5 NOOP ${lit(del)} ${lit('')}\r\n`,
          'X6 FIND "user.lex-c12"\r\n',
        ].join(''),
        'X6',
      ),
      [
        'X1 BAD "Unrecognized command"\r\n',
        'X2 BAD "Extra arguments"\r\n',
        'X3 BAD "Missing arguments"\r\n',
        'X4 BAD "Extra arguments"\r\n',
        'X5 BAD "Extra arguments"\r\n',
        mailboxBytes('X6', 'user.lex-c12', 'backend1!default', 'c12\tlrs\t'),
        'X6 OK "Search completed"\r\n',
      ].join(''),
    );
    // a {n} in a command already refused gets no go-ahead, so no body follows and the next line is a command
    t.is(await exchange(c, cap, 'X7 FOO {26}\r\nX8 NOOP\r\n', 'X8'), 'X7 BAD "Unrecognized command"\r\nX8 OK "Noop done"\r\n');
    c.close();
  });

  // ---- C13 ----

  test('C13 strings of exactly 131072 bytes are accepted and stored: {n+} and {n} literals and quoted', async (t) => {
    const { c, cap } = await loggedIn();
    const acl = Buffer.alloc(CAP, 'a\t').toString('latin1');
    const loc = 'b'.repeat(CAP);
    await expectExchanges(t, c, cap, [
      [`X01 ACTIVATE "user.lex-c13big" "backend1!default" {${CAP}+}\r\n${acl}\r\n`, 'X01', 'X01 OK "done"\r\n'],
      [
        'X02 FIND "user.lex-c13big"\r\n',
        'X02',
        `${mailboxBytes('X02', 'user.lex-c13big', 'backend1!default', acl)}X02 OK "Search completed"\r\n`,
      ],
      [`X03 ACTIVATE "user.lex-c13loc" "${loc}" ""\r\n`, 'X03', 'X03 OK "done"\r\n'],
      ['X04 FIND "user.lex-c13loc"\r\n', 'X04', `${mailboxBytes('X04', 'user.lex-c13loc', loc, '')}X04 OK "Search completed"\r\n`],
    ]);
    c.send('X05 ACTIVATE "user.lex-c13sync" "backend1!default" {' + CAP + '}\r\n');
    t.is(await c.readLine(), '+ go ahead');
    const acl2 = acl.replace(/a/g, 'z');
    await expectExchanges(t, c, cap, [
      [`${acl2}\r\n`, 'X05', '+ go ahead\r\nX05 OK "done"\r\n'],
      [
        'X06 FIND "user.lex-c13sync"\r\n',
        'X06',
        `${mailboxBytes('X06', 'user.lex-c13sync', 'backend1!default', acl2)}X06 OK "Search completed"\r\n`,
      ],
      [
        'X07 DELETE "user.lex-c13big"\r\nX08 DELETE "user.lex-c13loc"\r\nX09 DELETE "user.lex-c13sync"\r\n',
        'X09',
        'X07 OK "done"\r\nX08 OK "done"\r\nX09 OK "done"\r\n',
      ],
    ]);
    c.close();
  });

  test('C13 FIND of a 131072-byte name (quoted, {n+}, {n}) is accepted and answers OK "Search completed" [live 26]', async (t) => {
    const { c, cap } = await loggedIn();
    await expectExchanges(t, c, cap, [
      [`X01 FIND {${CAP}+}\r\n${'x'.repeat(CAP)}\r\n`, 'X01', 'X01 OK "Search completed"\r\n'],
      [`X02 FIND "${'q'.repeat(CAP)}"\r\n`, 'X02', 'X02 OK "Search completed"\r\n'],
    ]);
    c.send(`X03 FIND {${CAP}}\r\n`);
    t.is(await c.readLine(), '+ go ahead');
    t.is(await exchange(c, cap, `${'y'.repeat(CAP)}\r\n`, 'X03'), '+ go ahead\r\nX03 OK "Search completed"\r\n');
    c.close();
    await serverStillServes(t);
  });

  test('C13 T FIND {131073} gets T BAD "<text>" without + go ahead, and the next line is answered normally', async (t) => {
    const { c, cap } = await loggedIn();
    c.send(`T FIND {${CAP + 1}}\r\n`);
    const bad = await c.readLine();
    t.regex(bad, /^T BAD "(?:[^"\\]|\\.)*"$/);
    t.true(await c.expectSilence(200), 'no go-ahead after the BAD');
    t.is(await exchange(c, cap, 'N1 NOOP\r\n', 'N1'), `${bad}\r\nN1 OK "Noop done"\r\n`);
    // the same, pipelined, and in a non-final position
    const out = await exchange(
      c,
      cap,
      `T2 FIND {${CAP + 1}}\r\nN2 NOOP\r\nT3 ACTIVATE {${CAP + 1}} "b" "c"\r\nN3 FIND "user.lex-c13t"\r\n`,
      'N3',
    );
    t.regex(out, /^T2 BAD "(?:[^"\\]|\\.)*"\r\nN2 OK "Noop done"\r\nT3 BAD "(?:[^"\\]|\\.)*"\r\nN3 OK "Search completed"\r\n$/);
    t.false(out.includes('+ go ahead'));
    c.close();
  });

  /**
   * Sends over-limit input on one logged-in connection while another connection
   * streams (UPDATE): that connection alone gets `* BYE "<text>"` and is closed;
   * the stream then receives a later change and the server keeps serving.
   */
  async function overLimitClosesOnlyThatConnection(t: ExecutionContext, key: string, payload: string): Promise<void> {
    const stream = await openStream(login, 'U13');
    const { c, cap } = await loggedIn();
    c.send(payload);
    t.true(await c.waitClosed(15_000), 'offending connection closed');
    t.regex(l1(cap.all()), BYE_LINE, 'exactly one * BYE "<text>" line');
    t.is(server.child.exitCode, null, 'server still running');
    const name = `user.lex-c13-${key}`;
    const other = await login();
    other.send(`W1 ACTIVATE "${name}" "backend1!default" "c13\tlrs\t"\r\n`);
    t.deepEqual(await other.readUntilTagged('W1'), ['W1 OK "done"']);
    t.deepEqual(await waitStreamedMailbox(stream, 'U13', name), [`${name} {16+}`, 'backend1!default {8+}', 'c13\tlrs\t']);
    stream.send('N1 NOOP\r\n');
    const lines = await stream.readUntilTagged('N1');
    t.is(lines[lines.length - 1], 'N1 OK "Noop done"');
    other.send(`W2 DELETE "${name}"\r\n`);
    t.deepEqual(await other.readUntilTagged('W2'), ['W2 OK "done"']);
    await serverStillServes(t);
    stream.close();
    other.close();
  }

  test('C13 {131073+} gets * BYE and closes only that connection; an UPDATE stream keeps working', (t) =>
    overLimitClosesOnlyThatConnection(t, 'lit', `X02 FIND {${CAP + 1}+}\r\n`));

  test('C13 a quoted string of 131073 bytes gets * BYE and closes only that connection; an UPDATE stream keeps working', (t) =>
    overLimitClosesOnlyThatConnection(t, 'quoted', `X01 FIND "${'q'.repeat(CAP + 1)}"\r\n`));

  test('C13 a 65-byte tag gets * BYE and closes only that connection; an UPDATE stream keeps working', (t) =>
    overLimitClosesOnlyThatConnection(t, 'tag', `${'T'.repeat(65)} NOOP\r\n`));

  test('C13 a 65-byte command word gets * BYE and closes only that connection; an UPDATE stream keeps working', (t) =>
    overLimitClosesOnlyThatConnection(t, 'word', `X1 ${'W'.repeat(65)}\r\n`));

  test('C13 {2147483648+} gets * BYE and closes only that connection; an UPDATE stream keeps working', (t) =>
    overLimitClosesOnlyThatConnection(t, 'num', 'X06 FIND {2147483648+}\r\n'));

  test('C13 a 64-byte tag and a 64-byte command word are within the caps', async (t) => {
    const { c, cap } = await loggedIn();
    const tag = 'T'.repeat(64);
    await expectExchanges(t, c, cap, [
      [`${tag} NOOP\r\n`, tag, `${tag} OK "Noop done"\r\n`],
      [`X1 ${'W'.repeat(64)}\r\n`, 'X1', 'X1 BAD "Unrecognized command"\r\n'],
    ]);
    c.close();
  });

  // ---- C14 ----

  test('C14 data strings in MAILBOX/RESERVE/DELETE are {n+} literals; an empty one is {0+} and an empty line', async (t) => {
    const stream = await openStream(login, 'U14');
    const sCap = new RawCapture(stream);
    const { c, cap } = await loggedIn();
    await expectExchanges(t, c, cap, [
      [
        'X1 ACTIVATE "user.lex-c14" "backend1!default" ""\r\nX2 RESERVE "user.lex-c14r" "backend1!default"\r\n',
        'X2',
        'X1 OK "done"\r\nX2 OK "done"\r\n',
      ],
      [
        'X3 FIND "user.lex-c14"\r\n',
        'X3',
        'X3 MAILBOX {12+}\r\nuser.lex-c14 {16+}\r\nbackend1!default {0+}\r\n\r\nX3 OK "Search completed"\r\n',
      ],
      ['X4 FIND "user.lex-c14r"\r\n', 'X4', 'X4 RESERVE {13+}\r\nuser.lex-c14r {16+}\r\nbackend1!default\r\nX4 OK "Search completed"\r\n'],
      ['X5 DELETE "user.lex-c14"\r\nX6 DELETE "user.lex-c14r"\r\n', 'X6', 'X5 OK "done"\r\nX6 OK "done"\r\n'],
    ]);
    // the stream carries the same shapes; DELETE has one literal
    const want = ['U14 DELETE {12+}\r\nuser.lex-c14\r\n', 'U14 DELETE {13+}\r\nuser.lex-c14r\r\n'];
    const deadline = Date.now() + 10_000;
    while (!want.every((w) => l1(sCap.all()).includes(w)) && Date.now() < deadline) {
      try {
        await stream.readLine(Math.max(1, deadline - Date.now()));
      } catch {
        break;
      }
    }
    const streamed = l1(sCap.all());
    for (const w of want) t.true(streamed.includes(w), `stream has ${JSON.stringify(w)}`);
    // every unit on the stream is a well-formed data line or the OK
    const { units } = splitServerUnits(sCap.all());
    const arity: Record<string, number> = { MAILBOX: 3, RESERVE: 2, DELETE: 1 };
    for (const u of units) {
      const d = parseDataUnit(u);
      t.truthy(d, `well-formed data line: ${JSON.stringify(l1(u.subarray(0, 200)))}`);
      if (!d) continue;
      t.is(l1(d.tag), 'U14');
      t.is(d.strings.length, arity[d.keyword], d.keyword);
    }
    stream.close();
    c.close();
  });

  test('C14 every OK/NO/BAD/BYE line carries exactly one quoted string then CRLF (also SASL cancel, STARTTLS, COMPRESS)', async (t) => {
    const c = await RawClient.connect(server.port);
    const cap = new RawCapture(c);
    await c.readBanner();
    const badPw = Buffer.from('\0mupdateadmin\0wrong').toString('base64');
    const exact: Array<[string, string, string]> = [
      ['A01 AUTHENTICATE "PLAIN"\r\n', '', ''],
      ['*\r\n', 'A01', 'A01 NO "Client canceled authentication"'],
      [`A02 AUTHENTICATE "PLAIN" {${badPw.length}+}\r\n${badPw}\r\n`, 'A02', 'A02 NO "authentication failure"'],
      ['S01 STARTTLS\r\n', 'S01', 'S01 BAD "Unrecognized command"'],
      ['E1 NOOP\r\n', 'E1', 'E1 BAD "Please login first"'],
      [`A03 AUTHENTICATE "PLAIN" {44+}\r\n${PLAIN_IR}\r\n`, 'A03', 'A03 OK "Authenticated"'],
      ['A04 AUTHENTICATE "PLAIN" {44+}\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n', 'A04', 'A04 BAD "already authenticated"'],
      ['X1 DELETE "user.lex-c14-none"\r\n', 'X1', 'X1 NO "mailbox doesn\'t exist"'],
      ['X2 DEACTIVATE "user.lex-c14-none" "b!d"\r\n', 'X2', 'X2 NO "mailbox doesn\'t exist"'],
      ['X3 FIND "user.lex-c14-none"\r\n', 'X3', 'X3 OK "Search completed"'],
      ['X4 LIST "no-such-host!"\r\n', 'X4', 'X4 OK "list complete"'],
      ['X5 FOO\r\n', 'X5', 'X5 BAD "Unrecognized command"'],
      ['X6 FIND\r\n', 'X6', 'X6 BAD "Missing arguments"'],
      ['X7 UPDATE ""\r\n', 'X7', 'X7 BAD "Badly formed arguments"'],
      ['X8 NOOP\r\n', 'X8', 'X8 OK "Noop done"'],
    ];
    for (const [send, tag, line] of exact) {
      c.send(send);
      if (!tag) {
        t.is(await c.readLine(), '', 'empty SASL challenge');
        continue;
      }
      const lines = await c.readUntilTagged(tag);
      t.is(lines[lines.length - 1], line);
    }
    c.send('Z01 COMPRESS "DEFLATE-NOT"\r\nQ01 LOGOUT\r\n');
    t.regex((await c.readUntilTagged('Z01')).pop()!, /^Z01 (?:NO|BAD) "/);
    t.is(await c.readLine(), 'Q01 OK "bye-bye"');
    t.true(await c.waitClosed());
    const { units, rest } = splitServerUnits(cap.all());
    t.is(rest.length, 0);
    let statusLines = 0;
    for (const u of units) {
      const s = l1(u);
      if (s.startsWith('* OK MUPDATE ') || /^\* (?:AUTH|PARTIAL-UPDATE|COMPRESS|STARTTLS)/.test(s) || s === '\r\n') continue;
      statusLines++;
      t.regex(s, STATUS_LINE);
    }
    t.is(statusLines, exact.length + 1);
  });

  // ---- C60 ----

  test('C60 an unknown command word gets <tag> BAD "Unrecognized command" in every state, before login included', async (t) => {
    const pre = await fresh();
    t.is(
      await exchange(
        pre.c,
        pre.cap,
        [
          'E10 FOO',
          'E11 ZAP',
          'E12 ACTIVATEX "a" "b" "c"',
          'E13 LOGIN mupdateadmin secret',
          'E14 CAPABILITY',
          'E15 DELETEX',
          'E16 STARTTLS',
          'E17 NOOP',
        ]
          .map((l) => `${l}\r\n`)
          .join(''),
        'E17',
      ),
      [
        'E10 BAD "Unrecognized command"',
        'E11 BAD "Unrecognized command"',
        'E12 BAD "Unrecognized command"',
        'E13 BAD "Unrecognized command"',
        'E14 BAD "Unrecognized command"',
        'E15 BAD "Unrecognized command"',
        'E16 BAD "Unrecognized command"',
        'E17 BAD "Please login first"',
      ]
        .map((l) => `${l}\r\n`)
        .join(''),
    );
    pre.c.close();
    const { c, cap } = await loggedIn();
    t.is(
      await exchange(
        c,
        cap,
        [
          'U01 FOO',
          'U02 CAPABILITY',
          'U03 LOGIN mupdateadmin secret',
          'U04 SELECT INBOX',
          'U05 STARTTLS',
          'U06 XYZZY a b c',
          'U07 ACTIVATEX "a" "b" "c"',
        ]
          .map((l) => `${l}\r\n`)
          .join(''),
        'U07',
      ),
      ['U01', 'U02', 'U03', 'U04', 'U05', 'U06', 'U07'].map((tag) => `${tag} BAD "Unrecognized command"\r\n`).join(''),
    );
    c.close();
    const s = await openStream(login, 'U60');
    s.send('S1 FOO\r\nS2 FINDX "x"\r\n');
    t.is((await s.readUntilTagged('S1')).pop(), 'S1 BAD "Unrecognized command"');
    t.is((await s.readUntilTagged('S2')).pop(), 'S2 BAD "Unrecognized command"');
    s.close();
  });

  // ---- C61 ----

  test('C61 the tag is echoed byte for byte, 8-bit bytes and NUL included', async (t) => {
    const pre = await fresh();
    await expectExchanges(t, pre.c, pre.cap, [
      ['\x00\x01\x02\xff\xfe junk\x80\x81\r\n', '\x00\x01\x02\xff\xfe', '\x00\x01\x02\xff\xfe BAD "Unrecognized command"\r\n'],
      ['\xde\xad \xbe\xef\r\n', '\xde\xad', '\xde\xad BAD "Unrecognized command"\r\n'],
      ['\x00 NOOP\r\n', '\x00', '\x00 BAD "Please login first"\r\n'],
      ['* NOOP\r\n', '*', '* BAD "Please login first"\r\n'],
      [`\xa0\x00A AUTHENTICATE "PLAIN" {44+}\r\n${PLAIN_IR}\r\n`, '\xa0\x00A', '\xa0\x00A OK "Authenticated"\r\n'],
    ]);
    const { c, cap } = pre;
    await expectExchanges(t, c, cap, [
      ['\xc3\xa4\x00 ACTIVATE "user.lex-c61" "backend1!default" "c61\tlrs\t"\r\n', '\xc3\xa4\x00', '\xc3\xa4\x00 OK "done"\r\n'],
      [
        '\x7f\x1b FIND "user.lex-c61"\r\n',
        '\x7f\x1b',
        `${mailboxBytes('\x7f\x1b', 'user.lex-c61', 'backend1!default', 'c61\tlrs\t')}\x7f\x1b OK "Search completed"\r\n`,
      ],
      ['* NOOP\r\n+ NOOP\r\n.{} NOOP\r\n', '.{}', '* OK "Noop done"\r\n+ OK "Noop done"\r\n.{} OK "Noop done"\r\n'],
    ]);
    const binTag = Buffer.from(Array.from({ length: 64 }, (_, i) => [0x80 + i, 0x00, 0x7e][i % 3])).toString('latin1');
    await expectExchanges(t, c, cap, [
      [`${binTag} NOOP\r\n`, binTag, `${binTag} OK "Noop done"\r\n`],
      ['\xff\xfe FIND "x\r\n', '\xff\xfe', '\xff\xfe BAD "Extra arguments"\r\n'],
      ['\xc3\xa4\x00 DELETE "user.lex-c61"\r\n', '\xc3\xa4\x00', '\xc3\xa4\x00 OK "done"\r\n'],
    ]);
    c.close();
  });
}
