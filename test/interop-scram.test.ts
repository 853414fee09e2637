/**
 * Interop: SCRAM-SHA-256 with the real Debian Cyrus 3.6 programs (libsasl2's
 * SCRAM plugin from libsasl2-modules). Cyrus clients take the strongest
 * mechanism of the banner they have (spec 2.3), so `mupdatetest`,
 * `ctl_mboxlist -m` and a Cyrus slave log in with SCRAM as soon as mupdated
 * offers it; a proxy in between shows what crossed the link. The other way
 * round, mupdated's slave logs in with SCRAM to a Cyrus master offering it.
 */
import test from 'ava';
import { CyrusBackend } from './helpers/cyrus-backend.js';
import {
  canonicalEntries,
  cyrusAvailable,
  interopTest,
  isUtf8,
  listDirectory,
  runMupdatetest,
  startCyrusMaster,
  startCyrusSlave,
  type CyrusServer,
} from './helpers/cyrus.js';
import { FaultProxy, type ProxyConn } from './helpers/fault-proxy.js';
import { RawClient } from './helpers/raw-client.js';
import { removeDir, startMupdated, type RunningMupdated } from './helpers/server.js';
import { listOf, startSlave, waitUntil } from './helpers/slave-tools.js';

const interop = interopTest('serial');

let server: RunningMupdated | undefined;
let proxy: FaultProxy | undefined;
const cleanups: Array<() => Promise<void>> = [];

test.before(async () => {
  if (!cyrusAvailable()) return;
  server = await startMupdated({
    users: [
      { name: 'mupdateadmin', admin: true },
      { name: 'backend1', admin: true },
    ],
  });
  proxy = await FaultProxy.start({ targetPort: server.port });
});

test.after.always(async () => {
  for (const c of cleanups.reverse()) await c();
  await proxy?.close();
  await server?.stop();
  if (server) removeDir(server.dataDir);
});

function logins(user: string): Array<Record<string, unknown>> {
  return server!.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'login' && l.authcid === user);
}

/** What the client sent on a proxied connection: a SCRAM login, and neither the password nor a PLAIN message. */
function assertScramOnly(t: import('ava').ExecutionContext, conn: ProxyConn): void {
  const sent = conn.clientLines().map((l) => l.text);
  t.regex(sent[0] ?? '', /^A01 AUTHENTICATE "SCRAM-SHA-256" \{\d+\+\}\r\n/);
  const all = sent.join('\n');
  t.false(all.includes('secret'), 'no password in clear');
  t.false(all.includes(Buffer.from('secret').toString('base64').slice(0, 6)), 'no base64 of the password');
  t.false(/AUTHENTICATE "PLAIN"/i.test(all));
  // The server-final came as a challenge and the client answered it with an empty line before the OK.
  const serverLines = conn.serverLines().map((l) => l.text);
  const ok = serverLines.findIndex((l) => l.startsWith('A01 OK'));
  t.true(ok > 0, JSON.stringify(serverLines));
  t.regex(Buffer.from(serverLines[ok - 1], 'base64').toString(), /^v=[A-Za-z0-9+/]+=*$/);
  t.true(sent.includes(''), 'the empty response to v=');
}

interop('the real mupdatetest without -m picks SCRAM-SHA-256 from the banner and logs in; the server signature verifies', async (t) => {
  const before = proxy!.forwarded.length;
  const r = await runMupdatetest(proxy!.port, ['X1 NOOP', { waitFor: 'X1 OK "Noop done"\r\n' }], { mechanism: null });
  t.is(r.code, 0, r.stderr);
  t.true(r.lines.includes('S: * AUTH "SCRAM-SHA-256" "PLAIN"'));
  t.true(
    r.lines.some((l) => /^C: A01 AUTHENTICATE "SCRAM-SHA-256" \{\d+\+\}$/.test(l)),
    r.output,
  );
  t.true(r.lines.includes('Authenticated.'), r.output);
  assertScramOnly(t, proxy!.forwarded[before]);
  t.true(logins('mupdateadmin').some((l) => l.mechanism === 'SCRAM-SHA-256'));
});

interop(
  'the real mupdatetest with a wrong password over SCRAM: "Authentication failed.", commands get BAD "Please login first"',
  async (t) => {
    const r = await runMupdatetest(server!.port, ['X1 NOOP', { waitFor: 'X1 BAD "Please login first"\r\n' }], {
      mechanism: 'SCRAM-SHA-256',
      password: 'wrong',
    });
    t.true(r.lines.includes('S: A01 NO "authentication failure"'), r.output);
    t.true(
      r.lines.some((l) => l.startsWith('Authentication failed.')),
      r.output,
    );
  },
);

interop('the real ctl_mboxlist -m logs in with SCRAM-SHA-256 and pushes its mailboxes', async (t) => {
  const b = await CyrusBackend.create({ mupdatePort: proxy!.port, servername: 'backend1' });
  cleanups.push(() => b.remove());
  await b.load([{ name: 'user.scram' }, { name: 'user.scram.Sent' }]);
  const before = proxy!.forwarded.length;
  const r = await b.push();
  t.is(r.code, 0, `${r.stdout}${r.stderr}`);
  const names = (await listDirectory(server!.port)).map((e) => e.name);
  t.true(names.includes('user.scram') && names.includes('user.scram.Sent'), JSON.stringify(names));
  t.true(proxy!.forwarded.length > before);
  for (const conn of proxy!.forwarded.slice(before)) assertScramOnly(t, conn);
  t.true(logins('backend1').length > 0);
  t.true(logins('backend1').every((l) => l.mechanism === 'SCRAM-SHA-256'));
});

interop('the real ctl_mboxlist -m with a wrong password: SCRAM refuses it, exit 1', async (t) => {
  const b = await CyrusBackend.create({ mupdatePort: server!.port, servername: 'backend1', password: 'wrong' });
  cleanups.push(() => b.remove());
  await b.load([{ name: 'user.scramwrong' }]);
  const r = await b.push();
  t.is(r.code, 1, `${r.stdout}${r.stderr}`);
  t.false((await listDirectory(server!.port)).some((e) => e.name === 'user.scramwrong'));
  await server!.waitForLog(/"user":"backend1".*"msg":"login refused"/);
});

interop('a real Cyrus slave logs in to mupdated with SCRAM-SHA-256, syncs, and its copy equals our LIST', async (t) => {
  const c = await RawClient.login(server!.port);
  c.send('S1 ACTIVATE "user.slavescram" "backend1!default" "slavescram\tlrswipkxtecdan\t"\r\n');
  t.deepEqual(await c.readUntilTagged('S1'), ['S1 OK "done"']);
  c.close();
  const before = proxy!.forwarded.length;
  const slave: CyrusServer = await startCyrusSlave({ masterPort: proxy!.port, retryDelay: 2, startTimeoutMs: 60_000 });
  cleanups.push(() => slave.cleanup());
  const ours = (await listDirectory(server!.port)).filter((e) => isUtf8(e.name) && isUtf8(e.location) && isUtf8(e.acl));
  t.deepEqual(canonicalEntries((await slave.dump()).entries), canonicalEntries(ours));
  assertScramOnly(t, proxy!.forwarded[before]);
  t.regex(
    proxy!.forwarded[before]
      .clientLines()
      .map((l) => l.text)
      .join('\n'),
    /\nU01 UPDATE$/m,
  );
});

interop('a user without SCRAM keys: mupdated offers PLAIN only and the real ctl_mboxlist -m falls back to PLAIN', async (t) => {
  const { open } = await import('lmdb');
  const { hashPassword } = await import('../src/sasl/password-hash.js');
  const s = await startMupdated({ users: [{ name: 'backend1', admin: true }] });
  cleanups.push(async () => {
    await s.stop();
    removeDir(s.dataDir);
  });
  const db = open<Record<string, unknown>, string>({ path: `${s.dataDir}/users.mdb` });
  await db.put('legacy', { name: 'legacy', admin: true, hash: await hashPassword(Buffer.from('x')) });
  await db.close();
  const b = await CyrusBackend.create({ mupdatePort: s.port, servername: 'backend1' });
  cleanups.push(() => b.remove());
  await b.load([{ name: 'user.plainfallback' }]);
  const r = await b.push();
  t.is(r.code, 0, `${r.stdout}${r.stderr}`);
  const login = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'login' && l.authcid === 'backend1');
  t.is(login?.mechanism, 'PLAIN');
});

interop('mupdated slave logs in with SCRAM-SHA-256 to a real Cyrus master that offers it, and follows it', async (t) => {
  const master = await startCyrusMaster({ extraConfig: { sasl_mech_list: 'SCRAM-SHA-256 PLAIN' } });
  cleanups.push(() => master.cleanup());
  t.is(master.banner[0], '* AUTH "SCRAM-SHA-256" "PLAIN"');
  const c = await RawClient.login(master.port);
  c.send('S1 ACTIVATE "user.fromcyrus" "backend1!default" "fromcyrus\tlrswipkxtecdan\t"\r\n');
  t.deepEqual(await c.readUntilTagged('S1'), ['S1 OK "done"']);
  c.close();
  const p = await FaultProxy.start({ targetPort: master.port });
  cleanups.push(() => p.close());
  const slave = await startSlave({ master: p.port, retryDelay: 2 });
  cleanups.push(async () => {
    await slave.stop();
    removeDir(slave.dataDir);
  });
  await waitUntil(
    async () => (await listOf(slave.port).catch(() => [])).some((l) => l.startsWith('"user.fromcyrus"')),
    30_000,
    'the slave to copy',
  );
  const conn = p.forwarded[0];
  t.regex(conn.clientLines()[0].text, /^A01 AUTHENTICATE "SCRAM-SHA-256" \{\d+\+\}\r\n/);
  t.false(
    conn
      .clientLines()
      .map((l) => l.text)
      .join('\n')
      .includes('secret'),
  );
  t.true(conn.serverLines().some((l) => /^A01 OK/.test(l.text)));
});
