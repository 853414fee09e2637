/**
 * Raw-socket abuse against a running mupdated (spec 1.7, 3.12, C13, C22, C1):
 * over-long input, huge and refused literals, NUL and binary junk, early
 * talkers, cleartext injected after STARTTLS, thousands of BADs. After each,
 * the server is still running and other connections (one opened before the
 * abuse, one opened after) keep working.
 */
import { connect } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { RawClient } from '../helpers/raw-client.js';
import { removeDir, type RunningMupdated } from '../helpers/server.js';
import { BYE_LINE, RawCapture, STATUS_LINE, l1, splitServerUnits } from '../helpers/wire-tools.js';
import { prng } from '../helpers/prng.js';
import { makeSelfSignedCert } from '../helpers/tls-cert.js';
import { LINE_ENDS, STRING_SYNTAX } from '../helpers/wire-pieces.js';
import type { ServerFactory } from '../helpers/server-factory.js';

const PLAIN_IR = Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64');
const CANARY = 'user.abuse-canary';
const CANARY_LINES = [
  `C1 MAILBOX {${CANARY.length}+}`,
  `${CANARY} {16+}`,
  'backend1!default {12+}',
  'abuse\tlrs\t\tx',
  'C1 OK "Search completed"',
];
const KIB = 1024;

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
export function abuseTests(start: ServerFactory): void {
  let server: RunningMupdated;
  let certDir: string;

  test.before(async () => {
    const cert = makeSelfSignedCert();
    certDir = cert.dir;
    server = await start({
      config: { tls_server_cert: cert.cert, tls_server_key: cert.key },
    });
    const c = await RawClient.login(server.port);
    c.send(`X1 ACTIVATE "${CANARY}" "backend1!default" "abuse\tlrs\t\tx"\r\n`);
    const answer = await c.readUntilTagged('X1');
    if (answer[0] !== 'X1 OK "done"') throw new Error(`seeding failed: ${answer.join(' | ')}`);
    c.close();
  });

  test.after.always(async () => {
    await server?.stop();
    if (certDir) removeDir(certDir);
  });

  const login = () => RawClient.login(server.port);

  /** A logged-in connection opened before the abuse; checked afterwards. */
  async function bystander(): Promise<RawClient> {
    return login();
  }

  /** The server process is alive, the bystander still answers, and a brand-new connection logs in and FINDs. */
  async function othersStillWork(t: ExecutionContext, before: RawClient): Promise<void> {
    t.is(server.child.exitCode, null, 'server process still running');
    before.send('B1 NOOP\r\nC1 FIND "user.abuse-canary"\r\n');
    t.deepEqual(await before.readUntilTagged('B1'), ['B1 OK "Noop done"']);
    t.deepEqual(await before.readUntilTagged('C1'), CANARY_LINES);
    before.close();
    const after = await login();
    after.send('C1 FIND "user.abuse-canary"\r\n');
    t.deepEqual(await after.readUntilTagged('C1'), CANARY_LINES);
    after.close();
  }

  /** Sends the payload on a fresh connection (logged in or not) and expects exactly `* BYE "<text>"` and a close. */
  async function expectByeAndClose(t: ExecutionContext, payload: string | Buffer, loggedIn: boolean, what: string): Promise<void> {
    const c = loggedIn ? await login() : await RawClient.connect(server.port);
    const cap = new RawCapture(c);
    if (!loggedIn) {
      await c.readBanner();
      cap.take();
    }
    c.send(payload);
    t.true(await c.waitClosed(20_000), `${what}: connection closed`);
    t.regex(l1(cap.take()), BYE_LINE, `${what}: exactly one * BYE "<text>"`);
  }

  test.serial('C13 an over-long line without LF past the 512 KiB command cap gets * BYE; others keep working', async (t) => {
    const before = await bystander();
    // junk arguments after a command: skipped to the line end, which never comes
    await expectByeAndClose(t, `X1 NOOP ${'a'.repeat(600 * KIB)}`, true, 'NOOP + 600 KiB junk');
    await expectByeAndClose(t, `X2 FIND ${'a'.repeat(600 * KIB)}`, false, 'FIND atom of 600 KiB before login');
    // well-formed strings, each within the string cap, adding up past the command cap
    const host = 'h'.repeat(128 * KIB);
    await expectByeAndClose(t, `X3 UPDATE${` {${host.length}+}\r\n${host}`.repeat(5)}\r\n`, true, 'UPDATE with 640 KiB of hosts');
    await expectByeAndClose(t, 'a'.repeat(600 * KIB), true, '600 KiB without a space');
    await othersStillWork(t, before);
  });

  test.serial('C13 {999999999+} gets * BYE (before and after login); others keep working', async (t) => {
    const before = await bystander();
    await expectByeAndClose(t, 'X1 FIND {999999999+}\r\n', true, 'FIND after login');
    await expectByeAndClose(t, 'X1 FIND {999999999+}\r\n', false, 'FIND before login');
    await expectByeAndClose(t, 'X1 ACTIVATE "a" "b" {999999999+}\r\n', true, 'last ACTIVATE argument');
    await expectByeAndClose(t, 'X1 FOO {999999999+}\r\n', true, 'inside a refused command');
    await othersStillWork(t, before);
  });

  test.serial('C13 a refused {n} (over the cap) gets a tagged BAD without + go ahead and the connection reads on', async (t) => {
    const before = await bystander();
    const c = await login();
    const cap = new RawCapture(c);
    c.send('X1 FIND {999999999}\r\n');
    const bad1 = await c.readLine();
    t.regex(bad1, /^X1 BAD "(?:[^"\\]|\\.)*"$/);
    t.true(await c.expectSilence(300), 'no go-ahead');
    c.send('X2 NOOP\r\nX3 FIND {99999999999999999999}\r\nX4 FIND "user.abuse-canary"\r\n');
    t.deepEqual(await c.readUntilTagged('X2'), ['X2 OK "Noop done"']);
    t.regex((await c.readUntilTagged('X3'))[0], /^X3 BAD "(?:[^"\\]|\\.)*"$/);
    t.is((await c.readUntilTagged('X4')).pop(), 'X4 OK "Search completed"');
    t.false(l1(cap.all()).includes('+ go ahead'));
    c.close();
    await othersStillWork(t, before);
  });

  test.serial(
    'a {n} within the string cap but past what is left of the command cap (4 KiB before login) gets a tagged BAD without + go ahead',
    async (t) => {
      const c = await RawClient.connect(server.port);
      await c.readBanner();
      const cap = new RawCapture(c);
      c.send('A1 AUTHENTICATE "PLAIN" {6000}\r\n');
      t.regex(await c.readLine(), /^A1 BAD "(?:[^"\\]|\\.)*"$/);
      t.true(await c.expectSilence(300), 'no go-ahead');
      // The connection reads on: the next line is a command of its own.
      c.send(`A2 AUTHENTICATE "PLAIN" {44+}\r\n${PLAIN_IR}\r\n`);
      t.deepEqual(await c.readUntilTagged('A2'), ['A2 OK "Authenticated"']);
      t.false(l1(cap.all()).includes('+ go ahead'));
      c.close();
    },
  );

  test.serial('NUL bytes are handled as bytes: echoed in tags, refused in strings, never cut', async (t) => {
    const before = await bystander();
    const c = await RawClient.connect(server.port);
    const cap = new RawCapture(c);
    await c.readBanner();
    cap.take();
    c.send('\x00\x00\x00\r\n\x00 NOOP\r\n\x00\x00 \x00\r\n');
    await c.readUntilTagged('\x00\x00');
    t.is(l1(cap.take()), '* BAD "Need command"\r\n\x00 BAD "Please login first"\r\n\x00\x00 BAD "Unrecognized command"\r\n');
    c.send(`\x00A AUTHENTICATE "PLAIN" {44+}\r\n${PLAIN_IR}\r\n`);
    t.deepEqual(await c.readUntilTagged('\x00A'), ['\x00A OK "Authenticated"']);
    c.send(
      'X1 FIND "user.abuse-canary\x00"\r\nX2 FIND {18+}\r\nuser.abuse-canary\x00\r\nX3 ACTIVATE "user.abuse\x00cut" "backend1!default" ""\r\n' +
        'X4 FIND "user.abuse"\r\n',
    );
    t.deepEqual(await c.readUntilTagged('X4'), [
      'X1 BAD "Extra arguments"',
      'X2 BAD "Extra arguments"',
      'X3 BAD "Missing arguments"',
      'X4 OK "Search completed"',
    ]);
    c.close();
    await othersStillWork(t, before);
  });

  /** Every unit the server sent on a junk connection is a status line, a go-ahead, or an empty SASL challenge. */
  function checkJunkAnswers(t: ExecutionContext, bytes: Buffer): void {
    const { units } = splitServerUnits(bytes);
    for (const u of units) {
      const s = l1(u);
      if (s === '+ go ahead\r\n' || s === '\r\n') continue;
      if (!STATUS_LINE.test(s)) {
        t.fail(`unexpected server output on the junk connection: ${JSON.stringify(s.slice(0, 200))}`);
        return;
      }
    }
    t.pass();
  }

  test.serial(
    'random binary junk (bounded) gets only well-formed answers, at most a * BYE for that connection; others keep working',
    async (t) => {
      const before = await bystander();
      const rand = prng(0x5eed);
      const pieces = [
        ...LINE_ENDS,
        ' ',
        ...STRING_SYNTAX,
        '\x00',
        '(',
        ')',
        '{5+}\r\n',
        '{3}\r\n',
        '{0}\r\n',
        '{99999+}\r\n',
        'X ',
        'NOOP',
        'FIND ',
        'LIST ',
        'UPDATE ',
        'AUTHENTICATE ',
        '"PLAIN" ',
      ];
      for (let conn = 0; conn < 6; conn++) {
        const c = await RawClient.connect(server.port);
        const cap = new RawCapture(c);
        await c.readBanner();
        cap.take();
        for (let packet = 0; packet < 40 && !c.ended; packet++) {
          const parts: Buffer[] = [];
          const n = 1 + Math.floor(rand() * 40);
          for (let i = 0; i < n; i++) {
            if (conn % 2 === 0 || rand() < 0.5) {
              parts.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))));
            } else {
              parts.push(Buffer.from(pieces[Math.floor(rand() * pieces.length)], 'latin1'));
            }
          }
          c.send(Buffer.concat(parts));
        }
        // whatever state the junk left, the server must not have died; give it a moment to answer
        await c.expectSilence(200);
        c.send('\r\n'.repeat(3));
        await c.expectSilence(200);
        const out = cap.take();
        t.log(`junk connection ${conn}: ${splitServerUnits(out).units.length} answers${c.ended ? ', closed' : ''}`);
        checkJunkAnswers(t, out);
        const byeAt = l1(out).indexOf('* BYE ');
        if (byeAt >= 0) {
          t.true(await c.waitClosed(15_000), 'closed after its * BYE');
          t.regex(l1(out).slice(byeAt), BYE_LINE, 'nothing after the * BYE');
        }
        c.close();
        t.is(server.child.exitCode, null, `server alive after junk connection ${conn}`);
      }
      await othersStillWork(t, before);
    },
  );

  test.serial('an early talker (commands sent before the banner is read) is answered in order after the banner', async (t) => {
    const before = await bystander();
    const received: Buffer[] = [];
    const sock = connect({ port: server.port, host: '127.0.0.1' });
    // written before the connection is even established
    sock.write(
      Buffer.from(
        ['E1 NOOP', `A01 AUTHENTICATE "PLAIN" {44+}\r\n${PLAIN_IR}`, 'E2 NOOP', 'E3 FIND "user.abuse-canary"', 'E4 LOGOUT', ''].join(
          '\r\n',
        ),
        'latin1',
      ),
    );
    sock.on('data', (d: Buffer) => received.push(d));
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 15_000);
      sock.on('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
      sock.on('error', () => undefined);
    });
    t.true(closed, 'closed after LOGOUT');
    const text = l1(Buffer.concat(received));
    t.regex(
      text,
      /^\* AUTH "SCRAM-SHA-256" "PLAIN"\r\n\* STARTTLS\r\n(?:\* COMPRESS "DEFLATE"\r\n)?\* PARTIAL-UPDATE\r\n\* OK MUPDATE "[^"]*" "[^"]*" "[^"]*" "\(master\)"\r\n/,
    );
    const afterBanner = text.slice(text.indexOf('"(master)"\r\n') + '"(master)"\r\n'.length);
    t.is(
      afterBanner,
      [
        'E1 BAD "Please login first"',
        'A01 OK "Authenticated"',
        'E2 OK "Noop done"',
        ...CANARY_LINES.slice(0, 4).map((l, i) => (i === 0 ? l.replace('C1', 'E3') : l)),
        'E3 OK "Search completed"',
        'E4 OK "bye-bye"',
        '',
      ].join('\r\n'),
    );
    await othersStillWork(t, before);
  });

  test.serial(
    'C22 cleartext pipelined after STARTTLS is never executed; TLS works and the banner comes again without * STARTTLS (C1 with TLS)',
    async (t) => {
      const before = await bystander();
      const c = await RawClient.connect(server.port);
      const cap = new RawCapture(c);
      await c.readBanner();
      t.regex(
        l1(cap.take()),
        /^\* AUTH "SCRAM-SHA-256" "PLAIN"\r\n\* STARTTLS\r\n(?:\* COMPRESS "DEFLATE"\r\n)?\* PARTIAL-UPDATE\r\n\* OK MUPDATE "[^"\\]*" "[^"\\]*" "[^"\\]*" "\(master\)"\r\n$/,
        'with TLS configured, * STARTTLS comes between * AUTH and the rest',
      );
      c.send('S01 STARTTLS\r\nX1 LOGOUT\r\n');
      t.is(await c.readLine(), 'S01 OK "Begin TLS negotiation now"');
      t.true(await c.expectSilence(500), 'X1 not answered in cleartext');
      t.is(l1(cap.take()), 'S01 OK "Begin TLS negotiation now"\r\n');
      t.false(c.ended, 'X1 LOGOUT not executed');
      await c.startTls();
      const banner = await c.readBanner();
      t.is(banner.length >= 3, true);
      t.is(banner[0], '* AUTH "SCRAM-SHA-256" "PLAIN"');
      t.false(banner.includes('* STARTTLS'), 'no * STARTTLS under TLS');
      t.is(banner[banner.length - 2], '* PARTIAL-UPDATE');
      t.regex(banner[banner.length - 1], /^\* OK MUPDATE "[^"\\]*" "[^"\\]*" "[^"\\]*" "\(master\)"$/);
      c.send(`A01 AUTHENTICATE "PLAIN" {44+}\r\n${PLAIN_IR}\r\n`);
      t.is(await c.readLine(), 'A01 OK "Authenticated"', 'the first answer under TLS is to A01, not to X1');
      c.send('C1 FIND "user.abuse-canary"\r\nS02 STARTTLS\r\n');
      t.deepEqual(await c.readUntilTagged('C1'), CANARY_LINES);
      t.is(await c.readLine(), 'S02 BAD "Can\'t Starttls after authentication"');
      c.send('Q01 LOGOUT\r\n');
      t.is(await c.readLine(), 'Q01 OK "bye-bye"');
      t.true(await c.waitClosed());
      await othersStillWork(t, before);
    },
  );

  test.serial('C22 a failed TLS handshake (plaintext after STARTTLS OK) closes that connection without executing anything', async (t) => {
    const before = await bystander();
    const c = await RawClient.connect(server.port);
    await c.readBanner();
    c.send('S01 STARTTLS\r\n');
    t.is(await c.readLine(), 'S01 OK "Begin TLS negotiation now"');
    const cap = new RawCapture(c);
    c.send('X1 DELETE "user.abuse-canary"\r\nX2 NOOP\r\n');
    t.true(await c.waitClosed(15_000), 'closed');
    t.false(/X[12] /.test(l1(cap.all())), 'nothing answered in cleartext');
    await othersStillWork(t, before); // the canary is still there
  });

  test.serial(
    'thousands of BADs: the server answers them in order or closes that client with * BYE, and keeps serving others',
    async (t) => {
      const before = await bystander();
      const c = await RawClient.connect(server.port);
      await c.readBanner();
      const total = 3000;
      const lines = Array.from({ length: total }, (_, i) => `B${i} FOO\r\n`).join('');
      for (let off = 0; off < lines.length; off += 8 * KIB) c.send(lines.slice(off, off + 8 * KIB));
      let answered = 0;
      let bye = '';
      for (let i = 0; i < total + 1; i++) {
        let line: string;
        try {
          line = await c.readLine(15_000);
        } catch {
          break;
        }
        if (line.startsWith('* BYE ')) {
          bye = line;
          break;
        }
        if (line !== `B${answered} BAD "Unrecognized command"`) {
          t.fail(`unexpected line ${JSON.stringify(line)} after ${answered} BADs`);
          break;
        }
        answered++;
        if (answered === total) break;
      }
      t.log(`${answered} BADs answered${bye ? `, then ${bye}` : ''}`);
      if (answered < total) {
        t.regex(`${bye}\r\n`, BYE_LINE, 'a client that is cut off gets * BYE first');
        t.true(await c.waitClosed(15_000));
        t.true(answered >= 1000, `at least max_bad_commands (1000) BADs answered first (got ${answered})`);
      } else {
        t.pass('all answered');
      }
      c.close();
      await othersStillWork(t, before);
    },
  );
}
