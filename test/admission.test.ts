/**
 * Slots and guesses strangers can take (issue 11, finding 2): the
 * connections one address may hold before logging in, the login deadline,
 * the small input cap before login, and the failed-login budget per address.
 * Other client addresses are other loopback addresses (127.0.0.2, ...).
 */
import test from 'ava';
import { RawClient } from './helpers/raw-client.js';
import { serverScope, singleMaster } from './helpers/server-factory.js';
import { inBatches, login, status } from './helpers/directory.js';
import { authPlainCommand } from './helpers/plain-auth.js';
import { hostKey } from '../src/mupdate/admission.js';

const withServer = serverScope(singleMaster);

const STRANGER = '127.0.0.2';

/** The whole of what a connection gets until the server closes it (bounded). */
async function untilClosed(c: RawClient, timeoutMs = 30_000): Promise<{ text: string; closed: boolean }> {
  const closed = await c.waitClosed(timeoutMs);
  return { text: c.takeBuffered().toString('latin1'), closed };
}

async function loginFrom(c: RawClient, tag: string, password: string): Promise<string> {
  c.send(authPlainCommand(tag, 'mupdateadmin', password));
  return c.readLine(30_000);
}

test('an admin still logs in and writes while one address holds max_connections_per_host (default 256) connections not logged in', async (t) => {
  const PER_HOST = 256;
  await withServer({}, async (s) => {
    const held = await inBatches(
      Array.from({ length: PER_HOST }, (_, i) => i),
      32,
      () => RawClient.connectWithBanner(s.port, STRANGER),
    );
    t.is(held.length, PER_HOST);
    // one more from that address: only * BYE, then closed
    const extra = await RawClient.connect(s.port, '127.0.0.1', STRANGER);
    const refused = await untilClosed(extra);
    t.true(refused.closed);
    t.regex(refused.text, /^\* BYE "[^"\r\n]*"\r\n$/, `exactly one BYE line: ${JSON.stringify(refused.text)}`);
    await s.waitForLog(/connection refused: this address holds the most connections not logged in/);
    // other addresses are not affected: an admin logs in and writes
    const admin = await login(s.port);
    t.is(await status(admin, 'W1', 'ACTIVATE "user.admission.a" "backend1!default" ""'), 'W1 OK "done"');
    const third = await RawClient.connectWithBanner(s.port, '127.0.0.3');
    t.is(await loginFrom(third, 'A1', 'secret'), 'A1 OK "Authenticated"');
    // a connection of the full address that logs in gives its slot back: the address may connect again
    t.is(await loginFrom(held[0], 'A2', 'secret'), 'A2 OK "Authenticated"');
    const again = await RawClient.connectWithBanner(s.port, STRANGER);
    t.is(await loginFrom(again, 'A3', 'secret'), 'A3 OK "Authenticated"');
    // and a closed one too
    held[1].close();
    held[2].close();
    const fresh = await (async () => {
      for (let i = 0; i < 50; i++) {
        const c = await RawClient.connect(s.port, '127.0.0.1', STRANGER);
        const l = await c.readLine(30_000).catch(() => '');
        if (l.startsWith('* AUTH')) return c;
        c.close();
        await new Promise((r) => setTimeout(r, 100));
      }
      return null;
    })();
    t.truthy(fresh, 'a slot freed by a closed connection is taken again');
    t.is(s.child.exitCode, null);
    for (const c of [...held, admin, third, again, fresh]) c?.close();
  });
});

test('login_timeout: a connection that has not logged in gets * BYE and is closed; logged-in ones stay', async (t) => {
  // long enough for a login on a busy test machine, short enough to wait for
  await withServer({ config: { login_timeout: 5 } }, async (s) => {
    const logged = await login(s.port);
    const idle = await RawClient.connectWithBanner(s.port);
    const { text, closed } = await untilClosed(idle);
    t.true(closed, 'closed by the server');
    t.regex(text, /^\* BYE "[^"\r\n]*"\r\n$/);
    await s.waitForLog(/"msg":"login timeout"/);
    // past the timeout, the logged-in connection (older than the closed one) still works
    t.is(await status(logged, 'N1', 'NOOP'), 'N1 OK "Noop done"');
    t.false(logged.ended);
    logged.close();
  });
});

test('before login a command over max_command_before_login (default 4096 bytes) gets * BYE; after login the same command is answered', async (t) => {
  await withServer({}, async (s) => {
    const long = `X1 FIND "user.${'a'.repeat(5000)}"\r\n`;
    const stranger = await RawClient.connectWithBanner(s.port);
    stranger.send(long);
    const { text, closed } = await untilClosed(stranger);
    t.true(closed);
    t.regex(text, /^\* BYE "[^"\r\n]*"\r\n$/);
    // a SASL response line over the cap, too
    const sasl = await RawClient.connectWithBanner(s.port);
    sasl.send('A1 AUTHENTICATE "PLAIN"\r\n');
    t.is(await sasl.readLine(30_000), '');
    sasl.send(`${'QUFB'.repeat(1500)}\r\n`);
    const saslEnd = await untilClosed(sasl);
    t.true(saslEnd.closed);
    t.regex(saslEnd.text, /^\* BYE "[^"\r\n]*"\r\n$/);
    // within the cap, before login: the usual answer
    const small = await RawClient.connectWithBanner(s.port);
    small.send('X2 FIND "user.a"\r\n');
    t.is(await small.readLine(30_000), 'X2 BAD "Please login first"');
    // after login the limits are the usual ones
    t.is(await loginFrom(small, 'A2', 'secret'), 'A2 OK "Authenticated"');
    small.send(long);
    t.deepEqual(await small.readUntilTagged('X1', 30_000), ['X1 OK "Search completed"']);
    small.close();
  });
});

test('max_failed_logins_per_host: the connections of one address together get that many password checks, further ones wait for the budget to refill; other addresses log in at once', async (t) => {
  // 3 per minute: the next check of that address is 20 s away
  await withServer({ config: { max_failed_logins_per_host: 3 } }, async (s) => {
    // eight wrong passwords at once, each on its own connection: three are checked and answered
    const guessers = await Promise.all(Array.from({ length: 8 }, () => RawClient.connectWithBanner(s.port, STRANGER)));
    guessers.forEach((c, i) => c.send(authPlainCommand(`A${i}`, 'mupdateadmin', `wrong${i}`)));
    await s.waitForLog(/failed-login budget of this address spent, password check waits/);
    // within 15 s (the refill is 20 s away): exactly three answers, the credential failure
    const answers = await Promise.all(guessers.map((c) => c.readLine(15_000).catch(() => null)));
    const answered = answers.filter((a): a is string => a !== null);
    t.deepEqual(
      answered.map((a) => a.replace(/^A\d /, '')),
      Array(3).fill('NO "authentication failure"'),
      answers.join(' | '),
    );
    const waiting = guessers.filter((_, i) => answers[i] === null);
    t.is(waiting.length, 5);
    t.false(
      waiting.some((c) => c.ended),
      'the waiting ones are not closed',
    );
    // another address is not affected
    const other = await RawClient.connectWithBanner(s.port, '127.0.0.3');
    t.is(await loginFrom(other, 'A1', 'secret'), 'A1 OK "Authenticated"');
    // those waiting are still unanswered and not closed
    for (const c of waiting) t.true(await c.expectSilence(200));
    for (const c of [...guessers, other]) c.close();
  });
});

test('addresses are counted per host: IPv4 as is (also mapped into IPv6), IPv6 by its /64', (t) => {
  t.is(hostKey('192.0.2.7'), '192.0.2.7');
  t.is(hostKey('::ffff:192.0.2.7'), '192.0.2.7');
  t.is(hostKey('2001:db8:0:1::5'), hostKey('2001:0db8:0000:0001:ffff:1:2:3'));
  t.not(hostKey('2001:db8:0:1::5'), hostKey('2001:db8:0:2::5'));
  t.is(hostKey('::1'), hostKey('0:0:0:0:0:0:0:1'));
});
