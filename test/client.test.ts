/**
 * `mupdated client` in scripted mode (commands on stdin) against a real
 * `mupdated master`: rendered results, JSON, exit codes, exact round-trip of
 * tricky bytes, the wire view, and the one-line errors a person gets for a
 * refused connection, a refused login, a TLS failure and a closed stream.
 * Also the pure parts: what is typed (src/client/input.ts) and how it is shown
 * (src/client/render.ts).
 */
import test from 'ava';
import fc from 'fast-check';
import { showBytes } from '../src/admin/conflict-view.js';
import { aclFromWords, parseCommand, quoteArg, splitWords, InputError } from '../src/client/input.js';
import { aclPairs, colourWanted, renderAcl, renderRows } from '../src/client/render.js';
import { freePort } from './helpers/ports.js';
import { jsonFindMailbox, runClient, startClient } from './helpers/client-run.js';
import { EXPECTED, SCRIPT } from './helpers/client-script.js';
import { RawClient } from './helpers/raw-client.js';
import { removeDir, startMupdated, type RunningMupdated } from './helpers/server.js';
import { makeSelfSignedCert, type TestCert } from './helpers/tls-cert.js';

let server: RunningMupdated;
let cert: TestCert;

test.before(async () => {
  cert = makeSelfSignedCert();
  // TLS configured (STARTTLS offered); PLAIN stays allowed on loopback without it.
  server = await startMupdated({ config: { tls_server_cert: cert.cert, tls_server_key: cert.key } });
});

test.after.always(async () => {
  await server?.stop();
  if (server) removeDir(server.dataDir);
  if (cert) removeDir(cert.dir);
});

const TIMESTAMP = /^\d\d:\d\d:\d\d\.\d{3} {2}/;

/** One line, no stack trace. */
function oneLine(t: { is: (a: unknown, b: unknown, m?: string) => void; false: (v: boolean, m?: string) => void }, stderr: string): void {
  t.is(stderr.trimEnd().split('\n').length, 1, stderr);
  t.false(/\n\s+at /.test(stderr), stderr);
}

// ---------------------------------------------------------------------------
// Typing and rendering (pure)

test('typed arguments: quoteArg writes any bytes so that splitWords reads them back exactly', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (arr) => {
      const b = Buffer.from(arr);
      const typed = quoteArg(b);
      const back = splitWords(`find ${typed}`);
      return back.length === 2 && back[1].equals(b);
    }),
    { numRuns: 2000 },
  );
  // what showBytes prints (conflicts, wire view) types back too, inside quotes when it has spaces
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (arr) => {
      const b = Buffer.from(arr.filter((c) => c !== 0x22 && c !== 0x20));
      if (b.length === 0) return true;
      const back = splitWords(showBytes(b));
      return back.length === 1 && back[0].equals(b);
    }),
    { numRuns: 1000 },
  );
  t.deepEqual(splitWords('a "b c" \\x00\\xff\\t\\\\ d\\ e "\\"q\\""'), [
    Buffer.from('a'),
    Buffer.from('b c'),
    Buffer.from([0, 0xff, 9, 0x5c]),
    Buffer.from('d e'),
    Buffer.from('"q"'),
  ]);
  t.deepEqual(splitWords('"" ä'), [Buffer.alloc(0), Buffer.from('ä', 'utf8')]);
});

test('typed arguments: mistakes are explained, not sent', (t) => {
  t.throws(() => splitWords('find "user.bob'), { instanceOf: InputError, message: /not closed/ });
  t.throws(() => splitWords('find user\\q'), { instanceOf: InputError, message: /unknown escape '\\q'/ });
  t.throws(() => splitWords('find \\x4'), { instanceOf: InputError, message: /two hex digits/ });
  t.throws(() => parseCommand('find user.bob.Sent Items'), { instanceOf: InputError, message: /usage: find NAME.*quote/ });
  t.throws(() => parseCommand('X1 FIND "user.bob"'), { instanceOf: InputError, message: /raw X1 FIND "user.bob"/ });
  t.throws(() => parseCommand('activate a b "bob"'), { instanceOf: InputError, message: /pairs/ });
  t.is(parseCommand('   # a comment'), null);
  t.is(parseCommand(''), null);
  t.deepEqual(parseCommand('RAW  X1 FIND "a b"'), { kind: 'raw', name: 'raw', line: 'X1 FIND "a b"' });
  t.deepEqual(parseCommand('watch --dump --count 3 backend1'), {
    kind: 'watch',
    name: 'watch',
    hosts: [Buffer.from('backend1')],
    dump: true,
    count: 3,
  });
});

test('activate ACL: "id rights" pairs become Cyrus id<TAB>rights<TAB>; an ACL with \\t is sent as typed', (t) => {
  t.deepEqual(aclFromWords(splitWords('"bob lrswipkxtecdan anyone p"')), Buffer.from('bob\tlrswipkxtecdan\tanyone\tp\t'));
  t.deepEqual(aclFromWords(splitWords('bob lrs anyone p')), Buffer.from('bob\tlrs\tanyone\tp\t'));
  t.deepEqual(aclFromWords(splitWords('""')), Buffer.alloc(0));
  t.deepEqual(aclFromWords(splitWords('"bob smith\\tlrs\\tx"')), Buffer.from('bob smith\tlrs\tx'));
  const cmd = parseCommand('activate user.bob backend1!default "bob lrswipkxtecdan"');
  t.deepEqual(cmd, {
    kind: 'protocol',
    name: 'activate',
    word: 'ACTIVATE',
    args: [Buffer.from('user.bob'), Buffer.from('backend1!default'), Buffer.from('bob\tlrswipkxtecdan\t')],
  });
});

test('rendering: ACL as user → rights, Cyrus form when ambiguous, colour only on a terminal without NO_COLOR', (t) => {
  const plain = { color: false };
  t.is(renderAcl(Buffer.from('bob\tlrs\tanyone\tp\t'), plain), 'bob → lrs, anyone → p');
  t.is(renderAcl(Buffer.alloc(0), plain), '(no ACL)');
  t.is(renderAcl(Buffer.from('bob lrs'), plain), '"bob lrs"');
  t.is(renderAcl(Buffer.from('a,b\tlrs\t'), plain), 'a,b\\tlrs\\t');
  t.is(aclPairs(Buffer.from('a\tb\tc\t')), null);
  const rows = renderRows(
    [
      { tag: 'C1', word: 'MAILBOX', args: [Buffer.from('user.a b'), Buffer.from('b1!p'), Buffer.from('a\tl\t')] },
      { tag: 'C1', word: 'RESERVE', args: [Buffer.from('user.long.name'), Buffer.from('b2!p')] },
      { tag: 'C1', word: 'OK', args: [Buffer.from('"list complete"')] },
    ],
    plain,
  );
  t.deepEqual(rows, ['MAILBOX  "user.a b"      b1!p  a → l', 'RESERVE  user.long.name  b2!p', 'OK list complete']);
  const coloured = renderRows([{ tag: 'C1', word: 'NO', args: [Buffer.from('"x"')] }], { color: true });
  t.is(coloured[0], '\x1b[31mNO\x1b[0m x');
  t.true(colourWanted(true, {}));
  t.false(colourWanted(true, { NO_COLOR: '1' }));
  t.true(colourWanted(true, { NO_COLOR: '' }));
  t.false(colourWanted(false, {}));
});

// ---------------------------------------------------------------------------
// Scripted mode against mupdated master

test('scripted: the shared script renders readable rows and exits 1 because one command got NO', async (t) => {
  const r = await runClient(server.port, SCRIPT);
  t.is(r.stderr, '');
  t.deepEqual(r.lines, EXPECTED);
  t.is(r.code, 1);
});

test('scripted: all OK exits 0; an unknown command or BAD exits 1 and the script goes on', async (t) => {
  const ok = await runClient(server.port, ['activate user.ok1 oksrv!default "ok lrs"', 'find user.ok1', 'noop']);
  t.is(ok.code, 0, ok.stderr);
  t.deepEqual(ok.lines, ['OK done', 'MAILBOX  user.ok1  oksrv!default  ok → lrs', 'OK Search completed', 'OK Noop done']);
  const bad = await runClient(server.port, ['frobnicate user.x', 'raw X1 FIND user.ok1', 'find user.ok1']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /error: unknown command 'frobnicate'/);
  t.deepEqual(bad.lines, ['BAD Extra arguments', 'MAILBOX  user.ok1  oksrv!default  ok → lrs', 'OK Search completed']);
});

test('scripted --json: one JSON object per response, byte strings escaped exactly', async (t) => {
  const r = await runClient(
    server.port,
    ['activate "user.j son" jsrv!p "a\\"b lrs anyone p"', 'find "user.j son"', 'delete user.j-missing', 'stats jsrv!', 'bogus'],
    { args: ['--json'] },
  );
  t.is(r.code, 1);
  t.deepEqual(
    r.lines.map((l) => JSON.parse(l) as unknown),
    [
      { command: 'activate', tag: 'C01', response: 'OK', text: 'done' },
      jsonFindMailbox('C02', 'user.j son', 'jsrv!p', 'a"b\\tlrs\\tanyone\\tp\\t', [
        ['a"b', 'lrs'],
        ['anyone', 'p'],
      ]),
      { command: 'find', tag: 'C02', response: 'OK', text: 'Search completed' },
      { command: 'delete', tag: 'C03', response: 'NO', text: "mailbox doesn't exist" },
      { command: 'stats', tag: 'C04', response: 'STATS', server: 'jsrv', partition: 'p', active: 1, reserved: 0 },
      { command: 'stats', tag: 'C04', response: 'OK', text: 'list complete' },
      { command: 'bogus', error: "unknown command 'bogus' (type help for the list)" },
    ],
  );
});

test('round trip: names and ACLs with spaces, quotes, backslashes, 8-bit bytes and TABs are stored exactly and type back', async (t) => {
  const name = Buffer.from([...Buffer.from('user.rt "q" \\ '), 0x00 + 0x80, 0xff, 0x09, ...Buffer.from('ä', 'utf8'), 0x01]);
  const acl = Buffer.from([...Buffer.from('id "x" \\ '), 0xe9, 0x09, ...Buffer.from('lrs'), 0x09]);
  const loc = Buffer.from('rtsrv!p\\q');
  const r1 = await runClient(server.port, [`activate ${quoteArg(name)} ${quoteArg(loc)} ${quoteArg(acl)}`, 'list rtsrv!']);
  t.is(r1.code, 0, r1.stderr);
  // the bytes on the server are exactly those typed
  const c = await RawClient.login(server.port);
  c.send(Buffer.concat([Buffer.from(`F1 FIND {${name.length}+}\r\n`), name, Buffer.from('\r\n')]));
  const lines = await c.readUntilTagged('F1');
  c.close();
  const wire = Buffer.from(lines.join('\n'), 'latin1');
  t.true(wire.includes(name), lines.join('\n'));
  t.true(wire.includes(acl), lines.join('\n'));
  t.true(wire.includes(loc));
  // the listed name, typed back as shown, finds the same entry
  const row = r1.lines.find((l) => l.startsWith('MAILBOX'))!;
  t.is(row, `MAILBOX  ${quoteArg(name)}  ${quoteArg(loc)}  ${quoteArg(acl)}`);
  const shownName = row.slice('MAILBOX  '.length, 'MAILBOX  '.length + quoteArg(name).length);
  const r2 = await runClient(server.port, [`find ${shownName}`], { args: ['--json'] });
  t.is(r2.code, 0, r2.stderr);
  const found = JSON.parse(r2.lines[0]) as Record<string, string>;
  t.is(found.name, showBytes(name));
  t.is(found.acl, showBytes(acl));
});

test('--raw shows each protocol line with its direction, credentials hidden', async (t) => {
  const r = await runClient(server.port, ['activate user.raw1 rawsrv!default ""', 'find user.raw1'], { args: ['--raw'] });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.lines.slice(0, 4), ['S: * AUTH "SCRAM-SHA-256" "PLAIN"', 'S: * STARTTLS', 'S: * PARTIAL-UPDATE', r.lines[3]]);
  t.regex(r.lines[3], /^S: \* OK MUPDATE "[^"]*" "mupdated" /);
  t.true(r.lines.includes('C: <SCRAM-SHA-256 credentials hidden>'));
  t.false(r.stdout.includes(Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64')));
  const i = r.lines.indexOf('C: C02 FIND "user.raw1"');
  t.true(i > 0, r.stdout);
  t.deepEqual(r.lines.slice(i, i + 9), [
    'C: C02 FIND "user.raw1"',
    'S: C02 MAILBOX {9+}',
    'S: user.raw1 {14+}',
    'S: rawsrv!default {0+}',
    'S: ',
    'S: C02 OK "Search completed"',
    'MAILBOX  user.raw1  rawsrv!default  (no ACL)',
    'OK Search completed',
    'C: Q01 LOGOUT',
  ]);
});

test('scripted watch: UPDATE on its own connection, each change printed with a timestamp', async (t) => {
  const w = startClient(server.port);
  try {
    w.type('activate user.wold wsrv!default ""');
    await w.waitFor(/OK done/);
    w.type('watch --dump --count 3 wsrv');
    await w.waitFor(/watching wsrv on .*: 1 entry now/, 15_000, 'stderr');
    const other = await runClient(server.port, [
      'activate user.w1 wsrv!default "w lrs"',
      'activate user.elsewhere othersrv!default ""',
      'reserve user.w2 wsrv!ssd',
      'delete user.w1',
    ]);
    t.is(other.code, 0, other.stderr);
    await w.waitFor(/DELETE +user\.w1/);
    w.type('find user.w2');
    const res = await w.end();
    t.is(res.code, 0, res.stderr);
    const changes = res.lines.filter((l) => TIMESTAMP.test(l)).map((l) => l.replace(TIMESTAMP, ''));
    t.deepEqual(changes, ['MAILBOX  user.w1  wsrv!default  w → lrs', 'RESERVE  user.w2  wsrv!ssd', 'DELETE   user.w1']);
    t.true(res.lines.includes('MAILBOX  user.wold  wsrv!default  (no ACL)'), res.stdout); // --dump
    t.deepEqual(res.lines.slice(-2), ['RESERVE  user.w2  wsrv!ssd', 'OK Search completed']);
    t.regex(res.stderr, /stopped watching \(3 changes\)/);
  } finally {
    w.child.kill('SIGKILL');
  }
});

// ---------------------------------------------------------------------------
// Errors a person can act on

test('connection refused: one clear line, exit 2', async (t) => {
  const port = await freePort();
  const r = await runClient(port, ['find user.x']);
  t.is(r.code, 2);
  t.is(r.stdout, '');
  t.is(r.stderr, `mupdated client: cannot connect to 127.0.0.1:${port}: connection refused (is a MUPDATE server listening there?)\n`);
});

test('login refused: one clear line, exit 2', async (t) => {
  const r = await runClient(server.port, ['find user.x'], { password: 'wrong' });
  t.is(r.code, 2);
  t.is(r.stderr, `mupdated client: login as mupdateadmin refused by 127.0.0.1:${server.port}: authentication failure\n`);
  const u = await runClient(server.port, ['find user.x'], { user: 'nobody' });
  t.is(u.code, 2);
  oneLine(t, u.stderr);
  t.regex(u.stderr, /login as nobody refused/);
});

test('TLS: an untrusted certificate is one clear line; --tls-insecure and STARTTLS work', async (t) => {
  const r = await runClient(server.port, ['noop'], { args: ['--starttls'] });
  t.is(r.code, 2);
  oneLine(t, r.stderr);
  t.regex(r.stderr, /^mupdated client: TLS with 127\.0\.0\.1:\d+ failed: .*(self[- ]signed|certificate).*--tls-insecure/);
  const ok = await runClient(server.port, ['noop'], { args: ['--starttls', '--tls-insecure', '--raw'] });
  t.is(ok.code, 0, ok.stderr);
  t.true(ok.lines.includes('C: S01 STARTTLS'), ok.stdout);
  t.true(ok.lines.includes('OK Noop done'), ok.stdout);
  t.true(ok.lines.indexOf('C: C01 NOOP') > ok.lines.indexOf('C: S01 STARTTLS'));
  // after TLS the banner comes again, without STARTTLS
  t.is(ok.lines.filter((l) => l === 'S: * STARTTLS').length, 1);
});

test('no password file and no terminal to ask on: one clear line, exit 2', async (t) => {
  const r = await runClient(server.port, ['noop'], { password: null, detached: true });
  t.is(r.code, 2);
  t.is(
    r.stderr,
    'mupdated client: no password: give --password-file FILE (standard input is not a terminal and there is no terminal to ask on)\n',
  );
});

test('bad target or options: usage error, exit 2', async (t) => {
  const r = await runClient(1, [], { host: 'a:b' });
  t.is(r.code, 2);
  oneLine(t, r.stderr);
  t.regex(r.stderr, /not HOST:PORT/);
});

test('server closed the connection: one clear line, exit 2, later commands not run; STARTTLS not offered is one line too', async (t) => {
  const own = await startMupdated();
  try {
    const notls = await runClient(own.port, ['noop'], { args: ['--starttls'] });
    t.is(notls.code, 2);
    t.is(notls.stderr, `mupdated client: 127.0.0.1:${own.port} does not offer STARTTLS (leave out --starttls to talk in plain text)\n`);
    const c = startClient(own.port);
    c.type('noop');
    await c.waitFor(/OK Noop done/);
    await own.stop();
    c.type('find user.x');
    c.type('noop');
    const r = await c.end();
    t.is(r.code, 2);
    oneLine(t, r.stderr);
    t.regex(r.stderr, new RegExp(`^mupdated client: 127\\.0\\.0\\.1:${own.port} (closed the connection|said BYE)`));
    t.deepEqual(
      r.lines.filter((l) => l.startsWith('OK')),
      ['OK Noop done'],
    );
  } finally {
    await own.stop();
    removeDir(own.dataDir);
  }
});

test('server closed the UPDATE stream while watching: one clear line, exit 2', async (t) => {
  const own = await startMupdated();
  try {
    const c = startClient(own.port);
    c.type('watch');
    await c.waitFor(/watching every server/, 15_000, 'stderr');
    await own.stop();
    const r = await c.end();
    t.is(r.code, 2);
    t.regex(r.stderr, new RegExp(`mupdated client: 127\\.0\\.0\\.1:${own.port} (closed the UPDATE stream|ended the UPDATE stream)`));
    t.false(/\n\s+at /.test(r.stderr), r.stderr);
  } finally {
    await own.stop();
    removeDir(own.dataDir);
  }
});
