/**
 * A TLS handshake with each https etcd endpoint, made before the etcd client
 * starts: the gRPC client reports a certificate the CA did not sign as
 * "unavailable", like a member that is down, and a node would then start on
 * its old view and wait forever. A certificate refused either way (the
 * member's by our CA, or ours by the member) is no outage: it is named, with
 * the endpoint, and the node or tool does not start.
 */
import { connect } from 'node:tls';
import type { Etcd3 } from 'etcd3';
import { EtcdCredentialsError, etcdClient, readTlsFiles, type EtcdSettings, type TlsFiles } from './connect.js';

/** Errors that mean "not reachable now", not "not trusted". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/** The HTTP/2 client preface and an empty SETTINGS frame (RFC 9113 3.4): the member answers with its SETTINGS. */
const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

type Outcome = { endpoint: string; ok: true } | { endpoint: string; ok: false; code: string; message: string; network: boolean };

function handshake(endpoint: string, tls: TlsFiles, ms: number): Promise<Outcome> {
  const url = new URL(endpoint);
  return new Promise((resolve) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port || 2379),
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      ...(/^[\d.]+$|:/.test(url.hostname) ? {} : { servername: url.hostname }),
      ALPNProtocols: ['h2'],
    });
    const done = (o: Outcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ endpoint, ok: false, code: 'ETIMEDOUT', message: 'no answer', network: true }), ms);
    // A member that requires a client certificate refuses it only after the client's side of
    // the handshake is over (TLS 1.3): the member's first HTTP/2 frame is the proof it was accepted.
    socket.once('secureConnect', () => socket.write(H2_PREFACE));
    socket.once('data', () => done({ endpoint, ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'UNKNOWN';
      done({ endpoint, ok: false, code, message: err.message.replace(/\s+/g, ' ').trim(), network: NETWORK_CODES.has(code) });
    });
  });
}

/** Throws EtcdCredentialsError when an https endpoint answers with a certificate that is not trusted. */
export async function checkEtcdTls(s: EtcdSettings, files: TlsFiles): Promise<void> {
  const secure = s.endpoints.filter((e) => e.startsWith('https://'));
  const outcomes = await Promise.all(secure.map((e) => handshake(e, files, Math.min(s.writeTimeoutMs, 3_000))));
  const refused = outcomes.filter((o): o is Extract<Outcome, { ok: false }> => !o.ok && !o.network);
  if (refused.length) {
    // An alert from the member (ERR_SSL_..._ALERT_...) means it refused us; other codes, that we refused it.
    const which = refused
      .map(
        (o) =>
          `${o.endpoint}: ${/^ERR_SSL_.*ALERT/.test(o.code) ? "the member refused this client's certificate" : "the member's certificate is not trusted"}, ${o.code} (${o.message})`,
      )
      .join('; ');
    throw new EtcdCredentialsError(
      `TLS with etcd failed, so this is not an outage: ${which}. Check --etcd-ca (${s.ca ?? "the system's CAs"})` +
        `${s.cert ? `, --etcd-cert ${s.cert} and --etcd-key` : ''}.`,
    );
  }
}

/** The etcd client, once the TLS files are read and every reachable https member has been found trustworthy. */
export async function connectEtcd(s: EtcdSettings): Promise<Etcd3> {
  await checkEtcdTls(s, readTlsFiles(s));
  return etcdClient(s);
}
