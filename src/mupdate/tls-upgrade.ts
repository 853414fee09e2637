/**
 * STARTTLS on the server side (spec 3.12): the TCP socket is no longer read
 * directly but wrapped in TLS. Bytes already received in cleartext are the
 * caller's to discard.
 */
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';

/** Time a client has to complete the TLS handshake. */
const HANDSHAKE_TIMEOUT_MS = 180_000;

export interface TlsUpgradeEvents {
  /** The handshake completed. */
  secured(): void;
  failed(err: Error): void;
  /** The connection closed, failed underneath, or the handshake took too long. */
  gone(): void;
}

export function upgradeToTls(raw: Socket, secureContext: SecureContext, on: TlsUpgradeEvents): TLSSocket {
  for (const event of ['data', 'drain', 'end', 'close', 'error']) raw.removeAllListeners(event);
  raw.setTimeout(0);
  raw.on('error', () => on.gone());
  raw.on('close', () => on.gone());
  const secure = new TLSSocket(raw, { isServer: true, secureContext });
  secure.once('secure', () => on.secured());
  secure.once('error', (err: Error) => on.failed(err));
  secure.setTimeout(HANDSHAKE_TIMEOUT_MS, () => on.gone());
  return secure;
}
