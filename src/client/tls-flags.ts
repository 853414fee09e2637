/** The TLS flags `push` and `client` share: `--starttls`, `--plaintext`, `--tls-ca FILE`, `--tls-insecure`. */
import { readFileSync } from 'node:fs';
import type { ClientOptions } from '../mupdate/client/connection.js';
import { defaultStartTls, type StartTlsMode } from '../mupdate/client/tls-policy.js';

export interface TlsFlags {
  starttls?: boolean | undefined;
  plaintext?: boolean | undefined;
  'tls-ca'?: string | undefined;
  'tls-insecure'?: boolean | undefined;
}

/** Flags that contradict each other or a CA file that cannot be read (a usage error). */
export class TlsFlagsError extends Error {}

/**
 * The connection's TLS settings: `--starttls` requires TLS, `--plaintext`
 * refuses it, neither means required toward a server not on loopback and
 * `onLoopback` on loopback.
 */
export function tlsOptions(
  flags: TlsFlags,
  host: string,
  onLoopback: StartTlsMode,
): Pick<ClientOptions, 'starttls' | 'tlsCa' | 'tlsInsecure'> {
  if (flags.starttls && flags.plaintext) throw new TlsFlagsError('--starttls and --plaintext exclude each other');
  if (flags.plaintext && (flags['tls-ca'] || flags['tls-insecure'])) {
    throw new TlsFlagsError('--tls-ca and --tls-insecure do not go with --plaintext');
  }
  let tlsCa: Buffer | undefined;
  if (flags['tls-ca']) {
    try {
      tlsCa = readFileSync(flags['tls-ca']);
    } catch (err) {
      throw new TlsFlagsError(`cannot read --tls-ca ${flags['tls-ca']}: ${(err as Error).message}`);
    }
  }
  const starttls = flags.starttls ? 'required' : flags.plaintext ? 'never' : defaultStartTls(host, onLoopback);
  return { starttls, tlsCa, tlsInsecure: !!flags['tls-insecure'] };
}
