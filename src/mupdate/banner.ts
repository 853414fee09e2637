/**
 * What a connection offers, and the greeting that says so (spec 2.1-2.3,
 * C1 C2): the SASL mechanisms usable on it, STARTTLS while TLS is configured
 * and not yet active, then `* OK MUPDATE ...` naming the server's role.
 */
import type { Authenticator } from '../sasl/authenticator.js';
import { bannerMechanisms, offeredMechanisms, type OfferedMechanisms } from '../sasl/sasl-exchange.js';
import { EXTENSIONS, IMPLEMENTATION, VERSION } from '../version.js';
import type { Role } from './session-settings.js';
import { untaggedLine } from './wire/encoder.js';

export interface ConnectionSecurity {
  tlsActive: boolean;
  tlsConfigured: boolean;
  allowPlaintext: boolean;
  remoteAddress: string | undefined;
}

function isLoopback(address: string | undefined): boolean {
  return !!address && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
}

/** The mechanisms a connection may use now: PLAIN only where a password cannot be overheard (or cleartext is allowed). */
export function mechanismsHere(auth: Authenticator, c: ConnectionSecurity): OfferedMechanisms {
  const plainSafeHere = c.tlsActive || c.allowPlaintext || isLoopback(c.remoteAddress);
  return offeredMechanisms(auth, plainSafeHere, c.tlsConfigured && !c.tlsActive);
}

export function bannerBytes(servername: string, role: Role, offered: OfferedMechanisms, startTlsOffered: boolean): Buffer {
  const lines: Buffer[] = [untaggedLine('AUTH', bannerMechanisms(offered))];
  if (startTlsOffered) lines.push(untaggedLine('STARTTLS'));
  lines.push(untaggedLine('PARTIAL-UPDATE'));
  const roleText = role.kind === 'master' ? '(master)' : `mupdate://${role.master}`;
  // The version string names our extensions; nothing in Cyrus parses it (spec 2.1).
  lines.push(untaggedLine('OK MUPDATE', [servername, IMPLEMENTATION, `${VERSION} ${EXTENSIONS}`, roleText]));
  return Buffer.concat(lines);
}
