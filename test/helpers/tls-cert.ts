/** A throw-away self-signed certificate for TLS tests (made with the openssl CLI). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from './server.js';

export interface TestCert {
  dir: string;
  cert: string;
  key: string;
}

/** Creates `cert.pem` and `key.pem` (CN=localhost, RSA 2048, 1 day) in a fresh temp dir. */
export function makeSelfSignedCert(): TestCert {
  const dir = tempDir('mupdated-tls-');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-keyout', key, '-out', cert,
  ], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`openssl failed (${r.status}): ${r.stderr}${r.error ? r.error.message : ''}`);
  return { dir, cert, key };
}
