/** A throw-away self-signed certificate for TLS tests (made with the openssl CLI). */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
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
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (r.status !== 0) throw new Error(`openssl failed (${r.status}): ${r.stderr}${r.error ? r.error.message : ''}`);
  return { dir, cert, key };
}

export interface TestCa {
  dir: string;
  /** The CA's certificate (PEM), to pass as --tls-ca. */
  caCert: string;
  /** Issues a certificate for the given subjectAltName (e.g. `IP:127.0.0.1` or `DNS:mupdate.example`). */
  issue(name: string, altName: string): TestCert;
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed (${r.status}): ${r.stderr}${r.error ? r.error.message : ''}`);
}

/** A throw-away CA (RSA 2048, 1 day) that issues server certificates with the names a test asks for. */
export function makeTestCa(): TestCa {
  const dir = tempDir('mupdated-ca-');
  const caKey = join(dir, 'ca-key.pem');
  const caCert = join(dir, 'ca.pem');
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=mupdated test CA',
    '-days',
    '1',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    caKey,
    '-out',
    caCert,
  ]);
  return {
    dir,
    caCert,
    issue(name, altName) {
      const key = join(dir, `${name}-key.pem`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `subjectAltName=${altName}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
      openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr]);
      openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', cert]);
      return { dir, cert, key };
    },
  };
}
