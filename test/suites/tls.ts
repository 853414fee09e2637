/**
 * STARTTLS (spec 2.1, 3.12; checklist C22) and the plaintext policy for PLAIN
 * (spec 2.3, 3.2). Every TLS session runs over a real loopback socket against a
 * real server using a self-signed certificate made for this run.
 */
import test from 'ava';
import type { Socket } from 'node:net';
import { RawClient } from '../helpers/raw-client.js';
import { removeDir, type RunningMupdated } from '../helpers/server.js';
import { authPlainCommand } from '../helpers/plain-auth.js';
import { makeSelfSignedCert, type TestCert } from '../helpers/tls-cert.js';
import type { ServerFactory } from '../helpers/server-factory.js';

const OK_BANNER = /^\* OK MUPDATE "[^"]*" "[^"]*" "[^"]*" "\(master\)"$/;

/** The lines RawClient returns for `<tag> MAILBOX name location acl`. */
function mailbox(tag: string, name: string, location: string, acl: string): string[] {
  return [`${tag} MAILBOX {${name.length}+}`, `${name} {${location.length}+}`, `${location} {${acl.length}+}`, acl];
}

/** Sends one command line and returns every line up to its tagged answer. */
async function command(c: RawClient, tag: string, text: string): Promise<string[]> {
  c.send(`${tag} ${text}\r\n`);
  return c.readUntilTagged(tag);
}

/** Connects, checks the pre-TLS banner, runs STARTTLS and the handshake; returns the post-TLS banner. */
async function connectTls(port: number): Promise<{ c: RawClient; raw: Socket; banner: string[] }> {
  const c = await RawClient.connect(port);
  const first = await c.readBanner();
  if (!first.includes('* STARTTLS')) throw new Error(`no STARTTLS in banner: ${JSON.stringify(first)}`);
  c.send('S01 STARTTLS\r\n');
  const ok = await c.readLine();
  if (ok !== 'S01 OK "Begin TLS negotiation now"') throw new Error(`STARTTLS answered ${ok}`);
  const raw = c.socket;
  await c.startTls();
  return { c, raw, banner: await c.readBanner() };
}

/** Checks the banner shape of spec 2.1; `starttls` says whether `* STARTTLS` must be present. */
function assertBanner(t: import('ava').ExecutionContext, lines: string[], starttls: boolean): void {
  t.is(lines[0], '* AUTH "SCRAM-SHA-256" "PLAIN"', 'first line: * AUTH with its quoted mechanisms');
  let i = 1;
  if (starttls) {
    t.is(lines[i], '* STARTTLS', 'STARTTLS right after AUTH');
    i++;
  } else {
    t.false(lines.includes('* STARTTLS'), 'no * STARTTLS');
  }
  if (lines[i] === '* COMPRESS "DEFLATE"') i++;
  t.is(lines[i], '* PARTIAL-UPDATE');
  t.is(i + 2, lines.length, `no other banner lines: ${JSON.stringify(lines)}`);
  t.regex(lines[lines.length - 1], OK_BANNER);
}

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
/** Logs in as the admin with PLAIN under `tag` and checks the tagged OK. */
async function adminLogin(t: import('ava').ExecutionContext, c: RawClient, tag: string): Promise<void> {
  c.send(authPlainCommand(tag, 'mupdateadmin', 'secret'));
  t.is(await c.readLine(), `${tag} OK "Authenticated"`);
}

export function tlsTests(start: ServerFactory): void {
  let cert: TestCert;
  /** TLS configured (certificate and key), default plaintext policy. */
  let tlsServer: RunningMupdated;
  /** No TLS configured. */
  let plainServer: RunningMupdated;

  test.before(async () => {
    cert = makeSelfSignedCert();
    [tlsServer, plainServer] = await Promise.all([start({ config: { tls_server_cert: cert.cert, tls_server_key: cert.key } }), start()]);
  });

  test.after.always(async () => {
    await Promise.all([tlsServer?.stop(), plainServer?.stop()]);
    for (const s of [tlsServer, plainServer]) if (s) removeDir(s.dataDir);
    if (cert) removeDir(cert.dir);
  });

  test('C22 with TLS configured the banner lists * STARTTLS between * AUTH and * PARTIAL-UPDATE', async (t) => {
    const c = await RawClient.connect(tlsServer.port);
    assertBanner(t, await c.readBanner(), true);
    c.close();
  });

  test('C22 STARTTLS is answered OK "Begin TLS negotiation now", the handshake completes and the banner comes again without * STARTTLS', async (t) => {
    const c = await RawClient.connect(tlsServer.port);
    await c.readBanner();
    c.send('S01 STARTTLS\r\n');
    t.is(await c.readLine(), 'S01 OK "Begin TLS negotiation now"');
    t.is(c.takeBuffered().length, 0, 'nothing in cleartext after the OK line');
    await c.startTls();
    t.true(c.socket.constructor.name === 'TLSSocket' && (c.socket as import('node:tls').TLSSocket).encrypted);
    assertBanner(t, await c.readBanner(), false);
    // The session works normally under TLS.
    t.deepEqual(await command(c, 'N01', 'NOOP'), ['N01 BAD "Please login first"']);
    await adminLogin(t, c, 'A01');
    t.deepEqual(await command(c, 'N02', 'NOOP'), ['N02 OK "Noop done"']);
    t.deepEqual(await command(c, 'Q01', 'LOGOUT'), ['Q01 OK "bye-bye"']);
    t.true(await c.waitClosed());
  });

  test('C22 bytes pipelined after STARTTLS are discarded: an injected NOOP, AUTHENTICATE and ACTIVATE never run', async (t) => {
    const c = await RawClient.connect(tlsServer.port);
    await c.readBanner();
    const injected =
      'N01 NOOP\r\n' + authPlainCommand('A01', 'mupdateadmin', 'secret') + 'X01 ACTIVATE "user.c22.injected" "tlsinject!default" ""\r\n';
    c.send(`S01 STARTTLS\r\n${injected}`); // one write: arrives together with the STARTTLS line
    t.is(await c.readLine(), 'S01 OK "Begin TLS negotiation now"');
    t.is(c.takeBuffered().length, 0, 'no answer to the injected commands in cleartext');
    await c.startTls();
    assertBanner(t, await c.readBanner(), false);
    // Not logged in: the injected AUTHENTICATE did not run, and nothing answers N01/A01/X01.
    t.deepEqual(await command(c, 'N02', 'NOOP'), ['N02 BAD "Please login first"']);
    await adminLogin(t, c, 'A02');
    t.deepEqual(await command(c, 'F01', 'FIND "user.c22.injected"'), ['F01 OK "Search completed"']);
    c.close();
  });

  test('C22 STARTTLS after authentication gets BAD "Can\'t Starttls after authentication" and the session goes on', async (t) => {
    const c = await RawClient.login(tlsServer.port);
    c.send('S01 STARTTLS\r\nN01 NOOP\r\n');
    t.deepEqual(await c.readUntilTagged('S01'), ['S01 BAD "Can\'t Starttls after authentication"']);
    t.deepEqual(await c.readUntilTagged('N01'), ['N01 OK "Noop done"'], 'a refused STARTTLS discards nothing');
    c.close();
  });

  test('C22 a second STARTTLS under TLS gets BAD "Already did a successful Starttls"', async (t) => {
    const { c } = await connectTls(tlsServer.port);
    c.send('S02 STARTTLS\r\nN01 NOOP\r\n');
    t.deepEqual(await c.readUntilTagged('S02'), ['S02 BAD "Already did a successful Starttls"']);
    t.deepEqual(await c.readUntilTagged('N01'), ['N01 BAD "Please login first"'], 'the next command is answered');
    await adminLogin(t, c, 'A01');
    t.deepEqual(await command(c, 'N02', 'NOOP'), ['N02 OK "Noop done"']);
    c.close();
  });

  test('C22 a failed handshake closes only that connection, sends nothing more and executes nothing sent after STARTTLS', async (t) => {
    const stream = await RawClient.login(tlsServer.port);
    t.deepEqual(await command(stream, 'U01', 'UPDATE "tlsgarbage"'), ['U01 OK "streaming starts"']);

    const c = await RawClient.connect(tlsServer.port);
    await c.readBanner();
    c.send('S01 STARTTLS\r\n');
    t.is(await c.readLine(), 'S01 OK "Begin TLS negotiation now"');
    // Cleartext instead of a ClientHello: a login and a change that must never run.
    c.send(authPlainCommand('A01', 'mupdateadmin', 'secret') + 'X01 ACTIVATE "user.c22.garbage" "tlsgarbage!default" ""\r\nN01 NOOP\r\n');
    t.true(await c.waitClosed(10_000), 'the server closes the connection');
    t.is(c.takeBuffered().toString('latin1'), '', 'nothing was sent after the OK');

    // Nothing ran, and the other connections are untouched.
    const check = await RawClient.login(tlsServer.port);
    t.deepEqual(await command(check, 'F01', 'FIND "user.c22.garbage"'), ['F01 OK "Search completed"']);
    t.deepEqual(await command(check, 'X02', 'ACTIVATE "user.c22.garbage2" "tlsgarbage!default" ""'), ['X02 OK "done"']);
    t.deepEqual(await command(stream, 'N02', 'NOOP'), [
      ...mailbox('U01', 'user.c22.garbage2', 'tlsgarbage!default', ''),
      'N02 OK "Noop done"',
    ]);
    t.is(tlsServer.child.exitCode, null, 'the server is still running');
    stream.close();
    check.close();
  });

  test('C22 ending 20 TLS sessions (LOGOUT or abrupt close) affects no other connection', async (t) => {
    const stream = await RawClient.login(tlsServer.port);
    t.deepEqual(await command(stream, 'U01', 'UPDATE "tlsmany"'), ['U01 OK "streaming starts"']);
    const idle = await RawClient.login(tlsServer.port);
    const { c: tlsIdle } = await connectTls(tlsServer.port);
    await adminLogin(t, tlsIdle, 'A01');

    for (let round = 0; round < 4; round++) {
      // 5 concurrent TLS sessions per round, ended in different ways.
      await Promise.all(
        [0, 1, 2, 3, 4].map(async (k) => {
          const i = round * 5 + k;
          const { c, raw, banner } = await connectTls(tlsServer.port);
          t.false(banner.includes('* STARTTLS'));
          if (i % 4 === 3) {
            // abrupt close right after the handshake
            c.close();
            raw.destroy();
            return;
          }
          await adminLogin(t, c, 'A01');
          t.deepEqual(await command(c, 'N01', 'NOOP'), ['N01 OK "Noop done"']);
          if (i % 2 === 0) {
            t.deepEqual(await command(c, 'Q01', 'LOGOUT'), ['Q01 OK "bye-bye"']);
            t.true(await c.waitClosed());
          } else {
            // abrupt close after login
            c.close();
            raw.destroy();
          }
        }),
      );
    }
    // A plain session ending after the TLS ones (once enough to crash Cyrus).
    const plain = await RawClient.login(tlsServer.port);
    t.deepEqual(await command(plain, 'Q01', 'LOGOUT'), ['Q01 OK "bye-bye"']);
    t.true(await plain.waitClosed());

    const writer = await RawClient.login(tlsServer.port);
    t.deepEqual(await command(writer, 'X01', 'ACTIVATE "user.c22.after" "tlsmany!default" "a\tlr\t"'), ['X01 OK "done"']);
    t.deepEqual(
      await command(stream, 'N01', 'NOOP'),
      [...mailbox('U01', 'user.c22.after', 'tlsmany!default', 'a\tlr\t'), 'N01 OK "Noop done"'],
      'the streaming connection is still up and gets the later change',
    );
    t.deepEqual(await command(idle, 'N01', 'NOOP'), ['N01 OK "Noop done"']);
    t.deepEqual(await command(tlsIdle, 'F01', 'FIND "user.c22.after"'), [
      ...mailbox('F01', 'user.c22.after', 'tlsmany!default', 'a\tlr\t'),
      'F01 OK "Search completed"',
    ]);
    t.is(tlsServer.child.exitCode, null, 'the server is still running');
    for (const c of [stream, idle, tlsIdle, writer]) c.close();
  });

  test('C22 without TLS configured, STARTTLS gets BAD "Unrecognized command" and pipelined commands are answered', async (t) => {
    const c = await RawClient.connect(plainServer.port);
    assertBanner(t, await c.readBanner(), false);
    c.send('S1 STARTTLS\r\nN1 NOOP\r\nL1 LIST\r\n');
    t.deepEqual(await c.readUntilTagged('S1'), ['S1 BAD "Unrecognized command"']);
    t.deepEqual(await c.readUntilTagged('N1'), ['N1 BAD "Please login first"']);
    t.deepEqual(await c.readUntilTagged('L1'), ['L1 BAD "Please login first"']);
    c.send(`S2 STARTTLS\r\n${authPlainCommand('A01', 'mupdateadmin', 'secret')}S3 STARTTLS\r\nN2 NOOP\r\n`);
    t.deepEqual(await c.readUntilTagged('S2'), ['S2 BAD "Unrecognized command"']);
    t.deepEqual(await c.readUntilTagged('A01'), ['A01 OK "Authenticated"']);
    t.deepEqual(await c.readUntilTagged('S3'), ['S3 BAD "Unrecognized command"']);
    t.deepEqual(await c.readUntilTagged('N2'), ['N2 OK "Noop done"']);
    c.close();
  });

  test('plaintext policy: on loopback without TLS (allowplaintext not set) the banner offers PLAIN and PLAIN succeeds', async (t) => {
    const c = await RawClient.connect(tlsServer.port);
    const banner = await c.readBanner();
    t.is(banner[0], '* AUTH "SCRAM-SHA-256" "PLAIN"');
    await adminLogin(t, c, 'A01');
    t.deepEqual(await command(c, 'N01', 'NOOP'), ['N01 OK "Noop done"']);
    c.close();
  });

  test('plaintext policy: under TLS the banner offers PLAIN and PLAIN succeeds (initial response as quoted string)', async (t) => {
    const { c, banner } = await connectTls(tlsServer.port);
    t.is(banner[0], '* AUTH "SCRAM-SHA-256" "PLAIN"');
    const ir = Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64');
    c.send(`A01 AUTHENTICATE "PLAIN" "${ir}"\r\n`);
    t.is(await c.readLine(), 'A01 OK "Authenticated"');
    t.deepEqual(await command(c, 'F01', 'FIND "user.c22.none"'), ['F01 OK "Search completed"']);
    c.close();
  });
}
