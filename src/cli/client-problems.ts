/** Connection problems of `mupdated client` in words a person can act on. */
import { isLoopbackHost } from '../resync/tls-policy.js';
import { LoginRefused, StartTlsUnavailable, UpstreamTimeout } from '../resync/upstream.js';

/** `where` is HOST:PORT as shown to the user; `user` the login name. */
export function describeProblem(err: unknown, where: string, user: string): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof StartTlsUnavailable && !isLoopbackHost(where.replace(/:\d+$/, ''))) {
    return `${where} does not offer STARTTLS, which is required toward a server not on loopback ` +
      '(--plaintext talks without TLS: the password crosses the network in clear)';
  }
  if (err instanceof LoginRefused) {
    const reason = msg.replace(/^login as .* refused by the server: /s, '');
    return `login as ${user} refused by ${where}: ${reason || 'no reason given'}`;
  }
  if (/ECONNREFUSED/.test(msg)) return `cannot connect to ${where}: connection refused (is a MUPDATE server listening there?)`;
  if (/ENOTFOUND|EAI_AGAIN/.test(msg)) return `cannot connect to ${where}: unknown host`;
  if (/EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL/.test(msg)) return `cannot connect to ${where}: no route to that address`;
  if (err instanceof UpstreamTimeout && err.phase === 'connect') return `cannot connect to ${where}: no answer (timed out)`;
  if (msg.startsWith('TLS failed: ')) {
    const why = msg.slice('TLS failed: '.length);
    const hint = /certificate|self[- ]signed|verify|altnames/i.test(why)
      ? ' (to trust it: --tls-ca CA.pem, or --tls-insecure to skip the check)' : '';
    return `TLS with ${where} failed: ${why}${hint}`;
  }
  if (/does not offer STARTTLS/.test(msg)) return `${where} does not offer STARTTLS (leave out --starttls to talk in plain text)`;
  if (/STARTTLS was refused/.test(msg)) return `${where} refused STARTTLS`;
  if (/refused the connection \(BYE\)/.test(msg)) return `${where} refused the connection (BYE in its banner)`;
  if (/closed the connection/.test(msg)) return `${where} ${msg.replace(/^the server /, '')}`;
  if (err instanceof UpstreamTimeout) return `no answer from ${where} (timed out)`;
  return `${where}: ${msg}`;
}
