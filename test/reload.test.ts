/**
 * SIGHUP (issue 13, point 5): the TLS certificate and key, log_level and the
 * limits are read again without dropping a connection; a reload that fails
 * keeps the old ones and says why. Real TLS clients over loopback see which
 * certificate the server presents.
 */
import { generateKeyPairSync } from 'node:crypto';
import test from 'ava';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { X509Certificate as CryptoX509 } from 'node:crypto';
import { RawClient } from './helpers/raw-client.js';
import { removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { makeSelfSignedCert } from './helpers/tls-cert.js';

/** STARTTLS on a new connection; returns the client and the SHA-256 fingerprint of the certificate the server showed. */
async function tlsClient(port: number): Promise<{ c: RawClient; fingerprint: string }> {
  const c = await RawClient.connect(port);
  await c.readBanner();
  c.send('S01 STARTTLS\r\n');
  const ok = await c.readLine();
  if (!ok.startsWith('S01 OK')) throw new Error(`STARTTLS answered ${ok}`);
  await c.startTls();
  await c.readBanner();
  return { c, fingerprint: (c.socket as TLSSocket).getPeerCertificate().fingerprint256 };
}

async function loginPlain(c: RawClient): Promise<string> {
  const ir = Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64');
  c.send(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n`);
  return c.readLine(30_000);
}

const fingerprintOf = (certFile: string) => new CryptoX509(readFileSync(certFile)).fingerprint256;

test('SIGHUP: new connections get the new certificate, an open TLS connection goes on; a broken key keeps the old one and says why; limits and log_level apply at once', async (t) => {
  const first = makeSelfSignedCert();
  const second = makeSelfSignedCert();
  const dir = tempDir('mupdated-reload-');
  let server: RunningMupdated | undefined;
  try {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(first.cert, cert);
    copyFileSync(first.key, key);
    const settings = (extra: string) => `failedloginpause: 0.05\ntls_server_cert: ${cert}\ntls_server_key: ${key}\n${extra}`;
    // log_level from the config: the environment's level would win over it.
    server = await startMupdated({ config: { tls_server_cert: cert, tls_server_key: key }, env: { MUPDATED_LOG_LEVEL: '' } });
    const configFile = join(server.dataDir, 'test.conf');
    const reload = async (msg: RegExp) => {
      const before = server!.logs.length;
      server!.child.kill('SIGHUP');
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 20_000;
        const look = () => {
          if (server!.logs.slice(before).some((l) => msg.test(l))) return resolve();
          if (Date.now() > deadline) return reject(new Error(`no ${msg} after SIGHUP:\n${server!.logs.slice(before).join('\n')}`));
          setTimeout(look, 50);
        };
        look();
      });
      return server!.logs.slice(before);
    };

    const open = await tlsClient(server.port);
    t.is(open.fingerprint, fingerprintOf(first.cert));
    t.is(await loginPlain(open.c), 'A01 OK "Authenticated"');

    copyFileSync(second.cert, cert);
    copyFileSync(second.key, key);
    await reload(/"msg":"reloaded: TLS certificate, log level and limits"/);
    const next = await tlsClient(server.port);
    t.is(next.fingerprint, fingerprintOf(second.cert), 'the next connection sees the new certificate');
    next.c.close();
    open.c.send('N1 NOOP\r\n');
    t.regex(await open.c.readLine(), /^N1 OK/, 'the connection opened before the reload goes on');

    // A key that does not load: the old certificate stays, the log says why and what to do.
    writeFileSync(key, 'not a key\n');
    const failed = await reload(/"msg":"reload failed; the old settings and certificate stay in use"/);
    t.true(
      failed.some((l) =>
        /"level":50,.*"advice":"the server goes on with the settings it had: fix what the message names and send SIGHUP again"/.test(l),
      ),
    );
    const still = await tlsClient(server.port);
    t.is(still.fingerprint, fingerprintOf(second.cert));
    still.c.close();
    open.c.send('N2 NOOP\r\n');
    t.regex(await open.c.readLine(), /^N2 OK/);

    // A key of another type (an EC key beside an RSA certificate: OpenSSL would take the pair).
    writeFileSync(key, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const mismatched = await reload(/"msg":"reload failed; the old settings and certificate stay in use"/);
    t.true(
      mismatched.some((l) => l.includes('does not belong to the certificate')),
      mismatched.join('\n'),
    );
    const kept = await tlsClient(server.port);
    t.is(kept.fingerprint, fingerprintOf(second.cert), 'TLS still works with the old pair');
    kept.c.close();

    // Limits and log_level, live; a setting read only at start is named, not applied.
    copyFileSync(second.key, key);
    writeFileSync(configFile, settings('max_bad_commands: 2\nlog_level: warn\nadmins: someone\n'));
    const applied = await reload(/"msg":"reload: some changes need a restart: admins"/);
    t.false(
      applied.some((l) => l.includes('"msg":"reloaded')),
      'info lines are off at log_level warn',
    );
    const quiet = server.logs.length;
    const later = await tlsClient(server.port);
    t.is(await loginPlain(later.c), 'A01 OK "Authenticated"');
    later.c.close();
    open.c.send('B1 BOGUS\r\n');
    t.regex(await open.c.readLine(), /^B1 BAD/);
    open.c.send('B2 BOGUS\r\n');
    t.regex(await open.c.readLine(), /^B2 BAD/);
    t.regex(await open.c.readLine(), /^\* BYE "Too many bad commands"/, 'the new max_bad_commands applies to the open connection');
    // The warning comes through stderr after the BYE may have: wait for it. A login line, had
    // one been logged, would have come before it.
    await server.waitForLog(/"msg":"too many bad commands, closing"/);
    t.false(
      server.logs.slice(quiet).some((l) => l.includes('"msg":"login"')),
      'no info line after log_level warn',
    );
    t.is(server.child.exitCode, null, 'the server runs on');
  } finally {
    await server?.stop();
    if (server) removeDir(server.dataDir);
    for (const d of [dir, first.dir, second.dir]) removeDir(d);
  }
});
