/**
 * AUTHENTICATE (spec 3.2, 8.4; checklist C16-C21): PLAIN in every argument
 * form, the credential-failure line and its pause, cancel, repeated
 * AUTHENTICATE, and the non-credential SASL failures.
 */
import test, { type ExecutionContext } from 'ava';
import { RawClient } from '../helpers/raw-client.js';
import { removeDir, type RunningMupdated } from '../helpers/server.js';
import { authPlainCommand, plainB64, taggedNoOneString } from '../helpers/plain-auth.js';
import type { ServerFactory } from '../helpers/server-factory.js';

const AUTH_FAILURE = 'A01 NO "authentication failure"';
const PAUSE_S = 1;
const PAUSE_MS = PAUSE_S * 1000;
/** "Not before the pause": the lower bound only, with a little slack for timer rounding. */
const PAUSE_LOWER_BOUND_MS = PAUSE_MS - 50;

async function command(c: RawClient, tag: string, text: string): Promise<string[]> {
  c.send(`${tag} ${text}\r\n`);
  return c.readUntilTagged(tag);
}

/** The session is logged in: NOOP answers OK (before login it gets "Please login first"). */
async function assertLoggedIn(t: import('ava').ExecutionContext, c: RawClient, tag = 'N09'): Promise<void> {
  t.deepEqual(await command(c, tag, 'NOOP'), [`${tag} OK "Noop done"`]);
}

/** The login just sent on `c` succeeds (A01 OK) and the session then works; closes `c`. */
async function finishesLogin(t: import('ava').ExecutionContext, c: RawClient): Promise<void> {
  t.deepEqual(await c.readUntilTagged('A01'), ['A01 OK "Authenticated"']);
  await assertLoggedIn(t, c);
  c.close();
}

/** After a refusal a good PLAIN login (tag A02) still succeeds, and with `checkSession` the session then works; closes `c`. */
async function loginStillWorks(t: import('ava').ExecutionContext, c: RawClient, checkSession = false): Promise<void> {
  c.send(authPlainCommand('A02', 'mupdateadmin', 'secret'));
  t.deepEqual(await c.readUntilTagged('A02'), ['A02 OK "Authenticated"']);
  if (checkSession) await assertLoggedIn(t, c);
  c.close();
}

async function assertNotLoggedIn(t: import('ava').ExecutionContext, c: RawClient, tag = 'N08'): Promise<void> {
  t.deepEqual(await command(c, tag, 'NOOP'), [`${tag} BAD "Please login first"`]);
}

// ---- C21: other SASL failures are NO, never BAD ----

const C21_CASES: Array<[string, string[]]> = [
  ['unknown mechanism "CRAM-MD5"', ['A01 AUTHENTICATE "CRAM-MD5"\r\n']],
  ['unknown mechanism with an initial response', [`A01 AUTHENTICATE "X-UNKNOWN" "${plainB64('mupdateadmin', 'secret')}"\r\n`]],
  ['not-advertised mechanism "LOGIN"', ['A01 AUTHENTICATE "LOGIN"\r\n']],
  ['invalid base64 in the initial response', ['A01 AUTHENTICATE "PLAIN" "not*base64!"\r\n']],
  ['badly padded base64 in the initial response', ['A01 AUTHENTICATE "PLAIN" "AG11cmRlcgBzZWNyZXQ"\r\n']],
  ['an empty PLAIN message ("=")', ['A01 AUTHENTICATE "PLAIN" "="\r\n']],
  ['a PLAIN message without NUL separators', [`A01 AUTHENTICATE "PLAIN" "${Buffer.from('mupdateadmin secret').toString('base64')}"\r\n`]],
];

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
export function authenticationTests(start: ServerFactory): void {
  /** Short pause (the helper's default 0.05 s): for everything that does not look at the pause. */
  let fast: RunningMupdated;
  /** failedloginpause 1 s: the NO must not come earlier. */
  let paused: RunningMupdated;
  /** failedloginpause 30 s: long enough that "during the pause" and "without the pause" cannot be confused. */
  let slow: RunningMupdated;

  test.before(async () => {
    [fast, paused, slow] = await Promise.all([
      start(),
      start({ config: { failedloginpause: PAUSE_S } }),
      start({ config: { failedloginpause: 30 } }),
    ]);
  });

  test.after.always(async () => {
    await Promise.all([fast?.stop(), paused?.stop(), slow?.stop()]);
    for (const s of [fast, paused, slow]) if (s) removeDir(s.dataDir);
  });

  /** AUTHENTICATE "PLAIN" without initial response: checks the empty challenge, then sends `response`. */
  async function plainWithoutIr(t: ExecutionContext, c: RawClient, response: string, message?: string): Promise<void> {
    c.send('A01 AUTHENTICATE "PLAIN"\r\n');
    t.is(await c.readLine(), '', message);
    c.send(response);
  }

  async function connect(server: RunningMupdated): Promise<RawClient> {
    const c = await RawClient.connect(server.port);
    await c.readBanner();
    return c;
  }

  // ---- C16: PLAIN with the initial response in every string form ----

  test('C16 AUTHENTICATE "PLAIN" with a {n+} literal initial response gets A01 OK "Authenticated"', async (t) => {
    const c = await connect(fast);
    c.send(authPlainCommand('A01', 'mupdateadmin', 'secret', 'mupdateadmin'));
    await finishesLogin(t, c);
  });

  test('C16 the initial response as a quoted string succeeds', async (t) => {
    const c = await connect(fast);
    c.send(`A01 AUTHENTICATE "PLAIN" "${plainB64('mupdateadmin', 'secret')}"\r\n`);
    await finishesLogin(t, c);
  });

  test('C16 the initial response as a {n} literal gets + go ahead and then succeeds', async (t) => {
    const c = await connect(fast);
    const ir = plainB64('mupdateadmin', 'secret');
    c.send(`A01 AUTHENTICATE "PLAIN" {${ir.length}}\r\n`);
    t.is(await c.readLine(), '+ go ahead');
    c.send(`${ir}\r\n`);
    await finishesLogin(t, c);
  });

  test('C16 the mechanism name is case-insensitive and may be a literal', async (t) => {
    const a = await connect(fast);
    a.send(`A01 AUTHENTICATE "plain" "${plainB64('mupdateadmin', 'secret')}"\r\n`);
    await finishesLogin(t, a);
    const b = await connect(fast);
    const ir = plainB64('mupdateadmin', 'secret');
    b.send(`A01 AUTHENTICATE {5+}\r\nPlain {${ir.length}+}\r\n${ir}\r\n`);
    await finishesLogin(t, b);
  });

  // ---- C17: PLAIN without initial response ----

  test('C17 AUTHENTICATE "PLAIN" without initial response gets an empty line, and a base64 line completes it', async (t) => {
    const c = await connect(fast);
    await plainWithoutIr(t, c, `${plainB64('mupdateadmin', 'secret')}\r\n`, 'the empty challenge is just CRLF');
    await finishesLogin(t, c);
  });

  test('C17 a wrong password in the response line gets the credential-failure line', async (t) => {
    const c = await connect(fast);
    await plainWithoutIr(t, c, `${plainB64('mupdateadmin', 'wrong')}\r\n`);
    t.deepEqual(await c.readUntilTagged('A01'), [AUTH_FAILURE]);
    await assertNotLoggedIn(t, c);
    c.close();
  });

  // ---- C18: credential failures ----

  for (const [what, user, password] of [
    ['wrong password', 'mupdateadmin', 'not-the-password'],
    ['unknown user', 'c18-nobody', 'secret'],
  ] as const) {
    test(`C18 ${what} gets exactly A01 NO "authentication failure", not before the pause; a later correct AUTHENTICATE succeeds`, async (t) => {
      const c = await connect(paused);
      const sent = Date.now();
      c.send(authPlainCommand('A01', user, password));
      const line = await c.readLine(PAUSE_MS + 10_000);
      const elapsed = Date.now() - sent;
      t.is(line, AUTH_FAILURE);
      t.true(elapsed >= PAUSE_LOWER_BOUND_MS, `NO came after ${elapsed} ms, before the ${PAUSE_MS} ms pause`);
      // The connection stays usable, still not logged in, and may retry.
      await assertNotLoggedIn(t, c);
      await loginStillWorks(t, c, true);
    });
  }

  test('C18 wrong password and unknown user get the same line also with an authzid and over the response-line path', async (t) => {
    const c = await connect(fast);
    const cases = [
      authPlainCommand('A01', 'mupdateadmin', 'bad', 'mupdateadmin'),
      authPlainCommand('A01', 'c18-ghost', 'bad', 'c18-ghost'),
      authPlainCommand('A01', 'c18-ghost', 'secret', ''),
    ];
    for (const cmd of cases) {
      c.send(cmd);
      t.deepEqual(await c.readUntilTagged('A01'), [AUTH_FAILURE]);
    }
    await plainWithoutIr(t, c, `${plainB64('c18-ghost', 'secret')}\r\n`);
    t.deepEqual(await c.readUntilTagged('A01'), [AUTH_FAILURE]);
    await loginStillWorks(t, c);
  });

  test('C18 another connection is answered normally while one connection waits out its failed-login pause', async (t) => {
    const victim = await connect(slow);
    victim.send(authPlainCommand('A01', 'c18-during-pause', 'wrong'));
    // The server has judged the attempt (it logs the refusal) and is now in the 30 s pause.
    await slow.waitForLog(/c18-during-pause/);

    const other = await connect(slow);
    other.send(authPlainCommand('A01', 'mupdateadmin', 'secret'));
    t.deepEqual(await other.readUntilTagged('A01'), ['A01 OK "Authenticated"']);
    t.deepEqual(await command(other, 'X01', 'ACTIVATE "user.c18.pause" "pausehost!default" ""'), ['X01 OK "done"']);
    t.deepEqual(await command(other, 'F01', 'FIND "user.c18.pause"'), [
      'F01 MAILBOX {14+}',
      'user.c18.pause {17+}',
      'pausehost!default {0+}',
      '',
      'F01 OK "Search completed"',
    ]);
    t.deepEqual(await command(other, 'N01', 'NOOP'), ['N01 OK "Noop done"']);
    t.true(await victim.expectSilence(0), 'the refused connection is still waiting for its NO');
    t.false(victim.ended);
    victim.close();
    other.close();
  });

  // ---- C19: cancel ----

  test('C19 a "*" line during the exchange gets A01 NO "Client canceled authentication" without the pause', async (t) => {
    // On the 30 s-pause server: an answer within the 5 s read timeout shows no pause was applied.
    const c = await connect(slow);
    await plainWithoutIr(t, c, '*\r\n');
    t.is(await c.readLine(5000), 'A01 NO "Client canceled authentication"');
    await assertNotLoggedIn(t, c);
    await loginStillWorks(t, c, true);
  });

  // ---- C20: AUTHENTICATE after success ----

  test('C20 a second AUTHENTICATE after success gets BAD "already authenticated", its literal argument consumed', async (t) => {
    const c = await RawClient.login(fast.port);
    // The literal body looks like a LOGOUT: it must be skipped as an argument, not run.
    c.send('A02 AUTHENTICATE "PLAIN" {10+}\r\nN99 LOGOUT\r\n');
    t.deepEqual(await c.readUntilTagged('A02'), ['A02 BAD "already authenticated"']);
    c.send(`A03 AUTHENTICATE "PLAIN" "${plainB64('mupdateadmin', 'secret')}"\r\n`);
    t.deepEqual(await c.readUntilTagged('A03'), ['A03 BAD "already authenticated"']);
    await assertLoggedIn(t, c);
    t.false(c.ended);
    c.close();
  });

  test('C20 AUTHENTICATE on a streaming connection gets BAD "already authenticated"', async (t) => {
    const c = await RawClient.login(fast.port);
    t.deepEqual(await command(c, 'U01', 'UPDATE "c20-nohost"'), ['U01 OK "streaming starts"']);
    c.send(authPlainCommand('A02', 'mupdateadmin', 'secret'));
    t.deepEqual(await c.readUntilTagged('A02'), ['A02 BAD "already authenticated"']);
    t.deepEqual(await command(c, 'N01', 'NOOP'), ['N01 OK "Noop done"']);
    c.close();
  });

  for (const [what, lines] of C21_CASES) {
    test(`C21 ${what} gets a tagged NO with one quoted string, and the connection can still log in`, async (t) => {
      const c = await connect(fast);
      c.send(lines.join(''));
      const answer = await c.readUntilTagged('A01');
      t.is(answer.length, 1, `only the tagged answer: ${JSON.stringify(answer)}`);
      t.regex(answer[0], taggedNoOneString('A01'));
      await assertNotLoggedIn(t, c);
      await loginStillWorks(t, c);
    });
  }

  test('C21 invalid base64 in a response line gets a tagged NO with one quoted string', async (t) => {
    const c = await connect(fast);
    await plainWithoutIr(t, c, '%%%not base64%%%\r\n');
    const answer = await c.readUntilTagged('A01');
    t.is(answer.length, 1);
    t.regex(answer[0], taggedNoOneString('A01'));
    await loginStillWorks(t, c);
  });
}
