/** Connection problems of `mupdated client` in words a person can act on. */
import {
  BannerRefused,
  ConnectFailed,
  ConnectionClosed,
  LoginRefused,
  StartTlsRefused,
  StartTlsUnavailable,
  TimeoutError,
  TlsFailed,
} from '../mupdate/client/errors.js';
import { isLoopbackHost } from '../mupdate/client/tls-policy.js';

/** What each system error code of a failed connect means to a person. */
const CONNECT_FAILURES: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is a MUPDATE server listening there?)',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'unknown host',
  EHOSTUNREACH: 'no route to that address',
  ENETUNREACH: 'no route to that address',
  EADDRNOTAVAIL: 'no route to that address',
};

/** `where` is HOST:PORT as shown to the user; `user` the login name. */
export function describeProblem(err: unknown, where: string, user: string): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof StartTlsUnavailable) {
    if (isLoopbackHost(where.replace(/:\d+$/, ''))) return `${where} does not offer STARTTLS (leave out --starttls to talk in plain text)`;
    return (
      `${where} does not offer STARTTLS, which is required toward a server not on loopback ` +
      '(--plaintext talks without TLS: the password crosses the network in clear)'
    );
  }
  if (err instanceof LoginRefused) return `login as ${user} refused by ${where}: ${err.reason || 'no reason given'}`;
  const failure = err instanceof ConnectFailed && err.code !== undefined ? CONNECT_FAILURES[err.code] : undefined;
  if (failure) return `cannot connect to ${where}: ${failure}`;
  if (err instanceof TimeoutError) {
    return err.phase === 'connect' ? `cannot connect to ${where}: no answer (timed out)` : `no answer from ${where} (timed out)`;
  }
  if (err instanceof TlsFailed) {
    const hint = /certificate|self[- ]signed|verify|altnames/i.test(err.reason)
      ? ' (to trust it: --tls-ca CA.pem, or --tls-insecure to skip the check)'
      : '';
    return `TLS with ${where} failed: ${err.reason}${hint}`;
  }
  if (err instanceof StartTlsRefused) return `${where} refused STARTTLS`;
  if (err instanceof BannerRefused) return `${where} refused the connection (BYE in its banner)`;
  if (err instanceof ConnectionClosed) return `${where} ${msg.replace(/^the server /, '')}`;
  return `${where}: ${msg}`;
}
