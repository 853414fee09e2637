/** The client's TLS handshake after the server's STARTTLS OK, within a deadline. */
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { TimeoutError, TlsFailed } from './errors.js';

export interface TlsTarget {
  /** The name the certificate must carry (a DNS name or an IP address in its altnames). */
  host: string;
  tlsInsecure?: boolean | undefined;
  tlsCa?: Buffer | undefined;
}

/**
 * Starts TLS on `raw` and resolves once the handshake is done. A server that
 * goes silent mid-handshake gets a TimeoutError after `timeoutMs`, and the
 * socket is destroyed: without it a slave would wait on that master forever
 * and never try the next one.
 */
export function tlsHandshake(raw: Socket, target: TlsTarget, timeoutMs: number): Promise<TLSSocket> {
  const secure = tlsConnect({
    socket: raw,
    host: target.host,
    rejectUnauthorized: !target.tlsInsecure,
    ...(target.tlsCa ? { ca: target.tlsCa } : {}),
    // SNI takes host names only (an IP address there is deprecated).
    ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
  });
  return new Promise<TLSSocket>((resolve, reject) => {
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new TimeoutError('response', `the TLS handshake with ${target.host} did not finish within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(secure);
    });
    secure.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(new TlsFailed(err.message));
    });
  });
}
