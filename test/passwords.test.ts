/**
 * Password storage and checks (issue 11, finding 8): new hashes use scrypt
 * N=2^17, r=8, p=1 (the production cost: the other tests run their servers at
 * N=2^14, see helpers/server.ts); a hash of the older cost still verifies and is replaced
 * at the next good login (never at a bad one); `auth_cache_seconds` sets how
 * long a verification is remembered (0: every login is checked); conflict
 * records and the audit log name both the authenticated and the authorized
 * identity.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { randomBytes, scrypt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { open } from 'lmdb';
import { verifyPassword } from '../src/sasl/password-hash.js';
import { literalCommand, runCli } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { addUser, CLI, PASSWORD, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { showRun } from './helpers/run.js';

const dirs: string[] = [];
const servers: RunningMupdated[] = [];
test.after.always(async () => {
  for (const s of servers) await s.stop();
  for (const d of dirs) removeDir(d);
});

interface UserRecord {
  name: string;
  admin: boolean;
  hash: string;
}

/** Reads a user's record straight from `users.mdb` (the server must not be running). */
async function storedUser(dataDir: string, name: string): Promise<UserRecord | undefined> {
  const db = open<UserRecord, string>({ path: join(dataDir, 'users.mdb'), overlappingSync: false });
  try {
    return db.get(name);
  } finally {
    await db.close();
  }
}

/** A hash as the previous release stored it: scrypt N=2^14, r=8, p=1. */
function oldCostHash(password: string): Promise<string> {
  const salt = randomBytes(16);
  return new Promise((resolve, reject) =>
    scrypt(Buffer.from(password), salt, 32, { N: 16384, r: 8, p: 1 }, (err, key) =>
      err ? reject(err) : resolve(`scrypt$16384$8$1$${salt.toString('base64')}$${key.toString('base64')}`),
    ),
  );
}

/** Tries a PLAIN login (empty authzid unless given); the tagged answer line. */
const tryLogin = (port: number, user: string, password: string, authzid = '') => RawClient.tryLogin(port, user, password, authzid);

/** The environment without the test suite's cheaper scrypt cost: what a production install runs with. */
function productionEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MUPDATED_SCRYPT_LOG2N;
  return env;
}

test('user add stores a scrypt hash of cost N=2^17, r=8, p=1 that verifies', async (t) => {
  const data = tempDir('passwords-new-');
  dirs.push(data);
  const r = spawnSync(process.execPath, [CLI, 'user', 'add', 'fresh', '--admin', '--data', data], {
    input: `${PASSWORD}\n`,
    encoding: 'utf8',
    env: productionEnv(),
    timeout: 120_000,
  });
  t.is(r.status, 0, r.stderr);
  const hash = (await storedUser(data, 'fresh'))!.hash;
  t.regex(hash, /^scrypt\$131072\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
  t.true(await verifyPassword(Buffer.from(PASSWORD), hash));
  t.false(await verifyPassword(Buffer.from('wrong'), hash));
});

test("a hash of the old cost still verifies; a bad login leaves it, the next good login replaces it with today's cost (logged)", async (t) => {
  const data = tempDir('passwords-old-');
  dirs.push(data);
  addUser(data, { name: 'mupdateadmin', admin: true });
  const old = await oldCostHash('old-secret');
  const db = open<UserRecord, string>({ path: join(data, 'users.mdb'), overlappingSync: false });
  await db.put('veteran', { name: 'veteran', admin: true, hash: old });
  await db.close();

  const production = { MUPDATED_SCRYPT_LOG2N: '17' };
  let server = await startMupdated({ dataDir: data, env: production });
  t.is(await tryLogin(server.port, 'veteran', 'not-it'), 'A01 NO "authentication failure"');
  await server.stop();
  t.is((await storedUser(data, 'veteran'))!.hash, old, 'a failed login changes nothing');

  server = await startMupdated({ dataDir: data, env: production });
  servers.push(server);
  t.is(await tryLogin(server.port, 'veteran', 'old-secret'), 'A01 OK "Authenticated"');
  await server.waitForLog(/password hash replaced by one at the current scrypt cost/, 60_000);
  await server.stop();
  const now = (await storedUser(data, 'veteran'))!;
  t.regex(now.hash, /^scrypt\$131072\$8\$1\$/);
  t.true(await verifyPassword(Buffer.from('old-secret'), now.hash));
  t.true(now.admin, 'the rest of the record is kept');
  server = await startMupdated({ dataDir: data, env: production });
  servers.push(server);
  t.is(await tryLogin(server.port, 'veteran', 'old-secret'), 'A01 OK "Authenticated"', 'the new hash logs in');
});

/** A saslauthd on a unix socket that says OK to one password and counts how often it was asked. */
async function countingSaslauthd(path: string, password: string): Promise<{ server: Server; asked: () => number }> {
  let asked = 0;
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const fields: Buffer[] = [];
      let at = 0;
      while (fields.length < 4 && at + 2 <= buf.length) {
        const len = buf.readUInt16BE(at);
        if (at + 2 + len > buf.length) return;
        fields.push(buf.subarray(at + 2, at + 2 + len));
        at += 2 + len;
      }
      if (fields.length < 4) return;
      asked++;
      const answer = Buffer.from(fields[1].toString() === password ? 'OK' : 'NO');
      const len = Buffer.alloc(2);
      len.writeUInt16BE(answer.length);
      sock.end(Buffer.concat([len, answer]));
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { server, asked: () => asked };
}

for (const [cacheSeconds, expected] of [
  [undefined, 1],
  [0, 3],
] as const) {
  test(`auth_cache_seconds ${cacheSeconds ?? 'unset (600)'}: three logins of a saslauthd user ask saslauthd ${expected} time(s)`, async (t) => {
    const scratch = tempDir('passwords-cache-');
    dirs.push(scratch);
    const sasl = await countingSaslauthd(join(scratch, 'mux'), 'sasl-pw');
    try {
      const server = await startMupdated({
        config: {
          saslauthd_socket: join(scratch, 'mux'),
          admins: 'sasluser',
          ...(cacheSeconds === undefined ? {} : { auth_cache_seconds: cacheSeconds }),
        },
      });
      servers.push(server);
      dirs.push(server.dataDir);
      for (let i = 0; i < 3; i++) t.is(await tryLogin(server.port, 'sasluser', 'sasl-pw'), 'A01 OK "Authenticated"');
      t.is(sasl.asked(), expected);
    } finally {
      sasl.server.close();
    }
  });
}

test('a conflict record and its audit line name both the authenticated and the authorized identity', async (t) => {
  const server = await startMupdated({
    users: [
      { name: 'mupdateadmin', admin: true },
      { name: 'backend2', admin: true },
    ],
  });
  servers.push(server);
  dirs.push(server.dataDir);
  const holder = await RawClient.login(server.port);
  holder.send(literalCommand('X1', 'ACTIVATE', 'user.both', 'b1!default', 'a\tlrs\t'));
  t.deepEqual(await holder.readUntilTagged('X1'), ['X1 OK "done"']);
  holder.close();
  // backend2 proves its password and acts as "proxied" (an admin may take another authorization id).
  const claimant = await RawClient.login(server.port, 'backend2', PASSWORD, 'proxied');
  claimant.send(literalCommand('X2', 'ACTIVATE', 'user.both', 'b2!default', 'a\tlrs\t'));
  const refused = (await claimant.readUntilTagged('X2')).at(-1)!;
  claimant.close();
  const id = /conflict #(\d+)/.exec(refused)?.[1];
  t.truthy(id, refused);
  const shown = await runCli(['conflicts', 'show', id!, '--json', '--data', server.dataDir]);
  t.is(shown.code, 0, showRun(shown));
  t.like(JSON.parse(shown.stdout), { user: 'proxied', authcid: 'backend2' });
  const text = await runCli(['conflicts', 'show', id!, '--data', server.dataDir]);
  t.regex(text.stdout, /claimant: {4}proxied \(authenticated as backend2\) from 127\.0\.0\.1:\d+/);
  const resolved = await runCli(['conflicts', 'resolve', id!, '--keep', 'current', '--data', server.dataDir]);
  t.is(resolved.code, 0, showRun(resolved));
  const audit = readFileSync(join(server.dataDir, 'audit.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.like(audit.at(-1), { op: 'resolve', claimant: { user: 'proxied', authcid: 'backend2' } });
  const logged = await server.waitForLog(/duplicate mailbox claim queued/);
  t.like(JSON.parse(logged), { user: 'proxied', authcid: 'backend2' });
});
