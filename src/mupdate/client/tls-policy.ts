/**
 * When mupdated talks to a MUPDATE server as a client (slave, push, client),
 * its password goes over the link with PLAIN. Toward a server that is not on
 * this machine TLS is required unless the operator says otherwise: whoever
 * can delete the banner's `* STARTTLS` line must not get an admin password.
 * On loopback nothing crosses a network, so the old, lenient default stays.
 */
import { isIP } from 'node:net';

export type StartTlsMode = 'never' | 'if-offered' | 'required';

export const STARTTLS_MODES: readonly StartTlsMode[] = ['never', 'if-offered', 'required'];

/** 127.0.0.0/8, ::1, an IPv4-mapped 127.x address, or the name `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h) || /^(0+:){7}0*1$/.test(h);
  return false;
}

/** The STARTTLS mode when none was chosen: `required` toward any server not on loopback, else `onLoopback`. */
export function defaultStartTls(host: string, onLoopback: StartTlsMode = 'if-offered'): StartTlsMode {
  return isLoopbackHost(host) ? onLoopback : 'required';
}
