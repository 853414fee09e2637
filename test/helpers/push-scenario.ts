/** Shared pieces of the push scenarios (push-tool.test.ts against mupdated, interop-push-conflicts.test.ts against Cyrus too). */
import type { MailboxSpec } from './cyrus-backend.js';

/** What one push run of a scenario did. */
export interface PushStep {
  step: string;
  code: number | null;
  stdout: string;
  stderr: string;
  /** What the push sent (through a recording proxy). */
  wire: string[];
  /** The LIST of the pushed server afterwards, canonical. */
  list: string[];
  /** Changes an UPDATE stream got meanwhile. */
  streamed: string[];
}

/**
 * ACLs for a scenario's mailboxes owned by `owner`: the one at `bareAt` has
 * none, the one at `mixedAt` has the owner's and `mixedExtra`, `shared-*`
 * ones are readable by anyone, the others are the owner's alone.
 */
export function ownedMailboxes(
  names: string[],
  owner: string,
  bareAt: number,
  mixedAt: number,
  mixedExtra: Array<[string, string]>,
): MailboxSpec[] {
  const own: [string, string] = [owner, 'lrswipkxtecdan'];
  return names.map((name, i): MailboxSpec => {
    if (i === bareAt) return { name, acl: [] };
    if (i === mixedAt) return { name, acl: [own, ...mixedExtra] };
    if (name.startsWith('shared')) return { name, acl: [['anyone', 'lrs']] };
    return { name, acl: [own] };
  });
}

/** `mupdated push` arguments: log in to the master on loopback `port` as `user`, then `rest` (--server, flags, the dump). */
export function pushArgs(port: number, user: string, passwordFile: string, ...rest: string[]): string[] {
  return ['push', '--master', `127.0.0.1:${port}`, '--user', user, '--password-file', passwordFile, ...rest];
}
