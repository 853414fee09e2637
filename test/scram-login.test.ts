/**
 * SCRAM-SHA-256 on the wire (RFC 5802, RFC 7677; spec 2.3, 3.2): the server
 * side against a real mupdated, when it is offered and when not, and
 * mupdated's own slave, push and client logging in with it.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Authenticator } from '../src/sasl/authenticator.js';
import { hashPassword } from '../src/sasl/password-hash.js';
import { bannerMechanisms, offeredMechanisms } from '../src/sasl/sasl-exchange.js';
import { UserDb } from '../src/sasl/user-db.js';
import { MupdateConnection } from '../src/mupdate/client/connection.js';
import { MupdateClientError } from '../src/mupdate/client/errors.js';
import { runClient } from './helpers/client-run.js';
import { backendDumpJson } from './helpers/cyrus-backend.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { runCli } from './helpers/operator-tools.js';
import { authPlainCommand } from './helpers/plain-auth.js';
import { RawClient } from './helpers/raw-client.js';
import { scramLogin } from './helpers/scram-auth.js';
import { addUser, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { listOf, passwordFilePath, startSlave, waitUntil } from './helpers/slave-tools.js';
import { pushArgs } from './helpers/push-scenario.js';

const AUTH_FAILURE = 'A01 NO "authentication failure"';
const SCRAM_BANNER = '* AUTH "SCRAM-SHA-256" "PLAIN"';

let server: RunningMupdated;

test.before(async () => {
  server = await startMupdated({
    users: [{ name: 'mupdateadmin', admin: true }, { name: 'backend1', admin: true }, { name: 'reader' }],
  });
});

test.after.always(async () => {
  await server?.stop();
  if (server) removeDir(server.dataDir);
});

function loginLogs(s: RunningMupdated, user: string): Array<Record<string, unknown>> {
  return s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'login' && l.authcid === user);
}

test('the banner offers SCRAM-SHA-256 before PLAIN, and the start log says SCRAM is offered', async (t) => {
  const c = await RawClient.connect(server.port);
  t.is((await c.readBanner())[0], SCRAM_BANNER);
  c.close();
  await server.waitForLog(/"msg":"SCRAM-SHA-256 offered beside PLAIN"/);
});

test('SCRAM login: server-first, then the server signature as a challenge, an empty line, then OK; the log names the mechanism', async (t) => {
  const c = await RawClient.connect(server.port);
  await c.readBanner();
  const r = await scramLogin(c, { user: 'backend1' });
  t.is(r.answer, 'A01 OK "Authenticated"');
  t.is(r.lines.length, 3);
  t.regex(Buffer.from(r.lines[0], 'base64').toString(), /^r=nonce\d+[A-Za-z0-9+/=]+,s=[A-Za-z0-9+/=]+,i=10000$/);
  t.true(r.serverVerified, 'the server proved it holds the keys');
  c.send('N1 NOOP\r\n');
  t.deepEqual(await c.readUntilTagged('N1'), ['N1 OK "Noop done"']);
  c.close();
  await server.waitForLog(/"authcid":"backend1".*"mechanism":"SCRAM-SHA-256","msg":"login"/);
});

test('SCRAM: an admin may take another authorization id; the session runs as it', async (t) => {
  const c = await RawClient.connect(server.port);
  await c.readBanner();
  t.is((await scramLogin(c, { user: 'mupdateadmin', authzid: 'someone' })).answer, 'A01 OK "Authenticated"');
  c.close();
  await server.waitForLog(/"user":"someone","authcid":"mupdateadmin".*"mechanism":"SCRAM-SHA-256"/);
});

test('SCRAM: wrong password, unknown user, a non-admin and a non-admin taking another id all get the same NO and never the server signature', async (t) => {
  const cases = [
    { user: 'backend1', password: 'wrong' },
    { user: 'nosuchuser' },
    { user: 'reader' }, // right password, but only admins may log in
    { user: 'reader', authzid: 'mupdateadmin' },
  ];
  for (const o of cases) {
    const c = await RawClient.connect(server.port);
    await c.readBanner();
    const r = await scramLogin(c, o);
    t.is(r.answer, AUTH_FAILURE, JSON.stringify(o));
    t.is(r.lines.length, 2, `only the server-first challenge, no v= (${JSON.stringify(o)})`);
    c.send('N1 NOOP\r\n');
    t.deepEqual(await c.readUntilTagged('N1'), ['N1 BAD "Please login first"']);
    c.close();
  }
  t.is(loginLogs(server, 'reader').length, 0);
});

test('SCRAM: an unknown user gets the same salt each time (a prober learns nothing from it)', async (t) => {
  const salts: string[] = [];
  for (let i = 0; i < 2; i++) {
    const c = await RawClient.connect(server.port);
    await c.readBanner();
    const r = await scramLogin(c, { user: 'ghost' });
    salts.push(/,s=([^,]+),/.exec(Buffer.from(r.lines[0], 'base64').toString())![1]);
    c.close();
  }
  t.is(salts[0], salts[1]);
});

test('SCRAM: a tampered proof, a changed nonce or channel-binding field, channel binding asked for, bad base64 and "*" are refused', async (t) => {
  const finals: Array<[string, (b: Buffer) => Buffer, string]> = [
    ['proof', (b) => Buffer.from(b.toString().replace(/p=(.)/, (_, ch: string) => `p=${ch === 'A' ? 'B' : 'A'}`)), AUTH_FAILURE],
    ['nonce', (b) => Buffer.from(b.toString().replace(/,r=([^,]*)/, ',r=$1x')), AUTH_FAILURE],
    ['binding', (b) => Buffer.from(b.toString().replace(/^c=[^,]*/, 'c=eSws')), AUTH_FAILURE],
    ['garbage', () => Buffer.from('x'), 'A01 NO "malformed response"'],
  ];
  for (const [what, final, want] of finals) {
    const c = await RawClient.connect(server.port);
    await c.readBanner();
    t.is((await scramLogin(c, { final })).answer, want, what);
    c.close();
  }
  const c = await RawClient.connect(server.port);
  await c.readBanner();
  const pBinding = Buffer.from('p=tls-unique,,n=mupdateadmin,r=abc').toString('base64');
  c.send(`A01 AUTHENTICATE "SCRAM-SHA-256" {${pBinding.length}+}\r\n${pBinding}\r\n`);
  t.is(await c.readLine(), 'A01 NO "channel binding is not supported"');
  c.send('A02 AUTHENTICATE "SCRAM-SHA-256" "!!!!"\r\n');
  t.is(await c.readLine(), 'A02 NO "invalid base64"');
  // Without an initial response: an empty challenge first; then "*" cancels after the server-first.
  c.send('A03 AUTHENTICATE "SCRAM-SHA-256"\r\n');
  t.is(await c.readLine(), '');
  c.send(`${Buffer.from('n,,n=mupdateadmin,r=abc').toString('base64')}\r\n`);
  t.regex(Buffer.from(await c.readLine(), 'base64').toString(), /^r=abc/);
  c.send('*\r\n');
  t.is(await c.readLine(), 'A03 NO "Client canceled authentication"');
  c.close();
});

test('PLAIN still works beside SCRAM (loopback)', async (t) => {
  const c = await RawClient.connect(server.port);
  await c.readBanner();
  c.send(authPlainCommand('A01', 'backend1', 'secret', 'backend1'));
  t.is(await c.readLine(), 'A01 OK "Authenticated"');
  c.close();
});

/** A data folder with an admin made by `user add`, and records from before SCRAM (a scrypt hash only). */
async function folderWithOldUsers(names: string[]): Promise<string> {
  const dataDir = tempDir();
  addUser(dataDir, { name: 'mupdateadmin', admin: true });
  const db = open<Record<string, unknown>, string>({ path: join(dataDir, 'users.mdb') });
  for (const name of names) await db.put(name, { name, admin: true, hash: await hashPassword(Buffer.from(`${name}pass`)) });
  await db.close();
  return dataDir;
}

test('SCRAM is not offered while a user has no SCRAM keys (the log says who); a good PLAIN login or user add gives the keys, then it is offered', async (t) => {
  const dataDir = await folderWithOldUsers(['old', 'older']);
  const s = await startMupdated({ dataDir });
  try {
    const warn = await s.waitForLog(/SCRAM-SHA-256 not offered/);
    t.regex(warn, /users without SCRAM keys .*: old, older"/);
    const c = await RawClient.connect(s.port);
    t.is((await c.readBanner())[0], '* AUTH "PLAIN"');
    c.send('A01 AUTHENTICATE "SCRAM-SHA-256" "bixuPW11cGRhdGVhZG1pbixyPWFiYw=="\r\n');
    t.is(await c.readLine(), 'A01 NO "no mechanism available"');
    c.send(authPlainCommand('A02', 'old', 'oldpass'));
    t.is(await c.readLine(), 'A02 OK "Authenticated"');
    c.close();
    const users = UserDb.open(dataDir);
    t.truthy(users.get('old')?.scram, 'the good PLAIN login stored the keys');
    t.is(users.get('older')?.scram, undefined);
    await users.close();
    const d = await RawClient.connect(s.port);
    t.is((await d.readBanner())[0], '* AUTH "PLAIN"', 'older still has none');
    d.close();
    addUser(dataDir, { name: 'older', admin: true, password: 'olderpass' });
    for (const user of ['old', 'older']) {
      const e = await RawClient.connect(s.port);
      t.is((await e.readBanner())[0], SCRAM_BANNER);
      t.is((await scramLogin(e, { user, password: `${user}pass` })).answer, 'A01 OK "Authenticated"', user);
      e.close();
    }
  } finally {
    await s.stop();
    removeDir(dataDir);
  }
});

test('SCRAM is not offered when passwords may be checked by saslauthd, and the log says so', async (t) => {
  const dataDir = tempDir();
  const s = await startMupdated({ dataDir, config: { saslauthd_socket: join(dataDir, 'no-saslauthd') } });
  try {
    t.regex(await s.waitForLog(/SCRAM-SHA-256 not offered/), /passwords are checked by saslauthd/);
    const c = await RawClient.connect(s.port);
    t.is((await c.readBanner())[0], '* AUTH "PLAIN"');
    c.close();
  } finally {
    await s.stop();
    removeDir(dataDir);
  }
});

test('sasl_mech_list: PLAIN offers PLAIN only; sasl_mech_list: SCRAM-SHA-256 refuses PLAIN; an unknown mechanism is a config error', async (t) => {
  const plainOnly = await startMupdated({ config: { sasl_mech_list: 'PLAIN' } });
  const scramOnly = await startMupdated({ config: { sasl_mech_list: 'scram-sha-256' } });
  try {
    const c = await RawClient.connect(plainOnly.port);
    t.is((await c.readBanner())[0], '* AUTH "PLAIN"');
    t.is((await scramLogin(c)).answer, 'A01 NO "no mechanism available"');
    c.close();
    const d = await RawClient.connect(scramOnly.port);
    t.is((await d.readBanner())[0], '* AUTH "SCRAM-SHA-256"');
    d.send(authPlainCommand('A01', 'mupdateadmin', 'secret'));
    t.is(await d.readLine(), 'A01 NO "no mechanism available"');
    t.is((await scramLogin(d, { tag: 'A02' })).answer, 'A02 OK "Authenticated"');
    d.close();
  } finally {
    await plainOnly.stop();
    await scramOnly.stop();
    removeDir(plainOnly.dataDir);
    removeDir(scramOnly.dataDir);
  }
  const dir = tempDir();
  writeFileSync(join(dir, 'bad.conf'), 'sasl_mech_list: PLAIN DIGEST-MD5\n');
  const r = await runCli(['master', '--data', dir, '--listen', '127.0.0.1:0', '--config', join(dir, 'bad.conf')], { timeoutMs: 20_000 });
  t.not(r.code, 0);
  t.regex(r.stderr, /sasl_mech_list: expected some of SCRAM-SHA-256 PLAIN/);
  removeDir(dir);
});

test('before STARTTLS on a link that is not trusted for cleartext nothing is offered (a client must start TLS); without TLS configured SCRAM alone is', async (t) => {
  const dataDir = tempDir();
  addUser(dataDir, { name: 'mupdateadmin', admin: true });
  const users = UserDb.open(dataDir);
  try {
    const auth = new Authenticator(users, { admins: [], allowNonAdmins: false, saslService: 'mupdate', realm: 'x', cacheTtlMs: 0 });
    t.deepEqual(bannerMechanisms(offeredMechanisms(auth, false, true)), [], 'remote, STARTTLS offered: TLS first');
    t.deepEqual(bannerMechanisms(offeredMechanisms(auth, false, false)), ['SCRAM-SHA-256'], 'remote, no TLS: SCRAM, never PLAIN');
    t.deepEqual(bannerMechanisms(offeredMechanisms(auth, true, true)), ['SCRAM-SHA-256', 'PLAIN'], 'loopback');
    t.deepEqual(bannerMechanisms(offeredMechanisms(auth, true, false)), ['SCRAM-SHA-256', 'PLAIN'], 'under TLS');
  } finally {
    await users.close();
    removeDir(dataDir);
  }
});

test('user add stores SCRAM keys (salt, iterations, StoredKey, ServerKey) beside the scrypt hash, never the password', async (t) => {
  const dataDir = tempDir();
  addUser(dataDir, { name: 'keyed', password: 'pw-not-stored' });
  const users = UserDb.open(dataDir);
  try {
    const record = users.get('keyed')!;
    t.is(record.scram?.iterations, 10_000);
    t.is(Buffer.from(record.scram!.salt, 'base64').length, 16);
    t.is(Buffer.from(record.scram!.storedKey, 'base64').length, 32);
    t.is(Buffer.from(record.scram!.serverKey, 'base64').length, 32);
    t.false(JSON.stringify(record).includes('pw-not-stored'));
    t.false(JSON.stringify(record).includes(Buffer.from('pw-not-stored').toString('base64')));
  } finally {
    await users.close();
    removeDir(dataDir);
  }
});

test('mupdated slave, push and client log in with SCRAM-SHA-256: the password never crosses the link', async (t) => {
  const proxy = await FaultProxy.start({ targetPort: server.port });
  const slave = await startSlave({ master: proxy.port });
  try {
    await waitUntil(async () => (await listOf(slave.port).catch(() => null)) !== null, 20_000, 'the slave to serve');
    const dumpDir = tempDir();
    const dump = join(dumpDir, 'dump.json');
    writeFileSync(dump, backendDumpJson([{ name: 'user.scrampush' }]));
    const push = await runCli(pushArgs(proxy.port, 'backend1', passwordFilePath(), '--server', 'backend1', dump));
    t.is(push.code, 0, push.stderr);
    removeDir(dumpDir);
    const client = await runClient(proxy.port, ['find user.scrampush']);
    t.is(client.code, 0, client.stderr);
    t.regex(client.stdout, /MAILBOX\s+user\.scrampush/);
    const plainSecret = Buffer.from('secret').toString('base64').replace(/=+$/, '');
    t.true(proxy.forwarded.length >= 3);
    for (const conn of proxy.forwarded) {
      const client = conn
        .clientLines()
        .map((l) => l.text)
        .join('\n');
      t.regex(client, /^A01 AUTHENTICATE "SCRAM-SHA-256" \{\d+\+\}/);
      t.false(client.includes('secret'));
      t.false(client.includes(plainSecret));
      t.false(/AUTHENTICATE "PLAIN"/.test(client));
    }
    t.true(loginLogs(server, 'backend1').some((l) => l.mechanism === 'SCRAM-SHA-256'));
    t.true(loginLogs(server, 'mupdateadmin').filter((l) => l.mechanism === 'SCRAM-SHA-256').length >= 2, 'slave and client');
  } finally {
    await slave.stop();
    removeDir(slave.dataDir);
    await proxy.close();
  }
});

test("mupdated's client side refuses a server whose signature is wrong (SCRAM proves the server too)", async (t) => {
  const fake = createServer((sock) => {
    sock.write('* AUTH "SCRAM-SHA-256" "PLAIN"\r\n* OK MUPDATE "fake" "fake" "0" "(master)"\r\n');
    let step = 0;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const lines = buf.split('\r\n');
      buf = lines.pop()!;
      for (const line of lines) {
        if (step === 1) {
          const nonce = /r=([^,]+)/.exec(Buffer.from(line, 'base64').toString())![1];
          sock.write(`${Buffer.from(`r=${nonce}server,s=c2FsdHNhbHRzYWx0,i=4096`).toString('base64')}\r\n`);
        } else if (step === 2) {
          sock.write(`${Buffer.from(`v=${Buffer.alloc(32).toString('base64')}`).toString('base64')}\r\n`);
        } else if (step === 3) {
          sock.write(line === '*' ? 'A01 NO "canceled"\r\n' : 'A01 OK "Authenticated"\r\n');
        }
        if (step > 0 || /AUTHENTICATE/.test(line)) step++;
      }
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  try {
    const port = (fake.address() as AddressInfo).port;
    const err = await t.throwsAsync(
      MupdateConnection.open({ host: '127.0.0.1', port, user: 'u', password: 'p', timeoutMs: 5000, starttls: 'never' }),
    );
    t.true(err instanceof MupdateClientError);
    t.regex(err.message, /could not prove it knows the password/);
  } finally {
    fake.close();
  }
});
