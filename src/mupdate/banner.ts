/**
 * What a connection offers, and the greeting that says so (spec 2.1-2.3,
 * C1 C2): the SASL mechanisms usable on it, STARTTLS while TLS is configured
 * and not yet active, then `* OK MUPDATE ...` naming the server's role.
 */
import type { SecureContext } from 'node:tls';
import type { Authenticator } from '../sasl/authenticator.js';
import { bannerMechanisms, offeredMechanisms, type OfferedMechanisms } from '../sasl/sasl-exchange.js';
import { EXTENSIONS, IMPLEMENTATION, VERSION } from '../version.js';
import type { Role } from './session-settings.js';
import { untaggedLine } from './wire/encoder.js';

/** The server's side of it: the credential checks, TLS if configured, whether cleartext passwords are allowed. */
export interface MechanismSettings {
  auth: Authenticator;
  tls?: SecureContext | undefined;
  settings: { allowPlaintext: boolean };
}

function isLoopback(address: string | undefined): boolean {
  return !!address && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
}

/** The mechanisms a connection may use now: PLAIN only where a password cannot be overheard (or cleartext is allowed). */
export function mechanismsHere(server: MechanismSettings, tlsActive: boolean, remoteAddress: string | undefined): OfferedMechanisms {
  const plainSafeHere = tlsActive || server.settings.allowPlaintext || isLoopback(remoteAddress);
  return offeredMechanisms(server.auth, plainSafeHere, !!server.tls && !tlsActive);
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
