/**
 * Directory contents the slave and frontend tests seed a master with: ACLs
 * written as pairs, the names that trip quoting (8-bit bytes, quotes,
 * domains) and bulk generated mailboxes.
 */
import { ChangeGenerator, type Cmd } from './slave-tools.js';

/** An ACL string from (identifier, rights) pairs: `id TAB rights TAB` each. */
export const acl = (...pairs: Array<[string, string]>): string => pairs.map(([id, rights]) => `${id}\t${rights}\t`).join('');

/** A user's mailbox and a child of it. */
export const USER_X: Cmd[] = [
  ['ACTIVATE', 'user.x', 'backend1!default', acl(['x', 'lrswipkxtecdan'])],
  ['ACTIVATE', 'user.x.Sent', 'backend1!default', acl(['x', 'lrswipkxtecdan'])],
];

/** Names whose Cyrus 3.6 order differs from strcmp (`-`, space and `_` against the `.` separator). */
export const ORDER_NAMES: Cmd[] = [
  ['ACTIVATE', 'user.x-y', 'backend2!default', acl(['x-y', 'lrswipkxtecdan'])],
  ['ACTIVATE', 'user.x y', 'backend2!default', acl(['x y', 'lrs'])],
  ['ACTIVATE', 'user.x_y', 'backend2!default', acl(['x_y', 'lrswipkxtecdan'])],
  ['ACTIVATE', 'user.xy', 'backend10!default', acl(['xy', 'lrswipkxtecdan'])],
];

/** A name with 8-bit bytes that are not UTF-8, and one with a quote and a backslash. */
export const ODD_BYTE_NAMES: Cmd[] = [
  ['ACTIVATE', 'user.\xe4\xff', 'backend1!default', acl(['anyone', 'lr'])],
  ['ACTIVATE', 'user.q"uote\\back', 'backend1!default', acl(['q"uote', 'lrs'])],
];

/** A mailbox in a domain. */
export const DOMAIN_MAILBOX: Cmd = ['ACTIVATE', 'example.com!user.carol', 'backend1!ssd', acl(['carol@example.com', 'lrswipkxtecdan'])];

/** ACTIVATEs of user.gen0 .. user.gen<count-1>, each owned by gen<i>, at `locate(name, i)` (by default spread over backends by name). */
export function generatedMailboxes(
  count: number,
  locate: (name: string, i: number) => string = (name) => ChangeGenerator.locationOf(name),
): Cmd[] {
  return Array.from({ length: count }, (_, i): Cmd => [
    'ACTIVATE',
    `user.gen${i}`,
    locate(`user.gen${i}`, i),
    acl([`gen${i}`, 'lrswipkxtecdan']),
  ]);
}
