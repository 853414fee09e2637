/**
 * Directory contents the slave and frontend tests seed a master with: ACLs
 * written as pairs, the names that trip quoting (8-bit bytes, quotes,
 * domains) and bulk generated mailboxes.
 */
import { ChangeGenerator, type Cmd } from './slave-tools.js';

/** An ACL string from (identifier, rights) pairs: `id TAB rights TAB` each. */
export const acl = (...pairs: Array<[string, string]>): string => pairs.map(([id, rights]) => `${id}\t${rights}\t`).join('');

/** A name with 8-bit bytes that are not UTF-8, and one with a quote and a backslash. */
export const ODD_BYTE_NAMES: Cmd[] = [
  ['ACTIVATE', 'user.\xe4\xff', 'backend1!default', acl(['anyone', 'lr'])],
  ['ACTIVATE', 'user.q"uote\\back', 'backend1!default', acl(['q"uote', 'lrs'])],
];

/** A mailbox in a domain. */
export const DOMAIN_MAILBOX: Cmd = ['ACTIVATE', 'example.com!user.carol', 'backend1!ssd', acl(['carol@example.com', 'lrswipkxtecdan'])];

/** ACTIVATEs of user.gen0 .. user.gen<count-1>, each owned by gen<i>, at `locate(name, i)` (by default spread over backends by name). */
export function generatedMailboxes(count: number, locate: (name: string, i: number) => string = (name) => ChangeGenerator.locationOf(name)): Cmd[] {
  return Array.from({ length: count }, (_, i): Cmd => ['ACTIVATE', `user.gen${i}`, locate(`user.gen${i}`, i), acl([`gen${i}`, 'lrswipkxtecdan'])]);
}
