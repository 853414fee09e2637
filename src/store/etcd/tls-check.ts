/**
 * A TLS handshake with each https etcd endpoint, made before the etcd client
 * starts: the gRPC client reports a certificate the CA did not sign as
 * "unavailable", like a member that is down, and a node would then start on
 * its old view and wait forever. A refused certificate is no outage: it is
 * named, with the endpoint, and the node or tool does not start.
 */
import { connect } from 'node:tls';
import type { Etcd3 } from 'etcd3';
import { EtcdCredentialsError, etcdClient, readTlsFiles, type EtcdSettings, type TlsFiles } from './connect.js';

/** Errors that mean "not reachable now", not "not trusted". */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

type Outcome = { endpoint: string; ok: true } | { endpoint: string; ok: false; code: string; message: string; network: boolean };

function handshake(endpoint: string, tls: TlsFiles, ms: number): Promise<Outcome> {
  const url = new URL(endpoint);
  return new Promise((resolve) => {
    const socket = connect({
      host: url.hostname, port: Number(url.port || 2379), ca: tls.ca, cert: tls.cert, key: tls.key,
      ...(/^[\d.]+$|:/.test(url.hostname) ? {} : { servername: url.hostname }), ALPNProtocols: ['h2'],
    });
    const done = (o: Outcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ endpoint, ok: false, code: 'ETIMEDOUT', message: 'no answer', network: true }), ms);
    socket.once('secureConnect', () => done({ endpoint, ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'UNKNOWN';
      done({ endpoint, ok: false, code, message: err.message, network: NETWORK_CODES.has(code) });
    });
  });
}

/** Throws EtcdCredentialsError when an https endpoint answers with a certificate that is not trusted. */
export async function checkEtcdTls(s: EtcdSettings, files: TlsFiles): Promise<void> {
  const secure = s.endpoints.filter((e) => e.startsWith('https://'));
  const outcomes = await Promise.all(secure.map((e) => handshake(e, files, Math.min(s.writeTimeoutMs, 3_000))));
  const refused = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok && !o.network);
  if (refused.length) {
    const which = refused.map((o) => `${o.endpoint}: ${o.code} (${o.message})`).join('; ');
    throw new EtcdCredentialsError(
      `TLS with etcd failed, so this is not an outage: ${which}. Check --etcd-ca (${s.ca ?? 'the system\'s CAs'})` +
      `${s.cert ? `, --etcd-cert ${s.cert} and --etcd-key` : ''}.`);
  }
}

/** The etcd client, once the TLS files are read and every reachable https member has been found trustworthy. */
export async function connectEtcd(s: EtcdSettings): Promise<Etcd3> {
  await checkEtcdTls(s, readTlsFiles(s));
  return etcdClient(s);
}
