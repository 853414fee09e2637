/**
 * TLS toward a master (issue 11, finding 5): `slave`, `push` and `client`
 * require STARTTLS toward any server not on loopback unless told otherwise
 * (loopback keeps its old default); `--tls-ca` trusts a given CA and the
 * certificate must name the server; `push` has `--starttls`.
 *
 * Every server here is on loopback, so the decision for other addresses is
 * checked on the function that makes it, and the handshakes run against real
 * servers with certificates from a CA made for this run.
 */
import test from 'ava';
import { defaultConfig } from '../src/config.js';
import { defaultStartTls, isLoopbackHost } from '../src/mupdate/client/tls-policy.js';
import { MupdateConnection } from '../src/mupdate/client/connection.js';
import { MupdateClientError, StartTlsUnavailable } from '../src/mupdate/client/errors.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { PASSWORD, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { passwordFilePath, startSlave, waitInSync } from './helpers/slave-tools.js';
import { makeTestCa, type TestCa } from './helpers/tls-cert.js';
import { showRun } from './helpers/run.js';

let ca: TestCa;
/** Certificate for IP 127.0.0.1, issued by the CA. */
let rightName: RunningMupdated;
/** Certificate for DNS:mupdate.example only, issued by the same CA. */
let wrongName: RunningMupdated;
let plain: RunningMupdated;
const dirs: string[] = [];

test.before(async () => {
  ca = makeTestCa();
  const good = ca.issue('loopback', 'IP:127.0.0.1');
  const bad = ca.issue('elsewhere', 'DNS:mupdate.example');
  [rightName, wrongName, plain] = await Promise.all([
    startMupdated({ config: { tls_server_cert: good.cert, tls_server_key: good.key } }),
    startMupdated({ config: { tls_server_cert: bad.cert, tls_server_key: bad.key } }),
    startMupdated(),
  ]);
});

test.after.always(async () => {
  for (const s of [rightName, wrongName, plain]) {
    await s?.stop();
    if (s) removeDir(s.dataDir);
  }
  if (ca) removeDir(ca.dir);
  for (const d of dirs) removeDir(d);
});

function opts(
  port: number,
  extra: Partial<Parameters<typeof MupdateConnection.open>[0]> = {},
): Parameters<typeof MupdateConnection.open>[0] {
  return { host: '127.0.0.1', port, user: 'mupdateadmin', password: PASSWORD, timeoutMs: 30_000, ...extra };
}

test('the default: STARTTLS required toward any address or name not on loopback, if-offered on loopback; the slave default is decided by address', (t) => {
  for (const host of ['192.0.2.10', '10.0.0.1', '2001:db8::1', 'mupdate.example.org', '128.0.0.1', '::ffff:10.1.2.3']) {
    t.is(defaultStartTls(host), 'required', host);
    t.false(isLoopbackHost(host), host);
  }
  for (const host of ['127.0.0.1', '127.9.8.7', '::1', '[::1]', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) {
    t.is(defaultStartTls(host), 'if-offered', host);
    t.is(defaultStartTls(host, 'never'), 'never', `${host}, the client's loopback default`);
  }
  t.is(defaultConfig().upstream.starttls, undefined, 'no fixed slave_starttls default: the address decides');
});

test('with --tls-ca the handshake succeeds when the certificate names 127.0.0.1, and the session is TLS', async (t) => {
  const conn = await MupdateConnection.open(opts(rightName.port, { starttls: 'required', tlsCa: readFileSync(ca.caCert) }));
  t.true(conn.secure);
  const r = await conn.command('N1', 'NOOP', [], 10_000);
  t.is(r.status, 'OK');
  await conn.logout();
});

test('a certificate from the trusted CA for another name is refused (name checking), before any password is sent', async (t) => {
  const err = await t.throwsAsync(MupdateConnection.open(opts(wrongName.port, { starttls: 'required', tlsCa: readFileSync(ca.caCert) })));
  t.true(err instanceof MupdateClientError);
  t.regex(err.message, /^TLS failed: .*(altnames|does not match)/);
  await wrongName.waitForLog(/TLS handshake failed|TLS established/).catch(() => undefined);
  t.false(
    wrongName.logs.some((l) => /"msg":"login/.test(l)),
    'no login was attempted',
  );
});

test('without the CA the same server is refused (untrusted issuer); required TLS toward a server without STARTTLS is StartTlsUnavailable', async (t) => {
  const untrusted = await t.throwsAsync(MupdateConnection.open(opts(rightName.port, { starttls: 'required' })));
  t.regex(untrusted.message, /^TLS failed: .*(certificate|issuer)/i);
  const none = await t.throwsAsync(MupdateConnection.open(opts(plain.port, { starttls: 'required' })));
  t.true(none instanceof StartTlsUnavailable);
});

test('push --starttls --tls-ca pushes over TLS; push --starttls toward a server without STARTTLS sends nothing and exits 1', async (t) => {
  const scratch = tempDir('tls-push-');
  dirs.push(scratch);
  const dump = join(scratch, 'dump.json');
  writeFileSync(
    dump,
    '{\n"user.tlspush": {"name": "user.tlspush", "mbtype": "e", "partition": "default", "server": "tlsb", "acl": {}}\n}\n',
  );
  const base = ['push', '--user', 'mupdateadmin', '--password-file', passwordFilePath(), '--server', 'tlsb'];
  const ok = await runCli([...base, '--master', `127.0.0.1:${rightName.port}`, '--starttls', '--tls-ca', ca.caCert, dump]);
  t.is(ok.code, 0, showRun(ok));
  t.regex(ok.stdout, /1 activated/);
  await rightName.waitForLog(/TLS established/);
  const refused = await runCli([...base, '--master', `127.0.0.1:${plain.port}`, '--starttls', dump]);
  t.is(refused.code, 1, showRun(refused));
  t.is(refused.stderr, 'mupdated push: the server does not offer STARTTLS\n');
  t.false(
    plain.logs.some((l) => /"msg":"login/.test(l)),
    'no login on the server without TLS',
  );
  const both = await runCli([...base, '--master', `127.0.0.1:${plain.port}`, '--starttls', '--plaintext', dump]);
  t.is(both.code, 2, showRun(both));
});

/** `mupdated client --starttls --tls-ca` (the test CA) to `port`, sending one NOOP. */
function clientNoop(port: number): ReturnType<typeof runCli> {
  return runCli(
    ['client', `127.0.0.1:${port}`, '--user', 'mupdateadmin', '--password-file', passwordFilePath(), '--starttls', '--tls-ca', ca.caCert],
    {
      input: 'noop\n',
    },
  );
}

test('client --starttls --tls-ca connects with a checked certificate; the wrong name is one clear line', async (t) => {
  const ok = await clientNoop(rightName.port);
  t.is(ok.code, 0, showRun(ok));
  const bad = await clientNoop(wrongName.port);
  t.is(bad.code, 2, showRun(bad));
  t.regex(bad.stderr, /^mupdated client: TLS with 127\.0\.0\.1:\d+ failed: .*(altnames|does not match)/);
});

test('a slave with slave_tls_ca follows a TLS master whose certificate names it; with the wrong name it never syncs', async (t) => {
  const c = await RawClient.login(rightName.port);
  c.send('W1 ACTIVATE "user.viatls" "b1!default" "a\tlrs\t"\r\n');
  t.is(await c.readLine(), 'W1 OK "done"');
  c.close();
  const slave = await startSlave({ master: rightName.port, config: { slave_starttls: 'required', slave_tls_ca: ca.caCert } });
  dirs.push(slave.dataDir);
  try {
    const { slave: got, master } = await waitInSync(slave.port, rightName.port);
    t.deepEqual(got, master);
  } finally {
    await slave.stop();
  }
  const refused = await startSlave({ master: wrongName.port, args: ['--tls-ca', ca.caCert] });
  dirs.push(refused.dataDir);
  try {
    const line = await refused.waitForLog(/connection to the master lost|cannot/);
    t.regex(line, /TLS failed: .*(altnames|does not match)/);
  } finally {
    await refused.stop();
  }
});
