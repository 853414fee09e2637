/**
 * Who may do what (spec 3.0, 3.2; checklist C15, C58, C59): the login check
 * before authentication, the admin-only default, the optional read-only
 * identities (`allow_non_admins`), and PLAIN authorization ids.
 */
import test, { type ExecutionContext } from 'ava';
import { RawClient } from '../helpers/raw-client.js';
import { removeDir, type RunningMupdated } from '../helpers/server.js';
import { authPlainCommand, taggedNoOneString } from '../helpers/plain-auth.js';
import type { ServerFactory } from '../helpers/server-factory.js';

const AUTH_FAILURE = 'A01 NO "authentication failure"';
const PAUSE_S = 1;
const PAUSE_LOWER_BOUND_MS = PAUSE_S * 1000 - 50;

const USERS = [
  { name: 'mupdateadmin', admin: true },
  { name: 'reader', password: 'readerpw' },
  { name: 'boss', password: 'bosspw' },
];

async function command(c: RawClient, tag: string, text: string): Promise<string[]> {
  c.send(`${tag} ${text}\r\n`);
  return c.readUntilTagged(tag);
}

function mailbox(tag: string, name: string, location: string, acl: string): string[] {
  return [`${tag} MAILBOX {${name.length}+}`, `${name} {${location.length}+}`, `${location} {${acl.length}+}`, acl];
}

function reserve(tag: string, name: string, location: string): string[] {
  return [`${tag} RESERVE {${name.length}+}`, `${name} {${location.length}+}`, location];
}

const WRITES_AND_READS = (n: string, loc: string) =>
  [
    ['W1', `ACTIVATE "${n}" "${loc}" "u\tlr\t"`],
    ['W2', `RESERVE "${n}" "${loc}"`],
    ['W3', `DEACTIVATE "${n}" "${loc}"`],
    ['W4', `DELETE "${n}"`],
    ['R1', `FIND "${n}"`],
    ['R2', 'LIST'],
    ['R3', `LIST "${loc}"`],
    ['R4', 'UPDATE'],
    ['R5', `UPDATE "${loc.split('!')[0]}"`],
    ['R6', 'NOOP'],
  ] as const;

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
export function authorizationTests(start: ServerFactory): void {
  /** Default policy (admins only), failed-login pause 1 s; `boss` is an admin only through the `admins` setting. */
  let strict: RunningMupdated;
  /** `allow_non_admins: yes`: `reader` may log in read-only. */
  let open: RunningMupdated;

  test.before(async () => {
    [strict, open] = await Promise.all([
      start({ users: USERS, config: { failedloginpause: PAUSE_S, admins: 'boss' } }),
      start({ users: USERS, config: { allow_non_admins: true } }),
    ]);
  });

  test.after.always(async () => {
    await Promise.all([strict?.stop(), open?.stop()]);
    for (const s of [strict, open]) if (s) removeDir(s.dataDir);
  });

  /** Connects and logs in with PLAIN as `login` (user, password, authzid), checking the tagged OK. */
  async function loggedInAs(
    t: ExecutionContext,
    server: RunningMupdated,
    login: [user: string, password: string, authzid?: string],
    message?: string,
  ): Promise<RawClient> {
    const c = await connect(server);
    c.send(authPlainCommand('A01', ...login));
    t.is(await c.readLine(), 'A01 OK "Authenticated"', message);
    return c;
  }

  async function connect(server: RunningMupdated): Promise<RawClient> {
    const c = await RawClient.connect(server.port);
    await c.readBanner();
    return c;
  }

  // ---- C15: nothing but AUTHENTICATE, LOGOUT (and STARTTLS) before login ----

  for (const [label, server] of [
    ['default policy', () => strict],
    ['allow_non_admins', () => open],
  ] as const) {
    test(`C15 (${label}) before login, ACTIVATE, RESERVE, DEACTIVATE, DELETE, FIND, LIST, UPDATE and NOOP get BAD "Please login first"`, async (t) => {
      const s = server();
      const name = `user.c15.${label.replace(/\W/g, '')}`;
      const c = await connect(s);
      const cmds = WRITES_AND_READS(name, 'c15host!default');
      c.send(cmds.map(([tag, text]) => `${tag} ${text}\r\n`).join(''));
      for (const [tag] of cmds) t.deepEqual(await c.readUntilTagged(tag), [`${tag} BAD "Please login first"`]);
      // Nothing was written.
      const admin = await RawClient.login(s.port);
      t.deepEqual(await command(admin, 'F01', `FIND "${name}"`), ['F01 OK "Search completed"']);
      t.false(c.ended);
      c.close();
      admin.close();
    });
  }

  test('C15 before login, arguments are not parsed: NOOP "x", malformed ACTIVATE and {n+} literal bodies are skipped', async (t) => {
    const c = await connect(strict);
    c.send('N01 NOOP "x"\r\n');
    t.deepEqual(await c.readUntilTagged('N01'), ['N01 BAD "Please login first"']);
    c.send('X01 ACTIVATE a b c\r\n');
    t.deepEqual(await c.readUntilTagged('X01'), ['X01 BAD "Please login first"']);
    c.send('F01 FIND\r\n');
    t.deepEqual(await c.readUntilTagged('F01'), ['F01 BAD "Please login first"']);
    // A literal body that looks like a LOGOUT must be skipped with its command.
    c.send('F02 FIND {10+}\r\nZ01 LOGOUT\r\nX02 ACTIVATE "user.c15.lit" {10+}\r\nZ02 LOGOUT "c15host!default" ""\r\n');
    t.deepEqual(await c.readUntilTagged('F02'), ['F02 BAD "Please login first"']);
    t.deepEqual(await c.readUntilTagged('X02'), ['X02 BAD "Please login first"']);
    t.deepEqual(await command(c, 'N02', 'NOOP'), ['N02 BAD "Please login first"'], 'no LOGOUT ran; still open');
    t.false(c.ended);
    c.close();
  });

  test('C15 LOGOUT before login gets OK "bye-bye" and the server closes the connection', async (t) => {
    const c = await connect(strict);
    c.send('Q01 LOGOUT\r\n');
    t.is(await c.readLine(), 'Q01 OK "bye-bye"');
    t.true(await c.waitClosed(), 'closed by the server');
    t.is(c.takeBuffered().length, 0, 'nothing after the OK');
  });

  // ---- C58: only admins may log in (default) ----

  test('C58 a non-admin\'s correct password gets exactly the credential-failure line, not before the pause; later FIND and ACTIVATE get BAD "Please login first"', async (t) => {
    const c = await connect(strict);
    const sent = Date.now();
    c.send(authPlainCommand('A01', 'reader', 'readerpw'));
    const line = await c.readLine(PAUSE_S * 1000 + 10_000);
    const elapsed = Date.now() - sent;
    t.is(line, AUTH_FAILURE);
    t.true(elapsed >= PAUSE_LOWER_BOUND_MS, `NO after ${elapsed} ms, before the ${PAUSE_S} s pause`);
    t.deepEqual(await command(c, 'F01', 'FIND "user.c58"'), ['F01 BAD "Please login first"']);
    t.deepEqual(await command(c, 'X01', 'ACTIVATE "user.c58" "c58host!default" ""'), ['X01 BAD "Please login first"']);
    t.deepEqual(await command(c, 'N01', 'NOOP'), ['N01 BAD "Please login first"']);
    // Indistinguishable from a wrong password of the same identity.
    c.send(authPlainCommand('A01', 'reader', 'wrong-password'));
    t.is(await c.readLine(PAUSE_S * 1000 + 10_000), AUTH_FAILURE);
    // The same non-admin with an authzid equal to its authcid is refused the same way.
    c.send(authPlainCommand('A01', 'reader', 'readerpw', 'reader'));
    t.is(await c.readLine(PAUSE_S * 1000 + 10_000), AUTH_FAILURE);
    const admin = await RawClient.login(strict.port);
    t.deepEqual(await command(admin, 'F02', 'FIND "user.c58"'), ['F02 OK "Search completed"'], 'the ACTIVATE did not run');
    c.close();
    admin.close();
  });

  test('C58 an identity listed in the admins setting logs in and may write', async (t) => {
    const c = await loggedInAs(t, strict, ['boss', 'bosspw']);
    t.deepEqual(await command(c, 'X01', 'ACTIVATE "user.c58.boss" "c58host!default" ""'), ['X01 OK "done"']);
    t.deepEqual(await command(c, 'F01', 'FIND "user.c58.boss"'), [
      ...mailbox('F01', 'user.c58.boss', 'c58host!default', ''),
      'F01 OK "Search completed"',
    ]);
    c.close();
  });

  // ---- C59: authorization ids ----

  for (const [what, authzid] of [
    ['an empty authzid', ''],
    ['authzid equal to the authcid', 'mupdateadmin'],
  ] as const) {
    test(`C59 PLAIN with ${what} succeeds and the session has full rights`, async (t) => {
      const c = await loggedInAs(t, strict, ['mupdateadmin', 'secret', authzid]);
      const name = `user.c59.${authzid === '' ? 'empty' : 'same'}`;
      t.deepEqual(await command(c, 'X01', `ACTIVATE "${name}" "c59host!default" ""`), ['X01 OK "done"']);
      c.close();
    });
  }

  test('C59 an admin naming another identity as authzid succeeds and runs with full rights', async (t) => {
    for (const authzid of ['reader', 'c59-someone-else']) {
      const c = await loggedInAs(t, strict, ['mupdateadmin', 'secret', authzid], `authzid ${authzid}`);
      const name = `user.c59.as.${authzid}`;
      t.deepEqual(await command(c, 'X01', `ACTIVATE "${name}" "c59host!default" ""`), ['X01 OK "done"']);
      t.deepEqual(await command(c, 'F01', `FIND "${name}"`), [...mailbox('F01', name, 'c59host!default', ''), 'F01 OK "Search completed"']);
      c.close();
    }
  });

  test('C59 a non-admin naming another authzid is refused with the credential-failure line (even with allow_non_admins)', async (t) => {
    const c = await connect(open);
    for (const authzid of ['mupdateadmin', 'c59-other']) {
      c.send(authPlainCommand('A01', 'reader', 'readerpw', authzid));
      t.is(await c.readLine(), AUTH_FAILURE, `authzid ${authzid}`);
      t.deepEqual(await command(c, 'F01', 'FIND "user.c59"'), ['F01 BAD "Please login first"']);
    }
    // The same credentials without another authzid are accepted here: the refusal was about the authzid.
    c.send(authPlainCommand('A02', 'reader', 'readerpw', 'reader'));
    t.is(await c.readLine(), 'A02 OK "Authenticated"');
    c.close();
  });

  // ---- read-only identities (allow_non_admins: yes) ----

  test('allow_non_admins: a non-admin logs in (empty authzid or its own) and FIND, LIST, UPDATE and NOOP work', async (t) => {
    const admin = await RawClient.login(open.port);
    t.deepEqual(await command(admin, 'X01', 'ACTIVATE "user.ro.read.a" "roread!default" "a\tlr\t"'), ['X01 OK "done"']);
    t.deepEqual(await command(admin, 'X02', 'RESERVE "user.ro.read.b" "roread!p2"'), ['X02 OK "done"']);

    const ro = await loggedInAs(t, open, ['reader', 'readerpw']);
    t.deepEqual(await command(ro, 'N01', 'NOOP'), ['N01 OK "Noop done"']);
    t.deepEqual(await command(ro, 'F01', 'FIND "user.ro.read.a"'), [
      ...mailbox('F01', 'user.ro.read.a', 'roread!default', 'a\tlr\t'),
      'F01 OK "Search completed"',
    ]);
    t.deepEqual(await command(ro, 'L01', 'LIST "roread!"'), [
      ...mailbox('L01', 'user.ro.read.a', 'roread!default', 'a\tlr\t'),
      ...reserve('L01', 'user.ro.read.b', 'roread!p2'),
      'L01 OK "list complete"',
    ]);
    t.deepEqual(await command(ro, 'U01', 'UPDATE "roread"'), [
      ...mailbox('U01', 'user.ro.read.a', 'roread!default', 'a\tlr\t'),
      ...reserve('U01', 'user.ro.read.b', 'roread!p2'),
      'U01 OK "streaming starts"',
    ]);
    t.deepEqual(await command(admin, 'X03', 'ACTIVATE "user.ro.read.c" "roread!default" ""'), ['X03 OK "done"']);
    t.deepEqual(
      await command(ro, 'N02', 'NOOP'),
      [...mailbox('U01', 'user.ro.read.c', 'roread!default', ''), 'N02 OK "Noop done"'],
      "the read-only stream gets the admin's change",
    );

    const ro2 = await loggedInAs(t, open, ['reader', 'readerpw', 'reader']);
    t.deepEqual(await command(ro2, 'N01', 'NOOP'), ['N01 OK "Noop done"']);
    for (const c of [admin, ro, ro2]) c.close();
  });

  test('allow_non_admins: every write of a non-admin gets a tagged NO with one quoted string (never BAD) and changes nothing', async (t) => {
    const admin = await RawClient.login(open.port);
    t.deepEqual(await command(admin, 'X01', 'ACTIVATE "user.ro.w.active" "rowrite!default" "a\tlr\t"'), ['X01 OK "done"']);
    t.deepEqual(await command(admin, 'X02', 'RESERVE "user.ro.w.reserved" "rowrite!default"'), ['X02 OK "done"']);
    // An admin stream on the host: a change would show up on it.
    const watcher = await RawClient.login(open.port);
    const dump = await command(watcher, 'U01', 'UPDATE "rowrite"');
    t.is(dump[dump.length - 1], 'U01 OK "streaming starts"');

    const ro = await loggedInAs(t, open, ['reader', 'readerpw']);
    const writes: Array<[string, string]> = [
      ['W1', 'ACTIVATE "user.ro.w.new" "rowrite!default" ""'],
      ['W2', 'ACTIVATE "user.ro.w.active" "rowrite!other" "x\tlrswipkxtecda\t"'],
      ['W3', 'ACTIVATE "user.ro.w.reserved" "rowrite!default" ""'],
      ['W4', 'RESERVE "user.ro.w.new2" "rowrite!default"'],
      ['W5', 'DEACTIVATE "user.ro.w.active" "rowrite!default"'],
      ['W6', 'DELETE "user.ro.w.active"'],
      ['W7', 'DELETE "user.ro.w.reserved"'],
      ['W8', 'DELETE "user.ro.w.missing"'],
      ['W9', 'DEACTIVATE "user.ro.w.missing" "rowrite!default"'],
    ];
    for (const [tag, text] of writes) {
      const answer = await command(ro, tag, text);
      t.is(answer.length, 1, `${text}: ${JSON.stringify(answer)}`);
      t.regex(answer[0], taggedNoOneString(tag), text);
    }
    t.deepEqual(await command(ro, 'N01', 'NOOP'), ['N01 OK "Noop done"'], 'the session goes on');

    // Nothing changed: the entries are as before, the new names absent, and the stream saw nothing.
    t.deepEqual(await command(admin, 'L01', 'LIST "rowrite!"'), [
      ...mailbox('L01', 'user.ro.w.active', 'rowrite!default', 'a\tlr\t'),
      ...reserve('L01', 'user.ro.w.reserved', 'rowrite!default'),
      'L01 OK "list complete"',
    ]);
    t.deepEqual(await command(admin, 'F01', 'FIND "user.ro.w.new"'), ['F01 OK "Search completed"']);
    t.deepEqual(await command(admin, 'F02', 'FIND "user.ro.w.new2"'), ['F02 OK "Search completed"']);
    t.deepEqual(await command(watcher, 'N02', 'NOOP'), ['N02 OK "Noop done"'], 'no change was streamed');
    for (const c of [admin, watcher, ro]) c.close();
  });
}
